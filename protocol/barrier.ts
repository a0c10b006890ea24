// Typed commands to and events from the barrier controller board. The byte-level frames that
// carry them over a serial line are in protocol/barrier-frame.ts; this file is the vocabulary the
// gate machine speaks, whatever the wire.

import type { Direction } from './credential.js';

export type BarrierMode = 'normal' | 'free' | 'emergency' | 'locked';
export type Indicator = 'off' | 'green-arrow' | 'red-cross';
export type Buzzer = 'off' | 'short' | 'long' | 'alarm';
export type FlapPosition = 'closed' | 'opening' | 'open' | 'closing' | 'unknown';
/**
 * How the flaps wait between riders. normally-closed: closed until a decision opens them for one passage.
 * normally-open: open, bodies reported as they walk in, closed (fast) only in front of a body that may not pass.
 */
export type FlapRegime = 'normally-closed' | 'normally-open';
/** How a body left a normally-open lane: through the flaps authorised, through them without authorisation, or back out the way it came. */
export type BodyExit = 'passed' | 'intruded' | 'turned-back';

/** Commands the runtime sends to the barrier board. */
export type BarrierCommand =
  /** Open for `passages` authorised passengers in `direction`. passages = 0 reopens for safety (obstruction) without authorising anyone. */
  | { type: 'OPEN'; direction: Direction; passages: number }
  | { type: 'CLOSE' }
  | { type: 'SET_MODE'; mode: BarrierMode }
  | { type: 'INDICATE'; indicator: Indicator; buzzer: Buzzer }
  /** Show a message on the rider display; textId is the reason id from protocol/reasons.ts. */
  | { type: 'DISPLAY'; textId: number }
  /**
   * Show a message that carries a calendar day (frame 0x0D): the text `textId` names with `day` put in, e.g.
   * advise-register's "please register by 2022-05-25". `day` is YYYY-MM-DD, a Beijing calendar day.
   */
  | { type: 'DISPLAY_DATE'; textId: number; day: string }
  | { type: 'STATUS_REQUEST' }
  /** The flap regime (board default at power-up: normally-closed). Normally open applies in mode `normal`. */
  | { type: 'SET_FLAP_REGIME'; regime: FlapRegime }
  /** Normally open: close now, on the fast profile, in front of a body that may not pass (never on a body in the flap zone). */
  | { type: 'FAST_CLOSE' }
  /** Normally open: body `body`, walking in `direction`, may cross the flaps; they reopen for it if they had closed. */
  | { type: 'AUTHORISE'; direction: Direction; body: number };

/** Events the barrier board (or the link to it) reports. */
export type BarrierEvent =
  | { type: 'PASSED'; direction: Direction }
  | { type: 'TAILGATE' }
  | { type: 'INTRUSION'; direction: Direction }
  | { type: 'OBSTRUCTION' }
  | { type: 'FAULT'; code: number }
  | { type: 'FIRE_ALARM'; active: boolean }
  | { type: 'EMERGENCY_BUTTON'; active: boolean }
  | { type: 'POWER'; state: 'mains' | 'battery' | 'low-battery' }
  | { type: 'FLAPS'; position: FlapPosition }
  /**
   * Normally open: a body walked into the lane (body 1..255, the board's count, wrapping) and reaches the
   * flap zone in `etaMs` at the speed the board measured (65535: standing, or slower than that).
   */
  | { type: 'BODY_ENTERED'; direction: Direction; body: number; etaMs: number }
  /** Normally open: the body reached the flap zone. */
  | { type: 'BODY_AT_FLAPS'; direction: Direction; body: number }
  /** Normally open: the body left the lane (through the flaps, authorised or not, or back out the way it came). */
  | { type: 'BODY_LEFT'; direction: Direction; body: number; way: BodyExit }
  /** Answer to STATUS_REQUEST, and sent by the board on reconnect. faultCode 0 = no fault. */
  | { type: 'STATUS'; flaps: FlapPosition; mode: BarrierMode; faultCode: number; fireAlarm: boolean }
  /** The link itself: up after (re)connect and status resync, down on silence, unplug or open failure. */
  | { type: 'LINK'; up: boolean; detail?: string }
  /**
   * A command that was never acknowledged after all retries (or refused, or sent while the link was
   * down). `port`: the device the link drives (e.g. /dev/ttyUSB0), when it has one; in-process links leave it out.
   * `executed: false`: the board did not execute it, known for sure (refused, never sent, or the board
   * said so when asked after every ack was lost); absent: unknown, and `detail` says why. A command the
   * board did execute is never reported failed, even when every ack of it was lost.
   */
  | { type: 'COMMAND_FAILED'; command: BarrierCommand['type']; port?: string; executed?: false; detail: string };

/**
 * The other end of a typed (in-process) barrier wire: the simulator's virtual barrier board
 * (simulator/virtual-barrier.ts `VirtualBarrier`) implements it, drivers/simulated.ts
 * (`SimulatedBarrierLink`) adapts it to a BarrierLink. No bytes involved.
 */
export interface TypedBarrierPeer {
  command(cmd: BarrierCommand): void;
  listen(fn: (e: BarrierEvent) => void): void;
}
