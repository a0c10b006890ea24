// The decision core of a replay: the lane's own DecisionCore, answered from the recording (the list status,
// anti-passback, used codes, ride codes and schedule the lane read), so the replay decides exactly as the
// lane did; and beside it, when asked, the same DecisionCore under another version (another config's
// policy, direction or schedule; another list file) deciding every presentation at the moment and in the
// lane state it was recorded in, with what made any difference named.
//
// What the other version consumes (anti-passback entries, used QR codes) is kept apart from the recording's
// answers: where it decided otherwise, its own record wins over the lane's for that credential, until the
// recording shows a later entry from elsewhere in the station. How a different decision would have changed
// what followed at the lane (a rider let in walks through; one refused taps again) is not invented: the
// lane's later events are the recorded ones.

import type { Direction, LaneDirection } from '../../protocol/credential.js';
import type { Policy, StatusPolicy } from '../config/config.js';
import type { ListProvider, ListSnapshot } from '../lists/list-provider.js';
import { DecisionCore, type Decision, type DecisionInput, type PassbackStore, type RideCodeCheck, type RideCodeVerifier, type UsedCodes } from '../verify/decision-core.js';
import type { EnforcementStages, Relaxed } from '../verify/policy-schedule.js';
import { RELAXABLE, outcomeOf, sameOutcome, type LaneInfo, type LaneRecord, type ListStatus, type Outcome } from './records.js';

type DecideRecord = Extract<LaneRecord, { t: 'decide' }>;

/** Another version to compare the recorded decisions with. */
export interface OtherVersion {
  /** How the report names it ("--config lane-v2.json"). */
  label: string;
  policy?: Policy;
  /** The other config's lane: its direction applies to the recording of that lane only (a station's lanes differ). */
  lane?: { id: string; direction: LaneDirection };
  /** Other lists; absent: the list answers the lane had. */
  lists?: ListProvider;
  listsLabel?: string;
  /** Another enforcement schedule; null: none (every kind enforced); absent: as recorded. */
  stages?: EnforcementStages | null;
  stagesLabel?: string;
}

/** One decision of the replay, as the report shows it. */
export interface ReplayedDecision {
  laneId: string;
  /** The lane's decision ordinal (1: its first). */
  n: number;
  at: number;
  side: Direction;
  /** What the lane decided (the recording). */
  recorded?: Outcome;
  /** What the replay decided. */
  replayed: Outcome;
  /** What the other version decides. */
  other?: Outcome;
  /** Why the other version decides otherwise. */
  why?: string[];
  /** The replay decided as the recording says. */
  faithful: boolean;
}

/** The recording's answers for the decision being made. */
class RecordedAnswers {
  current: DecideRecord | undefined;
  /** Set when a decision read something the recording has no answer for (the replay went astray). */
  missing: string | undefined;

  constructor(private readonly info: LaneInfo) {}

  private status(): ListStatus | undefined {
    const st = this.current?.st;
    if (st === undefined) this.missing = 'a list status';
    return st;
  }

  readonly snapshot: ListSnapshot = {
    allowlist: {
      lookup: () => {
        const st = this.status();
        return st === 'green' || st === 'yellow' || st === 'red' ? st : undefined;
      },
      size: 0,
    },
    denylist: { isBlocked: () => this.status() === 'blocked' },
    version: 0,
    publishedAtMs: 0,
  };

  readonly lists: ListProvider = { current: () => this.snapshot };

  readonly passback: PassbackStore = {
    lastEntry: () => {
      const pb = this.current?.pb;
      if (pb === undefined) this.missing = 'an anti-passback answer';
      return pb ?? undefined;
    },
    recordEntry: () => {},
    recordExit: () => {},
  };

  readonly usedCodes: UsedCodes = {
    isUsed: () => {
      const u = this.current?.used;
      if (u === undefined) this.missing = 'a used-code answer';
      return u ?? false;
    },
    markUsed: () => {},
  };

  readonly rideCodes: RideCodeVerifier = {
    verify: (): RideCodeCheck => {
      const r = this.current?.ride;
      if (r === undefined) {
        this.missing = 'a ride code check';
        return { ok: false, reason: 'qr-malformed' };
      }
      return r;
    },
  };

  readonly stages: EnforcementStages = {
    relax: (_kind, status): Relaxed | undefined => {
      const i = (RELAXABLE as readonly string[]).indexOf(status);
      return i < 0 ? undefined : (this.current?.rx?.[i] ?? undefined);
    },
  };

  get laneInfo(): LaneInfo {
    return this.info;
  }
}

/** The other version's anti-passback and used codes: the recording's answers, under what it consumed itself. */
class OtherStores {
  private readonly entries = new Map<string, { entryAt: number | undefined; at: number }>();
  private readonly codes = new Map<string, boolean>();
  now = 0;

