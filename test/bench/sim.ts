// The simulator's cost as its work grows: `gate sim` (default wires: typed barrier, simulated reader,
// signed QR codes, in-memory back office) with 10 k, 40 k, 160 k and 1 M riders through 8 and through 64
// lanes, each run in a fresh process (test/bench/sim-child.ts): wall time, wall time per rider beside the
// same lanes' 10 k run (flat is the target), peak RSS beside the 10 k run's (a day of 1 M riders through 64
// lanes under 1 GB). Then a line of 25 stations of 20 lanes (500 lanes) on one clock and one back office,
// beside one station of 20 lanes with the same riders per lane.
// The live heap (after a full collection, 4 times a run) is what the run holds; RSS adds what V8 has not
// collected yet, which grows with the allocation rate rather than with what is held. At the default rate
// (30 riders a lane a minute, a little more than the lanes pass) the queues, and the riders held in them,
// grow through a long day: that is the station, not the simulator's bookkeeping.
// A control: 8 lanes at 20 riders a lane a minute (what they pass), 160 k riders beside 10 k: the live
// heap stays flat when the queues do.
// Bounded: SIM_BENCH_MAX_RIDERS (default 1,000,000) leaves out larger runs; each run is killed after
// SIM_BENCH_RUN_MINUTES (default 90); SIM_BENCH_PARTS (default grid,line,control) picks parts. CPU time is
// noted beside wall time: the machine may be shared.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { BenchReport } from './report.js';

const root = new URL('../../..', import.meta.url).pathname;
const MAX_RIDERS = Number(process.env.SIM_BENCH_MAX_RIDERS ?? 1_000_000);
const RUN_MINUTES = Number(process.env.SIM_BENCH_RUN_MINUTES ?? 90);
const RIDERS = [10_000, 40_000, 160_000, 1_000_000];
const LINE = { stations: 25, lanes: 20, passengers: 100_000 };
const PARTS = new Set((process.env.SIM_BENCH_PARTS ?? 'grid,line,control').split(','));

interface Run {
  summary: { passengers: number; presentations: number; falseAccepts: number; falseRejects: number; unanswered: number; wrongReasons: number; virtualSeconds: number; lanes: number };
  wallMs: number;
  cpuMs: number;
  maxRssMB: number;
  /** Heap in use after a full collection, at each quarter of the riders' answers. */
  liveHeapMB: number[];
}

async function simRun(o: { lanes: number; passengers: number; seed: number; rate?: number; stations?: number }): Promise<Run> {
  const child = spawn(process.execPath, ['--expose-gc', join(root, 'dist/test/bench/sim-child.js')], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SIM_CHILD: JSON.stringify(o) } });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_MINUTES * 60_000);
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`sim run ${JSON.stringify(o)} exited with ${code}${code === null ? ` (killed after ${RUN_MINUTES} min)` : ''}`);
  const run = JSON.parse(out.trim().split('\n').at(-1)!) as Run;
  const s = run.summary;
  // A figure from a run that judged wrong would measure a broken simulator.
  if (s.falseAccepts || s.falseRejects || s.unanswered || s.wrongReasons) throw new Error(`sim run ${JSON.stringify(o)} judged wrong: ${JSON.stringify(s)}`);
  return run;
}

const perRiderUs = (r: Run) => (r.wallMs * 1000) / r.summary.passengers;
const cpuPerRiderUs = (r: Run) => (r.cpuMs * 1000) / r.summary.passengers;
const liveMB = (r: Run) => Math.max(...r.liveHeapMB);
const note = (r: Run) => `CPU ${(r.cpuMs / 1000).toFixed(1)} s; ${r.summary.presentations} presentations in ${(r.summary.virtualSeconds / 3600).toFixed(1)} h of station time; 0 wrong answers`;

export async function run(r: BenchReport): Promise<void> {
  if (PARTS.has('grid')) await grid(r);
  if (PARTS.has('line')) await lineOfStations(r);
  if (PARTS.has('control')) await control(r);
}

