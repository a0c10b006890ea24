// The rollout-2022 run (rollout-2022.ts is its statement): the back office on a real HTTP server with the
// scenario's virtual clock, the schedules it publishes, riders registering and statuses changing over days
// through its HTTP API, riders riding at the lanes the composition hands over, and the judge: every answer
// on a lane's barrier wire against the scenario's own rule, and how long each registration took from
// submit to the first lane that admits the rider (sync latency).
//
// Ground truth for a back-office change starts once it has had time to reach every lane (`maxLagMs`: the
// next publish, then every lane's next poll); no rider shows the changed credential between the submit and
// then (the run counts any that would as `ambiguous`). Changes happen in the small hours (00:30-04:00),
// riders ride from 06:30; a rider refused at a gate registers there and comes back after `maxLagMs`.

import type { BarrierCommand } from '../../protocol/barrier.js';
import { credentialKey, credentialRef, type Credential, type CredentialKind, type Direction, type LaneDirection } from '../../protocol/credential.js';
import type { EnforcementStage } from '../../protocol/policy-schedule.js';
import { REASONS, reasonById, type ReasonCode } from '../../protocol/reasons.js';
import { Backoffice } from '../backoffice/server.js';
import { Random } from '../population.js';
import type { RiderPresenter } from '../station.js';
import type { VirtualBarrier } from '../virtual-barrier.js';
import type { VirtualClock } from '../virtual-clock.js';
import {
  ANNOUNCED, ANNOUNCED_AT, ENFORCES, INSTALLED, OPENS, SEED_ARTICLE, TAMPERED_FROM, TAMPERED_UNTIL,
  bj, bjDay, bjMidnight, expected, isWorkday, makeRolloutRiders, stageOf, type Expected, type RolloutRider, type Standing,
} from './rollout-2022.js';

export interface RolloutOptions {
  riders: number;
  seed: number;
  /** Virtual time the run covers (ms since the epoch): the whole of May 2022, Beijing time, by default. */
  fromMs: number;
  toMs: number;
  /** The back office publishes pending list changes this often (virtual ms). */
  publishEveryMs: number;
  /** Each lane polls the back office this often (virtual ms; the lanes' `lists.pollSeconds`). */
  pollEveryMs: number;
}

export const DEFAULT_ROLLOUT: RolloutOptions = { riders: 400, seed: 1, fromMs: bj(5, 1), toMs: bj(6, 1), publishEveryMs: 300_000, pollEveryMs: 300_000 };

/** A lane as the run sees it: its board's wire, its readers, and two read-outs used only for the latency figure. */
export interface RolloutLane {
  id: string;
  direction: LaneDirection;
  board: VirtualBarrier;
  entry?: RiderPresenter;
  exit?: RiderPresenter;
  /** Whether this lane's own decision core admits the credential at an entry now, as registered (reason ok). Never ground truth. */
  admits(c: Credential, nowMs: number): boolean;
  /** Called on each list version the lane swaps in. Returns a remover. */
  onListVersion(fn: () => void): () => void;
}

type Counts = { presentations: number; admitted: number; refused: number };
export interface RolloutDay extends Counts {
  day: string;
  /** Each kind's stage at the day's start (Beijing time). */
  stages: Record<CredentialKind, EnforcementStage>;
  advised: number;
  notEnforced: number;
  refusedNotRegistered: number;
  registrations: number;
  statusChanges: number;
  blocks: number;
}

export interface RolloutSummary extends Counts {
  scenario: 'rollout-2022';
  seed: number;
  riders: number;
  from: string;
  to: string;
  schedule: {
    article: { title: string; source: string; publishedAt: string };
    kinds: Record<CredentialKind, { advise: string; enforce: string; registerBy: string }>;
    /** Which dates come from the article and which the scenario assumes. */
    basis: string;
    announcedAt: string;
    tampered: { from: string; until: string };
  };
  falseAccepts: number;
  falseRejects: number;
  wrongReasons: number;
  unanswered: number;
  /** Presentations inside a change's way to the lanes (ground truth not settled): 0 by construction. */
  ambiguous: number;
  byReason: Record<string, number>;
  byStage: Record<EnforcementStage, Counts>;
  days: RolloutDay[];
  registrations: { submitted: number; atGate: number; afterAdvice: number; byKind: Record<string, number>; failed: number };
  /** Submit → the first lane whose decision core admits the rider (virtual seconds). */
  syncLatencyS: { p50: number; p99: number; max: number; n: number; publishEverySeconds: number; pollSeconds: number };
  /** The first few answers that disagreed with ground truth (privacy-safe refs). */
  mismatches: { at: string; lane: string; ref: string; direction: Direction; expected: Expected; observed: Observed | 'unanswered' }[];
  virtualDays: number;
  wallSeconds: number;
}

