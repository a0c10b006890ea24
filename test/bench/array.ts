// Lanes per box: a gate array of 16 lanes in one `gate run` process (started as the unit starts it) with a
// 50 M-entry list, each lane's barrier board on a real pty (the byte-level virtual board, here in the bench
// process) and a file journal, riders tapping 60 a minute at every lane through the bench console. Figures:
// p99 tap → OPEN (from the line written on the console to the OPEN frame executed by the lane's board),
// the process's RSS and its CPU share. Peers from the same run: one lane alone in the same process (latency,
// CPU), and for memory 16 separate single-lane processes — measured for real at a 1 M list, and at 50 M
// computed as 16 × one single-lane process measured with the same list (16 × 50 M would need ~12 GB).
// The 16-lane and one-lane runs alternate (A B, B A) ARRAY_BENCH_RUNS times (2): medians with min–max.
// ARRAY_BENCH_LIST (entries, 50 M), ARRAY_BENCH_LANES (16), ARRAY_BENCH_SECONDS (60) change the run.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../../firmware/lists/stored-lists.js';
import { BarrierBoard } from '../../simulator/barrier-board.js';
import { ptyPair, type PtyPair } from '../support/pty.js';
import { build, cardKey, statusOf } from './lists.js';
import { interleaved, percentile, summary, type BenchReport } from './report.js';
import { freePort } from '../support/free-port.js';

const S = 'array';
const root = new URL('../../..', import.meta.url).pathname;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
/** Clock ticks per second for /proc/<pid>/stat (Linux's USER_HZ, 100 on every architecture Node runs on). */
const HZ = 100;


/** RSS and peak RSS (VmHWM) of a process, MB. */
function memoryOf(pid: number): { rssMB: number; peakMB: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? NaN);
  return { rssMB: kb('VmRSS') / 1024, peakMB: kb('VmHWM') / 1024 };
}

/** CPU seconds (user + system, all threads) a process has used. */
function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / HZ;
}

/** `gate run` as the unit starts it (firmware/deploy/gate.service), waiting (bounded) for /readyz 200. */
async function startGate(config: object, dir: string, name: string, opts: { stdin?: boolean; readyWithinMs?: number } = {}): Promise<{ child: ChildProcess; port: number; readyMs: number; stderr: () => string }> {
  const port = await freePort();
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ ...config, health: { port }, log: { level: 'warn' } }));
  const t0 = performance.now();
  const args = ['--single-threaded-gc', join(root, 'dist/firmware/cli/gate.js'), 'run', '--config', file, ...(opts.stdin ? ['--stdin'] : [])];
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'ignore', 'pipe'], env: { ...process.env, NOTIFY_SOCKET: '' } });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const limit = opts.readyWithinMs ?? 300_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gate run (${name}) exited with ${child.exitCode}: ${stderr}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (performance.now() - t0 > limit) {
      await stopGate(child);
      throw new Error(`gate run (${name}) not ready within ${limit / 1000} s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, port, readyMs: performance.now() - t0, stderr: () => stderr };
}

async function stopGate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await gone;
  clearTimeout(t);
}

/** Riders' cards: green entries of the bench list (lists.ts build()), spread over it. */
function riders(n: number, count: number): string[] {
  const cards = Math.round(n * 0.9);
  const out: string[] = [];
  for (let i = 7, k = 0; out.length < count && k < count * 4; i = (i + 7_919_993) % cards, k++) if (statusOf(i) === 1) out.push(cardKey(i).slice('card:'.length));
  return out;
}

/** What the gate says about itself: its event loop's longest stall since the last /healthz, and its journals' fsyncs. */
async function gateSays(port: number): Promise<{ maxStallMs: number; fsyncs: number; fsyncOver: Record<string, number> }> {
  const h = (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { eventLoop: { maxStallMs: number } };
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  // Summed over the lanes: fsyncs in all, and how many took longer than 10 ms and 100 ms.
  const bucket = (le: string) => [...text.matchAll(new RegExp(`^gate_journal_fsync_duration_seconds_bucket\\{[^}]*le="${le.replace('+', '\\+')}"[^}]*\\} (\\S+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
  const all = bucket('+Inf');
  return { maxStallMs: h.eventLoop.maxStallMs, fsyncs: all, fsyncOver: { '10 ms': all - bucket('0.01'), '100 ms': all - bucket('0.1') } };
}

interface ArrayRun {
  latenciesMs: number[];
  taps: number;
  /** Ticks when the lane was still busy with the previous rider (no tap then). */
  skipped: number;
  /** Taps that saw no OPEN within 5 s. */
  noOpen: number;
  rssMB: number;
  peakMB: number;
  /** CPU seconds per wall second during the riding (1 = one core). */
  cpuCores: number;
  readyMs: number;
  /** The event loop's longest stall while riding, and the journals' fsyncs (from the gate's /healthz and /metrics). */
  says: { maxStallMs: number; fsyncs: number; fsyncOver: Record<string, number> };
  /** The machine's 1-minute load average at the end of the riding (other work on a shared machine shows here). */
  load: number;
}

