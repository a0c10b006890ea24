// The journal against SQLite, like with like, both fsyncing for real in the same temp dir:
// - 64 decisions in flight: the journal's group commit (the records queued while one fsync runs share the
//   next) beside SQLite WAL synchronous=FULL given the same batching (the same 64 producers, their records
//   committed together, at most 64 to a transaction);
// - one decision at a time (a quiet lane): one append, one fsync, beside one SQLite transaction per record.
// Rounds interleaved with the order alternating; medians with min–max. `npm run bench -- --only journal`
// runs these rows alone (`lists` runs them too). JOURNAL_BENCH_RUNS changes the number of rounds (5).

import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileJournal } from '../../firmware/journal/file-journal.js';
import type { JournalEntry } from '../../firmware/journal/journal.js';
import { interleaved, percentile, summary, type BenchReport } from './report.js';

const S = 'lists';
const N = 20_000;
const CONC = 64;
const SOLO = 2000;

const entry = (i: number): JournalEntry => ({ type: 'decision', laneId: 'B1', atMs: Date.now(), direction: 'entry', kind: 'card', ref: `card:…${String(i % 10000).padStart(4, '0')}#a1b2c3`, grant: true, reason: 'ok', source: 'reader:0' });

interface Run {
  rate: number;
  lat: number[];
  /** Records per fsync (journal) or per transaction (SQLite). */
  perCommit: number;
}

/** `count` appends from `conc` producers, each waiting for its record to be durable before the next. */
async function drive(count: number, conc: number, append: (e: JournalEntry) => Promise<unknown>): Promise<{ rate: number; lat: number[] }> {
  const lat: number[] = [];
  let i = 0;
  const t0 = performance.now();
  const producer = async () => {
    while (i < count) {
      const e = entry(i++);
      const t = performance.now();
      await append(e);
      lat.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: conc }, producer));
  return { rate: count / ((performance.now() - t0) / 1000), lat };
}

