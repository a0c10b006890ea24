// A lane recording on disk (`gate run --record`, `gate replay`): segment headers and blocks of records,
// every one authenticated with AES-256-GCM under the operator's recording key and chained to the one
// before, so a cut, a flipped bit, a block taken out or put back elsewhere is found and named. Pure: the
// caller brings the nonces and the bytes. Byte tables: protocol/README.md, "Lane recordings".

import { createCipheriv, createDecipheriv, hkdfSync, timingSafeEqual } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';

export const RECORDING_FORMAT = 1;
export const SEGMENT_HEADER_BYTES = 92;
export const BLOCK_HEADER_BYTES = 32;
export const TAG_BYTES = 16;
export const NONCE_BYTES = 12;
export const KEY_ID_BYTES = 8;
export const RECORDING_ID_BYTES = 16;
/** Bounds a reader holds a block to before reading it (a damaged length never allocates more). */
export const MAX_BLOCK_PART = 8 << 20;
export const MAX_BLOCK_RECORDS = 65_536;

const MAGIC = Buffer.from('GREC', 'latin1');

export const BlockKind = { records: 1, segmentEnd: 2, recordingEnd: 3 } as const;
export type BlockKind = (typeof BlockKind)[keyof typeof BlockKind];

/** Segment header flag: the segment's first record is a checkpoint (a replay may start there). */
export const SEGMENT_OPENS_WITH_CHECKPOINT = 1;

/** The operator's recording key, derived from the 32-byte secret in the key file. */
export interface RecordingKey {
  /** Names the key in every segment header (a wrong key is told apart from damage). */
  readonly keyId: Uint8Array;
  readonly aes: Uint8Array;
}

/** HKDF-SHA256 of the 32-byte secret: one key for AES-256-GCM, another 8 bytes to name it by. */
export function recordingKey(secret: Uint8Array): RecordingKey {
  if (secret.byteLength !== 32) throw new Error(`a recording key is 32 bytes, got ${secret.byteLength}`);
  const salt = Buffer.from('gate-recording', 'latin1');
  return {
    aes: new Uint8Array(hkdfSync('sha256', secret, salt, 'aes-256-gcm v1', 32)),
    keyId: new Uint8Array(hkdfSync('sha256', secret, salt, 'key id v1', KEY_ID_BYTES)),
  };
}

/** The key file's content: 64 hex digits, or base64 of 32 bytes (whitespace around ignored), or 32 raw bytes. */
export function parseRecordingKeyFile(bytes: Uint8Array): { ok: true; secret: Uint8Array } | { ok: false; why: string } {
  const text = Buffer.from(bytes).toString('latin1').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return { ok: true, secret: new Uint8Array(Buffer.from(text, 'hex')) };
  if (/^[A-Za-z0-9+/]{43}=$/.test(text)) return { ok: true, secret: new Uint8Array(Buffer.from(text, 'base64')) };
  if (bytes.byteLength === 32) return { ok: true, secret: new Uint8Array(bytes) };
  return { ok: false, why: 'expected 64 hex digits (e.g. `openssl rand -hex 32`), base64 of 32 bytes, or 32 raw bytes' };
}

export function keyIdHex(id: Uint8Array): string {
  return Buffer.from(id).toString('hex');
}

export interface SegmentHeader {
  segment: number;
  firstBlock: number;
  recordingId: Uint8Array;
  keyId: Uint8Array;
  createdAtMs: number;
  /** The last tag of the previous segment (zeros in segment 1): the chain across files. */
  prevTag: Uint8Array;
  opensWithCheckpoint: boolean;
}

/** One record: what anyone with the key may read about it (refs, reasons, times) and what stays secret (credentials). */
export interface RecordedItem {
  clear: Record<string, unknown>;
  secret?: unknown;
}

export interface EncodedPart {
  bytes: Uint8Array;
  /** This part's tag: the next part chains on it. */
  tag: Uint8Array;
}

/**
 * The deflate dictionaries of a records block: the texts of the segment's records blocks before it, the
 * last 32 KiB of each part (a lane's blocks are small and alike; each one alone would hardly compress).
 */
export interface BlockDictionary {
  clear: Uint8Array;
  secret: Uint8Array;
}
export const DICTIONARY_BYTES = 32_768;
/** The first block of every segment has none (a replay may start at any segment). */
export const NO_DICTIONARY: BlockDictionary = { clear: new Uint8Array(0), secret: new Uint8Array(0) };

/** How far each dictionary buffer is written: a dictionary that ends there may grow in place. */
const written = new WeakMap<ArrayBufferLike, number>();
const BACKING_BYTES = 4 * DICTIONARY_BYTES;

