// Checking a ride code against the issuer trust list, in two stages, so the costly one can run beside
// the QR decode on the camera's worker thread and the lane's thread keeps only the cheap one:
// 1. `checkRideCodeSignature`: parse, issuer and key in the list, not revoked, Ed25519 signature, key in
//    service at issued-at, validity under the cap. It does not depend on the clock (about 0.2 ms: the
//    signature).
// 2. `checkRideCodeWindow`: the validity window (with the skew allowance) at the decision's instant, and
//    the credential's shape (microseconds).
// Stage 1's verdict travels with the code as a `RideCodePrecheck` naming the trust list it was reached
// with (`trustId`); a verifier uses it only when that id is the list it holds now, else checks again.
// Pure: node:crypto for the signature only. Format: protocol/README.md, "QR ride codes".

import type { KeyObject } from 'node:crypto';
import { checkCredential, type QrCredential, type QrIssuer } from './credential.js';
import type { ReasonCode } from './reasons.js';
import { issuerCode, parseRideCode, rideCodeSignatureOk, type RideCodeParseError } from './ride-code.js';
import { ed25519PublicKey, type IssuerKey, type TrustList } from './trust-list.js';

/** A code whose signature checked against a key of the trust list; its clock checks are still to do. */
export interface SignedRideCode {
  issuer: QrIssuer;
  account: string;
  /** `issuer:hex(codeId)`: the replay key. */
  codeIdText: string;
  issuedAtS: number;
  validitySeconds: number;
}

export type RideCodeRefusal = { ok: false; reason: ReasonCode; detail?: string };
export type RideCodeSignatureCheck = { ok: true; code: SignedRideCode } | RideCodeRefusal;
export type RideCodeCheck = { ok: true; credential: QrCredential } | RideCodeRefusal;

/** Stage 1's verdict on one code, reached with the trust list `trustId` names (see `RideCodeTrustShare`). */
export interface RideCodePrecheck {
  trustId: number;
  verdict: RideCodeSignatureCheck;
}

/**
 * What a thread needs to run stage 1 for a verifier: its trust list, its validity cap, and the id it gave
 * this list (new at every update, unique in the process), which every verdict carries back.
 */
export interface RideCodeTrustShare {
  trustId: number;
  list: TrustList;
  maxValiditySeconds: number;
}

interface KeyEntry extends IssuerKey {
  key: KeyObject;
}

const PARSE_REASON: Record<RideCodeParseError, ReasonCode> = {
  prefix: 'qr-malformed',
  base45: 'qr-malformed',
  length: 'qr-malformed',
  version: 'qr-malformed',
  issuer: 'qr-unknown-issuer',
  account: 'qr-malformed',
};

/** A trust list made ready for stage 1: keys imported once, found by (issuer, key id). */
export class RideCodeKeys {
  /** (issuer code << 16 | key id) → key. */
  private readonly keys = new Map<number, KeyEntry>();
  private readonly issuers = new Set<QrIssuer>();

  /** `imported`: KeyObjects kept across updates (raw key, base64 → KeyObject), so an update re-imports only new keys. */
  constructor(
    readonly list: TrustList,
    imported: Map<string, KeyObject> = new Map(),
  ) {
    for (const k of list.keys) {
      const raw = Buffer.from(k.publicKey).toString('base64');
      let key = imported.get(raw);
      if (!key) {
        key = ed25519PublicKey(k.publicKey);
        imported.set(raw, key);
      }
      this.keys.set((issuerCode(k.issuer) << 16) | k.keyId, { ...k, key });
      this.issuers.add(k.issuer);
    }
  }

  /** Stage 1: everything about the code that does not depend on the clock. */
  checkSignature(text: string, maxValiditySeconds: number): RideCodeSignatureCheck {
    const p = parseRideCode(text);
    if (!p.ok) return { ok: false, reason: PARSE_REASON[p.error], detail: p.detail };
    const c = p.code;
    if (!this.issuers.has(c.issuer)) return { ok: false, reason: 'qr-unknown-issuer', detail: `issuer ${c.issuer} not in trust list` };
    const k = this.keys.get((issuerCode(c.issuer) << 16) | c.keyId);
    if (!k) return { ok: false, reason: 'qr-unknown-key', detail: `${c.issuer} key ${c.keyId} not in trust list` };
    // Revoked: refused at once, before spending a signature check on it.
    if (k.revoked) return { ok: false, reason: 'qr-revoked-key', detail: `${c.issuer} key ${c.keyId} revoked` };
    if (!rideCodeSignatureOk(c, k.key)) return { ok: false, reason: 'qr-bad-signature' };
    const issuedAtMs = c.issuedAtS * 1000;
    if (issuedAtMs < k.notBeforeMs || issuedAtMs >= k.notAfterMs) {
      return { ok: false, reason: 'qr-key-expired', detail: `${c.issuer} key ${c.keyId} not in service at issued-at` };
    }
    if (c.validitySeconds > maxValiditySeconds) {
      return { ok: false, reason: 'qr-malformed', detail: `validity ${c.validitySeconds}s > ${maxValiditySeconds}s` };
    }
    return { ok: true, code: { issuer: c.issuer, account: c.account, codeIdText: c.codeIdText, issuedAtS: c.issuedAtS, validitySeconds: c.validitySeconds } };
  }
}

/** Stage 2: accepted iff issuedAt - skew <= now < issuedAt + validity + skew; then the credential's shape. */
export function checkRideCodeWindow(c: SignedRideCode, clockSkewMs: number, nowMs: number): RideCodeCheck {
  const issuedAtMs = c.issuedAtS * 1000;
  if (nowMs < issuedAtMs - clockSkewMs) return { ok: false, reason: 'qr-not-yet-valid', detail: `issued ${issuedAtMs - nowMs} ms in the future` };
  const lastMs = issuedAtMs + c.validitySeconds * 1000 + clockSkewMs - 1;
  if (nowMs > lastMs) return { ok: false, reason: 'qr-expired', detail: `expired ${nowMs - lastMs} ms ago` };
  const credential: QrCredential = { kind: 'qr', issuer: c.issuer, account: c.account, codeId: c.codeIdText, validUntilMs: lastMs };
  if (!checkCredential(credential).ok) return { ok: false, reason: 'qr-malformed', detail: 'account' };
  return { ok: true, credential };
}
