// Gate-side verification of QR ride codes against the issuer trust list: signature, known issuer and
// key, key in service at issued-at, not revoked, code inside its validity window (with a clock-skew
// allowance). Replay is UsedCodes' job (shared among a station's lanes through the station bus:
// firmware/station/used-codes.ts); the decision core asks it. The checks themselves are
// protocol/ride-code-check.ts, in two stages: the signature stage, when the camera's decode worker ran it
// with the list held now (`shareWith`), is taken from its verdict, so the lane's thread keeps only the
// clock checks.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { RideCodeKeys, checkRideCodeWindow, type RideCodePrecheck, type RideCodeSignatureCheck, type RideCodeTrustShare } from '../../protocol/ride-code-check.js';
import { verifyTrustList, ed25519PublicKey, type TrustList } from '../../protocol/trust-list.js';
import type { ReasonCode } from '../../protocol/reasons.js';
import type { CredentialSource } from '../../drivers/seams.js';
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

/** Counters per outcome, for metrics and the bench. */
export type RideCodeCounters = Record<'ok' | ReasonCode, number>;

/**
 * A process-unique id for each installed list: a worker's verdict names the list it was reached with,
 * and only a verdict naming the list held now is taken (random start: ids from another process or an
 * earlier run never match).
 */
let nextTrustId = randomBytes(4).readUInt32BE(0) * 2 ** 16;

export class RideCodes implements RideCodeVerifier {
  private keys!: RideCodeKeys;
  /** Imported KeyObjects are cached across trust-list updates. */
  private readonly imported = new Map<string, KeyObject>();
  private list?: TrustList;
  private trustId = 0;
  private readonly shares = new Set<(t: RideCodeTrustShare) => void>();
  readonly counters: Partial<RideCodeCounters> = {};
  /** Worker verdicts taken (`used`) and passed over because they named an older list (`stale`). */
  readonly prechecks = { used: 0, stale: 0 };

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
    this.keys = new RideCodeKeys(list, this.imported);
    this.list = list;
    // From here on a verdict reached with the previous list is stale (a key may have been revoked).
    this.trustId = ++nextTrustId;
    const share = this.share();
    for (const l of this.shares) l(share);
  }

  /** The list as a decode worker needs it, with the id its verdicts must carry. */
  share(): RideCodeTrustShare {
    return { trustId: this.trustId, list: this.list!, maxValiditySeconds: this.policy.maxValiditySeconds };
  }

  /** `listener` gets the list held now, at once, then every newer one. Returns a function that stops it. */
  onTrust(listener: (t: RideCodeTrustShare) => void): () => void {
    this.shares.add(listener);
    listener(this.share());
    return () => void this.shares.delete(listener);
  }

  /**
   * Hand this verifier's list to every source that can check signatures off the lane's thread (the camera's
   * decode worker), now and at every update. Returns a function that stops it.
   */
  shareWith(sources: readonly CredentialSource[]): () => void {
    const offs = sources.flatMap((s) => (s.shareRideCodeTrust ? [this.onTrust((t) => s.shareRideCodeTrust!(t))] : []));
    return () => offs.forEach((off) => off());
  }

  verify(text: string, nowMs: number, precheck?: RideCodePrecheck): RideCodeCheck {
    let sig: RideCodeSignatureCheck;
    if (precheck && precheck.trustId === this.trustId) {
      this.prechecks.used++;
      sig = precheck.verdict;
    } else {
      if (precheck) this.prechecks.stale++;
      sig = this.keys.checkSignature(text, this.policy.maxValiditySeconds);
    }
    const r = sig.ok ? checkRideCodeWindow(sig.code, this.policy.clockSkewMs, nowMs) : sig;
    const k = r.ok ? 'ok' : r.reason;
    this.counters[k] = (this.counters[k] ?? 0) + 1;
    return r;
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
