// The gate machine's vocabulary and the facts it keeps: its events, what it emits, its context, the lane's
// modes, and the pure functions its guards and actions read them with (where a lane belongs, which fault an
// event raises or clears, which alarm it raises). The machine itself is gate-machine.ts.

import type { StateValue } from 'xstate';
import type { BarrierEvent, FlapRegime, Indicator } from '../../protocol/barrier.js';
import type { Alarm } from '../../protocol/alarms.js';
import type { Direction, LaneDirection } from '../../protocol/credential.js';
import type { ReasonCode } from '../../protocol/reasons.js';
import type { BarrierLink, CredentialSource, SourceEvent } from '../../drivers/seams.js';
import type { Timeouts } from '../config/config.js';
import type { Decision } from '../verify/decision-core.js';
import type { DecideRequest, DeciderDeps, DeciderReply } from './decider.js';
import type { Walker } from './walkers.js';

/** What a supervisor or the CLI asks for (SET_MODE). */
export type OperatorMode = 'normal' | 'free' | 'maintenance' | 'closed';
/** The lane's mode: its top-level state. Journal `mode` records, metrics and the dashboard use these names. */
export type LaneMode = 'normal' | 'freePassage' | 'emergency' | 'outOfService' | 'maintenance' | 'closed';

/** The lane mode each operator choice means (the barrier board's own word for free passage is `free`). */
export const OPERATOR_MODE: Record<OperatorMode, LaneMode> = {
  normal: 'normal',
  free: 'freePassage',
  maintenance: 'maintenance',
  closed: 'closed',
};

type OperatorEvent =
  | { type: 'SET_MODE'; mode: OperatorMode }
  | { type: 'RESET_EMERGENCY' }
  /** From list sync / the age watchdog, per the stale-list policy. */
  | { type: 'LIST_STATE'; stale: boolean; action: 'keep-serving' | 'refuse' | 'out-of-service' };

/** Timers the normally-open cycle sets itself (delayed events on the lane's clock). */
type LaneTimerEvent =
  /** A body's close-by time: closed in front of it unless it is authorised by now. */
  | { type: 'BODY_DEADLINE'; body: number }
  /** A normally-open decision not answered within decisionMs. */
  | { type: 'DECISION_OVERDUE'; id: number };

export type GateEvent = SourceEvent | BarrierEvent | DeciderReply | OperatorEvent | LaneTimerEvent;

/** What the lane tells the outside world (journal, logs, metrics, dashboard). */
export type GateEmitted =
  | { type: 'decision'; decision: Decision; source: string; atMs: number; decidedAtMs: number }
  | { type: 'alarm'; alarm: Alarm; atMs: number }
  | { type: 'mode'; from: LaneMode; to: LaneMode; cause: string; atMs: number }
  | { type: 'passage'; direction: Direction; outcome: 'passed' | 'not-passed'; atMs: number }
  | { type: 'ignored'; reason: string; source: string; atMs: number };

export interface GateInput {
  laneId: string;
  direction: LaneDirection;
  /** The lane config's `lane.flaps` (absent: normally closed). */
  flaps?: FlapRegime;
  timeouts: Timeouts;
  now: () => number;
  barrier: BarrierLink;
  sources: CredentialSource[];
  /** What the decider needs: decision core, journal, clock. */
  decider: DeciderDeps;
}

/**
 * The lane's context: facts about the lane (faults, inputs, the operator's choice, flaps, display) and the
 * presentation under way. The mode is not here: it is the state. Static wiring lives in one `env` field:
 * XState's assign copies the context with Object.assign, and V8 falls off a fast path past ~16 properties.
 */
export interface GateContext {
  env: GateInput;
  operatorMode: OperatorMode;
  /** Why the lane cannot serve: out-of-service causes by key ("barrier-link", "source:<name>", ...). */
  faults: Record<string, string>;
  fireAlarm: boolean;
  emergencyButton: boolean;
  listRefuse: boolean;
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
  /** The regime the lane runs: the config's, or normally closed when the board refused normally open. */
  regime: FlapRegime;
  /** Normally open: the bodies walking in the lane (walkers.ts). */
  walkers: Walker[];
}

type Ctx = GateContext;

/** The lane's mode: the top-level state it is in. */
export function laneMode(s: { value: StateValue }): LaneMode {
  const v = s.value;
  if (typeof v === 'string') return v as LaneMode;
  for (const k in v) return k as LaneMode;
  throw new Error('gate machine: empty state value');
}

