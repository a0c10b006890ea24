// Why this file is long: it is one lane's walking model whole — the bodies, the judge's tally of them and who may
// step in next — which only make sense read together; the board it drives is virtual-barrier.ts.
// Normally-open lane mechanics: bodies walking through a lane at their own speed, past the reader at the
// lane's mouth, to the flaps, and through them or back. The board (virtual-barrier.ts) numbers and reports
// them; this model moves them, taps for the riders while they walk, adds the bodies that do not tap (no
// tap, a second body behind a rider, someone walking the wrong way), and keeps the ground truth the judge
// needs: where the flaps were when each body reached them, and by how much the lane's answer was early.
//
// The figures below are the reference lane of firmware/lane/README.md ("The passage cycle (normally open)").

import type { BodyExit, FlapPosition } from '../protocol/barrier.js';
import type { Direction, LaneDirection } from '../protocol/credential.js';
import { seededRandom } from './random.js';
import type { Timers, VirtualBarrier } from './virtual-barrier.js';

export interface WalkingModel {
  /** From the reader (at the lane's mouth, where the board's first beam is) to the flap zone. */
  readerToFlapsMm: number;
  /** Depth of the flap zone: a body in it is between the flaps. */
  flapZoneMm: number;
  /** Walking speed, drawn per body from a normal distribution, clamped. */
  speedMmPerS: { mean: number; sd: number; min: number; max: number };
  /** A rider's tap lands this long after their body broke the beam (uniform in the range). */
  tapAfterMs: readonly [number, number];
  /** A follower steps in once the body ahead is this far in (uniform). */
  headwayMm: readonly [number, number];
  /**
   * Single file, nobody closes up: when the body ahead clears the flap zone, a follower is at least this far
   * behind it (centre to centre). 1200 mm leaves a follower at 2 m/s 350 ms from the flaps: time for a fast
   * close and the margin, were it unauthorised.
   */
  followGapMm: number;
  /** A body stopped at closed flaps waits this long for them to open, then turns back. */
  waitAtFlapsMs: number;
  /** Turning round before walking back out. */
  turnMs: number;
  /**
   * A refused rider who sees the red cross stops this long after the answer and turns back; a share of them
   * (`refusedWalkOn`) walks on to the flaps regardless, as a fare evader would: those the flaps must stop.
   */
  reactMs: number;
  refusedWalkOn: number;
  /**
   * A second body on a rider's heels follows this far behind, at the rider's speed (uniform). Closer than
   * the flap zone plus the fast close at walking speed (about 800 mm) no flap can stop it without closing
   * on the rider ahead: the board then reports the obstruction and the crossing (firmware/lane/README.md).
   */
  secondBodyGapMm: readonly [number, number];
}

export const REFERENCE_WALK: WalkingModel = {
  readerToFlapsMm: 1200,
  flapZoneMm: 500,
  speedMmPerS: { mean: 1300, sd: 200, min: 900, max: 2000 },
  tapAfterMs: [150, 600],
  headwayMm: [1000, 1500],
  followGapMm: 1200,
  waitAtFlapsMs: 1500,
  turnMs: 600,
  reactMs: 500,
  refusedWalkOn: 0.25,
  secondBodyGapMm: [1050, 1400],
};

/** Bodies that are not a rider's tap-and-walk, as a share of the riders entering. */
export interface FraudMix {
  /** walks in without tapping */
  noTap: number;
  /** walks in from the far end of a one-way lane */
  wrongWay: number;
}

export const NO_FRAUD: FraudMix = { noTap: 0, wrongWay: 0 };

/**
 * Whose body it is. `rider`: a station rider who taps while walking; the others never tap. A rider's body
 * without an authorisation at the flaps is judged as `refused` (the answer to its tap was a refusal by
 * then) or `late-decision` (no answer yet, or a grant not yet acted on).
 */
export type BodyStory = 'rider' | 'no-tap' | 'second-body' | 'wrong-way';
export type StopStory = 'refused' | 'late-decision' | 'no-tap' | 'second-body' | 'wrong-way';
export const STOP_STORIES: readonly StopStory[] = ['no-tap', 'refused', 'second-body', 'wrong-way', 'late-decision'];

