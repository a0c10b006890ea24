// Signed list snapshots and deltas: the bytes the back office publishes and the gate stores.
// Pure: no I/O, no timers (node:crypto for hashing and Ed25519 only). Byte tables: protocol/README.md,
// section "List snapshots and deltas".
//
// A snapshot is laid out so the gate can serve lookups straight from the file bytes (typed-array
// views, no parsing, no V8 heap per entry): card numbers are mapped injectively to 64 bits (exact, no
// hash), every other key is kept in full in a key heap behind a 64-bit hash, so a hash collision is
// resolved by comparing the key bytes and a false accept is impossible.

import { createHash, createPrivateKey, createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';

export type ListStatus = 'green' | 'yellow' | 'red';

/** Status byte: bits 0-1 binding status (0 = not registered, 1 green, 2 yellow, 3 red), bit 2 blocked. 0 = no entry. */
export const STATUS_BITS = { green: 1, yellow: 2, red: 3 } as const;
export const BLOCKED_BIT = 4;
const STATUS_NAMES: (ListStatus | undefined)[] = [undefined, 'green', 'yellow', 'red'];

export function statusByte(status: ListStatus | undefined, blocked: boolean): number {
  return (status ? STATUS_BITS[status] : 0) | (blocked ? BLOCKED_BIT : 0);
}
export function bindingOf(b: number): ListStatus | undefined {
  return STATUS_NAMES[b & 3];
}
export function isBlockedByte(b: number): boolean {
  return (b & BLOCKED_BIT) !== 0;
}

export const LIST_FORMAT_VERSION = 1;
export const HEADER_BYTES = 256;
const SIGNED_BYTES = 192; // the signature covers header bytes 0..191 (which include the body digest)
const SIG_AT = 192;
const MAGIC_SNAPSHOT = [0x47, 0x4c, 0x53, 0x4e]; // "GLSN"
const MAGIC_DELTA = [0x47, 0x4c, 0x44, 0x4c]; // "GLDL"
export const MAX_KEY_BYTES = 255;
const MAX_BUCKET_BITS = 26;
export const MAX_SKIP_BITS = 16;

// ---------------------------------------------------------------------------------------------
// Key encoding

const CARD_PREFIX = 'card:';
const GENERIC_KEY = /^(?:qr:[a-z][a-z0-9-]{0,31}:[A-Za-z0-9_-]{1,64}|ticket:[A-Z0-9]{8,20})$/;
const CARD_KEY = /^card:\d{19}$/;

export type KeyClass = 'card' | 'generic' | 'invalid';
export function classifyKey(key: string): KeyClass {
  if (CARD_KEY.test(key)) return 'card';
  if (GENERIC_KEY.test(key)) return 'generic';
  return 'invalid';
}

// Feistel round keys: a fixed, public permutation of the 64-bit space that spreads card numbers
// (which share long issuer prefixes) evenly over the bucket index while staying exactly invertible.
const K0 = 0x3c6ef372, K1 = 0xa54ff53a, K2 = 0x510e527f, K3 = 0x9b05688c;
function round(x: number, k: number): number {
  x = Math.imul(x ^ k, 0x9e3779b1);
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  return x;
}

/**
 * A 19-digit card number as its first 10 digits `a` (< 1e10) and last 9 `b` (< 1e9), mapped to two
 * u32 (out[0] high, out[1] low): pack (a >> 2, (a & 3) << 30 | b) — injective since b < 2^30 —
 * then a 4-round Feistel permutation (a bijection, whatever the round function).
 */
export function encodeCardParts(a: number, b: number, out: Uint32Array): void {
  let l = Math.floor(a / 4) >>> 0;
  let r = ((a % 4) * 0x40000000 + b) >>> 0;
  let t = (l ^ round(r, K0)) >>> 0; l = r; r = t;
  t = (l ^ round(r, K1)) >>> 0; l = r; r = t;
  t = (l ^ round(r, K2)) >>> 0; l = r; r = t;
  t = (l ^ round(r, K3)) >>> 0; l = r; r = t;
  out[0] = l;
  out[1] = r;
}

/** `card:` + 19 digits → its exact 64-bit code in out; false for anything else. */
export function encodeCardKey(key: string, out: Uint32Array): boolean {
  if (key.length !== 24 || !key.startsWith(CARD_PREFIX)) return false;
  let a = 0;
  for (let i = 5; i < 15; i++) {
    const c = key.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return false;
    a = a * 10 + c;
  }
  let b = 0;
  for (let i = 15; i < 24; i++) {
    const c = key.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return false;
    b = b * 10 + c;
  }
  encodeCardParts(a, b, out);
  return true;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** 64-bit hash of any other key (QR account, ticket): only for placement; equality is decided on the key bytes. */
export function hashKey(key: string, out: Uint32Array): void {
  let h1 = 0x811c9dc5 ^ key.length;
  let h2 = 0x2545f491;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 + c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  out[0] = fmix(h1 ^ Math.imul(h2, 0x27d4eb2f));
  out[1] = fmix(h2 + Math.imul(h1, 0x165667b1));
}

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
const fail = <T>(error: ListFormatError, detail: string): Checked<T> => ({ ok: false, error, detail });

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

function writeCommon(h: Uint8Array, magic: number[], bodyBytes: number, publishedAtMs: number, digest: Uint8Array): DataView {
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
// Signatures (Ed25519). Key id = first 8 bytes of SHA-256 of the raw 32-byte public key.

export interface TrustedListKey {
  keyId: Uint8Array;
  publicKey: KeyObject;
}

export function listKeyId(publicKey: KeyObject): Uint8Array {
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return new Uint8Array(createHash('sha256').update(raw).digest().subarray(0, 8));
}

/** A back-office public key from PEM, or base64 of its SPKI DER. */
export function trustedListKey(text: string): TrustedListKey {
  const publicKey = text.includes('-----BEGIN') ? createPublicKey(text) : createPublicKey({ key: Buffer.from(text, 'base64'), format: 'der', type: 'spki' });
  if (publicKey.asymmetricKeyType !== 'ed25519') throw new Error(`list signing key must be Ed25519, got ${publicKey.asymmetricKeyType}`);
  return { keyId: listKeyId(publicKey), publicKey };
}

/** Sign a snapshot or delta in place (sets its key id, then the signature over header bytes 0..191). */
export function signList(bytes: Uint8Array, privateKey: KeyObject | string): Uint8Array {
  const key = typeof privateKey === 'string' ? createPrivateKey(privateKey) : privateKey;
  bytes.set(listKeyId(createPublicKey(key)), 80);
  const sig = edSign(null, bytes.subarray(0, SIGNED_BYTES), key);
  bytes.set(sig, SIG_AT);
  return bytes;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function checkSignature(bytes: Uint8Array, keyId: Uint8Array, keys: readonly TrustedListKey[], what: string): Checked<true> {
  const k = keys.find((t) => sameBytes(t.keyId, keyId));
  if (!k) return fail('unknown-key', `${what}: signed by unknown key ${Buffer.from(keyId).toString('hex')}`);
  const ok = edVerify(null, bytes.subarray(0, SIGNED_BYTES), k.publicKey, bytes.subarray(SIG_AT, SIG_AT + 64));
  return ok ? { ok: true, value: true } : fail('bad-signature', `${what}: signature does not verify`);
}

function digestOf(body: Uint8Array): Uint8Array {
  return runToEnd(digestGen(body));
}

const DIGEST_SLICE = 1 << 18;
/** SHA-256 in 256 KiB slices, yielding between them (well under a millisecond each). */
function* digestGen(body: Uint8Array): Generator<void, Uint8Array, void> {
  const h = createHash('sha256');
  for (let p = 0; p < body.byteLength; p += DIGEST_SLICE) {
    h.update(body.subarray(p, Math.min(body.byteLength, p + DIGEST_SLICE)));
    yield;
  }
  return new Uint8Array(h.digest());
}

/**
 * Check a snapshot end to end before any byte of its body is used: header, signature (unless `keys` is
 * null: a file this gate wrote itself, integrity only), body length, SHA-256, then the layout bounds.
 */
export function verifySnapshot(bytes: Uint8Array, keys: readonly TrustedListKey[] | null): Checked<SnapshotHeader> {
  return runToEnd(verifySnapshotGen(bytes, keys));
}

/** verifySnapshot in slices (for a gate that keeps serving while it checks a large download). */
export function* verifySnapshotGen(bytes: Uint8Array, keys: readonly TrustedListKey[] | null): Generator<void, Checked<SnapshotHeader>, void> {
  const h = readSnapshotHeader(bytes);
  if (!h.ok) return h;
  if (keys) {
    const s = checkSignature(bytes, h.value.keyId, keys, 'snapshot');
    if (!s.ok) return s;
  }
  if (bytes.byteLength !== HEADER_BYTES + h.value.bodyBytes) return fail('bad-length', `snapshot: ${bytes.byteLength} bytes, header says ${HEADER_BYTES + h.value.bodyBytes}`);
  const d = yield* digestGen(bytes.subarray(HEADER_BYTES));
  if (!sameBytes(d, h.value.digest)) return fail('bad-checksum', 'snapshot: body SHA-256 does not match');
  return { ok: true, value: h.value };
}

/**
 * Checks a snapshot as it streams in (a gate writes a large one to disk rather than hold it): the
 * header and signature as soon as the first 256 bytes are in, then the length and SHA-256 at the end.
 */
export class SnapshotStreamCheck {
  private readonly head = new Uint8Array(HEADER_BYTES);
  private headLen = 0;
  private header: SnapshotHeader | undefined;
  private readonly hash = createHash('sha256');
  private body = 0;
  private failed: Checked<never> | undefined;

  constructor(private readonly keys: readonly TrustedListKey[] | null) {}

  /** Feed the next bytes; returns the failure as soon as there is one (then stop). */
  push(chunk: Uint8Array): Checked<never> | undefined {
    if (this.failed) return this.failed;
    let c = chunk;
    if (this.headLen < HEADER_BYTES) {
      const n = Math.min(HEADER_BYTES - this.headLen, c.byteLength);
      this.head.set(c.subarray(0, n), this.headLen);
      this.headLen += n;
      c = c.subarray(n);
      if (this.headLen < HEADER_BYTES) return undefined;
      const h = readSnapshotHeader(this.head);
      if (!h.ok) return (this.failed = h);
      if (this.keys) {
        const sig = checkSignature(this.head, h.value.keyId, this.keys, 'snapshot');
        if (!sig.ok) return (this.failed = sig);
      }
      this.header = h.value;
    }
    if (c.byteLength === 0) return undefined;
    this.body += c.byteLength;
    if (this.body > this.header!.bodyBytes) return (this.failed = fail('bad-length', `snapshot: more than the ${HEADER_BYTES + this.header!.bodyBytes} bytes its header says`));
    this.hash.update(c);
    return undefined;
  }

  finish(): Checked<SnapshotHeader> {
    if (this.failed) return this.failed;
    if (!this.header) return fail('too-short', `snapshot: ${this.headLen} bytes, header needs ${HEADER_BYTES}`);
    if (this.body !== this.header.bodyBytes) return fail('bad-length', `snapshot: ${HEADER_BYTES + this.body} bytes, header says ${HEADER_BYTES + this.header.bodyBytes}`);
    if (!sameBytes(new Uint8Array(this.hash.digest()), this.header.digest)) return fail('bad-checksum', 'snapshot: body SHA-256 does not match');
    return { ok: true, value: this.header };
  }
}

export interface DeltaFile {
  header: DeltaHeader;
  /** Decoded records (empty when verified with decode = false: use changeSetFromDeltasGen). */
  changes: ListChange[];
  /** The verified record bytes. */
  body: Uint8Array;
}
/** One change: status byte 0 removes the entry. */
export interface ListChange {
  key: string;
  status: number;
}

/** Split a response of concatenated deltas and verify each one (signature, checksum, records). */
export function verifyDeltas(bytes: Uint8Array, keys: readonly TrustedListKey[]): Checked<DeltaFile[]> {
  return runToEnd(verifyDeltasGen(bytes, keys));
}

/** verifyDeltas in slices (a gate keeps serving while it checks a large delta). */
export function* verifyDeltasGen(bytes: Uint8Array, keys: readonly TrustedListKey[], decode = true): Generator<void, Checked<DeltaFile[]>, void> {
  const out: DeltaFile[] = [];
  let at = 0;
  while (at < bytes.byteLength) {
    const rest = bytes.subarray(at);
    const h = readDeltaHeader(rest);
    if (!h.ok) return fail(h.error, `delta #${out.length + 1}: ${h.detail}`);
    const s = checkSignature(rest, h.value.keyId, keys, `delta ${h.value.fromVersion}→${h.value.toVersion}`);
    if (!s.ok) return s;
    const end = HEADER_BYTES + h.value.bodyBytes;
    if (rest.byteLength < end) return fail('bad-length', `delta ${h.value.fromVersion}→${h.value.toVersion}: truncated (${rest.byteLength} of ${end} bytes)`);
    const body = rest.subarray(HEADER_BYTES, end);
    if (!sameBytes(yield* digestGen(body), h.value.digest)) return fail('bad-checksum', `delta ${h.value.fromVersion}→${h.value.toVersion}: body SHA-256 does not match`);
    const changes: Checked<ListChange[]> = decode ? yield* decodeDeltaBody(body, h.value.count) : { ok: true, value: [] };
    if (!changes.ok) return changes;
    if (out.length > 0 && out[out.length - 1].header.toVersion !== h.value.fromVersion) {
      return fail('bad-layout', `deltas out of order: ${out[out.length - 1].header.toVersion} then ${h.value.fromVersion}→${h.value.toVersion}`);
    }
    out.push({ header: h.value, changes: changes.value, body });
    at += end;
  }
  return { ok: true, value: out };
}

function* decodeDeltaBody(body: Uint8Array, count: number): Generator<void, Checked<ListChange[]>, void> {
  const out: ListChange[] = new Array(count);
  let p = 0;
  for (let i = 0; i < count; i++) {
    if ((i & 2047) === 2047) yield;
    if (p + 3 > body.length) return fail('bad-record', `delta record ${i}: truncated`);
    const op = body[p], st = body[p + 1], len = body[p + 2];
    p += 3;
    if (p + len > body.length) return fail('bad-record', `delta record ${i}: key runs past the body`);
    const key = latin1(body, p, len);
    p += len;
    if (op !== 1 && op !== 2) return fail('bad-record', `delta record ${i}: unknown op ${op}`);
    if (op === 1 && (st === 0 || st > 7)) return fail('bad-record', `delta record ${i}: bad status byte ${st}`);
    if (classifyKey(key) === 'invalid') return fail('bad-record', `delta record ${i}: bad key`);
    out[i] = { key, status: op === 1 ? st : 0 };
  }
  if (p !== body.length) return fail('bad-record', `delta: ${body.length - p} bytes after the last record`);
  return { ok: true, value: out };
}

function latin1(b: Uint8Array, at: number, len: number): string {
  let s = '';
  for (let i = 0; i < len; i++) s += String.fromCharCode(b[at + i]);
  return s;
}

/** Encode one delta N → N+1 (unsigned; sign with signList). */
export function encodeDelta(fromVersion: number, publishedAtMs: number, changes: readonly ListChange[]): Uint8Array {
  let size = 0;
  for (const c of changes) {
    if (classifyKey(c.key) === 'invalid') throw new Error(`delta: bad key ${JSON.stringify(c.key)}`);
    size += 3 + c.key.length;
  }
  const out = new Uint8Array(HEADER_BYTES + size);
  let p = HEADER_BYTES;
  for (const c of changes) {
    out[p] = c.status === 0 ? 2 : 1;
    out[p + 1] = c.status & 7;
    out[p + 2] = c.key.length;
    for (let i = 0; i < c.key.length; i++) out[p + 3 + i] = c.key.charCodeAt(i);
    p += 3 + c.key.length;
  }
  const body = out.subarray(HEADER_BYTES);
  const v = writeCommon(out, MAGIC_DELTA, size, publishedAtMs, digestOf(body));
  v.setUint32(8, fromVersion, true);
  v.setUint32(12, fromVersion + 1, true);
  v.setUint32(32, changes.length, true);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Snapshot layout and lookups

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

/**
 * Lookups straight over snapshot bytes. `bytes` must start 8-aligned in its buffer (a Buffer from
 * readFile, or a SharedArrayBuffer); verify the bytes first (verifySnapshot) — this only re-checks bounds.
 */
export class SnapshotView {
  readonly header: SnapshotHeader;
  readonly cHi: Uint32Array; readonly cLo: Uint32Array; readonly cBucket: Uint32Array; readonly cSt: Uint8Array;
  readonly gHi: Uint32Array; readonly gLo: Uint32Array; readonly gOff: Uint32Array; readonly gBucket: Uint32Array; readonly gSt: Uint8Array;
  readonly heap: Uint8Array;
  private readonly cShift: number;
  private readonly gShift: number;
  private readonly skip: number;
  private readonly tmp = new Uint32Array(2);

  constructor(readonly bytes: Uint8Array, header: SnapshotHeader) {
    if (bytes.byteOffset % 8 !== 0) throw new Error('snapshot bytes must be 8-aligned');
    this.header = header;
    const L = snapshotLayout(header);
    const base = bytes.byteOffset + HEADER_BYTES;
    const buf = bytes.buffer;
    const nc = header.cardCount, ng = header.genCount;
    this.cHi = new Uint32Array(buf, base + L.cHi, nc);
    this.cLo = new Uint32Array(buf, base + L.cLo, nc);
    this.cBucket = new Uint32Array(buf, base + L.cBucket, (1 << header.cardBits) + 1);
    this.cSt = new Uint8Array(buf, base + L.cSt, nc);
    this.gHi = new Uint32Array(buf, base + L.gHi, ng);
    this.gLo = new Uint32Array(buf, base + L.gLo, ng);
    this.gOff = new Uint32Array(buf, base + L.gOff, ng);
    this.gBucket = new Uint32Array(buf, base + L.gBucket, (1 << header.genBits) + 1);
    this.gSt = new Uint8Array(buf, base + L.gSt, ng);
    this.heap = new Uint8Array(buf, base + L.heap, header.heapBytes);
    this.cShift = header.cardBits === 0 ? -1 : 32 - header.cardBits;
    this.gShift = header.genBits === 0 ? -1 : 32 - header.genBits;
    this.skip = header.skipBits;
  }

  /** Bounds the lookups rely on: bucket index monotonic and within the counts, key offsets inside the heap. O(buckets + generic entries). */
  checkBounds(): Checked<true> {
    return runToEnd(this.checkBoundsGen());
  }

  *checkBoundsGen(): Generator<void, Checked<true>, void> {
    for (const [bk, n, what] of [[this.cBucket, this.header.cardCount, 'card'], [this.gBucket, this.header.genCount, 'generic']] as const) {
      if (bk[0] !== 0 || bk[bk.length - 1] !== n) return fail('bad-layout', `snapshot: ${what} bucket index does not span the entries`);
      for (let i = 1; i < bk.length; i++) {
        if (bk[i] < bk[i - 1]) return fail('bad-layout', `snapshot: ${what} bucket index not monotonic at ${i}`);
        if ((i & 0xffff) === 0) yield;
      }
    }
    const hb = this.header.heapBytes;
    for (let i = 0; i < this.gOff.length; i++) {
      const o = this.gOff[i];
      if (o >= hb || o + 1 + this.heap[o] > hb) return fail('bad-layout', `snapshot: key ${i} outside the key heap`);
      if ((i & 0xffff) === 0) yield;
    }
    return { ok: true, value: true };
  }

  get size(): number {
    return this.header.cardCount + this.header.genCount;
  }

  /** The status byte of a key (0 = no entry). */
  status(key: string): number {
    const t = this.tmp;
    if (key.charCodeAt(0) === 99 /* c */ && encodeCardKey(key, t)) return this.cardStatus(t[0], t[1]);
    hashKey(key, t);
    return this.genericStatus(t[0], t[1], key);
  }

  cardStatus(H: number, L: number): number {
    const i = this.findCard(H, L);
    return i >= 0 ? this.cSt[i] : 0;
  }

  /** Index of the card entry with code (H, L), or -1 - (insertion point). */
  findCard(H: number, L: number): number {
    const hiA = this.cHi, loA = this.cLo;
    const b = this.cShift < 0 ? 0 : (H << this.skip) >>> this.cShift;
    let l = this.cBucket[b], r = this.cBucket[b + 1];
    while (l < r) {
      const m = (l + r) >>> 1;
      const x = hiA[m];
      if (x < H || (x === H && loA[m] < L)) l = m + 1;
      else r = m;
    }
    return l < hiA.length && hiA[l] === H && loA[l] === L ? l : -1 - l;
  }

  genericStatus(H: number, L: number, key: string): number {
    const i = this.findGeneric(H, L, key);
    return i >= 0 ? this.gSt[i] : 0;
  }

  /** Index of the generic entry (hash H:L, exact key), or -1 - (insertion point in (hash, key) order). */
  findGeneric(H: number, L: number, key: string): number {
    const hiA = this.gHi, loA = this.gLo;
    const b = this.gShift < 0 ? 0 : (H << this.skip) >>> this.gShift;
    let l = this.gBucket[b], r = this.gBucket[b + 1];
    while (l < r) {
      const m = (l + r) >>> 1;
      const x = hiA[m];
      if (x < H || (x === H && loA[m] < L)) l = m + 1;
      else r = m;
    }
    // Equal hashes sit together, ordered by key bytes: compare the whole key (collisions resolved exactly).
    while (l < hiA.length && hiA[l] === H && loA[l] === L) {
      const c = this.compareKeyAt(l, key);
      if (c === 0) return l;
      if (c > 0) break;
      l++;
    }
    return -1 - l;
  }

  /** Compare the stored key of generic entry i with `key` (stored − key, by bytes). */
  compareKeyAt(i: number, key: string): number {
    const heap = this.heap;
    const o = this.gOff[i];
    const len = heap[o];
    const n = Math.min(len, key.length);
    for (let j = 0; j < n; j++) {
      const d = heap[o + 1 + j] - key.charCodeAt(j);
      if (d !== 0) return d;
    }
    return len - key.length;
  }

  keyAt(i: number): string {
    const o = this.gOff[i];
    return latin1(this.heap, o + 1, this.heap[o]);
  }
}

// ---------------------------------------------------------------------------------------------
// Building

function compareBytes(heap: Uint8Array, oa: number, ob: number): number {
  const la = heap[oa], lb = heap[ob];
  const n = Math.min(la, lb);
  for (let j = 1; j <= n; j++) {
    const d = heap[oa + j] - heap[ob + j];
    if (d !== 0) return d;
  }
  return la - lb;
}

/** Growable columns for one section while building. */
class Columns {
  hi: Uint32Array; lo: Uint32Array; st: Uint8Array; off: Uint32Array | null; n = 0;
  constructor(cap: number, withOff: boolean) {
    this.hi = new Uint32Array(cap);
    this.lo = new Uint32Array(cap);
    this.st = new Uint8Array(cap);
    this.off = withOff ? new Uint32Array(cap) : null;
  }
  push(h: number, l: number, s: number, o: number): void {
    if (this.n === this.hi.length) this.grow();
    this.hi[this.n] = h;
    this.lo[this.n] = l;
    this.st[this.n] = s;
    if (this.off) this.off[this.n] = o;
    this.n++;
  }
  private grow(): void {
    const cap = Math.max(16, this.hi.length * 2);
    const g = <T extends Uint32Array | Uint8Array>(a: T, C: { new (n: number): T }): T => {
      const b = new C(cap);
      b.set(a);
      return b;
    };
    this.hi = g(this.hi, Uint32Array);
    this.lo = g(this.lo, Uint32Array);
    this.st = g(this.st, Uint8Array);
    if (this.off) this.off = g(this.off, Uint32Array);
  }
}

/**
 * Builds a snapshot from entries in any order (duplicates: the last one wins). Sorting is a counting
 * sort on the bucket bits then an insertion sort inside each (small) bucket: linear, no comparator calls.
 */
export class ListBuilder {
  private readonly cards: Columns;
  private readonly gens: Columns;
  private heap = new Uint8Array(1 << 16);
  private heapLen = 0;
  private readonly tmp = new Uint32Array(2);

  constructor(capacityHint = 1024) {
    this.cards = new Columns(capacityHint, false);
    this.gens = new Columns(Math.min(capacityHint, 1 << 16), true);
  }

  /** Add or replace an entry; status byte 0 is ignored (no entry). Throws on a key no gate could present. */
  set(key: string, status: number): void {
    if (status === 0) return;
    if (status > 7) throw new Error(`bad status byte ${status}`);
    this.put(key, status);
  }

  /** @internal Like set, but any byte (a change set marks removals with REMOVED). */
  put(key: string, status: number): void {
    const t = this.tmp;
    if (encodeCardKey(key, t)) {
      this.cards.push(t[0], t[1], status, 0);
      return;
    }
    if (classifyKey(key) !== 'generic') throw new Error(`not a list key: ${JSON.stringify(key)}`);
    hashKey(key, t);
    if (this.heapLen + 1 + key.length > this.heap.length) {
      const h = new Uint8Array(this.heap.length * 2 + key.length + 1);
      h.set(this.heap.subarray(0, this.heapLen));
      this.heap = h;
    }
    const o = this.heapLen;
    this.heap[o] = key.length;
    for (let i = 0; i < key.length; i++) this.heap[o + 1 + i] = key.charCodeAt(i);
    this.heapLen += 1 + key.length;
    this.gens.push(t[0], t[1], status, o);
  }

  /** Fast path for bulk loads and benches: card number as its first 10 and last 9 digits. */
  setCardParts(a: number, b: number, status: number): void {
    encodeCardParts(a, b, this.tmp);
    this.cards.push(this.tmp[0], this.tmp[1], status, 0);
  }

  get size(): number {
    return this.cards.n + this.gens.n;
  }

  /** Lay out the snapshot (unsigned: sign with signList, or keep unsigned for a gate's own file). */
  build(meta: { version: number; publishedAtMs: number }): Uint8Array {
    return runToEnd(this.buildGen(meta));
  }

  /** build, yielding every few thousand entries (a gate builds change sets while it serves). */
  *buildGen(meta: { version: number; publishedAtMs: number }, alloc: (bytes: number) => Uint8Array = (n) => new Uint8Array(n)): Generator<void, Uint8Array, void> {
    const c = yield* sortSectionGen(this.cards, null);
    const g = yield* sortSectionGen(this.gens, this.heap);
    // Compact the key heap in entry order (drops replaced duplicates).
    let heapBytes = 0;
    for (let i = 0; i < g.n; i++) heapBytes += 1 + this.heap[g.off![i]];
    const cardBits = bucketBitsFor(c.n), genBits = bucketBitsFor(g.n);
    const h = { cardCount: c.n, cardBits, genCount: g.n, genBits, heapBytes };
    const L = snapshotLayout(h);
    const out = alloc(HEADER_BYTES + L.total);
    out.fill(0);
    const body = out.subarray(HEADER_BYTES);
    const u32 = (at: number, n: number) => new Uint32Array(out.buffer, out.byteOffset + HEADER_BYTES + at, n);
    u32(L.cHi, c.n).set(c.hi.subarray(0, c.n));
    u32(L.cLo, c.n).set(c.lo.subarray(0, c.n));
    yield* fillBucketsGen(u32(L.cBucket, (1 << cardBits) + 1), c.hi, c.n, cardBits);
    body.set(c.st.subarray(0, c.n), L.cSt);
    u32(L.gHi, g.n).set(g.hi.subarray(0, g.n));
    u32(L.gLo, g.n).set(g.lo.subarray(0, g.n));
    yield* fillBucketsGen(u32(L.gBucket, (1 << genBits) + 1), g.hi, g.n, genBits);
    body.set(g.st.subarray(0, g.n), L.gSt);
    const offs = u32(L.gOff, g.n);
    let p = 0;
    for (let i = 0; i < g.n; i++) {
      const o = g.off![i];
      const len = 1 + this.heap[o];
      body.set(this.heap.subarray(o, o + len), L.heap + p);
      offs[i] = p;
      p += len;
      if ((i & 0x3fff) === 0) yield;
    }
    return yield* finishSnapshotGen(out, { version: meta.version, publishedAtMs: meta.publishedAtMs, ...h });
  }
}

/** Write the header of a laid-out snapshot (counts, meta, body digest). */
type SnapMeta = { version: number; publishedAtMs: number; cardCount: number; cardBits: number; genCount: number; genBits: number; heapBytes: number; skipBits?: number };
export function finishSnapshot(out: Uint8Array, h: SnapMeta): Uint8Array {
  return runToEnd(finishSnapshotGen(out, h));
}
export function* finishSnapshotGen(out: Uint8Array, h: SnapMeta): Generator<void, Uint8Array, void> {
  const body = out.subarray(HEADER_BYTES);
  const v = writeCommon(out, MAGIC_SNAPSHOT, body.byteLength, h.publishedAtMs, yield* digestGen(body));
  v.setUint32(8, h.version, true);
  v.setUint32(32, h.cardCount, true);
  v.setUint8(36, h.cardBits);
  v.setUint8(37, h.genBits);
  v.setUint8(38, h.skipBits ?? 0);
  v.setUint32(40, h.genCount, true);
  v.setUint32(44, h.heapBytes, true);
  return out;
}

/** bk[b] = first index whose bucket (top `bits` of hi) is >= b; bk[2^bits] = n. hi must be sorted. */
export function fillBuckets(bk: Uint32Array, hi: Uint32Array, n: number, bits: number, skip = 0): void {
  runToEnd(fillBucketsGen(bk, hi, n, bits, skip));
}
export function* fillBucketsGen(bk: Uint32Array, hi: Uint32Array, n: number, bits: number, skip = 0): Generator<void, void, void> {
  const nb = 1 << bits;
  const shift = 32 - bits;
  let b = 0;
  for (let i = 0; i < n; i++) {
    const ib = bits === 0 ? 0 : (hi[i] << skip) >>> shift;
    while (b <= ib) bk[b++] = i;
    if ((i & 0xffff) === 0) yield;
  }
  while (b <= nb) bk[b++] = n;
}

/** Sort one section by (hi, lo[, key bytes]) and keep the last of equal keys. */
function* sortSectionGen(cols: Columns, heap: Uint8Array | null): Generator<void, Columns, void> {
  const n = cols.n;
  const bits = Math.min(20, bucketBitsFor(n));
  const shift = 32 - bits;
  const nb = 1 << bits;
  const count = new Uint32Array(nb + 1);
  for (let i = 0; i < n; i++) {
    count[(bits === 0 ? 0 : cols.hi[i] >>> shift) + 1]++;
    if ((i & 0xffff) === 0) yield;
  }
  for (let b = 0; b < nb; b++) count[b + 1] += count[b];
  const out = new Columns(Math.max(1, n), cols.off !== null);
  const pos = count.slice(0, nb);
  for (let i = 0; i < n; i++) {
    const b = bits === 0 ? 0 : cols.hi[i] >>> shift;
    const j = pos[b]++;
    out.hi[j] = cols.hi[i];
    out.lo[j] = cols.lo[i];
    out.st[j] = cols.st[i];
    if (out.off) out.off[j] = cols.off![i];
    if ((i & 0xffff) === 0) yield;
  }
  out.n = n;
  // Insertion sort within each bucket: stable, so the later of two equal keys stays later.
  const H = out.hi, L = out.lo, S = out.st, O = out.off;
  const less = (i: number, j: number): boolean => {
    if (H[i] !== H[j]) return H[i] < H[j];
    if (L[i] !== L[j]) return L[i] < L[j];
    return O !== null && heap !== null && compareBytes(heap, O[i], O[j]) < 0;
  };
  let sinceYield = 0;
  for (let b = 0; b < nb; b++) {
    const s = count[b], e = count[b + 1];
    sinceYield += e - s + 1;
    if (sinceYield > 2048) {
      sinceYield = 0;
      yield;
    }
    for (let i = s + 1; i < e; i++) {
      let j = i;
      while (j > s && less(j, j - 1)) {
        swap(H, j, j - 1); swap(L, j, j - 1); swap(S, j, j - 1);
        if (O) swap(O, j, j - 1);
        j--;
      }
    }
  }
  // Dedupe: keep the last of each run of equal keys.
  let w = 0;
  for (let i = 0; i < n; i++) {
    const nextSame = i + 1 < n && H[i + 1] === H[i] && L[i + 1] === L[i] && (O === null || heap === null || compareBytes(heap, O[i], O[i + 1]) === 0);
    if (nextSame) continue;
    H[w] = H[i]; L[w] = L[i]; S[w] = S[i];
    if (O) O[w] = O[i];
    w++;
    if ((i & 0xffff) === 0) yield;
  }
  out.n = w;
  return out;
}

function swap(a: Uint32Array | Uint8Array, i: number, j: number): void {
  const t = a[i];
  a[i] = a[j];
  a[j] = t;
}

// ---------------------------------------------------------------------------------------------
// Applying changes to a snapshot: a merge of two sorted runs, written as a generator that yields
// every few thousand entries so a gate can apply a large delta between lookups.

/** Status byte that marks a removal inside a change set (never stored in a list). */
export const REMOVED = 8;

/** Uninitialised, 8-aligned bytes of their own (callers clear what they use). */
export function allocBytes(n: number): Uint8Array {
  return Buffer.allocUnsafeSlow(n) as Uint8Array;
}

/** A run of entries in a view: cards [c0, c1), other keys [g0, g1). */
export interface EntryRange { c0: number; c1: number; g0: number; g1: number }

export function wholeRange(v: SnapshotView): EntryRange {
  return { c0: 0, c1: v.header.cardCount, g0: 0, g1: v.header.genCount };
}

/** The entries of `v` whose code's top `bits` bits equal `s` (a segment); bits = 0: all of them. */
export function segmentRange(v: SnapshotView, s: number, bits: number): EntryRange {
  if (bits === 0) return wholeRange(v);
  const lo = (s << (32 - bits)) >>> 0;
  const hiEnd = s + 1 < 2 ** bits ? ((s + 1) << (32 - bits)) >>> 0 : -1;
  const at = (f: number) => (f >= 0 ? f : -1 - f);
  const c0 = at(v.findCard(lo, 0)), g0 = at(v.findGeneric(lo, 0, ''));
  const c1 = hiEnd < 0 ? v.header.cardCount : at(v.findCard(hiEnd, 0));
  const g1 = hiEnd < 0 ? v.header.genCount : at(v.findGeneric(hiEnd, 0, ''));
  return { c0, c1, g0, g1 };
}

/** A change set as a sorted view (removals carry status REMOVED), for mergeSorted and overlays. */
export function changeSet(changes: readonly ListChange[]): SnapshotView {
  return runToEnd(changeSetGen(changes));
}
export function* changeSetGen(changes: readonly ListChange[], sliceEntries = 512, alloc: (bytes: number) => Uint8Array = allocBytes): Generator<void, SnapshotView, void> {
  const b = new ListBuilder(Math.max(16, changes.length));
  let k = 0;
  for (const c of changes) {
    b.put(c.key, c.status === 0 ? REMOVED : c.status);
    if (++k % sliceEntries === 0) yield;
  }
  const bytes = yield* b.buildGen({ version: 0, publishedAtMs: 0 }, alloc);
  const h = readSnapshotHeader(bytes);
  if (!h.ok) throw new Error(h.detail);
  return new SnapshotView(bytes, h.value);
}

/**
 * The change set of verified deltas, parsed straight from their record bytes (no object or string per
 * card change: a 100,000-change delta leaves almost no garbage). Same checks as decoding them.
 */
export function* changeSetFromDeltasGen(files: readonly DeltaFile[], sliceEntries = 512, alloc: (bytes: number) => Uint8Array = allocBytes): Generator<void, Checked<SnapshotView>, void> {
  let total = 0;
  for (const f of files) total += f.header.count;
  const b = new ListBuilder(Math.max(16, total));
  for (const f of files) {
    const body = f.body;
    let p = 0;
    for (let i = 0; i < f.header.count; i++) {
      if ((i & (sliceEntries - 1)) === sliceEntries - 1) yield;
      if (p + 3 > body.length) return fail('bad-record', `delta record ${i}: truncated`);
      const op = body[p], st = body[p + 1], len = body[p + 2];
      p += 3;
      if (p + len > body.length) return fail('bad-record', `delta record ${i}: key runs past the body`);
      if (op !== 1 && op !== 2) return fail('bad-record', `delta record ${i}: unknown op ${op}`);
      if (op === 1 && (st === 0 || st > 7)) return fail('bad-record', `delta record ${i}: bad status byte ${st}`);
      const status = op === 1 ? st : REMOVED;
      if (!cardFromBytes(body, p, len, b, status)) {
        const key = latin1(body, p, len);
        if (classifyKey(key) === 'invalid') return fail('bad-record', `delta record ${i}: bad key`);
        b.put(key, status);
      }
      p += len;
    }
    if (p !== body.length) return fail('bad-record', `delta: ${body.length - p} bytes after the last record`);
  }
  const bytes = yield* b.buildGen({ version: 0, publishedAtMs: 0 }, alloc);
  const h = readSnapshotHeader(bytes);
  if (!h.ok) return h;
  return { ok: true, value: new SnapshotView(bytes, h.value) };
}

/** `card:` + 19 digits in bytes: add it to `b` and say so; anything else: false. */
function cardFromBytes(body: Uint8Array, p: number, len: number, b: ListBuilder, status: number): boolean {
  if (len !== 24 || body[p] !== 99 || body[p + 1] !== 97 || body[p + 2] !== 114 || body[p + 3] !== 100 || body[p + 4] !== 58) return false;
  let a = 0;
  for (let i = 5; i < 15; i++) {
    const c = body[p + i] - 48;
    if (c < 0 || c > 9) return false;
    a = a * 10 + c;
  }
  let d = 0;
  for (let i = 15; i < 24; i++) {
    const c = body[p + i] - 48;
    if (c < 0 || c > 9) return false;
    d = d * 10 + c;
  }
  b.setCardParts(a, d, status);
  return true;
}

/** Merge `changes` (status 0 = remove) into `old`; yields periodically; returns the new (unsigned) snapshot. */
export function* mergeChanges(
  old: SnapshotView,
  changes: readonly ListChange[],
  meta: { version: number; publishedAtMs: number },
  sliceEntries = 512,
): Generator<void, Uint8Array, void> {
  const ch = yield* changeSetGen(changes, sliceEntries);
  return yield* mergeSorted(old, wholeRange(old), ch, wholeRange(ch), { ...meta, skipBits: old.header.skipBits }, sliceEntries);
}

/**
 * Merge the range `oR` of `old` with the range `cR` of a change set `ch` (null: none, which copies
 * the range out as a list of its own). Both are sorted the same way, so this is one linear merge,
 * written as a generator that yields every few hundred entries so a gate can merge between lookups.
 * The output has exact sizes: the new bytes are allocated once.
 */
export function* mergeSorted(
  old: SnapshotView,
  oR: EntryRange,
  ch: SnapshotView | null,
  cR: EntryRange,
  meta: { version: number; publishedAtMs: number; skipBits: number },
  sliceEntries = 512,
  alloc: (bytes: number) => Uint8Array = allocBytes,
): Generator<void, Uint8Array, void> {
  const cc0 = ch ? cR.c0 : 0, cc1 = ch ? cR.c1 : 0, gc0 = ch ? cR.g0 : 0, gc1 = ch ? cR.g1 : 0;
  // Exact output counts first.
  let nc = oR.c1 - oR.c0, ng = oR.g1 - oR.g0;
  let heapBytes = 0;
  if (oR.g0 === 0 && oR.g1 === old.header.genCount) heapBytes = old.header.heapBytes;
  else {
    for (let i = oR.g0; i < oR.g1; i++) {
      heapBytes += 1 + old.heap[old.gOff[i]];
      if ((i & 0x3fff) === 0) yield;
    }
  }
  if (ch) {
    for (let j = cc0; j < cc1; j++) {
      const found = old.findCard(ch.cHi[j], ch.cLo[j]) >= 0;
      if (ch.cSt[j] === REMOVED) { if (found) nc--; } else if (!found) nc++;
      if (j % sliceEntries === 0) yield;
    }
    for (let j = gc0; j < gc1; j++) {
      const key = ch.keyAt(j);
      const found = old.findGeneric(ch.gHi[j], ch.gLo[j], key) >= 0;
      if (ch.gSt[j] === REMOVED) { if (found) { ng--; heapBytes -= 1 + key.length; } } else if (!found) { ng++; heapBytes += 1 + key.length; }
      if (j % sliceEntries === 0) yield;
    }
  }
  const skip = meta.skipBits;
  const cardBits = Math.min(bucketBitsFor(nc), 32 - skip), genBits = Math.min(bucketBitsFor(ng), 32 - skip);
  const hdr = { cardCount: nc, cardBits, genCount: ng, genBits, heapBytes, skipBits: skip };
  const L = snapshotLayout(hdr);
  // Allocate without the one-shot zero fill (hundreds of MB for a whole list) and clear it in slices.
  const out = alloc(HEADER_BYTES + L.total);
  for (let p = 0; p < out.byteLength; p += 1 << 18) {
    out.fill(0, p, Math.min(out.byteLength, p + (1 << 18)));
    yield;
  }
  const base = out.byteOffset + HEADER_BYTES;
  const u32 = (at: number, n: number) => new Uint32Array(out.buffer, base + at, n);
  const u8 = (at: number, n: number) => new Uint8Array(out.buffer, base + at, n);
  const block = sliceEntries * 16;

  // Cards.
  {
    const oH = old.cHi, oL = old.cLo, oS = old.cSt, on = oR.c1;
    const nH = u32(L.cHi, nc), nL = u32(L.cLo, nc), nS = u8(L.cSt, nc);
    let i = oR.c0, j = cc0, w = 0;
    while (i < on || j < cc1) {
      // Old entries before the next change (or all the rest): copied in blocks (memcpy).
      let stop = on, hit = false;
      if (j < cc1) {
        const p = old.findCard(ch!.cHi[j], ch!.cLo[j]);
        stop = Math.min(on, p >= 0 ? p : -1 - p);
        hit = p >= 0;
      }
      if (stop > i) {
        const e = Math.min(stop, i + block);
        nH.set(oH.subarray(i, e), w); nL.set(oL.subarray(i, e), w); nS.set(oS.subarray(i, e), w);
        w += e - i; i = e;
        if (e < stop || j >= cc1) { yield; continue; }
      }
      if (j >= cc1) continue;
      if (hit) i++; // replaced or removed
      if (ch!.cSt[j] !== REMOVED) { nH[w] = ch!.cHi[j]; nL[w] = ch!.cLo[j]; nS[w] = ch!.cSt[j]; w++; }
      j++;
      if (j % sliceEntries === 0) yield;
    }
    yield* fillBucketsGen(u32(L.cBucket, (1 << cardBits) + 1), nH, nc, cardBits, skip);
  }
  // Other keys (few compared with cards): entry by entry, rebuilding the key heap in entry order.
  {
    const on = oR.g1;
    const nH = u32(L.gHi, ng), nL = u32(L.gLo, ng), nO = u32(L.gOff, ng), nS = u8(L.gSt, ng), heap = u8(L.heap, heapBytes);
    const oheap = old.heap, cheap = ch ? ch.heap : oheap;
    let i = oR.g0, j = gc0, w = 0, hp = 0, n = 0;
    while (i < on || j < gc1) {
      let cmp: number;
      if (j >= gc1) cmp = -1;
      else if (i >= on) cmp = 1;
      else {
        cmp = old.gHi[i] !== ch!.gHi[j] ? (old.gHi[i] < ch!.gHi[j] ? -1 : 1) : old.gLo[i] !== ch!.gLo[j] ? (old.gLo[i] < ch!.gLo[j] ? -1 : 1) : 0;
        if (cmp === 0) {
          const co = old.gOff[i], no = ch!.gOff[j];
          const la = oheap[co], lb = cheap[no];
          const m = Math.min(la, lb);
          for (let q = 1; q <= m && cmp === 0; q++) cmp = oheap[co + q] - cheap[no + q];
          if (cmp === 0) cmp = la - lb;
        }
      }
      if (cmp < 0) {
        const o = old.gOff[i], len = 1 + oheap[o];
        heap.set(oheap.subarray(o, o + len), hp);
        nH[w] = old.gHi[i]; nL[w] = old.gLo[i]; nS[w] = old.gSt[i]; nO[w] = hp;
        hp += len; w++; i++;
      } else {
        if (cmp === 0) i++;
        if (ch!.gSt[j] !== REMOVED) {
          const o = ch!.gOff[j], len = 1 + cheap[o];
          heap.set(cheap.subarray(o, o + len), hp);
          nH[w] = ch!.gHi[j]; nL[w] = ch!.gLo[j]; nS[w] = ch!.gSt[j]; nO[w] = hp;
          hp += len; w++;
        }
        j++;
      }
      if (++n % sliceEntries === 0) yield;
    }
    yield* fillBucketsGen(u32(L.gBucket, (1 << genBits) + 1), nH, ng, genBits, skip);
  }
  return yield* finishSnapshotGen(out, { ...meta, ...hdr });
}

/** Run a generator to its end (for callers that may block, like the back office). */
export function runToEnd<T>(g: Generator<void, T, void>): T {
  for (;;) {
    const r = g.next();
    if (r.done) return r.value;
  }
}

