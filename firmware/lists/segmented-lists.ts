// Why this file is long: one store — segments, the overlay that serves a delta at once, the pointer swaps
// after a merge and the lazy open share one set of buffers; the byte layout itself is in protocol/lists/.
// The gate's lists at metro scale, held as segments: 2^k small snapshots (protocol/lists/),
// segment s holding every key whose 32-bit code starts with the k bits of s. Why segments: a delta
// can then be merged one segment at a time, so applying it needs the list plus one segment of
// memory, not two whole lists (50 M entries are ~620 MB; a gate box has 1 GB).
//
// Applying a delta is atomic for readers: the new version is served at once as the old segments
// plus an overlay (the delta's changes, sorted), and the overlay answers first. The segments are then
// rewritten one by one in the background; a rewritten segment holds exactly what overlay + old
// segment answered, so no reader can see the difference. When all are rewritten the overlay goes.
//
// On disk this is a segmented list file (layout: protocol/lists/segmented-file.ts, byte table in
// protocol/README.md "Segmented list file"), replaced only by write-new + fsync + rename, so a crash
// leaves the old list intact. This file reads and writes it; its bytes and their checks are protocol's.

import { closeSync, openSync, read, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import {
  HEADER_BYTES,
  MAX_SKIP_BITS,
  REMOVED,
  SEGMENTED_HEADER_BYTES,
  SegmentedFileDirectory,
  SnapshotView,
  bindingOf,
  changeSetGen,
  checkSegment,
  checkSegmentHeader,
  checkSegmentedTotals,
  directoryBytes,
  encodeCardKey,
  hashKey,
  isBlockedByte,
  mergeSorted,
  readDirectory,
  readSegmentedHeader,
  readSnapshotHeader,
  segmentRange,
  verifySnapshotGen,
  wholeRange,
  runToEnd,
  ListBuilder,
  type Checked,
  type ListChange,
  type SegmentedChecked,
  type SegmentedFileMeta,
} from '../../protocol/lists/index.js';
import { replaceFile, replaceFileBlocking, writeFully, writeFullySync } from '../platform/atomic-file.js';
import { ListFileError } from './stored-lists.js';
import { runSliced } from './run-sliced.js';
import type { Allowlist, BindingStatus, Denylist, ListSnapshot } from './list-provider.js';

/**
 * About 256 k entries per segment (3 MB; 50 M entries make 256 segments). Each segment merged in is a
 * dozen small objects on the lane's heap, which its next scavenges must copy; at 64 k entries per
 * segment they made the lane's scavenges 0.4-0.9 ms during a 50 M merge instead of 0.2-0.3.
 * The merge itself yields within a segment (mergeSorted), so the size does not bound a slice.
 */
export function segmentBitsFor(entries: number): number {
  let b = 0;
  while (b < MAX_SKIP_BITS && 2 ** b * 262_144 < entries) b++;
  return b;
}

/**
 * Segment memory is shared (SharedArrayBuffer) so the merge worker (firmware/lists/merge-worker.ts)
 * reads the segments the gate serves from, and hands back new ones, without copying a byte.
 */
export function sharedBytes(n: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(n));
}

/** Room to grow: a segment's buffer is reused for merges until a merge outgrows it. */
export function withSlack(n: number): number {
  return (n + (n >>> 5) + 4096 + 7) & ~7;
}

/**
 * Segment buffers that no version reads any more, kept for the next merges: a delta then rewrites
 * the list inside the memory it already has (no garbage for the collector, no growth in RSS).
 */