/** The judge's tally: bodies that reached the flaps without authorisation, per story, and whether closed flaps stopped them. */
export interface FlapsSummary {
  bodies: number;
  /** reached the flaps unauthorised */
  unauthorisedAtFlaps: number;
  /** of those, met closed flaps (a close still under way, or open flaps, does not count) */
  stopped: number;
  /** crossed the flaps without authorisation */
  intruded: number;
  byStory: Record<StopStory, { atFlaps: number; stopped: number }>;
  /** riders admitted after waiting at closed flaps for their answer */
  admittedAfterWaiting: number;
  /** authorised before reaching the flaps: how long before (AUTHORISE at the board → body at the flaps) */
  grantMarginMs: { n: number; p1: number; p50: number };
  /** stopped: how long the flaps had been shut when the body reached them */
  stopMarginMs: { n: number; p1: number; p50: number };
}

/** A bounded histogram (1 ms bins) for margins: percentiles without keeping every sample. */
class MarginHistogram {
  private static readonly LO = -5000;
  private readonly bins = new Uint32Array(15_001);
  n = 0;
  add(ms: number): void {
    const i = Math.max(0, Math.min(this.bins.length - 1, Math.round(ms) - MarginHistogram.LO));
    this.bins[i]++;
    this.n++;
  }
  merge(o: MarginHistogram): void {
    for (let i = 0; i < this.bins.length; i++) this.bins[i] += o.bins[i];
    this.n += o.n;
  }
  pct(p: number): number {
    if (this.n === 0) return 0;
    const want = Math.max(1, Math.ceil((p / 100) * this.n));
    let seen = 0;
    for (let i = 0; i < this.bins.length; i++) {
      seen += this.bins[i];
      if (seen >= want) return i + MarginHistogram.LO;
    }
    return this.bins.length - 1 + MarginHistogram.LO;
  }
  figure(): { n: number; p1: number; p50: number } {
    return { n: this.n, p1: this.pct(1), p50: this.pct(50) };
  }
}

interface Walker {
  story: BodyStory;
  body: number;
  direction: Direction;
  speed: number;
  /** the answer to the rider's last tap, as the station saw it */
  answer?: 'granted' | 'refused';
  tapped: boolean;
  enteredAt: number;
  /** reached the flap zone (stopped there or walking through) */
  reached?: boolean;
  stoppedSince?: number;
  /** the body that entered just before it, the same way (single file: it cannot pass it) */
  leader?: Walker;
  /** bodies that came up behind it while it stood at, or walked through, the flaps */
  queued?: Walker[];
  /** lane clock ms it cleared the flap zone (walked through) */
  clearedAt?: number;
  timer?: number;
}

/** One body reaching the flaps, as the judge saw it. */
export interface Arrival {
  story: BodyStory;
  body: number;
  direction: Direction;
  atMs: number;
  /** where the flaps were */
  flaps: FlapPosition;
  authorised: boolean;
  /** unauthorised, and the flaps were already shut */
  stopped: boolean;
}

/** What a station rider brings to the lane. */
export interface FlowHooks {
  /** The rider's tap lands (the station presents the credential). */
  tap(): void;
  /** The next rider may step in. */
  release(): void;
  /** The station still waits for the answer to a tap on this lane. */
  busy(): boolean;
}

/** One normally-open lane's walking bodies, fed by the station's queue. */
export class NormallyOpenFlow {
  private readonly random: () => number;
  private readonly walking = new Set<Walker>();
  private current?: Walker;
  /** the body that entered last */
  private last?: Walker;
  private waitingRelease?: { hooks: FlowHooks; notBefore: number; held?: boolean };
  private releaseTimer?: number;
  /** The current rider was told "tap again" and taps again at once. */
  private retryDue = false;
  private readonly tally = {
    bodies: 0,
    unauthorisedAtFlaps: 0,
    stopped: 0,
    intruded: 0,
    admittedAfterWaiting: 0,
    byStory: Object.fromEntries(STOP_STORIES.map((s) => [s, { atFlaps: 0, stopped: 0 }])) as FlapsSummary['byStory'],
  };
  /** Every body reaching the flaps (tests and traces listen here; the flow keeps only its tally). */
  onArrival?: (a: Arrival) => void;
  private readonly grantMargins = new MarginHistogram();
  private readonly stopMargins = new MarginHistogram();

  constructor(
    private readonly clock: Timers,
    readonly board: VirtualBarrier,
    private readonly laneDirection: LaneDirection,
    seed: number,
    readonly model: WalkingModel = REFERENCE_WALK,
    private readonly fraud: FraudMix = NO_FRAUD,
  ) {
    this.random = seededRandom(seed);
    board.listen((e) => {
      if (e.type === 'FLAPS' && e.position === 'open') {
        for (const w of this.walking) if (w.stoppedSince !== undefined) this.resume(w);
      }
      if (e.type === 'FLAPS' || e.type === 'BODY_LEFT') this.checkRelease();
    });
  }

