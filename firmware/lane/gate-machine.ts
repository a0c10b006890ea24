// Why this file is long: it is one statechart — setup (guards, actions, actors by name) and the machine
// definition must be read together; the vocabulary and pure facts live in gate-facts.ts, the chart in README.md.
// One gate lane as an XState v5 machine. It holds no I/O: the barrier link and the credential sources reach
// it as callback actors, commands go out and decisions are asked for through the injected ports, and every
// timeout runs on the clock the actor is created with (a simulated clock in tests and the simulator).
//
// The chart is the documentation: firmware/lane/README.md holds the diagram generated from this definition
// (chart.ts; a test fails when they drift). Every transition is named by its cause (a LINK down event takes
// the lane out of service, a FIRE_ALARM to emergency, SET_MODE to the operator's mode), every guard and
// action by what it means. The lane's mode is its top-level state, stored nowhere else. Its vocabulary
// (events, context, modes) and the pure functions over its facts are in gate-facts.ts. This file runs past
// 500 lines on purpose: the guards and actions and the states that name them are one definition, read together.

import { and, assign, emit, enqueueActions, fromCallback, setup } from 'xstate';
import type { ActorRefFrom, AnyActorRef, SnapshotFrom } from 'xstate';
import type { BarrierCommand, Indicator, Buzzer, BarrierMode } from '../../protocol/barrier.js';
import type { Alarm } from '../../protocol/alarms.js';
import { REASONS, type ReasonCode } from '../../protocol/reasons.js';
import type { BarrierLink, CredentialSource } from '../../drivers/seams.js';
import type { Direction } from '../../protocol/credential.js';
import { requestDecision, type DecideRequest } from './decider.js';
import * as bodies from './walkers.js';
import type { StopWhy } from './walkers.js';
import {
  OPERATOR_MODE,
  alarmOf,
  causeOf,
  faultChange,
  faultedAfter,
  laneMode,
  modeFor,
  requestFrom,
  withFault,
  type GateContext,
  type GateEmitted,
  type GateEvent,
  type GateInput,
  type LaneMode,
  type OperatorMode,
} from './gate-facts.js';

export { laneMode } from './gate-facts.js';
export type { GateContext, GateEmitted, GateEvent, GateInput, LaneMode, OperatorMode } from './gate-facts.js';
export type { DecideRequest, DeciderReply } from './decider.js';

type Ctx = GateContext;

import { ask, barrierActor, screen, sourceActor, type ShowParams } from './gate-actors.js';
import {
  OUT_OF_SERVICE,
  afterPassage,
  backInService,
  belongsIn,
  faultTakesLaneOut,
  holdEmergency,
  linkBackInService,
  lockBarrier,
  notPassed,
  openFailedActions,
  openFailedIn,
  operatorPicks,
  resetTo,
} from './gate-transitions.js';
import * as open from './normally-open.js';
import { blocking, flowing, normallyOpenGuards as openGuards } from './normally-open.js';

