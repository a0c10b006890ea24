// A gate array whose lanes have different flaps (test/array/harness.ts: real ptys, the real serial driver,
// the byte-level board on the other end): each lane runs in its own `flaps` mode against its own board. The
// normally-open lane tells its board so, rests open, authorises a rider who taps while walking and closes fast
// in front of a body that did not tap; the normally-closed lane beside it never hears of either.
import { afterEach, describe, expect, it } from 'vitest';
import type { Decision } from '../../firmware/verify/decision-core.js';
import { waitUntil } from '../support/wait.js';
import { arrayRig, waitState, type ArrayRig } from './harness.js';

let rig: ArrayRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

async function decide(r: ArrayRig, id: string, card: string): Promise<Decision> {
  const got = new Promise<Decision>((resolve) => r.lane(id).events.once('decision', (e) => resolve(e.decision)));
  r.tap(id, card);
  let d: Decision | undefined;
  void got.then((x) => (d = x));
  await waitUntil(() => d !== undefined, 5000, () => `a decision at ${id}`);
  return d!;
}

describe('a gate array with a normally-open and a normally-closed lane', () => {
  it('each lane runs in its own flaps mode against its own board', async () => {
    const r = (rig = await arrayRig({ ports: 2, flaps: ['normally-open', 'normally-closed'] }));
    await waitUntil(() => r.array.lists.current().version >= 1, 10_000, () => 'the list synced');
    await waitState(r, 'L1', 'normal.flowing');
    await waitState(r, 'L2', 'normal.ready');
    const open = r.lanes[0].board!.barrier;
    const closed = r.lanes[1].board!.barrier;
    await waitUntil(() => open.flaps === 'open', 5000, () => `L1's flaps to rest open (they are ${open.flaps})`);
    expect(open.regime).toBe('normally-open');
    expect(closed.regime).toBe('normally-closed');
    expect(closed.flaps).toBe('closed');

    // L1: a rider taps while walking; the lane authorises that body, the flaps never close.
    const rider = open.bodyEnters('entry', 2000);
    await waitUntil(() => r.lane('L1').view().state === 'normal.flowing' && open.bodies.size === 1, 5000, () => 'L1 to see the body');
    expect(await decide(r, 'L1', r.lanes[0].card)).toMatchObject({ grant: true, reason: 'ok' });
    await waitUntil(() => open.bodies.get(rider)?.authorised === true, 5000, () => 'L1 to authorise the rider');
    expect(open.bodyAtFlaps(rider)).toBe('open');
    expect(open.bodyCrosses(rider)).toBe('passed');
    expect(open.counts).toMatchObject({ opens: 0, fastCloses: 0, intrusions: 0 });

    // L1: a body walks in and does not tap: the flaps shut in front of it before it gets there.
    const sneak = open.bodyEnters('entry', 1500);
    await waitState(r, 'L1', 'normal.blocking');
    await waitUntil(() => open.flaps === 'closed', 5000, () => `L1's flaps to shut (they are ${open.flaps})`);
    expect(open.bodyAtFlaps(sneak)).toBe('closed');
    open.bodyTurnsBack(sneak);
    await waitState(r, 'L1', 'normal.flowing');
    await waitUntil(() => open.flaps === 'open', 5000, () => `L1's flaps to open again (they are ${open.flaps})`);
    expect(open.counts.fastCloses).toBe(1);

    // L2 beside it: normally closed, opens for one passage once its decision is durable, reports no bodies.
    expect(await decide(r, 'L2', r.lanes[1].card)).toMatchObject({ grant: true, reason: 'ok' });
    await waitUntil(() => closed.counts.opens === 1, 5000, () => "L2's board to open");
    closed.walkThrough('entry');
    await waitState(r, 'L2', 'normal.ready');
    await waitUntil(() => closed.flaps === 'closed', 5000, () => `L2's flaps to close (they are ${closed.flaps})`);
    expect(closed.reportsBodies).toBe(false);
    expect(closed.counts).toMatchObject({ passed: 1, fastCloses: 0, authorisations: 0, intrusions: 0 });
  });

  it('a lane without `flaps` is normally closed, and a lane says which it is in its own config', async () => {
    const { laneConfigOf, parseArrayConfig } = await import('../../firmware/config/array-config.js');
    const lane = (id: string, flaps?: string) => ({ id, ...(flaps ? { flaps } : {}), drivers: { barrier: { type: 'simulated' } } });
    const c = parseArrayConfig({ lanes: [lane('A', 'normally-open'), lane('B'), lane('C', 'normally-closed')] });
    expect([0, 1, 2].map((i) => laneConfigOf(c, i).lane.flaps)).toEqual(['normally-open', 'normally-closed', 'normally-closed']);
    expect(() => parseArrayConfig({ lanes: [lane('A', 'half-open')] })).toThrow(/lanes\[0\]\.flaps/);
  });
});