  /** A rider of the station steps into the lane (bodies that do not tap may go first); hooks.release() lets the next one in. */
  enter(direction: Direction, opts: { tailgater: boolean }, hooks: FlowHooks): void {
    const oneWay = this.laneDirection !== 'bidirectional';
    const noTap = this.chance(this.fraud.noTap);
    const wrongWay = !noTap && oneWay && this.chance(this.fraud.wrongWay);
    const speed = this.speed();
    const go = () => {
      const w = this.walkIn('rider', direction, speed);
      this.current = w;
      this.clock.setTimeout(() => {
        w.tapped = true;
        hooks.tap();
      }, this.uniform(this.model.tapAfterMs));
      const release = { hooks, notBefore: this.clock.now() + this.headwayMs(w), held: opts.tailgater };
      this.waitingRelease = release;
      // The second body walks in on the rider's heels; the next rider follows it, not the rider.
      if (opts.tailgater) {
        this.clock.setTimeout(() => {
          const b = this.walkIn('second-body', direction, w.speed);
          release.held = false;
          release.notBefore = Math.max(release.notBefore, this.clock.now() + this.headwayMs(b));
          this.scheduleRelease();
        }, (this.uniform(this.model.secondBodyGapMm) / w.speed) * 1000);
      }
      this.scheduleRelease();
    };
    /** Step in once nobody ahead would be caught up before the flaps (the lane is single file), and the lane is not shut. */
    const follow = (v: number, fn: () => void, notBefore = this.clock.now()) =>
      this.whenClear(fn, Math.max(notBefore, this.catchUpFreeAt(direction, v)), () => this.catchUpFreeAt(direction, v) <= this.clock.now());
    // A two-way lane serves one way at a time: a rider from the other end waits until it is empty. Someone
    // walking in the wrong way does so into an empty lane (into an oncoming rider between the flaps no flap
    // could stop them: README); the rider waits until the lane is clear again. A body that does not tap goes
    // first, and the rider follows it at the headway.
    const opposite = [...this.walking].some((x) => x.direction !== direction);
    const empty = () => this.walking.size === 0;
    if (wrongWay) {
      this.whenClear(
        () => {
          this.walkIn('wrong-way', direction === 'entry' ? 'exit' : 'entry');
          this.whenClear(go, this.clock.now(), empty);
        },
        this.clock.now(),
        empty,
      );
    } else if (opposite) this.whenClear(go, this.clock.now(), () => ![...this.walking].some((x) => x.direction !== direction));
    else if (noTap) {
      const v = this.speed();
      follow(v, () => {
        const f = this.walkIn('no-tap', direction, v);
        follow(speed, go, this.clock.now() + this.headwayMs(f));
      });
    } else follow(speed, go);
  }

  /** When a body walking `v` may step in and still be followGapMm behind the one ahead when that one clears the flap zone. */
  private catchUpFreeAt(direction: Direction, v: number): number {
    const a = this.last;
    if (!a || !this.walking.has(a) || a.direction !== direction) return -Infinity;
    const m = this.model;
    const clears = a.enteredAt + ((m.readerToFlapsMm + m.flapZoneMm) / a.speed) * 1000;
    return clears - ((m.readerToFlapsMm + m.flapZoneMm - m.followGapMm) / v) * 1000;
  }


  /** The station's answer to the current rider's tap; `retry`: a torn tap's "tap again", the rider taps at once again. */
  answered(granted: boolean, retry = false): void {
    const w = this.current;
    // "Tap again" is no answer yet: the rider taps again at once, and the next one waits for that answer, even
    // if this body has left meanwhile (else the next rider's tap lands while this one's is still due, and the
    // station loses a rider).
    this.retryDue = retry;
    if (retry) return;
    if (w) {
      w.answer = granted ? 'granted' : 'refused';
      // Most refused riders turn back once they have taken the red cross in; some walk on, and the flaps must
      // stop them. Until they react they walk on: one who reaches the flaps first is judged there as it is.
      if (!granted && !retry && !w.reached && !this.chance(this.model.refusedWalkOn)) {
        this.clock.setTimeout(() => this.react(w), this.model.reactMs);
      }
    }
    this.checkRelease();
  }

  /** Bodies walk in at a seeded speed; the board reports them and this model moves them to the flaps. */
  walkIn(story: BodyStory, direction: Direction, speed = this.speed()): Walker {
    const m = this.model;
    const speedMmPerS = speed;
    const etaMs = (m.readerToFlapsMm / speedMmPerS) * 1000;
    const body = this.board.bodyEnters(direction, etaMs);
    const prev = this.last;
    const leader = prev && this.walking.has(prev) && prev.direction === direction ? prev : undefined;
    const w: Walker = { story, body, direction, speed: speedMmPerS, tapped: false, enteredAt: this.clock.now(), leader };
    this.walking.add(w);
    this.last = w;
    this.tally.bodies++;
    w.timer = this.clock.setTimeout(() => this.atFlaps(w), etaMs);
    return w;
  }