/** Where the lane belongs by its faults and the operator's choice (an emergency is latched apart). */
export function modeFor(ctx: Ctx): LaneMode {
  // Guards call this after every event in ready: no allocation.
  for (const _ in ctx.faults) return 'outOfService';
  return OPERATOR_MODE[ctx.operatorMode];
}

/** The fault an event raises (detail) or clears (undefined), by key; undefined when it touches none. */
export function faultChange(e: GateEvent): { key: string; detail: string | undefined } | undefined {
  switch (e.type) {
    case 'SOURCE_FAULT':
      return { key: `source:${e.source}`, detail: e.detail };
    case 'SOURCE_OK':
      return { key: `source:${e.source}`, detail: undefined };
    case 'LINK':
      return { key: 'barrier-link', detail: e.up ? undefined : (e.detail ?? 'barrier link down') };
    case 'FAULT':
      return { key: 'barrier-fault', detail: `barrier fault code ${e.code}` };
    case 'STATUS':
      return { key: 'barrier-fault', detail: e.faultCode === 0 ? undefined : `barrier fault code ${e.faultCode}` };
    case 'LIST_STATE':
      return { key: 'list-too-old', detail: e.stale && e.action === 'out-of-service' ? 'list older than policy allows' : undefined };
    default:
      return undefined;
  }
}

/** Whether some fault remains once `e` is applied (guards run before the transition's actions). */
export function faultedAfter(ctx: Ctx, e: GateEvent): boolean {
  const change = faultChange(e);
  if (change?.detail !== undefined) return true;
  for (const k in ctx.faults) if (k !== change?.key) return true;
  return false;
}

export function withFault(faults: Record<string, string>, key: string, detail: string | undefined): Record<string, string> {
  const has = Object.hasOwn(faults, key);
  if (detail === undefined) {
    if (!has) return faults;
    const { [key]: _gone, ...rest } = faults;
    return rest;
  }
  if (has && faults[key] === detail) return faults;
  return { ...faults, [key]: detail };
}

/** The alarm an event raises, with its details; undefined for events that raise none. */
export function alarmOf(e: GateEvent): Alarm | undefined {
  switch (e.type) {
    case 'SOURCE_FAULT':
      return { alarm: 'reader-fault', source: e.source, detail: e.detail };
    case 'FAULT':
      return { alarm: 'barrier-fault', code: e.code };
    case 'COMMAND_FAILED':
      return { alarm: 'barrier-command-failed', command: e.command, port: e.port, detail: e.detail };
    case 'INTRUSION':
      return { alarm: 'intrusion', direction: e.direction };
    case 'PASSED':
      return { alarm: 'unexpected-passage', direction: e.direction };
    case 'POWER':
      return { alarm: 'power', state: e.state };
    case 'TAILGATE':
      return { alarm: 'tailgating' };
    case 'OBSTRUCTION':
      return { alarm: 'obstruction' };
    case 'FIRE_ALARM':
      return { alarm: e.active ? 'fire-alarm' : 'fire-alarm-cleared' };
    case 'EMERGENCY_BUTTON':
      return e.active ? { alarm: 'emergency-button' } : undefined;
    case 'RESET_EMERGENCY':
      return { alarm: 'emergency-reset' };
    default:
      return undefined;
  }
}

/** Why a lane changes mode, for the journal's `mode` record: its faults, or the operator's choice. */
export function causeOf(ctx: Ctx): string {
  const f = Object.entries(ctx.faults);
  if (f.length > 0) return f.map(([k, v]) => `${k}: ${v}`).join('; ');
  return `operator mode ${ctx.operatorMode}`;
}

/** A presentation (or a card fault) as a request to the decider, numbered after the lane's last one. */
export function requestFrom(ctx: Ctx, event: GateEvent, preset?: ReasonCode, freePassage?: boolean): DecideRequest | undefined {
  const id = ctx.decisionSeq + 1;
  if (event.type === 'PRESENTED') {
    const { presented, side, source, atMs } = event;
    return { type: 'DECIDE', id, presented, side, source, atMs, preset, freePassage };
  }
  if (event.type === 'CARD_FAULT') {
    return { type: 'DECIDE', id, side: event.side, source: event.source, atMs: event.atMs, preset: preset ?? event.reason };
  }
  return undefined;
}
