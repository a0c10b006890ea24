// A virtual barrier controller board on a serial device or pty: speaks the frames of
// protocol/barrier-frame.ts around the typed mechanics model (VirtualBarrier), with fault switches
// for the line (drop, corrupt, duplicate, delay bytes; stop answering; lose the answers to, or the
// frames of, one kind of command) and for the hardware (stuck flap, sensor fault, fire-alarm input),
// and its own fail-safe on heartbeat silence. Written from protocol/README.md ("Barrier link frames")
// alone: sessions, repeats and the last executed command as the README says, nothing more.

import { SerialPort } from 'serialport';
import { seededRandom } from './random.js';
import type { BarrierCommand, BarrierEvent } from '../protocol/barrier.js';
import {
  type ActingCommandType,
  type BoardEvent,
  type DecodeResult,
  encodeFrame,
  FrameReader,
  type LinkFrame,
  type NackReason,
  typeCode,
} from '../protocol/barrier-frame.js';
import { type BarrierMechanics, DEFAULT_MECHANICS, type Timers, VirtualBarrier } from './virtual-barrier.js';

/** Byte damage on one direction of the line, each a probability per byte (per chunk for delay). */
export interface LineFaults {
  drop: number;
  corrupt: number;
  duplicate: number;
  /** probability that a chunk (and everything after it) is held back delayMs */
  delay: number;
  delayMs: number;
}

/** Which commands a frame switch applies to: every one, one command type, SESSION, or none (undefined). */
export type CommandFilter = 'all' | BarrierCommand['type'] | 'SESSION' | undefined;

export interface BoardFaults {
  /** board → runtime */
  out: LineFaults;
  /** runtime → board (applied as the board receives) */
  in: LineFaults;
  /** stop answering: no ACK, no event, no heartbeat (a hung board or a cut TX wire) */
  silent: boolean;
  /**
   * Lose every answer (ACK, NACK, SESSION_ACK) to these commands, repeats included, while still executing
   * them: the runtime never hears that the board did what it asked.
   */
  dropAnswers: CommandFilter;
  /** Lose these commands on the way in: neither executed nor answered (the board never hears them). */
  dropCommands: CommandFilter;
}

export interface BoardOptions {
  path: string;
  baudRate?: number;
  mechanics?: Partial<BarrierMechanics>;
  heartbeatMs?: number;
  /** Runtime silent this long → the safe state mechanics.failSafe names. */
  failSafeAfterMs?: number;
  eventRetryMs?: number;
  eventRetries?: number;
  reopenMs?: number;
  /** Seed of the fault RNG (same seed, same damage). */
  seed?: number;
  faults?: { out?: Partial<LineFaults>; in?: Partial<LineFaults>; silent?: boolean; dropAnswers?: CommandFilter; dropCommands?: CommandFilter };
  timers?: Timers;
  /** Drive this mechanics model instead of a new one (the simulated station owns its boards). */
  barrier?: VirtualBarrier;
  /** Every frame in and out (after fault injection on the way in, before it on the way out). */
  trace?: (dir: 'in' | 'out', frame: LinkFrame) => void;
  /**
   * false: play a board built before sessions (the README without SESSION/SESSION_ACK), which answers
   * SESSION (type 0x09) as an unknown type, with NACK `unsupported`. Default true.
   */
  sessions?: boolean;
  /**
   * false: play a board built before DISPLAY_DATE (type 0x0D), which answers it as an unknown type, with
   * NACK `unsupported` (the DISPLAY the runtime sends before it still shows the dateless text). Default true.
   */
  displayDate?: boolean;
}

function matches(filter: CommandFilter, f: Extract<LinkFrame, { type: 'COMMAND' | 'SESSION' }>): boolean {
  if (filter === undefined) return false;
  return filter === 'all' || filter === (f.type === 'SESSION' ? 'SESSION' : f.command.type);
}

const NO_FAULTS: LineFaults = { drop: 0, corrupt: 0, duplicate: 0, delay: 0, delayMs: 20 };

const systemTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id),
};

