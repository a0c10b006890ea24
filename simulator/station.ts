// A simulated station: riders arrive, queue at the lanes that serve their direction, tap or show
// their code, walk through when the flaps open, and leave when refused. Every answer the gate gives
// on its barrier wire (an OPEN, or a refusal on the display) is judged against the rider's ground truth.
// The judge holds its own statement of the admission rule (STATION_RULE, or the scenario's) and its own
// passback record keyed by the rider's registration: it never reads the lanes' config, nor keys
// credentials the way the lanes do.

import type { BarrierCommand } from '../protocol/barrier.js';
import { credentialRef, type Credential, type Direction, type LaneDirection } from '../protocol/credential.js';
import { BODY_REASONS, REASONS, reasonById, type ReasonCode } from '../protocol/reasons.js';
import { NormallyOpenFlow, type FlapsSummary } from './lane-mechanics.js';
import type { VirtualClock } from './virtual-clock.js';
import { shownOn, type Random, type Registration, type Rider } from './population.js';
import type { VirtualBarrier } from './virtual-barrier.js';
import type { Arrivals } from './arrivals.js';
import { Tally } from './summary.js';

/** How a rider reaches a lane's reader or camera. The composition decides what is behind it. */
export interface RiderPresenter {
  present(credential: Credential): void;
  /** The first tap was torn (card pulled away) or the code could not be read. */
  cardFault(reason: 'tap-again' | 'qr-malformed', detail?: string): void;
}

export interface StationLane {
  id: string;
  direction: LaneDirection;
  board: VirtualBarrier;
  entry?: RiderPresenter;
  exit?: RiderPresenter;
  /** Normally-open flaps: riders walk through while the lane decides (lane-mechanics.ts); absent: normally closed. */
  flow?: NormallyOpenFlow;
}

/** The simulator's own copy of the admission policy: ground truth is computed independently of the gate. */
export interface TruthPolicy {
  entry: Record<Registration, boolean>;
  exit: Record<Registration, boolean>;
  antiPassbackSeconds: number;
}

/**
 * The station's rule as the operator states it (Beijing, May 2022), written here and nowhere else for the
 * judge: entry only with a green registration; exit for everyone but blocked credentials (a status never
 * traps a rider inside); a second entry without an exit within two hours is refused. A scenario that sets
 * the lanes' policy otherwise states its own rule to the judge.
 */
export const STATION_RULE: TruthPolicy = Object.freeze({
  entry: Object.freeze({ green: true, yellow: false, red: false, unregistered: false, blocked: false }),
  exit: Object.freeze({ green: true, yellow: true, red: true, unregistered: true, blocked: false }),
  antiPassbackSeconds: 7200,
});

export interface StationTiming {
  /** From stepping up to the tap landing on the reader. */
  presentMs: number;
  /** From flaps open to the rider clear of the lane. */
  walkMs: number;
  /** A refused rider stepping aside before the next one steps up. */
  leaveMs: number;
  /** No answer on the wire by then: the presentation was lost. */
  responseTimeoutMs: number;
  /** An "enters twice" rider comes back this long after the first entry. */
  reentryMs: number;
  /** A rider refused as not registered registers on their phone and comes back this long after. */
  registerMs: number;
}

export const DEFAULT_TIMING: StationTiming = { presentMs: 600, walkMs: 1500, leaveMs: 800, responseTimeoutMs: 5000, reentryMs: 120_000, registerMs: 30_000 };

export interface PresentationResult {
  atMs: number;
  laneId: string;
  rider: Rider;
  /** What the rider showed on this attempt (their registered credential, or a phone emulating it). */
  credential: Credential;
  direction: Direction;
  attempt: number;
  expected: { grant: boolean; reason?: ReasonCode };
  observed: { grant: boolean; reason?: ReasonCode } | 'unanswered';
  verdict: 'ok' | 'false-accept' | 'false-reject' | 'unanswered' | 'wrong-reason';
  latencyMs: number;
}