  constructor(private readonly answers: RecordedAnswers) {}

  has(key: string): boolean {
    return this.entries.has(key);
  }

  readonly passback: PassbackStore = {
    lastEntry: (key) => this.lastEntry(key),
    recordEntry: (key, atMs) => this.entries.set(key, { entryAt: atMs, at: atMs }),
    recordExit: (key) => this.entries.set(key, { entryAt: undefined, at: this.now }),
  };

  readonly usedCodes: UsedCodes = {
    isUsed: (codeId) => this.codes.get(codeId) ?? this.answers.current?.used ?? false,
    markUsed: (codeId) => this.codes.set(codeId, true),
  };

  lastEntry(key: string): number | undefined {
    const own = this.entries.get(key);
    const recorded = this.answers.current?.pb;
    // A later entry elsewhere in the station (the recording's answer) wins over what this version kept.
    if (own && !(typeof recorded === 'number' && recorded > own.at)) return own.entryAt;
    return recorded ?? undefined;
  }

  /** The lane let a credential through that this version refused: it keeps what it held before. */
  keep(key: string, entryAt: number | undefined, at: number, codeId?: string, used?: boolean): void {
    this.entries.set(key, { entryAt, at });
    if (codeId !== undefined) this.codes.set(codeId, used ?? false);
  }
}

export interface ReplayCoreHooks {
  decision(d: ReplayedDecision): void;
  diverged(why: string): void;
}

/** The replay's DecisionCore: decides from the recording, and compares with another version when there is one. */
export class ReplayCore extends DecisionCore {
  private readonly answers: RecordedAnswers;
  private readonly baseline: DecisionCore;
  private readonly other?: { core: DecisionCore; stores: OtherStores; version: OtherVersion };
  private readonly pairs = new WeakMap<Decision, { other?: Decision; rec: DecideRecord; otherBefore?: number; codeId?: string; usedBefore?: boolean }>();
  private next: number;

  constructor(
    info: LaneInfo,
    firstOrdinal: number,
    private readonly recordFor: (n: number) => DecideRecord | undefined,
    private readonly hooks: ReplayCoreHooks,
    other?: OtherVersion,
  ) {
    const answers = new RecordedAnswers(info);
    super(info.direction, info.policy, { lists: answers.lists });
    this.answers = answers;
    this.next = firstOrdinal;
    this.baseline = new DecisionCore(info.direction, info.policy, {
      lists: answers.lists,
      passback: answers.passback,
      usedCodes: answers.usedCodes,
      rideCodes: answers.rideCodes,
      stages: answers.stages,
    });
    if (other) {
      const stores = new OtherStores(answers);
      const core = new DecisionCore(otherDirection(other, info), other.policy ?? info.policy, {
        lists: other.lists ?? answers.lists,
        passback: stores.passback,
        usedCodes: stores.usedCodes,
        rideCodes: answers.rideCodes,
        stages: other.stages === undefined ? answers.stages : (other.stages ?? undefined),
      });
      this.other = { core, stores, version: other };
    }
  }

  override decide(input: DecisionInput): Decision {
    const n = this.next++;
    const rec = this.recordFor(n);
    const laneId = this.answers.laneInfo.id;
    if (!rec) {
      this.hooks.diverged(`decision ${n}: the replayed lane decided where the recording has no decision`);
      throw new Error(`replay: no recorded decision ${n}`);
    }
    this.answers.current = rec;
    this.answers.missing = undefined;
    // The lane's clock when it decided (the replay's may lag by the milliseconds the lane took).
    const at: DecisionInput = { ...input, nowMs: rec.at };
    if (rec.threw !== undefined) throw new Error(`as recorded: the decision core threw: ${rec.threw}`);
    const d = this.baseline.decide(at);
    const replayed = outcomeOf(d);
    const faithful = sameOutcome(replayed, rec.out) && this.answers.missing === undefined;
    if (!faithful) {
      this.hooks.diverged(
        this.answers.missing !== undefined
          ? `decision ${n} (${replayed.ref}) read ${this.answers.missing} the recording does not have`
          : `decision ${n} (${replayed.ref}): recorded ${show(rec.out)}, replayed ${show(replayed)}`,
      );
    }
    const out: ReplayedDecision = { laneId, n, at: rec.at, side: rec.side, recorded: rec.out, replayed, faithful };
    const pair: { other?: Decision; rec: DecideRecord; otherBefore?: number; codeId?: string; usedBefore?: boolean } = { rec };
    if (this.other) {
      const { core, stores, version } = this.other;
      stores.now = rec.at;
      const key = d.key;
      if (key !== undefined) pair.otherBefore = stores.lastEntry(key);
      const credential = input.presented?.kind === 'credential' ? input.presented.credential : rec.ride?.ok ? rec.ride.credential : undefined;
      if (credential?.kind === 'qr' && credential.codeId !== undefined) {
        pair.codeId = credential.codeId;
        pair.usedBefore = stores.usedCodes.isUsed(credential.codeId, rec.at);
      }
      let o: Decision | undefined;
      try {
        o = core.decide(at);
      } catch (e) {
        out.why = [`the other version failed to decide: ${(e as Error).message}`];
      }
      if (o) {
        pair.other = o;
        out.other = outcomeOf(o);
        if (o.grant !== d.grant || o.reason !== d.reason) out.why = explain(rec, d, o, this.answers.laneInfo, version, pair.otherBefore);
      }
    }
    this.pairs.set(d, pair);
    this.hooks.decision(out);
    return d;
  }

