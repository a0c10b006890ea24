// The session side of the serial barrier link (protocol/README.md, "Sessions"): what a SESSION's answer
// says about the board, and what becomes of a command whose every ack was lost: before it is called failed,
// the board is asked (SESSION) which command it last executed, and the answer settles it (done, not done,
// or unknown). The link (serial-barrier.ts) owns the queue, the timers and the port; this part decides.

import type { BarrierCommand } from '../protocol/barrier.js';
import { type LinkFrame, sessionHex, TYPE } from '../protocol/barrier-frame.js';
import type { SerialBarrierCounters } from './serial-barrier-config.js';

/**
 * What became of a command. `ackLost`: every ack was lost, and the board said it executed the command.
 * `executed: false`: the board did not execute it, known for sure; absent on a failure: unknown.
 */
export type CommandOutcome = { ok: true; attempts: number; ackLost?: true } | { ok: false; detail: string; executed?: false };

export type SessionAck = Extract<LinkFrame, { type: 'SESSION_ACK' }>;
/** An outcome inside the driver: a SESSION's carries the board's answer. */
export type Outcome = CommandOutcome | { ok: true; attempts: number; session: SessionAck };

/** One command (or internal SESSION / STATUS_REQUEST) on its way to the board. */
export interface Pending {
  /** What goes out: a command, or SESSION (internal: session start at resync, or asking what was executed) */
  cmd: BarrierCommand | { type: 'SESSION' };
  internal: boolean;
  /** internal ones: part of the session and status resync, or asking what a command with lost acks did */
  role?: 'resync' | 'check';
  resolve: (o: Outcome) => void;
  /** clock time it was queued: how long it has waited for the link */
  queuedAt: number;
  settled?: boolean;
  seq?: number;
  bytes?: Buffer;
  attempts?: number;
  timer?: any;
}

/** A command that lets someone through (an OPEN for passengers, an AUTHORISE): never kept waiting for the link. */
export const authorises = (c: Pending['cmd']) => (c.type === 'OPEN' && c.passages > 0) || c.type === 'AUTHORISE';

/** Whether an answer from the board is for this command: ACK for a command, SESSION_ACK for SESSION, NACK for either. */
export function answers(p: Pending, f: Extract<LinkFrame, { type: 'ACK' | 'NACK' | 'SESSION_ACK' }>): boolean {
  if (p.cmd.type === 'SESSION') return f.type === 'SESSION_ACK' || (f.type === 'NACK' && f.of === TYPE.SESSION);
  return f.type !== 'SESSION_ACK' && f.of === TYPE[p.cmd.type];
}

type Log = { info(o: object, m?: string): void; warn(o: object, m?: string): void };

/** What the session side needs from the link it serves. */
export interface SessionHost {
  readonly session: number;
  readonly path: string;
  readonly log: Log;
  /** the link's own counters (the session side counts lost acks and fresh sessions in them) */
  readonly own: Pick<SerialBarrierCounters, 'ackLostExecuted' | 'ackLostNotExecuted' | 'ackLostUnknown' | 'freshSessions'>;
  now(): number;
  /** Take `p` out of flight (its retransmission timer stops) without settling it. */
  release(p: Pending): void;
  /** Queue internal frames ahead of every command (sent at the next pump). */
  first(...p: Pending[]): void;
  /** Send what can go. */
  pump(): void;
  finish(p: Pending, o: Outcome): void;
}

export class BoardSessions {
  /** Whether the board answers SESSION: learnt at each resync; undefined before the first answer. */
  supported: boolean | undefined;
  /** A command whose acks were all lost, while the board is asked whether it executed it. */
  checking?: Pending;

  constructor(private readonly host: SessionHost) {}

  /** The session and status resync: SESSION says who talks, STATUS_REQUEST gets the board's state. */
  resyncFrames(now: number): Pending[] {
    return [
      { cmd: { type: 'SESSION' }, internal: true, role: 'resync', queuedAt: now, resolve: (o) => this.onAnswer(o) },
      { cmd: { type: 'STATUS_REQUEST' }, internal: true, role: 'resync', queuedAt: now, resolve: () => {} },
    ];
  }

  /** What a SESSION's answer says about the board: it speaks sessions, or (NACK unsupported) it does not. */
  onAnswer(o: Outcome): SessionAck | undefined {
    const { log, path, session } = this.host;
    if ('session' in o) {
      if (this.supported !== true) log.info({ path, session: sessionHex(session) }, 'barrier board speaks sessions');
      this.supported = true;
      if (o.session.fresh) {
        this.host.own.freshSessions++;
        log.info({ path, session: sessionHex(session) }, 'barrier board started our session');
      }
      return o.session;
    }
    if (!o.ok && o.detail === 'refused by the board: unsupported') {
      if (this.supported !== false) log.warn({ path }, 'barrier board does not speak sessions: a command whose acks are all lost cannot be checked');
      this.supported = false;
    }
    return undefined;
  }

  /**
   * Every ack of a command was lost. Before calling it failed, ask the board (SESSION, which reports the
   * last command it executed in our session) whether it executed it; commands behind it wait for the answer.
   */
  acksLost(p: Pending): void {
    const host = this.host;
    const detail = `no answer after ${p.attempts} attempts`;
    const type = p.cmd.type;
    if (p.internal || type === 'STATUS_REQUEST' || type === 'SESSION') return host.finish(p, { ok: false, detail });
    if (this.supported === false) {
      host.own.ackLostUnknown++;
      return host.finish(p, { ok: false, detail: `${detail}; the board does not report what it executed (no SESSION support): unknown whether it executed ${type}` });
    }
    host.release(p);
    this.checking = p;
    host.first({ cmd: { type: 'SESSION' }, internal: true, role: 'check', queuedAt: host.now(), resolve: (o) => this.settleChecked(p, detail, o) });
    host.pump();
  }

  /** The board's answer about a command whose acks were all lost settles it: done, not done, or unknown. */
  private settleChecked(p: Pending, detail: string, o: Outcome): void {
    if (this.checking !== p) return;
    this.checking = undefined;
    const host = this.host;
    const type = p.cmd.type;
    const a = this.onAnswer(o);
    if (!a) {
      host.own.ackLostUnknown++;
      const why = !o.ok ? o.detail : 'no session answer';
      return host.finish(p, { ok: false, detail: `${detail}; asking the board what it executed failed too (${why}): unknown whether it executed ${type}` });
    }
    if (a.fresh) {
      // The board forgot our session (it restarted): what it did before is unknown; let the lane hear its state.
      host.own.ackLostUnknown++;
      host.first({ cmd: { type: 'STATUS_REQUEST' }, internal: true, queuedAt: host.now(), resolve: () => {} });
      return host.finish(p, { ok: false, detail: `${detail}; the board no longer held our session (restarted?): unknown whether it executed ${type}` });
    }
    if (a.last && a.last.seq === p.seq && a.last.command === type) {
      host.own.ackLostExecuted++;
      host.log.info({ path: host.path, command: type, seq: p.seq, attempts: p.attempts }, 'barrier command executed, every ack of it lost');
      return host.finish(p, { ok: true, attempts: p.attempts!, ackLost: true });
    }
    host.own.ackLostNotExecuted++;
    const last = a.last ? `#${a.last.seq} ${a.last.command}` : 'none';
    return host.finish(p, { ok: false, executed: false, detail: `${detail}; the board did not execute it (its last executed command: ${last})` });
  }
}
