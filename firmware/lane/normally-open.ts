// The normally-open passage cycle: two states of the lane's `normal` mode, beside the normally-closed ones
// (README "The passage cycle (normally open)"). The flaps rest open; the board reports each body as it
// walks in, with when it will reach the flaps; the lane decides while it walks, authorises it (AUTHORISE), or
// closes fast (FAST_CLOSE) in front of it: refused, no tap, a second body, walking the wrong way, or its
// decision not durable by its close-by time. Its guards and actions are below; the machine (gate-machine.ts)
// registers them by name, and the pure facts about bodies are in walkers.ts.

import { and, type AnyActorRef } from 'xstate';
import type { BarrierCommand } from '../../protocol/barrier.js';
import type { Direction } from '../../protocol/credential.js';
import type { ReasonCode } from '../../protocol/reasons.js';
import { ask, screen } from './gate-actors.js';
import { requestFrom, type GateContext, type GateEmitted, type GateEvent } from './gate-facts.js';
import { faultTakesLaneOut, whenLaneEmpty } from './gate-transitions.js';
import * as bodies from './walkers.js';
import type { StopWhy, Walker } from './walkers.js';

/** What an action of this cycle gets from the machine (the part of XState's enqueueActions arguments it uses). */
interface Enqueue {
  (fn: () => void): void;
  assign(a: Partial<GateContext>): void;
  emit(e: GateEmitted): void;
  raise(e: GateEvent, options?: { delay?: number }): void;
}
export interface ActionArgs {
  context: GateContext;
  event: GateEvent;
  enqueue: Enqueue;
  self: AnyActorRef;
}
type GuardArgs = { context: GateContext; event: GateEvent };

const regimeRefused = { guard: 'regimeRefused', target: 'ready', actions: 'fallBackToNormallyClosed' } as const;

/** A tap (or a card fault) while the flaps are open or shut: decided at once, or after the one under way. */
const taps = {
  PRESENTED: [
    { guard: 'decisionPending', actions: 'queueTap' },
    { guard: 'listRefuses', actions: { type: 'decideTap', params: { preset: 'list-too-old' } } },
    { actions: { type: 'decideTap', params: {} } },
  ],
  CARD_FAULT: [{ guard: 'decisionPending', actions: 'queueTap' }, { actions: { type: 'decideTap', params: {} } }],
} as const;

/** Flaps open: bodies walk; each is authorised in time, or the flaps close in front of it. */
export const flowing = {
  always: [...whenLaneEmpty],
  on: {
    ...faultTakesLaneOut,
    ...taps,
    BODY_ENTERED: [{ guard: 'wrongWay', target: 'blocking', actions: 'stopWrongWay' }, { actions: 'trackBody' }],
    BODY_DEADLINE: { guard: 'deadlineMissed', target: 'blocking', actions: 'stopAtDeadline' },
    // Its close-by time missed (the lane was late): close now; the board reopens rather than crush.
    BODY_AT_FLAPS: { guard: 'unauthorisedAtFlaps', target: 'blocking', actions: 'stopAtFlaps' },
    BODY_LEFT: { actions: 'bodyLeft' },
    DECIDED: [
      { guard: 'decidedGrant', actions: ['emitDecision', 'admitBody', 'serveQueuedTap'] },
      { guard: and(['decidedRefusal', 'tapHasBody']), target: 'blocking', actions: ['emitDecision', 'refuseBody', 'showRefusal', 'serveQueuedTap'] },
      { guard: 'decidedRefusal', actions: ['emitDecision', 'refuseBody', 'showRefusal', 'serveQueuedTap'] },
      { actions: 'emitDecision' },
    ],
    DECISION_OVERDUE: [
      { guard: and(['decisionOverdue', 'overdueHasBody']), target: 'blocking', actions: ['giveUpDecision', 'serveQueuedTap'] },
      { guard: 'decisionOverdue', actions: ['giveUpDecision', 'serveQueuedTap'] },
    ],
    COMMAND_FAILED: [regimeRefused, { actions: 'alarm' }],
  },
} as const;

