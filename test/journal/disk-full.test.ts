// A disk that really fills up, at each place the journal writes: the append itself (a small tmpfs),
// the start of the next segment (tmpfs: a new file's first block), the fdatasync (ext4 on a loop device
// whose backing tmpfs is full: the page cache took the write, writeback fails), and a descriptor limit
// (EMFILE) when starting the next segment. Each time: the working handle is kept, entries are refused and
// exits opened while the journal cannot write, /readyz says not ready, one alarm; once space returns the
// journal comes back by itself (no restart), /readyz is ready again, nothing acted on is lost and no seq
// is handed out twice — checked at the real back office after an upload and a reopen.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { buildChild, startDiskChild, type DiskChild, type DiskKind } from '../support/journal-disk.js';

let bo: Backoffice;
let url: string;

beforeAll(async () => {
  buildChild();
  bo = new Backoffice({ db: ':memory:' });
  url = (await bo.listen(0)).url;
}, 120_000);

afterAll(async () => {
  await bo?.close();
});

type Acted = [seq: number, tap: number, rotationFailures: number];
interface AppendResult {
  acted: Acted[];
  error?: { name: string; code: string; message: string };
}
interface ChildState {
  lastSeq: number;
  segments: number;
  health: { writable: boolean; state: string; detail: string };
  counters: { rotationFailures: number; rejectedAppends: number; probes: number; writeFailures: number };
  alarms: { name: string; detail?: string }[];
}

/** Everything the child acted on, across its whole life: a seq may be handed out once only. */
class Ledger {
  readonly acted = new Map<number, number>();
  add(r: AppendResult): AppendResult {
    for (const [seq, tap] of r.acted) {
      if (this.acted.has(seq)) throw new Error(`seq ${seq} handed out twice (taps ${this.acted.get(seq)} and ${tap})`);
      this.acted.set(seq, tap);
    }
    return r;
  }
  get maxSeq(): number {
    return Math.max(0, ...this.acted.keys());
  }
}

async function session(kind: DiskKind, laneId: string, options: object, body: (c: DiskChild, l: Ledger) => Promise<void>): Promise<void> {
  const c = await startDiskChild(kind, { url, laneId, options });
  const l = new Ledger();
  try {
    await body(c, l);
    // Whatever happened, the end is the same: all uploaded, then a reopen hands out the next seq.
    expect((await c.send<{ backlog: number }>('upload')).backlog).toBe(0);
    const reopened = await c.send<{ lastSeq: number; recovery: { damaged: unknown[]; recordsLostUnreadable: number } }>('reopen');
    expect(reopened.lastSeq).toBeGreaterThanOrEqual(l.maxSeq);
    expect(reopened.recovery.damaged).toEqual([]);
    const after = l.add(await c.send<AppendResult>('append 3'));
    expect(after.error).toBeUndefined();
    expect(after.acted[0][0]).toBe(reopened.lastSeq + 1);
    expect((await c.send<{ backlog: number }>('upload')).backlog).toBe(0);
  } finally {
    await c.close();
  }
  // At the back office: every acted tap under its seq, exactly once.
  const rows = bo.db.prepare("SELECT seq, json_extract(entry, '$.ref') AS ref FROM transactions WHERE lane_id = ? ORDER BY seq").all(laneId) as { seq: number; ref: string }[];
  const atBo = new Map(rows.map((r) => [r.seq, r.ref]));
  for (const [seq, tap] of l.acted) expect(atBo.get(seq), `${laneId} acted seq ${seq}`).toBe(`tap-${tap}`);
  expect(new Set(rows.map((r) => r.seq)).size).toBe(rows.length);
}

/** While the journal cannot write: refused entries, opened exits, 503 from /readyz, fast refusals. */
async function expectDown(c: DiskChild): Promise<ChildState> {
  expect(await c.send('decide entry')).toEqual({ grant: false, reason: 'journal-unavailable' });
  expect((await c.send<{ grant: boolean }>('decide exit')).grant).toBe(true);
  const ready = await c.send<{ status: number; body: { checks: { journal: { ok: boolean; detail: string } } } }>('readyz');
  expect(ready.status).toBe(503);
  expect(ready.body.checks.journal.ok).toBe(false);
  const s = await c.send<ChildState>('state');
  expect(s.health.writable).toBe(false);
  expect(s.health.state).toBe('disk-full');
  const more = await c.send<AppendResult>('append 5');
  expect(more.acted).toEqual([]);
  expect(more.error?.code).toBe('disk-full');
  // Probes keep failing while it is full (bounded wait, no time asserted).
  expect((await c.send<{ writable: boolean }>('wait-writable 6')).writable).toBe(false);
  return c.send<ChildState>('state');
}

/** After the filler is gone: writable again by itself, ready, entries admitted, one journal-ok. */
async function expectBack(c: DiskChild, l: Ledger): Promise<ChildState> {
  expect((await c.send<{ writable: boolean }>('wait-writable 400')).writable).toBe(true);
  const ready = await c.send<{ status: number }>('readyz');
  expect(ready.status).toBe(200);
  expect(await c.send('decide entry')).toEqual({ grant: true, reason: 'ok' });
  const r = l.add(await c.send<AppendResult>('append 10'));
  expect(r.error).toBeUndefined();
  expect(r.acted).toHaveLength(10);
  const s = await c.send<ChildState>('state');
  expect(s.alarms.filter((a) => a.name === 'journal-ok')).toHaveLength(1);
  expect(s.alarms.at(-1)?.name).toBe('journal-ok');
  return s;
}

