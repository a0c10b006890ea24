// The contactless card reader over PC/SC (pcscd + nfc-pcsc), behind the CredentialSource seam.
//
// - One source serves every reader whose name matches the configured filter (a lane side may have
//   several antennas). Readers come and go while running; with none left the source reports
//   SOURCE_FAULT and recovers by itself (SOURCE_OK) when one is back, including after pcscd restarts.
// - nfc-pcsc's automatic processing is off (its SELECT needs a fixed AID and fails on phones): every
//   tap runs our own exchange (protocol/card-session.ts): UID, then SELECT + reads, or page reads.
// - One event per tap at most: a tap's result is dropped if another card arrived meanwhile or the source
//   stopped. A card pulled away mid-exchange is "tap again"; a reader or pcscd failure is a reader fault,
//   never a card fault.
// - nfc-pcsc and its native addon are optional dependencies, loaded on start().

import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { endianness } from 'node:os';
import { z } from 'zod';
import { PCSCD_VERSION_ANSWER_BYTES, pcscdVersionQuestion } from '../protocol/pcsc-daemon.js';
import { classifyPcscCode, pcscCodeOf, toHex } from '../protocol/apdu.js';
import { readTap, type TapOutcome } from '../protocol/card-session.js';
import type { Direction } from '../protocol/credential.js';
import type { CardFaultReason, CardTransaction, CardTransactionResult, Clock, CredentialSource, SourceEvent } from './seams.js';
import { systemClock } from './seams.js';
import { GateError, GateErrorCode, isGateError } from '../protocol/errors.js';

export const pcscReaderConfigSchema = z
  .object({
    type: z.literal('pcsc').default('pcsc'),
    side: z.enum(['entry', 'exit']).default('entry'),
    /** Use only readers whose name contains this (case-insensitive), e.g. "ACR122U" or "Gate Reader A 00 00". Default: all. */
    reader: z.string().min(1).optional(),
    /** Names to ignore (case-insensitive substrings), e.g. the SAM slot of a dual reader. */
    ignore: z.array(z.string().min(1)).default([]),
    /** How often to retry pcscd while it is unreachable. */
    retryMs: z.number().int().min(20).max(60_000).default(1000),
    /** How long to wait for a matching reader at start (or after pcscd came back) before reporting a fault. */
    readerWaitMs: z.number().int().min(0).max(60_000).default(1500),
    /** A tap whose exchange has not finished after this is refused with "tap again". */
    exchangeTimeoutMs: z.number().int().min(50).max(10_000).default(1500),
  })
  .strict();

export type PcscReaderConfig = z.infer<typeof pcscReaderConfigSchema>;

/** Everything a technician's tool or the metrics exporter wants to know about one tap. */
export interface TapReport {
  reader: string;
  atMs: number;
  /** Card present (pcscd's status change seen by the process) to credential or refusal, in ms. */
  elapsedMs: number;
  /** performance.now() when the card was seen present: for end-to-end timings (present → OPEN). */
  presentAt: number;
  outcome: TapOutcome | { ok: false; reason: CardFaultReason; error: 'pcsc'; detail: string; apdus: number };
  /** What the card transaction decided, when one ran (fare gates). */
  transaction?: CardTransactionResult;
  atr: string;
}

export type PcscCounters = {
  taps: number;
  credentials: number;
  cardFaults: Record<string, number>;
  readerFaults: number;
  /** PC/SC error codes seen (hex), card-side and reader-side. */
  pcscErrors: Record<string, number>;
  /** Results dropped because a newer tap or stop() overtook them. */
  dropped: number;
  readersPresent: number;
};

export const INSTALL_HINT =
  'the PC/SC card reader needs pcscd and libpcsclite with the nfc-pcsc native addon built: ' +
  'apt-get install libpcsclite-dev pcscd, then npm rebuild @pokusew/pcsclite';

/** The default pcscd socket, or PCSCLITE_CSOCK_NAME as libpcsclite reads it. */
export function pcscdSocket(): string {
  return process.env.PCSCLITE_CSOCK_NAME || '/run/pcscd/pcscd.comm';
}

type NfcModule = { NFC: new (logger?: unknown) => NfcInstance };
interface NfcInstance {
  on(ev: 'reader', fn: (r: NfcReader) => void): void;
  on(ev: 'error', fn: (e: Error) => void): void;
  close(): void;
}
interface NfcReader {
  name: string;
  autoProcessing: boolean;
  reader: { name: string; state?: number; SCARD_STATE_PRESENT?: number; on(ev: 'status', fn: (s: { state: number }) => void): void };
  on(ev: 'card', fn: (card: { atr?: Buffer }) => void): void;
  on(ev: 'card.off', fn: () => void): void;
  on(ev: 'error' | 'end', fn: (e?: Error) => void): void;
  removeAllListeners(): void;
  transmit(data: Buffer, maxLen: number): Promise<Buffer>;
  close(): void;
}