  override commit(d: Decision, nowMs: number): void {
    const p = this.pairs.get(d);
    const other = this.other;
    if (!p || !other || !p.other) return;
    const o = p.other;
    const key = d.key ?? o.key;
    // The other version consumed just what the lane did: the recording's later answers already say so.
    if (o.grant === d.grant && !(key !== undefined && other.stores.has(key)) && p.codeId === undefined) return;
    other.stores.now = nowMs;
    if (o.grant) other.core.commit(o, nowMs);
    else if (d.grant && key !== undefined) other.stores.keep(key, p.otherBefore, nowMs, p.codeId, p.usedBefore);
  }
}

function otherDirection(v: OtherVersion, info: LaneInfo): LaneDirection {
  return v.lane && v.lane.id === info.id ? v.lane.direction : info.direction;
}

const show = (o: Outcome | undefined) => (o ? `${o.grant ? 'grant' : 'refuse'} ${o.reason}` : 'nothing');

function admits(policy: Policy, side: Direction, status: ListStatus): boolean {
  return (side === 'entry' ? policy.entry : policy.exit)[status as keyof StatusPolicy];
}

/** What made the other version decide otherwise, in an engineer's words. */
function explain(rec: DecideRecord, d: Decision, o: Decision, info: LaneInfo, v: OtherVersion, otherEntry: number | undefined): string[] {
  const why: string[] = [];
  const side = rec.side;
  const recordedStatus = rec.st;
  let otherStatus = recordedStatus;
  if (v.lists && d.key !== undefined) {
    const snap = v.lists.current();
    otherStatus = snap.denylist.isBlocked(d.key) ? 'blocked' : (snap.allowlist.lookup(d.key) ?? 'unregistered');
    if (otherStatus !== recordedStatus) why.push(`list status ${recordedStatus} in the recorded lists (v${rec.lv}) → ${otherStatus} in ${v.listsLabel ?? v.label} (v${snap.version})`);
  }
  const otherPolicy = v.policy ?? info.policy;
  const direction = otherDirection(v, info);
  if (direction !== info.direction) why.push(`lane direction ${info.direction} → ${direction} (${v.label})`);
  if (recordedStatus !== undefined && otherStatus !== undefined) {
    const a = admits(info.policy, side, recordedStatus);
    const b = admits(otherPolicy, side, otherStatus);
    if (otherStatus === recordedStatus && a !== b) why.push(`${side} policy for ${recordedStatus}: ${a ? 'admitted' : 'refused'} → ${b ? 'admitted' : 'refused'} (${v.label})`);
  }
  if (d.reason === 'passback' || o.reason === 'passback') {
    if (otherPolicy.antiPassbackSeconds !== info.policy.antiPassbackSeconds) why.push(`anti-passback window ${info.policy.antiPassbackSeconds} s → ${otherPolicy.antiPassbackSeconds} s (${v.label})`);
    const recorded = rec.pb ?? undefined;
    if (otherEntry !== recorded) {
      why.push(
        otherEntry === undefined
          ? 'anti-passback: the entry the lane recorded for this credential did not happen in the other version'
          : `anti-passback: the other version let this credential in at ${new Date(otherEntry).toISOString()}`,
      );
    }
  }
  const relaxing = ['not-enforced', 'advise-register'];
  if ((relaxing.includes(d.reason) || relaxing.includes(o.reason)) && v.stages !== undefined) {
    why.push(`enforcement schedule: ${v.stages === null ? `none in ${v.label} (every kind enforced)` : `${v.stagesLabel ?? v.label}'s`}`);
  }
  if ((d.reason === 'qr-replayed') !== (o.reason === 'qr-replayed')) why.push('used QR codes: the other version had not used this code (or had)');
  if (why.length === 0) why.push(`${d.reason} → ${o.reason}`);
  return why;
}
