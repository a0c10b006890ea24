// The file journal's own figures (section `journal-integrity`): durable records/s with many decisions in
// flight (group commit) and decision → durable latency, one at a time and 64 in flight, on segments small
// enough that rotation happens during the run. Each figure is the median of JOURNAL_BENCH_RUNS runs (5)
// on the temp dir's disk; the peer is the same journal with the default 4 MiB segments (rotation rare).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileJournal } from '../../firmware/journal/file-journal.js';
import type { JournalEntry } from '../../firmware/journal/journal.js';
import { percentile, type BenchReport } from './report.js';

const S = 'journal-integrity';
const RUNS = Number(process.env.JOURNAL_BENCH_RUNS ?? 5);
const N = 10_000;
const SOLO = 1_000;
const CONC = 64;

const entry = (i: number): JournalEntry => ({
  type: 'decision', laneId: 'B1', atMs: Date.now(), direction: 'entry', kind: 'card',
  ref: `card:…${String(i % 10000).padStart(4, '0')}#a1b2c3`, grant: true, reason: 'ok', source: 'reader:0',
});

interface Run {
  rate: number;
  p99Conc: number;
  p50Conc: number;
  p99Solo: number;
  p50Solo: number;
  fsyncs: number;
  segments: number;
}

async function once(dir: string, segmentBytes: number | undefined): Promise<Run> {
  const j = await FileJournal.open({ dir, laneId: 'B1', ...(segmentBytes ? { segmentBytes } : {}) });
  const lat: number[] = [];
  let i = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (i < N) {
      const k = i++;
      const t = performance.now();
      await j.append(entry(k));
      lat.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: CONC }, worker));
  const rate = N / ((performance.now() - t0) / 1000);
  const fsyncs = j.counters.fsyncs;
  const solo: number[] = [];
  for (let k = 0; k < SOLO; k++) {
    const t = performance.now();
    await j.append(entry(k));
    solo.push(performance.now() - t);
  }
  const segments = j.segmentCount;
  await j.close();
  return { rate, p99Conc: percentile(lat, 99), p50Conc: percentile(lat, 50), p99Solo: percentile(solo, 99), p50Solo: percentile(solo, 50), fsyncs, segments };
}

const med = (xs: number[]) => percentile(xs, 50);

async function series(base: string, label: string, segmentBytes: number | undefined): Promise<Run[]> {
  const runs: Run[] = [];
  for (let k = 0; k < RUNS; k++) {
    const dir = join(base, `${label}-${k}`);
    runs.push(await once(dir, segmentBytes));
    rmSync(dir, { recursive: true, force: true });
  }
  return runs;
}

export async function run(r: BenchReport): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'bench-journal-'));
  try {
    // Interleave nothing: the small-segment series first, then the default one, each RUNS times.
    const small = await series(base, 'small', 256 * 1024);
    const dflt = await series(base, 'default', undefined);
    const list = (xs: number[]) => xs.map((x) => x.toFixed(x >= 100 ? 0 : 2)).join(', ');
    const rates = small.map((x) => x.rate);
    r.row({
      section: S, metric: `durable records/s, ${CONC} in flight, 256 KiB segments (median of ${RUNS})`, value: med(rates), unit: 'rec/s',
      peer: { name: 'default 4 MiB segments', value: med(dflt.map((x) => x.rate)) },
      note: `runs ${list(rates)}; ${(N / med(small.map((x) => x.fsyncs))).toFixed(1)} records per fsync; ${med(small.map((x) => x.segments))} segments at the end`,
    });
    const solo = small.map((x) => x.p99Solo);
    r.row({
      section: S, metric: `decision → durable p99, one at a time, 256 KiB segments (median of ${RUNS})`, value: med(solo), unit: 'ms',
      peer: { name: 'default 4 MiB segments', value: med(dflt.map((x) => x.p99Solo)) },
      note: `runs ${list(solo)}; p50 ${med(small.map((x) => x.p50Solo)).toFixed(3)} ms`,
    });
    const conc = small.map((x) => x.p99Conc);
    r.row({
      section: S, metric: `decision → durable p99, ${CONC} in flight, 256 KiB segments (median of ${RUNS})`, value: med(conc), unit: 'ms',
      peer: { name: 'default 4 MiB segments', value: med(dflt.map((x) => x.p99Conc)) },
      note: `runs ${list(conc)}; p50 ${med(small.map((x) => x.p50Conc)).toFixed(3)} ms`,
    });
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}