/**
 * `lanes` lanes in one process on `listPath`, riders at 60/min/lane for `seconds`: each lane's board on a pty,
 * each tap written on the console, timed to the OPEN its board executes; the rider walks through 200 ms later.
 */
async function arrayRun(lanes: number, listPath: string, listSize: number, seconds: number, dir: string): Promise<ArrayRun> {
  const ptys: PtyPair[] = [];
  const boards: BarrierBoard[] = [];
  let gate: Awaited<ReturnType<typeof startGate>> | undefined;
  try {
    for (let i = 0; i < lanes; i++) {
      const pty = await ptyPair(`bench-array-${i}`);
      ptys.push(pty);
      const b = new BarrierBoard({ path: pty.b });
      await b.start();
      boards.push(b);
    }
    const ids = Array.from({ length: lanes }, (_, i) => `L${String(i + 1).padStart(2, '0')}`);
    const journal = join(dir, `journal-${lanes}`);
    const config = {
      lanes: ids.map((id, i) => ({ id, direction: 'entry', drivers: { barrier: { type: 'serial', path: ptys[i].a }, sources: [{ type: 'simulated', side: 'entry' }] } })),
      // Riders here are many different cards; a repeat within the window would be refused for passback.
      policy: { antiPassbackSeconds: 0 },
      lists: { type: 'file', path: listPath },
      journal: { type: 'file', dir: journal },
    };
    gate = await startGate(config, dir, `array-${lanes}`, { stdin: true });
    const { child } = gate;
    // Every lane in service (its board answering) before riders come.
    const until = performance.now() + 60_000;
    while (!(await fetch(`http://127.0.0.1:${gate.port}/readyz`).then((r) => r.status === 200)) && performance.now() < until) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 2000));

    const cards = riders(listSize, 4096);
    let next = 0;
    const latenciesMs: number[] = [];
    let taps = 0;
    let skipped = 0;
    let noOpen = 0;
    const pending: (number | undefined)[] = new Array(lanes).fill(undefined);
    boards.forEach((b, i) =>
      b.barrier.onCommand((c) => {
        if (c.type !== 'OPEN') return;
        const t0 = pending[i];
        if (t0 === undefined) return;
        latenciesMs.push(performance.now() - t0);
        pending[i] = undefined;
        setTimeout(() => b.barrier.walkThrough('entry'), 200);
      }),
    );
    const before = await gateSays(gate.port);
    const cpu0 = cpuSecondsOf(child.pid!);
    const wall0 = performance.now();
    const timers: NodeJS.Timeout[] = [];
    const tick = (i: number) => {
      const b = boards[i].barrier;
      const t0 = pending[i];
      if (t0 !== undefined && performance.now() - t0 > 5000) {
        noOpen++;
        pending[i] = undefined;
      }
      if (pending[i] !== undefined || b.flaps !== 'closed') return void skipped++;
      pending[i] = performance.now();
      taps++;
      child.stdin!.write(`${ids[i]} entry card ${cards[next++ % cards.length]}\n`);
    };
    // 60 riders a minute at each lane, the lanes' taps spread over the second.
    for (let i = 0; i < lanes; i++) {
      const offset = Math.floor((1000 * i) / lanes);
      timers.push(setTimeout(() => timers.push(setInterval(() => tick(i), 1000)), offset));
    }
    await new Promise((r) => setTimeout(r, seconds * 1000));
    timers.forEach((t) => clearTimeout(t));
    const cpuCores = (cpuSecondsOf(child.pid!) - cpu0) / ((performance.now() - wall0) / 1000);
    const mem = memoryOf(child.pid!);
    const after = await gateSays(gate.port);
    const fsyncOver = Object.fromEntries(Object.entries(after.fsyncOver).map(([k, v]) => [k, v - before.fsyncOver[k]]));
    const says = { maxStallMs: after.maxStallMs, fsyncs: after.fsyncs - before.fsyncs, fsyncOver };
    // The last riders' OPENs (bounded).
    const drain = performance.now() + 5000;
    while (pending.some((p) => p !== undefined) && performance.now() < drain) await new Promise((r) => setTimeout(r, 20));
    noOpen += pending.filter((p) => p !== undefined).length;
    const load = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
    return { latenciesMs, taps, skipped, noOpen, ...mem, cpuCores, readyMs: gate.readyMs, says, load };
  } finally {
    if (gate) await stopGate(gate.child);
    await Promise.allSettled(boards.map((b) => b.stop()));
    await Promise.allSettled(ptys.map((p) => p.close()));
  }
}