export class SpareSegments {
  private readonly free: Uint8Array[] = [];
  constructor(private readonly keep = 8) {}
  get count(): number {
    return this.free.length;
  }
  /** Give back a segment's whole buffer (only once no version can read it). */
  put(bytes: Uint8Array): void {
    if (this.free.length < this.keep) this.free.push(new Uint8Array(bytes.buffer, 0, bytes.buffer.byteLength));
  }
  takeAll(): Uint8Array[] {
    return this.free.splice(0);
  }
  /** n bytes: a spare buffer's start when one is big enough, else a new shared buffer with slack. */
  take = (n: number): Uint8Array => {
    for (let i = 0; i < this.free.length; i++) {
      if (this.free[i].byteLength >= n) return this.free.splice(i, 1)[0].subarray(0, n);
    }
    return new Uint8Array(new SharedArrayBuffer(withSlack(n)), 0, n);
  };
}

export function viewOf(bytes: Uint8Array): SnapshotView {
  const h = readSnapshotHeader(bytes);
  if (!h.ok) throw new Error(`segment: ${h.detail}`);
  return new SnapshotView(bytes, h.value);
}

export class SegmentedLists implements ListSnapshot {
  readonly allowlist: Allowlist;
  readonly denylist: Denylist;
  /** Resolves when the overlay has been merged into the segments (at once when there is none). */
  settled: Promise<void> = Promise.resolve();
  private readonly shift: number;
  private readonly tmp = new Uint32Array(2);
  /** Set when a newer version is made from this one: its segment buffers get reused, so answer as the newer one. */
  private successor: SegmentedLists | undefined;

  /** Owned by this version: the background merge replaces entries in place. Undefined: not read from the file yet. */
  private readonly segs: (SnapshotView | undefined)[];
  private source: SegmentSource | undefined;

  constructor(
    readonly version: number,
    readonly publishedAtMs: number,
    readonly segmentBits: number,
    segments: (SnapshotView | undefined)[],
    private overlay: SnapshotView | null,
    private readonly entries: number,
    /** True when the version this one was made from answers through this one (its buffers may be reused). */
    readonly predecessorRetired = false,
  ) {
    if (segments.length !== 2 ** segmentBits) throw new Error(`${segments.length} segments for ${segmentBits} bits`);
    this.segs = segments;
    this.shift = segmentBits === 0 ? -1 : 32 - segmentBits;
    const self = this;
    this.allowlist = {
      lookup: (key: string): BindingStatus | undefined => bindingOf(this.statusByte(key)),
      get size() {
        return self.entries;
      },
    };
    this.denylist = { isBlocked: (key: string) => isBlockedByte(this.statusByte(key)) };
  }

  get size(): number {
    return this.entries;
  }

  /** Every segment, once all are in memory (after `settled`). */
  get segments(): readonly SnapshotView[] {
    if (this.source) throw new Error('segments still being read from the list file (await settled)');
    return this.segs as SnapshotView[];
  }

  /** Why a segment read from the file was refused (it then answers "no entry"), if one was. */
  get damage(): string | undefined {
    return this.source?.damage ?? this.damaged;
  }
  private damaged: string | undefined;

  /** True while a delta is being merged into the segments. */
  get merging(): boolean {
    return this.overlay !== null;
  }

  /** The status byte of a key (protocol/lists/keys.ts; 0 = no entry). */
  statusByte(key: string): number {
    if (this.successor !== undefined) return this.successor.statusByte(key);
    const t = this.tmp;
    const card = key.charCodeAt(0) === 99 /* c */ && encodeCardKey(key, t);
    if (!card) hashKey(key, t);
    return this.statusAt(card, t[0], t[1], key);
  }

  /** Status byte by code: a card's (H, L), or another key's hash (H, L) plus the key itself. */
  statusAt(card: boolean, H: number, L: number, key: string): number {
    if (this.successor !== undefined) return this.successor.statusAt(card, H, L, key);
    const ov = this.overlay;
    if (ov !== null) {
      const i = card ? ov.findCard(H, L) : ov.findGeneric(H, L, key);
      if (i >= 0) {
        const s = card ? ov.cSt[i] : ov.gSt[i];
        return s === REMOVED ? 0 : s;
      }
    }
    const i = this.shift < 0 ? 0 : H >>> this.shift;
    const seg = this.segs[i] ?? this.readNow(i);
    return card ? seg.cardStatus(H, L) : seg.genericStatus(H, L, key);
  }

