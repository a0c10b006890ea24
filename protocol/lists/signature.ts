// Ed25519 signatures and SHA-256 digests of snapshots and deltas: signing keys, signing, and the checks a
// gate makes before it uses a byte (whole, in slices, or as the bytes stream in). Pure: node:crypto only.

import { createHash, createPrivateKey, createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { HEADER_BYTES, SIGNED_BYTES, SIG_AT, fail, readSnapshotHeader, type Checked, type SnapshotHeader } from './header.js';
import { runToEnd } from './run.js';

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

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function checkSignature(bytes: Uint8Array, keyId: Uint8Array, keys: readonly TrustedListKey[], what: string): Checked<true> {
  const k = keys.find((t) => sameBytes(t.keyId, keyId));
  if (!k) return fail('unknown-key', `${what}: signed by unknown key ${Buffer.from(keyId).toString('hex')}`);
  const ok = edVerify(null, bytes.subarray(0, SIGNED_BYTES), k.publicKey, bytes.subarray(SIG_AT, SIG_AT + 64));
  return ok ? { ok: true, value: true } : fail('bad-signature', `${what}: signature does not verify`);
}

export function digestOf(body: Uint8Array): Uint8Array {
  return runToEnd(digestGen(body));
}

const DIGEST_SLICE = 1 << 18;
/** SHA-256 in 256 KiB slices, yielding between them (well under a millisecond each). */
export function* digestGen(body: Uint8Array): Generator<void, Uint8Array, void> {
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
