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
  type QrCredential,
} from '../protocol/credential.js';
import { REASONS, type ReasonCode } from '../protocol/reasons.js';
import type { Presented } from '../drivers/seams.js';
import type { Policy, StatusPolicy } from './config.js';
import type { ListProvider } from './lists.js';

export type RideCodeCheck = { ok: true; credential: QrCredential } | { ok: false; reason: ReasonCode; detail?: string };

/** Verifies the text of a QR ride code (signature, issuer key, validity window). Replay is checked by UsedCodes. */
export interface RideCodeVerifier {
  verify(text: string, nowMs: number): RideCodeCheck;
}

/** Code ids already accepted at this station (shared among its lanes), kept until the code could no longer be valid. */
export interface UsedCodes {
  isUsed(codeId: string, nowMs: number): boolean;
  markUsed(codeId: string, untilMs: number): void;
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
}

export type ListFreshness = 'fresh' | 'stale';

export interface DecisionInput {
  presented: Presented;
  side: Direction;
  nowMs: number;
  /** Free passage: everyone passes, still logged and still recorded for passback. */
  freePassage?: boolean;
}

export class MemoryUsedCodes implements UsedCodes {
  private readonly until = new Map<string, number>();
  isUsed(codeId: string, nowMs: number): boolean {
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
    if (this.until.size > 100_000) this.prune(Date.now());
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

export class DecisionCore {
  /** Entered credentials and when, for anti-passback. Bounded by pruning entries older than the window. */
  private readonly entered = new Map<string, number>();
  private lastPrune = 0;

  constructor(
    private readonly laneDirection: LaneDirection,
    private readonly policy: Policy,
    private readonly lists: ListProvider,
    private readonly usedCodes: UsedCodes = new MemoryUsedCodes(),
    private readonly rideCodes?: RideCodeVerifier,
  ) {}

  decide(input: DecisionInput): Decision {
    const side = input.side;
    let credential: Credential;
    if (input.presented.kind === 'qr-text') {
      if (!this.rideCodes) return refuse('qr-malformed', side, 'qr');
      const v = this.rideCodes.verify(input.presented.text, input.nowMs);
      if (!v.ok) return refuse(v.reason, side, 'qr');
      credential = v.credential;
    } else {
      credential = input.presented.credential;
      if (!checkCredential(credential).ok) return refuse('credential-invalid', side, 'unknown');
    }
    const key = credentialKey(credential);
    const base = { direction: side, kind: credential.kind, ref: credentialRef(credential), key };

    if (this.laneDirection !== 'bidirectional' && this.laneDirection !== side) {
      return { grant: false, reason: 'wrong-direction', ...base };
    }
    if (input.freePassage) return { grant: true, reason: 'ok-free-passage', ...base, credential };
    if (credential.kind === 'qr' && credential.codeId !== undefined && this.usedCodes.isUsed(credential.codeId, input.nowMs)) {
      return { grant: false, reason: 'qr-replayed', ...base };
    }

    const lists = this.lists.current();
    const status: keyof StatusPolicy = lists.denylist.isBlocked(key) ? 'blocked' : (lists.allowlist.lookup(key) ?? 'unregistered');
    const table = side === 'entry' ? this.policy.entry : this.policy.exit;
    if (!table[status]) return { grant: false, reason: REFUSE_FOR[status], ...base };

    if (side === 'entry' && this.policy.antiPassbackSeconds > 0) {
      const at = this.entered.get(key);
      if (at !== undefined && input.nowMs - at < this.policy.antiPassbackSeconds * 1000) {
        return { grant: false, reason: 'passback', ...base };
      }
    }
    return { grant: true, reason: 'ok', ...base, credential };
  }

  /** Record what a granted decision consumes (passback entry, used QR code id). Called once the decision is journaled. */
  commit(d: Decision, nowMs: number): void {
    if (!d.grant || !d.credential || !d.key) return;
    const c = d.credential;
    if (c.kind === 'qr' && c.codeId !== undefined) this.usedCodes.markUsed(c.codeId, c.validUntilMs ?? nowMs + 60_000);
    if (d.direction === 'entry') this.entered.set(d.key, nowMs);
    else this.entered.delete(d.key);
    if (nowMs - this.lastPrune > 60_000) this.prune(nowMs);
  }

  private prune(nowMs: number): void {
    this.lastPrune = nowMs;
    const windowMs = this.policy.antiPassbackSeconds * 1000;
    for (const [k, at] of this.entered) if (nowMs - at >= windowMs) this.entered.delete(k);
  }
}

function refuse(reason: ReasonCode, direction: Direction, kind: CredentialKind | 'unknown'): Decision {
  return { grant: false, reason, direction, kind, ref: `${kind}:?` };
}

/** A refusal for a source-reported fault or lane state, in the same shape as core decisions. */
export function laneRefusal(reason: ReasonCode, direction: Direction, kind: CredentialKind | 'unknown' = 'unknown', ref = `${kind}:?`): Decision {
  if (REASONS[reason].grant) throw new Error(`laneRefusal with granting reason ${reason}`);
  return { grant: false, reason, direction, kind, ref };
}