type Observed = { grant: boolean; reason?: ReasonCode; day?: string };
interface RiderState {
  r: RolloutRider;
  /** Ground truth: standings in effect from `atMs` (a change plus maxLagMs). */
  truth: { atMs: number; standing: Standing }[];
  /** [submit, effective) windows: the rider shows nothing in them. */
  settling: [number, number][];
  submitted: boolean;
  lastEntryMs?: number;
  inside: boolean;
  advised: boolean;
  registerTonight: boolean;
}
interface Trip {
  s: RiderState;
  direction: Direction;
}
interface LaneRun {
  lane: RolloutLane;
  queue: Trip[];
  busy: boolean;
  out?: { trip: Trip; expected: Expected; observed: Observed; seen: boolean; timer: number };
}

const TIMING = { presentMs: 600, walkMs: 1500, leaveMs: 800, responseTimeoutMs: 5000 };
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : 0;
};
const minute = (ms: number) => new Date(ms + 8 * 3600_000).toISOString().slice(0, 16).replace('T', ' ');

export class RolloutRun {
  private readonly rng: Random;
  private readonly riders: RiderState[];
  private readonly runs: LaneRun[] = [];
  private readonly inflight = new Set<Promise<unknown>>();
  /** Registrations on their way to the lanes: list key → submit time and credential. */
  private readonly pending = new Map<string, { atMs: number; credential: Credential }>();
  private readonly latencies: number[] = [];
  private readonly days = new Map<string, RolloutDay>();
  private readonly byStage: Record<EnforcementStage, Counts> = { 'not-enforced': z(), advise: z(), enforce: z() };
  private readonly byReason: Record<string, number> = {};
  private readonly regs = { submitted: 0, atGate: 0, afterAdvice: 0, byKind: {} as Record<string, number>, failed: 0 };
  private readonly mismatches: RolloutSummary['mismatches'] = [];
  private readonly totals = { presentations: 0, admitted: 0, refused: 0, falseAccepts: 0, falseRejects: 0, wrongReasons: 0, unanswered: 0, ambiguous: 0 };
  private failure: Error | undefined;
  private offs: (() => void)[] = [];
  private announced: Uint8Array | undefined;

  private constructor(
    private readonly clock: VirtualClock,
    private readonly o: RolloutOptions,
    readonly bo: Backoffice,
    readonly url: string,
    /** The schedule the lanes are provisioned with (seq 1). */
    readonly installed: Uint8Array,
  ) {
    this.rng = new Random(o.seed);
    this.riders = makeRolloutRiders(o.riders, this.rng).map((r) => ({ r, truth: [{ atMs: 0, standing: 'unregistered' }], settling: [], submitted: false, inside: false, advised: false, registerTonight: false }));
  }

  /** The back office on loopback, on the scenario's clock, with the installed schedule published (seq 1). */
  static async open(clock: VirtualClock, opts: Partial<RolloutOptions> = {}): Promise<RolloutRun> {
    const o = { ...DEFAULT_ROLLOUT, ...opts };
    if (!(o.fromMs < o.toMs)) throw new Error('rollout: from must be before to');
    // Changes in the small hours (by 04:00) must have reached every lane before the first rider (06:30).
    if (o.publishEveryMs + o.pollEveryMs > 2.5 * 3600_000) throw new Error('rollout: publish interval + poll interval must be at most 2.5 hours');
    const bo = new Backoffice({ db: ':memory:', now: () => clock.now() });
    const { url } = await bo.listen(0);
    const r = await post(url, '/v1/policy-schedule', { kinds: INSTALLED });
    if (r.status !== 201) throw new Error(`rollout: installing the schedule: HTTP ${r.status}`);
    const run = new RolloutRun(clock, o, bo, url, new Uint8Array(bo.policySchedule()!));
    // Starting after the announcement: it is published already; the lanes take it at their first poll.
    if (o.fromMs >= ANNOUNCED_AT) await run.announce();
    return run;
  }