export interface StationSummary {
  passengers: number;
  presentations: number;
  admitted: number;
  refused: number;
  falseAccepts: number;
  falseRejects: number;
  unanswered: number;
  wrongReasons: number;
  byReason: Record<string, number>;
  throughputPerLanePerMin: number;
  decisionLatencyMs: { p50: number; p99: number; max: number };
  virtualSeconds: number;
  wallSeconds: number;
  tailgates: number;
  intrusions: number;
  lanes: number;
  /** The first wrong answers, one line each (formatResult), when there were any: the counts above cover them all. */
  failureSample?: string[];
  /** Normally-open lanes: the bodies that reached the flaps without authorisation, and whether the flaps were shut. */
  flaps?: FlapsSummary;
}

export interface StationOptions {
  clock: VirtualClock;
  rng: Random;
  lanes: StationLane[];
  /** Riders in the order they arrive, made as they come (simulator/arrivals.ts). */
  riders: Arrivals;
  /** The rule the judge applies: STATION_RULE unless the scenario states another (never the lanes' parsed config). */
  policy?: TruthPolicy;
  /**
   * Make a rider's registration (green) reach the lanes: back office, publish, list sync. Resolves once it
   * has; only then does it become the rider's ground truth. Needed by "registers after refusal" riders.
   */
  register?: (rider: Rider) => Promise<void>;
  /** Mean arrivals per lane per minute. */
  arrivalsPerLanePerMin: number;
  timing?: StationTiming;
  /** Pace virtual time to the wall clock (demos, dashboard). */
  realtime?: boolean;
  /** With realtime: keep the clock running after the last rider, until stop() (a dashboard is open). */
  untilStopped?: boolean;
  onResult?: (r: PresentationResult) => void;
  /** Wall clock for latency (performance.now). */
  wallNow?: () => number;
  /**
   * Let everything triggered by the last virtual-time step finish before the next one. Default: one
   * turn of the event loop; wires with real I/O (a pty) wait until their bytes have crossed.
   */
  settle?: () => Promise<void>;
}

interface Attempt {
  rider: Rider;
  direction: Direction;
  attempt: number;
  torn: boolean;
}

interface LaneRun {
  lane: StationLane;
  queue: Attempt[];
  busy: boolean;
  outstanding?: { attempt: Attempt; expected: PresentationResult['expected']; wallAt: number; timer: number };
}

export class Station {
  private readonly timing: StationTiming;
  private readonly runs: LaneRun[];
  /** Every answer folded into counters as it comes: a run holds no rider it has finished with. */
  readonly tally = new Tally((r) => formatResult(r as PresentationResult));
  /** Ground-truth passback: rider registration → virtual time of the last admitted entry (older than the rule's window: dropped). */
  private readonly entered = new Map<string, number>();
  private enteredPrunedAt = 0;
  /** Work outside virtual time (a registration on its way to the lanes): the clock waits for it. */
  private readonly work = new Set<Promise<void>>();
  private readonly policy: TruthPolicy;
  private pendingRiders = 0;
  private presentations = 0;
  private wall: () => number;
  private started: { wall: number; virtual: number } | undefined;
  private stopRequested = false;
  /** A registration that never reached the lanes: the run cannot judge what follows. */
  private failure: Error | undefined;

  constructor(private readonly o: StationOptions) {
    this.timing = o.timing ?? DEFAULT_TIMING;
    this.policy = o.policy ?? STATION_RULE;
    this.wall = o.wallNow ?? (() => performance.now());
    this.runs = o.lanes.map((lane) => ({ lane, queue: [], busy: false }));
    for (const run of this.runs) run.lane.board.onCommand((c) => this.onCommand(run, c));
  }

  /** Stop a realtime run early (Ctrl-C, dashboard). */
  stop(): void {
    this.stopRequested = true;
  }

  async run(): Promise<StationSummary> {
    const { clock } = this.o;
    this.begin();
    await this.settle();
    const forever = this.o.realtime === true && this.o.untilStopped === true;
    while ((this.pendingRiders > 0 || forever) && !this.stopRequested) {
      if (this.o.realtime) {
        const next = clock.nextAt();
        if (next === undefined && !forever) break;
        const to = Math.min(next ?? Infinity, clock.now() + 250);
        const wait = to - clock.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        clock.advanceTo(to);
        await this.settle();
        continue;
      }
      if (!clock.step()) break;
      await this.settle();
    }
    return this.end();
  }