  /** Make `next` (built from this version) the one this object answers for from now on. */
  retireInto(next: SegmentedLists): void {
    this.successor = next;
  }

  /** The overlay's bytes while a delta is being merged (for the merge worker). */
  get overlayBytes(): Uint8Array | null {
    return this.overlay?.bytes ?? null;
  }

  /** Merge the overlay into the segments, one segment per step; readers keep seeing the same answers. */
  *mergeOverlayGen(sliceEntries = 512, spares: SpareSegments = new SpareSegments(), onSegment?: (s: number, bytes: Uint8Array) => void): Generator<void, void, void> {
    const ov = this.overlay;
    if (ov === null) return;
    const segs = this.segments;
    for (let s = 0; s < segs.length; s++) {
      const r = segmentRange(ov, s, this.segmentBits);
      if (r.c0 === r.c1 && r.g0 === r.g1) continue;
      const seg = segs[s];
      const bytes = yield* mergeSorted(seg, wholeRange(seg), ov, r, { version: this.version, publishedAtMs: this.publishedAtMs, skipBits: this.segmentBits }, sliceEntries, spares.take);
      this.segs[s] = viewOf(bytes);
      if (onSegment) onSegment(s, bytes);
      else if (this.predecessorRetired) spares.put(seg.bytes);
      yield;
    }
    this.overlay = null;
  }

  /**
   * Put in a segment merged elsewhere (the merge worker) from this version's overlay and the segment it
   * replaces; answers do not change. `finishMerge` then drops the overlay.
   */
  replaceSegment(s: number, bytes: Uint8Array): Uint8Array {
    const v = viewOf(bytes);
    if (v.header.skipBits !== this.segmentBits || v.header.version !== this.version) throw new Error(`segment ${s} does not belong to version ${this.version}`);
    const old = this.segments[s].bytes;
    this.segs[s] = v;
    return old;
  }

  finishMerge(): void {
    this.overlay = null;
  }

  /** Serve from a segmented list file whose segments are read on first use or by `readRest`. */
  attachFile(source: SegmentSource): void {
    this.source = source;
  }

  /** A segment a lookup needs before the background reader got to it: read it now (well under a millisecond from the page cache). */
  private readNow(s: number): SnapshotView {
    const src = this.source!;
    const b = src.spares.take(src.lens[s]);
    let got = 0;
    try {
      while (got < b.byteLength) {
        const n = readSync(src.fd, b, got, b.byteLength - got, src.offs[s] + got);
        if (n === 0) break;
        got += n;
      }
    } catch (e) {
      return this.install(s, b, `read failed: ${(e as Error).message}`);
    }
    return this.install(s, b, got === b.byteLength ? undefined : 'file ends inside it');
  }

  private install(s: number, b: Uint8Array, failure?: string): SnapshotView {
    const src = this.source!;
    const v = failure ?? checkSegmentOrWhy(b, src, s);
    let view: SnapshotView;
    if (typeof v === 'string') {
      // Refused: the segment answers "no entry" (a refusal, never a wrong opening) and the damage is reported.
      src.damage ??= `segment ${s}: ${v}`;
      src.spares.put(b);
      view = emptySegment(this.segmentBits);
    } else view = v;
    this.segs[s] = view;
    src.raw[s] = typeof v === 'string' ? undefined : b;
    return view;
  }

