// Recovery of a damaged journal: damage in the middle costs only the records it touched (resync), a
// damaged segment is kept aside and reported after someone listens, seqs are never handed out again —
// also when the last segment's header is gone — and a failed rotation keeps the working handle.
import { alarmText } from '../../protocol/alarms.js';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileJournal } from '../../firmware/journal/file-journal.js';
import type { JournalEntry } from '../../firmware/journal/journal.js';
import { scanSegment } from '../../firmware/journal/segment.js';
import { encodeJournalRecord } from '../../protocol/journal-record.js';
import { dataEnd, fileRecords, markOpen, seqsOnDisk } from '../support/journal-files.js';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { laneHarness } from '../support/lane-harness.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'journal-recovery-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const entry = (i: number): JournalEntry => ({
  type: 'decision', laneId: 'L1', atMs: 1_650_000_000_000 + i, direction: 'entry', kind: 'card', ref: `tap-${i}`, grant: true, reason: 'ok', source: 'sim',
});
const segFiles = (dir: string) => readdirSync(dir).filter((n) => /^seg-\d{16}\.jnl$/.test(n)).sort();
const firstSeq = (name: string) => Number(name.slice(4, 20));

/** Alarms as (name, detail), whichever way the journal emits them. */
function alarmsOf(j: FileJournal): { name: string; detail?: string }[] {
  const out: { name: string; detail?: string }[] = [];
  j.onAlarm((a) => out.push({ name: a.alarm, detail: alarmText(a) }));
  return out;
}

async function journalOf(dir: string, n: number, opts: object = {}): Promise<void> {
  const j = await FileJournal.open({ dir, laneId: 'L1', ...opts });
  for (let i = 1; i <= n; i++) expect(await j.append(entry(i))).toBe(i);
  await j.close();
}

