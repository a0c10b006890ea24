// A gate array on one box, on real parts (test/array/harness.ts): one list store and one sync for every
// lane, each lane's own journal and seq uploaded to the back office, a rider's entry known to every lane
// (anti-passback), one lane's barrier unplugged (or missing at start) leaving the others serving, and the
// box's health, metrics and dashboard showing every lane.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Decision } from '../../firmware/verify/decision-core.js';
import { waitUntil } from '../support/wait.js';
import { arrayRig, waitState, type ArrayRig } from './harness.js';

let rig: ArrayRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

/** Tap `card` at lane `id` and wait for that lane's decision. */
async function decide(r: ArrayRig, id: string, card: string): Promise<Decision> {
  const lane = r.lane(id);
  const got = new Promise<Decision>((resolve) => lane.events.once('decision', (e) => resolve(e.decision)));
  r.tap(id, card);
  let d: Decision | undefined;
  void got.then((x) => (d = x));
  await waitUntil(() => d !== undefined, 5000, () => `a decision at ${id}`);
  return d!;
}

/** Tap at a lane with a board, see its board open, walk the rider through and wait for the lane to be ready again. */
async function ride(r: ArrayRig, id: string, card: string): Promise<void> {
  const l = r.lanes.find((x) => x.id === id)!;
  const opens = l.board!.barrier.counts.opens;
  expect(await decide(r, id, card)).toMatchObject({ grant: true, reason: 'ok' });
  await waitUntil(() => l.board!.barrier.counts.opens === opens + 1, 5000, () => `${id}'s board to open`);
  l.board!.barrier.walkThrough('entry');
  await waitState(r, id, 'normal.ready');
}

