// The JSON envelope shared by the back office's signed documents (issuer trust list, enforcement
// schedule, fare table): size bound, JSON object, then `format`/`v`/`alg` checked.

import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { listKeyId, type TrustedListKey } from './lists/signature.js';

export type EnvelopeResult =
  | { ok: true; env: Record<string, unknown> }
  | { ok: false; error: 'envelope' | 'json'; detail: string };

/** Parse a signed document's envelope; with `rejectArrays` a JSON array is refused as "not an object". */
export function parseSignedEnvelope(
  doc: Uint8Array,
  maxBytes: number,
  format: string,
  version: number,
  rejectArrays = false,
): EnvelopeResult {
  if (doc.length > maxBytes) return { ok: false, error: 'envelope', detail: `document larger than ${maxBytes} bytes` };
  let env: Record<string, unknown>;
  try {
    env = JSON.parse(Buffer.from(doc.buffer, doc.byteOffset, doc.byteLength).toString('utf8'));
  } catch (e) {
    return { ok: false, error: 'json', detail: (e as Error).message };
  }
  if (typeof env !== 'object' || env === null || (rejectArrays && Array.isArray(env))) return { ok: false, error: 'envelope', detail: 'not an object' };
  if (env.format !== format || env.v !== version || env.alg !== 'Ed25519') {
    return { ok: false, error: 'envelope', detail: `format/v/alg must be ${format}/${version}/Ed25519` };
  }
  return { ok: true, env };
}

// The back office's signed parameter documents (enforcement schedule, fare table) share one envelope: the
// payload's JSON as base64, signed with a list signing key named by its 8-byte id. Each format checks its
// own payload fields; the envelope, the key and the signature are checked here, once.

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
const b64 = (s: unknown): Buffer | undefined => (typeof s === 'string' && s.length % 4 === 0 && B64.test(s) ? Buffer.from(s, 'base64') : undefined);

export type SignedDocumentError = 'json' | 'envelope' | 'unknown-key' | 'bad-signature' | 'payload';
export type SignedPayloadResult = { ok: true; payload: Record<string, unknown> } | { ok: false; error: SignedDocumentError; detail: string };

/** Sign `payload` (its JSON, which carries its own `v`) into the envelope `format`/`version`. */
export function signDocument(format: string, version: number, payload: object, privateKey: KeyObject): Uint8Array {
  const bytes = Buffer.from(JSON.stringify(payload), 'utf8');
  const env = {
    format,
    v: version,
    alg: 'Ed25519',
    keyId: Buffer.from(listKeyId(createPublicKey(privateKey))).toString('hex'),
    payload: bytes.toString('base64'),
    signature: sign(null, bytes, privateKey).toString('base64'),
  };
  return new Uint8Array(Buffer.from(JSON.stringify(env), 'utf8'));
}

/**
 * Parse a signed document, verify its signature against the list keys the gate trusts (by key id), and
 * return its payload as a JSON object whose `v` is `version`: the format then checks its own fields.
 */
export function verifySignedDocument(doc: Uint8Array, maxBytes: number, format: string, version: number, keys: readonly TrustedListKey[]): SignedPayloadResult {
  const parsed = parseSignedEnvelope(doc, maxBytes, format, version, true);
  if (!parsed.ok) return parsed;
  const env = parsed.env;
  if (typeof env.keyId !== 'string' || !/^[0-9a-f]{16}$/.test(env.keyId)) return { ok: false, error: 'envelope', detail: 'keyId must be 16 hex digits' };
  const payload = b64(env.payload);
  const sig = b64(env.signature);
  if (!payload || !sig || sig.length !== 64) return { ok: false, error: 'envelope', detail: 'payload/signature must be base64 (signature 64 bytes)' };
  const key = keys.find((k) => Buffer.from(k.keyId).toString('hex') === env.keyId);
  if (!key) return { ok: false, error: 'unknown-key', detail: `signing key ${env.keyId} not trusted` };
  let good = false;
  try {
    good = verify(null, payload, key.publicKey, sig);
  } catch {
    good = false;
  }
  if (!good) return { ok: false, error: 'bad-signature', detail: 'back office signature does not verify' };
  let p: Record<string, unknown>;
  try {
    p = JSON.parse(payload.toString('utf8'));
  } catch (e) {
    return { ok: false, error: 'payload', detail: `payload JSON: ${(e as Error).message}` };
  }
  if (typeof p !== 'object' || p === null || Array.isArray(p)) return { ok: false, error: 'payload', detail: 'payload not an object' };
  if (p.v !== version) return { ok: false, error: 'payload', detail: `payload v must be ${version}` };
  return { ok: true, payload: p };
}
