// The bodies a normally-open lane watches while they walk (README "The passage cycle (normally open)"):
// which tap belongs to which body, when the flaps must start closing in front of a body that has no
// authorisation, and which bodies keep the flaps shut. Pure functions over an immutable list; the gate
// machine holds the list in its context and acts on what these return.

import type { BarrierEvent } from '../../protocol/barrier.js';
import type { Direction, LaneDirection } from '../../protocol/credential.js';
import type { Timeouts } from '../config/config.js';

export type StopWhy = 'no-tap' | 'second-body' | 'too-fast' | 'wrong-way' | 'at-flaps';

export interface Walker {
  /** The board's body number; 0 while only a tap announced it (tapped before its body broke the beam). */
  body: number;
  direction: Direction;
  /** Lane clock ms the body (or its tap, for an announced one) was seen. */
  seenAt: number;
  /** Lane clock ms by which the flaps must start closing in front of it, unless it is authorised. */
  closeBy: number;
  /** The decision under way for its tap (the request id). */
  tap?: number;
  fate: 'walking' | 'authorised' | 'refused' | 'stopped';
  /** It walked in behind a body walking the same way that was authorised, or had a tap under way. */
  behind?: boolean;
  /** The lane closed the flaps in front of it (refused, or stopped). */
  closed: boolean;
}

/** A lane holds two or three bodies at most; the list is bounded anyway (a sensor gone mad cannot grow it). */
export const MAX_WALKERS = 16;

type BodyEntered = Extract<BarrierEvent, { type: 'BODY_ENTERED' }>;

/** When the flaps must start closing: its arrival, less the fast close and the margin. */
export function closeByOf(now: number, etaMs: number, t: Pick<Timeouts, 'fastCloseMs' | 'closeMarginMs'>): number {
  return now + etaMs - t.fastCloseMs - t.closeMarginMs;
}

function bounded(ws: Walker[]): Walker[] {
  return ws.length > MAX_WALKERS ? ws.slice(ws.length - MAX_WALKERS) : ws;
}

/**
 * A body broke the beam. A tap seen just before it (an announced walker, within tapAheadMs) is its tap;
 * announced walkers older than that are dropped (returned in `expired`).
 */
export function enterBody(ws: Walker[], e: BodyEntered, now: number, t: Pick<Timeouts, 'fastCloseMs' | 'closeMarginMs' | 'tapAheadMs'>): { walkers: Walker[]; walker: Walker; expired: Walker[] } {
  const expired = ws.filter((w) => w.body === 0 && now - w.seenAt > t.tapAheadMs);
  let rest = expired.length ? ws.filter((w) => !expired.includes(w)) : ws;
  rest = rest.filter((w) => w.body !== e.body);
  const closeBy = closeByOf(now, e.etaMs, t);
  const announced = rest.find((w) => w.body === 0 && w.direction === e.direction);
  const behind = rest.some((w) => w.body !== 0 && w.direction === e.direction && (w.fate === 'authorised' || w.tap !== undefined));
  const walker: Walker = announced
    ? { ...announced, body: e.body, seenAt: now, closeBy, behind }
    : { body: e.body, direction: e.direction, seenAt: now, closeBy, fate: 'walking', closed: false, behind };
  const walkers = announced ? rest.map((w) => (w === announced ? walker : w)) : [...rest, walker];
  return { walkers: bounded(walkers), walker, expired };
}

/**
 * A tap on the `direction` reader: it belongs to the body at the reader, the newest one walking that way
 * that is not authorised and has no tap under way (a body stopped or refused may tap again). None: the tap
 * is kept for the next body (an announced walker).
 */
export function tapBy(ws: Walker[], direction: Direction, id: number, now: number): Walker[] {
  for (let i = ws.length - 1; i >= 0; i--) {
    const w = ws[i];
    if (w.body !== 0 && w.direction === direction && w.fate !== 'authorised' && w.tap === undefined) {
      return ws.map((x) => (x === w ? { ...w, tap: id } : x));
    }
  }
  return bounded([...ws, { body: 0, direction, seenAt: now, closeBy: Infinity, tap: id, fate: 'walking', closed: false }]);
}

/** The walker whose tap is decision `id`. */
export function tappedBy(ws: Walker[], id: number): Walker | undefined {
  return ws.find((w) => w.tap === id);
}

/** Decision `id` came: its walker is authorised, or refused. */
export function decided(ws: Walker[], id: number, grant: boolean): { walkers: Walker[]; walker?: Walker } {
  const w = tappedBy(ws, id);
  if (!w) return { walkers: ws };
  const walker: Walker = grant ? { ...w, tap: undefined, fate: 'authorised' } : { ...w, tap: undefined, fate: 'refused', closed: w.closed || w.body !== 0 };
  return { walkers: ws.map((x) => (x === w ? walker : x)), walker };
}

/** The flaps closed in front of the body. */
export function stop(ws: Walker[], body: number): Walker[] {
  return ws.map((w) => (w.body === body ? { ...w, fate: w.fate === 'refused' ? 'refused' : 'stopped', closed: true } : w));
}

export function leave(ws: Walker[], body: number): { walkers: Walker[]; walker?: Walker } {
  const walker = ws.find((w) => w.body === body);
  return { walkers: walker ? ws.filter((w) => w !== walker) : ws, walker };
}

/** May not pass and the flaps are shut for it: it keeps them shut. */
export function blockers(ws: Walker[]): Walker[] {
  return ws.filter((w) => w.body !== 0 && w.fate !== 'authorised' && w.closed);
}

/** A seen body, not authorised, the flaps not yet closed for it. */
function unguarded(w: Walker | undefined): boolean {
  return w !== undefined && w.body !== 0 && w.fate !== 'authorised' && !w.closed;
}

/** Body `body` has no authorisation and its close-by time has come. */
export function due(ws: Walker[], body: number, now: number): boolean {
  const w = ws.find((x) => x.body === body);
  return unguarded(w) && now >= w!.closeBy;
}

/** A body reached the flap zone with no authorisation (unknown to the lane, or its close-by time missed). */
export function unauthorisedAtFlaps(ws: Walker[], body: number): boolean {
  const w = ws.find((x) => x.body === body);
  return w === undefined || unguarded(w);
}

/** Why the flaps close in front of this body: its decision is still under way, it came in on a rider's heels, or no tap was seen. */
export function stopWhy(ws: Walker[], body: number): StopWhy {
  const w = ws.find((x) => x.body === body);
  if (!w) return 'at-flaps';
  if (w.tap !== undefined) return 'too-fast';
  return w.behind ? 'second-body' : 'no-tap';
}

/** A body walking against a one-way lane. */
export function wrongWay(lane: LaneDirection, direction: Direction): boolean {
  return lane !== 'bidirectional' && lane !== direction;
}

/** No seen body in the lane (a tap whose body never came does not hold the lane). */
export function laneEmpty(ws: Walker[]): boolean {
  return !ws.some((w) => w.body !== 0);
}
