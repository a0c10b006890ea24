// The gate's side of the enforcement schedule (protocol/policy-schedule.ts): the schedule in force,
// replaced only by a newer one whose back-office signature verifies (a bad, older or wrongly signed one is
// a `schedule-rejected` alarm and the old one stays), and what it relaxes in a decision. It only ever
// relaxes: a refusal the lane's policy would make for an unregistered, yellow or red credential becomes a
// grant before the kind's enforcement date; a blocked credential stays refused, and what the policy
// admits stays admitted — so exits (which admit every status) never trap a rider whatever it says. The
// stage is read from the decision's own instant (the lane's clock): a date takes effect at its
// millisecond, never one early. The document comes from the lane's `policy.scheduleFile` at boot and then
// from list sync (firmware/lists/held-schedule.ts), whichever is newer.

import { readFileSync } from 'node:fs';
import type { Alarm } from '../../protocol/alarms.js';
import type { CredentialKind } from '../../protocol/credential.js';
import type { TrustedListKey } from '../../protocol/lists/index.js';
import { sameBytes } from '../../protocol/lists/signature.js';
import { stageAt, verifyPolicySchedule, type EnforcementStage, type PolicySchedule } from '../../protocol/policy-schedule.js';
import type { ReasonCode } from '../../protocol/reasons.js';

/** What a lane's policy would refuse for, that a schedule may relax. */
export type RelaxableStatus = 'green' | 'yellow' | 'red' | 'unregistered' | 'blocked';

export interface Relaxed {
  reason: Extract<ReasonCode, 'not-enforced' | 'advise-register'>;
  /** For advise-register: the instant enforcement begins (the display says "register by" the day before). */
  registerByMs?: number;
}

/** The hook the decision core calls when its policy would refuse: a grant instead, or undefined (refuse). */
export interface EnforcementStages {
  relax(kind: CredentialKind, status: RelaxableStatus, nowMs: number): Relaxed | undefined;
}

export type ScheduleUpdate = { ok: true; seq: number } | { ok: false; alarm: Extract<Alarm, { alarm: 'schedule-rejected' }> };

/** One kind's place in the schedule at an instant, for dashboards. */
export interface KindStageView {
  stage: EnforcementStage;
  adviseFromMs: number;
  enforceFromMs: number;
  /** The next change of stage and what it will be (absent once enforced). */
  next?: { atMs: number; stage: EnforcementStage };
}

/** The schedule in force as dashboards show it: its seq, and each scheduled kind's stage (kinds left out are enforced). */
export interface ScheduleView {
  seq: number;
  issuedAtMs: number;
  kinds: Partial<Record<CredentialKind, KindStageView>>;
}

/** Alarms raised before anyone listened (a bad schedule file at start-up) are kept, this many at most. */
const UNHEARD_MAX = 16;

export class PolicyStages implements EnforcementStages {
  private schedule: PolicySchedule | undefined;
  private doc: Uint8Array | undefined;
  private readonly listeners = new Set<(a: Alarm) => void>();
  private readonly changed = new Set<() => void>();
  private readonly unheard: Alarm[] = [];

  /**
   * @param keys the back office's list signing keys the lane trusts (the lists' `publicKeys`)
   * @param onAlarm told of every refused document (the lane journals and logs it); or listen() later
   */
  constructor(
    private readonly keys: readonly TrustedListKey[],
    onAlarm?: (a: Alarm) => void,
  ) {
    if (onAlarm) this.listeners.add(onAlarm);
  }

  /** Hear refused documents; the first listener also hears those refused before it came. Returns a remover. */
  listen(listener: (a: Alarm) => void): () => void {
    this.listeners.add(listener);
    for (const a of this.unheard.splice(0)) listener(a);
    return () => void this.listeners.delete(listener);
  }

  /** Raise a refusal (update()'s, or one found before it: the schedule file unreadable). */
  raise(a: Alarm): void {
    if (this.listeners.size === 0) {
      if (this.unheard.length < UNHEARD_MAX) this.unheard.push(a);
      return;
    }
    for (const l of this.listeners) l(a);
  }

  /** Told after each schedule taken (dashboards, the station bus state). Returns a remover. */
  onChange(listener: () => void): () => void {
    this.changed.add(listener);
    return () => void this.changed.delete(listener);
  }

  /** The next instant after `nowMs` at which some kind changes stage (undefined: none to come). */
  nextChangeMs(nowMs: number): number | undefined {
    let next: number | undefined;
    for (const k of Object.values(this.schedule?.kinds ?? {})) {
      for (const t of [k.adviseFromMs, k.enforceFromMs]) if (t > nowMs && (next === undefined || t < next)) next = t;
    }
    return next;
  }

