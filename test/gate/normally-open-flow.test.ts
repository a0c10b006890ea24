// The simulator's normally-open rider flow (simulator/lane-mechanics.ts) against a real normally-open lane:
// who may step in next. A torn tap's "tap again" is no answer: the rider taps again at once, so the next
// rider waits for that answer even if the torn rider's body has left meanwhile (else the next rider's tap
// lands while the retry is still due and the station loses a rider: bench flaps ran for ever on seed 2).
import { describe, expect, it } from 'vitest';
import { NormallyOpenFlow } from '../../simulator/lane-mechanics.js';
import { laneHarness } from '../support/lane-harness.js';

describe('normally-open rider flow: who steps in next', () => {
  it('"tap again" holds the next rider until the retry is answered, whatever the body did meanwhile', async () => {
    const h = await laneHarness({ lane: { id: 'L1', direction: 'entry', flaps: 'normally-open' } });
    await h.advance(400); // the flaps open for the regime
    const flow = new NormallyOpenFlow(h.clock, h.board, 'entry', 7);
    let taps = 0;
    let released = 0;
    flow.enter('entry', { tailgater: false }, { tap: () => taps++, release: () => released++, busy: () => false });
    await h.advance(700);
    expect(taps).toBe(1);
    flow.answered(false, true);
    // The body (its tap never reached the lane here) is stopped at the flaps, turns back and leaves; the lane reopens.
    await h.advance(8000);
    expect(h.board.bodies.size).toBe(0);
    expect(h.board.flaps).toBe('open');
    expect(released).toBe(0);
    flow.answered(true);
    await h.advance(0);
    expect(released).toBe(1);
  });

  it('a plain refusal is an answer: the next rider steps in once the lane is clear', async () => {
    const h = await laneHarness({ lane: { id: 'L1', direction: 'entry', flaps: 'normally-open' } });
    await h.advance(400);
    const flow = new NormallyOpenFlow(h.clock, h.board, 'entry', 7);
    let released = 0;
    flow.enter('entry', { tailgater: false }, { tap: () => {}, release: () => released++, busy: () => false });
    await h.advance(700);
    flow.answered(false);
    await h.advance(8000);
    expect(released).toBe(1);
  });
});

describe('normally-open rider flow: a refused rider', () => {
  it('reaches the flaps at walking pace whatever the answer, and turns back once it has reacted, not after waiting there', async () => {
    // Seed 3: the rider stops (does not walk on), and reaches the flaps before taking the refusal in.
    const h = await laneHarness({ lane: { id: 'L1', direction: 'entry', flaps: 'normally-open' } });
    await h.advance(400);
    const flow = new NormallyOpenFlow(h.clock, h.board, 'entry', 3);
    const arrivals: { atMs: number; flaps: string }[] = [];
    flow.onArrival = (a) => arrivals.push({ atMs: a.atMs, flaps: a.flaps });
    let enteredAt = 0;
    let eta = 0;
    h.board.listen((e) => {
      if (e.type === 'BODY_ENTERED') [enteredAt, eta] = [h.clock.now(), e.etaMs];
    });
    flow.enter('entry', { tailgater: false }, { tap: () => {}, release: () => {}, busy: () => false });
    await h.advance(600);
    const answeredAt = h.clock.now();
    flow.answered(false);
    let leftAt = 0;
    h.board.listen((e) => {
      if (e.type === 'BODY_LEFT') leftAt = h.clock.now();
    });
    await h.advance(6000);
    // Its close-by time passed without an authorisation: the lane shut the flaps, and the body met them shut, on time.
    expect(arrivals.map((a) => a.flaps)).toEqual(['closed']);
    expect(arrivals[0].atMs - enteredAt).toBeCloseTo(eta, 0);
    expect(arrivals[0].atMs).toBeLessThan(answeredAt + flow.model.reactMs);
    // Back out: turn, then the walk back from the flaps; no wait there for them to open.
    expect(leftAt).toBeGreaterThan(0);
    expect(leftAt - (answeredAt + flow.model.reactMs)).toBeCloseTo(flow.model.turnMs + (eta / 1000) * 1000, -1);
  });
});
