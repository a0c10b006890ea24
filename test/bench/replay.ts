// Record and replay: a simulated rush hour at a large station (30 lanes, every lane recording itself as
// `gate sim --record` does), then every lane's recording replayed through the same gate machine; the
// wall time beside the simulation that recorded it, presentations per second, the recording's size, and
// the replay beside another policy (yellow admitted). REPLAY_BENCH_PASSENGERS scales it (default 90,000
// riders, which make over 100,000 presentations).
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recordingKey } from '../../protocol/recording.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { simulateStation } from '../../firmware/composition/simulated-station.js';
import { findRecordings } from '../../firmware/recording/segment-files.js';
import { replayRecording, type LaneReplayReport, type OtherVersion } from '../../firmware/recording/replay.js';
import type { BenchReport } from './report.js';

const LANES = 30;
/** Arrivals per lane per minute: a rush hour keeps every lane near its mechanics' capacity. */
const RATE = 60;

function sizeOf(dir: string): number {
  let total = 0;
  for (const lane of readdirSync(dir)) {
    const d = join(dir, lane);
    if (!statSync(d).isDirectory()) continue;
    for (const f of readdirSync(d)) total += statSync(join(d, f)).size;
  }
  return total;
}

/** CPU seconds (user + system) of this process since `from`: on a shared machine, what the wall time was made of. */
function cpuSince(from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1e6;
}

async function replayAll(dir: string, key: ReturnType<typeof recordingKey>, other?: OtherVersion): Promise<{ seconds: number; cpu: number; reports: LaneReplayReport[] }> {
  const t = performance.now();
  const c = process.cpuUsage();
  const reports: LaneReplayReport[] = [];
  for (const rec of findRecordings(dir)) reports.push(await replayRecording(rec, { key, other }));
  return { seconds: (performance.now() - t) / 1000, cpu: cpuSince(c), reports };
}

export async function run(r: BenchReport): Promise<void> {
  const passengers = Number(process.env.REPLAY_BENCH_PASSENGERS ?? 90_000);
  const dir = mkdtempSync(join(tmpdir(), 'gate-bench-replay-'));
  try {
    const key = recordingKey(randomBytes(32));
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const { summary } = await simulateStation({ lanes: LANES, passengers, rate: RATE, seed: 17, record: { dir, key } });
    const simSeconds = (performance.now() - t0) / 1000;
    const simCpu = cpuSince(c0);
    const bytes = sizeOf(dir);

    const plain = await replayAll(dir, key);
    const decisions = plain.reports.reduce((a, x) => a + x.decisions, 0);
    const diverged = plain.reports.reduce((a, x) => a + x.diverged, 0);
    const events = plain.reports.reduce((a, x) => a + x.events + x.timers, 0);
    const station = `${LANES} lanes, ${summary.presentations} presentations in ${Math.round(summary.virtualSeconds / 60)} min of station time`;
    r.row({
      section: 'replay',
      metric: `a recorded rush hour replayed (${decisions} presentations)`,
      value: plain.seconds,
      unit: 's',
      peer: { name: 'the simulated station that recorded it', value: simSeconds },
      note: `${station}; ${decisions === summary.presentations && diverged === 0 ? 'every decision as recorded' : `${diverged} divergences, ${decisions} decisions for ${summary.presentations} presentations`}; CPU ${plain.cpu.toFixed(1)} s replaying, ${simCpu.toFixed(1)} s simulating`,
    });
    r.row({
      section: 'replay',
      metric: 'replay speed',
      value: decisions / plain.seconds,
      unit: 'presentations/s',
      note: `${Math.round(decisions / plain.cpu)} per CPU second; ${Math.round(events / plain.seconds)} machine events/s; ${Math.round(summary.virtualSeconds / plain.seconds)}x station time`,
    });
    r.row({ section: 'replay', metric: 'recording size', value: bytes / summary.presentations, unit: 'bytes/presentation', note: `${(bytes / 2 ** 20).toFixed(1)} MiB for ${LANES} lanes, encrypted` });

    const base = parseLaneConfig({ lane: { id: 'X' } }).policy;
    const other: OtherVersion = { label: 'yellow admitted', policy: { ...base, entry: { ...base.entry, yellow: true } } };
    const compared = await replayAll(dir, key, other);
    r.row({
      section: 'replay',
      metric: 'replay beside another policy (yellow admitted)',
      value: compared.seconds,
      unit: 's',
      peer: { name: 'replay alone', value: plain.seconds },
      note: `${compared.reports.reduce((a, x) => a + x.differing, 0)} decisions differ; CPU ${compared.cpu.toFixed(1)} s`,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
