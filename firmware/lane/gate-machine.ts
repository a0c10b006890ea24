// One gate lane as an XState v5 machine. It holds no I/O: the barrier link, the credential sources and
// the decider (decision core + journal) reach it as callback actors supplied through input, and every
// timeout runs on the clock the actor is created with (a simulated clock in tests and the simulator).

import { assign, emit, enqueueActions, fromCallback, setup, type ActorRefFrom, type AnyActorRef, type SnapshotFrom } from 'xstate';
import type { BarrierCommand, BarrierEvent, Indicator, Buzzer, BarrierMode } from '../../protocol/barrier.js';
import type { Direction, LaneDirection } from '../../protocol/credential.js';
import { REASONS, type ReasonCode } from '../../protocol/reasons.js';
import type { BarrierLink, CredentialSource, Presented, SourceEvent } from '../../drivers/seams.js';
import type { Timeouts } from '../config/config.js';
import type { Decision } from '../verify/decision-core.js';
import { requestDecision, type DecideRequest, type DeciderDeps, type DeciderReply } from './decider.js';

export type { DecideRequest, DeciderReply } from './decider.js';

export type OperatorMode = 'normal' | 'free' | 'maintenance' | 'closed';
export type LaneMode = 'normal' | 'freePassage' | 'emergency' | 'outOfService' | 'maintenance' | 'closed';


type OperatorEvent =
  | { type: 'SET_MODE'; mode: OperatorMode }
  | { type: 'RESET_EMERGENCY' }
  /** From list sync / the age watchdog, per the stale-list policy. */
  | { type: 'LIST_STATE'; stale: boolean; action: 'keep-serving' | 'refuse' | 'out-of-service' };

export type GateEvent = SourceEvent | BarrierEvent | DeciderReply | OperatorEvent;

/** What the lane tells the outside world (journal, logs, metrics, dashboard). */
export type GateEmitted =
  | { type: 'decision'; decision: Decision; source: string; atMs: number; decidedAtMs: number }
  | { type: 'alarm'; alarm: import('../../protocol/alarms.js').Alarm; atMs: number }
  | { type: 'mode'; from: LaneMode; to: LaneMode; cause: string; atMs: number }
  | { type: 'passage'; direction: Direction; outcome: 'passed' | 'not-passed'; atMs: number }
  | { type: 'ignored'; reason: string; source: string; atMs: number };

export interface GateInput {
  laneId: string;
  direction: LaneDirection;
  timeouts: Timeouts;
  now: () => number;
  barrier: BarrierLink;
  sources: CredentialSource[];
  /** What the decider needs: decision core, journal, clock. */
  decider: DeciderDeps;
}

/**
 * The lane's context. Static wiring lives in one `env` field: XState's assign copies the context with
 * Object.assign, and V8 falls off a fast path past ~16 properties (0.2 µs → 5 µs per copy).
 */
export interface GateContext {
  env: GateInput;
  operatorMode: OperatorMode;
  /** Why the lane cannot serve: out-of-service causes by key ("barrier-link", "source:<name>", ...). */
  faults: Record<string, string>;
  fireAlarm: boolean;
  emergencyButton: boolean;
  listRefuse: boolean;
  mode: LaneMode;
  decisionSeq: number;
  /** The presentation being decided. */
  pending?: DecideRequest;
  /** The granted decision whose passage is under way. */
  current?: Decision;
  /** One presentation that arrived while the flaps were closing, served next. */
  queued?: DecideRequest;
  flaps: string;
  indicator: Indicator;
  display: ReasonCode | 'idle';
  lastDecision?: Decision;
}

type Ctx = GateContext;

/** Which mode the lane belongs in, given its faults and the operator's choice (emergency is latched separately). */
export function modeFor(ctx: Ctx): LaneMode {
  // Checked after every event (eventless guards): no allocation here.
  for (const _ in ctx.faults) return 'outOfService';
  if (ctx.operatorMode === 'closed') return 'closed';
  if (ctx.operatorMode === 'maintenance') return 'maintenance';
  if (ctx.operatorMode === 'free') return 'freePassage';
  return 'normal';
}

