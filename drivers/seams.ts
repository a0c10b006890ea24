// The contracts between hardware and the gate machine. Every driver (real or simulated)
// implements one of these; the gate machine reaches them only through XState callback actors.

import type { Credential, Direction } from '../protocol/credential.js';
import type { BarrierCommand, BarrierEvent } from '../protocol/barrier.js';
import type { ReasonCode } from '../protocol/reasons.js';
import type { RideCodePrecheck, RideCodeTrustShare } from '../protocol/ride-code-check.js';

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

/**
 * What a source hands over: a credential it could read itself, or the text of a QR code to be verified by
 * the gate. A camera whose decode worker holds the lane's trust list (`shareRideCodeTrust`) adds that
 * worker's signature check as `precheck`; the gate still owns the decision (protocol/ride-code-check.ts).
 */
export type Presented = { kind: 'credential'; credential: Credential; transaction?: CardTransactionResult } | { kind: 'qr-text'; text: string; precheck?: RideCodePrecheck };

/** Rider-side faults a source can report instead of a credential (card pulled away, unknown card, ...). */
export type CardFaultReason = Extract<
  ReasonCode,
  'tap-again' | 'card-not-supported' | 'card-expired' | 'card-not-yet-valid' | 'card-unreadable' | 'qr-malformed'
>;

/**
 * What a card transaction decided while the card was still in the field (a fare gate's e-purse debit):
 * the lane acts on `grant`; the rest is the transaction's own record (already journaled by it).
 */
export interface CardTransactionResult {
  grant: boolean;
  reason: ReasonCode;
  detail: string;
}

/**
 * Run with the tap's exchange after a T-Union card was read, before the card may leave: resolves with the
 * decision. Card exchanges reject once the card left the field; the transaction must say so in its result.
 * `credential` is what the tap read (a fare gate checks the lists on it before it writes to the card).
 */
export type CardTransaction = (exchange: (command: Uint8Array) => Promise<Uint8Array>, cardNumber: string, atMs: number, credential: Credential) => Promise<CardTransactionResult>;

export type SourceEvent =
  /** One tap or one QR code in view. A source reports a given tap / code once (with the card transaction's result, when one ran). */
  | { type: 'PRESENTED'; presented: Presented; side: Direction; source: string; atMs: number }
  /** A card or code fault the rider can act on ("tap again"): the lane stays in service. */
  | { type: 'CARD_FAULT'; reason: CardFaultReason; side: Direction; source: string; detail: string; atMs: number }
  /** The reader or camera itself failed (unplugged, frozen, pcscd gone): the lane goes out of service. */
  | { type: 'SOURCE_FAULT'; source: string; detail: string }
  /** The reader or camera is back. */
  | { type: 'SOURCE_OK'; source: string };

/**
 * A driver's running totals: counts since the driver was built (they survive stop() and start()); a
 * nested record counts by class (card faults by reason, PC/SC errors by code). A driver may add a
 * current level (readers present), said so on its own type. The names are the driver's own: metrics,
 * `gate doctor` and bench tools read them, nothing decides on them.
 */
export type DriverCounters = { readonly [name: string]: number | { readonly [cls: string]: number } };

/** One camera frame through the decoder: the texts found (empty: none), when the frame was complete, how long zxing took. */
export interface DecodeReport {
  texts: string[];
  /** performance.now() when the frame was complete. */
  frameAtMs: number;
  decodeMs: number;
}

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
  /**
   * Running totals (taps, frames, faults, reopens, ...), readable at any time, before start() and after
   * stop() too; reading never throws and never allocates on the driver's side. Absent on sources that
   * count nothing (the in-process simulated source).
   */
  readonly counters?: DriverCounters;
  /**
   * Listen to every frame this source decodes itself, code found or not (cameras: the decode-time
   * histogram). Listeners run synchronously after each decode, also for frames made stale by a fault;
   * none runs after stop() resolves. Returns a function that removes the listener (idempotent).
   * Absent on sources that decode nothing themselves (card readers, scan engines that send text).
   */
  onDecode?(listener: (r: DecodeReport) => void): () => void;
  /**
   * Check ride codes' signatures off the lane's thread with this trust list (cameras: beside the decode,
   * on the decode worker), each PRESENTED code then carrying the verdict as `precheck`. Called again with
   * every newer list; the latest call wins. Never throws; a source that cannot (no compiled check module
   * beside it) sends codes without a verdict, and the gate checks them itself. Absent on sources that
   * decode nothing themselves.
   */
  shareRideCodeTrust?(trust: RideCodeTrustShare): void;
}

/**
 * Running totals of a barrier link on a framed wire (protocol/barrier-frame.ts): monotonic since the
 * link was built (they survive stop() and start(); a reader treats a decrease as a new link).
 */
export interface BarrierLinkCounters {
  framesIn: number;
  framesOut: number;
  bytesDiscarded: number;
  badCrc: number;
  /** CRC-valid frames with an unknown version, type or payload value */
  badFrames: number;
  retransmits: number;
  /** the byte-length slicer was re-aligned on a frame start after a lost or extra byte */
  realigns: number;
  /** status-request resyncs started (connect, link back) */
  resyncs: number;
  commandFailures: number;
  duplicateEvents: number;
  /** ACK/NACK not matching the command in flight (late answers to an abandoned command) */
  staleAnswers: number;
  /** our own frames heard back (RS-485 2-wire) */
  echoes: number;
  linkDowns: number;
  /** successful opens of the device after the first */
  reopens: number;
  openFailures: number;
}

/** The serial (or simulated) link to the barrier controller board. */
export interface BarrierLink {
  /**
   * Open the link and start delivering events. Resolves once the driver runs; the link reports
   * `{type:'LINK', up:true}` once the board answered a status request, and `up:false` on silence,
   * unplug or open failure (it keeps retrying by itself). Never rejects for a missing or failing
   * device (that is a LINK down event); a rejection is a programming or setup error and the lane
   * reports it as the link down.
   */
  start(emit: (e: BarrierEvent) => void): Promise<void>;
  /**
   * Queue a command. Never throws: a command the board never acknowledges after the bounded retries
   * (or refuses) is reported as a COMMAND_FAILED event naming the command and, for a link on a device,
   * the port; `executed: false` when the board surely did not execute it. A link that can ask the board
   * what it executed (the serial link) reports a command whose acks were all lost but which the board
   * executed as done, not failed. Commands sent while the link is down may wait for it (the serial link
   * holds them, bounded, up to its `linkWaitMs`, except an OPEN that authorises passengers); one a link
   * gives up on fails the same way, after the caller's turn.
   */
  send(cmd: BarrierCommand): void;
  /**
   * Close the port. Idempotent. Commands still queued or in flight are failed (COMMAND_FAILED is not
   * delivered any more: no event is emitted after stop() is called).
   */
  stop(): Promise<void>;
  /**
   * Link totals (frames, CRC errors, retransmits, resyncs, command failures), read at scrape time;
   * reading never throws. Absent on links without a wire (the in-process simulated link).
   */
  readonly counters?: BarrierLinkCounters;
}