  /** Read every segment not read yet (async reads), then check each one's SHA-256 in time slices. */
  async readRest(sliceMs: number): Promise<Checked<true>> {
    const src = this.source;
    if (!src) return { ok: true, value: true };
    try {
      for (let s = 0; s < this.segs.length; s++) {
        if (this.segs[s]) continue;
        const b = src.spares.take(src.lens[s]);
        let got = 0;
        let failure: string | undefined;
        try {
          while (got < b.byteLength) {
            const { bytesRead } = await readAsync(src.fd, b, got, b.byteLength - got, src.offs[s] + got);
            if (bytesRead === 0) break;
            got += bytesRead;
          }
          if (got < b.byteLength) failure = 'file ends inside it';
        } catch (e) {
          failure = `read failed: ${(e as Error).message}`;
        }
        if (this.segs[s]) src.spares.put(b); // a lookup read it meanwhile
        else this.install(s, b, failure);
      }
      const raw = src.raw;
      const check = await runSliced(
        (function* (): Generator<void, Checked<true>, void> {
          for (let s = 0; s < raw.length; s++) {
            const b = raw[s];
            if (!b) continue;
            const r = yield* verifySnapshotGen(b, null);
            if (!r.ok) return { ok: false, error: r.error, detail: `segment ${s}: ${r.detail}` };
          }
          return { ok: true, value: true };
        })(),
        sliceMs,
      );
      if (!check.ok) {
        src.damage ??= check.detail;
        return check;
      }
      if (src.damage) return { ok: false, error: 'bad-layout', detail: src.damage };
      return check;
    } finally {
      this.damaged = src.damage;
      this.source = undefined;
      closeSync(src.fd);
    }
  }
}

/** Version 0: nothing synced yet (every credential unregistered). */
export function emptySegmentedLists(): SegmentedLists {
  const seg = viewOf(runToEnd(new ListBuilder(16).buildGen({ version: 0, publishedAtMs: 0 }, sharedBytes)));
  return new SegmentedLists(0, 0, 0, [seg], null, 0);
}

/** Cut a whole verified snapshot into segments (a copy: the snapshot's bytes can be dropped after). */
export function* splitSnapshotGen(view: SnapshotView, segmentBits = segmentBitsFor(view.size), sliceEntries = 512): Generator<void, SegmentedLists, void> {
  const h = view.header;
  if (h.skipBits !== 0) throw new Error('splitSnapshot: already a segment');
  const segs: SnapshotView[] = [];
  for (let s = 0; s < 2 ** segmentBits; s++) {
    const r = segmentRange(view, s, segmentBits);
    segs.push(viewOf(yield* mergeSorted(view, r, null, r, { version: h.version, publishedAtMs: h.publishedAtMs, skipBits: segmentBits }, sliceEntries, sharedBytes)));
    yield;
  }
  return new SegmentedLists(h.version, h.publishedAtMs, segmentBits, segs, null, view.size);
}

/**
 * The next version: `old` with `changes` applied (status 0 removes). Served at once through an
 * overlay; call `settled` (or let writeListFile wait for it) for the segments to catch up. `old` is
 * not touched and stays valid for readers that still hold it.
 */
export function* applyChangesGen(
  old: SegmentedLists,
  changes: readonly ListChange[],
  meta: { version: number; publishedAtMs: number },
  sliceEntries = 512,
  retire = true,
): Generator<void, SegmentedLists, void> {
  const ov = yield* changeSetGen(changes, sliceEntries, sharedBytes);
  return yield* applyChangeSetGen(old, ov, meta, sliceEntries, retire);
}

/** applyChangesGen with the change set already built (protocol/lists/ changeSetGen or changeSetFromDeltasGen, in shared memory). */
export function* applyChangeSetGen(
  old: SegmentedLists,
  ov: SnapshotView,
  meta: { version: number; publishedAtMs: number },
  sliceEntries = 512,
  retire = true,
): Generator<void, SegmentedLists, void> {
  if (old.merging) throw new Error('applyChanges: the previous delta is still being merged (await settled first)');
  // The new entry count: each distinct change either adds, replaces or removes.
  let entries = old.size;
  const count = (present: boolean, st: number) => {
    if (st === REMOVED) entries -= present ? 1 : 0;
    else entries += present ? 0 : 1;
  };
  for (let i = 0; i < ov.header.cardCount; i++) {
    count(old.statusAt(true, ov.cHi[i], ov.cLo[i], '') !== 0, ov.cSt[i]);
    if (i % sliceEntries === 0) yield;
  }
  for (let i = 0; i < ov.header.genCount; i++) {
    count(old.statusAt(false, ov.gHi[i], ov.gLo[i], ov.keyAt(i)) !== 0, ov.gSt[i]);
    if (i % sliceEntries === 0) yield;
  }
  const next = new SegmentedLists(meta.version, meta.publishedAtMs, old.segmentBits, old.segments.slice(), ov, entries, retire);
  if (retire) old.retireInto(next);
  return next;
}