  summary(): FlapsSummary {
    return { ...this.tally, byStory: structuredClone(this.tally.byStory), grantMarginMs: this.grantMargins.figure(), stopMarginMs: this.stopMargins.figure() };
  }

  /** Add another lane's tally (the station's figure is over every lane). */
  static merge(flows: NormallyOpenFlow[]): FlapsSummary | undefined {
    if (flows.length === 0) return undefined;
    const g = new MarginHistogram();
    const s = new MarginHistogram();
    const out = flows[0].summary();
    for (const k of Object.keys(out.byStory) as StopStory[]) out.byStory[k] = { atFlaps: 0, stopped: 0 };
    out.bodies = out.unauthorisedAtFlaps = out.stopped = out.intruded = out.admittedAfterWaiting = 0;
    for (const f of flows) {
      const t = f.tally;
      out.bodies += t.bodies;
      out.unauthorisedAtFlaps += t.unauthorisedAtFlaps;
      out.stopped += t.stopped;
      out.intruded += t.intruded;
      out.admittedAfterWaiting += t.admittedAfterWaiting;
      for (const k of STOP_STORIES) {
        out.byStory[k].atFlaps += t.byStory[k].atFlaps;
        out.byStory[k].stopped += t.byStory[k].stopped;
      }
      g.merge(f.grantMargins);
      s.merge(f.stopMargins);
    }
    return { ...out, grantMarginMs: g.figure(), stopMarginMs: s.figure() };
  }

  // ---- bodies ----

  /**
   * A refused rider has taken the answer in: they turn back where they are, short of the flaps or standing at
   * them (knowing they are refused, they do not wait there for them to open). One already walking through
   * open flaps walks on, and the board reports it.
   */
  private react(w: Walker): void {
    if (!this.walking.has(w)) return;
    if (w.reached) {
      if (w.stoppedSince === undefined) return;
      this.clock.clearTimeout(w.timer);
      return this.turnBack(w);
    }
    // Not at the flaps yet (still walking to them, or waiting behind the body ahead there).
    this.clock.clearTimeout(w.timer);
    const l = w.leader;
    if (l?.queued) l.queued = l.queued.filter((q) => q !== w);
    const walkedMs = Math.min(this.clock.now() - w.enteredAt, (this.model.readerToFlapsMm / w.speed) * 1000);
    w.timer = this.clock.setTimeout(() => {
      this.board.bodyTurnsBack(w.body);
      this.done(w);
    }, this.model.turnMs + walkedMs);
  }

  private atFlaps(w: Walker): void {
    const now = this.clock.now();
    // Single file: the one ahead still stands at, or walks through, the flaps: wait behind it.
    const l = w.leader;
    if (l && this.walking.has(l) && l.reached) {
      (l.queued ??= []).push(w);
      return;
    }
    const keep = l?.clearedAt === undefined ? 0 : l.clearedAt + (Math.max(0, this.model.followGapMm - this.model.flapZoneMm) / w.speed) * 1000 - now;
    if (keep > 0) {
      w.timer = this.clock.setTimeout(() => this.atFlaps(w), keep);
      return;
    }
    w.reached = true;
    const tracked = this.board.bodies.get(w.body);
    const authorised = tracked?.authorised === true;
    const flaps: FlapPosition = this.board.bodyAtFlaps(w.body);
    if (authorised) {
      this.grantMargins.add(now - (tracked!.authorisedAt ?? now));
    } else if (this.board.mode === 'normal') {
      // The judge's rule: a body without authorisation is stopped only by flaps already shut when it arrives.
      const story = this.stopStory(w);
      this.tally.unauthorisedAtFlaps++;
      this.tally.byStory[story].atFlaps++;
      if (flaps === 'closed') {
        this.tally.stopped++;
        this.tally.byStory[story].stopped++;
        this.stopMargins.add(now - this.board.closedAt);
      }
    }
    this.onArrival?.({ story: w.story, body: w.body, direction: w.direction, atMs: now, flaps, authorised, stopped: !authorised && flaps === 'closed' });
    if (flaps === 'closed') {
      w.stoppedSince = now;
      w.timer = this.clock.setTimeout(() => this.turnBack(w), this.model.waitAtFlapsMs);
      return;
    }
    // Open (or opening, or a close the body interrupted): through the flap zone.
    w.timer = this.clock.setTimeout(() => this.cross(w), (this.model.flapZoneMm / w.speed) * 1000);
  }