/** Damages and delays bytes on one direction, in order. */
class FaultyLine {
  private held: Buffer[] = [];
  private holding = false;
  private timer: any;
  constructor(
    public faults: LineFaults,
    private readonly random: () => number,
    private readonly timers: Timers,
    private readonly deliver: (b: Buffer) => void,
    readonly counts = { dropped: 0, corrupted: 0, duplicated: 0, delayed: 0 },
  ) {}
  pass(b: Buffer): void {
    const f = this.faults;
    let out = b;
    if (f.drop > 0 || f.corrupt > 0 || f.duplicate > 0) {
      const bytes: number[] = [];
      for (const x of b) {
        const r = this.random();
        if (r < f.drop) this.counts.dropped++;
        else if (r < f.drop + f.corrupt) {
          this.counts.corrupted++;
          bytes.push(x ^ (1 << Math.floor(this.random() * 8)));
        } else if (r < f.drop + f.corrupt + f.duplicate) {
          this.counts.duplicated++;
          bytes.push(x, x);
        } else bytes.push(x);
      }
      out = Buffer.from(bytes);
    }
    if (!this.holding && f.delay > 0 && this.random() < f.delay) {
      this.counts.delayed++;
      this.holding = true;
      this.timer = this.timers.setTimeout(() => this.release(), f.delayMs);
    }
    if (this.holding) this.held.push(out);
    else if (out.length > 0) this.deliver(out);
  }
  private release(): void {
    this.holding = false;
    const all = Buffer.concat(this.held);
    this.held = [];
    if (all.length > 0) this.deliver(all);
  }
  stop(): void {
    this.timers.clearTimeout(this.timer);
    this.held = [];
    this.holding = false;
  }
}

interface OutEvent {
  seq: number;
  bytes: Buffer;
  frame: LinkFrame;
  attempts: number;
  timer?: any;
}

export class BarrierBoard {
  readonly barrier: VirtualBarrier;
  readonly counts = {
    commandsExecuted: 0,
    duplicateCommands: 0,
    /** SESSION frames that started a new session (the board forgot its last command) */
    sessionsStarted: 0,
    /** commands lost on the way in, and answers not sent, by the frame switches */
    commandsDropped: 0,
    answersDropped: 0,
    nacks: 0,
    eventsSent: 0,
    eventsAcked: 0,
    eventsAbandoned: 0,
    failSafes: 0,
    reopens: 0,
  };
  readonly reader = new FrameReader();
  readonly faults: BoardFaults;
  private readonly timers: Timers;
  private readonly opt: Required<Omit<BoardOptions, 'faults' | 'mechanics' | 'timers' | 'trace' | 'seed' | 'barrier'>>;
  private port?: SerialPort;
  private stopped = false;
  private lastCommandKey = '';
  private lastReply?: Buffer;
  private lastReplyFrame?: LinkFrame;
  /** The session the board serves: 0 = none since power-up (a runtime that never sent SESSION). */
  private sessionId = 0;
  /** The last acting command executed in this session (what SESSION_ACK reports). */
  private lastExecuted?: { seq: number; command: ActingCommandType };
  private lastRx: number;
  /** fail-safe taken for the current silence (taken once per silence) */
  private runtimeSilent = false;
  private heartbeatSeq = 0;
  private eventSeq = 0;
  private events: OutEvent[] = [];
  private inflight?: OutEvent;
  private heartbeatTimer: any;
  private reopenTimer: any;
  private readonly outLine: FaultyLine;
  private readonly inLine: FaultyLine;
  private readonly trace?: BoardOptions['trace'];

  constructor(opts: BoardOptions) {
    this.timers = opts.timers ?? systemTimers;
    this.opt = {
      path: opts.path,
      baudRate: opts.baudRate ?? 115200,
      heartbeatMs: opts.heartbeatMs ?? 100,
      failSafeAfterMs: opts.failSafeAfterMs ?? 1000,
      eventRetryMs: opts.eventRetryMs ?? 40,
      eventRetries: opts.eventRetries ?? 5,
      reopenMs: opts.reopenMs ?? 100,
      sessions: opts.sessions ?? true,
      displayDate: opts.displayDate ?? true,
    };
    this.trace = opts.trace;
    this.barrier = opts.barrier ?? new VirtualBarrier(this.timers, { ...DEFAULT_MECHANICS, ...opts.mechanics });
    this.barrier.listen((e) => this.queueEvent(e));
    const random = seededRandom(opts.seed ?? 1);
    this.faults = {
      out: { ...NO_FAULTS, ...opts.faults?.out },
      in: { ...NO_FAULTS, ...opts.faults?.in },
      silent: opts.faults?.silent ?? false,
      dropAnswers: opts.faults?.dropAnswers,
      dropCommands: opts.faults?.dropCommands,
    };
    this.outLine = new FaultyLine(this.faults.out, random, this.timers, (b) => this.port?.write(b));
    this.inLine = new FaultyLine(this.faults.in, random, this.timers, (b) => this.onBytes(b));
    this.lastRx = this.timers.now();
  }

  /** Nothing waiting to be sent or acknowledged (the simulated station waits for this between steps). */
  get idle(): boolean {
    return !this.inflight && this.events.length === 0;
  }

  /** Frames written so far (before line faults). */
  framesOut = 0;

  /** The session the board serves (0: none since power-up) and the last acting command it executed in it. */
  get session(): { id: number; lastExecuted?: { seq: number; command: ActingCommandType } } {
    return { id: this.sessionId, lastExecuted: this.lastExecuted };
  }