/** Flaps shut in front of a body that may not pass: open again once it has turned back, or is authorised. */
export const blocking = {
  // No `always` to another mode: the last body held leaving goes to flowing first, which then applies it.
  on: {
    ...faultTakesLaneOut,
    ...taps,
    BODY_ENTERED: [{ guard: 'wrongWay', actions: 'stopWrongWay' }, { actions: 'trackBody' }],
    BODY_DEADLINE: { guard: 'deadlineMissed', actions: 'stopAtDeadline' },
    BODY_AT_FLAPS: { guard: 'unauthorisedAtFlaps', actions: 'stopAtFlaps' },
    BODY_LEFT: [
      { guard: 'lastBlockerLeft', target: 'flowing', actions: ['bodyLeft', 'reopen'] },
      // An obstruction may have reopened them: shut them again for the bodies still held.
      { actions: ['bodyLeft', 'closeAgain'] },
    ],
    DECIDED: [
      // The one body held was waiting for this grant: AUTHORISE reopens the flaps for it.
      { guard: and(['decidedGrant', 'grantClearsBlock']), target: 'flowing', actions: ['emitDecision', 'admitBody', 'serveQueuedTap'] },
      { guard: 'decidedGrant', actions: ['emitDecision', 'admitBody', 'serveQueuedTap'] },
      { guard: 'decidedRefusal', actions: ['emitDecision', 'refuseBody', 'showRefusal', 'serveQueuedTap'] },
      { actions: 'emitDecision' },
    ],
    DECISION_OVERDUE: { guard: 'decisionOverdue', actions: ['giveUpDecision', 'serveQueuedTap'] },
    COMMAND_FAILED: [regimeRefused, { actions: 'alarm' }],
  },
} as const;

/** The cycle's guards, by name. */
export const normallyOpenGuards = {
  normallyOpen: ({ context }: GuardArgs) => context.regime === 'normally-open',
  regimeRefused: ({ context, event }: GuardArgs) => event.type === 'COMMAND_FAILED' && event.command === 'SET_FLAP_REGIME' && context.regime === 'normally-open',
  wrongWay: ({ context, event }: GuardArgs) => event.type === 'BODY_ENTERED' && bodies.wrongWay(context.env.direction, event.direction),
  deadlineMissed: ({ context, event }: GuardArgs) => event.type === 'BODY_DEADLINE' && bodies.due(context.walkers, event.body, context.env.now()),
  unauthorisedAtFlaps: ({ context, event }: GuardArgs) => event.type === 'BODY_AT_FLAPS' && bodies.unauthorisedAtFlaps(context.walkers, event.body),
  lastBlockerLeft: ({ context, event }: GuardArgs) => event.type === 'BODY_LEFT' && bodies.blockers(bodies.leave(context.walkers, event.body).walkers).length === 0,
  tapHasBody: ({ context, event }: GuardArgs) => event.type === 'DECIDED' && (bodies.tappedBy(context.walkers, event.id)?.body ?? 0) !== 0,
  grantClearsBlock: ({ context, event }: GuardArgs) => event.type === 'DECIDED' && bodies.blockers(bodies.decided(context.walkers, event.id, true).walkers).length === 0,
  decisionPending: ({ context }: GuardArgs) => context.pending !== undefined,
  decisionOverdue: ({ context, event }: GuardArgs) => event.type === 'DECISION_OVERDUE' && context.pending?.id === event.id,
  overdueHasBody: ({ context, event }: GuardArgs) => event.type === 'DECISION_OVERDUE' && (bodies.tappedBy(context.walkers, event.id)?.body ?? 0) !== 0,
  laneEmpty: ({ context }: GuardArgs) => bodies.laneEmpty(context.walkers),
};

// ---- the cycle's actions (gate-machine.ts wraps each in enqueueActions) ----

/** Entering `normal`: a normally-open lane tells the board its regime first (a normally-closed one sends nothing new). */
export const setFlapRegime = ({ context, enqueue }: ActionArgs): void => {
  if (context.env.flaps !== 'normally-open') return;
  enqueue.assign({ regime: 'normally-open', walkers: [] });
  enqueue(() => context.env.barrier.send({ type: 'SET_FLAP_REGIME', regime: 'normally-open' }));
};

