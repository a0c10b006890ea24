// The journal on disk: every record checksummed, durable (fdatasync) before append() resolves, many
// appends sharing one fsync (group commit), recovered after kill -9, power loss or damage (recovery.ts:
// a torn tail is cut, a damaged segment is kept aside and every record that still checks is kept),
// uploaded to the back office in batches keyed by lane id + seq (retries never duplicate), and trimmed
// once uploaded. Record layout: protocol/README.md, "Journal records"; segment header: segment.ts.
//
// A segment is created sparse at its full size (segment.ts): a group commit is one write over zeros and
// one fdatasync, with no size change for the file system to journal. Sequence numbers are never handed
// out twice: recovery tells a write torn by a crash (its seq is reused) from damage (never), a closed
// segment's header holds its exact mark, and `seq.hwm` reserves seqs ahead in blocks for when the end of
// the last segment cannot be trusted. A commit that fails is cut back off the file (and its seqs reused)
// before anything else is written; until then the journal writes nothing.
//
// Disk full (ENOSPC, EDQUOT, or the configured quota) or an I/O error: append() rejects with
// JournalUnavailableError, one alarm is raised, and appends are refused at once while a probe (bounded
// back-off) checks the disk; when a probe writes and fsyncs again, 'journal-ok' is raised and appends
// resume, without a restart. The lane then refuses entries (journal-unavailable) and still opens exits.
// A failed rotation never loses the working handle: the next segment is opened before the old one is
// closed, and on failure the journal keeps writing to the old one and tries again later.