/**
 * The last DICTIONARY_BYTES of `d` followed by `text`. Appends in place when `d` is the newest view of its
 * buffer (a segment read or written in order), so a block costs no 32 KiB copy; an older view gets a copy.
 */
function nextDictionary(d: Uint8Array, text: Uint8Array): Uint8Array {
  if (text.byteLength === 0) return d;
  if (text.byteLength >= DICTIONARY_BYTES) return new Uint8Array(text.subarray(text.byteLength - DICTIONARY_BYTES));
  const end = d.byteOffset + d.byteLength;
  if (d.byteLength > 0 && written.get(d.buffer) === end && end + text.byteLength <= d.buffer.byteLength) {
    new Uint8Array(d.buffer, end, text.byteLength).set(text);
    const to = end + text.byteLength;
    written.set(d.buffer, to);
    const from = Math.max(d.byteOffset, to - DICTIONARY_BYTES);
    return new Uint8Array(d.buffer, from, to - from);
  }
  const keep = Math.min(d.byteLength, DICTIONARY_BYTES - text.byteLength);
  const backing = new Uint8Array(BACKING_BYTES);
  backing.set(d.subarray(d.byteLength - keep), 0);
  backing.set(text, keep);
  written.set(backing.buffer, keep + text.byteLength);
  return backing.subarray(0, keep + text.byteLength);
}

const deflate = (text: Uint8Array, dictionary: Uint8Array) => (dictionary.byteLength > 0 ? deflateRawSync(text, { dictionary }) : deflateRawSync(text));
const inflate = (packed: Uint8Array, dictionary: Uint8Array) =>
  dictionary.byteLength > 0 ? inflateRawSync(packed, { dictionary, maxOutputLength: 64 << 20 }) : inflateRawSync(packed, { maxOutputLength: 64 << 20 });

/** AES-256-GCM: `aad` is authenticated as one string (the parts in order), `plain` encrypted and authenticated. */
function gcmTag(key: RecordingKey, nonce: Uint8Array, aad: Uint8Array[], plain: Uint8Array): { cipher: Buffer; tag: Buffer } {
  if (nonce.byteLength !== NONCE_BYTES) throw new Error('nonce must be 12 bytes');
  const c = createCipheriv('aes-256-gcm', key.aes, nonce);
  // GCM authenticates its AAD as one string however it is handed in (parts in order, before any plaintext).
  for (const part of aad) c.setAAD(part);
  const cipher = plain.byteLength > 0 ? Buffer.concat([c.update(plain), c.final()]) : (c.final(), Buffer.alloc(0));
  return { cipher, tag: c.getAuthTag() };
}

export function encodeSegmentHeader(h: Omit<SegmentHeader, 'keyId'>, key: RecordingKey, nonce: Uint8Array): EncodedPart {
  const b = Buffer.alloc(SEGMENT_HEADER_BYTES);
  MAGIC.copy(b, 0);
  b[4] = RECORDING_FORMAT;
  b[5] = h.opensWithCheckpoint ? SEGMENT_OPENS_WITH_CHECKPOINT : 0;
  b.writeUInt32LE(h.segment, 8);
  b.writeUInt32LE(h.firstBlock, 12);
  Buffer.from(h.recordingId).copy(b, 16, 0, RECORDING_ID_BYTES);
  Buffer.from(key.keyId).copy(b, 32);
  b.writeBigUInt64LE(BigInt(Math.max(0, Math.floor(h.createdAtMs))), 40);
  Buffer.from(h.prevTag).copy(b, 48, 0, TAG_BYTES);
  Buffer.from(nonce).copy(b, 64);
  const { tag } = gcmTag(key, nonce, [b.subarray(0, 76)], new Uint8Array(0));
  tag.copy(b, 76);
  return { bytes: b, tag };
}

/**
 * A block of records (kind 1), compressed with `dict` (what the segment's blocks so far said), or a closing
 * block (kinds 2, 3; `records` then holds at most one note, compressed without a dictionary). Returns the
 * dictionary for the next records block.
 */
