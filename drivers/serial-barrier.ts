// Why this file is long: it is one link state machine (open, session and status resync, acked commands,
// retransmission, heartbeat, silence, reopen) whose parts share the same sequence, queue and timer state.
// What the board says about sessions and lost acks is decided in barrier-session.ts; the settings and
// counters are in serial-barrier-config.ts.
// The barrier link over a real serial line (RS-232 or RS-485): serialport + @serialport/parser-byte-length,
// frames from protocol/barrier-frame.ts. Acked commands with bounded retransmission (same seq, so the
// board executes once); when every ack of a command is lost, the board is asked (SESSION) whether it
// executed it, and the command is settled by the answer (barrier-session.ts). A session id, random per link instance, tells
// the board that a restarted runtime is a new talker (its seq 1 is never a repeat of the last process's).
// Commands sent before the link is up wait for it (bounded queue, deadline `linkWaitMs`). Heartbeats both
// ways, silence detection, status resync before serving anyone, and reopening the device when a USB
// adapter is unplugged and plugged back in.

import { randomInt } from 'node:crypto';
import { ByteLengthParser } from '@serialport/parser-byte-length';
import { SerialPort } from 'serialport';
import type { BarrierCommand, BarrierEvent } from '../protocol/barrier.js';
import { GateError, GateErrorCode } from '../protocol/errors.js';
import {
  type BoardEvent,
  type DecodeResult,
  encodeFrame,
  FRAME_LENGTH,
  FrameReader,
  type LinkFrame,
  sessionHex,
  typeCode,
} from '../protocol/barrier-frame.js';
import { answers, authorises, BoardSessions, type CommandOutcome, type Outcome, type Pending } from './barrier-session.js';
import { serialBarrierConfigSchema, type SerialBarrierConfig, type SerialBarrierConfigInput, type SerialBarrierCounters } from './serial-barrier-config.js';
import { type BarrierLink, type Clock, systemClock } from './seams.js';

export { serialBarrierConfigSchema, type SerialBarrierConfig, type SerialBarrierConfigInput, type SerialBarrierCounters } from './serial-barrier-config.js';
export type { CommandOutcome } from './barrier-session.js';
/** Running totals a metrics module can read: declared on the seam (drivers/seams.ts). */
export type { BarrierLinkCounters } from './seams.js';

/** The part of a serialport stream this driver uses (SerialPort, SerialPortMock). */
export interface PortLike {
  open(cb: (err: Error | null) => void): void;
  close(cb?: (err: Error | null) => void): void;
  write(data: Buffer): boolean;
  on(ev: 'data', fn: (b: Buffer) => void): this;
  on(ev: 'close', fn: (err?: Error | null) => void): this;
  on(ev: 'error', fn: (err: Error) => void): this;
  set(opts: { rts?: boolean }, cb: (err: Error | null) => void): void;
  drain(cb: (err: Error | null) => void): void;
  readonly isOpen: boolean;
}

export interface SerialBarrierOptions {
  clock?: Clock;
  /** Anything with pino-style methods; defaults to silent. */
  log?: { debug(o: object, m?: string): void; info(o: object, m?: string): void; warn(o: object, m?: string): void };
  /** Build the port (tests pass a SerialPortMock factory); default: a real SerialPort. */
  makePort?: (cfg: SerialBarrierConfig) => PortLike;
  /** Every frame in and out, for `gate barrier monitor` and debugging. */
  trace?: (dir: 'in' | 'out', frame: LinkFrame) => void;
  /** The session id (1..0xFFFFFFFF); default: random, new for every link instance (a runtime start). */
  session?: number;
}

const silentLog = { debug() {}, info() {}, warn() {} };

export class SerialBarrierLink implements BarrierLink {
  readonly config: SerialBarrierConfig;
  private readonly clock: Clock;
  private readonly log: NonNullable<SerialBarrierOptions['log']>;
  private readonly opts: SerialBarrierOptions;
  private emit?: (e: BarrierEvent) => void;
  private stopped = true;