/** Load nfc-pcsc (and through it the native @pokusew/pcsclite). Throws with the install hint. */
export function loadNfcPcsc(): NfcModule {
  const require = createRequire(import.meta.url);
  try {
    return require('nfc-pcsc') as NfcModule;
  } catch (e) {
    throw new Error(`${INSTALL_HINT} (${firstLine((e as Error).message)})`);
  }
}

interface ReaderState {
  nfcReader: NfcReader;
  /** Bumped on every card arrival: a tap's result is emitted only while no newer tap owns the reader. */
  tap: number;
  /** The tap number whose card has left the field (its exchange can no longer succeed). */
  left: number;
  /** performance.now() of the last absent → present change, before nfc-pcsc connects to the card. */
  presentAt: number;
}

export class PcscReader implements CredentialSource {
  readonly name: string;
  readonly side: Direction;
  readonly counters: PcscCounters = { taps: 0, credentials: 0, cardFaults: {}, readerFaults: 0, pcscErrors: {}, dropped: 0, readersPresent: 0 };
  private emit?: (e: SourceEvent) => void;
  private nfc?: NfcInstance;
  private readonly readers = new Map<string, ReaderState>();
  private health: 'unknown' | 'ok' | 'fault' = 'unknown';
  private retryTimer: unknown;
  private waitTimer: unknown;
  private running = false;
  private readonly tapListeners = new Set<(t: TapReport) => void>();
  private readonly readerListeners = new Set<(name: string, present: boolean) => void>();
  private lastFaultDetail = '';

  constructor(
    readonly config: PcscReaderConfig,
    private readonly clock: Clock = systemClock,
    private readonly load: () => NfcModule = loadNfcPcsc,
    name?: string,
  ) {
    this.side = config.side;
    this.name = name ?? `reader:pcsc${config.reader ? `:${config.reader}` : ''}`;
  }

  private transaction?: CardTransaction;

  /**
   * Run `t` on every T-Union card (or phone) read successfully, with the same exchange, before the tap is
   * reported (fare gates debit the e-purse so); its result rides on the PRESENTED event. Absent: reads only.
   */
  setTransaction(t: CardTransaction | undefined): void {
    this.transaction = t;
  }

  /** Called with a report for every tap (the `gate reader` tool, metrics). */
  onTap(fn: (t: TapReport) => void): () => void {
    this.tapListeners.add(fn);
    return () => this.tapListeners.delete(fn);
  }

  /** Called when a matching reader appears or disappears. */
  onReader(fn: (name: string, present: boolean) => void): () => void {
    this.readerListeners.add(fn);
    return () => this.readerListeners.delete(fn);
  }

  get readerNames(): string[] {
    return [...this.readers.keys()];
  }

  async start(emit: (e: SourceEvent) => void): Promise<void> {
    if (this.running) {
      this.emit = emit;
      return;
    }
    const mod = this.load(); // throws the install hint: a configuration error, not retried
    this.emit = emit;
    this.running = true;
    this.connect(mod);
  }

  async stop(): Promise<void> {
    this.running = false;
    this.emit = undefined;
    this.clock.clearTimeout(this.retryTimer);
    this.clock.clearTimeout(this.waitTimer);
    this.teardown();
  }

  private connect(mod: NfcModule): void {
    if (!this.running) return;
    // new NFC() spins inside libpcsclite while pcscd is absent: probe the socket first so we never hang.
    probeSocket(pcscdSocket(), 500).then((up) => {
      if (!this.running) return;
      if (!up) {
        this.fault(`pcscd is not running (no answer on ${pcscdSocket()}); start it: systemctl start pcscd`);
        this.retryTimer = this.clock.setTimeout(() => this.connect(mod), this.config.retryMs);
        return;
      }
      let nfc: NfcInstance;
      try {
        nfc = new mod.NFC();
      } catch (e) {
        this.fault(`cannot open a PC/SC context: ${firstLine((e as Error).message)}`);
        this.retryTimer = this.clock.setTimeout(() => this.connect(mod), this.config.retryMs);
        return;
      }
      this.nfc = nfc;
      nfc.on('reader', (r) => this.attach(r));
      nfc.on('error', (e) => {
        // The reader-list thread died: pcscd stopped or restarted. Start over with a fresh context.
        if (this.nfc !== nfc) return;
        this.countPcsc(e);
        this.teardown();
        this.fault(`PC/SC service lost: ${firstLine(e.message)}`);
        this.retryTimer = this.clock.setTimeout(() => this.connect(mod), this.config.retryMs);
      });
      this.armReaderWait();
    });
  }

