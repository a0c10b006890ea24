// What decides which edge boxes can run a lane: RSS of one `gate run` lane with a 10 M-entry list loaded,
// and the time from process start to ready (/readyz 200), beside the same lane with an empty list.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../../firmware/lists/stored-lists.js';
import { build } from './lists.js';
import { interleaved, summary, type BenchReport } from './report.js';
import { freePort } from '../support/free-port.js';

const root = new URL('../../..', import.meta.url).pathname;


async function startToReady(config: object, dir: string, name: string): Promise<{ readyMs: number; rssMB: number }> {
  const port = await freePort();
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ ...config, health: { port }, log: { level: 'warn' } }));
  const t0 = performance.now();
  const child = spawn(process.execPath, ['--single-threaded-gc', join(root, 'dist/firmware/cli/gate.js'), 'run', '--config', file], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, NOTIFY_SOCKET: '' } });
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`gate run exited with ${child.exitCode}`);
      try {
        const r = await fetch(`http://127.0.0.1:${port}/readyz`);
        if (r.status === 200) break;
      } catch {
        /* not listening yet */
      }
      if (performance.now() - t0 > 60_000) throw new Error('not ready within 60 s');
      await new Promise((r) => setTimeout(r, 10));
    }
    const readyMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 500));
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
    return { readyMs, rssMB: rssKb / 1024 };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

export async function run(r: BenchReport): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'gate-fleet-bench-'));
  try {
    const n = 10_000_000;
    const path = join(dir, 'lists.snap');
    await writeFileAtomic(path, build(n));
    const lane = { lane: { id: 'F1', direction: 'entry' }, drivers: { barrier: { type: 'simulated' }, sources: [{ type: 'simulated', side: 'entry' }] } };
    // Repeated starts, interleaved with the order alternating (big, empty; empty, big; …): medians and min–max.
    const rounds = Number(process.env.FLEET_BENCH_RUNS ?? 6);
    const runs = await interleaved(
      rounds,
      () => startToReady({ ...lane, lists: { type: 'file', path } }, dir, 'big'),
      () => startToReady({ ...lane, lists: { type: 'memory' } }, dir, 'empty'),
    );
    const note = `${rounds} starts each, interleaved A B / B A`;
    const rss = { big: summary(runs.a.map((x) => x.rssMB)), empty: summary(runs.b.map((x) => x.rssMB)) };
    const ready = { big: summary(runs.a.map((x) => x.readyMs)), empty: summary(runs.b.map((x) => x.readyMs)) };
    r.row({ section: 'fleet', metric: 'one lane RSS with a 10 M-entry list loaded', value: rss.big.median, spread: rss.big.spread, unit: 'MB', peer: { name: 'same lane, empty list', value: rss.empty.median, spread: rss.empty.spread }, note });
    r.row({ section: 'fleet', metric: 'gate run start → /readyz 200 with a 10 M-entry list', value: ready.big.median, spread: ready.big.spread, unit: 'ms', peer: { name: 'same lane, empty list', value: ready.empty.median, spread: ready.empty.spread }, note });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
