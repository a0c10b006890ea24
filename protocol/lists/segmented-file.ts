// The segmented list file (`lists.seg`): the gate's own copy of its lists, 2^k snapshot segments
// behind a 64-byte header and a directory, so a reader can check the whole layout from a few kB and
// then read segment bodies lazily. Layout only: encode the header and directory, decode and check
// them, check a segment against its directory entry. Reading and writing the file is the store's
// (firmware/lists/segmented-lists.ts). Pure: node:crypto for SHA-256 only. Byte table: protocol/README.md,
// "Segmented list file".

import { createHash } from 'node:crypto';
import { HEADER_BYTES, MAX_SKIP_BITS, readSnapshotHeader, type ListFormatError, type SnapshotHeader } from './header.js';
import { sameBytes } from './signature.js';
import { SnapshotView } from './snapshot.js';

export const SEGMENTED_MAGIC = [0x47, 0x4c, 0x53, 0x47]; // "GLSG"
export const SEGMENTED_FORMAT_VERSION = 1;
export const SEGMENTED_HEADER_BYTES = 64;
export const DIRECTORY_ENTRY_BYTES = 48;

/** What the file header says (and what a writer puts there). */
export interface SegmentedFileMeta {
  version: number;
  publishedAtMs: number;
  /** k: the file holds 2^k segments; segment s holds every entry whose code's top k bits equal s. */
  segmentBits: number;
  /** Entries in all segments. */
  entries: number;
}

/** Where each segment sits, from a checked directory. */
export interface SegmentedDirectory {
  offs: number[];
  lens: number[];
  /** SHA-256 of each segment's 256-byte header. */
  headerHashes: Uint8Array[];
  /** The byte after the last segment. */
  end: number;
}

/** A refusal: the list format's codes, plus `bad-digest` (file header, directory or a segment header damaged). */
export type SegmentedFileError = ListFormatError | 'bad-digest';
export type SegmentedChecked<T> = { ok: true; value: T } | { ok: false; error: SegmentedFileError; detail: string };
const bad = <T>(error: SegmentedFileError, detail: string): SegmentedChecked<T> => ({ ok: false, error, detail });

function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** Bytes of the directory of a file with `segmentBits` = k: 48 × 2^k. */
export function directoryBytes(segmentBits: number): number {
  return 2 ** segmentBits * DIRECTORY_ENTRY_BYTES;
}

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * The file header and directory, filled in as the segments are placed in order (each segment after
 * the previous one, the first right after the directory). Write each segment at the offset `place`
 * returns, then `head()` at 0 and `dir` at 64: the header's digest covers the directory, which
 * covers every segment header, so a writer puts them last.
 */