  /**
   * Start the arrivals. A caller that moves the clock itself (a line of stations on one clock) calls
   * begin(), then steps the clock and awaits settle() while `busy`, then end(); run() does all of it.
   */
  begin(): void {
    const { clock, riders } = this.o;
    const virtualStart = clock.now();
    this.started = { wall: this.wall(), virtual: virtualStart };
    const totalRate = (this.o.arrivalsPerLanePerMin * this.o.lanes.length) / 60_000;
    let t = 0;
    // One arrival on the clock at a time, each scheduled when the one before comes, at the same virtual
    // time as when all were scheduled at the start (virtualStart + t: the subtraction below is exact).
    const comeNext = (): void => {
      const rider = riders.next();
      if (!rider) return;
      t += riders.gaps.exp(1 / totalRate);
      this.pendingRiders++;
      clock.setTimeout(() => {
        comeNext();
        this.arrive({ rider, direction: rider.direction, attempt: 1, torn: rider.story === 'torn-tap' });
      }, virtualStart + t - clock.now());
    };
    comeNext();
  }

  /** Riders still to arrive or still at a lane. */
  get busy(): boolean {
    return this.pendingRiders > 0;
  }

  /** Work outside virtual time (a registration on its way to the lanes) holds the clock. */
  get holding(): boolean {
    return this.work.size > 0;
  }

  /** Let everything triggered by the last virtual-time step finish, work outside virtual time included. */
  async settle(): Promise<void> {
    const baseSettle = this.o.settle ?? (() => new Promise<void>((r) => setImmediate(r)));
    await baseSettle();
    while (this.work.size > 0) {
      await Promise.allSettled([...this.work]);
      await baseSettle();
    }
  }

  /** The run's summary (throws what made the run unjudgeable, if anything did). */
  end(): StationSummary {
    if (this.failure) throw this.failure;
    const { clock } = this.o;
    const started = this.started ?? { wall: this.wall(), virtual: clock.now() };
    // Riders still queued when the clock ran dry were never answered.
    return this.summary((clock.now() - started.virtual) / 1000, (this.wall() - started.wall) / 1000);
  }

  private arrive(a: Attempt): void {
    if (a.rider.story === 'registers-after-refusal' && !this.o.register) throw new Error('riders who register after a refusal need StationOptions.register');
    const candidates = this.runs.filter((r) => r.lane.direction === 'bidirectional' || r.lane.direction === a.direction);
    if (candidates.length === 0) throw new Error(`no lane serves direction ${a.direction}`);
    let best = candidates[0];
    for (const r of candidates) if (load(r) < load(best) || (load(r) === load(best) && this.o.rng.chance(0.5))) best = r;
    best.queue.push(a);
    this.next(best);
  }

  private next(run: LaneRun): void {
    if (run.busy) return;
    const a = run.queue.shift();
    if (!a) return;
    run.busy = true;
    const flow = run.lane.flow;
    // Normally open: the rider walks in and taps on the way; the next may follow before this one has passed.
    if (flow) return flow.enter(a.direction, { tailgater: a.rider.tailgater }, { tap: () => this.present(run, a), release: () => this.release(run), busy: () => run.outstanding !== undefined });
    this.o.clock.setTimeout(() => this.present(run, a), this.timing.presentMs);
  }

  private present(run: LaneRun, a: Attempt): void {
    const presenter = a.direction === 'entry' ? run.lane.entry : run.lane.exit;
    if (!presenter) throw new Error(`lane ${run.lane.id} has no ${a.direction} reader`);
    const shown = shownOn(a.rider, a.attempt);
    const fault = shown.kind === 'qr' ? 'qr-malformed' : 'tap-again';
    const expected = a.torn ? { grant: false, reason: fault as ReasonCode } : this.truth(a);
    const timer = this.o.clock.setTimeout(() => this.answer(run, 'unanswered'), this.timing.responseTimeoutMs);
    run.outstanding = { attempt: a, expected, wallAt: this.wall(), timer };
    this.presentations++;
    if (a.torn) presenter.cardFault(fault, shown.kind === 'qr' ? 'the code could not be read' : 'rider pulled the card away');
    else presenter.present(shown);
  }

