import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, appendFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileJournal, JournalUnavailableError } from '../../firmware/journal/file-journal.js';
import type { JournalEntry } from '../../firmware/journal/journal.js';
import { encodeJournalRecord } from '../../protocol/journal-record.js';
import { scanSegment } from '../../firmware/journal/segment.js';
import { Backoffice } from '../../simulator/backoffice/server.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'journal-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const entry = (i: number): JournalEntry => ({
  type: 'decision', laneId: 'L1', atMs: 1_650_000_000_000 + i, direction: 'entry', kind: 'card',
  ref: `tap-${i}`, grant: i % 3 !== 0, reason: i % 3 !== 0 ? 'ok' : 'not-registered', source: 'sim',
});

function segFiles(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.endsWith('.jnl')).sort();
}

describe('file journal', () => {
  it('group commit: many concurrent appends share fsyncs, all durable and in order after reopen', async () => {
    const dir = tmp();
    const j = await FileJournal.open({ dir, laneId: 'L1' });
    const seqs = await Promise.all(Array.from({ length: 1000 }, (_, i) => j.append(entry(i))));
    expect(seqs).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    expect(j.counters.fsyncs).toBeLessThan(100);
    await j.close();
    const j2 = await FileJournal.open({ dir, laneId: 'L1' });
    expect(j2.lastSeq).toBe(1000);
    expect(j2.backlog).toBe(1000);
    expect(await j2.append(entry(1000))).toBe(1001);
    await j2.close();
  });

  it('drops torn and garbage tails, never replays them, and continues the sequence', async () => {
    for (const damage of ['torn', 'garbage', 'zeros'] as const) {
      const dir = tmp();
      const j = await FileJournal.open({ dir, laneId: 'L1' });
      for (let i = 0; i < 20; i++) await j.append(entry(i));
      await j.close();
      const f = join(dir, segFiles(dir).at(-1)!);
      const size = statSync(f).size;
      // Bytes past the last commit (its header mark says 20): the trace of a crash, never acted on.
      if (damage === 'torn') appendFileSync(f, encodeJournalRecord(21, entry(20)).subarray(0, 13));
      if (damage === 'garbage') appendFileSync(f, Buffer.from('\x00garbage\xff\xfe not a record at all'));
      if (damage === 'zeros') appendFileSync(f, Buffer.alloc(4096));
      const j2 = await FileJournal.open({ dir, laneId: 'L1' });
      expect(j2.lastSeq, damage).toBe(20);
      expect(j2.counters.tornTailsDropped, damage).toBe(1);
      expect(j2.recovery.damaged, damage).toEqual([]);
      expect(await j2.append(entry(99))).toBe(21);
      await j2.close();
      const recs = scanSegment(readFileSync(f), 1);
      expect(recs.bad).toEqual([]);
      expect(recs.records.map((r) => r.seq)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
      expect(statSync(f).size).toBeGreaterThan(size - 1);
    }
  });

  it('a bit flipped in the last committed record: the record is lost, its seq is never handed out again', async () => {
    const dir = tmp();
    const j = await FileJournal.open({ dir, laneId: 'L1' });
    for (let i = 0; i < 20; i++) await j.append(entry(i));
    await j.close();
    const f = join(dir, segFiles(dir).at(-1)!);
    const b = readFileSync(f);
    b[b.length - 3] ^= 0x40;
    writeFileSync(f, b);
    const j2 = await FileJournal.open({ dir, laneId: 'L1' });
    expect(j2.lastSeq).toBe(20);
    expect(j2.recovery.damaged).toMatchObject([{ recordsLost: 1, lostSeqs: [{ from: 20, to: 20 }], recordsKept: 19 }]);
    expect(await j2.append(entry(99))).toBe(21);
    await j2.close();
    expect(readFileSync(`${f}.damaged`)).toEqual(b);
    const seqs = segFiles(dir).flatMap((n) => scanSegment(readFileSync(join(dir, n)), Number(n.slice(4, 20))).records.map((r) => r.seq));
    expect(seqs).toEqual([...Array.from({ length: 19 }, (_, i) => i + 1), 21]);
  });

  it('a journal truncated at every byte of its last record keeps the records before it and never reuses the cut one', async () => {
    const dir = tmp();
    const j = await FileJournal.open({ dir, laneId: 'L1' });
    for (let i = 0; i < 5; i++) await j.append(entry(i));
    await j.close();
    const f = join(dir, segFiles(dir)[0]);
    const full = readFileSync(f);
    const lastStart = scanSegment(full, 1).records[4].offset;
    for (let cut = lastStart; cut < full.length; cut++) {
      writeFileSync(f, full.subarray(0, cut));
      const r = await FileJournal.open({ dir, laneId: 'L1' });
      // Record 5 was committed (the header's mark counts it): it may have been acted on.
      expect(r.lastSeq, `cut at ${cut}`).toBe(5);
      expect(r.backlog).toBe(4);
      expect(r.recovery.recordsLostUnreadable).toBe(1);
      await r.close();
      expect(statSync(f).size).toBe(lastStart);
      for (const n of readdirSync(dir)) if (n.endsWith('.damaged')) rmSync(join(dir, n));
    }
    writeFileSync(f, full);
    const r = await FileJournal.open({ dir, laneId: 'L1' });
    expect(r.lastSeq).toBe(5);
    expect(r.recovery.damaged).toEqual([]);
    await r.close();
  });

  it('disk full (quota): rejects appends with disk-full and raises an alarm, recovers after upload frees space', async () => {
    const bo = new Backoffice({ db: ':memory:' });
    const { url } = await bo.listen(0);
    const dir = tmp();
    const j = await FileJournal.open({ dir, laneId: 'L1', maxBytes: 64 * 1024, segmentBytes: 8 * 1024, uploadUrl: url, uploadIntervalMs: 3_600_000 });
    const alarms: string[] = [];
    j.on('alarm', (a: string) => alarms.push(a));
    let ok = 0;
    let err: unknown;
    for (let i = 0; i < 2000; i++) {
      try {
        await j.append(entry(i));
        ok++;
      } catch (e) {
        err = e;
        break;
      }
    }
    expect(err).toBeInstanceOf(JournalUnavailableError);
    expect((err as JournalUnavailableError).code).toBe('disk-full');
    expect(alarms).toContain('journal-disk-full');
    expect(j.counters.rejectedAppends).toBe(1);
    expect(await j.uploadNow()).toBe(true);
    expect(j.backlog).toBe(0);
    expect(j.segmentCount).toBe(1);
    expect(await j.append(entry(5000))).toBe(ok + 1);
    expect(alarms).toContain('journal-ok');
    await j.close();
    await bo.close();
  });

  it('uploads in batches with lane id + seq; retries after a restart never duplicate; trims uploaded segments', async () => {
    const bo = new Backoffice({ db: ':memory:' });
    const { url } = await bo.listen(0);
    const dir = tmp();
    const offline = await FileJournal.open({ dir, laneId: 'L1', segmentBytes: 4096 });
    for (let i = 0; i < 305; i++) await offline.append(entry(i));
    await offline.close();
    expect(segFiles(dir).length).toBeGreaterThan(3);
    const j = await FileJournal.open({ dir, laneId: 'L1', segmentBytes: 4096, uploadUrl: url, uploadBatch: 50, uploadIntervalMs: 3_600_000 });
    expect(await j.uploadNow()).toBe(true);
    expect(j.backlog).toBe(0);
    expect(j.counters.uploadBatches).toBeGreaterThanOrEqual(7);
    expect(segFiles(dir).length).toBe(1);
    await j.close();
    // Lose the upload state: everything still on disk is sent again and the back office ignores it.
    rmSync(join(dir, 'uploaded.json'));
    const j2 = await FileJournal.open({ dir, laneId: 'L1', uploadUrl: url, uploadIntervalMs: 3_600_000 });
    expect(j2.lastSeq).toBe(305);
    expect(j2.backlog).toBeGreaterThan(0);
    await j2.uploadNow();
    await j2.close();
    expect(bo.counters.transactions).toBe(305);
    expect(bo.counters.duplicateTransactions).toBeGreaterThan(0);
    const rows = bo.db.prepare('SELECT COUNT(*) AS n, COUNT(DISTINCT seq) AS d, MAX(seq) AS m FROM transactions').get() as { n: number; d: number; m: number };
    expect(rows).toEqual({ n: 305, d: 305, m: 305 });
    await bo.close();
  });

  it('a long outage spills the upload backlog to disk only, and it is all uploaded in order afterwards', async () => {
    const dir = tmp();
    const j = await FileJournal.open({ dir, laneId: 'L3', uploadUrl: 'http://127.0.0.1:9', uploadIntervalMs: 3_600_000, uploadTimeoutMs: 500, memoryRecords: 7, segmentBytes: 2048 });
    for (let i = 0; i < 40; i++) await j.append(entry(i));
    expect(j.backlog).toBe(40);
    await j.close();
    const bo = new Backoffice({ db: ':memory:' });
    const { url } = await bo.listen(0);
    const j2 = await FileJournal.open({ dir, laneId: 'L3', uploadUrl: url, uploadIntervalMs: 3_600_000, memoryRecords: 7, uploadBatch: 5 });
    for (let i = 40; i < 45; i++) await j2.append(entry(i));
    expect(await j2.uploadNow()).toBe(true);
    expect(j2.backlog).toBe(0);
    await j2.close();
    const seqs = (bo.db.prepare("SELECT seq FROM transactions WHERE lane_id = 'L3' ORDER BY seq").all() as { seq: number }[]).map((r) => r.seq);
    expect(seqs).toEqual(Array.from({ length: 45 }, (_, i) => i + 1));
    await bo.close();
  });

  it('keeps journaling while the back office is down and uploads once it returns', async () => {
    const dir = tmp();
    const j = await FileJournal.open({ dir, laneId: 'L2', uploadUrl: 'http://127.0.0.1:9', uploadIntervalMs: 3_600_000, uploadTimeoutMs: 500 });
    for (let i = 0; i < 10; i++) await j.append(entry(i));
    expect(await j.uploadNow()).toBe(false);
    expect(j.counters.uploadFailures).toBeGreaterThanOrEqual(1);
    await j.close();
    const bo = new Backoffice({ db: ':memory:' });
    const { url } = await bo.listen(0);
    const j2 = await FileJournal.open({ dir, laneId: 'L2', uploadUrl: url, uploadIntervalMs: 3_600_000 });
    expect(await j2.uploadNow()).toBe(true);
    expect(bo.counters.transactions).toBe(10);
    await j2.close();
    await bo.close();
  });
});
