// A real lane (the gate machine and decision core) on lists synced from the real back office and a
// real file journal uploading to it: registrations and status changes reach the lane's decisions, every
// decision reaches the back office, and a full journal refuses entries while exits keep working.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedBarrierLink, SimulatedSource } from '../../drivers/simulated.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import type { Decision } from '../../firmware/verify/decision-core.js';
import { FileJournal } from '../../firmware/journal/file-journal.js';
import { startLane, type Lane } from '../../firmware/composition/start-lane.js';
import { ListSync } from '../../firmware/lists/list-sync.js';
import { trustedListKey } from '../../protocol/lists/index.js';
import { VirtualClock } from '../../simulator/virtual-clock.js';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { withCheckDigit } from '../../simulator/backoffice/validate.js';
import { VirtualBarrier } from '../../simulator/virtual-barrier.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(journalOpts: { maxBytes?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'lane-sync-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const bo = new Backoffice({ db: ':memory:' });
  const { url } = await bo.listen(0);
  cleanups.push(() => bo.close());
  const sync = await ListSync.open({ url, dir: join(dir, 'lists'), trustedKeys: [trustedListKey(bo.publicKeyPem)] });
  cleanups.push(() => sync.stop());
  await sync.syncOnce();
  const journal = await FileJournal.open({ dir: join(dir, 'journal'), laneId: 'L1', uploadUrl: url, uploadIntervalMs: 3_600_000, ...journalOpts });
  const clock = new VirtualClock(Date.now());
  const board = new VirtualBarrier(clock);
  const entry = new SimulatedSource('sim-entry', 'entry', clock);
  const exit = new SimulatedSource('sim-exit', 'exit', clock);
  const config = parseLaneConfig({ lane: { id: 'L1', direction: 'bidirectional' }, policy: { antiPassbackSeconds: 0 } });
  const lane: Lane = await startLane({ config, clock, barrier: new SimulatedBarrierLink(board, clock), sources: [entry, exit], lists: sync, journal });
  cleanups.push(() => lane.stop());
  const decisions: Decision[] = [];
  lane.on('decision', (e: { decision: Decision }) => decisions.push(e.decision));
  const advance = async (ms: number) => {
    const until = clock.now() + ms;
    for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
    while (clock.step(until)) for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
    clock.advanceTo(until);
  };
  await advance(0);
  /** Present a card and wait (virtual time, with real I/O for the journal) for the lane's decision. */
  const tap = async (side: 'entry' | 'exit', cardNumber: string): Promise<Decision> => {
    const n = decisions.length;
    (side === 'entry' ? entry : exit).present({ kind: 'card', cardNumber });
    for (let i = 0; i < 2000 && decisions.length === n; i++) {
      await new Promise((r) => setTimeout(r, 1));
      await advance(5);
    }
    await advance(20_000); // let the rider walk through (or the passage time out) and the lane return to idle
    if (decisions.length === n) throw new Error('no decision');
    return decisions[n];
  };
  const post = (path: string, body: unknown) => fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { bo, sync, journal, lane, tap, post };
}

const card = withCheckDigit('310410001234567890'.slice(0, 18));

describe('lane on synced lists and a file journal', () => {
  it('a registration and a status change reach the lane through sync; every decision reaches the back office once', async () => {
    const { bo, sync, journal, tap, post } = await setup();
    expect((await tap('entry', card)).reason).toBe('not-registered');
    const r = await post('/v1/registrations', { credentialType: 'yikatong-card', number: card, rider: { name: '李四', phone: '13900139000' }, consent: true });
    expect(r.status).toBe(201);
    bo.publish();
    await sync.syncOnce();
    expect(await tap('entry', card)).toMatchObject({ grant: true, reason: 'ok' });
    await post('/v1/status', { key: `card:${card}`, status: 'yellow' });
    bo.publish();
    await sync.syncOnce();
    expect(await tap('entry', card)).toMatchObject({ grant: false, reason: 'status-yellow' });
    expect(await tap('exit', card)).toMatchObject({ grant: true });
    expect(await journal.uploadNow()).toBe(true);
    const rows = bo.db.prepare("SELECT seq, json_extract(entry, '$.reason') AS reason FROM transactions WHERE lane_id = 'L1' AND type = 'decision' ORDER BY seq").all() as { reason: string }[];
    expect(rows.map((x) => x.reason)).toEqual(['not-registered', 'ok', 'status-yellow', 'ok']);
  });

  it('a full journal refuses entries (journal-unavailable) and raises an alarm, while exits keep opening', async () => {
    const { bo, sync, journal, tap } = await setup({ maxBytes: 65536 });
    bo.importEntries([[`card:${card}`, 'green']]);
    bo.publish();
    await sync.syncOnce();
    const alarms: string[] = [];
    journal.onAlarm((a) => alarms.push(a.alarm));
    // Fill the journal to its quota with other records.
    for (const size of [500, 50, 0]) {
      for (;;) {
        try {
          await journal.append({ type: 'alarm', laneId: 'L1', atMs: Date.now(), alarm: 'f', detail: 'x'.repeat(size) });
        } catch {
          break;
        }
      }
    }
    expect(alarms).toContain('journal-disk-full');
    expect(await tap('entry', card)).toMatchObject({ grant: false, reason: 'journal-unavailable' });
    expect(await tap('exit', card)).toMatchObject({ grant: true });
  });
});