  /** The schedule in force and each scheduled kind's stage at `nowMs` (undefined: none, every kind enforced). */
  view(nowMs: number): ScheduleView | undefined {
    const s = this.schedule;
    if (!s) return undefined;
    const kinds: ScheduleView['kinds'] = {};
    for (const [kind, k] of Object.entries(s.kinds) as [CredentialKind, { adviseFromMs: number; enforceFromMs: number }][]) {
      const stage = stageAt(s, kind, nowMs);
      const next = stage === 'not-enforced' ? { atMs: k.adviseFromMs, stage: stageAt(s, kind, k.adviseFromMs) } : stage === 'advise' ? { atMs: k.enforceFromMs, stage: 'enforce' as const } : undefined;
      kinds[kind] = { stage, adviseFromMs: k.adviseFromMs, enforceFromMs: k.enforceFromMs, ...(next ? { next } : {}) };
    }
    return { seq: s.seq, issuedAtMs: s.issuedAtMs, kinds };
  }

  /** The schedule in force (undefined: none yet, every kind enforced). */
  current(): PolicySchedule | undefined {
    return this.schedule;
  }

  stage(kind: CredentialKind, nowMs: number): EnforcementStage {
    return stageAt(this.schedule, kind, nowMs);
  }

  /**
   * Take a new schedule document: used only when its signature verifies against a trusted key and its seq
   * is newer than the one in force (the same seq again only with the same bytes, and then nothing changes).
   */
  update(doc: Uint8Array): ScheduleUpdate {
    const r = verifyPolicySchedule(doc, this.keys);
    const reject = (error: string, detail: string, seq?: number): ScheduleUpdate => {
      const alarm = { alarm: 'schedule-rejected' as const, error, seq, detail };
      this.raise(alarm);
      return { ok: false, alarm };
    };
    if (!r.ok) return reject(r.error, r.detail);
    const held = this.schedule?.seq;
    if (held !== undefined && r.schedule.seq < held) return reject('older', `seq ${r.schedule.seq} is older than the schedule in force (seq ${held})`, r.schedule.seq);
    if (held !== undefined && r.schedule.seq === held) {
      if (this.doc && sameBytes(doc, this.doc)) return { ok: true, seq: held };
      return reject('older', `seq ${held} again with other content`, held);
    }
    this.schedule = r.schedule;
    this.doc = doc.slice();
    for (const l of this.changed) l();
    return { ok: true, seq: r.schedule.seq };
  }

  relax(kind: CredentialKind, status: RelaxableStatus, nowMs: number): Relaxed | undefined {
    if (status === 'blocked' || status === 'green') return undefined;
    const k = this.schedule?.kinds[kind];
    if (!k || nowMs >= k.enforceFromMs) return undefined;
    if (nowMs < k.adviseFromMs) return { reason: 'not-enforced' };
    // Advise: the unregistered are asked to register; a registered rider's status is not enforced yet.
    return status === 'unregistered' ? { reason: 'advise-register', registerByMs: k.enforceFromMs } : { reason: 'not-enforced' };
  }
}

/** The seq of the schedule in a file (the lane's provisioned `policy.scheduleFile`), -1 when it is missing or does not verify. */
export function scheduleFileSeq(path: string | undefined, keys: readonly TrustedListKey[]): number {
  if (path === undefined) return -1;
  try {
    const r = verifyPolicySchedule(new Uint8Array(readFileSync(path)), keys);
    return r.ok ? r.schedule.seq : -1;
  } catch {
    return -1;
  }
}

/**
 * A lane's schedule from the file `policy.scheduleFile` names (list sync then brings newer ones): read and
 * verified at start-up; a missing or bad file is a `schedule-rejected` alarm (kept for the first listener
 * when `onAlarm` is not given) and every kind is enforced until a good one arrives.
 */
export function policyStagesFromFile(path: string, keys: readonly TrustedListKey[], onAlarm?: (a: Alarm) => void): PolicyStages {
  const stages = new PolicyStages(keys, onAlarm);
  let doc: Uint8Array;
  try {
    doc = new Uint8Array(readFileSync(path));
  } catch (e) {
    stages.raise({ alarm: 'schedule-rejected', error: 'read', detail: `${path}: ${(e as Error).message}` });
    return stages;
  }
  stages.update(doc);
  return stages;
}