/** The board refused normally open: serve normally closed, and make sure the board rests closed. */
export const fallBackToNormallyClosed = ({ context, event, enqueue }: ActionArgs): void => {
  const detail = event.type === 'COMMAND_FAILED' ? event.detail : 'refused';
  enqueue.assign({ regime: 'normally-closed', walkers: [] });
  enqueue.emit({ type: 'alarm', alarm: { alarm: 'flap-regime-refused', detail }, atMs: context.env.now() });
  enqueue(() => context.env.barrier.send({ type: 'SET_FLAP_REGIME', regime: 'normally-closed' }));
};

/** A body walked in: track it (a tap seen just before is its tap) and set its close-by timer. */
export const trackBody = ({ context, event, enqueue }: ActionArgs): void => {
  if (event.type !== 'BODY_ENTERED') return;
  const now = context.env.now();
  const r = bodies.enterBody(context.walkers, event, now, context.env.timeouts);
  enqueue.assign({ walkers: r.walkers });
  for (const w of r.expired) if (w.fate === 'authorised') enqueue.emit({ type: 'passage', direction: w.direction, outcome: 'not-passed', atMs: now });
  enqueue.raise({ type: 'BODY_DEADLINE', body: event.body }, { delay: Math.max(0, r.walker.closeBy - now) });
  // Its tap came first and was granted already: let it through.
  if (r.walker.fate === 'authorised') enqueue(() => context.env.barrier.send({ type: 'AUTHORISE', direction: event.direction, body: event.body }));
};

export const stopWrongWay = ({ context, event, enqueue }: ActionArgs): void => {
  if (event.type !== 'BODY_ENTERED') return;
  const r = bodies.enterBody(context.walkers, event, context.env.now(), context.env.timeouts);
  stopBody(context, enqueue, bodies.stop(r.walkers, event.body), event.direction, 'wrong-way');
};

export const stopAtDeadline = ({ context, event, enqueue }: ActionArgs): void => {
  const w = event.type === 'BODY_DEADLINE' ? context.walkers.find((x) => x.body === event.body) : undefined;
  if (w) stopBody(context, enqueue, bodies.stop(context.walkers, w.body), w.direction, bodies.stopWhy(context.walkers, w.body));
};

export const stopAtFlaps = ({ context, event, enqueue }: ActionArgs): void => {
  if (event.type === 'BODY_AT_FLAPS') stopBody(context, enqueue, bodies.stop(context.walkers, event.body), event.direction, 'at-flaps');
};

/** A tap (or card fault) on a normally-open lane: attributed to the body at the reader, then decided. */
export const decideTap = ({ context, event, enqueue, self }: ActionArgs, params: { preset?: ReasonCode }): void => {
  const req = requestFrom(context, event, params.preset);
  if (!req) return;
  enqueue.assign({ pending: req, decisionSeq: req.id, walkers: bodies.tapBy(context.walkers, req.side, req.id, context.env.now()) });
  enqueue.raise({ type: 'DECISION_OVERDUE', id: req.id }, { delay: context.env.timeouts.decisionMs });
  enqueue(() => ask(context, self, req));
};

/** A tap while another is decided: attributed now, decided next; only the newest waits (an older one is refused as busy). */
export const queueTap = ({ context, event, enqueue, self }: ActionArgs): void => {
  const req = requestFrom(context, event);
  if (!req) return;
  const older = context.queued;
  if (older) enqueue(() => ask(context, self, { ...older, preset: 'lane-busy' }));
  enqueue.assign({ queued: req, decisionSeq: req.id, walkers: bodies.tapBy(context.walkers, req.side, req.id, context.env.now()) });
};

export const serveQueuedTap = ({ context, enqueue, self }: ActionArgs): void => {
  const q = context.queued;
  enqueue.assign({ pending: q, queued: undefined });
  if (!q) return;
  enqueue.raise({ type: 'DECISION_OVERDUE', id: q.id }, { delay: context.env.timeouts.decisionMs });
  enqueue(() => ask(context, self, q));
};

/** Granted: AUTHORISE its body (the board reopens the flaps for it if they had shut), OK and the green arrow. */
export const admitBody = ({ context, event, enqueue }: ActionArgs): void => {
  if (event.type !== 'DECIDED') return;
  const { walkers, walker } = bodies.decided(context.walkers, event.id, true);
  const authorise: BarrierCommand | undefined = walker && walker.body !== 0 ? { type: 'AUTHORISE', direction: walker.direction, body: walker.body } : undefined;
  const s = screen(context, { reason: event.decision.reason, indicator: 'green-arrow' }, authorise);
  enqueue.assign({ walkers, pending: undefined, ...s.update });
  enqueue(s.send);
};