describe('journal on a disk that fills up (real ENOSPC and EMFILE, private mount namespace)', () => {
  it('ENOSPC at append (tmpfs): refused, one alarm, not ready; back by itself when space returns', async () => {
    await session('tmpfs', 'DA', { segmentBytes: 64 * 1024 }, async (c, l) => {
      expect(l.add(await c.send<AppendResult>('append 20')).error).toBeUndefined();
      await c.send('fill');
      // The tail block's slack takes a few more, then an append fails.
      const r = l.add(await c.send<AppendResult>('append 500'));
      expect(r.error?.code).toBe('disk-full');
      const down = await expectDown(c);
      expect(down.alarms.map((a) => a.name)).toEqual(['journal-disk-full']);
      expect(down.counters.probes).toBeGreaterThan(0);
      await c.send('unfill');
      const back = await expectBack(c, l);
      expect(back.alarms.map((a) => a.name)).toEqual(['journal-disk-full', 'journal-ok']);
    });
  });

  it('ENOSPC when starting the next segment (tmpfs): keeps writing to the old one, rotates once space returns', async () => {
    // Segments of 2 pages + 1 KiB: fill the disk while the tail page has room, then cross the size.
    await session('tmpfs', 'DR', { segmentBytes: 9216 }, async (c, l) => {
      expect(l.add(await c.send<AppendResult>('append-to-size 8193')).error).toBeUndefined();
      const before = await c.send<ChildState>('state');
      await c.send('fill');
      const r = l.add(await c.send<AppendResult>('append 500'));
      const s = await c.send<ChildState>('state');
      // Appends after the failed rotation were made durable in the old segment (the handle was kept).
      expect(s.segments).toBe(before.segments);
      expect(r.acted.length).toBeGreaterThan(1);
      expect(s.counters.rotationFailures).toBeGreaterThan(0);
      expect(r.acted.filter(([, , rotationFailures]) => rotationFailures > 0).length).toBeGreaterThan(0);
      expect(s.alarms.filter((a) => a.name === 'journal-io-error').map((a) => a.detail)).toEqual([expect.stringMatching(/ENOSPC.*still writing to seg-/)]);
      // Then the page is full too: the journal cannot write.
      expect(r.error?.code).toBe('disk-full');
      await expectDown(c);
      await c.send('unfill');
      await expectBack(c, l);
      let segments = s.segments;
      for (let k = 0; k < 100 && segments === s.segments; k++) {
        expect(l.add(await c.send<AppendResult>('append 5')).error).toBeUndefined();
        segments = (await c.send<ChildState>('state')).segments;
      }
      expect(segments).toBeGreaterThan(s.segments);
    });
  });

  it('ENOSPC at fdatasync (ext4 on a loop device over a full tmpfs): the failed commit is cut, nothing lost, back by itself', async () => {
    await session('ext4-on-tmpfs', 'DF', { segmentBytes: 256 * 1024 }, async (c, l) => {
      expect(l.add(await c.send<AppendResult>('append 20')).error).toBeUndefined();
      await c.send('fill');
      const r = l.add(await c.send<AppendResult>('append 3000'));
      expect(r.error?.code).toBe('disk-full');
      expect(r.error?.message).toMatch(/fdatasync .*ENOSPC|ENOSPC.*fdatasync|fdatasync seg-.*no space/i);
      const down = await expectDown(c);
      expect(down.alarms.map((a) => a.name)).toEqual(['journal-disk-full']);
      await c.send('unfill');
      await expectBack(c, l);
    });
  });

  it('EMFILE when starting the next segment: keeps writing to the old one, rotates once descriptors return', async () => {
    await session('fd-limit', 'DM', { segmentBytes: 2048 }, async (c, l) => {
      expect(l.add(await c.send<AppendResult>('append 5')).error).toBeUndefined();
      const before = await c.send<ChildState>('state');
      expect((await c.send<{ code: string }>('exhaust-fds')).code).toBe('EMFILE');
      const r = l.add(await c.send<AppendResult>('append 40'));
      expect(r.error).toBeUndefined();
      const s = await c.send<ChildState>('state');
      expect(s.counters.rotationFailures).toBeGreaterThan(0);
      expect(s.segments).toBe(before.segments);
      expect(s.health.writable).toBe(true);
      expect(s.alarms.map((a) => a.name)).toEqual(['journal-io-error']);
      await c.send('release-fds');
      let segments = s.segments;
      for (let k = 0; k < 100 && segments === s.segments; k++) {
        expect(l.add(await c.send<AppendResult>('append 5')).error).toBeUndefined();
        segments = (await c.send<ChildState>('state')).segments;
      }
      expect(segments).toBeGreaterThan(s.segments);
    });
  });
});
