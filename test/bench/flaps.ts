// Normally-open vs normally-closed flaps, side by side, on the same rider streams in the simulator (`gate
// sim` with `--flaps`): riders per lane per minute while the lanes queue, false accepts, every body that
// reached the flaps without authorisation and whether they were already shut (no tap, refused, second body,
// wrong way, late decision), and the decision's margin before the rider reaches the flaps (p1/p50).
//
// Virtual time: the figures are the mechanics model's (simulator/lane-mechanics.ts, the reference lane of
// firmware/lane/README.md), with the real lane firmware deciding; decisions take no virtual time here.
// Throughput is counted between the 5th and 95th percentile of answer times, while arrivals (RATE per lane
// per minute, above either regime's capacity) keep every lane queued; the late riders (re-entries two
// minutes on, registrations) fall outside it. Last, the rush-hour figure taken apart: the same lanes with
// the bodies the flaps stop removed step by step (green riders only; plus tailgaters; plus torn taps and refusals).

import { simulateStation } from '../../firmware/composition/simulated-station.js';
import { DEFAULT_MIX, type PopulationMix } from '../../simulator/population.js';
import type { PresentationResult, StationSummary } from '../../simulator/station.js';
import { NO_FRAUD, STOP_STORIES, type FraudMix } from '../../simulator/lane-mechanics.js';
import { summary, type BenchReport } from './report.js';

const LANES = 4;
const PASSENGERS = Number(process.env.FLAPS_BENCH_PASSENGERS ?? 2000);
const RATE = 120;
const SEEDS = [1, 2, 3];

/** Morning commuters: nearly all registered green, a few torn taps and refusals. */
export const RUSH_HOUR_MIX: PopulationMix = {
  ...DEFAULT_MIX,
  stories: [
    ['green', 94],
    ['torn-tap', 3],
    ['unregistered', 1],
    ['yellow', 0.5],
    ['red', 0.5],
    ['blocked', 0.5],
    ['enters-twice', 0.5],
  ],
};

type Regime = 'normally-open' | 'normally-closed';

interface Run {
  perLaneMin: number;
  summary: StationSummary;
}

async function once(flaps: Regime, mix: PopulationMix, seed: number, fraud?: FraudMix): Promise<Run> {
  const answers: number[] = [];
  const admittedAt: number[] = [];
  const onResult = (r: PresentationResult) => {
    answers.push(r.atMs);
    if (r.observed !== 'unanswered' && r.observed.grant) admittedAt.push(r.atMs);
  };
  const { summary: s } = await simulateStation({ lanes: LANES, passengers: PASSENGERS, seed, rate: RATE, flaps, mix, onResult, ...(fraud ? { fraud } : {}) });
  answers.sort((a, b) => a - b);
  const from = answers[Math.floor(answers.length * 0.05)];
  const to = answers[Math.floor(answers.length * 0.95)];
  const admitted = admittedAt.filter((t) => t >= from && t <= to).length;
  return { perLaneMin: admitted / LANES / ((to - from) / 60_000), summary: s };
}

export async function run(r: BenchReport): Promise<void> {
  for (const [stream, mix] of [
    ['rush-hour stream', RUSH_HOUR_MIX],
    ['default stream', DEFAULT_MIX],
  ] as const) {
    const open: Run[] = [];
    const closed: Run[] = [];
    for (const seed of SEEDS) {
      open.push(await once('normally-open', mix, seed));
      closed.push(await once('normally-closed', mix, seed));
    }
    const o = summary(open.map((x) => x.perLaneMin));
    const c = summary(closed.map((x) => x.perLaneMin));
    r.row({
      section: 'flaps',
      metric: `riders admitted per lane per minute, normally open (${stream}, ${LANES} lanes queued, ${PASSENGERS} riders)`,
      value: o.median,
      spread: o.spread,
      unit: '/min',
      peer: { name: 'normally closed, same riders', value: c.median, spread: c.spread },
      target: stream === 'rush-hour stream' ? '>= 50' : undefined,
      note: `whole runs incl. the late riders: ${open.map((x) => x.summary.throughputPerLanePerMin).join(', ')} vs ${closed.map((x) => x.summary.throughputPerLanePerMin).join(', ')}`,
    });
    const fa = (rs: Run[]) => rs.reduce((n, x) => n + x.summary.falseAccepts + x.summary.falseRejects + x.summary.unanswered + x.summary.wrongReasons, 0);
    r.row({ section: 'flaps', metric: `false accepts + false rejects + unanswered + wrong reasons, normally open (${stream}, ${SEEDS.length} runs)`, value: fa(open), unit: '', peer: { name: 'normally closed', value: fa(closed) }, target: '0' });
    const f = open.map((x) => x.summary.flaps!);
    const sum = (k: 'unauthorisedAtFlaps' | 'stopped' | 'intruded' | 'admittedAfterWaiting') => f.reduce((n, x) => n + x[k], 0);
    const stories = STOP_STORIES.map((k) => `${k} ${f.reduce((n, x) => n + x.byStory[k].stopped, 0)}/${f.reduce((n, x) => n + x.byStory[k].atFlaps, 0)}`).join(', ');
    r.row({
      section: 'flaps',
      metric: `bodies at the flaps without authorisation that met them open or closing, normally open (${stream})`,
      value: sum('unauthorisedAtFlaps') - sum('stopped'),
      unit: 'bodies',
      target: '0',
      note: `shut in time / reached unauthorised: ${stories}; crossed ${sum('intruded')}; ${sum('admittedAfterWaiting')} riders admitted after waiting at shut flaps`,
    });
    const p = (k: 'grantMarginMs' | 'stopMarginMs', q: 'p1' | 'p50') => summary(f.map((x) => x[k][q]));
    for (const [k, what] of [
      ['grantMarginMs', 'AUTHORISE before the rider reaches the flaps'],
      ['stopMarginMs', 'flaps shut before an unauthorised body reaches them'],
    ] as const) {
      const p1 = p(k, 'p1');
      const p50 = p(k, 'p50');
      r.row({ section: 'flaps', metric: `decision margin, ${what}, p1 (${stream})`, value: p1.median, spread: p1.spread, unit: 'ms', note: `p50 ${p50.median} ms; n ${f.reduce((n, x) => n + x[k].n, 0)}` });
    }
  }
  // Where the rush-hour figure stops: the same lanes and walking model with the stopped bodies taken out
  // step by step. Each body the flaps stop costs its lane the walk to them, the wait, the turn and the walk
  // back, single file; decisions take no virtual time here, so only those bodies move the figure.
  const steps: [string, PopulationMix, FraudMix][] = [
    ['green riders only, nobody else', { ...RUSH_HOUR_MIX, tailgateRate: 0, stories: [['green', 100]] }, NO_FRAUD],
    ['plus 1% tailgaters', { ...RUSH_HOUR_MIX, stories: [['green', 100]] }, NO_FRAUD],
    ['plus the torn taps and refusals (the rush-hour riders, no walk-ins)', RUSH_HOUR_MIX, NO_FRAUD],
  ];
  for (const [what, mix, fraud] of steps) {
    const runs: number[] = [];
    for (const seed of SEEDS) runs.push((await once('normally-open', mix, seed, fraud)).perLaneMin);
    const o = summary(runs);
    r.row({ section: 'flaps', metric: `riders admitted per lane per minute, normally open, ${what}`, value: o.median, spread: o.spread, unit: '/min', note: 'the rush-hour row adds 1% walking in without a tap and 1% the wrong way' });
  }
}