  private port?: PortLike;
  private portState: 'closed' | 'opening' | 'open' = 'closed';
  private everOpened = false;
  private link: 'down' | 'resyncing' | 'up' = 'down';
  /** what we last told the lane: undefined before the first report */
  private reportedUp: boolean | undefined;

  private queue: Pending[] = [];
  private inflight?: Pending;
  private nextSeq = 1;
  /** This runtime's session with the board (README "Sessions"). */
  readonly session: number;
  /** What the board says about sessions, and the command whose acks were all lost while it is asked about it. */
  private readonly sessions: BoardSessions;
  /** Why the link is not up, for commands that gave up waiting for it. */
  private downDetail = 'link not yet up';
  private heartbeatSeq = 0;
  private lastRx = 0;
  private lastTx = 0;
  private resyncSentAt = -Infinity;
  private tickTimer: any;
  private reopenTimer: any;
  private lastEventKey = '';

  // Framing: the byte-length slicer cuts 12-byte pieces; the reader checks them and re-aligns.
  private readonly reader = new FrameReader();
  private slicer!: ByteLengthParser;
  /** bytes inside the slicer that it has not emitted yet (we mirror them to re-align) */
  private held = Buffer.alloc(0);

  private readonly own = {
    framesOut: 0,
    retransmits: 0,
    realigns: 0,
    resyncs: 0,
    commandFailures: 0,
    duplicateEvents: 0,
    staleAnswers: 0,
    echoes: 0,
    linkDowns: 0,
    reopens: 0,
    openFailures: 0,
    ackLostExecuted: 0,
    ackLostNotExecuted: 0,
    ackLostUnknown: 0,
    freshSessions: 0,
    linkWaitExpired: 0,
  };
  private everStarted = false;
  private writeChain: Promise<void> = Promise.resolve();

  constructor(config: SerialBarrierConfigInput | SerialBarrierConfig, opts: SerialBarrierOptions = {}) {
    this.config = serialBarrierConfigSchema.parse(config);
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? silentLog;
    this.opts = opts;
    this.session = opts.session ?? randomInt(1, 0x1_0000_0000);
    if (!Number.isInteger(this.session) || this.session < 1 || this.session > 0xffffffff) throw new GateError(`barrier link session must be 1..4294967295, got ${this.session}`, GateErrorCode.Config, { session: this.session });
    // README "Sessions": a board without sessions is unlikely to take a restarted runtime's first seq for a repeat.
    this.nextSeq = 1 + (this.session % 255);
    this.sessions = new BoardSessions({
      session: this.session,
      path: this.config.path,
      log: this.log,
      own: this.own,
      now: () => this.clock.now(),
      release: (p) => {
        this.clock.clearTimeout(p.timer);
        this.inflight = undefined;
      },
      first: (...p) => this.queue.unshift(...p),
      pump: () => this.pump(),
      finish: (p, o) => this.finish(p, o),
    });
    this.newSlicer();
  }

  get counters(): SerialBarrierCounters {
    const r = this.reader.counters;
    return { framesIn: r.frames, bytesDiscarded: r.bytesDiscarded, badCrc: r.badCrc, badFrames: r.badFrames, ...this.own };
  }

  /** No command in flight, being checked or queued (the simulated station waits for this between virtual-time steps). */
  get idle(): boolean {
    return !this.inflight && !this.sessions.checking && this.queue.length === 0;
  }

  /** Whether the board answers SESSION (reports what it executed); undefined until it has answered one. */
  get boardSupportsSessions(): boolean | undefined {
    return this.sessions.supported;
  }

  /** 'up' once the board answered a status request; what the lane may rely on. */
  get state(): 'down' | 'resyncing' | 'up' {
    return this.link;
  }

  async start(emit: (e: BarrierEvent) => void): Promise<void> {
    this.emit = emit;
    if (!this.stopped) return;
    this.stopped = false;
    this.everStarted = true;
    this.openPort();
    this.scheduleTick();
  }