  private armReaderWait(): void {
    this.clock.clearTimeout(this.waitTimer);
    this.waitTimer = this.clock.setTimeout(() => {
      if (this.running && this.readers.size === 0) {
        this.fault(
          `no PC/SC reader${this.config.reader ? ` matching "${this.config.reader}"` : ''} found` +
            ' (an ACS ACR122U often vanishes after a reboot until it is unplugged and plugged back in)',
        );
      }
    }, this.config.readerWaitMs);
  }

  private matches(name: string): boolean {
    const n = name.toLowerCase();
    if (this.config.ignore.some((i) => n.includes(i.toLowerCase()))) return false;
    return !this.config.reader || n.includes(this.config.reader.toLowerCase());
  }

  private attach(r: NfcReader): void {
    // Swallow every error event: an unhandled 'error' on an EventEmitter would crash the runtime.
    r.on('error', (e) => {
      if (e) this.countPcsc(e);
    });
    if (!this.matches(r.name)) return;
    r.autoProcessing = false;
    const st: ReaderState = { nfcReader: r, tap: 0, left: 0, presentAt: 0 };
    // pcsclite emits 'status' before nfc-pcsc connects: the honest start of "card present → credential".
    const PRESENT = r.reader.SCARD_STATE_PRESENT ?? 0x20;
    let prev = 0;
    r.reader.on('status', (s) => {
      if (s.state & PRESENT && !(prev & PRESENT)) st.presentAt = performance.now();
      prev = s.state;
    });
    this.readers.set(r.name, st);
    this.counters.readersPresent = this.readers.size;
    for (const fn of this.readerListeners) fn(r.name, true);
    r.on('card', (card) => void this.onCard(st, card.atr));
    r.on('card.off', () => {
      st.left = st.tap;
    });
    r.on('end', () => {
      if (this.readers.get(r.name) !== st) return;
      st.left = st.tap;
      this.readers.delete(r.name);
      this.counters.readersPresent = this.readers.size;
      for (const fn of this.readerListeners) fn(r.name, false);
      if (this.readers.size === 0) this.fault(`reader "${r.name}" removed`);
    });
    this.ok();
  }