// ---------------------------------------------------------------------------------------------
// The segmented list file: reading and writing it (its layout: protocol/lists/segmented-file.ts)

/** Write `lists` (after its merge settles) to `path`: new file, fsync, rename, fsync the directory. */
export async function writeListFile(path: string, lists: SegmentedLists): Promise<void> {
  await lists.settled;
  const segs = lists.segments.slice();
  const meta = { version: lists.version, publishedAtMs: lists.publishedAtMs, segmentBits: lists.segmentBits, entries: lists.size };
  await writeSegmentedFile(path, meta, segs.length, segs.map((v) => v.bytes));
}

/**
 * Write a segmented list file from its segments in order (each consumed before the next is asked
 * for, so a producer may reuse one buffer): new file, fsync, rename over `path`, fsync the directory.
 * `blocking`: write with blocking calls on this thread (the merge worker does: libuv's pool threads
 * woke beside the lane's event loop and preempted it for 1.2 ms a write, traced).
 */
export async function writeSegmentedFile(
  path: string,
  meta: SegmentedFileMeta,
  count: number,
  segments: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  blocking = false,
): Promise<void> {
  const d = new SegmentedFileDirectory(meta, count);
  if (blocking) {
    return replaceFileBlocking(path, async (fd) => {
      for await (const b of segments) writeFullySync(fd, b, d.place(b));
      writeFullySync(fd, d.head(), 0);
      writeFullySync(fd, d.dir, SEGMENTED_HEADER_BYTES);
    });
  }
  await replaceFile(path, async (fh) => {
    for await (const b of segments) await writeFully(fh, b, d.place(b));
    await writeFully(fh, d.head(), 0);
    await writeFully(fh, d.dir, SEGMENTED_HEADER_BYTES);
  });
}

async function readAll(fh: FileHandle, into: Uint8Array, position: number, path: string): Promise<void> {
  let at = 0;
  while (at < into.byteLength) {
    const { bytesRead } = await fh.read(into, at, into.byteLength - at, position + at);
    if (bytesRead === 0) throw new ListFileError('list-file-short', `${path}: ends inside a segment`);
    at += bytesRead;
  }
}

const bad = (code: string, path: string, detail: string) => new ListFileError(`list-file-${code}`, `${path}: ${detail}`);
/** The value of a check of the file's layout, or its refusal thrown as a ListFileError naming the file. */
function orThrow<T>(c: SegmentedChecked<T>, path: string): T {
  if (!c.ok) throw bad(c.error, path, c.detail);
  return c.value;
}
const readAsync = promisify(read);

/** Where a list's segments come from until they are all in memory. */
export interface SegmentSource {
  fd: number;
  bits: number;
  offs: number[];
  lens: number[];
  /** SHA-256 of each segment's 256-byte header, from the checked directory. */
  headerHashes: Uint8Array[];
  spares: SpareSegments;
  /** Buffers read, for the background SHA-256 check. */
  raw: (Uint8Array | undefined)[];
  damage?: string;
}

/** A segment's bytes against its directory entry (protocol/lists/segmented-file.ts): its view, or why not. */
function checkSegmentOrWhy(b: Uint8Array, src: SegmentSource, s: number): SnapshotView | string {
  const c = checkSegment(b, src.headerHashes[s], src.bits);
  return c.ok ? c.value : c.detail;
}

