// Every bit of a middle segment, flipped in turn (a segment of three records, about 3,000 bits): after
// each flip the journal is reopened and uploads to the real back office on loopback. Every record that
// still checks reaches it exactly once, with its content; the damaged one is the only one missing; the
// next append gets the seq after the last ever handed out (none is reused); the damaged file is kept aside.
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileJournal } from '../../firmware/journal/file-journal.js';
import type { JournalEntry } from '../../firmware/journal/journal.js';
import { scanSegment } from '../../firmware/journal/segment.js';
import { Backoffice } from '../../simulator/backoffice/server.js';

// Short records keep the segment (and the number of bits) small; the seq is in atMs, to check content.
const entry = (i: number): JournalEntry => ({ type: 'passage', laneId: 'L1', atMs: i, direction: 'entry', outcome: 'passed' });
const segFiles = (dir: string) => readdirSync(dir).filter((n) => /^seg-\d{16}\.jnl$/.test(n)).sort();

let base: string;
let pristine: string;
let bo: Backoffice;
let url: string;

beforeAll(async () => {
  // Thousands of reopen-and-upload rounds: on tmpfs (/dev/shm) when there is one, fsync is free there and
  // what is tested is what recovery reads and keeps, not the disk.
  base = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'journal-bitflip-'));
  pristine = join(base, 'pristine');
  // Three records per segment: seg 1-3, seg 4-6 (the middle one), seg 7-9, and the working one from 10.
  const j = await FileJournal.open({ dir: pristine, laneId: 'L1', segmentBytes: 300 });
  for (let i = 1; i <= 9; i++) await j.append(entry(i));
  await j.close();
  bo = new Backoffice({ db: ':memory:' });
  url = (await bo.listen(0)).url;
});

afterAll(async () => {
  await bo?.close();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('journal: every bit of a middle segment flipped', () => {
  it('keeps and uploads exactly once every record that still checks, reuses no seq', async () => {
    const names = segFiles(pristine);
    expect(names.map((n) => Number(n.slice(4, 20)))).toEqual([1, 4, 7, 10]);
    const middle = names[1];
    const bytes = readFileSync(join(pristine, middle));
    const recs = scanSegment(bytes, 4).records;
    expect(recs.map((r) => r.seq)).toEqual([4, 5, 6]);
    const recordAt = (byte: number) => recs.find((r) => byte >= r.offset && byte < r.offset + r.length)?.seq;
    const bits = bytes.length * 8;
    const rows = bo.db.prepare("SELECT seq, json_extract(entry, '$.atMs') AS at FROM transactions WHERE lane_id = ? ORDER BY seq");
    const failures: string[] = [];

    // A few at once: each flip is independent (its own copy, its own lane id at the back office).
    let next = 0;
    const worker = async () => {
      for (let bit = next++; bit < bits; bit = next++) {
        const dir = join(base, `b${bit}`);
        cpSync(pristine, dir, { recursive: true });
        const b = Buffer.from(bytes);
        b[bit >> 3] ^= 1 << (bit & 7);
        writeFileSync(join(dir, middle), b);
        const lane = `F${bit}`;
        const j = await FileJournal.open({ dir, laneId: lane, uploadUrl: url, uploadIntervalMs: 3_600_000 });
        const lost = recordAt(bit >> 3);
        const want = [1, 2, 3, 4, 5, 6, 7, 8, 9].filter((s) => s !== lost).concat(10);
        const got: string[] = [];
        if (j.lastSeq !== 9) got.push(`lastSeq ${j.lastSeq}`);
        if (j.recovery.damaged.length !== 1) got.push(`damaged ${JSON.stringify(j.recovery.damaged)}`);
        if (j.recovery.recordsLostUnreadable !== (lost ? 1 : 0)) got.push(`lost ${j.recovery.recordsLostUnreadable}`);
        const seq = await j.append(entry(10));
        if (seq !== 10) got.push(`next seq ${seq}`);
        if (!(await j.uploadNow())) got.push('upload failed');
        await j.close();
        const atBo = rows.all(lane) as { seq: number; at: number }[];
        const expected = want.map((s) => ({ seq: s, at: s }));
        if (JSON.stringify(atBo) !== JSON.stringify(expected)) got.push(`back office ${JSON.stringify(atBo.map((r) => r.seq))}`);
        if (!existsSync(join(dir, `${middle}.damaged`))) got.push('no damaged copy');
        if (got.length) failures.push(`bit ${bit} (byte ${bit >> 3}, record ${lost ?? 'header'}): ${got.join('; ')}`);
        rmSync(dir, { recursive: true, force: true });
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    expect(failures.slice(0, 20)).toEqual([]);
    // Exactly once: the back office saw each of these records once (nothing sent twice).
    expect(bo.counters.duplicateTransactions).toBe(0);
    expect(bo.counters.transactions).toBe(bits * 10 - recs.reduce((a, r) => a + r.length * 8, 0));
  }, 600_000);
});