/**
 * Refused: close fast in front of its body (before the refusal shows), if it has one in the lane and the flaps
 * are not shut for it already (its close-by time came before its tap): a second FAST_CLOSE while they close
 * asks the board to start over, and a body arriving then meets them still closing.
 */
export const refuseBody = ({ context, event, enqueue }: ActionArgs): void => {
  if (event.type !== 'DECIDED') return;
  const shutFor = bodies.tappedBy(context.walkers, event.id)?.closed === true;
  const { walkers, walker } = bodies.decided(context.walkers, event.id, false);
  enqueue.assign({ walkers, pending: undefined });
  if (walker && walker.body !== 0 && !shutFor) enqueue(() => context.env.barrier.send({ type: 'FAST_CLOSE' }));
};

/** No decision within decisionMs (journal stuck): refused rather than guessed, flaps shut for its body. */
export const giveUpDecision = ({ context, event, enqueue }: ActionArgs): void => {
  if (event.type !== 'DECISION_OVERDUE') return;
  const w = bodies.tappedBy(context.walkers, event.id);
  const walkers = context.walkers.map((x) => (x === w ? { ...x, tap: undefined, fate: 'refused' as const, closed: x.body !== 0 } : x));
  const s = screen(context, { reason: 'journal-unavailable', indicator: 'red-cross', buzzer: 'short' }, w && w.body !== 0 && !w.closed ? { type: 'FAST_CLOSE' } : undefined);
  enqueue.assign({ walkers, pending: undefined, ...s.update });
  enqueue(s.send);
  enqueue.emit({ type: 'alarm', alarm: { alarm: 'decision-timeout' }, atMs: context.env.now() });
};

/** A body left the lane: a passage, an intrusion (the flaps did not stop it), or one that turned back. */
export const bodyLeft = ({ context, event, enqueue }: ActionArgs): void => {
  if (event.type !== 'BODY_LEFT') return;
  const { walkers, walker } = bodies.leave(context.walkers, event.body);
  const now = context.env.now();
  enqueue.assign({ walkers });
  if (event.way === 'passed') enqueue.emit({ type: 'passage', direction: event.direction, outcome: 'passed', atMs: now });
  else if (event.way === 'intruded') enqueue.emit({ type: 'alarm', alarm: { alarm: 'intrusion', direction: event.direction }, atMs: now });
  else if (walker?.fate === 'authorised') enqueue.emit({ type: 'passage', direction: event.direction, outcome: 'not-passed', atMs: now });
};

/** Nobody held any more: open again (authorising nobody) and show idle. */
export const reopen = ({ context, enqueue }: ActionArgs): void => {
  const s = screen(context, { reason: 'idle', indicator: 'green-arrow' }, { type: 'OPEN', direction: 'entry', passages: 0 });
  if (s.update) enqueue.assign(s.update);
  enqueue(s.send);
};

export const closeAgain = ({ context }: { context: GateContext }): void => {
  if (context.flaps === 'open' || context.flaps === 'opening') context.env.barrier.send({ type: 'FAST_CLOSE' });
};

/** Close fast in front of a body, say why on the display, raise the alarm: the lane's own stop, never a decision. */
function stopBody(
  context: GateContext,
  enqueue: Enqueue,
  walkers: Walker[],
  direction: Direction,
  why: StopWhy,
): void {
  const reason: ReasonCode = why === 'too-fast' ? 'too-fast' : why === 'wrong-way' ? 'wrong-way' : 'no-tap';
  const s = screen(context, { reason, indicator: 'red-cross', buzzer: 'short' }, { type: 'FAST_CLOSE' });
  enqueue.assign({ walkers, ...s.update });
  enqueue(s.send);
  enqueue.emit({ type: 'alarm', alarm: { alarm: 'body-stopped', direction, why }, atMs: context.env.now() });
}

/** The normally-open states (the machine's transition-coverage test for normally-closed lanes leaves them to test/gate/normally-open.test.ts). */
export const NORMALLY_OPEN_STATES: readonly string[] = ['flowing', 'blocking'];