describe('journal recovery', () => {
  it('one flipped bit in record 3 of 10: the other 9 are kept and uploaded, the file kept aside, seq 3 is never handed out again', async () => {
    const dir = tmp();
    await journalOf(dir, 10);
    const f = join(dir, segFiles(dir)[0]);
    const original = readFileSync(f);
    const rec3 = scanSegment(original, 1).records[2];
    const flipped = Buffer.from(original);
    flipped[rec3.offset + rec3.length - 5] ^= 0x08;
    writeFileSync(f, flipped);

    const bo = new Backoffice({ db: ':memory:' });
    const { url } = await bo.listen(0);
    const j = await FileJournal.open({ dir, laneId: 'R1', uploadUrl: url, uploadIntervalMs: 3_600_000 });
    const alarms = alarmsOf(j);
    // Nothing was raised while opening, before anyone could listen.
    expect(alarms).toEqual([]);
    expect(j.lastSeq).toBe(10);
    expect(j.backlog).toBe(9);
    expect(j.recovery).toMatchObject({ segmentsScanned: 1, recordsKept: 9, recordsLostUnreadable: 1, tornBytesCut: 0 });
    expect(j.recovery.damaged).toMatchObject([{ recordsLost: 1, lostSeqs: [{ from: 3, to: 3 }], ranges: [{ from: rec3.offset, to: rec3.offset + rec3.length }] }]);
    j.raiseRecoveryAlarms();
    j.raiseRecoveryAlarms(); // once only
    expect(alarms.map((a) => a.name)).toEqual(['journal-corrupt']);
    expect(alarms[0].detail).toMatch(/1 record lost unreadable \(seq 3\), 9 kept.*damaged copy kept as seg-0000000000000001\.jnl\.damaged/);
    // The damaged bytes are kept aside as found; the segment itself now holds the nine that check.
    expect(readFileSync(`${f}.damaged`).equals(flipped)).toBe(true);
    expect(scanSegment(readFileSync(f), 1).records.map((r) => r.seq)).toEqual([1, 2, 4, 5, 6, 7, 8, 9, 10]);
    expect(await j.append(entry(11))).toBe(11);
    expect(await j.uploadNow()).toBe(true);
    await j.close();
    const rows = bo.db.prepare("SELECT seq, json_extract(entry, '$.ref') AS ref FROM transactions WHERE lane_id = 'R1' ORDER BY seq").all() as { seq: number; ref: string }[];
    expect(rows).toEqual([1, 2, 4, 5, 6, 7, 8, 9, 10, 11].map((s) => ({ seq: s, ref: `tap-${s}` })));
    // Reported once: the next open finds a clean journal and raises nothing.
    const j2 = await FileJournal.open({ dir, laneId: 'R1' });
    const again = alarmsOf(j2);
    j2.raiseRecoveryAlarms();
    expect(again).toEqual([]);
    expect(j2.recovery.damaged).toEqual([]);
    expect(j2.lastSeq).toBe(11);
    await j2.close();
    await bo.close();
  });

  it('damage in an earlier segment becomes a lane alarm, journaled, once the lane listens', async () => {
    const dir = tmp();
    await journalOf(dir, 12, { segmentBytes: 600 });
    const names = segFiles(dir);
    expect(names.length).toBeGreaterThan(2);
    const f = join(dir, names[0]);
    const b = readFileSync(f);
    const r = fileRecords(f)[1];
    b[r.offset + r.length - 30] ^= 0x01;
    writeFileSync(f, b);
    const journal = await FileJournal.open({ dir, laneId: 'L1', segmentBytes: 600 });
    const h = await laneHarness({}, { journal });
    await h.settle();
    await h.lane.stop();
    // The lane journaled the alarm (with the counts) as its own.
    const recs = segFiles(dir).flatMap((n) => scanSegment(readFileSync(join(dir, n)), firstSeq(n)).records);
    const alarm = recs.map((r) => r.entry as JournalEntry).find((e) => e.type === 'alarm' && e.alarm === 'journal-corrupt');
    expect(alarm).toMatchObject({ type: 'alarm', alarm: 'journal-corrupt' });
    expect((alarm as { detail?: string }).detail).toMatch(/1 record lost unreadable \(seq \d+\)/);
  });

  it('a crash that cut the last write short at a page boundary: seq reused; the same bytes not on a boundary: damage', async () => {
    const dir = tmp();
    await journalOf(dir, 5);
    const f = join(dir, segFiles(dir)[0]);
    markOpen(f);
    const end = dataEnd(f);
    const page = Math.ceil((end + 1) / 4096) * 4096;
    const long = encodeJournalRecord(6, { ...entry(6), source: 'y'.repeat(5000) });
    const b = readFileSync(f);
    Buffer.from(long.subarray(0, page - end)).copy(b, end);
    writeFileSync(f, b);
    let j = await FileJournal.open({ dir, laneId: 'L1' });
    expect(j.recovery).toMatchObject({ tornBytesCut: page - end, damaged: [], nextSeq: 6 });
    expect(await j.append(entry(6))).toBe(6);
    await j.close();
    // The same start of a record, but ending off a sector boundary: no write is cut there.
    markOpen(f);
    const end2 = dataEnd(f);
    const c = readFileSync(f);
    Buffer.from(encodeJournalRecord(7, { ...entry(7), source: 'y'.repeat(5000) }).subarray(0, 100)).copy(c, end2);
    writeFileSync(f, c);
    j = await FileJournal.open({ dir, laneId: 'L1', reserveBlock: 64 });
    expect(j.recovery.damaged).toHaveLength(1);
    expect(j.recovery.nextSeq).toBeGreaterThan(7);
    await j.close();
  });

  it('a kill -9 while the next segment was being started leaves no gap: the half-made file is dropped', async () => {
    const dir = tmp();
    await journalOf(dir, 5, { segmentBytes: 4096 });
    // What a kill between creating the next segment at its size and writing its header leaves.
    writeFileSync(join(dir, 'seg-0000000000000006.jnl'), Buffer.alloc(4096));
    let j = await FileJournal.open({ dir, laneId: 'L1', segmentBytes: 4096 });
    expect(j.recovery.damaged).toEqual([]);
    expect(await j.append(entry(6))).toBe(6);
    await j.close();
    // And one killed before it had any size.
    writeFileSync(join(dir, 'seg-0000000000000007.jnl'), Buffer.alloc(0));
    j = await FileJournal.open({ dir, laneId: 'L1', segmentBytes: 4096 });
    expect(j.recovery.damaged).toEqual([]);
    expect(await j.append(entry(7))).toBe(7);
    await j.close();
    expect(seqsOnDisk(dir)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('no seq comes back when the last segment lost its header and its last records, or the whole file', async () => {
    const dir = tmp();
    await journalOf(dir, 30, { segmentBytes: 1500, reserveBlock: 16 });
    const names = segFiles(dir);
    const last = join(dir, names.at(-1)!);
    const lastSeq = 30;
    // Both header slots and the last two records of the last segment with records.
    const withRecords = names.filter((n) => scanSegment(readFileSync(join(dir, n)), firstSeq(n)).records.length > 0).at(-1)!;
    const p = join(dir, withRecords);
    const b = readFileSync(p);
    const recs = scanSegment(b, firstSeq(withRecords)).records;
    b.fill(0, 0, 64);
    writeFileSync(p, b.subarray(0, recs.at(-2)!.offset));
    if (withRecords !== names.at(-1)) unlinkSync(last);
    let j = await FileJournal.open({ dir, laneId: 'L1', reserveBlock: 16 });
    expect(j.lastSeq).toBeGreaterThanOrEqual(lastSeq);
    expect(await j.append(entry(99))).toBeGreaterThan(lastSeq);
    const handedOut = j.lastSeq;
    await j.close();
    // The whole last segment gone.
    const tail = segFiles(dir).at(-1)!;
    unlinkSync(join(dir, tail));
    j = await FileJournal.open({ dir, laneId: 'L1', reserveBlock: 16 });
    expect(await j.append(entry(100))).toBeGreaterThan(handedOut);
    await j.close();
  });

  it('a segment that cannot be started keeps the journal writing to the old one; the batch that filled it settles once', async () => {
    const dir = tmp();
    const j = await FileJournal.open({ dir, laneId: 'L1', segmentBytes: 800, probeMinMs: 5, probeMaxMs: 20 });
    const alarms = alarmsOf(j);
    const seqs: number[] = [];
    for (let i = 1; i <= 3; i++) seqs.push(await j.append(entry(i)));
    // The next segment's name is taken by a directory: creating it fails (EEXIST, then EISDIR).
    const segsBefore = j.segmentCount;
    for (let s = j.lastSeq + 1; s <= j.lastSeq + 12; s++) mkdirSync(join(dir, `seg-${String(s).padStart(16, '0')}.jnl`));
    for (let i = 4; i <= 12; i++) seqs.push(await j.append(entry(i)));
    expect(seqs).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(j.counters.rotationFailures).toBeGreaterThan(0);
    expect(j.counters.rejectedAppends).toBe(0);
    expect(j.segmentCount).toBe(segsBefore);
    expect(alarms.map((a) => a.name)).toEqual(['journal-io-error']);
    for (const n of readdirSync(dir)) if (statSync(join(dir, n)).isDirectory()) rmdirSync(join(dir, n));
    // Space for the next segment again: it is started within a bounded number of appends.
    for (let k = 0; k < 200 && j.segmentCount === segsBefore; k++) {
      seqs.push(await j.append(entry(seqs.length + 1)));
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(j.segmentCount).toBeGreaterThan(segsBefore);
    await j.close();
    const onDisk = segFiles(dir).flatMap((n) => scanSegment(readFileSync(join(dir, n)), firstSeq(n)).records.map((r) => r.seq));
    expect(onDisk).toEqual(seqs);
  });

  it('a back office that holds other content for a seq (409 naming it): counted as delivered, one alarm, not sent again', async () => {
    const dir = tmp();
    const bodies: { records: { seq: number }[] }[] = [];
    const server = createServer((req, res) => {
      let text = '';
      req.on('data', (c) => (text += c));
      req.on('end', () => {
        const body = JSON.parse(text) as { records: { seq: number }[] };
        bodies.push(body);
        const conflicts = body.records.filter((r) => r.seq === 2).map((r) => ({ seq: r.seq, status: 409, error: 'conflict', message: 'held with other content' }));
        res.writeHead(conflicts.length ? 409 : 200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ accepted: body.records.length - conflicts.length, duplicates: 0, conflicts }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const j = await FileJournal.open({ dir, laneId: 'C1', uploadUrl: url, uploadIntervalMs: 3_600_000 });
    const alarms = alarmsOf(j);
    for (let i = 1; i <= 3; i++) await j.append(entry(i));
    expect(await j.uploadNow()).toBe(true);
    expect(j.backlog).toBe(0);
    expect(j.counters.uploadConflicts).toBe(1);
    expect(alarms.map((a) => a.name)).toEqual(['journal-upload-conflict']);
    expect(alarms[0].detail).toMatch(/seq 2 with other content .*both versions kept/);
    await j.append(entry(4));
    expect(await j.uploadNow()).toBe(true);
    expect(bodies.map((b) => b.records.map((r) => r.seq))).toEqual([[1, 2, 3], [4]]);
    await j.close();
    await new Promise<void>((r) => server.close(() => r()));
  });
});

