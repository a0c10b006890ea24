// Gate-side verification of QR ride codes against the issuer trust list: signature, known issuer and
// key, key in service at issued-at, not revoked, code inside its validity window (with a clock-skew
// allowance). Replay is UsedCodes' job (shared among a station's lanes through the station bus:
// firmware/station/used-codes.ts); the decision core asks it.

import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { checkCredential, type QrIssuer } from '../../protocol/credential.js';
import { issuerCode, parseRideCode, rideCodeSignatureOk, type RideCodeParseError } from '../../protocol/ride-code.js';
import { ed25519PublicKey, verifyTrustList, type IssuerKey, type TrustList } from '../../protocol/trust-list.js';
import type { ReasonCode } from '../../protocol/reasons.js';
import type { RideCodeCheck, RideCodeVerifier } from './decision-core.js';
import { z } from 'zod';
import type { Clock } from '../../drivers/seams.js';
import { ConfigError, parseDriverConfig } from '../config/config.js';

export interface RideCodePolicy {
  /** Allowance for the phone's clock against the gate's, applied at both ends of the window. */
  clockSkewMs: number;
  /** Codes claiming a longer validity are refused as malformed: dynamic codes live seconds, not hours. */
  maxValiditySeconds: number;
}

export const defaultRideCodePolicy: RideCodePolicy = { clockSkewMs: 30_000, maxValiditySeconds: 600 };

interface KeyEntry extends IssuerKey {
  key: KeyObject;
}

/** Counters per outcome, for metrics and the bench. */
export type RideCodeCounters = Record<'ok' | ReasonCode, number>;

const PARSE_REASON: Record<RideCodeParseError, ReasonCode> = {
  prefix: 'qr-malformed',
  base45: 'qr-malformed',
  length: 'qr-malformed',
  version: 'qr-malformed',
  issuer: 'qr-unknown-issuer',
  account: 'qr-malformed',
};

export class RideCodes implements RideCodeVerifier {
  /** (issuer code << 16 | key id) → key. Imported KeyObjects are cached across trust-list updates. */
  private keys = new Map<number, KeyEntry>();
  private issuers = new Set<QrIssuer>();
  private readonly imported = new Map<string, KeyObject>();
  private list?: TrustList;
  readonly counters: Partial<RideCodeCounters> = {};

  constructor(
    list: TrustList,
    readonly policy: RideCodePolicy = defaultRideCodePolicy,
  ) {
    this.setTrustList(list);
  }

  get trustList(): TrustList | undefined {
    return this.list;
  }

  /** Swap in a newer verified list. Refuses to go back to an older sequence number (a replayed old list could un-revoke a key). */
  setTrustList(list: TrustList): void {
    if (this.list && list.seq < this.list.seq) throw new Error(`trust list seq ${list.seq} is older than the installed ${this.list.seq}`);
    const keys = new Map<number, KeyEntry>();
    const issuers = new Set<QrIssuer>();
    for (const k of list.keys) {
      const raw = Buffer.from(k.publicKey).toString('base64');
      let key = this.imported.get(raw);
      if (!key) {
        key = ed25519PublicKey(k.publicKey);
        this.imported.set(raw, key);
      }
      keys.set((issuerCode(k.issuer) << 16) | k.keyId, { ...k, key });
      issuers.add(k.issuer);
    }
    this.keys = keys;
    this.issuers = issuers;
    this.list = list;
  }

  verify(text: string, nowMs: number): RideCodeCheck {
    const r = this.check(text, nowMs);
    const k = r.ok ? 'ok' : r.reason;
    this.counters[k] = (this.counters[k] ?? 0) + 1;
    return r;
  }