function withFault(ctx: Ctx, key: string, detail: string | undefined): Record<string, string> {
  const has = Object.hasOwn(ctx.faults, key);
  if (detail === undefined) {
    if (!has) return ctx.faults;
    const { [key]: _gone, ...rest } = ctx.faults;
    return rest;
  }
  if (has && ctx.faults[key] === detail) return ctx.faults;
  return { ...ctx.faults, [key]: detail };
}

/**
 * The barrier actor brings the link's events in and owns its start/stop. Commands go out by direct calls
 * on the injected BarrierLink from actions: an event to this actor per command cost ~25% of a passage cycle.
 */
const barrierActor = fromCallback<{ type: 'none' }, { link: BarrierLink }>(({ sendBack, input }) => {
  let stopped = false;
  input.link.start((e) => {
    if (!stopped) sendBack(e);
  }).catch((err: Error) => sendBack({ type: 'LINK', up: false, detail: `barrier link failed to start: ${err.message}` }));
  return () => {
    stopped = true;
    void input.link.stop();
  };
});

const sourceActor = fromCallback<{ type: 'none' }, { source: CredentialSource }>(({ sendBack, input }) => {
  let stopped = false;
  input.source.start((e) => {
    if (!stopped) sendBack(e);
  }).catch((err: Error) => sendBack({ type: 'SOURCE_FAULT', source: input.source.name, detail: err.message }));
  return () => {
    stopped = true;
    void input.source.stop();
  };
});