  private async onCard(st: ReaderState, atr: Buffer | undefined): Promise<void> {
    const tap = ++st.tap;
    const t0 = this.clock.now();
    const presentAt = st.presentAt || performance.now();
    this.counters.taps++;
    const reader = st.nfcReader;
    const exchange = async (cmd: Uint8Array): Promise<Uint8Array> => {
      if (st.left >= tap || st.tap !== tap) throw new GateError('card left the field', GateErrorCode.CardGone);
      return reader.transmit(Buffer.from(cmd.buffer, cmd.byteOffset, cmd.length), 258);
    };
    let outcome: TapReport['outcome'];
    let transaction: CardTransactionResult | undefined;
    let timer: unknown;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = this.clock.setTimeout(() => reject(new GateError(`exchange took over ${this.config.exchangeTimeoutMs} ms`, GateErrorCode.Timeout)), this.config.exchangeTimeoutMs);
      });
      outcome = await Promise.race([readTap(exchange, atr ? Uint8Array.from(atr) : new Uint8Array(0), this.clock.now()), timeout]);
      // Not raced with the timeout: a transaction under way finishes (and journals) whatever the clock says;
      // a card that leaves makes its exchanges fail, which the transaction reports itself.
      const t = this.transaction;
      if (t && outcome.ok && outcome.card?.layout === 't-union' && (outcome.credential.kind === 'card' || outcome.credential.kind === 'phone-nfc')) {
        this.clock.clearTimeout(timer);
        transaction = await t(exchange, outcome.credential.cardNumber, t0, outcome.credential);
      }
    } catch (e) {
      // Our own markers, thrown from the exchange callback and the timer through readTap (protocol/).
      if (isGateError(e, GateErrorCode.CardGone)) outcome = { ok: false, reason: 'tap-again', error: 'pcsc', detail: 'card left', apdus: 0 };
      else if (isGateError(e, GateErrorCode.Timeout)) outcome = { ok: false, reason: 'tap-again', error: 'pcsc', detail: e.message, apdus: 0 };
      else {
        const cls = this.countPcsc(e as Error);
        if (cls === 'reader') {
          // The reader or pcscd went away under the card: the source reports that, not the rider.
          this.counters.dropped++;
          return;
        }
        outcome = { ok: false, reason: 'tap-again', error: 'pcsc', detail: firstLine(pcscMessage(e as Error)), apdus: 0 };
      }
    } finally {
      this.clock.clearTimeout(timer);
    }
    // Stale: a newer card owns the reader, or we stopped. A removal after a complete read is fine (the
    // read finished first); a removal during it made the exchange fail above ("tap again").
    if (!this.running || st.tap !== tap) {
      this.counters.dropped++;
      return;
    }
    const elapsedMs = performance.now() - presentAt;
    const atMs = t0;
    if (outcome.ok) {
      this.counters.credentials++;
      this.emit?.({ type: 'PRESENTED', presented: { kind: 'credential', credential: outcome.credential, ...(transaction ? { transaction } : {}) }, side: this.side, source: this.name, atMs });
    } else {
      this.counters.cardFaults[outcome.reason] = (this.counters.cardFaults[outcome.reason] ?? 0) + 1;
      this.emit?.({ type: 'CARD_FAULT', reason: outcome.reason, side: this.side, source: this.name, detail: `${reader.name}: ${outcome.detail}`, atMs });
    }
    const report: TapReport = { reader: reader.name, atMs, elapsedMs, presentAt, outcome, atr: atr ? toHex(atr) : '', ...(transaction ? { transaction } : {}) };
    for (const fn of this.tapListeners) fn(report);
  }

  private countPcsc(e: Error): 'card' | 'reader' | 'other' {
    const msg = pcscMessage(e);
    const code = pcscCodeOf(msg);
    const key = code !== undefined ? `0x${code.toString(16).toUpperCase()}` : 'none';
    this.counters.pcscErrors[key] = (this.counters.pcscErrors[key] ?? 0) + 1;
    if (code === undefined) return /not connected|No card/i.test(msg) ? 'card' : 'other';
    const cls = classifyPcscCode(code);
    // 0x80100013 RPC transport error: pcscd died under us.
    return code === 0x80100013 ? 'reader' : cls;
  }

  private teardown(): void {
    const nfc = this.nfc;
    this.nfc = undefined;
    for (const st of this.readers.values()) {
      st.tap++;
      st.nfcReader.removeAllListeners();
      st.nfcReader.on('error', () => {});
    }
    this.readers.clear();
    this.counters.readersPresent = 0;
    if (nfc) {
      try {
        nfc.close();
      } catch {
        // closing a context whose pcscd is gone may throw; nothing to release then
      }
    }
  }

  private fault(detail: string): void {
    if (this.health === 'fault' && detail === this.lastFaultDetail) return;
    const wasFault = this.health === 'fault';
    this.health = 'fault';
    this.lastFaultDetail = detail;
    if (!wasFault) this.counters.readerFaults++;
    // One SOURCE_FAULT per outage; a changed cause while still down is only logged by the caller's view.
    if (!wasFault) this.emit?.({ type: 'SOURCE_FAULT', source: this.name, detail });
  }

  private ok(): void {
    if (this.health === 'ok') return;
    this.health = 'ok';
    this.lastFaultDetail = '';
    this.clock.clearTimeout(this.waitTimer);
    this.emit?.({ type: 'SOURCE_OK', source: this.name });
  }

  /** Current health as the lane sees it, with the last fault's cause. */
  get status(): { health: 'unknown' | 'ok' | 'fault'; detail: string; readers: string[] } {
    return { health: this.health, detail: this.lastFaultDetail, readers: this.readerNames };
  }
}


function pcscMessage(e: Error): string {
  const prev = (e as Error & { previous?: Error }).previous;
  return prev ? `${e.message} ${prev.message}` : e.message;
}

function firstLine(s: string): string {
  return s.split('\n')[0];
}

/**
 * Resolve true when pcscd answers a protocol version question on its socket. Connecting is not enough: a
 * Unix socket accepts into its backlog while pcscd's main thread still waits for every reader's first
 * card poll, and libpcsclite's SCardEstablishContext (inside new NFC()) then blocks our event loop until
 * pcscd accepts. If that first poll waits on something this event loop serves (a virtual card in the
 * same process, in tests and the simulator), the two wait on each other for ever. Asking here, without
 * blocking, lets the poll finish first (the question: protocol/pcsc-daemon.ts).
 */
export function probeSocket(path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    let got = 0;
    const done = (up: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve(up);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => s.write(pcscdVersionQuestion(endianness() === 'LE')));
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= PCSCD_VERSION_ANSWER_BYTES) done(true);
    });
    s.once('error', () => done(false));
    s.once('close', () => done(false));
  });
}