  /** Damage done so far on each direction. */
  get lineCounts(): { out: FaultyLine['counts']; in: FaultyLine['counts'] } {
    return { out: this.outLine.counts, in: this.inLine.counts };
  }

  /** Change line faults while running (the objects are shared with the lines). */
  setLineFaults(dir: 'in' | 'out', f: Partial<LineFaults>): void {
    Object.assign(this.faults[dir], f);
  }

  /** Open the device; resolves once open (rejects if it cannot be opened the first time). */
  async start(): Promise<void> {
    await this.open();
    this.scheduleHeartbeat();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timers.clearTimeout(this.heartbeatTimer);
    this.timers.clearTimeout(this.reopenTimer);
    if (this.inflight) this.timers.clearTimeout(this.inflight.timer);
    this.outLine.stop();
    this.inLine.stop();
    const p = this.port;
    this.port = undefined;
    if (p?.isOpen) await new Promise<void>((r) => p.close(() => r()));
  }

  // ---- hardware switches ----

  setFireAlarm(active: boolean): void {
    this.barrier.setFireAlarm(active);
  }
  setStuckFlap(on: boolean): void {
    this.barrier.stuckFlap = on;
  }
  setSensorFault(on: boolean): void {
    this.barrier.setFault(on ? VirtualBarrier.SENSOR_FAULT : 0);
  }
  emergencyButton(active: boolean): void {
    this.queueEvent({ type: 'EMERGENCY_BUTTON', active });
  }
  power(state: 'mains' | 'battery' | 'low-battery'): void {
    this.queueEvent({ type: 'POWER', state });
  }

  // ---- port ----