  private onCommand(run: LaneRun, c: BarrierCommand): void {
    if (!run.outstanding) return;
    if ((c.type === 'OPEN' && c.passages > 0) || c.type === 'AUTHORISE') this.answer(run, { grant: true, reason: 'ok' });
    else if (c.type === 'DISPLAY' && c.textId !== 0) {
      const reason = reasonById(c.textId);
      // A normally-open lane's word to a body (no tap, too fast, wrong way) answers no tap.
      if (reason && !REASONS[reason].grant && !BODY_REASONS.has(reason)) this.answer(run, { grant: false, reason });
    }
  }

  private answer(run: LaneRun, observed: PresentationResult['observed']): void {
    const out = run.outstanding;
    if (!out) return;
    run.outstanding = undefined;
    this.o.clock.clearTimeout(out.timer);
    const { attempt: a, expected } = out;
    const latencyMs = this.wall() - out.wallAt;
    let verdict: PresentationResult['verdict'];
    if (observed === 'unanswered') verdict = 'unanswered';
    else if (observed.grant && !expected.grant) verdict = 'false-accept';
    else if (!observed.grant && expected.grant) verdict = 'false-reject';
    else if (!observed.grant && expected.reason && observed.reason !== expected.reason) verdict = 'wrong-reason';
    else verdict = 'ok';
    const result: PresentationResult = {
      atMs: this.o.clock.now(),
      laneId: run.lane.id,
      rider: a.rider,
      credential: shownOn(a.rider, a.attempt),
      direction: a.direction,
      attempt: a.attempt,
      expected,
      observed,
      verdict,
      latencyMs,
    };
    this.tally.add(result);
    this.o.onResult?.(result);

    const granted = observed !== 'unanswered' && observed.grant;
    const who = a.rider.registrationId;
    if (granted) {
      if (a.direction === 'entry') this.recordEntry(who);
      else this.entered.delete(who);
    }
    const { clock } = this.o;
    run.lane.flow?.answered(granted, a.torn);
    if (a.torn && observed !== 'unanswered') {
      // "Tap again": the same rider taps properly right away, still at the head of the lane.
      clock.setTimeout(() => this.present(run, { ...a, torn: false, attempt: a.attempt + 1 }), this.timing.presentMs);
      return;
    }
    const release = () => this.release(run);
    if (run.lane.flow) {
      // Normally open: the body walks on by itself (through, or to shut flaps and back); the flow releases the lane.
    } else if (granted) {
      clock.setTimeout(() => {
        run.lane.board.walkThrough(a.direction, { tailgater: a.rider.tailgater });
        release();
      }, this.timing.walkMs);
    } else {
      clock.setTimeout(release, this.timing.leaveMs);
    }
    if (granted && a.rider.story === 'enters-twice' && a.attempt === 1 && a.direction === 'entry') {
      clock.setTimeout(() => this.arrive({ rider: a.rider, direction: 'entry', attempt: 2, torn: false }), this.timing.reentryMs);
    } else if (!granted && observed !== 'unanswered' && a.rider.story === 'registers-after-refusal' && a.rider.registration === 'unregistered') {
      this.registerThenReturn(a);
    } else {
      this.pendingRiders--;
    }
  }

  private release(run: LaneRun): void {
    run.busy = false;
    this.next(run);
  }

  /** The refused rider registers; once the registration has reached the lanes, they come back and tap again. */
  private registerThenReturn(a: Attempt): void {
    const register = this.o.register;
    if (!register) throw new Error('no StationOptions.register for a rider who registers');
    const p: Promise<void> = register(a.rider)
      .then(
        () => {
          a.rider.registration = 'green';
          this.o.clock.setTimeout(() => this.arrive({ rider: a.rider, direction: 'entry', attempt: a.attempt + 1, torn: false }), this.timing.registerMs);
        },
        (e: unknown) => {
          this.failure ??= new Error(`rider ${a.rider.id}'s registration did not reach the lanes: ${(e as Error).message}`);
          this.pendingRiders--;
        },
      )
      .finally(() => this.work.delete(p));
    this.work.add(p);
  }