/** A segment with no entries (stands in for a refused one; its own buffer, so it can be reused like any). */
function emptySegment(bits: number): SnapshotView {
  const b = runToEnd(new ListBuilder(1).buildGen({ version: 0, publishedAtMs: 0 }, sharedBytes));
  b[38] = bits; // skip bits: header field, outside the digest
  return viewOf(b);
}

/**
 * Open the gate's segmented list file and serve it at once: the header, the directory and every
 * segment's 256-byte header are checked before the first lookup; segment bodies are read in the
 * background (or on first use by a lookup, synchronously), then every segment's SHA-256 is checked
 * in time slices. `lists.settled` resolves when all are read and checked; `verified` says whether
 * they were sound: if not, the refused segments answer "no entry" and the caller must resync.
 * `spares`: buffers to read into (a replaced version's, so installing a list does not need two).
 */
export async function openListFile(path: string, sliceMs = 0.5, spares = new SpareSegments(Infinity)): Promise<{ lists: SegmentedLists; verified: Promise<Checked<true>> }> {
  const fh = await open(path, 'r');
  let fd: number | undefined;
  try {
    const { size } = await fh.stat();
    const head = new Uint8Array(SEGMENTED_HEADER_BYTES);
    if (size >= head.byteLength) await readAll(fh, head, 0, path);
    const meta = orThrow(readSegmentedHeader(head, size), path);
    const { version, publishedAtMs, entries } = meta;
    const bits = meta.segmentBits;
    const n = 2 ** bits;
    const dir = new Uint8Array(directoryBytes(bits));
    await readAll(fh, dir, SEGMENTED_HEADER_BYTES, path);
    // Directory entries first, then every segment header (256 bytes each, read 32 at a time).
    const d = orThrow(readDirectory(head, dir, size), path);
    const src: SegmentSource = { fd: -1, bits, offs: d.offs, lens: d.lens, headerHashes: d.headerHashes, spares, raw: new Array(n) };
    let total = 0;
    const heads = new Uint8Array(Math.min(n, 32) * HEADER_BYTES);
    for (let s0 = 0; s0 < n; s0 += 32) {
      const k = Math.min(32, n - s0);
      await Promise.all(Array.from({ length: k }, (_, j) => readAll(fh, heads.subarray(j * HEADER_BYTES, (j + 1) * HEADER_BYTES), src.offs[s0 + j], path)));
      for (let j = 0; j < k; j++) {
        const sh = orThrow(checkSegmentHeader(heads.subarray(j * HEADER_BYTES, (j + 1) * HEADER_BYTES), d, s0 + j, bits), path);
        total += sh.cardCount + sh.genCount;
      }
    }
    orThrow(checkSegmentedTotals(meta, d, size, total), path);
    fd = openSync(path, 'r');
    src.fd = fd;
    const lists = new SegmentedLists(version, publishedAtMs, bits, new Array(n).fill(undefined), null, entries);
    lists.attachFile(src);
    fd = undefined;
    const verified = lists.readRest(sliceMs);
    lists.settled = verified.then(() => undefined);
    return { lists, verified };
  } finally {
    if (fd !== undefined) closeSync(fd);
    await fh.close();
  }
}

/**
 * Apply changes in time slices: resolves with the new version as soon as its overlay is built (swap
 * it in then); its segments are merged in the background (`settled`). Waits for `old` to settle first.
 */
export async function applyChanges(
  old: SegmentedLists,
  changes: readonly ListChange[],
  meta: { version: number; publishedAtMs: number },
  sliceMs = 0.5,
  spares = new SpareSegments(),
): Promise<SegmentedLists> {
  await old.settled;
  const next = await runSliced(applyChangesGen(old, changes, meta), sliceMs);
  next.settled = runSliced(next.mergeOverlayGen(512, spares), sliceMs);
  return next;
}
