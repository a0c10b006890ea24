// The 256-byte header of snapshots and deltas, the errors every list check returns as values, and the
// snapshot body's column layout. Pure. Byte tables: protocol/README.md, "Header" and "Snapshot body".

export const LIST_FORMAT_VERSION = 1;
export const HEADER_BYTES = 256;
export const SIGNED_BYTES = 192; // the signature covers header bytes 0..191 (which include the body digest)
export const SIG_AT = 192;
export const MAGIC_SNAPSHOT = [0x47, 0x4c, 0x53, 0x4e]; // "GLSN"
export const MAGIC_DELTA = [0x47, 0x4c, 0x44, 0x4c]; // "GLDL"
const MAX_BUCKET_BITS = 26;
export const MAX_SKIP_BITS = 16;

// ---------------------------------------------------------------------------------------------
// Errors as values

export type ListFormatError =
  | 'too-short'
  | 'bad-magic'
  | 'unsupported-format'
  | 'bad-length'
  | 'unknown-key'
  | 'bad-signature'
  | 'bad-checksum'
  | 'bad-layout'
  | 'bad-record';
export type Checked<T> = { ok: true; value: T } | { ok: false; error: ListFormatError; detail: string };
/** A failure as a value (the room's files build every refusal with it). */
export const fail = <T>(error: ListFormatError, detail: string): Checked<T> => ({ ok: false, error, detail });

// ---------------------------------------------------------------------------------------------
// Headers

export interface SnapshotHeader {
  kind: 'snapshot';
  version: number;
  publishedAtMs: number;
  bodyBytes: number;
  cardCount: number;
  cardBits: number;
  genCount: number;
  genBits: number;
  heapBytes: number;
  /** Top bits of every entry's code that are fixed (a segment of a segmented list file); 0 for a whole list. */
  skipBits: number;
  digest: Uint8Array;
  keyId: Uint8Array;
}

export interface DeltaHeader {
  kind: 'delta';
  fromVersion: number;
  toVersion: number;
  publishedAtMs: number;
  bodyBytes: number;
  count: number;
  digest: Uint8Array;
  keyId: Uint8Array;
}

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function magicIs(b: Uint8Array, m: number[]): boolean {
  return b[0] === m[0] && b[1] === m[1] && b[2] === m[2] && b[3] === m[3];
}

export function writeCommon(h: Uint8Array, magic: number[], bodyBytes: number, publishedAtMs: number, digest: Uint8Array): DataView {
  h.set(magic, 0);
  const v = dv(h);
  v.setUint16(4, LIST_FORMAT_VERSION, true);
  v.setUint16(6, HEADER_BYTES, true);
  v.setBigUint64(16, BigInt(Math.max(0, Math.floor(publishedAtMs))), true);
  v.setBigUint64(24, BigInt(bodyBytes), true);
  h.set(digest, 48);
  return v;
}

function readCommon(b: Uint8Array, magic: number[], what: string): Checked<DataView> {
  if (b.byteLength < HEADER_BYTES) return fail('too-short', `${what}: ${b.byteLength} bytes, header needs ${HEADER_BYTES}`);
  if (!magicIs(b, magic)) return fail('bad-magic', `${what}: not a ${what} (magic ${Buffer.from(b.subarray(0, 4)).toString('hex')})`);
  const v = dv(b);
  if (v.getUint16(4, true) !== LIST_FORMAT_VERSION) return fail('unsupported-format', `${what}: format ${v.getUint16(4, true)}, supported ${LIST_FORMAT_VERSION}`);
  if (v.getUint16(6, true) !== HEADER_BYTES) return fail('bad-layout', `${what}: header length ${v.getUint16(6, true)}`);
  return { ok: true, value: v };
}

export function readSnapshotHeader(b: Uint8Array): Checked<SnapshotHeader> {
  const c = readCommon(b, MAGIC_SNAPSHOT, 'snapshot');
  if (!c.ok) return c;
  const v = c.value;
  const h: SnapshotHeader = {
    kind: 'snapshot',
    version: v.getUint32(8, true),
    publishedAtMs: Number(v.getBigUint64(16, true)),
    bodyBytes: Number(v.getBigUint64(24, true)),
    cardCount: v.getUint32(32, true),
    cardBits: v.getUint8(36),
    genBits: v.getUint8(37),
    genCount: v.getUint32(40, true),
    heapBytes: v.getUint32(44, true),
    skipBits: v.getUint8(38),
    digest: b.slice(48, 80),
    keyId: b.slice(80, 88),
  };
  if (h.cardBits > MAX_BUCKET_BITS || h.genBits > MAX_BUCKET_BITS) return fail('bad-layout', 'snapshot: bucket bits out of range');
  if (h.skipBits > MAX_SKIP_BITS) return fail('bad-layout', `snapshot: skip bits ${h.skipBits} out of range`);
  if (snapshotLayout(h).total !== h.bodyBytes) return fail('bad-layout', `snapshot: body length ${h.bodyBytes} does not match its counts`);
  return { ok: true, value: h };
}

export function readDeltaHeader(b: Uint8Array): Checked<DeltaHeader> {
  const c = readCommon(b, MAGIC_DELTA, 'delta');
  if (!c.ok) return c;
  const v = c.value;
  const h: DeltaHeader = {
    kind: 'delta',
    fromVersion: v.getUint32(8, true),
    toVersion: v.getUint32(12, true),
    publishedAtMs: Number(v.getBigUint64(16, true)),
    bodyBytes: Number(v.getBigUint64(24, true)),
    count: v.getUint32(32, true),
    digest: b.slice(48, 80),
    keyId: b.slice(80, 88),
  };
  if (h.toVersion !== h.fromVersion + 1) return fail('bad-layout', `delta: ${h.fromVersion} → ${h.toVersion} is not one step`);
  return { ok: true, value: h };
}

// ---------------------------------------------------------------------------------------------
// Snapshot body layout

const pad8 = (n: number) => (n + 7) & ~7;

export interface SnapshotLayout {
  cHi: number; cLo: number; cBucket: number; cSt: number;
  gHi: number; gLo: number; gOff: number; gBucket: number; gSt: number;
  heap: number; total: number;
}

/** Byte offsets of each column, relative to the body start; every column starts 8-aligned. */
export function snapshotLayout(h: { cardCount: number; cardBits: number; genCount: number; genBits: number; heapBytes: number }): SnapshotLayout {
  const nc = h.cardCount, ng = h.genCount;
  let p = 0;
  const cHi = p; p += pad8(nc * 4);
  const cLo = p; p += pad8(nc * 4);
  const cBucket = p; p += pad8(((1 << h.cardBits) + 1) * 4);
  const cSt = p; p += pad8(nc);
  const gHi = p; p += pad8(ng * 4);
  const gLo = p; p += pad8(ng * 4);
  const gOff = p; p += pad8(ng * 4);
  const gBucket = p; p += pad8(((1 << h.genBits) + 1) * 4);
  const gSt = p; p += pad8(ng);
  const heap = p; p += pad8(h.heapBytes);
  return { cHi, cLo, cBucket, cSt, gHi, gLo, gOff, gBucket, gSt, heap, total: p };
}

/** Bucket bits for n entries: about 8 entries per bucket. */
export function bucketBitsFor(n: number): number {
  let b = 0;
  while (b < MAX_BUCKET_BITS && (1 << b) * 8 < n) b++;
  return b;
}