  /** Remember an admitted entry; entries older than the rule's window can no longer refuse anyone: drop them. */
  private recordEntry(who: string): void {
    const now = this.o.clock.now();
    this.entered.set(who, now);
    if (now - this.enteredPrunedAt < 60_000) return;
    this.enteredPrunedAt = now;
    const windowMs = this.policy.antiPassbackSeconds * 1000;
    for (const [k, at] of this.entered) if (now - at >= windowMs) this.entered.delete(k);
  }

  /** What the gate must answer, from the rider's registration and the station's own passback record. */
  private truth(a: Attempt): PresentationResult['expected'] {
    const p = this.policy;
    const reg = a.rider.registration;
    const table = a.direction === 'entry' ? p.entry : p.exit;
    if (!table[reg]) return { grant: false, reason: REFUSAL[reg] };
    if (a.direction === 'entry' && p.antiPassbackSeconds > 0) {
      const at = this.entered.get(a.rider.registrationId);
      if (at !== undefined && this.o.clock.now() - at < p.antiPassbackSeconds * 1000) return { grant: false, reason: 'passback' };
    }
    return { grant: true };
  }

  private summary(virtualSeconds: number, wallSeconds: number): StationSummary {
    const { tally } = this;
    const unansweredQueued = this.runs.reduce((n, r) => n + r.queue.length + (r.outstanding ? 1 : 0), 0);
    return {
      passengers: this.o.riders.count,
      presentations: this.presentations,
      admitted: tally.admitted,
      refused: tally.refused,
      falseAccepts: tally.verdicts['false-accept'],
      falseRejects: tally.verdicts['false-reject'],
      unanswered: tally.verdicts.unanswered + unansweredQueued,
      wrongReasons: tally.verdicts['wrong-reason'],
      byReason: { ...tally.byReason },
      throughputPerLanePerMin: virtualSeconds > 0 ? round(tally.admitted / this.o.lanes.length / (virtualSeconds / 60), 2) : 0,
      decisionLatencyMs: { p50: round(tally.latency.percentile(50), 3), p99: round(tally.latency.percentile(99), 3), max: round(tally.latency.max, 3) },
      virtualSeconds: round(virtualSeconds, 1),
      wallSeconds: round(wallSeconds, 2),
      tailgates: this.o.lanes.reduce((n, l) => n + l.board.counts.tailgates, 0),
      intrusions: this.o.lanes.reduce((n, l) => n + l.board.counts.intrusions, 0),
      lanes: this.o.lanes.length,
      ...(tally.failures.length > 0 ? { failureSample: [...tally.failures] } : {}),
      ...(this.o.lanes.some((l) => l.flow) ? { flaps: NormallyOpenFlow.merge(this.o.lanes.flatMap((l) => (l.flow ? [l.flow] : []))) } : {}),
    };
  }
}

const REFUSAL: Record<Registration, ReasonCode> = {
  green: 'not-registered',
  unregistered: 'not-registered',
  yellow: 'status-yellow',
  red: 'status-red',
  blocked: 'blocked',
};

function load(r: LaneRun): number {
  return r.queue.length + (r.busy ? 1 : 0);
}

function round(n: number, d: number): number {
  const f = 10 ** d;
  return Math.round(n * f) / f;
}

/** One readable line per answer, for `gate sim` output. Privacy-safe: credential references only. */
export function formatResult(r: PresentationResult): string {
  const t = new Date(r.atMs).toISOString().slice(11, 23);
  const obs = r.observed === 'unanswered' ? 'NO ANSWER' : `${r.observed.grant ? 'OPEN  ' : 'REFUSE'} ${r.observed.reason ?? ''}`;
  const mark = r.verdict === 'ok' ? '' : `   <<< ${r.verdict.toUpperCase()} (expected ${r.expected.grant ? 'open' : `refuse ${r.expected.reason}`})`;
  return `${t} ${r.laneId.padEnd(4)} ${r.direction.padEnd(5)} ${credentialRef(r.credential).padEnd(28)} ${r.rider.story.padEnd(12)} ${obs}${mark}`;
}