async function journalRun(dir: string, count: number, conc: number): Promise<Run> {
  rmSync(dir, { recursive: true, force: true });
  const j = await FileJournal.open({ dir, laneId: 'B1' });
  try {
    const out = await drive(count, conc, (e) => j.append(e));
    return { ...out, perCommit: count / j.counters.fsyncs };
  } finally {
    await j.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * SQLite WAL synchronous=FULL with the journal's batching: an append queues its record; one transaction
 * per event-loop turn commits what is queued (at most `batch`), then every record in it resolves. With
 * `batch` 1 and one producer it is a transaction per record.
 */
async function sqliteRun(file: string, count: number, conc: number, batch: number): Promise<Run> {
  rmSync(file, { force: true });
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE journal (seq INTEGER PRIMARY KEY, entry TEXT NOT NULL)');
    const ins = db.prepare('INSERT INTO journal (seq, entry) VALUES (?, ?)');
    let seq = 0;
    let txns = 0;
    let queue: { text: string; resolve: (seq: number) => void }[] = [];
    let scheduled = false;
    const commit = db.transaction((b: { text: string }[]) => {
      for (const p of b) ins.run(++seq, p.text);
    });
    const flush = () => {
      const b = queue.splice(0, batch);
      commit(b);
      txns++;
      const last = seq;
      b.forEach((p, k) => p.resolve(last - b.length + 1 + k));
      if (queue.length > 0) setImmediate(flush);
      else scheduled = false;
    };
    const append = (e: JournalEntry) =>
      new Promise<number>((resolve) => {
        queue.push({ text: JSON.stringify(e), resolve });
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      });
    const out = await drive(count, conc, append);
    return { ...out, perCommit: count / txns };
  } finally {
    db.close();
    for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
  }
}

function fsName(dir: string): string {
  const magic: Record<number, string> = { 0xef53: 'ext4', 0x58465342: 'xfs', 0x9123683e: 'btrfs', 0x01021994: 'tmpfs (fsync does nothing)', 0x794c7630: 'overlayfs' };
  const t = statfsSync(dir).type;
  return magic[t] ?? `filesystem 0x${t.toString(16)}`;
}

export async function journalBench(r: BenchReport, dir: string): Promise<void> {
  const rounds = Number(process.env.JOURNAL_BENCH_RUNS ?? 5);
  const where = `in ${dir} (${fsName(dir)})`;
  const jdir = join(dir, 'journal');
  const dbFile = join(dir, 'journal-peer.db');

  // 64 in flight: group commit vs SQLite with the same batching.
  const group = await interleaved(rounds, () => journalRun(jdir, N, CONC), () => sqliteRun(dbFile, N, CONC, CONC));
  const rate = { ours: summary(group.a.map((x) => x.rate)), peer: summary(group.b.map((x) => x.rate)) };
  const p99 = { ours: summary(group.a.map((x) => percentile(x.lat, 99))), peer: summary(group.b.map((x) => percentile(x.lat, 99))) };
  const p50 = { ours: summary(group.a.map((x) => percentile(x.lat, 50))), peer: summary(group.b.map((x) => percentile(x.lat, 50))) };
  const perFsync = summary(group.a.map((x) => x.perCommit)).median;
  const perTxn = summary(group.b.map((x) => x.perCommit)).median;
  const peerName = `sqlite WAL synchronous=FULL, same ${CONC} in flight, up to ${CONC} records per transaction`;
  const runs = `${rounds} runs each, interleaved A B / B A, ${where}`;
  r.row({ section: S, metric: `journal: durable records/s, ${CONC} in flight (group commit)`, value: rate.ours.median, spread: rate.ours.spread, unit: 'rec/s', peer: { name: peerName, value: rate.peer.median, spread: rate.peer.spread }, note: `${N} records a run; ${perFsync.toFixed(1)} records per fsync vs ${perTxn.toFixed(1)} per transaction; ${runs}` });
  r.row({ section: S, metric: `journal: p99 decision → durable, ${CONC} in flight`, value: p99.ours.median, spread: p99.ours.spread, unit: 'ms', peer: { name: peerName, value: p99.peer.median, spread: p99.peer.spread }, note: `p50 ${p50.ours.median.toFixed(2)} ms vs ${p50.peer.median.toFixed(2)} ms; each waits for the commit in progress, then shares the next` });

  // One at a time: one append and its fsync vs one SQLite transaction per record.
  const solo = await interleaved(rounds, () => journalRun(jdir, SOLO, 1), () => sqliteRun(dbFile, SOLO, 1, 1));
  const s99 = { ours: summary(solo.a.map((x) => percentile(x.lat, 99))), peer: summary(solo.b.map((x) => percentile(x.lat, 99))) };
  const s50 = { ours: summary(solo.a.map((x) => percentile(x.lat, 50))), peer: summary(solo.b.map((x) => percentile(x.lat, 50))) };
  const srate = { ours: summary(solo.a.map((x) => x.rate)), peer: summary(solo.b.map((x) => x.rate)) };
  const soloPeer = 'sqlite WAL synchronous=FULL, one transaction per record';
  r.row({ section: S, metric: 'journal: p99 decision → durable, one at a time', value: s99.ours.median, spread: s99.ours.spread, unit: 'ms', peer: { name: soloPeer, value: s99.peer.median, spread: s99.peer.spread }, note: `p50 ${s50.ours.median.toFixed(2)} ms vs ${s50.peer.median.toFixed(2)} ms; ${SOLO} records a run; ${runs}` });
  r.row({ section: S, metric: 'journal: durable records/s, one at a time', value: srate.ours.median, spread: srate.ours.spread, unit: 'rec/s', peer: { name: soloPeer, value: srate.peer.median, spread: srate.peer.spread } });
}

/** `--only journal`: the journal rows alone (seconds, a few MB), without building any list. */
export async function run(r: BenchReport): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-journal-'));
  try {
    await journalBench(r, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