  send(cmd: BarrierCommand): void {
    void this.request(cmd);
  }

  /**
   * Send a command and learn its fate (the bench tool and tests use this; send() ignores it). Sent before
   * the link is up, it waits for the link (at most linkWaitMs) behind the commands sent before it.
   */
  request(cmd: BarrierCommand): Promise<CommandOutcome> {
    return new Promise((resolve) => {
      const p: Pending = { cmd, internal: false, resolve: resolve as (o: Outcome) => void, queuedAt: this.clock.now() };
      if (this.stopped && this.everStarted) return this.finish(p, { ok: false, detail: 'link stopped', executed: false }, true);
      if (this.link !== 'up' && authorises(cmd)) {
        return this.finish(p, { ok: false, detail: `link ${this.link} (${this.downDetail}): an opening is never kept waiting`, executed: false }, true);
      }
      if (this.queue.length >= this.config.queueLimit) return this.finish(p, { ok: false, detail: 'command queue full', executed: false }, true);
      this.queue.push(p);
      this.pump();
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.emit = undefined;
    this.clock.clearTimeout(this.tickTimer);
    this.clock.clearTimeout(this.reopenTimer);
    this.failAll('link stopped');
    this.link = 'down';
    const port = this.port;
    this.port = undefined;
    this.portState = 'closed';
    // Listeners stay: a write cancelled by the close surfaces as an 'error' the handler ignores.
    if (port?.isOpen) await new Promise<void>((res) => port.close(() => res()));
  }

  // ---- port lifecycle ----

  private makePort(): PortLike {
    if (this.opts.makePort) return this.opts.makePort(this.config);
    const c = this.config;
    return new SerialPort({
      path: c.path,
      baudRate: c.baudRate,
      dataBits: c.dataBits,
      parity: c.parity,
      stopBits: c.stopBits,
      autoOpen: false,
      // Another process holding the port (a stale runtime) must be an open error, not shared bytes.
      lock: true,
    }) as unknown as PortLike;
  }

  private openPort(): void {
    if (this.stopped || this.portState !== 'closed') return;
    this.portState = 'opening';
    let port: PortLike;
    try {
      port = this.makePort();
    } catch (e) {
      this.portState = 'closed';
      return this.onOpenFailed((e as Error).message);
    }
    port.open((err) => {
      if (this.stopped) {
        if (!err) port.close();
        return;
      }
      if (err) {
        this.portState = 'closed';
        return this.onOpenFailed(err.message);
      }
      this.port = port;
      this.portState = 'open';
      if (this.everOpened) this.own.reopens++;
      this.everOpened = true;
      port.on('data', (b) => {
        if (this.port === port) this.onBytes(b);
      });
      port.on('close', (e) => this.onPortGone(port, e ? `port closed: ${e.message}` : 'port closed'));
      port.on('error', (e) => this.onPortGone(port, `port error: ${e.message}`));
      this.log.info({ path: this.config.path }, 'barrier port open');
      this.onPortOpened();
    });
  }

  private onOpenFailed(detail: string): void {
    this.own.openFailures++;
    this.log.debug({ path: this.config.path, detail }, 'barrier port open failed');
    this.linkDown(`cannot open ${this.config.path}: ${detail}`);
    this.scheduleReopen();
  }

  private onPortGone(port: PortLike, detail: string): void {
    if (this.port !== port) return;
    this.port = undefined;
    this.portState = 'closed';
    if (port.isOpen) port.close();
    if (this.stopped) return;
    this.log.warn({ path: this.config.path, detail }, 'barrier port lost');
    this.linkDown(detail);
    this.scheduleReopen();
  }

  private scheduleReopen(): void {
    if (this.stopped) return;
    this.clock.clearTimeout(this.reopenTimer);
    this.reopenTimer = this.clock.setTimeout(() => this.openPort(), this.config.reopenMs);
  }

  private onPortOpened(): void {
    // Bytes left from the previous connection belong to no frame.
    const stale = this.reader.takePending().length + this.held.length;
    this.reader.counters.bytesDiscarded += stale;
    this.newSlicer();
    this.lastEventKey = '';
    this.lastRx = this.clock.now();
    this.link = 'resyncing';
    this.downDetail = 'status resync under way';
    this.startResync();
  }

  // ---- link state ----

  /**
   * Session, then status (README "Sessions" and "Sequencing"): SESSION tells the board who talks (a new
   * runtime is never taken for the previous one) and whether it speaks sessions; STATUS_REQUEST gets the
   * board's state, and its STATUS brings the link up.
   */
  private startResync(): void {
    if (this.link !== 'resyncing' || this.portState !== 'open') return;
    if (this.inflight?.role === 'resync' || this.queue.some((p) => p.role === 'resync')) return;
    this.own.resyncs++;
    const now = this.clock.now();
    this.resyncSentAt = now;
    this.queue.unshift(...this.sessions.resyncFrames(now));
    this.pump();
  }

  private linkDown(detail: string): void {
    this.link = 'down';
    this.downDetail = detail;
    // The lane hears why first, then which commands did not make it.
    if (this.reportedUp !== false) {
      this.own.linkDowns++;
      this.reportedUp = false;
      this.emit?.({ type: 'LINK', up: false, detail });
    }
    this.failSent(`link down: ${detail}`);
  }

  private scheduleTick(): void {
    const period = Math.max(1, Math.min(this.config.heartbeatMs, Math.floor(this.config.silenceMs / 4)));
    this.tickTimer = this.clock.setTimeout(() => {
      if (this.stopped) return;
      this.tick();
      this.scheduleTick();
    }, period);
  }

  private tick(): void {
    const now = this.clock.now();
    if (this.link !== 'up' && this.queue.length > 0) this.expireWaiting(now);
    if (this.portState !== 'open') return;
    if (this.link !== 'down' && now - this.lastRx > this.config.silenceMs) {
      this.linkDown(`no frame from the board for ${now - this.lastRx} ms`);
    }
    if (now - this.lastTx >= this.config.heartbeatMs) {
      this.heartbeatSeq = (this.heartbeatSeq + 1) & 0xff;
      this.write({ type: 'HEARTBEAT', seq: this.heartbeatSeq, from: 'runtime' });
    }
    // The status request was answered but its STATUS never came (or was never answered): ask again.
    if (this.link === 'resyncing' && now - this.resyncSentAt > this.config.silenceMs) this.startResync();
  }

  /** Commands that have waited for the link longer than linkWaitMs fail (never sent: not executed). */
  private expireWaiting(now: number): void {
    const limit = this.config.linkWaitMs;
    if (!this.queue.some((p) => !p.internal && now - p.queuedAt >= limit)) return;
    const expired = this.queue.filter((p) => !p.internal && now - p.queuedAt >= limit);
    this.queue = this.queue.filter((p) => p.internal || now - p.queuedAt < limit);
    for (const p of expired) {
      this.own.linkWaitExpired++;
      this.finish(p, { ok: false, executed: false, detail: `link ${this.link} for ${limit} ms, never sent: ${this.downDetail}` });
    }
  }

  // ---- commands ----

  private pump(): void {
    while (!this.inflight && this.portState === 'open') {
      const p = this.queue[0];
      if (!p) return;
      // Commands wait for the link, and behind a command whose fate the board is being asked about; the
      // session and status resync and that question (queued first) go ahead of them.
      if (!p.internal && (this.link !== 'up' || this.sessions.checking)) return;
      this.queue.shift();
      p.seq = this.nextSeq;
      this.nextSeq = this.nextSeq === 255 ? 1 : this.nextSeq + 1;
      const frame = this.frameOf(p);
      try {
        p.bytes = Buffer.from(encodeFrame(frame));
      } catch (e) {
        this.finish(p, { ok: false, executed: false, detail: `cannot encode: ${(e as Error).message}` });
        continue;
      }
      p.attempts = 0;
      this.inflight = p;
      this.transmit(p, frame);
    }
  }

  private frameOf(p: Pending): LinkFrame {
    return p.cmd.type === 'SESSION' ? { type: 'SESSION', seq: p.seq!, session: this.session } : { type: 'COMMAND', seq: p.seq!, command: p.cmd };
  }

  private transmit(p: Pending, frame?: LinkFrame): void {
    p.attempts = (p.attempts ?? 0) + 1;
    if (p.attempts > 1) this.own.retransmits++;
    this.writeBytes(p.bytes!, frame ?? this.frameOf(p));
    // Each wait doubles, up to 8 times the first: a busy board (or a starved pty relay) gets time to
    // answer, while a lost frame is still repeated quickly.
    const wait = this.config.ackTimeoutMs * Math.min(2 ** (p.attempts - 1), 8);
    p.timer = this.clock.setTimeout(() => {
      if (this.inflight !== p) return;
      if (p.attempts! <= this.config.retries) this.transmit(p);
      else this.sessions.acksLost(p);
    }, wait);
  }

  /** Settle a command; a failure is counted and reported as COMMAND_FAILED (internal ones only counted). */
  private finish(p: Pending, o: Outcome, deferred = false): void {
    if (p.settled) return;
    p.settled = true;
    if (this.inflight === p) {
      this.clock.clearTimeout(p.timer);
      this.inflight = undefined;
    }
    if (!o.ok) {
      // A board without sessions refusing SESSION is an answer, not a failure.
      if (!(p.cmd.type === 'SESSION' && o.detail === 'refused by the board: unsupported')) this.own.commandFailures++;
      if (!p.internal && p.cmd.type !== 'SESSION') {
        const e: BarrierEvent = {
          type: 'COMMAND_FAILED',
          command: p.cmd.type,
          port: this.config.path,
          ...(o.executed === false ? { executed: false as const } : {}),
          detail: o.detail,
        };
        // Refusals at send() time are reported after the caller's turn, never inside it.
        if (deferred) queueMicrotask(() => this.emit?.(e));
        else this.emit?.(e);
      }
    }
    p.resolve(o);
    if (!deferred) this.pump();
  }

  /**
   * The link went down: what was sent is failed (whether the board executed it is unknown), and so is an
   * authorising OPEN still queued; other commands keep waiting for the link (at most linkWaitMs).
   */
  private failSent(detail: string): void {
    const sent = [...(this.inflight ? [this.inflight] : []), ...(this.sessions.checking ? [this.sessions.checking] : [])];
    const dropped = this.queue.filter((p) => p.internal || authorises(p.cmd));
    this.queue = this.queue.filter((p) => !p.internal && !authorises(p.cmd));
    for (const p of sent) this.finish(p, { ok: false, detail: `${detail}: sent, unknown whether the board executed it` });
    for (const p of dropped) this.finish(p, { ok: false, executed: false, detail: `${detail}: never sent${p.internal ? '' : ', and an opening is never kept waiting'}` });
  }

  private failAll(detail: string): void {
    const all = [...(this.inflight ? [this.inflight] : []), ...(this.sessions.checking ? [this.sessions.checking] : []), ...this.queue];
    this.queue = [];
    for (const p of all) this.finish(p, { ok: false, detail });
  }

  // ---- bytes in ----

  private newSlicer(): void {
    this.slicer?.removeAllListeners('data');
    this.slicer = new ByteLengthParser({ length: FRAME_LENGTH });
    this.slicer.on('data', (piece: Buffer) => {
      for (const r of this.reader.push(piece)) this.onResult(r);
    });
    this.held = Buffer.alloc(0);
  }

  /** Feed the slicer, mirroring the bytes it holds (it emits synchronously on write). */
  private feed(chunk: Buffer): void {
    const total = this.held.length + chunk.length;
    const keep = total % FRAME_LENGTH;
    const next = keep <= chunk.length ? Buffer.from(chunk.subarray(chunk.length - keep)) : Buffer.concat([this.held.subarray(this.held.length - (keep - chunk.length)), chunk]);
    this.slicer.write(chunk);
    this.held = next;
  }

  private onBytes(chunk: Buffer): void {
    this.feed(chunk);
    // A lost or extra byte leaves the slicer cutting mid-frame: the reader then holds the start of a
    // frame. Restart the slicer on that start so the next frame is emitted as soon as its last byte
    // arrives (ByteLengthParser alone would stay out of step for good). Each pass consumes bytes.
    while (this.reader.pending > 0 && !this.stopped) {
      const carry = Buffer.concat([this.reader.takePending(), this.held]);
      this.own.realigns++;
      this.newSlicer();
      this.feed(carry);
    }
  }

  private onResult(r: DecodeResult): void {
    if (r.kind !== 'frame') {
      this.log.debug({ result: r }, 'barrier frame rejected');
      return;
    }
    const f = r.frame;
    this.opts.trace?.('in', f);
    if (f.type === 'COMMAND' || f.type === 'SESSION' || f.type === 'EVENT_ACK' || (f.type === 'HEARTBEAT' && f.from === 'runtime')) {
      this.own.echoes++;
      return;
    }
    this.lastRx = this.clock.now();
    if (this.link === 'down' && this.portState === 'open') {
      this.link = 'resyncing';
      this.startResync();
    }
    switch (f.type) {
      case 'HEARTBEAT':
        return;
      case 'ACK':
      case 'NACK':
      case 'SESSION_ACK': {
        const p = this.inflight;
        if (!p || p.seq !== f.seq || !answers(p, f) || (f.type === 'SESSION_ACK' && f.session !== this.session)) {
          this.own.staleAnswers++;
          return;
        }
        if (f.type === 'SESSION_ACK') return this.finish(p, { ok: true, attempts: p.attempts!, session: f });
        return this.finish(p, f.type === 'ACK' ? { ok: true, attempts: p.attempts! } : { ok: false, executed: false, detail: `refused by the board: ${f.reason}` });
      }
      case 'EVENT': {
        this.write({ type: 'EVENT_ACK', seq: f.seq, of: typeCode(f) });
        // A repeat of the last event taken (our EVENT_ACK was lost): acknowledge again, pass on once.
        const key = `${f.seq}:${JSON.stringify(f.event)}`;
        if (key === this.lastEventKey) {
          this.own.duplicateEvents++;
          return;
        }
        this.lastEventKey = key;
        return this.onEvent(f.event);
      }
    }
  }

  private onEvent(e: BoardEvent): void {
    if (e.type === 'STATUS' && this.link === 'resyncing') {
      this.link = 'up';
      this.reportedUp = true;
      this.log.info({ status: e, session: sessionHex(this.session), boardSessions: this.sessions.supported }, 'barrier link up');
      this.emit?.({ type: 'LINK', up: true });
      this.emit?.(e);
      // Commands that waited for the link go now, in the order they were sent.
      this.pump();
      return;
    }
    this.emit?.(e);
  }

  // ---- bytes out ----

  private write(f: LinkFrame): void {
    this.writeBytes(Buffer.from(encodeFrame(f)), f);
  }

  private writeBytes(b: Buffer, f: LinkFrame): void {
    const port = this.port;
    if (!port || this.portState !== 'open') return;
    this.lastTx = this.clock.now();
    this.own.framesOut++;
    this.opts.trace?.('out', f);
    if (!this.config.rs485.rtsToggle) {
      port.write(b);
      return;
    }
    // RS-485 without automatic direction control: drive RTS around each frame, one frame at a time.
    this.writeChain = this.writeChain.then(
      () =>
        new Promise<void>((res) => {
          port.set({ rts: true }, () => {
            port.write(b);
            port.drain(() => port.set({ rts: false }, () => res()));
          });
        }),
    );
  }
}
