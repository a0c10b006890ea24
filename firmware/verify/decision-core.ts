// The decision core: a presented credential → grant or refuse, with one reason code.
// Synchronous and allocation-light: it sits on the path from tap to OPEN.

import {
  checkCredential,
  credentialKey,
  credentialRef,
  type Credential,
  type CredentialKind,
  type Direction,
  type LaneDirection,
} from '../../protocol/credential.js';
import { REASONS, type ReasonCode } from '../../protocol/reasons.js';
import type { RideCodeCheck, RideCodePrecheck } from '../../protocol/ride-code-check.js';
import type { Presented } from '../../drivers/seams.js';
import type { Policy, StatusPolicy } from '../config/config.js';
import type { ListProvider } from '../lists/list-provider.js';
import type { EnforcementStages } from './policy-schedule.js';

export type { RideCodeCheck } from '../../protocol/ride-code-check.js';

/** Verifies the text of a QR ride code (signature, issuer key, validity window). Replay is checked by UsedCodes. */
export interface RideCodeVerifier {
  /**
   * `precheck`: the signature stage already run elsewhere (the camera's decode worker); a verifier uses
   * it only when it names the trust list the verifier holds now, and checks the code itself otherwise.
   */
  verify(text: string, nowMs: number, precheck?: RideCodePrecheck): RideCodeCheck;
}

/** Code ids already accepted at this station (shared among its lanes), kept until the code could no longer be valid. */
export interface UsedCodes {
  isUsed(codeId: string, nowMs: number): boolean;
  markUsed(codeId: string, untilMs: number): void;
}

/**
 * Who entered and when, for anti-passback. Station-wide: a rider refused a second entry at lane 1
 * must be refused at lane 2 too, so the lanes of a station share one (in one process: one object).
 */
export interface PassbackStore {
  lastEntry(key: string): number | undefined;
  recordEntry(key: string, atMs: number): void;
  recordExit(key: string): void;
}

export class MemoryPassback implements PassbackStore {
  private readonly entered = new Map<string, number>();
  private lastPrune = 0;
  constructor(private readonly windowMs: number) {}
  lastEntry(key: string): number | undefined {
    return this.entered.get(key);
  }
  recordEntry(key: string, atMs: number): void {
    this.entered.set(key, atMs);
    if (atMs - this.lastPrune > 60_000) {
      this.lastPrune = atMs;
      for (const [k, at] of this.entered) if (atMs - at >= this.windowMs) this.entered.delete(k);
    }
  }
  recordExit(key: string): void {
    this.entered.delete(key);
  }
}

export interface Decision {
  grant: boolean;
  reason: ReasonCode;
  direction: Direction;
  kind: CredentialKind | 'unknown';
  /** Privacy-safe reference for logs and displays. */
  ref: string;
  /** The list key (full credential); for the journal only. */
  key?: string;
  /** Set when granted: what commit() must record. */
  credential?: Credential;
  /** advise-register: when enforcement begins (the display's "please register by"). */
  registerByMs?: number;
}

export type ListFreshness = 'fresh' | 'stale';

export interface DecisionInput {
  /** Absent when a source reported a card fault instead of a credential (then `preset` says why). */
  presented?: Presented;
  side: Direction;
  nowMs: number;
  /**
   * A refusal the lane decided by itself (card fault, busy, out of service, station closed, list too old):
   * no lookup, but the record still says who it was (privacy-safe) so it is traceable in the journal.
   */
  preset?: ReasonCode;
  /** Free passage: everyone passes, still logged and still recorded for passback. */
  freePassage?: boolean;
}

export class MemoryUsedCodes implements UsedCodes {
  private readonly until = new Map<string, number>();
  /** The lane's clock as last seen (virtual in the simulator): pruning must not use the wall clock. */
  private lastNowMs = 0;
  private lastPruneMs = 0;
  isUsed(codeId: string, nowMs: number): boolean {
    this.lastNowMs = nowMs;
    const u = this.until.get(codeId);
    if (u === undefined) return false;
    if (u < nowMs) {
      this.until.delete(codeId);
      return false;
    }
    return true;
  }
  markUsed(codeId: string, untilMs: number): void {
    this.until.set(codeId, untilMs);
    // An expired code can never be refused again: drop them every minute of lane time (a long simulated
    // day holds the last minutes' codes, not every code since the start), and at the cap whatever the time.
    if (this.until.size > 100_000 || this.lastNowMs - this.lastPruneMs >= 60_000) {
      this.lastPruneMs = this.lastNowMs;
      this.prune(this.lastNowMs);
    }
  }
  prune(nowMs: number): void {
    for (const [k, u] of this.until) if (u < nowMs) this.until.delete(k);
  }
}

// green is always admitted (the schema enforces it), so it never needs a refusal reason.
const REFUSE_FOR: Record<keyof StatusPolicy, ReasonCode> = {
  green: 'not-registered',
  yellow: 'status-yellow',
  red: 'status-red',
  unregistered: 'not-registered',
  blocked: 'blocked',
};

export interface DecisionCoreDeps {
  lists: ListProvider;
  usedCodes?: UsedCodes;
  passback?: PassbackStore;
  rideCodes?: RideCodeVerifier;
  /** The enforcement schedule: may turn a registration/status refusal into a grant before its dates. */
  stages?: EnforcementStages;
}

