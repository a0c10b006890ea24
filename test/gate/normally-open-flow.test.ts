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