async function grid(r: BenchReport): Promise<void> {
  for (const lanes of [8, 64]) {
    let base: Run | undefined;
    for (const passengers of RIDERS.filter((n) => n <= MAX_RIDERS)) {
      const x = await simRun({ lanes, passengers, seed: 1 });
      base ??= x;
      const what = `${lanes} lanes, ${passengers.toLocaleString('en')} riders`;
      const peer = `${lanes} lanes, ${base.summary.passengers.toLocaleString('en')} riders`;
      r.row({ section: 'sim', metric: `${what}: wall time`, value: x.wallMs / 1000, unit: 's', note: note(x) });
      r.row({ section: 'sim', metric: `${what}: wall time per rider`, value: perRiderUs(x), unit: 'µs', peer: { name: peer, value: perRiderUs(base) }, target: 'flat (ratio ≈ 1)' });
      r.row({ section: 'sim', metric: `${what}: CPU time per rider`, value: cpuPerRiderUs(x), unit: 'µs', peer: { name: peer, value: cpuPerRiderUs(base) } });
      r.row({ section: 'sim', metric: `${what}: peak RSS`, value: x.maxRssMB, unit: 'MB', peer: { name: peer, value: base.maxRssMB }, ...(lanes === 64 && passengers >= 1_000_000 ? { target: '< 1024 MB' } : {}) });
      r.row({ section: 'sim', metric: `${what}: live heap after a full GC, most of 4 samples`, value: liveMB(x), unit: 'MB', peer: { name: peer, value: liveMB(base) }, target: 'bounded by the riders in the station', note: x.liveHeapMB.map((m) => m.toFixed(0)).join(' / ') });
    }
  }
}

async function lineOfStations(r: BenchReport): Promise<void> {
  const perLane = LINE.passengers / (LINE.stations * LINE.lanes);
  const line = await simRun({ ...LINE, seed: 1 });
  const one = await simRun({ lanes: LINE.lanes, passengers: perLane * LINE.lanes, seed: 1 });
  const what = `line of ${LINE.stations} stations × ${LINE.lanes} lanes (${line.summary.lanes} lanes), ${LINE.passengers.toLocaleString('en')} riders`;
  const peer = `one station of ${LINE.lanes} lanes, ${(perLane * LINE.lanes).toLocaleString('en')} riders`;
  r.row({ section: 'sim', metric: `${what}: wall time`, value: line.wallMs / 1000, unit: 's', note: note(line) });
  r.row({ section: 'sim', metric: `${what}: wall time per rider`, value: perRiderUs(line), unit: 'µs', peer: { name: peer, value: perRiderUs(one) } });
  r.row({ section: 'sim', metric: `${what}: CPU time per rider`, value: cpuPerRiderUs(line), unit: 'µs', peer: { name: peer, value: cpuPerRiderUs(one) } });
  r.row({ section: 'sim', metric: `${what}: peak RSS`, value: line.maxRssMB, unit: 'MB', peer: { name: peer, value: one.maxRssMB } });
  r.row({ section: 'sim', metric: `${what}: live heap after a full GC, most of 4 samples`, value: liveMB(line), unit: 'MB', peer: { name: peer, value: liveMB(one) }, note: line.liveHeapMB.map((m) => m.toFixed(0)).join(' / ') });
}

async function control(r: BenchReport): Promise<void> {
  const rate = 20;
  const small = await simRun({ lanes: 8, passengers: 10_000, seed: 1, rate });
  const big = await simRun({ lanes: 8, passengers: 160_000, seed: 1, rate });
  const what = `8 lanes at ${rate} riders a lane a minute, 160,000 riders`;
  const peer = `same, 10,000 riders`;
  r.row({ section: 'sim', metric: `${what}: live heap after a full GC, most of 4 samples`, value: liveMB(big), unit: 'MB', peer: { name: peer, value: liveMB(small) }, target: 'flat (ratio ≈ 1)', note: big.liveHeapMB.map((m) => m.toFixed(0)).join(' / ') });
  r.row({ section: 'sim', metric: `${what}: peak RSS`, value: big.maxRssMB, unit: 'MB', peer: { name: peer, value: small.maxRssMB }, note: note(big) });
  r.row({ section: 'sim', metric: `${what}: CPU time per rider`, value: cpuPerRiderUs(big), unit: 'µs', peer: { name: peer, value: cpuPerRiderUs(small) } });
}