export class DecisionCore {
  private readonly lists: ListProvider;
  private readonly usedCodes: UsedCodes;
  private readonly passback: PassbackStore;
  private readonly rideCodes?: RideCodeVerifier;
  private readonly stages?: EnforcementStages;

  constructor(
    private readonly laneDirection: LaneDirection,
    private readonly policy: Policy,
    deps: DecisionCoreDeps,
  ) {
    this.lists = deps.lists;
    this.usedCodes = deps.usedCodes ?? new MemoryUsedCodes();
    this.passback = deps.passback ?? new MemoryPassback(policy.antiPassbackSeconds * 1000);
    this.rideCodes = deps.rideCodes;
    this.stages = deps.stages;
  }

  /** Grant or refuse a presentation; every refusal, the lane's own included, is built here. */
  decide(input: DecisionInput): Decision {
    const side = input.side;
    const presented = input.presented;
    if (input.preset !== undefined || presented === undefined) return laneDecided(input.preset ?? 'credential-invalid', side, presented);
    let credential: Credential;
    if (presented.kind === 'qr-text') {
      if (!this.rideCodes) return refusal('qr-malformed', side, 'qr');
      const v = this.rideCodes.verify(presented.text, input.nowMs, presented.precheck);
      if (!v.ok) return refusal(v.reason, side, 'qr');
      credential = v.credential;
    } else {
      credential = presented.credential;
      if (!checkCredential(credential).ok) return refusal('credential-invalid', side, 'unknown');
    }
    return this.judge(credential, side, input.nowMs, input.freePassage);
  }

  /**
   * The checks `decide` runs on a card read while it is still in the field, before a card transaction
   * writes to it (a fare gate's entry record): direction, lists (denylist, allowlist, policy, enforcement
   * schedule) and anti-passback, as at decision time. Nothing is consumed; the lane still decides after.
   */
  beforeTransaction(credential: Credential, side: Direction, nowMs: number): Decision {
    if (!checkCredential(credential).ok) return refusal('credential-invalid', side, 'unknown');
    return this.judge(credential, side, nowMs, false);
  }

  private judge(credential: Credential, side: Direction, nowMs: number, freePassage: boolean | undefined): Decision {
    const key = credentialKey(credential);
    const base = { direction: side, kind: credential.kind, ref: credentialRef(credential), key };

    if (this.laneDirection !== 'bidirectional' && this.laneDirection !== side) {
      return { grant: false, reason: 'wrong-direction', ...base };
    }
    if (freePassage) return { grant: true, reason: 'ok-free-passage', ...base, credential };
    if (credential.kind === 'qr' && credential.codeId !== undefined && this.usedCodes.isUsed(credential.codeId, nowMs)) {
      return { grant: false, reason: 'qr-replayed', ...base };
    }

    const lists = this.lists.current();
    const status: keyof StatusPolicy = lists.denylist.isBlocked(key) ? 'blocked' : (lists.allowlist.lookup(key) ?? 'unregistered');
    const table = side === 'entry' ? this.policy.entry : this.policy.exit;
    const relaxed = table[status] ? undefined : this.stages?.relax(credential.kind, status, nowMs);
    if (!table[status] && !relaxed) return { grant: false, reason: REFUSE_FOR[status], ...base };

    if (side === 'entry' && this.policy.antiPassbackSeconds > 0) {
      const at = this.passback.lastEntry(key);
      if (at !== undefined && nowMs - at < this.policy.antiPassbackSeconds * 1000) {
        return { grant: false, reason: 'passback', ...base };
      }
    }
    if (relaxed) return { grant: true, reason: relaxed.reason, ...base, credential, ...(relaxed.registerByMs === undefined ? {} : { registerByMs: relaxed.registerByMs }) };
    return { grant: true, reason: 'ok', ...base, credential };
  }

  /** Record what a granted decision consumes (passback entry, used QR code id). Called once the decision is journaled. */
  commit(d: Decision, nowMs: number): void {
    if (!d.grant || !d.credential || !d.key) return;
    const c = d.credential;
    if (c.kind === 'qr' && c.codeId !== undefined) this.usedCodes.markUsed(c.codeId, c.validUntilMs ?? nowMs + 60_000);
    if (d.direction === 'entry') this.passback.recordEntry(d.key, nowMs);
    else this.passback.recordExit(d.key);
  }
}

/**
 * A refusal: the one place one is built (the core's, the lane's, and the decider's fallbacks when the
 * journal fails or a bug throws). No list key: a refusal consumes nothing.
 */
export function refusal(
  reason: ReasonCode,
  direction: Direction,
  kind: CredentialKind | 'unknown' = 'unknown',
  ref = `${kind}:?`,
): Decision {
  if (REASONS[reason].grant) throw new Error(`refusal with granting reason ${reason}`);
  return { grant: false, reason, direction, kind, ref };
}

/** A refusal the lane decided (no lookup): who it was when the credential is well formed, else its kind. */
function laneDecided(reason: ReasonCode, side: Direction, presented: Presented | undefined): Decision {
  if (presented?.kind === 'credential' && checkCredential(presented.credential).ok) {
    return refusal(reason, side, presented.credential.kind, credentialRef(presented.credential));
  }
  return refusal(reason, side, presented?.kind === 'qr-text' ? 'qr' : 'unknown');
}