describe('a gate array on one box', () => {
  it('one list and one sync for every lane; each lane opens for its riders, journals with its own seq, uploads it; an entry is known to every lane', async () => {
    const r = (rig = await arrayRig({ ports: 3 }));
    await waitUntil(() => r.array.lists.current().version >= 1, 10_000, () => 'the list synced');
    for (const l of r.lanes) await waitState(r, l.id, 'normal.ready');

    // The list is held once: every lane's decision core reads the one provider; one sync polled the back office.
    for (const lane of r.array.lanes) expect(lane.lists).toBe(r.array.lists);
    expect(r.array.lists.stats!().polls).toBeGreaterThanOrEqual(1);
    expect(r.deltasRequests()).toBe(r.array.lists.stats!().polls);

    for (const l of r.lanes) await ride(r, l.id, l.card);
    // L1's rider entered at L1: a second entry at L2 is refused, as at any other lane of the station.
    expect(await decide(r, 'L2', r.lanes[0].card)).toMatchObject({ grant: false, reason: 'passback' });

    // One journal directory, a journal per lane: each lane's seq starts at 1, and the back office holds each lane's records under its id.
    for (const l of r.lanes) expect(existsSync(join(r.dir, 'journal', l.id))).toBe(true);
    const decisionsAt = (id: string) => r.bo.transactionsPage({ laneId: id, limit: 100 }).records.filter((x) => (x.entry as { type: string }).type === 'decision');
    await waitUntil(() => r.lanes.every((l) => decisionsAt(l.id).length >= (l.id === 'L2' ? 2 : 1)), 10_000, () => 'every lane\'s decisions uploaded');
    for (const l of r.lanes) {
      const all = r.bo.transactionsPage({ laneId: l.id, limit: 100 }).records;
      expect(all[0].seq).toBe(1);
      expect(all.map((x) => x.seq)).toEqual(all.map((_, i) => i + 1));
      expect(all.every((x) => (x.entry as { laneId: string }).laneId === l.id)).toBe(true);
    }
    expect(decisionsAt('L2').map((x) => (x.entry as { reason: string }).reason)).toEqual(['ok', 'passback']);
  });

  it("one lane's barrier unplugged, another's missing at start: those lanes out of service alone, the others open; health, metrics and dashboard show every lane", async () => {
    const r = (rig = await arrayRig({ ports: 3, missing: 1 }));
    for (const id of ['L1', 'L2', 'L3']) await waitState(r, id, 'normal.ready');
    // L4's port is not there: the lane is out of service from the start, and the others serve.
    await waitState(r, 'L4', 'outOfService');
    expect(r.lane('L4').view().faults['barrier-link']).toBeDefined();

    await r.lanes[1].pty!.unplug();
    await waitState(r, 'L2', 'outOfService');
    expect(r.lane('L2').view().faults['barrier-link']).toBeDefined();
    const l2Opens = r.lanes[1].board!.barrier.counts.opens;
    expect(await decide(r, 'L2', r.lanes[1].card)).toMatchObject({ grant: false, reason: 'out-of-service' });
    expect(await decide(r, 'L4', r.lanes[3].card)).toMatchObject({ grant: false, reason: 'out-of-service' });
    // The others still open for their riders.
    await ride(r, 'L1', r.lanes[0].card);
    await ride(r, 'L3', r.lanes[2].card);
    expect(r.lanes[1].board!.barrier.counts.opens).toBe(l2Opens);

    // /readyz: every lane's checks, the unplugged and missing ones failing.
    const ready = await r.get('/readyz');
    expect(ready.status).toBe(503);
    const checks = ((await ready.json()) as { checks: Record<string, { ok: boolean; detail: string }> }).checks;
    expect(Object.keys(checks).sort()).toEqual(['L1.barrierLink', 'L1.journal', 'L2.barrierLink', 'L2.journal', 'L3.barrierLink', 'L3.journal', 'L4.barrierLink', 'L4.journal', 'lists']);
    expect([checks['L1.barrierLink'].ok, checks['L2.barrierLink'].ok, checks['L3.barrierLink'].ok, checks['L4.barrierLink'].ok]).toEqual([true, false, true, false]);
    expect(checks['L1.journal'].detail).toContain(join(r.dir, 'journal', 'L1'));

    // /metrics: every lane's series under its label, each family once, the process metrics once.
    const text = await (await r.get('/metrics')).text();
    const up = (id: string) => new RegExp(`^gate_barrier_link_up\\{[^}]*lane="${id}"[^}]*\\} (\\d)$`, 'm').exec(text)?.[1];
    expect(['L1', 'L2', 'L3', 'L4'].map(up)).toEqual(['1', '0', '1', '0']);
    const decisions = (id: string, reason: string) => text.split('\n').filter((l) => l.startsWith('gate_decisions_total{') && l.includes(`lane="${id}"`) && l.includes(`reason="${reason}"`));
    expect(decisions('L1', 'ok')).toEqual([expect.stringMatching(/ 1$/)]);
    expect(decisions('L2', 'out-of-service')).toEqual([expect.stringMatching(/ 1$/)]);
    expect(text.match(/^# TYPE gate_decisions_total /gm)).toHaveLength(1);
    expect(text.match(/^gate_process_resident_memory_bytes/gm)).toHaveLength(1);

    // The dashboard: every lane.
    const state = (await (await r.get('/dashboard/api/state')).json()) as { lanes: { id?: string; laneId?: string }[] };
    expect(state.lanes).toHaveLength(4);

    // L2 plugged back in with its board: it serves again.
    await r.lanes[1].pty!.replug();
    await r.lanes[1].board!.stop();
    const { BarrierBoard } = await import('../../simulator/barrier-board.js');
    const b = new BarrierBoard({ path: r.lanes[1].pty!.b, heartbeatMs: 20, failSafeAfterMs: 2000, eventRetryMs: 15, mechanics: { openMs: 5, closeMs: 5 } });
    await b.start();
    r.lanes[1].board = b;
    await waitState(r, 'L2', 'normal.ready');
    await ride(r, 'L2', r.lanes[1].card);
  });
});