  private check(text: string, nowMs: number): RideCodeCheck {
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
    if (c.validitySeconds > this.policy.maxValiditySeconds) {
      return { ok: false, reason: 'qr-malformed', detail: `validity ${c.validitySeconds}s > ${this.policy.maxValiditySeconds}s` };
    }
    const skew = this.policy.clockSkewMs;
    // Accepted iff issuedAt - skew <= now < issuedAt + validity + skew.
    if (nowMs < issuedAtMs - skew) return { ok: false, reason: 'qr-not-yet-valid', detail: `issued ${issuedAtMs - nowMs} ms in the future` };
    const lastMs = issuedAtMs + c.validitySeconds * 1000 + skew - 1;
    if (nowMs > lastMs) return { ok: false, reason: 'qr-expired', detail: `expired ${nowMs - lastMs} ms ago` };
    const credential = { kind: 'qr' as const, issuer: c.issuer, account: c.account, codeId: c.codeIdText, validUntilMs: lastMs };
    if (!checkCredential(credential).ok) return { ok: false, reason: 'qr-malformed', detail: 'account' };
    return { ok: true, credential };
  }
}

/** Read a trust list document from a file and verify it with the installed back office keys. Throws with the classified reason. */
export function loadTrustListFile(file: string, backOfficeKeys: ReadonlyMap<string, KeyObject>): TrustList {
  const r = verifyTrustList(new Uint8Array(readFileSync(file)), backOfficeKeys);
  if (!r.ok) throw new Error(`trust list ${file} refused (${r.error}): ${r.detail}`);
  return r.list;
}

/** Back office signer keys from config: `{ "bo-2022-1": "<base64 raw Ed25519 public key>" }`. */
export function backOfficeKeysFrom(raw: Record<string, string>): Map<string, KeyObject> {
  return new Map(Object.entries(raw).map(([id, b64]) => [id, ed25519PublicKey(new Uint8Array(Buffer.from(b64, 'base64')))]));
}

// --- Config ---------------------------------------------------------------------------------------

/**
 * The lane config's top-level `qr` section: where the trust list is, which back office keys sign it,
 * and the window policy. Example:
 * { "trustList": "/var/lib/gate/qr-trust-list.json", "backOfficeKeys": { "bo-1": "<base64 raw Ed25519>" }, "clockSkewSeconds": 30 }
 * Used code ids travel among the station's lanes on the station bus (the `station` section), no longer
 * over UDP: a `usedCodes` key here is refused by name.
 */
export const qrConfigSchema = z
  .object({
    trustList: z.string().min(1),
    backOfficeKeys: z.record(z.string().min(1), z.string().regex(/^[A-Za-z0-9+/]{43}=$/, '32-byte Ed25519 public key, base64')),
    clockSkewSeconds: z.number().int().min(0).max(600).default(30),
    maxValiditySeconds: z.number().int().min(1).max(65_535).default(600),
  })
  .strict();
export type QrConfig = z.infer<typeof qrConfigSchema>;

/** Build the lane's ride-code verifier (trust list loaded and verified from its file). Throws ConfigError naming the field. */
export interface QrFromConfig {
  rideCodes: RideCodes;
  /** Install a trust-list document delivered by list sync: verified against the configured back-office keys first. */
  updateTrustList(doc: Uint8Array): { ok: true; seq: number } | { ok: false; detail: string };
  stop(): Promise<void>;
}

export async function qrFromConfig(raw: unknown, laneId: string, clock?: Clock): Promise<QrFromConfig> {
  const c = parseDriverConfig(qrConfigSchema, raw, 'qr');
  let list: TrustList;
  try {
    list = loadTrustListFile(c.trustList, backOfficeKeysFrom(c.backOfficeKeys));
  } catch (e) {
    throw new ConfigError(`qr.trustList: ${(e as Error).message}`);
  }
  const rideCodes = new RideCodes(list, { clockSkewMs: c.clockSkewSeconds * 1000, maxValiditySeconds: c.maxValiditySeconds });
  const keys = backOfficeKeysFrom(c.backOfficeKeys);
  const updateTrustList = (doc: Uint8Array): { ok: true; seq: number } | { ok: false; detail: string } => {
    const r = verifyTrustList(doc, keys);
    if (!r.ok) return { ok: false, detail: `${r.error}: ${r.detail}` };
    try {
      rideCodes.setTrustList(r.list);
    } catch (e) {
      return { ok: false, detail: (e as Error).message };
    }
    return { ok: true, seq: r.list.seq };
  };
  return { rideCodes, updateTrustList, stop: async () => {} };
}