  /** How long a back-office change takes at most to reach every lane: the next publish, then each lane's next poll. */
  get maxLagMs(): number {
    return this.o.publishEveryMs + this.o.pollEveryMs + 1000;
  }

  attach(lanes: RolloutLane[]): void {
    for (const lane of lanes) {
      const run: LaneRun = { lane, queue: [], busy: false };
      this.runs.push(run);
      lane.board.onCommand((c) => this.onCommand(run, c));
      if (lane.direction !== 'exit') this.offs.push(lane.onListVersion(() => this.measure(lane)));
    }
  }

  /** Play the days; `settle` lets the lanes finish what the last step started (their sync rounds). */
  async run(settle: () => Promise<void>): Promise<RolloutSummary> {
    const { clock, o } = this;
    const wall = performance.now();
    // The back office's own job: publish pending changes every publishEveryMs.
    const publish = () => {
      this.bo.publish();
      clock.setTimeout(publish, o.publishEveryMs);
    };
    clock.setTimeout(publish, o.publishEveryMs);
    const at = (t: number, fn: () => void) => t >= clock.now() && clock.setTimeout(fn, t - clock.now());
    if (!this.announced) at(ANNOUNCED_AT, () => this.hold(this.announce()));
    at(TAMPERED_FROM, () => this.bo.setPolicyScheduleDocument(tamper(this.bo.policySchedule()!)));
    at(TAMPERED_UNTIL, () => this.announced && this.bo.setPolicyScheduleDocument(this.announced));
    for (let d = bjMidnight(o.fromMs); d < o.toMs; d += 86_400_000) at(Math.max(d, clock.now()), () => this.planDay(d));
    const quiet = async () => {
      await settle();
      while (this.inflight.size > 0) {
        await Promise.allSettled([...this.inflight]);
        await settle();
      }
    };
    await quiet();
    while (!this.failure) {
      const next = clock.nextAt();
      if (next === undefined || next >= o.toMs) break;
      clock.step();
      await quiet();
    }
    if (this.failure) throw this.failure;
    return this.summary((performance.now() - wall) / 1000);
  }

  async close(): Promise<void> {
    for (const off of this.offs.splice(0)) off();
    await Promise.allSettled([...this.inflight]);
    await this.bo.close();
  }

  // --- the back office, over its HTTP API -------------------------------------------------------

  private hold(p: Promise<unknown>): void {
    const q = p.catch((e: Error) => (this.failure ??= e)).finally(() => this.inflight.delete(q));
    this.inflight.add(q);
  }

  private async announce(): Promise<void> {
    const r = await post(this.url, '/v1/policy-schedule', { kinds: ANNOUNCED });
    if (r.status !== 201) throw new Error(`rollout: publishing the announced schedule: HTTP ${r.status}`);
    this.announced = new Uint8Array(this.bo.policySchedule()!);
  }

  /** A change reaches the lanes within maxLagMs; it is ground truth from then, and the rider shows nothing before. */
  private change(s: RiderState, standing: Standing): void {
    const now = this.clock.now();
    s.truth.push({ atMs: now + this.maxLagMs, standing });
    s.settling.push([now, now + this.maxLagMs]);
  }