export class SegmentedFileDirectory {
  readonly dir: Uint8Array;
  private readonly dv: DataView;
  private at: number;
  private s = 0;
  constructor(
    private readonly meta: SegmentedFileMeta,
    private readonly count: number,
  ) {
    if (count !== 2 ** meta.segmentBits) throw new Error(`${count} segments for ${meta.segmentBits} bits`);
    this.dir = new Uint8Array(count * DIRECTORY_ENTRY_BYTES);
    this.dv = new DataView(this.dir.buffer);
    this.at = SEGMENTED_HEADER_BYTES + this.dir.byteLength;
  }
  /** Where the next segment goes in the file. */
  place(b: Uint8Array): number {
    if (this.s >= this.count) throw new Error('more segments than the directory holds');
    const at = this.at;
    this.dv.setBigUint64(this.s * DIRECTORY_ENTRY_BYTES, BigInt(at), true);
    this.dv.setBigUint64(this.s * DIRECTORY_ENTRY_BYTES + 8, BigInt(b.byteLength), true);
    this.dir.set(sha256(b.subarray(0, HEADER_BYTES)), this.s * DIRECTORY_ENTRY_BYTES + 16);
    this.at += b.byteLength;
    this.s++;
    return at;
  }
  /** The header (its digest covers the directory, which covers every segment header); written last, at the front. */
  head(): Uint8Array {
    if (this.s !== this.count) throw new Error(`${this.s} segments written, ${this.count} expected`);
    const m = this.meta;
    const head = new Uint8Array(SEGMENTED_HEADER_BYTES);
    const hv = new DataView(head.buffer);
    head.set(SEGMENTED_MAGIC, 0);
    hv.setUint16(4, SEGMENTED_FORMAT_VERSION, true);
    hv.setUint16(6, SEGMENTED_HEADER_BYTES, true);
    hv.setUint32(8, m.version, true);
    hv.setUint8(12, m.segmentBits);
    hv.setBigUint64(16, BigInt(Math.max(0, Math.floor(m.publishedAtMs))), true);
    hv.setBigUint64(24, BigInt(m.entries), true);
    head.set(sha256(head.subarray(0, 32), this.dir), 32);
    return head;
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding and checks, in the order a reader makes them: header, directory (with the header's
// digest), every segment header, the totals; then each segment's bytes as they are read.

/**
 * The 64-byte header of a file of `fileBytes` bytes (`head`: its first 64 bytes, or fewer when the
 * file is shorter). Its digest is checked with the directory (readDirectory).
 */
export function readSegmentedHeader(head: Uint8Array, fileBytes: number): SegmentedChecked<SegmentedFileMeta> {
  if (fileBytes < SEGMENTED_HEADER_BYTES || head.byteLength < SEGMENTED_HEADER_BYTES) return bad('too-short', `${fileBytes} bytes`);
  const hv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (!sameBytes(head.subarray(0, 4), Uint8Array.from(SEGMENTED_MAGIC))) return bad('bad-magic', 'not a segmented list file');
  if (hv.getUint16(4, true) !== SEGMENTED_FORMAT_VERSION || hv.getUint16(6, true) !== SEGMENTED_HEADER_BYTES) return bad('unsupported-format', `format ${hv.getUint16(4, true)}`);
  const version = hv.getUint32(8, true);
  const segmentBits = hv.getUint8(12);
  if (segmentBits > MAX_SKIP_BITS) return bad('bad-layout', `segment bits ${segmentBits}`);
  const publishedAtMs = Number(hv.getBigUint64(16, true));
  const entries = Number(hv.getBigUint64(24, true));
  if (SEGMENTED_HEADER_BYTES + directoryBytes(segmentBits) > fileBytes) return bad('too-short', 'directory cut short');
  return { ok: true, value: { version, publishedAtMs, segmentBits, entries } };
}

/**
 * The directory (`dir`, directoryBytes(k) bytes from offset 64): the header's digest over header bytes
 * 0-31 and the directory, then every entry: segments back to back from the end of the directory, each
 * at least a segment header long, inside the file. The header hashes are views into `dir`.
 */
export function readDirectory(head: Uint8Array, dir: Uint8Array, fileBytes: number): SegmentedChecked<SegmentedDirectory> {
  if (!sameBytes(sha256(head.subarray(0, 32), dir), head.subarray(32, 64))) return bad('bad-digest', 'header or directory damaged');
  const dv = new DataView(dir.buffer, dir.byteOffset, dir.byteLength);
  const n = dir.byteLength / DIRECTORY_ENTRY_BYTES;
  const d: SegmentedDirectory = { offs: [], lens: [], headerHashes: [], end: SEGMENTED_HEADER_BYTES + dir.byteLength };
  for (let s = 0; s < n; s++) {
    const e = s * DIRECTORY_ENTRY_BYTES;
    const off = Number(dv.getBigUint64(e, true)), len = Number(dv.getBigUint64(e + 8, true));
    if (off !== d.end || len < HEADER_BYTES || off + len > fileBytes) return bad('bad-layout', `segment ${s} outside the file`);
    d.end = off + len;
    d.offs.push(off);
    d.lens.push(len);
    d.headerHashes.push(dir.subarray(e + 16, e + 48));
  }
  return { ok: true, value: d };
}

/** Segment s's 256-byte header against its directory entry: hash, a sound snapshot header, skip bits = k, length. */
export function checkSegmentHeader(head: Uint8Array, d: SegmentedDirectory, s: number, segmentBits: number): SegmentedChecked<SnapshotHeader> {
  if (!sameBytes(sha256(head.subarray(0, HEADER_BYTES)), d.headerHashes[s])) return bad('bad-digest', `segment ${s} header damaged`);
  const h = readSnapshotHeader(head);
  if (!h.ok) return bad(h.error, `segment ${s}: ${h.detail}`);
  if (h.value.skipBits !== segmentBits || h.value.bodyBytes + HEADER_BYTES !== d.lens[s]) return bad('bad-layout', `segment ${s} does not fit the directory`);
  return h;
}

/** After every segment header: no bytes after the last segment, and the segments' entries add up to the header's. */
export function checkSegmentedTotals(meta: SegmentedFileMeta, d: SegmentedDirectory, fileBytes: number, entriesInSegments: number): SegmentedChecked<true> {
  if (d.end !== fileBytes) return bad('bad-layout', `${fileBytes - d.end} bytes after the last segment`);
  if (entriesInSegments !== meta.entries) return bad('bad-layout', `segments hold ${entriesInSegments} entries, header says ${meta.entries}`);
  return { ok: true, value: true };
}

/**
 * A segment's bytes (8-aligned) against its directory entry's header hash: header hash, header, length,
 * skip bits, bounds. Not its body SHA-256 (verifySnapshot with keys = null, in slices, does that).
 */
export function checkSegment(b: Uint8Array, headerHash: Uint8Array, segmentBits: number): SegmentedChecked<SnapshotView> {
  if (!sameBytes(sha256(b.subarray(0, HEADER_BYTES)), headerHash)) return bad('bad-digest', 'header does not match the directory');
  const h = readSnapshotHeader(b);
  if (!h.ok) return h;
  if (h.value.skipBits !== segmentBits || h.value.bodyBytes + HEADER_BYTES !== b.byteLength) return bad('bad-layout', 'does not fit the directory');
  const v = new SnapshotView(b, h.value);
  const ok = v.checkBounds();
  return ok.ok ? { ok: true, value: v } : ok;
}