  private open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const port = new SerialPort({ path: this.opt.path, baudRate: this.opt.baudRate, autoOpen: false });
      port.open((err) => {
        if (err) return reject(err);
        if (this.stopped) {
          port.close();
          return resolve();
        }
        this.port = port;
        port.on('data', (b: Buffer) => {
          if (this.port === port) this.inLine.pass(b);
        });
        port.on('close', () => this.onPortGone(port));
        port.on('error', () => this.onPortGone(port));
        resolve();
      });
    });
  }

  private onPortGone(port: SerialPort): void {
    if (this.port !== port) return;
    this.port = undefined;
    if (port.isOpen) port.close();
    this.scheduleReopen();
  }

  private scheduleReopen(): void {
    if (this.stopped) return;
    this.reopenTimer = this.timers.setTimeout(() => {
      this.open().then(
        () => {
          this.counts.reopens++;
          // A board announces itself after (re)connecting.
          this.queueEvent(this.statusEvent());
        },
        () => this.scheduleReopen(),
      );
    }, this.opt.reopenMs);
  }

  // ---- frames in ----

  private onBytes(b: Buffer): void {
    for (const r of this.reader.push(b)) this.onResult(r);
  }

  private onResult(r: DecodeResult): void {
    if (r.kind === 'bad-payload' || r.kind === 'unknown-type') {
      this.lastRx = this.timers.now();
      if (r.code < 0x80 && r.code !== 0x07 && r.code !== 0x08) {
        const reason: NackReason = r.kind === 'bad-payload' ? 'bad-payload' : 'unsupported';
        this.counts.nacks++;
        this.writeFrame({ type: 'NACK', seq: r.seq, of: r.code, reason });
      }
      return;
    }
    if (r.kind !== 'frame') return;
    const f = r.frame;
    if ((f.type === 'COMMAND' || f.type === 'SESSION') && matches(this.faults.dropCommands, f)) {
      this.counts.commandsDropped++; // lost on the way in: never seen
      return;
    }
    this.trace?.('in', f);
    if (f.type !== 'COMMAND' && f.type !== 'SESSION' && f.type !== 'EVENT_ACK' && f.type !== 'HEARTBEAT') return; // our own echo
    if (f.type === 'HEARTBEAT' && f.from !== 'runtime') return;
    this.lastRx = this.timers.now();
    if ((f.type === 'SESSION' && !this.opt.sessions) || (f.type === 'COMMAND' && f.command.type === 'DISPLAY_DATE' && !this.opt.displayDate)) {
      this.runtimeSilent = false;
      this.counts.nacks++;
      this.writeFrame({ type: 'NACK', seq: f.seq, of: typeCode(f), reason: 'unsupported' });
      return;
    }
    this.runtimeSilent = false;
    if (f.type === 'HEARTBEAT') return;
    if (f.type === 'EVENT_ACK') {
      const e = this.inflight;
      if (e && e.seq === f.seq && typeCode(e.frame) === f.of) {
        this.timers.clearTimeout(e.timer);
        this.inflight = undefined;
        this.counts.eventsAcked++;
        this.pumpEvents();
      }
      return;
    }
    // A command or SESSION: executed once per (seq, type, payload); a repeat gets the same answer again
    // and is not executed again (README "Sequencing").
    const bytes = encodeFrame(f);
    const key = Buffer.from(bytes.subarray(2, 10)).toString('hex');
    if (key === this.lastCommandKey && this.lastReply) {
      this.counts.duplicateCommands++;
      this.answer(f, this.lastReply, this.lastReplyFrame!);
      return;
    }
    this.lastCommandKey = key;
    if (f.type === 'SESSION') {
      // A session other than the one served starts afresh: what was executed before belongs to someone else.
      const fresh = f.session !== this.sessionId;
      if (fresh) {
        this.sessionId = f.session;
        this.lastExecuted = undefined;
        this.counts.sessionsStarted++;
      }
      const reply: LinkFrame = { type: 'SESSION_ACK', seq: f.seq, session: this.sessionId, fresh, ...(this.lastExecuted ? { last: this.lastExecuted } : {}) };
      this.remember(reply);
      this.answer(f, this.lastReply!, reply);
      return;
    }
    const ack: LinkFrame = { type: 'ACK', seq: f.seq, of: typeCode(f) };
    this.remember(ack);
    this.answer(f, this.lastReply!, ack);
    this.counts.commandsExecuted++;
    if (f.command.type !== 'STATUS_REQUEST') this.lastExecuted = { seq: f.seq, command: f.command.type };
    this.barrier.command(f.command);
  }

  private remember(reply: LinkFrame): void {
    this.lastReply = Buffer.from(encodeFrame(reply));
    this.lastReplyFrame = reply;
  }

  /** Send the answer to a command (or SESSION), unless the board is silent or its answers are switched off. */
  private answer(f: Extract<LinkFrame, { type: 'COMMAND' | 'SESSION' }>, bytes: Buffer, reply: LinkFrame): void {
    if (this.faults.silent) return;
    if (matches(this.faults.dropAnswers, f)) {
      this.counts.answersDropped++;
      return;
    }
    this.writeBytes(bytes, reply);
  }

  // ---- frames out ----

  private statusEvent(): BoardEvent {
    const b = this.barrier;
    return { type: 'STATUS', flaps: b.flaps, mode: b.mode, faultCode: b.faultCode, fireAlarm: b.fireAlarm };
  }

  private queueEvent(e: BarrierEvent): void {
    if (e.type === 'LINK' || e.type === 'COMMAND_FAILED') return;
    this.eventSeq = this.eventSeq === 255 ? 1 : this.eventSeq + 1;
    const frame: LinkFrame = { type: 'EVENT', seq: this.eventSeq, event: e };
    this.events.push({ seq: this.eventSeq, frame, bytes: Buffer.from(encodeFrame(frame)), attempts: 0 });
    // A board has little memory: keep the newest events if the runtime is not taking them.
    if (this.events.length > 128) {
      this.events.shift();
      this.counts.eventsAbandoned++;
    }
    this.pumpEvents();
  }

  private pumpEvents(): void {
    if (this.inflight || this.stopped) return;
    const e = this.events.shift();
    if (!e) return;
    this.inflight = e;
    this.sendEvent(e);
  }

  private sendEvent(e: OutEvent): void {
    e.attempts++;
    this.counts.eventsSent++;
    if (!this.faults.silent) this.writeBytes(e.bytes, e.frame);
    e.timer = this.timers.setTimeout(() => {
      if (this.inflight !== e) return;
      if (e.attempts <= this.opt.eventRetries) return this.sendEvent(e);
      this.inflight = undefined;
      this.counts.eventsAbandoned++;
      this.pumpEvents();
    }, this.opt.eventRetryMs);
  }

  private scheduleHeartbeat(): void {
    this.heartbeatTimer = this.timers.setTimeout(() => {
      if (this.stopped) return;
      const now = this.timers.now();
      if (now - this.lastRx > this.opt.failSafeAfterMs && !this.runtimeSilent) {
        this.runtimeSilent = true;
        this.counts.failSafes++;
        this.barrier.failSafe();
      }
      if (!this.faults.silent) {
        this.heartbeatSeq = (this.heartbeatSeq + 1) & 0xff;
        this.writeFrame({ type: 'HEARTBEAT', seq: this.heartbeatSeq, from: 'board' });
      }
      this.scheduleHeartbeat();
    }, this.opt.heartbeatMs);
  }

  private writeFrame(f: LinkFrame): void {
    this.writeBytes(Buffer.from(encodeFrame(f)), f);
  }

  private writeBytes(b: Buffer, f: LinkFrame): void {
    if (!this.port) return;
    this.framesOut++;
    this.trace?.('out', f);
    this.outLine.pass(b);
  }
}
