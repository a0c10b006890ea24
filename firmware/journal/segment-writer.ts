// The journal's segment files as written: the working segment (one handle, records written at its durable
// end, one synchronous write per group commit), starting the next one without losing the working handle,
// cutting a failed write back off, and closing segments with their exact marks. The journal
// (file-journal.ts) decides when; this file knows how. Layout: segment.ts.
//
// The working handle is opened O_DSYNC: a commit is one pwritev that returns once its records are on disk
// (the kernel does the fdatasync of that range inside the call), so it costs one trip to libuv's pool
// instead of two (write, then fdatasync). Each trip is a wake-up of a pool thread and of the lane's
// thread; on a busy 2-core box those wake-ups, not the disk, made the tail of one-at-a-time commits.

import { constants } from 'node:fs';
import { open, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from '../config/log.js';
import { syncDir, writeFully } from '../platform/atomic-file.js';
import { JournalIoError, io } from './io-error.js';
import type { Segment } from './recovery.js';
import { SEGMENT_HEADER_BYTES, encodeHeader, scanSegment, segName } from './segment.js';

/** The working segment's handle: every write on it is durable when it returns (see above). */
const DURABLE_WRITES = constants.O_RDWR | constants.O_DSYNC;

export class SegmentWriter {
  /** Oldest first; the last one is the working segment whenever `fh` is set. */
  segments: Segment[] = [];
  /** The working segment's handle; undefined only while opening it failed. */
  private fh: FileHandle | undefined;
  /** A failed write may have left bytes past the durable end: cut (heal) before anything else is written. */
  needsHeal = false;
  /**
   * The segment before the working one, until it is closed with its mark: once the working one's
   * directory entry is durable (`successorDurable`) and the journal is idle, or unmarked at the next rotation.
   */
  private previous: { seg: Segment; fh: FileHandle | undefined; successorDurable: boolean } | undefined;
  /** Previous segments being closed with their marks (in the background). */
  private sealing: Promise<void> = Promise.resolve();

  constructor(
    private readonly dir: string,
    private readonly segmentBytes: number,
    private readonly log: Pick<Logger, 'warn'>,
    /** Recovery's last segment takes the next record (format 2, clean); its header said closed. */
    private tailAppendable: boolean,
    private tailClosed: boolean,
  ) {}

  get working(): boolean {
    return this.fh !== undefined;
  }
  get tail(): Segment | undefined {
    return this.segments.at(-1);
  }

  /** Make recovery's last segment the working one, or start a new one at `nextSeq`. */
  async openWorking(nextSeq: number): Promise<void> {
    const tail = this.tail;
    if (this.tailAppendable && tail) {
      const fh = await io('open', tail.path, () => open(tail.path, DURABLE_WRITES));
      try {
        // A closed mark would be stale once a record follows it.
        if (this.tailClosed) await this.writeHeader(fh, tail, false);
      } catch (e) {
        await fh.close().catch(() => {});
        throw e;
      }
      this.tailClosed = false;
      this.fh = fh;
    } else {
      await this.rotate(nextSeq);
    }
    this.tailAppendable = true;
  }

  /**
   * Start a segment whose first record will be `firstSeq`, created sparse at its full size, and make it
   * the working one; on failure the working handle stays as it was. Its header and size reach the disk
   * with its first commit (whose records share the header's page: the commit's synchronous write takes
   * that page and the size change with it), its directory entry with a directory fsync beside it: starting
   * a segment costs no fsync of its own. Created through a plain handle, then reopened O_DSYNC for records.
   */
  async rotate(firstSeq: number): Promise<void> {
    const path = join(this.dir, segName(firstSeq));
    const size = Math.max(SEGMENT_HEADER_BYTES, this.segmentBytes);
    let fh: FileHandle | undefined;
    try {
      fh = await io('create', path, () => open(path, 'wx')).catch(async (e: JournalIoError) => {
        // Left over from a failed attempt (its removal failed too): only an empty one may be taken over.
        if (e.code !== 'EEXIST' || scanSegment(new Uint8Array(await readFile(path)), firstSeq).records.length > 0) throw e;
        return io('create', path, () => open(path, 'w'));
      });
      const h = fh;
      // Size first: a crash in between leaves a file with no header and no record (recovery drops it),
      // never a header whose size the file does not have (that would read as a cut file).
      await io('size', path, () => h.truncate(size));
      await io('write header of', path, () => writeFully(h, encodeHeader({ firstSeq, hwm: firstSeq - 1, size, knownLost: 0, closed: false }), 0));
      const durable = await io('open', path, () => open(path, DURABLE_WRITES));
      await h.close().catch(() => {});
      fh = durable;
    } catch (e) {
      await fh?.close().catch(() => {});
      await unlink(path).catch(() => {});
      throw e;
    }
    const prev = this.tail;
    const old = this.fh;
    this.fh = fh;
    this.segments.push({ firstSeq, lastSeq: firstSeq - 1, path, bytes: SEGMENT_HEADER_BYTES, fileSize: size, headered: true, knownLost: 0, unsyncedDir: true });
    this.releasePrevious(false);
    // Closed with its mark ("the next was started") once the new one's directory entry is durable.
    this.previous = prev ? { seg: prev, fh: old, successorDurable: false } : undefined;
  }

  /** Write records at the working segment's durable end, durably (O_DSYNC); returns the write's milliseconds. Throws JournalIoError. */
  async write(records: Uint8Array[], lastSeq: number): Promise<number> {
    const seg = this.tail;
    const fh = this.fh;
    if (!fh || !seg || this.needsHeal) throw new JournalIoError('write', seg?.path ?? this.dir, 'EBADF', new Error('no working segment'));
    const want = records.reduce((a, r) => a + r.byteLength, 0);
    // From here on, anything past the durable end is cut again if what follows fails.
    this.needsHeal = true;
    const t0 = performance.now();
    // The operation is named for both halves: a failure to make the range durable (writeback ENOSPC, EIO)
    // comes back from this call as fdatasync's would.
    const [{ bytesWritten }] = await Promise.all([io('write + fdatasync', seg.path, () => fh.writev(records, seg.bytes)), this.syncDirFor(seg)]);
    if (bytesWritten !== want) throw new JournalIoError('write', seg.path, 'ENOSPC', new Error(`short write ${bytesWritten} of ${want} bytes`));
    const ms = performance.now() - t0;
    this.needsHeal = false;
    seg.bytes += want;
    seg.fileSize = Math.max(seg.fileSize, seg.bytes);
    seg.lastSeq = lastSeq;
    return ms;
  }

  /** Cut the working segment back to its durable end (the rest of its size zeros again: a hole, no space needed), or open one. */
  async heal(nextSeq: number): Promise<void> {
    if (!this.fh) {
      await this.openWorking(nextSeq);
      this.needsHeal = false;
      return;
    }
    const seg = this.tail!;
    const fh = this.fh;
    await io('truncate', seg.path, () => fh.truncate(seg.bytes));
    if (seg.fileSize > seg.bytes) await io('truncate', seg.path, () => fh.truncate(seg.fileSize));
    await Promise.all([io('fdatasync', seg.path, () => fh.datasync()), this.syncDirFor(seg)]);
    this.needsHeal = false;
  }

  /** Delete closed segments whose every record is at or below `through`; returns the bytes they held. */
  async trim(through: number): Promise<number> {
    let freed = 0;
    while (this.segments.length > 1 && this.segments[0].lastSeq <= through && this.segments[0] !== this.previous?.seg) {
      const s = this.segments.shift()!;
      freed += s.bytes;
      await unlink(s.path).catch(() => {});
    }
    return freed;
  }

  /** Release everything; `clean`: leave the exact marks (the next open trusts them even if the end is damaged later). */
  async close(clean: boolean): Promise<void> {
    const tail = this.tail;
    const durable = clean && tail !== undefined && (await this.syncDirFor(tail).then(() => true, () => false));
    this.releasePrevious(durable);
    await this.sealing;
    if (this.fh && tail && durable && !this.needsHeal) {
      await this.seal(tail, this.fh, false).catch((e: Error) => this.log.warn({ err: e.message }, 'journal: could not close the segment with its mark'));
    }
    await this.fh?.close().catch(() => {});
    this.fh = undefined;
  }

  /**
   * The journal has nothing to write: close the previous segment with its mark now, in the background (its
   * fdatasync then competes with no commit). Under load without a pause it is released unmarked at the next
   * rotation instead: the mark is for telling a lost last segment, best effort.
   */
  idle(): void {
    if (this.previous?.successorDurable) this.releasePrevious(true);
  }

  /** A new segment's directory entry is made durable with its first commit (once). */
  private async syncDirFor(seg: Segment): Promise<void> {
    if (!seg.unsyncedDir) return;
    await io('fsync directory of', seg.path, () => syncDir(this.dir));
    seg.unsyncedDir = false;
    if (this.previous) this.previous.successorDurable = true;
  }

  /** Close the previous segment with its mark (when `rotated`: the next one is known durable), then release it, in the background. */
  private releasePrevious(rotated: boolean): void {
    const p = this.previous;
    if (!p) return;
    this.previous = undefined;
    const done = (p.seg.headered && rotated ? this.seal(p.seg, p.fh, true) : Promise.resolve())
      .catch((e: Error) => this.log.warn({ err: e.message, segment: basename(p.seg.path) }, 'journal: could not close the previous segment with its mark'))
      .then(() => p.fh?.close())
      .catch((e: Error) => this.log.warn({ err: e.message }, 'journal: closing the previous segment failed'));
    this.sealing = Promise.all([this.sealing, done]).then(() => {});
  }

  /** Mark a segment closed with its exact mark (through its open handle, or opened for this). */
  private async seal(seg: Segment, fh: FileHandle | undefined, rotated: boolean): Promise<void> {
    if (fh) return this.writeHeader(fh, seg, true, rotated);
    const own = await io('open', seg.path, () => open(seg.path, 'r+'));
    try {
      await this.writeHeader(own, seg, true, rotated);
    } finally {
      await own.close().catch(() => {});
    }
  }

  /** Rewrite a segment's header (both slots) and make it durable; closed: its mark is exact. */
  private async writeHeader(fh: FileHandle, seg: Segment, closed: boolean, rotated = false): Promise<void> {
    const h = encodeHeader({ firstSeq: seg.firstSeq, hwm: Math.max(seg.lastSeq, seg.mark ?? 0), size: seg.fileSize, knownLost: seg.knownLost, closed, rotated });
    await io('write header of', seg.path, () => writeFully(fh, h, 0));
    await io('fdatasync', seg.path, () => fh.datasync());
  }
}
