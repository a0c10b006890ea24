// Typed commands to and events from the barrier controller board. The byte-level frames that
// carry them over a serial line are in protocol/barrier-frame.ts; this file is the vocabulary the
// gate machine speaks, whatever the wire.

import type { Direction } from './credential.js';

export type BarrierMode = 'normal' | 'free' | 'emergency' | 'locked';
export type Indicator = 'off' | 'green-arrow' | 'red-cross';
export type Buzzer = 'off' | 'short' | 'long' | 'alarm';
export type FlapPosition = 'closed' | 'opening' | 'open' | 'closing' | 'unknown';

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
  | { type: 'STATUS_REQUEST' };

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
