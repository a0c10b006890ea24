// The records of a lane recording: what crossed the lane machine's edges, in the order the machine took it,
// split into what anyone with the file may read (refs, reasons, times) and what stays encrypted (the
// credential presented, a card fault's detail, a verified ride code). The table is in protocol/README.md
// ("Lane recordings"); the bytes around them are protocol/recording.ts.

import type { StateValue } from 'xstate';
import { checkCredential, credentialRef, type CredentialKind, type Direction, type LaneDirection } from '../../protocol/credential.js';
import type { ReasonCode } from '../../protocol/reasons.js';
import type { RecordedItem } from '../../protocol/recording.js';
import type { Presented } from '../../drivers/seams.js';
import type { LaneConfig, Policy, Timeouts } from '../config/config.js';
import type { GateEvent } from '../lane/gate-machine.js';
import type { Decision, RideCodeCheck } from '../verify/decision-core.js';
import type { Relaxed } from '../verify/policy-schedule.js';

/** Who the lane is and what it decided with (in `start` and every `checkpoint`). */
export interface LaneInfo {
  id: string;
  station: string;
  direction: LaneDirection;
  timeouts: Timeouts;
  policy: Policy;
  /** The credential sources' names, as in the lane's events. */
  sources: string[];
  lists: { version: number; publishedAtMs: number };
  /** The enforcement schedule's seq in force (null: none, every kind enforced). */
  schedule: number | null;
  /** The wall clock when the record was made (the lane clock is `at`). */
  wallMs: number;
}

/** A decision's outcome without the credential: what the journal says about it. */
export interface Outcome {
  grant: boolean;
  reason: ReasonCode;
  direction: Direction;
  kind: CredentialKind | 'unknown';
  ref: string;
}

/** A list status as the decision core reads it. */
export type ListStatus = 'green' | 'yellow' | 'red' | 'unregistered' | 'blocked';

/** The order of the statuses in a decide record's `rx` (what the enforcement schedule relaxes). */
export const RELAXABLE = ['yellow', 'red', 'unregistered'] as const;

export type LaneRecord =
  | { t: 'start'; at: number; lane: LaneInfo; next: number }
  | {
      t: 'checkpoint';
      at: number;
      lane: LaneInfo;
      /** The machine's state value and its context facts (no wiring, nothing in flight). */
      state: StateValue;
      facts: Record<string, unknown>;
      /** The ordinal the lane's next decision gets. */
      next: number;
    }
  /** An event the machine took (a tap, a barrier event, an operator command, a list state). */
  | { t: 'ev'; at: number; e: GateEvent }
  /** One of the machine's own timers fired (the event it raised). */
  | { t: 'timer'; at: number; name: string }
  /** The decision core decided (its `n`-th decision) and what it read to do so. */
  | {
      t: 'decide';
      at: number;
      n: number;
      side: Direction;
      preset?: ReasonCode;
      free?: boolean;
      /** The list version the decision read. */
      lv: number;
      /** List status of the credential (when it was well formed). */
      st?: ListStatus;
      /** Last entry the station's anti-passback store held for it (null: none). */
      pb?: number | null;
      /** QR code id already used at the station? */
      used?: boolean;
      /** What the enforcement schedule relaxes for it, per RELAXABLE status (null: nothing). */
      rx?: (Relaxed | null)[];
      /** The verified ride code (encrypted). */
      ride?: RideCodeCheck;
      out?: Outcome;
      /** The core threw (a bug): the decider refused `credential-invalid`. */
      threw?: string;
    }
  /** The decider's answer reached the machine: the `n`-th decision, journal durable (`ok`) or not. */
  | { t: 'answer'; at: number; n: number; ok: boolean; d: Outcome }
  /** The lists in use changed. */
  | { t: 'lists'; at: number; version: number; publishedAtMs: number };

export function outcomeOf(d: Decision): Outcome {
  return { grant: d.grant, reason: d.reason, direction: d.direction, kind: d.kind, ref: d.ref };
}

export function sameOutcome(a: Outcome | undefined, b: Outcome | undefined): boolean {
  return !!a && !!b && a.grant === b.grant && a.reason === b.reason && a.direction === b.direction && a.kind === b.kind && a.ref === b.ref;
}

/** The reference a presentation is known by in the clear (a QR text is only known once verified). */
export function presentedRef(p: Presented): { kind: CredentialKind | 'qr-text' | 'unknown'; ref: string } {
  if (p.kind === 'qr-text') return { kind: 'qr-text', ref: 'qr:?' };
  const c = p.credential;
  return checkCredential(c).ok ? { kind: c.kind, ref: credentialRef(c) } : { kind: 'unknown', ref: 'unknown:?' };
}

/** A record as stored: the secret parts moved out of the clear one. */
export function toStored(r: LaneRecord): RecordedItem {
  if (r.t === 'ev') {
    const e = r.e;
    if (e.type === 'PRESENTED') {
      const { presented, ...rest } = e;
      const clear = { t: 'ev', at: r.at, e: { ...rest, ...presentedRef(presented) } };
      // A QR code's text is not kept: its verification is (the decide record's `ride`), and is what a replay decides from.
      return presented.kind === 'qr-text' ? { clear } : { clear, secret: { presented } };
    }
    if (e.type === 'CARD_FAULT') {
      const { detail, ...rest } = e;
      return { clear: { t: 'ev', at: r.at, e: rest }, secret: { detail } };
    }
    return { clear: r as unknown as Record<string, unknown> };
  }
  if (r.t === 'decide' && r.ride !== undefined) {
    const { ride, ...rest } = r;
    return { clear: rest as unknown as Record<string, unknown>, secret: { ride } };
  }
  return { clear: r as unknown as Record<string, unknown> };
}

/** A stored record back as the lane's record (the secret parts put back). Shape checks stay with the reader. */
export function fromStored(item: RecordedItem): LaneRecord {
  const c = item.clear as Record<string, unknown> & { t: string };
  const s = item.secret as Record<string, unknown> | undefined;
  if (c.t === 'ev' && (c.e as { kind?: unknown }).kind === 'qr-text') {
    const { kind: _kind, ref: _ref, ...e } = c.e as Record<string, unknown>;
    return { t: 'ev', at: c.at as number, e: { ...e, presented: { kind: 'qr-text', text: '' } } as unknown as GateEvent };
  }
  if (c.t === 'ev' && s) {
    const e = { ...(c.e as Record<string, unknown>) };
    if (e.type === 'PRESENTED') {
      delete e.kind;
      delete e.ref;
      e.presented = s.presented;
    } else if (e.type === 'CARD_FAULT') e.detail = s.detail;
    return { t: 'ev', at: c.at as number, e: e as unknown as GateEvent };
  }
  if (c.t === 'decide' && s) return { ...(c as unknown as Extract<LaneRecord, { t: 'decide' }>), ride: s.ride as RideCodeCheck };
  return c as unknown as LaneRecord;
}

/** The parts of a lane config a recording keeps (no paths to secrets, no addresses). */
export function laneInfo(config: LaneConfig, sources: string[], lists: { version: number; publishedAtMs: number }, schedule: number | null, wallMs: number): LaneInfo {
  return {
    id: config.lane.id,
    station: config.lane.station,
    direction: config.lane.direction,
    timeouts: config.timeouts,
    policy: config.policy,
    sources,
    lists,
    schedule,
    wallMs,
  };
}
