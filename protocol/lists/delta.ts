// Deltas (version N → N+1): encoding, and splitting and verifying a response of concatenated deltas.
// Pure. Byte table: protocol/README.md, "Delta body".

import { HEADER_BYTES, MAGIC_DELTA, fail, readDeltaHeader, writeCommon, type Checked, type DeltaHeader } from './header.js';
import { classifyKey, latin1 } from './keys.js';
import { checkSignature, digestGen, digestOf, sameBytes, type TrustedListKey } from './signature.js';
import { runToEnd } from './run.js';

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