function display(reason: ReasonCode | 'idle'): BarrierCommand {
  return { type: 'DISPLAY', textId: reason === 'idle' ? 0 : REASONS[reason].id };
}
function indicate(indicator: Indicator, buzzer: Buzzer = 'off'): BarrierCommand {
  return { type: 'INDICATE', indicator, buzzer };
}

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
    isFireOn: ({ event }) => event.type === 'FIRE_ALARM' && event.active,
    isButtonOn: ({ event }) => event.type === 'EMERGENCY_BUTTON' && event.active,
    emergencyCleared: ({ context }) => !context.fireAlarm && !context.emergencyButton,
    misplaced: ({ context }) => modeFor(context) !== context.mode,
    linkDown: ({ context }) => Object.hasOwn(context.faults, 'barrier-link'),
    isOurDecision: ({ context, event }) => event.type === 'DECIDED' && event.id === context.pending?.id,
    granted: ({ context, event }) => event.type === 'DECIDED' && event.id === context.pending?.id && event.decision.grant,
    hasQueued: ({ context }) => context.queued !== undefined,
    flapsClosed: ({ event }) =>
      (event.type === 'FLAPS' && event.position === 'closed') || (event.type === 'STATUS' && event.flaps === 'closed'),
    openFailed: ({ event }) => event.type === 'COMMAND_FAILED' && event.command === 'OPEN',
  },
  actions: {
    toBarrier: ({ context }, cmd: BarrierCommand) => context.env.barrier.send(cmd),
    setMode: enqueueActions(({ context, enqueue }, params: { to: LaneMode; barrier: BarrierMode; cause?: string }) => {
      if (context.mode !== params.to) {
        enqueue.emit({ type: 'mode', from: context.mode, to: params.to, cause: params.cause ?? causeOf(context), atMs: context.env.now() });
        enqueue.assign({ mode: params.to });
      }
      enqueue(() => context.env.barrier.send({ type: 'SET_MODE', mode: params.barrier }));
    }),
    show: enqueueActions(({ context, enqueue }, params: { reason: ReasonCode | 'idle'; indicator: Indicator; buzzer?: Buzzer; open?: BarrierCommand }) => {
      if (context.display !== params.reason || context.indicator !== params.indicator) enqueue.assign({ display: params.reason, indicator: params.indicator });
      const cmds = [display(params.reason), indicate(params.indicator, params.buzzer)];
      if (params.open) cmds.unshift(params.open);
      enqueue(() => {
        for (const c of cmds) context.env.barrier.send(c);
      });
    }),
    /** Start deciding a presentation: remember it as pending and ask the decider. */
    requestDecision: enqueueActions(({ context, event, enqueue, self }, params: { preset?: ReasonCode; freePassage?: boolean } = {}) => {
      const req = requestFrom(context, event, params.preset, params.freePassage);
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
    dropQueued: enqueueActions(({ context, enqueue, self }) => {
      if (!context.queued) return;
      const dropped: DecideRequest = { ...context.queued, id: context.decisionSeq + 1, preset: 'out-of-service' };
      enqueue(() => ask(context, self, dropped));
      enqueue.assign({ queued: undefined, decisionSeq: context.decisionSeq + 1 });
    }),
    emitDecision: enqueueActions(({ context, event, enqueue, self }) => {
      if (event.type !== 'DECIDED') return;
      enqueue.emit({ type: 'decision', decision: event.decision, source: event.source, atMs: event.atMs, decidedAtMs: context.env.now() });
      enqueue.assign({ lastDecision: event.decision });
    }),
    alarm: emit(({ context, event }, params: { alarm: string }) => ({
      type: 'alarm' as const,
      // Interim (helper C), until the machine rewrite: the event's fields (code, direction, command, port, source, detail, state) are the alarm's details.
      alarm: { alarm: params.alarm, ...Object.fromEntries(Object.entries(event).filter(([k]) => k !== 'type' && k !== 'active')) } as import('../../protocol/alarms.js').Alarm,
      atMs: context.env.now(),
    })),
    passage: emit(({ context }, params: { outcome: 'passed' | 'not-passed' }) => ({
      type: 'passage' as const,
      direction: context.current?.direction ?? 'entry',
      outcome: params.outcome,
      atMs: context.env.now(),
    })),
    ignore: emit(({ context, event }, params: { reason: string }) => ({
      type: 'ignored' as const,
      reason: params.reason,
      source: 'source' in event ? String(event.source) : 'lane',
      atMs: context.env.now(),
    })),
    trackFaults: assign(({ context, event }) => {
      switch (event.type) {
        case 'SOURCE_FAULT':
          return { faults: withFault(context, `source:${event.source}`, event.detail) };
        case 'SOURCE_OK':
          return { faults: withFault(context, `source:${event.source}`, undefined) };
        case 'LINK':
          return { faults: withFault(context, 'barrier-link', event.up ? undefined : (event.detail ?? 'barrier link down')) };
        case 'FAULT':
          return { faults: withFault(context, 'barrier-fault', `barrier fault code ${event.code}`) };
        case 'STATUS':
          return {
            faults: withFault(context, 'barrier-fault', event.faultCode === 0 ? undefined : `barrier fault code ${event.faultCode}`),
            flaps: event.flaps,
          };
        case 'FLAPS':
          return { flaps: event.position };
        case 'LIST_STATE':
          return {
            faults: withFault(context, 'list-too-old', event.stale && event.action === 'out-of-service' ? 'list older than policy allows' : undefined),
            listRefuse: event.stale && event.action === 'refuse',
          };
        case 'SET_MODE':
          return { operatorMode: event.mode };
        case 'FIRE_ALARM':
          return { fireAlarm: event.active };
        case 'EMERGENCY_BUTTON':
          return { emergencyButton: event.active };
        default:
          return {};
      }
    }),
    flapStuck: assign(({ context }) => ({ faults: withFault(context, 'flap-stuck', 'flaps did not close in time') })),
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
    mode: 'outOfService',
    decisionSeq: 0,
    flaps: 'unknown',
    indicator: 'off',
    display: 'idle',
  }),
  invoke: [
    { id: 'barrier', src: 'barrier', input: ({ context }) => ({ link: context.env.barrier }) },
  ],
  entry: enqueueActions(({ context, enqueue }) => {
    context.env.sources.forEach((source, i) => enqueue.spawnChild('source', { id: `source-${i}`, input: { source } }));
  }),
  // Facts are tracked wherever the lane is; states decide what they mean.
  on: {
    SOURCE_FAULT: { actions: ['trackFaults', { type: 'alarm', params: { alarm: 'reader-fault' } }] },
    SOURCE_OK: { actions: 'trackFaults' },
    LINK: { actions: 'trackFaults' },
    FAULT: { actions: ['trackFaults', { type: 'alarm', params: { alarm: 'barrier-fault' } }] },
    STATUS: [
      { guard: ({ event }) => event.fireAlarm, target: '.emergency', actions: ['trackFaults', assign({ fireAlarm: true })] },
      { actions: 'trackFaults' },
    ],
    FLAPS: { actions: 'trackFaults' },
    LIST_STATE: { actions: 'trackFaults' },
    SET_MODE: { actions: 'trackFaults' },
    FIRE_ALARM: [
      { guard: 'isFireOn', target: '.emergency', actions: ['trackFaults', { type: 'alarm', params: { alarm: 'fire-alarm' } }] },
      { actions: ['trackFaults', { type: 'alarm', params: { alarm: 'fire-alarm-cleared' } }] },
    ],
    EMERGENCY_BUTTON: [
      { guard: 'isButtonOn', target: '.emergency', actions: ['trackFaults', { type: 'alarm', params: { alarm: 'emergency-button' } }] },
      { actions: 'trackFaults' },
    ],
    INTRUSION: { actions: [{ type: 'alarm', params: { alarm: 'intrusion' } }, { type: 'toBarrier', params: indicate('red-cross', 'alarm') }] },
    TAILGATE: { actions: [{ type: 'alarm', params: { alarm: 'tailgating' } }, { type: 'toBarrier', params: indicate('red-cross', 'alarm') }] },
    OBSTRUCTION: { actions: { type: 'alarm', params: { alarm: 'obstruction' } } },
    POWER: { actions: { type: 'alarm', params: { alarm: 'power' } } },
    PASSED: { actions: { type: 'alarm', params: { alarm: 'unexpected-passage' } } },
    COMMAND_FAILED: { actions: { type: 'alarm', params: { alarm: 'barrier-command-failed' } } },
    // A decision that arrives after its state was left (mode change, emergency) is still reported.
    DECIDED: { actions: 'emitDecision' },
    PRESENTED: { actions: { type: 'recordRefusal', params: { reason: 'out-of-service' } } },
    CARD_FAULT: { actions: { type: 'ignore', params: { reason: 'card fault while not serving' } } },
  },
  initial: 'route',
  states: {
    /** Decide where the lane belongs now. Transient. */
    route: {
      always: [
        { guard: ({ context }) => modeFor(context) === 'outOfService', target: 'outOfService' },
        { guard: ({ context }) => modeFor(context) === 'closed', target: 'closed' },
        { guard: ({ context }) => modeFor(context) === 'maintenance', target: 'maintenance' },
        { guard: ({ context }) => modeFor(context) === 'freePassage', target: 'freePassage' },
        { target: 'normal' },
      ],
    },

    normal: {
      entry: { type: 'setMode', params: { to: 'normal', barrier: 'normal' } },
      initial: 'ready',
      states: {
        ready: {
          entry: { type: 'show', params: { reason: 'idle', indicator: 'green-arrow' } },
          always: [
            { guard: 'misplaced', target: '#gate.route' },
            { guard: 'hasQueued', target: 'verifying', actions: 'serveQueued' },
          ],
          on: {
            PRESENTED: [
              { guard: ({ context }) => context.listRefuse, target: 'denied', actions: { type: 'requestDecision', params: { preset: 'list-too-old' } } },
              { target: 'verifying', actions: { type: 'requestDecision', params: {} } },
            ],
            CARD_FAULT: { target: 'denied', actions: { type: 'requestDecision', params: {} } },
          },
        },
        verifying: {
          after: {
            // The decider did not answer in time (journal stuck): refuse rather than guess.
            decision: { target: 'denied', actions: [assign({ pending: undefined }), { type: 'show', params: { reason: 'journal-unavailable', indicator: 'red-cross' } }, { type: 'alarm', params: { alarm: 'decision-timeout' } }] },
          },
          on: {
            DECIDED: [
              { guard: 'granted', target: 'granted', actions: ['emitDecision', assign({ current: ({ event }) => (event as DeciderReply).decision })] },
              { guard: 'isOurDecision', target: 'denied', actions: 'emitDecision' },
              { actions: 'emitDecision' },
            ],
            PRESENTED: { actions: { type: 'recordRefusal', params: { reason: 'lane-busy' } } },
            CARD_FAULT: { actions: { type: 'ignore', params: { reason: 'card fault while verifying' } } },
          },
        },
        granted: {
          entry: {
            type: 'show',
            params: ({ context }) => ({ reason: 'ok', indicator: 'green-arrow', open: { type: 'OPEN', direction: context.current!.direction, passages: 1 } }),
          },
          always: { guard: 'linkDown', target: '#gate.route', actions: [{ type: 'passage', params: { outcome: 'not-passed' } }, assign({ current: undefined })] },
          after: {
            passage: { target: 'closing', actions: [{ type: 'passage', params: { outcome: 'not-passed' } }, { type: 'alarm', params: { alarm: 'not-passed' } }] },
          },
          on: {
            PASSED: { target: 'closing', actions: { type: 'passage', params: { outcome: 'passed' } } },
            PRESENTED: { actions: { type: 'recordRefusal', params: { reason: 'lane-busy' } } },
            CARD_FAULT: { actions: { type: 'ignore', params: { reason: 'card fault while open' } } },
            COMMAND_FAILED: {
              guard: 'openFailed',
              target: '#gate.route',
              actions: [{ type: 'alarm', params: { alarm: 'open-failed' } }, { type: 'passage', params: { outcome: 'not-passed' } }],
            },
          },
        },
        closing: {
          entry: [assign({ current: undefined, pending: undefined }), { type: 'toBarrier', params: { type: 'CLOSE' } }],
          always: { guard: 'linkDown', target: '#gate.route', actions: 'dropQueued' },
          after: { closing: { target: '#gate.route', actions: ['flapStuck', { type: 'alarm', params: { alarm: 'flap-stuck' } }, 'dropQueued'] } },
          on: {
            FLAPS: [{ guard: 'flapsClosed', target: 'ready', actions: 'trackFaults' }, { actions: 'trackFaults' }],
            STATUS: [{ guard: 'flapsClosed', target: 'ready', actions: 'trackFaults' }, { actions: 'trackFaults' }],
            OBSTRUCTION: { target: 'obstructed', actions: { type: 'alarm', params: { alarm: 'obstruction' } } },
            PRESENTED: { actions: 'queuePresentation' },
            CARD_FAULT: { actions: { type: 'ignore', params: { reason: 'card fault while closing' } } },
          },
        },
        obstructed: {
          // Never crush: reopen without authorising anyone, hold, then try closing again.
          entry: { type: 'toBarrier', params: { type: 'OPEN', direction: 'entry', passages: 0 } },
          always: { guard: 'linkDown', target: '#gate.route', actions: 'dropQueued' },
          after: { obstructionHold: 'closing' },
          on: {
            PRESENTED: { actions: 'queuePresentation' },
            CARD_FAULT: { actions: { type: 'ignore', params: { reason: 'card fault while obstructed' } } },
          },
        },
        denied: {
          entry: enqueueActions(({ context, event, enqueue, self }) => {
            const reason: ReasonCode =
              event.type === 'DECIDED' ? event.decision.reason : event.type === 'CARD_FAULT' ? event.reason : event.type === 'PRESENTED' && context.listRefuse ? 'list-too-old' : context.display === 'idle' ? 'credential-invalid' : context.display;
            enqueue({ type: 'show', params: { reason, indicator: 'red-cross', buzzer: 'short' } });
          }),
          always: { guard: 'misplaced', target: '#gate.route' },
          after: { deniedDisplay: 'ready' },
          on: {
            PRESENTED: [
              { guard: ({ context }) => context.listRefuse, target: 'denied', reenter: true, actions: { type: 'requestDecision', params: { preset: 'list-too-old' } } },
              { target: 'verifying', actions: { type: 'requestDecision', params: {} } },
            ],
            CARD_FAULT: { target: 'denied', reenter: true, actions: { type: 'requestDecision', params: {} } },
          },
        },
      },
    },

    freePassage: {
      entry: [{ type: 'setMode', params: { to: 'freePassage', barrier: 'free' } }, { type: 'show', params: { reason: 'ok-free-passage', indicator: 'green-arrow' } }],
      always: { guard: 'misplaced', target: 'route' },
      on: {
        // Still decided and journaled (for fares and passback), never refused.
        PRESENTED: { actions: 'recordFreePassage' },
        PASSED: { actions: emit(({ context, event }) => ({ type: 'passage' as const, direction: (event as { direction: Direction }).direction, outcome: 'passed' as const, atMs: context.env.now() })) },
      },
    },

    emergency: {
      entry: [
        // A tap queued while the flaps were closing is answered (and journaled), never dropped silently.
        'dropQueued',
        assign({ current: undefined, pending: undefined }),
        { type: 'setMode', params: { to: 'emergency', barrier: 'emergency', cause: 'fire alarm or emergency button' } },
        { type: 'show', params: { reason: 'out-of-service', indicator: 'green-arrow', buzzer: 'alarm' } },
      ],
      on: {
        // Latched: only an explicit reset, with the alarm input cleared, leaves emergency.
        RESET_EMERGENCY: { guard: 'emergencyCleared', target: 'route', actions: { type: 'alarm', params: { alarm: 'emergency-reset' } } },
        PRESENTED: { actions: { type: 'ignore', params: { reason: 'emergency: credentials ignored' } } },
        // The board may report a status that still says emergency; keep the flaps open.
        STATUS: { actions: ['trackFaults', { type: 'toBarrier', params: { type: 'SET_MODE', mode: 'emergency' } }] },
        LINK: { actions: ['trackFaults', { type: 'toBarrier', params: { type: 'SET_MODE', mode: 'emergency' } }] },
        PASSED: {},
        INTRUSION: {},
      },
    },

    outOfService: {
      entry: [{ type: 'setMode', params: { to: 'outOfService', barrier: 'locked' } }, 'dropQueued', { type: 'show', params: { reason: 'out-of-service', indicator: 'red-cross' } }],
      always: { guard: 'misplaced', target: 'route' },
      on: {
        // When the link comes back, the barrier needs its mode again.
        LINK: { actions: ['trackFaults', { type: 'toBarrier', params: { type: 'SET_MODE', mode: 'locked' } }] },
      },
    },

    maintenance: {
      entry: [{ type: 'setMode', params: { to: 'maintenance', barrier: 'locked' } }, { type: 'show', params: { reason: 'out-of-service', indicator: 'red-cross' } }],
      always: { guard: 'misplaced', target: 'route' },
    },

    closed: {
      entry: [{ type: 'setMode', params: { to: 'closed', barrier: 'locked' } }, { type: 'show', params: { reason: 'station-closed', indicator: 'red-cross' } }],
      always: { guard: 'misplaced', target: 'route' },
      on: { PRESENTED: { actions: { type: 'recordRefusal', params: { reason: 'station-closed' } } } },
    },
  },
});

