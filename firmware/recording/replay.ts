// `gate replay DIR`: a lane recording run through the same gate machine on a clock of its own. Events go in
// in the order the lane took them, at the lane's times; the machine's timers fire where the recording says
// they fired; the decider's answers come back where they came back (a replay journal holds each append
// until then). The decision core answers from the recording (replay-core.ts), so an unchanged lane decides
// exactly as recorded — checked decision by decision — and another version is asked beside it.

import { createActor } from 'xstate';
import type { BarrierCommand, BarrierEvent } from '../../protocol/barrier.js';
import { GateError, GateErrorCode } from '../../protocol/errors.js';
import type { RecordingKey } from '../../protocol/recording.js';
import type { BarrierLink, Clock } from '../../drivers/seams.js';
import type { Journal, JournalEntry } from '../journal/journal.js';
import { gateMachine, stateName, type GateInput } from '../lane/gate-machine.js';
import { fromStored, outcomeOf, sameOutcome, type LaneInfo, type LaneRecord } from './records.js';
import { ReplayCore, type OtherVersion, type ReplayedDecision } from './replay-core.js';
import { RecordingError, RecordingReader, type RecordingFiles, type RecordingShape } from './segment-files.js';

export type { OtherVersion, ReplayedDecision } from './replay-core.js';

type DecideRecord = Extract<LaneRecord, { t: 'decide' }>;

/**
 * Time for the replayed machine: set by the replay, and its timers fired only where the recording says the
 * lane's fired. Each timer is known by the event it raises (`name`, read from the machine when scheduled).
 */
export class ReplayClock implements Clock {
  private readonly timers = new Map<number, { at: number; fn: () => void; name: string | undefined }>();
  private nextId = 1;
  /** Names the timer being scheduled (the machine's scheduled event just added). */
  naming: () => string | undefined = () => undefined;
  constructor(private t: number) {}
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): number {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + Math.max(0, ms || 0), fn, name: this.naming() });
    return id;
  }
  clearTimeout(id: unknown): void {
    this.timers.delete(id as number);
  }
  /** Move to the lane's time (never back). */
  set(at: number): void {
    if (at > this.t) this.t = at;
  }
  /** Fire the pending timer that raises `name` (the one due first); false when none does. */
  fire(name: string): boolean {
    let best: [number, { at: number; fn: () => void; name: string | undefined }] | undefined;
    for (const e of this.timers) if (e[1].name === name && (!best || e[1].at < best[1].at)) best = e;
    if (!best) return false;
    this.timers.delete(best[0]);
    best[1].fn();
    return true;
  }
  get pending(): number {
    return this.timers.size;
  }
}

/** The barrier link of a replay: the board's events come from the recording; the commands are counted. */
class ReplayBarrierLink implements BarrierLink {
  commands = 0;
  async start(_emit: (e: BarrierEvent) => void): Promise<void> {}
  send(_cmd: BarrierCommand): void {
    this.commands++;
  }
  async stop(): Promise<void> {}
}

/** The journal of a replay: each decision's append is held until the recording says its answer came back. */
class ReplayJournal implements Journal {
  private readonly held = new Map<number, { resolve: (seq: number) => void; reject: (e: Error) => void }>();
  constructor(private next: number) {}
  append(entry: JournalEntry): Promise<number> {
    if (entry.type !== 'decision') return Promise.resolve(0);
    const n = this.next++;
    return new Promise((resolve, reject) => this.held.set(n, { resolve, reject }));
  }
  /** Let decision `n`'s record be durable (or fail, as it did at the lane); false if it was never asked for. */
  settle(n: number, ok: boolean): boolean {
    const h = this.held.get(n);
    if (!h) return false;
    this.held.delete(n);
    if (ok) h.resolve(n);
    else h.reject(new GateError('journal unavailable (as recorded)', GateErrorCode.JournalUnavailable));
    return true;
  }
  async close(): Promise<void> {}
}

