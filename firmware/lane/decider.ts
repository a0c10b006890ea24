// The decider: the one place a presentation becomes a decision. It runs the decision core, makes the
// journal record durable, and only then answers the gate machine — so the gate never acts on a
// decision that a power cut could lose.

import type { Clock, Presented } from '../../drivers/seams.js';
import type { Direction } from '../../protocol/credential.js';
import type { ReasonCode } from '../../protocol/reasons.js';
import { refusal, type Decision, type DecisionCore } from '../verify/decision-core.js';
import type { Journal } from '../journal/journal.js';

/** A request to the decider: decide (and journal) this presentation, or record a refusal the lane already knows. */
export type DecideRequest = {
  type: 'DECIDE';
  id: number;
  presented?: Presented;
  side: Direction;
  source: string;
  /** When the source saw the credential (ms, lane clock): latency is measured from here. */
  atMs: number;
  /** A refusal decided by the lane itself (card fault, busy, out of service): the core journals it, no lookup. */
  preset?: ReasonCode;
  freePassage?: boolean;
};

/** The decider echoes source and atMs so a reply is self-contained even after the lane moved on. */
export type DeciderReply = { type: 'DECIDED'; id: number; decision: Decision; source: string; atMs: number };

export interface DeciderDeps {
  laneId: string;
  core: DecisionCore;
  journal: Journal;
  clock: Clock;
  /** Called when the journal cannot make a record durable. */
  onJournalError?: (err: Error, decision: Decision) => void;
}

/** One trip to the decision core: it checks the credential and builds every refusal, the lane's presets included. */
export function decide(deps: DeciderDeps, req: DecideRequest): Decision {
  const { presented, side, preset, freePassage } = req;
  const d = deps.core.decide({ presented, side, nowMs: deps.clock.now(), preset, freePassage });
  // A card transaction that ran while the card was in the field (a fare gate's debit, journaled by it)
  // refuses what it refused: the lane never opens for a trip that was not paid.
  const t = presented?.kind === 'credential' ? presented.transaction : undefined;
  if (t && !t.grant && d.grant) return { grant: false, reason: t.reason, direction: d.direction, kind: d.kind, ref: d.ref, key: d.key };
  return d;
}

/**
 * Decide, make the record durable, then reply. The gate machine calls this directly from its actions
 * (an event to a child actor per request cost a measurable share of the passage cycle); `reply` is how
 * the answer comes back as a DECIDED event.
 */
export function requestDecision(deps: DeciderDeps, req: DecideRequest, reply: (r: DeciderReply) => void): void {
  let decision: Decision;
  try {
    decision = decide(deps, req);
  } catch (err) {
    // A bug or a bad input must never open the gate nor stop the lane.
    decision = refusal('credential-invalid', req.side);
    deps.onJournalError?.(err as Error, decision);
  }
  const answer = (d: Decision) => reply({ type: 'DECIDED', id: req.id, decision: d, source: req.source, atMs: req.atMs });
  deps.journal
    .append({
      type: 'decision',
      laneId: deps.laneId,
      atMs: deps.clock.now(),
      direction: decision.direction,
      kind: decision.kind,
      ref: decision.ref,
      key: decision.key,
      grant: decision.grant,
      reason: decision.reason,
      source: req.source,
    })
    .then(
      () => {
        deps.core.commit(decision, deps.clock.now());
        answer(decision);
      },
      (err: Error) => {
        deps.onJournalError?.(err, decision);
        // Exits keep working with a broken journal: never trap a rider inside.
        if (decision.grant && decision.direction === 'exit') {
          deps.core.commit(decision, deps.clock.now());
          answer(decision);
        } else {
          answer(refusal('journal-unavailable', decision.direction, decision.kind, decision.ref));
        }
      },
    );
}
