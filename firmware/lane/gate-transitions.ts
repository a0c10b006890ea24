// Transitions several states of the gate machine share (faults that take a serving lane out, the way back
// into service, where a lane goes once a passage settles), as literal objects naming guards and actions:
// gate-machine.ts and normally-open.ts spread them into their states.

import { and } from 'xstate';
import type { LaneMode, OperatorMode } from './gate-facts.js';

// `as const` keeps the guard and action names literal for the types.
export const OUT_OF_SERVICE = '#gate.outOfService';
export const lockBarrier = { type: 'toBarrier', params: { type: 'SET_MODE', mode: 'locked' } } as const;
export const holdEmergency = { type: 'toBarrier', params: { type: 'SET_MODE', mode: 'emergency' } } as const;
export const notPassed = { type: 'passage', params: { outcome: 'not-passed' } } as const;
export const belongsIn = (mode: LaneMode) => ({ type: 'belongsIn', params: { mode } }) as const;
export const recovers = (mode: LaneMode) => ({ type: 'recovers', params: { mode } }) as const;
export const operatorPicks = (mode: OperatorMode) => ({ type: 'operatorPicks', params: { mode } }) as const;
export const openFailedIn = (mode: LaneMode) => and(['openFailed', belongsIn(mode)]);
export const resetTo = (mode: LaneMode) => and(['inputsCleared', belongsIn(mode)]);
export const openFailedActions = ['alarmOpenFailed', notPassed] as const;

/** A fault reported while a lane serves (and is not in the middle of a passage) takes it out of service at once. */
export const faultTakesLaneOut = {
  LINK: { guard: 'linkLost', target: OUT_OF_SERVICE, actions: 'trackFacts' },
  SOURCE_FAULT: { target: OUT_OF_SERVICE, actions: ['trackFacts', 'alarm'] },
  FAULT: { target: OUT_OF_SERVICE, actions: ['trackFacts', 'alarm'] },
  STATUS: { guard: 'barrierFaultReported', target: OUT_OF_SERVICE, actions: 'trackFacts' },
  LIST_STATE: { guard: 'listTooOld', target: OUT_OF_SERVICE, actions: 'trackFacts' },
} as const;

/** An event that clears the last fault takes the lane back to the mode the operator chose. */
export const backInService = [
  { guard: recovers('normal'), target: '#gate.normal', actions: 'trackFacts' },
  { guard: recovers('freePassage'), target: '#gate.freePassage', actions: 'trackFacts' },
  { guard: recovers('maintenance'), target: '#gate.maintenance', actions: 'trackFacts' },
  { guard: recovers('closed'), target: '#gate.closed', actions: 'trackFacts' },
] as const;

/** The same, when the link comes back: the board is told its (locked) mode again on the way. */
export const linkBackInService = [
  { guard: recovers('normal'), target: '#gate.normal', actions: ['trackFacts', lockBarrier] },
  { guard: recovers('freePassage'), target: '#gate.freePassage', actions: ['trackFacts', lockBarrier] },
  { guard: recovers('maintenance'), target: '#gate.maintenance', actions: ['trackFacts', lockBarrier] },
  { guard: recovers('closed'), target: '#gate.closed', actions: ['trackFacts', lockBarrier] },
] as const;

/** Ready or showing a refusal: a fault or operator choice that arrived during the passage applies now. */
export const afterPassage = [
  { guard: belongsIn('outOfService'), target: OUT_OF_SERVICE },
  { guard: belongsIn('closed'), target: '#gate.closed' },
  { guard: belongsIn('maintenance'), target: '#gate.maintenance' },
  { guard: belongsIn('freePassage'), target: '#gate.freePassage' },
] as const;


/** Normally open: the lane goes where the operator chose once no body walks in it (faults act at once). */
export const whenLaneEmpty = [
  { guard: and(['laneEmpty', belongsIn('closed')]), target: '#gate.closed' },
  { guard: and(['laneEmpty', belongsIn('maintenance')]), target: '#gate.maintenance' },
  { guard: and(['laneEmpty', belongsIn('freePassage')]), target: '#gate.freePassage' },
] as const;