export const gateMachine = setup({
  types: {
    context: {} as GateContext,
    events: {} as GateEvent,
    input: {} as GateInput,
    emitted: {} as GateEmitted,
  },
  actors: { barrier: barrierActor, source: sourceActor },
  delays: {
    passage: ({ context }) => context.env.timeouts.passageMs,
    deniedDisplay: ({ context }) => context.env.timeouts.deniedDisplayMs,
    closing: ({ context }) => context.env.timeouts.closingMs,
    obstructionHold: ({ context }) => context.env.timeouts.obstructionHoldMs,
    decision: ({ context }) => context.env.timeouts.decisionMs,
  },
  guards: {
    // The normally-open cycle (normally-open.ts, walkers.ts).
    normallyOpen: (a) => openGuards.normallyOpen(a),
    regimeRefused: (a) => openGuards.regimeRefused(a),
    wrongWay: (a) => openGuards.wrongWay(a),
    deadlineMissed: (a) => openGuards.deadlineMissed(a),
    unauthorisedAtFlaps: (a) => openGuards.unauthorisedAtFlaps(a),
    lastBlockerLeft: (a) => openGuards.lastBlockerLeft(a),
    tapHasBody: (a) => openGuards.tapHasBody(a),
    grantClearsBlock: (a) => openGuards.grantClearsBlock(a),
    decisionPending: (a) => openGuards.decisionPending(a),
    decisionOverdue: (a) => openGuards.decisionOverdue(a),
    overdueHasBody: (a) => openGuards.overdueHasBody(a),
    laneEmpty: (a) => openGuards.laneEmpty(a),
    // Causes that take a serving lane out of service (SOURCE_FAULT and FAULT always do).
    linkLost: ({ event }) => event.type === 'LINK' && !event.up,
    // A status with the fire input on is an emergency first (the root's STATUS transition).
    barrierFaultReported: ({ event }) => event.type === 'STATUS' && event.faultCode !== 0 && !event.fireAlarm,
    listTooOld: ({ event }) => event.type === 'LIST_STATE' && event.stale && event.action === 'out-of-service',
    // Emergency inputs, and the reset that needs them cleared.
    fireAlarmOn: ({ event }) => event.type === 'FIRE_ALARM' && event.active,
    buttonPressed: ({ event }) => event.type === 'EMERGENCY_BUTTON' && event.active,
    fireInputOn: ({ event }) => event.type === 'STATUS' && event.fireAlarm,
    inputsCleared: ({ context }) => !context.fireAlarm && !context.emergencyButton,
    // Where the lane belongs.
    operatorPicks: ({ event }, p: { mode: OperatorMode }) => event.type === 'SET_MODE' && event.mode === p.mode,
    /** This event clears the last fault, and `mode` is the operator's choice. */
    recovers: ({ context, event }, p: { mode: LaneMode }) =>
      !(event.type === 'STATUS' && event.fireAlarm) && !faultedAfter(context, event) && OPERATOR_MODE[context.operatorMode] === p.mode,
    /** By its faults and the operator's choice as they are now, the lane belongs in `mode`. */
    belongsIn: ({ context }, p: { mode: LaneMode }) => modeFor(context) === p.mode,
    // The passage cycle.
    listRefuses: ({ context }) => context.listRefuse,
    decidedGrant: ({ context, event }) => event.type === 'DECIDED' && event.id === context.pending?.id && event.decision.grant,
    decidedRefusal: ({ context, event }) => event.type === 'DECIDED' && event.id === context.pending?.id && !event.decision.grant,
    linkIsDown: ({ context }) => Object.hasOwn(context.faults, 'barrier-link'),
    flapsClosed: ({ event }) =>
      (event.type === 'FLAPS' && event.position === 'closed') || (event.type === 'STATUS' && event.flaps === 'closed'),
    openFailed: ({ event }) => event.type === 'COMMAND_FAILED' && event.command === 'OPEN',
    hasQueued: ({ context }) => context.queued !== undefined,
  },
  actions: {
    startSources: enqueueActions(({ context, enqueue }) => {
      context.env.sources.forEach((source, i) => enqueue.spawnChild('source', { id: `source-${i}`, input: { source } }));
    }),
    toBarrier: ({ context }, cmd: BarrierCommand) => context.env.barrier.send(cmd),
    /** Entering a mode: tell the board, and report the change (from the mode before this event). */
    setMode: enqueueActions(({ context, event, enqueue, self }, params: { to: LaneMode; barrier: BarrierMode; cause?: string }) => {
      // Actions run before the actor takes its new snapshot, so self's is the one this event found. While the
      // machine starts (xstate.init) there is none yet, and nothing to report: the lane starts out of service.
      const starting = (event as { type: string }).type === 'xstate.init';
      const from = starting ? params.to : laneMode(self.getSnapshot());
      if (from !== params.to) {
        enqueue.emit({ type: 'mode', from, to: params.to, cause: params.cause ?? causeOf(context), atMs: context.env.now() });
      }
      enqueue(() => context.env.barrier.send({ type: 'SET_MODE', mode: params.barrier }));
    }),
    show: enqueueActions(({ context, enqueue }, params: ShowParams) => {
      const s = screen(context, params);
      if (s.update) enqueue.assign(s.update);
      enqueue(s.send);
    }),
    /** Granted: open the flaps for one passage in the decision's direction, show OK and the green arrow. */
    openForPassage: enqueueActions(({ context, enqueue }) => {
      const open: BarrierCommand = { type: 'OPEN', direction: context.current!.direction, passages: 1 };
      const s = screen(context, { reason: 'ok', indicator: 'green-arrow' }, open);
      if (s.update) enqueue.assign(s.update);
      enqueue(s.send);
    }),
    /** Refused: the decision's reason (or the card fault's, or the stale list's), red cross, short buzz. */
    showRefusal: enqueueActions(({ context, event, enqueue }) => {
      const reason: ReasonCode =
        event.type === 'DECIDED'
          ? event.decision.reason
          : event.type === 'CARD_FAULT'
            ? event.reason
            : event.type === 'PRESENTED' && context.listRefuse
              ? 'list-too-old'
              : context.display === 'idle'
                ? 'credential-invalid'
                : context.display;
      const s = screen(context, { reason, indicator: 'red-cross', buzzer: 'short' });
      if (s.update) enqueue.assign(s.update);
      enqueue(s.send);
    }),
    /** Start deciding a presentation: remember it as pending and ask the decider. */
    requestDecision: enqueueActions(({ context, event, enqueue, self }, params: { preset?: ReasonCode } | undefined) => {
      const req = requestFrom(context, event, params?.preset);
      if (!req) return;
      enqueue.assign({ pending: req, decisionSeq: req.id });
      enqueue(() => ask(context, self, req));
    }),
    serveQueued: enqueueActions(({ context, enqueue, self }) => {
      const q = context.queued;
      if (!q) return;
      const req = { ...q, id: context.decisionSeq + 1 };
      enqueue.assign({ pending: req, queued: undefined, decisionSeq: req.id });
      enqueue(() => ask(context, self, req));
    }),
    /** Journal a refusal the lane decides by itself, without changing state (busy, out of service, ...). */
    recordRefusal: enqueueActions(({ context, event, enqueue, self }, params: { reason: ReasonCode }) => {
      const req = requestFrom(context, event, params.reason);
      if (!req) return;
      enqueue.assign({ decisionSeq: req.id });
      enqueue(() => ask(context, self, req));
    }),
    /** Free passage: the flaps are open anyway; the presentation is still decided and journaled. */
    recordFreePassage: enqueueActions(({ context, event, enqueue, self }) => {
      const req = requestFrom(context, event, undefined, true);
      if (!req) return;
      enqueue.assign({ decisionSeq: req.id });
      enqueue(() => ask(context, self, req));
    }),
    /** A presentation arrived while the flaps are closing: keep the newest one; an older one is refused as busy. */
    queuePresentation: enqueueActions(({ context, event, enqueue, self }) => {
      const req = requestFrom(context, event);
      if (!req) return;
      const older = context.queued;
      if (older) enqueue(() => ask(context, self, { ...older, id: req.id, preset: 'lane-busy' }));
      enqueue.assign({ queued: { ...req, id: req.id + 1 }, decisionSeq: req.id + 1 });
    }),
    /** The queued presentation cannot be served (out of service, emergency): refuse it, on the record. */
    dropQueued: enqueueActions(({ context, enqueue, self }) => {
      if (!context.queued) return;
      const dropped: DecideRequest = { ...context.queued, id: context.decisionSeq + 1, preset: 'out-of-service' };
      enqueue(() => ask(context, self, dropped));
      enqueue.assign({ queued: undefined, decisionSeq: context.decisionSeq + 1 });
    }),
    emitDecision: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'DECIDED') return;
      enqueue.emit({ type: 'decision', decision: event.decision, source: event.source, atMs: event.atMs, decidedAtMs: context.env.now() });
      enqueue.assign({ lastDecision: event.decision });
    }),
    holdGrant: assign(({ event }) => (event.type === 'DECIDED' ? { current: event.decision } : {})),
    releaseGrant: assign({ current: undefined }),
    forgetPassage: assign({ current: undefined, pending: undefined }),
    forgetPending: assign({ pending: undefined }),
    /** The alarm the event raises (see alarmOf), or the one given. */
    alarm: enqueueActions(({ context, event, enqueue }, params: Alarm | undefined) => {
      const alarm = params ?? alarmOf(event);
      if (alarm) enqueue.emit({ type: 'alarm', alarm, atMs: context.env.now() });
    }),
    alarmOpenFailed: emit(({ context, event }) => ({
      type: 'alarm' as const,
      alarm: event.type === 'COMMAND_FAILED'
        ? { alarm: 'open-failed' as const, command: 'OPEN' as const, port: event.port, detail: event.detail }
        : { alarm: 'open-failed' as const },
      atMs: context.env.now(),
    })),
    passage: emit(({ context }, params: { outcome: 'passed' | 'not-passed' }) => ({
      type: 'passage' as const,
      direction: context.current?.direction ?? 'entry',
      outcome: params.outcome,
      atMs: context.env.now(),
    })),
    passedFreely: emit(({ context, event }) => ({
      type: 'passage' as const,
      direction: event.type === 'PASSED' ? event.direction : 'entry',
      outcome: 'passed' as const,
      atMs: context.env.now(),
    })),
    ignore: emit(({ context, event }, params: { reason: string }) => ({
      type: 'ignored' as const,
      reason: params.reason,
      source: 'source' in event ? String(event.source) : 'lane',
      atMs: context.env.now(),
    })),
    /** Record what an event says about the lane: faults, flaps, inputs, the operator's choice, the list policy. */
    trackFacts: assign(({ context, event }) => {
      const change = faultChange(event);
      const faults = change ? withFault(context.faults, change.key, change.detail) : context.faults;
      switch (event.type) {
        case 'STATUS':
          return { faults, flaps: event.flaps };
        case 'FLAPS':
          return { flaps: event.position };
        case 'LIST_STATE':
          return { faults, listRefuse: event.stale && event.action === 'refuse' };
        case 'SET_MODE':
          return { operatorMode: event.mode };
        case 'FIRE_ALARM':
          return { fireAlarm: event.active };
        case 'EMERGENCY_BUTTON':
          return { emergencyButton: event.active };
        default:
          return change ? { faults } : {};
      }
    }),
    // ---- the normally-open cycle (normally-open.ts) ----
    setFlapRegime: enqueueActions((a) => open.setFlapRegime(a)),
    fallBackToNormallyClosed: enqueueActions((a) => open.fallBackToNormallyClosed(a)),
    trackBody: enqueueActions((a) => open.trackBody(a)),
    stopWrongWay: enqueueActions((a) => open.stopWrongWay(a)),
    stopAtDeadline: enqueueActions((a) => open.stopAtDeadline(a)),
    stopAtFlaps: enqueueActions((a) => open.stopAtFlaps(a)),
    decideTap: enqueueActions((a, params: { preset?: ReasonCode }) => open.decideTap(a, params)),
    queueTap: enqueueActions((a) => open.queueTap(a)),
    serveQueuedTap: enqueueActions((a) => open.serveQueuedTap(a)),
    admitBody: enqueueActions((a) => open.admitBody(a)),
    refuseBody: enqueueActions((a) => open.refuseBody(a)),
    giveUpDecision: enqueueActions((a) => open.giveUpDecision(a)),
    bodyLeft: enqueueActions((a) => open.bodyLeft(a)),
    reopen: enqueueActions((a) => open.reopen(a)),
    closeAgain: (a) => open.closeAgain(a),
    latchFireInput: assign({ fireAlarm: true }),
    flapStuck: assign(({ context }) => ({ faults: withFault(context.faults, 'flap-stuck', 'flaps did not close in time') })),
  },
}).createMachine({
  id: 'gate',
  context: ({ input }) => ({
    env: input,
    operatorMode: 'normal',
    // Until the barrier link reports up, the lane cannot serve.
    faults: { 'barrier-link': 'barrier link not yet up' },
    fireAlarm: false,
    emergencyButton: false,
    listRefuse: false,
    decisionSeq: 0,
    flaps: 'unknown',
    indicator: 'off',
    display: 'idle',
    regime: input.flaps ?? 'normally-closed',
    walkers: [],
  }),
  invoke: [{ id: 'barrier', src: 'barrier', input: ({ context }) => ({ link: context.env.barrier }) }],
  entry: 'startSources',
  // Facts are tracked wherever the lane is; states decide what they mean. The emergency inputs win anywhere.
  on: {
    FIRE_ALARM: [
      { guard: 'fireAlarmOn', target: '.emergency', actions: ['trackFacts', 'alarm'] },
      { actions: ['trackFacts', 'alarm'] },
    ],
    EMERGENCY_BUTTON: [{ guard: 'buttonPressed', target: '.emergency', actions: ['trackFacts', 'alarm'] }, { actions: 'trackFacts' }],
    STATUS: [{ guard: 'fireInputOn', target: '.emergency', actions: ['trackFacts', 'latchFireInput'] }, { actions: 'trackFacts' }],
    SOURCE_FAULT: { actions: ['trackFacts', 'alarm'] },
    SOURCE_OK: { actions: 'trackFacts' },
    LINK: { actions: 'trackFacts' },
    FAULT: { actions: ['trackFacts', 'alarm'] },
    FLAPS: { actions: 'trackFacts' },
    LIST_STATE: { actions: 'trackFacts' },
    SET_MODE: { actions: 'trackFacts' },
    INTRUSION: { actions: ['alarm', { type: 'toBarrier', params: { type: 'INDICATE', indicator: 'red-cross', buzzer: 'alarm' } }] },
    TAILGATE: { actions: ['alarm', { type: 'toBarrier', params: { type: 'INDICATE', indicator: 'red-cross', buzzer: 'alarm' } }] },
    OBSTRUCTION: { actions: 'alarm' },
    POWER: { actions: 'alarm' },
    PASSED: { actions: 'alarm' },
    COMMAND_FAILED: { actions: 'alarm' },
    // A decision that arrives after its state was left (mode change, emergency) is still reported.
    DECIDED: { actions: 'emitDecision' },
    PRESENTED: { actions: { type: 'recordRefusal', params: { reason: 'out-of-service' } } },
    CARD_FAULT: { actions: { type: 'ignore', params: { reason: 'card fault while not serving' } } },
  },
  // Until the barrier link reports up.
  initial: 'outOfService',
  states: {
    normal: {
      entry: ['setFlapRegime', { type: 'setMode', params: { to: 'normal', barrier: 'normal' } }],
      initial: 'ready',
      states: {
        ready: {
          entry: { type: 'show', params: { reason: 'idle', indicator: 'green-arrow' } },
          always: [...afterPassage, { guard: 'normallyOpen', target: 'flowing' }, { guard: 'hasQueued', target: 'verifying', actions: 'serveQueued' }],
          on: {
            ...faultTakesLaneOut,
            SET_MODE: [
              { guard: operatorPicks('free'), target: '#gate.freePassage', actions: 'trackFacts' },
              { guard: operatorPicks('maintenance'), target: '#gate.maintenance', actions: 'trackFacts' },
              { guard: operatorPicks('closed'), target: '#gate.closed', actions: 'trackFacts' },
            ],
            PRESENTED: [
              { guard: 'listRefuses', target: 'denied', actions: { type: 'requestDecision', params: { preset: 'list-too-old' } } },
              { target: 'verifying', actions: 'requestDecision' },
            ],
            CARD_FAULT: { target: 'denied', actions: 'requestDecision' },
          },
        },
        // Deciding: the decider answers with DECIDED once the record is durable.
        verifying: {
          after: {
            // The decider did not answer in time (journal stuck): refuse rather than guess.
            decision: {
              target: 'denied',
              actions: [
                'forgetPending',
                { type: 'show', params: { reason: 'journal-unavailable', indicator: 'red-cross' } },
                { type: 'alarm', params: { alarm: 'decision-timeout' } },
              ],
            },
          },
          on: {
            DECIDED: [
              { guard: 'decidedGrant', target: 'granted', actions: ['emitDecision', 'holdGrant'] },
              { guard: 'decidedRefusal', target: 'denied', actions: 'emitDecision' },
              // An answer to an earlier presentation (after a decision timeout): reported, nothing else.
              { actions: 'emitDecision' },
            ],
            PRESENTED: { actions: { type: 'recordRefusal', params: { reason: 'lane-busy' } } },
            CARD_FAULT: { actions: { type: 'ignore', params: { reason: 'card fault while verifying' } } },
          },
        },
        granted: {
          entry: 'openForPassage',
          // The link went down while deciding: the flaps were told to open, but no passage can follow.
          always: { guard: 'linkIsDown', target: OUT_OF_SERVICE, actions: [notPassed, 'releaseGrant'] },
          after: {
            passage: { target: 'closing', actions: [notPassed, { type: 'alarm', params: { alarm: 'not-passed' } }] },
          },
          on: {
            PASSED: { target: 'closing', actions: { type: 'passage', params: { outcome: 'passed' } } },
            LINK: { guard: 'linkLost', target: OUT_OF_SERVICE, actions: ['trackFacts', notPassed, 'releaseGrant'] },
            // The board never acknowledged OPEN: the lane starts over where it belongs.
            COMMAND_FAILED: [
              { guard: openFailedIn('outOfService'), target: OUT_OF_SERVICE, actions: openFailedActions },
              { guard: openFailedIn('closed'), target: '#gate.closed', actions: openFailedActions },
              { guard: openFailedIn('maintenance'), target: '#gate.maintenance', actions: openFailedActions },
              { guard: openFailedIn('freePassage'), target: '#gate.freePassage', actions: openFailedActions },
              { guard: openFailedIn('normal'), target: '#gate.normal', reenter: true, actions: openFailedActions },
            ],
            PRESENTED: { actions: { type: 'recordRefusal', params: { reason: 'lane-busy' } } },
            CARD_FAULT: { actions: { type: 'ignore', params: { reason: 'card fault while open' } } },
          },
        },
        closing: {
          entry: ['forgetPassage', { type: 'toBarrier', params: { type: 'CLOSE' } }],
          after: {
            closing: { target: OUT_OF_SERVICE, actions: ['flapStuck', { type: 'alarm', params: { alarm: 'flap-stuck' } }, 'dropQueued'] },
          },
          on: {
            // A STATUS here is read for the flaps only (its fire input is not acted on while closing).
            FLAPS: [{ guard: 'flapsClosed', target: 'ready', actions: 'trackFacts' }, { actions: 'trackFacts' }],
            STATUS: [{ guard: 'flapsClosed', target: 'ready', actions: 'trackFacts' }, { actions: 'trackFacts' }],
            LINK: { guard: 'linkLost', target: OUT_OF_SERVICE, actions: ['trackFacts', 'dropQueued'] },
            OBSTRUCTION: { target: 'obstructed', actions: 'alarm' },
            PRESENTED: { actions: 'queuePresentation' },
            CARD_FAULT: { actions: { type: 'ignore', params: { reason: 'card fault while closing' } } },
          },
        },
        obstructed: {
          // Never crush: reopen without authorising anyone, hold, then try closing again.
          entry: { type: 'toBarrier', params: { type: 'OPEN', direction: 'entry', passages: 0 } },
          after: { obstructionHold: 'closing' },
          on: {
            LINK: { guard: 'linkLost', target: OUT_OF_SERVICE, actions: ['trackFacts', 'dropQueued'] },
            PRESENTED: { actions: 'queuePresentation' },
            CARD_FAULT: { actions: { type: 'ignore', params: { reason: 'card fault while obstructed' } } },
          },
        },
        denied: {
          entry: 'showRefusal',
          always: [...afterPassage],
          after: { deniedDisplay: 'ready' },
          on: {
            ...faultTakesLaneOut,
            SET_MODE: [
              { guard: operatorPicks('free'), target: '#gate.freePassage', actions: 'trackFacts' },
              { guard: operatorPicks('maintenance'), target: '#gate.maintenance', actions: 'trackFacts' },
              { guard: operatorPicks('closed'), target: '#gate.closed', actions: 'trackFacts' },
            ],
            PRESENTED: [
              {
                guard: 'listRefuses',
                target: 'denied',
                reenter: true,
                actions: { type: 'requestDecision', params: { preset: 'list-too-old' } },
              },
              { target: 'verifying', actions: 'requestDecision' },
            ],
            CARD_FAULT: { target: 'denied', reenter: true, actions: 'requestDecision' },
          },
        },
        // The normally-open cycle (normally-open.ts).
        flowing,
        blocking,
      },
    },

    freePassage: {
      entry: [
        { type: 'setMode', params: { to: 'freePassage', barrier: 'free' } },
        { type: 'show', params: { reason: 'ok-free-passage', indicator: 'green-arrow' } },
      ],
      on: {
        ...faultTakesLaneOut,
        SET_MODE: [
          { guard: operatorPicks('normal'), target: 'normal', actions: 'trackFacts' },
          { guard: operatorPicks('maintenance'), target: 'maintenance', actions: 'trackFacts' },
          { guard: operatorPicks('closed'), target: 'closed', actions: 'trackFacts' },
        ],
        // Still decided and journaled (for fares and passback), never refused.
        PRESENTED: { actions: 'recordFreePassage' },
        PASSED: { actions: 'passedFreely' },
      },
    },

    emergency: {
      entry: [
        // A tap queued while the flaps were closing is answered (and journaled), never dropped silently.
        'dropQueued',
        'forgetPassage',
        { type: 'setMode', params: { to: 'emergency', barrier: 'emergency', cause: 'fire alarm or emergency button' } },
        { type: 'show', params: { reason: 'out-of-service', indicator: 'green-arrow', buzzer: 'alarm' } },
      ],
      on: {
        // Latched: only an explicit reset, with the alarm inputs cleared, leaves emergency.
        RESET_EMERGENCY: [
          { guard: resetTo('outOfService'), target: 'outOfService', actions: 'alarm' },
          { guard: resetTo('closed'), target: 'closed', actions: 'alarm' },
          { guard: resetTo('maintenance'), target: 'maintenance', actions: 'alarm' },
          { guard: resetTo('freePassage'), target: 'freePassage', actions: 'alarm' },
          { guard: resetTo('normal'), target: 'normal', actions: 'alarm' },
        ],
        PRESENTED: { actions: { type: 'ignore', params: { reason: 'emergency: credentials ignored' } } },
        // The board may report a status that still says emergency; keep the flaps open.
        STATUS: { actions: ['trackFacts', holdEmergency] },
        LINK: { actions: ['trackFacts', holdEmergency] },
        PASSED: {},
        INTRUSION: {},
      },
    },

    outOfService: {
      entry: [
        { type: 'setMode', params: { to: 'outOfService', barrier: 'locked' } },
        'dropQueued',
        { type: 'show', params: { reason: 'out-of-service', indicator: 'red-cross' } },
      ],
      on: {
        // When the link comes back, the barrier needs its mode again.
        LINK: [...linkBackInService, { actions: ['trackFacts', lockBarrier] }],
        SOURCE_OK: [...backInService],
        STATUS: [...backInService],
        LIST_STATE: [...backInService],
      },
    },

    maintenance: {
      entry: [
        { type: 'setMode', params: { to: 'maintenance', barrier: 'locked' } },
        { type: 'show', params: { reason: 'out-of-service', indicator: 'red-cross' } },
      ],
      on: {
        ...faultTakesLaneOut,
        SET_MODE: [
          { guard: operatorPicks('normal'), target: 'normal', actions: 'trackFacts' },
          { guard: operatorPicks('free'), target: 'freePassage', actions: 'trackFacts' },
          { guard: operatorPicks('closed'), target: 'closed', actions: 'trackFacts' },
        ],
      },
    },

    closed: {
      entry: [
        { type: 'setMode', params: { to: 'closed', barrier: 'locked' } },
        { type: 'show', params: { reason: 'station-closed', indicator: 'red-cross' } },
      ],
      on: {
        ...faultTakesLaneOut,
        SET_MODE: [
          { guard: operatorPicks('normal'), target: 'normal', actions: 'trackFacts' },
          { guard: operatorPicks('free'), target: 'freePassage', actions: 'trackFacts' },
          { guard: operatorPicks('maintenance'), target: 'maintenance', actions: 'trackFacts' },
        ],
        PRESENTED: { actions: { type: 'recordRefusal', params: { reason: 'station-closed' } } },
      },
    },
  },
});

export type GateActor = ActorRefFrom<typeof gateMachine>;
export type GateSnapshot = SnapshotFrom<typeof gateMachine>;

/** The lane's current mode and passage state in words, e.g. "normal.granted". */
export function stateName(s: GateSnapshot): string {
  const v = s.value;
  if (typeof v === 'string') return v;
  const [k, sub] = Object.entries(v)[0] as [string, unknown];
  return typeof sub === 'string' ? `${k}.${sub}` : k;
}