/** A recording's records in order, with the decisions indexed a little ahead (the core asks for them mid-event). */
class RecordStream {
  private queue: LaneRecord[] = [];
  private at = 0;
  private readonly decides = new Map<number, DecideRecord>();
  private ended = false;
  blocks = 0;

  constructor(private readonly reader: RecordingReader) {}

  private load(): boolean {
    if (this.ended) return false;
    const b = this.reader.next();
    if (!b) {
      this.ended = true;
      return false;
    }
    this.blocks++;
    if (this.at > 4096) {
      this.queue = this.queue.slice(this.at);
      this.at = 0;
    }
    for (const item of b.records) {
      const r = fromStored(item);
      if (typeof r !== 'object' || typeof (r as { t?: unknown }).t !== 'string' || typeof (r as { at?: unknown }).at !== 'number') {
        throw new RecordingError('bad-records', `recording ${this.reader.recording.name}: block ${b.block} holds a record without a type and time`);
      }
      if (r.t === 'decide') this.decides.set(r.n, r);
      this.queue.push(r);
    }
    return true;
  }

  next(): LaneRecord | undefined {
    // Keep some records ahead: a decision is recorded a few records after the event it answers, maybe in the next block.
    while (this.queue.length - this.at < 64 && this.load());
    return this.at < this.queue.length ? this.queue[this.at++] : undefined;
  }

  decide(n: number): DecideRecord | undefined {
    for (let tries = 0; !this.decides.has(n) && tries < 4 && this.load(); tries++);
    const r = this.decides.get(n);
    this.decides.delete(n);
    return r;
  }
}

export interface ReplayOptions {
  key: RecordingKey;
  allowTruncated?: boolean;
  other?: OtherVersion;
  /** Every decision, as the replay makes it. */
  onDecision?(d: ReplayedDecision): void;
}

export interface LaneReplayReport {
  laneId: string;
  station: string;
  recording: string;
  shape: RecordingShape;
  fromMs: number;
  toMs: number;
  events: number;
  timers: number;
  decisions: number;
  /** Decisions the replay made as the lane did. */
  asRecorded: number;
  /** Places where the replay went otherwise than the lane (first few). */
  divergences: string[];
  diverged: number;
  /** Decisions the other version makes otherwise. */
  differing: number;
  /** Of those: let in by the other version, refused by the lane; and the other way round. */
  nowGranted: number;
  nowRefused: number;
  listVersions: number[];
  commands: number;
  finalState: string;
}

const MAX_DIVERGENCES = 20;

