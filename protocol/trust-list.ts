// The issuer trust list: which issuer keys a gate accepts ride codes from, with validity windows and
// revocation, as a document signed by the back office (like the EU DCC signer lists). The payload is
// signed as exact bytes (no JSON canonicalisation), JWS-style. Pure: no I/O.
// Layout: protocol/README.md, section "QR ride codes" → "Issuer trust list".

import { parseSignedEnvelope } from './signed-document.js';
import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { QR_ISSUERS, type QrIssuer } from './credential.js';

export const TRUST_LIST_FORMAT = 'bj-qr-trust-list';
export const TRUST_LIST_VERSION = 1;
const MAX_DOCUMENT_BYTES = 1_000_000;

export interface IssuerKey {
  issuer: QrIssuer;
  keyId: number;
  /** Raw 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
  /** Codes issued at or after this instant (ms) may use the key. */
  notBeforeMs: number;
  /** Codes issued at or after this instant (ms) may no longer use it: the scheduled end of a rotation. */
  notAfterMs: number;
  /** A revoked key is refused at once, whatever the code's issued-at. */
  revoked: boolean;
}

export interface TrustList {
  version: number;
  /** Monotonic sequence number; a gate never goes back to a lower one. */
  seq: number;
  issuedAtMs: number;
  keys: IssuerKey[];
}

export type TrustListError = 'json' | 'envelope' | 'unknown-signer' | 'bad-signature' | 'payload';
export type TrustListResult = { ok: true; list: TrustList; signer: string } | { ok: false; error: TrustListError; detail: string };

/** Ed25519 public key from its raw 32 bytes. */
export function ed25519PublicKey(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new RangeError('Ed25519 public key must be 32 bytes');
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
}

/** Raw 32 bytes of an Ed25519 public key. */
export function ed25519Raw(key: KeyObject): Uint8Array {
  const jwk = key.export({ format: 'jwk' }) as { x?: string; crv?: string };
  if (jwk.crv !== 'Ed25519' || !jwk.x) throw new RangeError('not an Ed25519 key');
  return new Uint8Array(Buffer.from(jwk.x, 'base64url'));
}

/** Build and sign a trust list document (the back office side; simulator and tests). */
export function signTrustList(list: TrustList, signer: string, backOfficeKey: KeyObject): Uint8Array {
  const payload = {
    v: list.version,
    seq: list.seq,
    issuedAtMs: list.issuedAtMs,
    keys: list.keys.map((k) => ({
      issuer: k.issuer,
      kid: k.keyId,
      alg: 'Ed25519',
      publicKey: Buffer.from(k.publicKey).toString('base64'),
      notBeforeMs: k.notBeforeMs,
      notAfterMs: k.notAfterMs,
      revoked: k.revoked,
    })),
  };
  const bytes = Buffer.from(JSON.stringify(payload), 'utf8');
  const env = {
    format: TRUST_LIST_FORMAT,
    v: TRUST_LIST_VERSION,
    signer,
    alg: 'Ed25519',
    payload: bytes.toString('base64'),
    signature: sign(null, bytes, backOfficeKey).toString('base64'),
  };
  return new Uint8Array(Buffer.from(JSON.stringify(env), 'utf8'));
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
function b64(s: unknown): Buffer | undefined {
  if (typeof s !== 'string' || s.length % 4 !== 0 || !B64.test(s)) return undefined;
  return Buffer.from(s, 'base64');
}
const isInt = (n: unknown, min: number, max: number): n is number => typeof n === 'number' && Number.isInteger(n) && n >= min && n <= max;

/**
 * Parse the document bytes and verify the back office signature against the signer keys the gate
 * was installed with (by signer id, so the back office key itself can rotate).
 */
export function verifyTrustList(doc: Uint8Array, backOfficeKeys: ReadonlyMap<string, KeyObject>): TrustListResult {
  const parsed = parseSignedEnvelope(doc, MAX_DOCUMENT_BYTES, TRUST_LIST_FORMAT, TRUST_LIST_VERSION);
  if (!parsed.ok) return parsed;
  const env = parsed.env;
  if (typeof env.signer !== 'string') return { ok: false, error: 'envelope', detail: 'signer missing' };
  const payload = b64(env.payload);
  const sig = b64(env.signature);
  if (!payload || !sig || sig.length !== 64) return { ok: false, error: 'envelope', detail: 'payload/signature must be base64 (signature 64 bytes)' };
  const key = backOfficeKeys.get(env.signer);
  if (!key) return { ok: false, error: 'unknown-signer', detail: `signer ${env.signer} not installed` };
  let good = false;
  try {
    good = verify(null, payload, key, sig);
  } catch {
    good = false;
  }
  if (!good) return { ok: false, error: 'bad-signature', detail: 'back office signature does not verify' };
  const list = parsePayload(payload);
  if (typeof list === 'string') return { ok: false, error: 'payload', detail: list };
  return { ok: true, list, signer: env.signer };
}

function parsePayload(bytes: Buffer): TrustList | string {
  let p: Record<string, unknown>;
  try {
    p = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    return `payload JSON: ${(e as Error).message}`;
  }
  if (typeof p !== 'object' || p === null) return 'payload not an object';
  if (p.v !== TRUST_LIST_VERSION) return `payload v must be ${TRUST_LIST_VERSION}`;
  if (!isInt(p.seq, 0, Number.MAX_SAFE_INTEGER)) return 'seq must be a non-negative integer';
  if (!isInt(p.issuedAtMs, 0, Number.MAX_SAFE_INTEGER)) return 'issuedAtMs must be a non-negative integer';
  if (!Array.isArray(p.keys)) return 'keys must be an array';
  const keys: IssuerKey[] = [];
  const seen = new Set<string>();
  for (const [i, k] of p.keys.entries()) {
    const at = `keys[${i}]`;
    if (typeof k !== 'object' || k === null) return `${at} not an object`;
    if (!QR_ISSUERS.includes(k.issuer)) return `${at}.issuer unknown: ${String(k.issuer)}`;
    if (!isInt(k.kid, 0, 0xffff)) return `${at}.kid must be 0-65535`;
    if (k.alg !== 'Ed25519') return `${at}.alg must be Ed25519`;
    const pub = b64(k.publicKey);
    if (!pub || pub.length !== 32) return `${at}.publicKey must be 32 bytes base64`;
    if (!isInt(k.notBeforeMs, 0, Number.MAX_SAFE_INTEGER) || !isInt(k.notAfterMs, 0, Number.MAX_SAFE_INTEGER) || k.notAfterMs <= k.notBeforeMs) {
      return `${at}: notBeforeMs < notAfterMs, both integers`;
    }
    if (typeof k.revoked !== 'boolean') return `${at}.revoked must be boolean`;
    const id = `${k.issuer}/${k.kid}`;
    if (seen.has(id)) return `${at}: duplicate key ${id}`;
    seen.add(id);
    keys.push({ issuer: k.issuer, keyId: k.kid, publicKey: new Uint8Array(pub), notBeforeMs: k.notBeforeMs, notAfterMs: k.notAfterMs, revoked: k.revoked });
  }
  return { version: p.v, seq: p.seq, issuedAtMs: p.issuedAtMs, keys };
}