export function encodeBlock(
  kind: BlockKind,
  block: number,
  records: readonly RecordedItem[],
  key: RecordingKey,
  nonce: Uint8Array,
  prevTag: Uint8Array,
  dict: BlockDictionary = NO_DICTIONARY,
): EncodedPart & { dict: BlockDictionary } {
  if (records.length > MAX_BLOCK_RECORDS) throw new Error(`a block holds at most ${MAX_BLOCK_RECORDS} records`);
  const d = kind === BlockKind.records ? dict : NO_DICTIONARY;
  const clearText = Buffer.from(records.map((r) => JSON.stringify(r.clear)).join('\n'), 'utf8');
  const clear = records.length === 0 ? Buffer.alloc(0) : deflate(clearText, d.clear);
  const anySecret = records.some((r) => r.secret !== undefined);
  const secretText = anySecret ? Buffer.from(JSON.stringify(records.map((r) => r.secret ?? null)), 'utf8') : Buffer.alloc(0);
  const secretPlain = anySecret ? deflate(secretText, d.secret) : Buffer.alloc(0);
  if (clear.byteLength > MAX_BLOCK_PART || secretPlain.byteLength > MAX_BLOCK_PART) throw new Error('a block part is over 8 MiB');
  const head = Buffer.alloc(BLOCK_HEADER_BYTES);
  head[0] = kind;
  head.writeUInt32LE(block, 4);
  head.writeUInt32LE(records.length, 8);
  head.writeUInt32LE(clear.byteLength, 12);
  head.writeUInt32LE(secretPlain.byteLength, 16);
  Buffer.from(nonce).copy(head, 20);
  const { cipher, tag } = gcmTag(key, nonce, [prevTag, head, clear], secretPlain);
  const next = kind === BlockKind.records ? { clear: nextDictionary(d.clear, clearText), secret: nextDictionary(d.secret, secretText) } : dict;
  return { bytes: Buffer.concat([head, clear, cipher, tag]), tag, dict: next };
}

/** Why a recording cannot be read, as a value: the reader names the file and offset. */
export type RecordingProblem =
  | 'not-a-recording'
  | 'unknown-format'
  | 'wrong-key'
  | 'truncated'
  | 'bad-length'
  | 'tampered'
  | 'out-of-order'
  | 'bad-records';

export type Read<T> = ({ ok: true } & T) | { ok: false; problem: RecordingProblem; offset: number; detail: string };

const fail = (problem: RecordingProblem, offset: number, detail: string) => ({ ok: false as const, problem, offset, detail });

/** Read and authenticate a segment header at the start of `bytes`. */
export function decodeSegmentHeader(bytes: Uint8Array, key: RecordingKey): Read<{ header: SegmentHeader; tag: Uint8Array }> {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < 4 && MAGIC.subarray(0, b.length).equals(b)) return fail('truncated', b.length, `the segment header is cut short (${b.length} of ${SEGMENT_HEADER_BYTES} bytes)`);
  if (b.length < 4 || !b.subarray(0, 4).equals(MAGIC)) return fail('not-a-recording', 0, 'no GREC magic: not a lane recording segment');
  if (b.length < SEGMENT_HEADER_BYTES) return fail('truncated', b.length, `the segment header is cut short (${b.length} of ${SEGMENT_HEADER_BYTES} bytes)`);
  if (b[4] !== RECORDING_FORMAT) return fail('unknown-format', 4, `recording format ${b[4]} (this gate reads format ${RECORDING_FORMAT})`);
  const keyId = b.subarray(32, 40);
  if (!keyId.equals(Buffer.from(key.keyId))) {
    return fail('wrong-key', 32, `recorded with key id ${keyId.toString('hex')}, the key given has id ${keyIdHex(key.keyId)}`);
  }
  const nonce = b.subarray(64, 76);
  const { tag } = gcmTag(key, nonce, [b.subarray(0, 76)], new Uint8Array(0));
  if (!timingSafeEqual(tag, b.subarray(76, 92))) return fail('tampered', 76, 'the segment header does not authenticate (changed or damaged)');
  return {
    ok: true,
    header: {
      segment: b.readUInt32LE(8),
      firstBlock: b.readUInt32LE(12),
      recordingId: new Uint8Array(b.subarray(16, 32)),
      keyId: new Uint8Array(keyId),
      createdAtMs: Number(b.readBigUInt64LE(40)),
      prevTag: new Uint8Array(b.subarray(48, 64)),
      opensWithCheckpoint: (b[5] & SEGMENT_OPENS_WITH_CHECKPOINT) !== 0,
    },
    tag: new Uint8Array(tag),
  };
}

export interface DecodedBlock {
  kind: BlockKind;
  block: number;
  records: RecordedItem[];
  /** Offset just past this block. */
  next: number;
  tag: Uint8Array;
  /** The dictionary for the segment's next records block (unchanged when records were not decoded). */
  dict: BlockDictionary;
}