function causeOf(ctx: Ctx): string {
  const f = Object.entries(ctx.faults);
  if (f.length > 0) return f.map(([k, v]) => `${k}: ${v}`).join('; ');
  return `operator mode ${ctx.operatorMode}`;
}

/** Ask the decider; its answer comes back to this lane as a DECIDED event (never after the lane stopped). */
function ask(ctx: Ctx, self: AnyActorRef, req: DecideRequest): void {
  requestDecision(ctx.env.decider, req, (reply) => {
    if (self.getSnapshot().status === 'active') self.send(reply);
  });
}

function requestFrom(ctx: Ctx, event: GateEvent, preset?: ReasonCode, freePassage?: boolean): DecideRequest | undefined {
  const id = ctx.decisionSeq + 1;
  if (event.type === 'PRESENTED') {
    return { type: 'DECIDE', id, presented: event.presented, side: event.side, source: event.source, atMs: event.atMs, preset, freePassage };
  }
  if (event.type === 'CARD_FAULT') {
    return { type: 'DECIDE', id, side: event.side, source: event.source, atMs: event.atMs, preset: preset ?? event.reason };
  }
  return undefined;
}

export type GateActor = ActorRefFrom<typeof gateMachine>;
export type GateSnapshot = SnapshotFrom<typeof gateMachine>;

/** The lane's current mode and passage state in words, e.g. "normal.granted". */
export function stateName(s: GateSnapshot): string {
  const v = s.value;
  if (typeof v === 'string') return v;
  const [k, sub] = Object.entries(v)[0] as [string, unknown];
  return typeof sub === 'string' ? `${k}.${sub}` : k;
}