  /** The flaps opened in front of a stopped body: an authorised one walks on; so does one that was never stopped for good. */
  private resume(w: Walker): void {
    if (w.stoppedSince === undefined) return;
    this.clock.clearTimeout(w.timer);
    if (this.board.bodies.get(w.body)?.authorised) this.tally.admittedAfterWaiting++;
    w.stoppedSince = undefined;
    this.board.bodyStepsIn(w.body);
    w.timer = this.clock.setTimeout(() => this.cross(w), (this.model.flapZoneMm / w.speed) * 1000);
  }

  private cross(w: Walker): void {
    w.clearedAt = this.clock.now();
    const way: BodyExit = this.board.bodyCrosses(w.body);
    if (way === 'intruded' && this.board.mode === 'normal') this.tally.intruded++;
    this.done(w);
  }

  private turnBack(w: Walker): void {
    w.stoppedSince = undefined;
    const backMs = this.model.turnMs + (this.model.readerToFlapsMm / w.speed) * 1000;
    w.timer = this.clock.setTimeout(() => {
      this.board.bodyTurnsBack(w.body);
      this.done(w);
    }, backMs);
  }

  private done(w: Walker): void {
    this.walking.delete(w);
    // Those waiting behind it walk up to the flaps, keeping their distance.
    for (const q of w.queued ?? []) this.atFlaps(q);
    w.queued = undefined;
    w.leader = undefined;
    if (this.current === w) this.current = undefined;
    this.checkRelease();
    this.flushClear();
  }

  private stopStory(w: Walker): StopStory {
    if (w.story !== 'rider') return w.story;
    return w.answer === 'refused' ? 'refused' : 'late-decision';
  }

  // ---- who may step in next ----

  /** Flaps resting open (or opening), nobody standing stopped in front of them, no body that does not tap still on its way to them. */
  private clear(): boolean {
    if (this.board.flaps === 'closed' || this.board.flaps === 'closing') return false;
    for (const w of this.walking) if (w.stoppedSince !== undefined || (w.story !== 'rider' && !w.reached)) return false;
    return true;
  }

  private clearWaiters: { fn: () => void; notBefore: number; also?: () => boolean }[] = [];
  private whenClear(fn: () => void, notBefore: number, also?: () => boolean): void {
    this.clearWaiters.push({ fn, notBefore, also });
    this.clock.setTimeout(() => this.flushClear(), Math.max(0, notBefore - this.clock.now()));
  }
  private flushClear(): void {
    const now = this.clock.now();
    const ready = this.clearWaiters.filter((x) => x.notBefore <= now && this.clear() && (x.also?.() ?? true));
    if (ready.length === 0) return;
    this.clearWaiters = this.clearWaiters.filter((x) => !ready.includes(x));
    for (const x of ready) x.fn();
  }

  private scheduleRelease(): void {
    const r = this.waitingRelease;
    if (!r) return;
    if (this.releaseTimer !== undefined) this.clock.clearTimeout(this.releaseTimer);
    this.releaseTimer = this.clock.setTimeout(() => {
      this.releaseTimer = undefined;
      this.checkRelease();
    }, Math.max(0, r.notBefore - this.clock.now()));
  }

  private checkRelease(): void {
    this.flushClear();
    const r = this.waitingRelease;
    if (!r || r.held || this.retryDue || this.clock.now() < r.notBefore || r.hooks.busy() || !this.clear()) return;
    // The rider ahead has tapped and been answered, and nothing blocks the lane: the next one steps in.
    if (this.current && (!this.current.tapped || this.current.answer === undefined)) return;
    this.waitingRelease = undefined;
    r.hooks.release();
  }

  // ---- draws ----

  /** How long until a follower may step in behind `w`: it is the headway distance in. */
  private headwayMs(w: Walker): number {
    return (this.uniform(this.model.headwayMm) / w.speed) * 1000;
  }

  private chance(p: number): boolean {
    return p > 0 && this.random() < p;
  }
  private uniform([lo, hi]: readonly [number, number]): number {
    return lo + this.random() * (hi - lo);
  }
  private speed(): number {
    const s = this.model.speedMmPerS;
    // Box-Muller: one normal draw from two uniforms.
    const z = Math.sqrt(-2 * Math.log(1 - this.random())) * Math.cos(2 * Math.PI * this.random());
    return Math.max(s.min, Math.min(s.max, s.mean + s.sd * z));
  }
}