import { EventEmitter } from 'node:events';
import { open, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { alarmText, type Alarm } from '../../protocol/alarms.js';
import { encodeJournalRecord } from '../../protocol/journal-record.js';
import { syncDir, writeFully } from '../platform/atomic-file.js';
import { FULL, JournalIoError, asIoError, io } from './io-error.js';
import { SeqReservation } from './seq-reservation.js';
import type { Journal, JournalEntry, JournalHealth } from './journal.js';
import { JournalUpload } from './upload.js';
import type { Logger } from '../config/log.js';
import { recoverJournal, recoveryAlarms, type JournalRecoveryReport, type Segment } from './recovery.js';
import { SEGMENT_HEADER_BYTES, encodeHeader, scanSegment, segName } from './segment.js';

export type { JournalRecoveryReport } from './recovery.js';

export interface FileJournalOptions {
  dir: string;
  laneId: string;
  /** Back-office base URL; without it records are kept until an uploader is configured. */
  uploadUrl?: string;
  /** Bearer token for the back office (role `gate`), when it asks for one. */
  uploadToken?: string;
  /** Start a new segment file beyond this size. */
  segmentBytes?: number;
  /** Refuse appends once the journal's files reach this many bytes (keeps room for the OS). */
  maxBytes?: number;
  uploadBatch?: number;
  uploadIntervalMs?: number;
  uploadTimeoutMs?: number;
  maxBackoffMs?: number;
  /** Unacknowledged records kept in memory for upload; beyond this they are read back from disk. */
  memoryRecords?: number;
  /** While the journal cannot write: first probe after this long, doubling up to probeMaxMs (also the rotation retry). */
  probeMinMs?: number;
  probeMaxMs?: number;
  /** Seqs reserved ahead in `seq.hwm` at a time. */
  reserveBlock?: number;
  log?: Logger;
}

export class JournalUnavailableError extends Error {
  constructor(
    readonly code: 'disk-full' | 'io-error' | 'closed',
    message: string,
  ) {
    super(message);
    this.name = 'JournalUnavailableError';
  }
}

interface Pending {
  bytes: Uint8Array;
  entry: JournalEntry;
  seq: number;
  resolve: (seq: number) => void;
  reject: (e: Error) => void;
  /** Settled already: a batch's promise settles exactly once. */
  done: boolean;
}

export interface JournalCounters {
  appended: number;
  fsyncs: number;
  fsyncMsTotal: number;
  fsyncMsMax: number;
  lastFsyncMs: number;
  uploaded: number;
  uploadBatches: number;
  uploadFailures: number;
  /** Records the back office holds with other content under the same (lane, seq): delivered, alarmed. */
  uploadConflicts: number;
  rejectedAppends: number;
  /** Group commits that failed (write, header, fdatasync or reservation). */
  writeFailures: number;
  rotationFailures: number;
  probes: number;
  tornTailsDropped: number;
  bytesDropped: number;
}

const PROBE_BYTES = 16 * 1024;

/** Events: 'alarm' (name, detail), 'uploaded' (throughSeq), 'fsync' (milliseconds). */
export class FileJournal extends EventEmitter implements Journal {
  private readonly o: Required<Omit<FileJournalOptions, 'uploadUrl' | 'uploadToken' | 'log'>> & { uploadUrl?: string; uploadToken?: string };
  private readonly log: Logger;
  private segments: Segment[] = [];
  /** The last segment's handle; undefined only while the journal is unavailable. */
  private fh: FileHandle | undefined;
  private nextSeq = 1;
  private totalBytes = 0;
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private closing = false;
  private closed = false;
  private readonly upload: JournalUpload;
  private reservation!: SeqReservation;
  /** Set while the journal cannot write; appends are refused until a probe clears it. */
  private down: { reason: 'disk-full' | 'io-error'; detail: string; sinceMs: number } | undefined;
  /** A failed commit may have left bytes past the durable end (or a header mark above it): cut before writing. */
  private needsHeal = false;
  private quotaFull = false;
  /** Size of the record the quota refused: the quota clears once that much fits again. */
  private quotaNeed = 0;
  /** A disk-full or I/O alarm is out and 'journal-ok' has not followed yet. */
  private alarmed = false;
  private probeTimer: NodeJS.Timeout | undefined;
  private probing: Promise<void> | undefined;
  private probeFailures = 0;
  private rotateRetryAt = 0;
  private rotateFailuresInRow = 0;
  private report!: JournalRecoveryReport;
  /** Recovery left a last segment that takes the next seq (used again if opening it failed at first). */
  private tailAppendable = false;
  /** That segment's header says closed: it is marked open again before its next record. */
  private tailClosed = false;
  /** Previous segments being closed with their marks (in the background, after a rotation). */
  private sealing: Promise<void> = Promise.resolve();
  /** The segment before the working one, until the working one's directory entry is durable. */
  private previous: { seg: Segment; fh: FileHandle | undefined } | undefined;
  private recoveryAlarmsPending: Alarm[] = [];
  readonly counters: JournalCounters = {
    appended: 0, fsyncs: 0, fsyncMsTotal: 0, fsyncMsMax: 0, lastFsyncMs: 0, uploaded: 0, uploadBatches: 0, uploadFailures: 0,
    uploadConflicts: 0, rejectedAppends: 0, writeFailures: 0, rotationFailures: 0, probes: 0, tornTailsDropped: 0, bytesDropped: 0,
  };

  private constructor(opts: FileJournalOptions) {
    super();
    this.o = {
      segmentBytes: 4 << 20,
      maxBytes: 1 << 30,
      uploadBatch: 500,
      uploadIntervalMs: 1000,
      uploadTimeoutMs: 10_000,
      maxBackoffMs: 60_000,
      memoryRecords: 50_000,
      probeMinMs: 100,
      probeMaxMs: 5_000,
      reserveBlock: 8192,
      ...opts,
    };
    // No logger given: stay quiet (and keep pino out of processes that only journal).
    this.log = opts.log ?? quietLog;
    this.upload = new JournalUpload(this.o, {
      segments: () => this.segments,
      trim: (through) => this.trim(through),
      raise: (a) => this.raise(a),
      uploaded: (through) => this.emit('uploaded', through),
      counters: this.counters,
      log: this.log,
    });
  }

  /**
   * Open (and recover) the journal in `dir`; starts uploading when uploadUrl is set. Emits nothing: what
   * recovery found is in `recovery`, and raiseRecoveryAlarms() raises it once listeners are attached.
   * A disk that cannot take a new segment now does not fail the open: the journal starts unavailable.
   */
  static async open(opts: FileJournalOptions): Promise<FileJournal> {
    const j = new FileJournal(opts);
    await j.recover();
    j.upload.start();
    return j;
  }

  /** Durable records the back office has not acknowledged yet. */
  get backlog(): number {
    return this.upload.backlog;
  }
  get lastSeq(): number {
    return this.nextSeq - 1;
  }
  get uploadedSeq(): number {
    return this.upload.uploadedThrough;
  }

  /** Upload everything durable and not yet acknowledged, in batches; then trim. Resolves when done or failed. */
  uploadNow(): Promise<boolean> {
    return this.upload.now();
  }
  get segmentCount(): number {
    return this.segments.length;
  }
  /** What recovery found at open: segments scanned, torn bytes cut, damaged segments, records kept and lost. */
  get recovery(): JournalRecoveryReport {
    return this.report;
  }

  /** Emit, once, a `journal-corrupt` alarm per damaged segment recovery found (call after attaching listeners). */
  raiseRecoveryAlarms(): void {
    const pending = this.recoveryAlarmsPending;
    this.recoveryAlarmsPending = [];
    for (const a of pending) this.raise(a);
  }

  health(): JournalHealth {
    if (this.closed || this.closing) return { writable: false, state: 'closed', detail: 'journal closed' };
    if (this.down) {
      return { writable: false, state: this.down.reason, sinceMs: this.down.sinceMs, detail: `${this.down.detail}; probing every ${this.probeDelay()} ms at most (${this.probeFailures} probes failed)` };
    }
    if (this.quotaFull) return { writable: false, state: 'disk-full', detail: `journal quota of ${this.o.maxBytes} bytes reached (${this.upload.backlog} records awaiting upload)` };
    const tail = this.segments.at(-1);
    const rot = this.rotateFailuresInRow ? `; ${this.rotateFailuresInRow} attempts to start the next segment failed, writing on` : '';
    return { writable: true, state: 'ok', detail: `${this.o.dir}: writing ${tail ? basename(tail.path) : '-'}${rot}; ${this.upload.backlog} records awaiting upload` };
  }

  /** The one place alarms leave the journal. */
  private raise(a: Alarm): void {
    this.emit('alarm', a.alarm, alarmText(a));
  }

  private async recover(): Promise<void> {
    const r = await recoverJournal(this.o.dir, this.o.memoryRecords, (o, msg) => this.log.warn(o, msg));
    this.report = r.report;
    this.recoveryAlarmsPending = recoveryAlarms(r.report);
    this.segments = r.segments;
    this.totalBytes = r.segments.reduce((a, s) => a + s.bytes, 0);
    this.upload.restore(r);
    this.reservation = new SeqReservation(this.o.dir, this.o.reserveBlock, this.log, r.reservedThrough);
    this.nextSeq = r.nextSeq;
    if (r.report.tornBytesCut > 0) this.counters.tornTailsDropped++;
    this.counters.bytesDropped += r.report.tornBytesCut;
    this.tailAppendable = r.tailAppendable;
    this.tailClosed = r.tailClosed;
    try {
      await this.openWorking(r.tailAppendable);
    } catch (e) {
      this.fail(e as Error);
    }
    if (!this.down) this.reservation.ahead(this.nextSeq - 1);
  }

  /** Make the last segment the working one (it takes the next seq), or start a new one. */
  private async openWorking(tailAppendable: boolean): Promise<void> {
    const tail = this.segments.at(-1);
    if (tailAppendable && tail) {
      const fh = await io('open', tail.path, () => open(tail.path, 'r+'));
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
      await this.rotate(this.nextSeq);
    }
  }

  /** Rewrite a segment's header (both slots) and make it durable; closed: its mark is exact. */
  private async writeHeader(fh: FileHandle, seg: Segment, closed: boolean, rotated = false): Promise<void> {
    const h = encodeHeader({ firstSeq: seg.firstSeq, hwm: Math.max(seg.lastSeq, seg.mark ?? 0), size: seg.fileSize, knownLost: seg.knownLost, closed, rotated });
    await io('write header of', seg.path, () => writeFully(fh, h, 0));
    await io('fdatasync', seg.path, () => fh.datasync());
  }

  /**
   * Start a segment whose first record will be `firstSeq`: created sparse at its full size and durable
   * before the old handle is closed; then the previous one is closed with its exact mark (best effort).
   */
  private async rotate(firstSeq: number): Promise<void> {
    const path = join(this.o.dir, segName(firstSeq));
    const size = Math.max(SEGMENT_HEADER_BYTES, this.o.segmentBytes);
    const seg: Segment = { firstSeq, lastSeq: firstSeq - 1, path, bytes: SEGMENT_HEADER_BYTES, fileSize: size, headered: true, knownLost: 0, unsyncedDir: true };
    let fh: FileHandle | undefined;
    try {
      fh = await io('create', path, () => open(path, 'wx')).catch(async (e: JournalIoError) => {
        // Left over from a failed attempt (its removal failed too): only an empty one may be taken over.
        if (e.code !== 'EEXIST' || scanSegment(new Uint8Array(await readFile(path)), firstSeq).records.length > 0) throw e;
        return io('create', path, () => open(path, 'w'));
      });
      const h = fh;
      // Header and size reach the disk with the first commit's fdatasync, the directory entry with a
      // directory fsync run beside it (commit()): starting a segment costs no fsync of its own.
      await io('write header of', path, () => writeFully(h, encodeHeader({ firstSeq, hwm: firstSeq - 1, size, knownLost: 0, closed: false }), 0));
      await io('size', path, () => h.truncate(size));
    } catch (e) {
      await fh?.close().catch(() => {});
      await unlink(path).catch(() => {});
      throw e;
    }
    const prev = this.segments.at(-1);
    const old = this.fh;
    this.fh = fh;
    this.segments.push(seg);
    this.totalBytes += SEGMENT_HEADER_BYTES;
    // The previous one is closed with its mark ("the next was started") once the new one's directory
    // entry is durable (its first commit), in the background; then its handle is released.
    this.releasePrevious(false);
    this.previous = prev ? { seg: prev, fh: old } : undefined;
  }

  /** Close the previous segment with its mark (when `rotated`: the next one is known durable), then release it. */
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

  append(entry: JournalEntry): Promise<number> {
    if (this.closed || this.closing) return Promise.reject(new JournalUnavailableError('closed', 'journal is closed'));
    if (this.down) {
      this.counters.rejectedAppends++;
      return Promise.reject(new JournalUnavailableError(this.down.reason, `journal cannot write: ${this.down.detail}`));
    }
    const seq = this.nextSeq;
    let bytes: Uint8Array;
    try {
      bytes = encodeJournalRecord(seq, entry);
    } catch (e) {
      return Promise.reject(e as Error);
    }
    if (this.totalBytes + this.pendingBytes() + bytes.byteLength > this.o.maxBytes) {
      this.counters.rejectedAppends++;
      this.quotaNeed = bytes.byteLength;
      if (!this.quotaFull) {
        this.quotaFull = true;
        this.alarmDown({ alarm: 'journal-disk-full', dir: this.o.dir, detail: `journal quota of ${this.o.maxBytes} bytes reached (${this.upload.backlog} records awaiting upload)` });
      }
      return Promise.reject(new JournalUnavailableError('disk-full', 'journal full: cannot make the record durable'));
    }
    this.nextSeq++;
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ bytes, entry, seq, resolve, reject, done: false });
      this.counters.appended++;
      if (!this.flushing) this.flushing = this.flushLoop();
    });
  }

  private pendingBytes(): number {
    let n = 0;
    for (const p of this.queue) n += p.bytes.byteLength;
    return n;
  }

  /** Group commit: everything queued while the previous fsync ran goes out in one write + one fsync. */
  private async flushLoop(): Promise<void> {
    // Let the appends of this tick join the batch.
    await new Promise<void>((r) => setImmediate(r));
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        await this.commit(batch);
      } catch (e) {
        this.fail(e as Error, batch);
        break;
      }
      for (const p of batch) settle(p, p.seq);
      this.quotaCheck();
      this.maybeOk();
      // After the batch settled: a rotation that fails costs nothing but a retry later.
      await this.maybeRotate();
      if (!this.down) this.reservation.ahead(this.nextSeq - 1);
    }
    this.flushing = undefined;
  }

  /** Write a batch at the durable end, then the header mark, then one fdatasync. Throws JournalIoError. */
  private async commit(batch: Pending[]): Promise<void> {
    const seg = this.segments[this.segments.length - 1];
    const fh = this.fh;
    if (!fh || this.needsHeal) throw new JournalIoError('write', seg?.path ?? this.o.dir, 'EBADF', new Error('no working segment'));
    const last = batch[batch.length - 1].seq;
    await this.reservation.ensure(last);
    const want = batch.reduce((a, p) => a + p.bytes.byteLength, 0);
    // From here on, anything past the durable end is cut again if what follows fails.
    this.needsHeal = true;
    const { bytesWritten } = await io('write', seg.path, () => fh.writev(batch.map((p) => p.bytes), seg.bytes));
    if (bytesWritten !== want) throw new JournalIoError('write', seg.path, 'ENOSPC', new Error(`short write ${bytesWritten} of ${want} bytes`));
    const t0 = performance.now();
    await Promise.all([io('fdatasync', seg.path, () => fh.datasync()), this.syncDirFor(seg)]);
    const ms = performance.now() - t0;
    this.needsHeal = false;
    this.counters.fsyncs++;
    this.counters.fsyncMsTotal += ms;
    this.counters.lastFsyncMs = ms;
    if (ms > this.counters.fsyncMsMax) this.counters.fsyncMsMax = ms;
    this.emit('fsync', ms);
    seg.bytes += want;
    seg.fileSize = Math.max(seg.fileSize, seg.bytes);
    seg.lastSeq = last;
    this.totalBytes += want;
    this.upload.add(batch);
  }

  /**
   * A commit (or opening a segment) failed: reject the batch and everything queued behind it, each once.
   * Their seqs are free again: nothing was acted on them, none was uploaded, and heal() cuts whatever of
   * them reached the file before anything else is written. Appends are refused until a probe succeeds.
   */
  private fail(e: Error, batch: Pending[] = []): void {
    const ioe = asIoError(e, 'write', this.o.dir);
    const rejected = [...batch, ...this.queue];
    this.queue = [];
    const tail = this.segments.at(-1);
    if (this.fh && tail) this.nextSeq = tail.lastSeq + 1;
    this.counters.rejectedAppends += rejected.length;
    if (batch.length) this.counters.writeFailures++;
    const full = FULL.has(ioe.code ?? '');
    const reason = full ? 'disk-full' : 'io-error';
    if (!this.down) {
      this.down = { reason, detail: ioe.message, sinceMs: Date.now() };
      this.log.error({ dir: this.o.dir, err: ioe.message, code: ioe.code }, full ? 'journal full' : 'journal write failed');
      this.alarmDown(full ? { alarm: 'journal-disk-full', dir: this.o.dir, detail: ioe.message } : { alarm: 'journal-io-error', file: ioe.file, code: ioe.code, detail: ioe.message });
    }
    const err = new JournalUnavailableError(reason, `journal write failed: ${ioe.message}`);
    for (const p of rejected) settle(p, err);
    this.scheduleProbe();
  }

  private alarmDown(a: Alarm): void {
    if (this.alarmed) return;
    this.alarmed = true;
    this.raise(a);
  }

  private maybeOk(): void {
    if (!this.alarmed || this.down || this.quotaFull) return;
    this.alarmed = false;
    this.raise({ alarm: 'journal-ok' });
  }

  /** Cut the working segment back to its durable end and its header back to its durable mark (or open one). */
  private async heal(): Promise<void> {
    if (!this.fh) {
      await this.openWorking(this.tailAppendable);
      this.needsHeal = false;
      return;
    }
    const seg = this.segments[this.segments.length - 1];
    const fh = this.fh;
    // Down to the durable end, then back to the file's size as zeros (a hole: no space needed).
    await io('truncate', seg.path, () => fh.truncate(seg.bytes));
    if (seg.fileSize > seg.bytes) await io('truncate', seg.path, () => fh.truncate(seg.fileSize));
    await Promise.all([io('fdatasync', seg.path, () => fh.datasync()), this.syncDirFor(seg)]);
    this.needsHeal = false;
  }

  /** A new segment's directory entry is made durable with its first commit (once). */
  private async syncDirFor(seg: Segment): Promise<void> {
    if (!seg.unsyncedDir) return;
    await io('fsync directory of', seg.path, () => syncDir(this.o.dir));
    seg.unsyncedDir = false;
    this.releasePrevious(true);
  }

  private probeDelay(): number {
    return Math.min(this.o.probeMaxMs, this.o.probeMinMs * 2 ** Math.min(16, this.probeFailures));
  }

  private scheduleProbe(): void {
    if (this.closed || this.closing || this.probeTimer || this.probing) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      this.probing = this.probe().finally(() => (this.probing = undefined));
    }, this.probeDelay());
    this.probeTimer.unref();
  }

  /** Heal, then write and fsync a probe file: when that works the journal is writable again. */
  private async probe(): Promise<void> {
    if (this.closed || this.closing || !this.down) return;
    this.counters.probes++;
    const path = join(this.o.dir, 'probe.tmp');
    try {
      await this.heal();
      const fh = await io('create', path, () => open(path, 'w'));
      try {
        await io('write', path, () => writeFully(fh, new Uint8Array(PROBE_BYTES), 0));
        await io('fdatasync', path, () => fh.datasync());
      } finally {
        await fh.close().catch(() => {});
        await unlink(path).catch(() => {});
      }
    } catch (e) {
      this.probeFailures++;
      const ioe = asIoError(e, 'probe', path);
      if (this.down) this.down = { ...this.down, reason: FULL.has(ioe.code ?? '') ? 'disk-full' : 'io-error', detail: ioe.message };
      this.log.debug({ err: (e as Error).message, failures: this.probeFailures }, 'journal probe failed');
      this.probing = undefined;
      this.scheduleProbe();
      return;
    }
    this.log.info({ dir: this.o.dir, after: this.probeFailures + 1 }, 'journal writable again');
    this.down = undefined;
    this.probeFailures = 0;
    this.maybeOk();
  }

  /** Start the next segment when this one is full, unless a recent attempt failed (then keep writing here). */
  private async maybeRotate(): Promise<void> {
    const seg = this.segments[this.segments.length - 1];
    if (seg.bytes < this.o.segmentBytes || Date.now() < this.rotateRetryAt || this.down) return;
    try {
      await this.rotate(seg.lastSeq + 1);
      if (this.rotateFailuresInRow) this.log.info({ after: this.rotateFailuresInRow }, 'journal: next segment started');
      this.rotateFailuresInRow = 0;
    } catch (e) {
      this.counters.rotationFailures++;
      this.rotateFailuresInRow++;
      this.rotateRetryAt = Date.now() + Math.min(this.o.probeMaxMs, this.o.probeMinMs * 2 ** Math.min(16, this.rotateFailuresInRow - 1));
      const ioe = e as JournalIoError;
      this.log.warn({ err: ioe.message, failures: this.rotateFailuresInRow }, 'journal: could not start the next segment, writing on in the current one');
      if (this.rotateFailuresInRow === 1) {
        this.raise({ alarm: 'journal-io-error', file: ioe.file ?? seg.path, code: ioe.code, detail: `${ioe.message}; still writing to ${basename(seg.path)}` });
      }
    }
  }

  private quotaCheck(): void {
    if (this.quotaFull && this.totalBytes + this.pendingBytes() + this.quotaNeed <= this.o.maxBytes) this.quotaFull = false;
  }

  /** Delete closed segments whose every record the back office has acknowledged (damaged copies stay). */
  private async trim(through: number): Promise<void> {
    while (this.segments.length > 1 && this.segments[0].lastSeq <= through) {
      const s = this.segments.shift()!;
      this.totalBytes -= s.bytes;
      await unlink(s.path).catch(() => {});
    }
    this.quotaCheck();
    this.maybeOk();
  }

  async close(): Promise<void> {
    if (this.closed || this.closing) return;
    this.closing = true;
    await this.flushing;
    this.closed = true;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    await this.probing;
    await this.upload.stop();
    await this.reservation.close();
    // A clean close leaves the exact marks (the next open trusts them even if the end is damaged later).
    const tail = this.segments.at(-1);
    const durable = tail !== undefined && (await this.syncDirFor(tail).then(() => true, () => false));
    this.releasePrevious(durable);
    await this.sealing;
    if (this.fh && tail && durable && !this.down && !this.needsHeal) {
      await this.seal(tail, this.fh, false).catch((e: Error) => this.log.warn({ err: e.message }, 'journal: could not close the segment with its mark'));
    }
    await this.fh?.close().catch(() => {});
    this.fh = undefined;
  }
}

function settle(p: Pending, r: number | Error): void {
  if (p.done) return;
  p.done = true;
  if (typeof r === 'number') p.resolve(r);
  else p.reject(r);
}

const noop = () => {};
const quietLog = { warn: noop, error: noop, info: noop, debug: noop } as unknown as Logger;
