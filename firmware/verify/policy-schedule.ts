// The gate's side of the enforcement schedule (protocol/policy-schedule.ts): the schedule in force,
// replaced only by a newer one whose back-office signature verifies (a bad, older or wrongly signed one is
// a `schedule-rejected` alarm and the old one stays), and what it relaxes in a decision. It only ever
// relaxes: a refusal the lane's policy would make for an unregistered, yellow or red credential becomes a
// grant before the kind's enforcement date; a blocked credential stays refused, and what the policy
// admits stays admitted — so exits (which admit every status) never trap a rider whatever it says. The
// stage is read from the decision's own instant (the lane's clock): a date takes effect at its
// millisecond, never one early.

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

export class PolicyStages implements EnforcementStages {
  private schedule: PolicySchedule | undefined;
  private doc: Uint8Array | undefined;

  /**
   * @param keys the back office's list signing keys the lane trusts (the lists' `publicKeys`)
   * @param onAlarm told of every refused document (the lane journals and logs it)
   */
  constructor(
    private readonly keys: readonly TrustedListKey[],
    private readonly onAlarm: (a: Alarm) => void = () => {},
  ) {}

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
      this.onAlarm(alarm);
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

/**
 * A lane's schedule from the file `policy.scheduleFile` names (until list sync carries it): read and
 * verified at start-up; a missing or bad file is a `schedule-rejected` alarm and every kind is enforced.
 */
export function policyStagesFromFile(path: string, keys: readonly TrustedListKey[], onAlarm?: (a: Alarm) => void): PolicyStages {
  const stages = new PolicyStages(keys, onAlarm);
  let doc: Uint8Array;
  try {
    doc = new Uint8Array(readFileSync(path));
  } catch (e) {
    onAlarm?.({ alarm: 'schedule-rejected', error: 'read', detail: `${path}: ${(e as Error).message}` });
    return stages;
  }
  stages.update(doc);
  return stages;
}