/** Replay one lane recording; throws a RecordingError (classified) when it is damaged, truncated or the key is wrong. */
export async function replayRecording(recording: RecordingFiles, opts: ReplayOptions): Promise<LaneReplayReport> {
  const reader = new RecordingReader(recording, { key: opts.key, allowTruncated: opts.allowTruncated });
  const shape = reader.verify();
  const stream = new RecordStream(reader);
  const first = stream.next();
  if (!first || (first.t !== 'start' && first.t !== 'checkpoint')) {
    throw new RecordingError('bad-records', `recording ${recording.name} of lane ${recording.laneId} does not open with a start or a checkpoint record`);
  }
  const info: LaneInfo = first.lane;
  const report: LaneReplayReport = {
    laneId: info.id,
    station: info.station,
    recording: recording.name,
    shape,
    fromMs: first.at,
    toMs: first.at,
    events: 0,
    timers: 0,
    decisions: 0,
    asRecorded: 0,
    divergences: [],
    diverged: 0,
    differing: 0,
    nowGranted: 0,
    nowRefused: 0,
    listVersions: [info.lists.version],
    commands: 0,
    finalState: '',
  };
  const diverged = (why: string) => {
    report.diverged++;
    if (report.divergences.length < MAX_DIVERGENCES) report.divergences.push(why);
  };
  const core = new ReplayCore(
    info,
    first.next,
    (n) => stream.decide(n),
    {
      decision: (d) => {
        report.decisions++;
        if (d.faithful) report.asRecorded++;
        if (d.other && (d.other.grant !== d.replayed.grant || d.other.reason !== d.replayed.reason)) {
          report.differing++;
          if (d.other.grant && !d.replayed.grant) report.nowGranted++;
          if (!d.other.grant && d.replayed.grant) report.nowRefused++;
        }
        opts.onDecision?.(d);
      },
      diverged,
    },
    opts.other,
  );
  const clock = new ReplayClock(first.at);
  const link = new ReplayBarrierLink();
  const journal = new ReplayJournal(first.next);
  const input: GateInput = {
    laneId: info.id,
    direction: info.direction,
    timeouts: info.timeouts,
    now: () => clock.now(),
    barrier: link,
    sources: [],
    decider: { laneId: info.id, core, journal, clock },
  };
  const actor =
    first.t === 'start'
      ? createActor(gateMachine, { clock, input })
      : createActor(gateMachine, {
          clock,
          input,
          snapshot: gateMachine.resolveState({ value: first.state, context: { ...(first.facts as object), env: input } as never }),
        });
  // No inspection (it costs every microstep): timers are named by the event the machine scheduled, and
  // each answer the machine takes is reported by it as a `decision`.
  clock.naming = () => {
    let last: string | undefined;
    const scheduled = actor.system.getSnapshot()._scheduledEvents;
    for (const k in scheduled) last = scheduled[k].event.type;
    return last;
  };
  let answers = 0;
  let expected: Extract<LaneRecord, { t: 'answer' }> | undefined;
  actor.on('decision', (e) => {
    answers++;
    const got = outcomeOf(e.decision);
    if (expected && !sameOutcome(got, expected.d)) {
      diverged(`answer to decision ${expected.n}: recorded ${expected.d.grant ? 'grant' : 'refuse'} ${expected.d.reason}, replayed ${got.grant ? 'grant' : 'refuse'} ${got.reason}`);
    }
  });
  actor.start();
  try {
    for (let r = stream.next(); r !== undefined; r = stream.next()) {
      report.toMs = Math.max(report.toMs, r.at);
      switch (r.t) {
        case 'ev':
          clock.set(r.at);
          report.events++;
          actor.send(r.e);
          break;
        case 'timer': {
          clock.set(r.at);
          report.timers++;
          if (!clock.fire(r.name)) diverged(`at ${iso(r.at)} the lane's timer ${r.name} fired; the replayed machine had no such timer pending (${clock.pending} others)`);
          break;
        }
        case 'answer': {
          clock.set(r.at);
          expected = r;
          const before = answers;
          if (!journal.settle(r.n, r.ok)) {
            diverged(`at ${iso(r.at)} the answer to decision ${r.n} came back; the replayed lane never asked for it`);
            break;
          }
          // The decider answers from a promise callback: a few microtask turns, no timers.
          for (let i = 0; i < 32 && answers === before; i++) await Promise.resolve();
          if (answers === before) diverged(`the answer to decision ${r.n} did not reach the replayed machine`);
          expected = undefined;
          break;
        }
        case 'lists':
          if (!report.listVersions.includes(r.version)) report.listVersions.push(r.version);
          break;
        case 'checkpoint': {
          // A later segment opened here: the replayed lane must be where the lane was.
          const s = actor.getSnapshot();
          if (JSON.stringify(s.value) !== JSON.stringify(r.state)) diverged(`at the checkpoint of ${iso(r.at)} the lane was in ${JSON.stringify(r.state)}, the replay in ${stateName(s)}`);
          break;
        }
        case 'decide':
        case 'start':
          break;
      }
    }
  } finally {
    report.finalState = stateName(actor.getSnapshot());
    report.commands = link.commands;
    actor.stop();
  }
  return report;
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}
