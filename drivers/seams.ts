// The contracts between hardware and the gate machine. Every driver (real or simulated)
// implements one of these; the gate machine reaches them only through XState callback actors.

import type { Credential, Direction } from '../protocol/credential.js';
import type { BarrierCommand, BarrierEvent } from '../protocol/barrier.js';
import type { ReasonCode } from '../protocol/reasons.js';

/**
 * Time for drivers and the gate machine. Matches XState's `clock` option, plus `now()`.
 * The system clock in production; a virtual clock in the simulator and tests.
 */
export interface Clock {
  now(): number;
  setTimeout(fn: (...args: any[]) => void, ms: number): any;
  clearTimeout(id: any): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id),
};

/** What a source hands over: a credential it could read itself, or the text of a QR code to be verified by the gate. */
export type Presented = { kind: 'credential'; credential: Credential } | { kind: 'qr-text'; text: string };

/** Rider-side faults a source can report instead of a credential (card pulled away, unknown card, ...). */
export type CardFaultReason = Extract<
  ReasonCode,
  'tap-again' | 'card-not-supported' | 'card-expired' | 'card-not-yet-valid' | 'card-unreadable' | 'qr-malformed'
>;

export type SourceEvent =
  /** One tap or one QR code in view. A source reports a given tap / code once. */
  | { type: 'PRESENTED'; presented: Presented; side: Direction; source: string; atMs: number }
  /** A card or code fault the rider can act on ("tap again"): the lane stays in service. */
  | { type: 'CARD_FAULT'; reason: CardFaultReason; side: Direction; source: string; detail: string; atMs: number }
  /** The reader or camera itself failed (unplugged, frozen, pcscd gone): the lane goes out of service. */
  | { type: 'SOURCE_FAULT'; source: string; detail: string }
  /** The reader or camera is back. */
  | { type: 'SOURCE_OK'; source: string };

/** A card reader, QR camera or QR scan engine. */
export interface CredentialSource {
  /** Stable name used in events, logs and metrics, e.g. "reader:ACS ACR122U 00 00" or "camera:/dev/video0". */
  readonly name: string;
  /**
   * Start delivering events. Resolves once the source is running (not once a reader is present: a
   * missing reader is reported as SOURCE_FAULT and retried, never thrown). Rejects only for
   * configuration errors that retrying cannot fix (for example a native library that is not installed),
   * with a message saying what to install.
   */
  start(emit: (e: SourceEvent) => void): Promise<void>;
  /** Stop delivering events and release the device. Idempotent. No events are emitted after it resolves. */
  stop(): Promise<void>;
}

/** The serial (or simulated) link to the barrier controller board. */
export interface BarrierLink {
  /**
   * Open the link and start delivering events. Resolves once the driver runs; the link reports
   * `{type:'LINK', up:true}` once the board answered a status request, and `up:false` on silence,
   * unplug or open failure (it keeps retrying by itself).
   */
  start(emit: (e: BarrierEvent) => void): Promise<void>;
  /**
   * Queue a command. Never throws: a command the board never acknowledges after the bounded retries
   * is reported as a COMMAND_FAILED event. Commands sent while the link is down fail the same way.
   */
  send(cmd: BarrierCommand): void;
  /** Close the port. Idempotent. */
  stop(): Promise<void>;
}