/**
 * Read and authenticate the block at `offset`, chained on `prevTag`. A file that ends inside the block is
 * `truncated`; a tag that does not verify is `tampered` (the bytes, the order or the chain were changed).
 * With `parse` false a records block is authenticated but its records are not decoded (`records` empty).
 * `dict` is what encodeBlock was given: the previous records blocks of the segment, decoded in order.
 */
export function decodeBlock(
  bytes: Uint8Array,
  offset: number,
  key: RecordingKey,
  prevTag: Uint8Array,
  expectBlock: number,
  parse = true,
  dict: BlockDictionary = NO_DICTIONARY,
): Read<{ block: DecodedBlock }> {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length - offset < BLOCK_HEADER_BYTES) return fail('truncated', offset, `a block header is cut short (${b.length - offset} of ${BLOCK_HEADER_BYTES} bytes)`);
  const head = b.subarray(offset, offset + BLOCK_HEADER_BYTES);
  const kind = head[0];
  const count = head.readUInt32LE(8);
  const c = head.readUInt32LE(12);
  const s = head.readUInt32LE(16);
  if (kind !== BlockKind.records && kind !== BlockKind.segmentEnd && kind !== BlockKind.recordingEnd) return fail('tampered', offset, `block kind ${kind} is not one this format has`);
  if (c > MAX_BLOCK_PART || s > MAX_BLOCK_PART || count > MAX_BLOCK_RECORDS) return fail('bad-length', offset, `block lengths ${c}/${s}/${count} are over the format's bounds`);
  const end = offset + BLOCK_HEADER_BYTES + c + s + TAG_BYTES;
  if (end > b.length) return fail('truncated', offset, `the block at ${offset} needs ${end - offset} bytes, the file has ${b.length - offset}`);
  const clear = b.subarray(offset + BLOCK_HEADER_BYTES, offset + BLOCK_HEADER_BYTES + c);
  const cipher = b.subarray(offset + BLOCK_HEADER_BYTES + c, offset + BLOCK_HEADER_BYTES + c + s);
  const tag = b.subarray(end - TAG_BYTES, end);
  const gcm = createDecipheriv('aes-256-gcm', key.aes, head.subarray(20, 32));
  gcm.setAAD(prevTag);
  gcm.setAAD(head);
  gcm.setAAD(clear);
  gcm.setAuthTag(tag);
  let secretPlain: Buffer;
  try {
    secretPlain = s > 0 ? Buffer.concat([gcm.update(cipher), gcm.final()]) : (gcm.final(), Buffer.alloc(0));
  } catch {
    return fail('tampered', offset, `block ${head.readUInt32LE(4)} does not authenticate: its bytes were changed, or it was moved, removed or put in from elsewhere`);
  }
  const block = head.readUInt32LE(4);
  if (block !== expectBlock) return fail('out-of-order', offset, `block ${block} where block ${expectBlock} was expected`);
  // Closing blocks are always read: a recording-end block may carry the note of an early stop.
  if (!parse && kind === BlockKind.records) return { ok: true, block: { kind: kind as BlockKind, block, records: [], next: end, tag: new Uint8Array(tag), dict } };
  const d = kind === BlockKind.records ? dict : NO_DICTIONARY;
  let records: RecordedItem[];
  let next = dict;
  try {
    const clearText = c === 0 ? Buffer.alloc(0) : inflate(clear, d.clear);
    const secretText = s === 0 ? Buffer.alloc(0) : inflate(secretPlain, d.secret);
    if (kind === BlockKind.records) next = { clear: nextDictionary(d.clear, clearText), secret: nextDictionary(d.secret, secretText) };
    const lines = c === 0 ? [] : clearText.toString('utf8').split('\n');
    const secrets = s === 0 ? [] : (JSON.parse(secretText.toString('utf8')) as unknown[]);
    if (lines.length !== count || (s > 0 && (!Array.isArray(secrets) || secrets.length !== count))) throw new Error(`${lines.length} records where the header says ${count}`);
    records = lines.map((l, i) => {
      const clearRecord = JSON.parse(l) as unknown;
      if (typeof clearRecord !== 'object' || clearRecord === null || Array.isArray(clearRecord)) throw new Error(`record ${i} is not an object`);
      const secret = secrets[i];
      return secret === null || secret === undefined ? { clear: clearRecord as Record<string, unknown> } : { clear: clearRecord as Record<string, unknown>, secret };
    });
  } catch (e) {
    return fail('bad-records', offset, `block ${block} authenticates but its records do not read: ${(e as Error).message}`);
  }
  return { ok: true, block: { kind: kind as BlockKind, block, records, next: end, tag: new Uint8Array(tag), dict: next } };
}