/** RSS of `count` single-lane `gate run` processes on the list, all running at once (simulated barrier, as fleet.ts). */
async function singleLanes(count: number, listPath: string, dir: string): Promise<{ rssMB: number[] }> {
  const started: ChildProcess[] = [];
  try {
    const rss: number[] = [];
    for (let i = 0; i < count; i++) {
      const g = await startGate({ lane: { id: `S${i + 1}`, direction: 'entry' }, drivers: { barrier: { type: 'simulated' }, sources: [{ type: 'simulated', side: 'entry' }] }, lists: { type: 'file', path: listPath }, journal: { type: 'file', dir: join(dir, `single-${count}-${i}`) } }, dir, `single-${i}`);
      started.push(g.child);
    }
    await new Promise((r) => setTimeout(r, 2000));
    for (const c of started) rss.push(memoryOf(c.pid!).rssMB);
    return { rssMB: rss };
  } finally {
    await Promise.allSettled(started.map(stopGate));
  }
}

export async function run(r: BenchReport): Promise<void> {
  const n = Number(process.env.ARRAY_BENCH_LIST ?? 50_000_000);
  const lanes = Number(process.env.ARRAY_BENCH_LANES ?? 16);
  const seconds = Number(process.env.ARRAY_BENCH_SECONDS ?? 60);
  const small = 1_000_000;
  const dir = mkdtempSync(join(tmpdir(), 'gate-array-bench-'));
  const label = `${n / 1e6} M`;
  try {
    const bigList = join(dir, 'lists-big.snap');
    const smallList = join(dir, 'lists-small.snap');
    await writeFileAtomic(bigList, build(n));
    gc();
    await writeFileAtomic(smallList, build(small));
    gc();
    // The lists' pages written back now, not during the runs, where the journals' fsyncs would wait behind them.
    execFileSync('sync');

    const rounds = Number(process.env.ARRAY_BENCH_RUNS ?? 2);
    const runs = await interleaved(
      rounds,
      () => arrayRun(lanes, bigList, n, seconds, dir),
      () => arrayRun(1, bigList, n, seconds, dir),
    );
    const note = (a: ArrayRun) =>
      `${a.taps} taps, ${a.skipped} ticks skipped (lane still busy), ${a.noOpen} without an OPEN; ready in ${(a.readyMs / 1000).toFixed(1)} s; ` +
      `event loop's longest stall ${a.says.maxStallMs} ms; ${a.says.fsyncs} journal fsyncs, ${a.says.fsyncOver['10 ms']} over 10 ms, ${a.says.fsyncOver['100 ms']} over 100 ms; load average ${a.load}`;
    const med = (xs: ArrayRun[], f: (a: ArrayRun) => number) => summary(xs.map(f));
    const rowOf = (metric: string, f: (a: ArrayRun) => number, unit: string, extra: { target?: string; note?: string } = {}) => {
      const a = med(runs.a, f);
      const b = med(runs.b, f);
      r.row({ section: S, metric, value: a.median, spread: a.spread, unit, peer: { name: '1 lane alone in the process, same list and rate', value: b.median, spread: b.spread }, ...extra });
    };
    rowOf(`p99 tap → OPEN, ${lanes} lanes × 60 riders/min, ${label} list, one process`, (a) => percentile(a.latenciesMs, 99), 'ms', { note: runs.a.map((a, k) => `run ${k + 1}: ${note(a)}`).join(' | ') });
    rowOf(`p50 tap → OPEN, ${lanes} lanes`, (a) => percentile(a.latenciesMs, 50), 'ms', { note: runs.b.map((a, k) => `1 lane, run ${k + 1}: ${note(a)}`).join(' | ') });
    rowOf(`CPU share while riding, ${lanes} lanes (1 = one core; the box has 2)`, (a) => a.cpuCores, 'cores');
    const many = { rssMB: med(runs.a, (a) => a.rssMB), peakMB: Math.max(...runs.a.map((a) => a.peakMB)) };

    // Memory: the array beside 16 single-lane processes, each holding its own copy of the list.
    const single = await singleLanes(1, bigList, dir);
    r.row({ section: S, metric: `RSS of the ${lanes}-lane process with a ${label} list (after riding)`, value: many.rssMB.median, spread: many.rssMB.spread, unit: 'MB', target: '< 1024 MB', peer: { name: `${lanes} single-lane processes, computed: ${lanes} × one measured (${single.rssMB[0].toFixed(0)} MB)`, value: lanes * single.rssMB[0] }, note: `peak ${many.peakMB.toFixed(0)} MB; the peer is computed, not started: ${lanes} processes each holding its own ${label} list would need that much RAM on this machine` });
    const smallArray = await arrayRun(lanes, smallList, small, 10, dir);
    const smallSingles = await singleLanes(lanes, smallList, dir);
    r.row({ section: S, metric: `RSS of the ${lanes}-lane process with a 1 M list`, value: smallArray.rssMB, unit: 'MB', peer: { name: `${lanes} single-lane processes, measured (sum)`, value: smallSingles.rssMB.reduce((a, b) => a + b, 0) } });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