  private register(s: RiderState, how: 'ahead' | 'at-gate' | 'after-advice'): void {
    if (s.submitted) return;
    s.submitted = true;
    const c = s.r.credential;
    const now = this.clock.now();
    this.change(s, 'green');
    this.day(now).registrations++;
    this.regs.submitted++;
    this.regs.byKind[c.kind] = (this.regs.byKind[c.kind] ?? 0) + 1;
    if (how === 'at-gate') this.regs.atGate++;
    if (how === 'after-advice') this.regs.afterAdvice++;
    this.pending.set(credentialKey(c), { atMs: now, credential: c });
    const rider = { name: `乘客${s.r.id}`, phone: `138${String(s.r.id).padStart(8, '0')}` };
    const body =
      c.kind === 'qr' ? { path: '/v1/qr-links', json: { issuer: c.issuer, account: c.account } }
      : c.kind === 'ticket' ? { path: '/v1/registrations', json: { credentialType: 'commemorative-ticket', number: c.ticketNumber, rider, consent: true } }
      : { path: '/v1/registrations', json: { credentialType: c.kind === 'card' ? 'yikatong-card' : 'phone-nfc-card', number: c.cardNumber, rider, consent: true } };
    this.hold(post(this.url, body.path, body.json).then((r) => {
      if (r.status !== 201) {
        this.regs.failed++;
        throw new Error(`rollout: registering rider ${s.r.id} (${c.kind}): HTTP ${r.status} ${JSON.stringify(r.body)}`);
      }
    }));
  }

  private feed(s: RiderState, standing: 'yellow' | 'red' | 'green' | 'blocked'): void {
    this.change(s, standing);
    const key = credentialKey(s.r.credential);
    const d = this.day(this.clock.now());
    if (standing === 'blocked') d.blocks++;
    else d.statusChanges++;
    const [path, json] = standing === 'blocked' ? ['/v1/blocks', { key, blocked: true }] : ['/v1/status', { key, status: standing }];
    this.hold(post(this.url, path, json).then((r) => {
      if (r.status !== 200) throw new Error(`rollout: ${path} for rider ${s.r.id}: HTTP ${r.status}`);
    }));
  }

  // --- days, trips and lanes ---------------------------------------------------------------------

  /** The small hours: registrations, status changes, lost cards; then the day's trips. */
  private planDay(day: number): void {
    const { clock, rng } = this;
    // At these instants, or now when the run started later in the day.
    const small = () => Math.max(clock.now(), day + 30 * 60_000 + rng.int(210 * 60_000));
    for (const s of this.riders) {
      const r = s.r;
      // (A run that starts later registers, on its first night, those whose night came before it.)
      if ((r.registerDay !== undefined && r.registerDay <= day && !s.submitted) || s.registerTonight) {
        const how = s.registerTonight ? 'after-advice' : 'ahead';
        s.registerTonight = false;
        clock.setTimeout(() => this.register(s, how), small() - clock.now());
      }
      if (r.changeDay === day && s.submitted) clock.setTimeout(() => this.feed(s, r.plan === 'lost-card' ? 'blocked' : r.status), small() - clock.now());
      if (r.plan === 'status-change' && s.submitted && r.changeDay !== undefined && r.changeDay + r.changeDays * 86_400_000 === day) clock.setTimeout(() => this.feed(s, 'green'), small() - clock.now());
      const p = isWorkday(day) ? r.ridesPerWorkday : r.ridesPerWorkday / 2;
      const entryAt = day + 390 * 60_000 + rng.int(240 * 60) * 1000;
      if (rng.chance(p) && entryAt >= clock.now()) clock.setTimeout(() => this.arrive({ s, direction: 'entry' }), entryAt - clock.now());
    }
  }

  private arrive(t: Trip): void {
    const serving = this.runs.filter((r) => r.lane.direction === 'bidirectional' || r.lane.direction === t.direction);
    if (serving.length === 0) throw new Error(`rollout: no lane serves ${t.direction}`);
    const load = (r: LaneRun) => r.queue.length + (r.busy ? 1 : 0);
    let best = serving[0];
    for (const r of serving) if (load(r) < load(best) || (load(r) === load(best) && this.rng.chance(0.5))) best = r;
    best.queue.push(t);
    this.next(best);
  }

  private next(run: LaneRun): void {
    if (run.busy) return;
    const t = run.queue.shift();
    if (!t) return;
    run.busy = true;
    this.clock.setTimeout(() => this.present(run, t), TIMING.presentMs);
  }

  private standing(s: RiderState, now: number): Standing {
    let st: Standing = 'unregistered';
    for (const e of s.truth) if (e.atMs <= now) st = e.standing;
    return st;
  }

