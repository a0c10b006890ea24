import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileJournal, JournalUnavailableError } from '../../firmware/journal/file-journal.js';
import { GateErrorCode, isGateError } from '../../protocol/errors.js';
import type { JournalEntry } from '../../firmware/journal/journal.js';
import { encodeJournalRecord } from '../../protocol/journal-record.js';
import { SEGMENT_HEADER_BYTES } from '../../firmware/journal/segment.js';
import { dataEnd, fileRecords, markOpen, seqsOnDisk } from '../support/journal-files.js';
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

  it('after a crash: a write cut at a sector boundary is dropped and its seq reused; zeros are free space; anything else is damage, never replayed', async () => {
    for (const damage of ['torn', 'zeros', 'garbage', 'bitflip'] as const) {
      const dir = tmp();
      const j = await FileJournal.open({ dir, laneId: 'L1' });
      for (let i = 0; i < 20; i++) await j.append(entry(i));
      await j.close();
      const f = join(dir, segFiles(dir).at(-1)!);
      // What a crash leaves: the header as it was while the segment was written.
      markOpen(f);
      const end = dataEnd(f);
      const b = readFileSync(f);
      if (damage === 'torn') {
        // Record 21 (long enough to cross the next sector boundary), written up to that boundary only.
        const r21 = encodeJournalRecord(21, { ...entry(20), source: 'x'.repeat(600) });
        const cut = Math.ceil((end + 1) / 512) * 512;
        Buffer.from(r21.subarray(0, cut - end)).copy(b, end);
      }
      if (damage === 'garbage') Buffer.from('\x01garbage\xff\xfe not a record at all').copy(b, end);
      if (damage === 'bitflip') b[end - 3] ^= 0x40;
      writeFileSync(f, b);
      const j2 = await FileJournal.open({ dir, laneId: 'L1' });
      const next = await j2.append(entry(99));
      await j2.close();
      if (damage === 'torn' || damage === 'zeros') {
        // Nothing was acted on a write the crash cut short: its seq is the next one, no gap.
        expect(j2.recovery.damaged, damage).toEqual([]);
        expect(j2.counters.tornTailsDropped, damage).toBe(damage === 'torn' ? 1 : 0);
        expect(next, damage).toBe(21);
        expect(seqsOnDisk(dir), damage).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
      } else {
        // Damage at the end of a segment a crash left open: how far it went is unknown, so the seqs go on
        // above the reservation; every record that checks is kept.
        expect(j2.recovery.damaged, damage).toHaveLength(1);
        expect(next, damage).toBeGreaterThan(20);
        expect(j2.recovery.damaged[0].unknownTail?.to, damage).toBe(next - 1);
        expect(seqsOnDisk(dir), damage).toEqual([...Array.from({ length: damage === 'bitflip' ? 19 : 20 }, (_, i) => i + 1), next]);
      }
    }
  });

  it('a bit flipped in the last record of a cleanly closed segment: the record is lost, its seq is never handed out again', async () => {
    const dir = tmp();
    const j = await FileJournal.open({ dir, laneId: 'L1' });
    for (let i = 0; i < 20; i++) await j.append(entry(i));
    await j.close();
    const f = join(dir, segFiles(dir).at(-1)!);
    const b = readFileSync(f);
    const r20 = fileRecords(f)[19];
    b[r20.offset + r20.length - 3] ^= 0x40;
    writeFileSync(f, b);
    const j2 = await FileJournal.open({ dir, laneId: 'L1' });
    // The close left the exact mark: seq 20 was written.
    expect(j2.lastSeq).toBe(20);
    expect(j2.recovery.damaged).toMatchObject([{ recordsLost: 1, lostSeqs: [{ from: 20, to: 20 }], recordsKept: 19 }]);
    expect(await j2.append(entry(99))).toBe(21);
    await j2.close();
    expect(readFileSync(`${f}.damaged`).equals(b)).toBe(true);
    expect(seqsOnDisk(dir)).toEqual([...Array.from({ length: 19 }, (_, i) => i + 1), 21]);
  });

  it('a journal cut at every byte of its last record keeps the records before it and never reuses the cut one', async () => {
    const dir = tmp();
    const j = await FileJournal.open({ dir, laneId: 'L1' });
    for (let i = 0; i < 5; i++) await j.append(entry(i));
    await j.close();
    const f = join(dir, segFiles(dir)[0]);
    const full = readFileSync(f);
    const last = fileRecords(f)[4];
    for (let cut = last.offset; cut < last.offset + last.length; cut++) {
      writeFileSync(f, full.subarray(0, cut));
      const r = await FileJournal.open({ dir, laneId: 'L1' });
      // Record 5 was written (the mark of the clean close says so): it may have been acted on.
      expect(r.lastSeq, `cut at ${cut}`).toBe(5);
      expect(r.backlog).toBe(4);
      expect(r.recovery.recordsLostUnreadable).toBe(1);
      expect(r.recovery.damaged[0].truncated).toBe(true);
      await r.close();
      expect(fileRecords(f).map((x) => x.seq)).toEqual([1, 2, 3, 4]);
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
    j.onAlarm((a) => alarms.push(a.alarm));
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
    expect(isGateError(err, GateErrorCode.JournalUnavailable)).toBe(true);
    expect((err as JournalUnavailableError).reason).toBe('disk-full');
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

  it('the quota counts the batch being written, not only the records queued behind it', async () => {
    const dir = tmp();
    const rec = encodeJournalRecord(1, entry(0)).byteLength;
    // Room for the new segment's header and two records, not three.
    const j = await FileJournal.open({ dir, laneId: 'L1', maxBytes: SEGMENT_HEADER_BYTES + rec * 2 + rec / 2 });
    const first = [j.append(entry(0)), j.append(entry(1))];
    // Their write is under way (the batch left the queue at the next turn): a third would not fit.
    await new Promise((r) => setImmediate(r));
    await expect(j.append(entry(2))).rejects.toMatchObject({ reason: 'disk-full' });
    expect(await Promise.all(first)).toEqual([1, 2]);
    await j.close();
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
