// The list freshness statement: the back office's signed word that, at a given time, a given list version
// (and trust-list, schedule and fare-table seq) is the latest it publishes. Signed with the list key on
// every answer to `GET /v1/lists/deltas`, bound to the gate's request by a nonce it echoes. A gate counts
// its list age from the last statement it verified, so a path that answers 204, an empty 200 or an old
// recorded answer cannot keep a gate's lists looking fresh: such a round fails and the age keeps growing.
// Pure: node:crypto only.
// Byte table: protocol/README.md, "List freshness statement".

import { createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { listKeyId, sameBytes, type TrustedListKey } from './signature.js';

/** The HTTP response header that carries a statement (standard base64 of its 128 or 144 bytes). */
export const FRESHNESS_HEADER = 'list-freshness';
/** The query parameter that carries the gate's nonce (32 lowercase hex digits). */
export const FRESHNESS_NONCE_PARAM = 'nonce';
/** The query parameter by which a gate asks for format 2 (`2`); without it the back office signs format 1. */
export const FRESHNESS_FORMAT_PARAM = 'freshness';
export const FRESHNESS_NONCE_BYTES = 16;
export const FRESHNESS_FORMAT_VERSION = 2;
const MAGIC = [0x47, 0x4c, 0x46, 0x53]; // "GLFS"

/**
 * The two formats: 1 names the list version and the trust-list seq; 2 also the enforcement schedule's and
 * the fare table's seqs, so a path that drops only those documents cannot keep a gate on old ones.
 */
const LAYOUTS = {
  1: { bytes: 128, keyIdAt: 56, signed: 64 },
  2: { bytes: 144, keyIdAt: 72, signed: 80 },
} as const;
export type FreshnessFormat = keyof typeof LAYOUTS;
/** The longest statement (the header's bound). */
export const FRESHNESS_BYTES = LAYOUTS[2].bytes;

export interface FreshnessStatement {
  /** The latest list version the back office publishes (0: none yet). */
  latestVersion: number;
  /** When that version was published (ms since epoch). */
  latestPublishedAtMs: number;
  /** When the back office signed this statement (ms since epoch): a gate's list age counts from here. */
  issuedAtMs: number;
  /** The seq of the issuer trust list the back office serves (0: none). */
  trustListSeq: number;
  /** The seq of the enforcement schedule it serves (0: none, or a format-1 statement). */
  scheduleSeq: number;
  /** The seq of the fare table it serves (0: none, or a format-1 statement). */
  fareTableSeq: number;
  /** The statement's format: what the back office was asked for (format 1 names no schedule or fare table). */
  format: FreshnessFormat;
  /** The gate's nonce, echoed (all zeros when the request carried none). */
  nonce: Uint8Array;
  keyId: Uint8Array;
}

/** Why a statement is refused: its bytes (list-format errors) or the gate's rules (checkFreshness). */
export type FreshnessError =
  | 'missing'
  | 'too-short'
  | 'bad-length'
  | 'bad-magic'
  | 'unsupported-format'
  | 'bad-layout'
  | 'unknown-key'
  | 'bad-signature'
  | 'wrong-nonce'
  | 'not-newer'
  | 'rollback';
export type FreshnessChecked = { ok: true; value: FreshnessStatement } | { ok: false; error: FreshnessError; detail: string };

const fail = (error: FreshnessError, detail: string): FreshnessChecked => ({ ok: false, error, detail });
const u64 = (n: number) => BigInt(Math.max(0, Math.floor(n)));

type Signable = Omit<FreshnessStatement, 'keyId' | 'nonce' | 'format' | 'scheduleSeq' | 'fareTableSeq'> & {
  nonce?: Uint8Array;
  scheduleSeq?: number;
  fareTableSeq?: number;
  /** 2 unless the gate did not ask for it (format 1 leaves the schedule and fare-table seqs out). */
  format?: FreshnessFormat;
};

/** Build and sign a statement (the back office side; the simulator and tests). */
export function signFreshness(s: Signable, privateKey: KeyObject): Uint8Array {
  const format = s.format ?? FRESHNESS_FORMAT_VERSION;
  const L = LAYOUTS[format];
  const b = new Uint8Array(L.bytes);
  const v = new DataView(b.buffer);
  b.set(MAGIC, 0);
  v.setUint16(4, format, true);
  v.setUint16(6, L.bytes, true);
  v.setUint32(8, s.latestVersion, true);
  v.setBigUint64(16, u64(s.latestPublishedAtMs), true);
  v.setBigUint64(24, u64(s.issuedAtMs), true);
  v.setBigUint64(32, u64(s.trustListSeq), true);
  if (s.nonce) {
    if (s.nonce.byteLength !== FRESHNESS_NONCE_BYTES) throw new RangeError(`nonce must be ${FRESHNESS_NONCE_BYTES} bytes`);
    b.set(s.nonce, 40);
  }
  if (format === 2) {
    v.setBigUint64(56, u64(s.scheduleSeq ?? 0), true);
    v.setBigUint64(64, u64(s.fareTableSeq ?? 0), true);
  }
  b.set(listKeyId(createPublicKey(privateKey)), L.keyIdAt);
  b.set(edSign(null, b.subarray(0, L.signed), privateKey), L.signed);
  return b;
}

/** Parse a statement and check its signature against the gate's list keys. */
export function readFreshness(bytes: Uint8Array, keys: readonly TrustedListKey[]): FreshnessChecked {
  if (bytes.byteLength < 8) return fail('too-short', `freshness statement: ${bytes.byteLength} bytes, needs ${LAYOUTS[1].bytes} or ${LAYOUTS[2].bytes}`);
  if (!sameBytes(bytes.subarray(0, 4), Uint8Array.from(MAGIC))) return fail('bad-magic', 'freshness statement: magic is not GLFS');
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const format = v.getUint16(4, true);
  if (format !== 1 && format !== 2) return fail('unsupported-format', `freshness statement: format ${format}, this gate reads 1 and 2`);
  const L = LAYOUTS[format];
  if (bytes.byteLength < L.bytes) return fail('too-short', `freshness statement: ${bytes.byteLength} bytes, format ${format} needs ${L.bytes}`);
  if (bytes.byteLength !== L.bytes) return fail('bad-length', `freshness statement: ${bytes.byteLength} bytes, format ${format} must be ${L.bytes}`);
  if (v.getUint16(6, true) !== L.bytes || v.getUint32(12, true) !== 0) return fail('bad-layout', 'freshness statement: length field or reserved bytes 12-15');
  const keyId = bytes.slice(L.keyIdAt, L.keyIdAt + 8);
  const k = keys.find((t) => sameBytes(t.keyId, keyId));
  if (!k) return fail('unknown-key', `freshness statement: signed by unknown key ${Buffer.from(keyId).toString('hex')}`);
  let good = false;
  try {
    good = edVerify(null, bytes.subarray(0, L.signed), k.publicKey, bytes.subarray(L.signed, L.bytes));
  } catch {
    good = false;
  }
  if (!good) return fail('bad-signature', 'freshness statement: signature does not verify');
  const big = (at: number) => v.getBigUint64(at, true);
  const wide = format === 2 ? [16, 24, 32, 56, 64] : [16, 24, 32];
  if (wide.some((at) => big(at) > BigInt(Number.MAX_SAFE_INTEGER))) return fail('bad-layout', 'freshness statement: a time or seq beyond 2^53');
  return {
    ok: true,
    value: {
      latestVersion: v.getUint32(8, true),
      latestPublishedAtMs: Number(big(16)),
      issuedAtMs: Number(big(24)),
      trustListSeq: Number(big(32)),
      scheduleSeq: format === 2 ? Number(big(56)) : 0,
      fareTableSeq: format === 2 ? Number(big(64)) : 0,
      format,
      nonce: bytes.slice(40, 56),
      keyId,
    },
  };
}

/**
 * The gate's rules on a verified statement: it must echo the nonce the gate sent (else it answers some
 * other request: a replay), be newer than the last one the gate took, and never name an older list
 * version or trust-list seq than that one did (a back office does not go back).
 */
export function checkFreshness(s: FreshnessStatement, nonce: Uint8Array, last: FreshnessStatement | undefined): FreshnessChecked {
  if (!sameBytes(s.nonce, nonce)) return fail('wrong-nonce', `freshness statement answers another request (nonce ${Buffer.from(s.nonce).toString('hex')}, sent ${Buffer.from(nonce).toString('hex')}): a replay`);
  if (last) {
    if (s.issuedAtMs <= last.issuedAtMs) return fail('not-newer', `freshness statement issued at ${s.issuedAtMs} is not newer than the last one taken (${last.issuedAtMs})`);
    if (s.latestVersion < last.latestVersion) return fail('rollback', `freshness statement names list version ${s.latestVersion}, older than the ${last.latestVersion} already announced`);
    if (s.trustListSeq < last.trustListSeq) return fail('rollback', `freshness statement names trust-list seq ${s.trustListSeq}, older than the ${last.trustListSeq} already announced`);
    // A back office that has named its schedule and fare table does not stop naming them: a format-1 answer
    // then is a request whose `freshness=2` was stripped on the way (or a back office rolled back).
    if (s.format < last.format) return fail('rollback', `freshness statement in format ${s.format} after format ${last.format}: the request was altered on the way, or the back office rolled back`);
    if (s.format === 2 && s.scheduleSeq < last.scheduleSeq) return fail('rollback', `freshness statement names schedule seq ${s.scheduleSeq}, older than the ${last.scheduleSeq} already announced`);
    if (s.format === 2 && s.fareTableSeq < last.fareTableSeq) return fail('rollback', `freshness statement names fare-table seq ${s.fareTableSeq}, older than the ${last.fareTableSeq} already announced`);
  }
  return { ok: true, value: s };
}

/** Read the header value (base64) and check it: signature, nonce, order. `undefined`: the header was absent. */
export function acceptFreshness(header: string | undefined, keys: readonly TrustedListKey[], nonce: Uint8Array, last: FreshnessStatement | undefined): FreshnessChecked {
  if (header === undefined || header === '') return fail('missing', `no ${FRESHNESS_HEADER} header: the answer is not vouched for by the back office`);
  if (header.length > 4 * Math.ceil(FRESHNESS_BYTES / 3) || !/^[A-Za-z0-9+/]+={0,2}$/.test(header)) return fail('bad-length', `${FRESHNESS_HEADER}: not base64 of ${FRESHNESS_BYTES} bytes`);
  const r = readFreshness(new Uint8Array(Buffer.from(header, 'base64')), keys);
  return r.ok ? checkFreshness(r.value, nonce, last) : r;
}

/** The header value for a statement. */
export const freshnessHeaderValue = (statement: Uint8Array): string => Buffer.from(statement).toString('base64');

/** A nonce as the query parameter spells it, and back (undefined when it is not 32 hex digits). */
export const nonceHex = (n: Uint8Array): string => Buffer.from(n).toString('hex');
export function nonceFromHex(s: string | undefined): Uint8Array | undefined {
  return s !== undefined && /^[0-9a-f]{32}$/.test(s) ? new Uint8Array(Buffer.from(s, 'hex')) : undefined;
}