  private present(run: LaneRun, t: Trip): void {
    const now = this.clock.now();
    const s = t.s;
    if (s.settling.some(([a, b]) => now >= a && now < b)) this.totals.ambiguous++;
    const exp = expected(this.standing(s, now), s.r.credential.kind, t.direction, now, s.lastEntryMs);
    const timer = this.clock.setTimeout(() => this.answer(run, 'unanswered'), TIMING.responseTimeoutMs);
    run.out = { trip: t, expected: exp, observed: { grant: false }, seen: false, timer };
    const presenter = t.direction === 'entry' ? run.lane.entry : run.lane.exit;
    if (!presenter) throw new Error(`rollout: lane ${run.lane.id} has no ${t.direction} reader`);
    presenter.present(s.r.credential);
  }

  /** OPEN, then DISPLAY (and DISPLAY_DATE), then INDICATE: the answer is whole at the INDICATE. */
  private onCommand(run: LaneRun, c: BarrierCommand): void {
    const out = run.out;
    if (!out) return;
    if (c.type === 'OPEN' && c.passages > 0) {
      out.observed.grant = true;
      out.seen = true;
    } else if (c.type === 'DISPLAY' && c.textId !== 0) {
      const reason = reasonById(c.textId);
      if (reason && (out.observed.grant || !REASONS[reason].grant)) {
        out.observed.reason = reason;
        out.seen = true;
      }
    } else if (c.type === 'DISPLAY_DATE' && out.seen) {
      out.observed.day = c.day;
    } else if (c.type === 'INDICATE' && out.seen) {
      this.answer(run, out.observed);
    }
  }

  private answer(run: LaneRun, observed: Observed | 'unanswered'): void {
    const out = run.out;
    if (!out) return;
    run.out = undefined;
    this.clock.clearTimeout(out.timer);
    const now = this.clock.now();
    const { trip: t, expected: exp } = out;
    const s = t.s;
    const verdict =
      observed === 'unanswered' ? 'unanswered'
      : observed.grant && !exp.grant ? 'falseAccepts'
      : !observed.grant && exp.grant ? 'falseRejects'
      : observed.reason !== exp.reason || observed.day !== exp.day ? 'wrongReasons'
      : undefined;
    if (verdict) {
      this.totals[verdict]++;
      if (this.mismatches.length < 20) this.mismatches.push({ at: minute(now), lane: run.lane.id, ref: credentialRef(s.r.credential), direction: t.direction, expected: exp, observed });
    }
    const granted = observed !== 'unanswered' && observed.grant;
    if (observed !== 'unanswered') this.count(now, s.r.credential.kind, observed);
    if (granted && t.direction === 'entry') {
      s.lastEntryMs = now;
      s.inside = true;
      if (observed.reason === 'advise-register' && !s.advised) {
        s.advised = true;
        if (s.r.plan === 'advised' && !s.submitted) s.registerTonight = true;
      }
      // Home 8-10 hours later.
      this.clock.setTimeout(() => this.arrive({ s, direction: 'exit' }), 8 * 3600_000 + this.rng.int(7200) * 1000);
    } else if (granted) {
      s.inside = false;
      s.lastEntryMs = undefined;
    } else if (observed !== 'unanswered' && observed.reason === 'not-registered' && (s.r.plan === 'at-gate' || s.r.plan === 'advised') && !s.submitted) {
      // Registers there on the phone, and comes back once it has reached the lanes.
      this.clock.setTimeout(() => this.register(s, 'at-gate'), 60_000);
      this.clock.setTimeout(() => this.arrive({ s, direction: 'entry' }), 60_000 + this.maxLagMs + 4 * 60_000);
    }
    // A granted rider walks through; a refused one steps aside. Then the next one steps up.
    this.clock.setTimeout(() => {
      if (granted) run.lane.board.walkThrough(t.direction);
      run.busy = false;
      this.next(run);
    }, granted ? TIMING.walkMs : TIMING.leaveMs);
  }

  // --- figures -----------------------------------------------------------------------------------

  private measure(lane: RolloutLane): void {
    const now = this.clock.now();
    for (const [key, p] of this.pending) {
      if (!lane.admits(p.credential, now)) continue;
      this.latencies.push(now - p.atMs);
      this.pending.delete(key);
    }
  }

  private day(now: number): RolloutDay {
    const key = bjDay(now);
    let d = this.days.get(key);
    if (!d) {
      const start = bjMidnight(now);
      const stages = Object.fromEntries((['card', 'phone-nfc', 'ticket', 'qr'] as const).map((k) => [k, stageOf(k, start)])) as Record<CredentialKind, EnforcementStage>;
      d = { day: key, stages, ...z(), advised: 0, notEnforced: 0, refusedNotRegistered: 0, registrations: 0, statusChanges: 0, blocks: 0 };
      this.days.set(key, d);
    }
    return d;
  }

  private count(now: number, kind: CredentialKind, o: Observed): void {
    const d = this.day(now);
    const st = this.byStage[stageOf(kind, now)];
    for (const c of [d, st, this.totals]) {
      c.presentations++;
      if (o.grant) c.admitted++;
      else c.refused++;
    }
    const reason = o.reason ?? (o.grant ? 'ok' : 'unknown');
    this.byReason[reason] = (this.byReason[reason] ?? 0) + 1;
    if (reason === 'advise-register') d.advised++;
    if (reason === 'not-enforced') d.notEnforced++;
    if (reason === 'not-registered') d.refusedNotRegistered++;
  }

  private summary(wallSeconds: number): RolloutSummary {
    const o = this.o;
    const kinds = Object.fromEntries((['card', 'phone-nfc', 'ticket', 'qr'] as const).map((k) => [k, { advise: minute(OPENS[k]), enforce: minute(ENFORCES[k]), registerBy: bjDay(ENFORCES[k] - 1) }])) as RolloutSummary['schedule']['kinds'];
    return {
      scenario: 'rollout-2022',
      seed: o.seed,
      riders: o.riders,
      from: minute(o.fromMs),
      to: minute(o.toMs),
      schedule: {
        article: { title: SEED_ARTICLE.title, source: SEED_ARTICLE.source, publishedAt: minute(SEED_ARTICLE.publishedAtMs) },
        kinds,
        basis: 'advise dates from the seed article (QR 23 May, tickets 19 May; cards and phone NFC through the same mini program: 19 May); enforcement dates are the scenario\'s assumption (a week after each opening): the article gives none',
        announcedAt: minute(ANNOUNCED_AT),
        tampered: { from: minute(TAMPERED_FROM), until: minute(TAMPERED_UNTIL) },
      },
      ...this.totals,
      byReason: { ...this.byReason },
      byStage: this.byStage,
      days: [...this.days.values()].sort((a, b) => a.day.localeCompare(b.day)),
      registrations: { ...this.regs, byKind: { ...this.regs.byKind } },
      syncLatencyS: {
        p50: pct(this.latencies, 50) / 1000, p99: pct(this.latencies, 99) / 1000, max: Math.max(0, ...this.latencies) / 1000, n: this.latencies.length,
        publishEverySeconds: o.publishEveryMs / 1000, pollSeconds: o.pollEveryMs / 1000,
      },
      mismatches: this.mismatches,
      virtualDays: Math.round(((Math.min(this.clock.now(), o.toMs) - o.fromMs) / 86_400_000) * 10) / 10,
      wallSeconds: Math.round(wallSeconds * 100) / 100,
    };
  }
}

const z = (): Counts => ({ presentations: 0, admitted: 0, refused: 0 });

async function post(url: string, path: string, json: unknown): Promise<{ status: number; body: unknown }> {
  const r = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(json) });
  return { status: r.status, body: await r.json().catch(() => undefined) };
}

/** The announced schedule with its payload changed (QR enforced at once) and the signature left as it was. */
function tamper(doc: Uint8Array): Uint8Array {
  const env = JSON.parse(Buffer.from(doc).toString('utf8'));
  const p = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8'));
  p.seq += 1;
  p.kinds.qr = { adviseFromMs: 0, enforceFromMs: 0 };
  return new Uint8Array(Buffer.from(JSON.stringify({ ...env, payload: Buffer.from(JSON.stringify(p)).toString('base64') })));
}
