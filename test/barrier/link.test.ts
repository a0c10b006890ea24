// The real driver against the virtual board over a real pty (socat): commands, resync, heartbeat loss,
// unplug/replug. Timeouts are short so the suite stays fast; nothing asserts on wall-clock time.
import { afterEach, describe, expect, it } from 'vitest';
import { barrierRig, type BarrierRig } from './harness.js';

let rig: BarrierRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe('serial barrier link over a pty', () => {
  it('comes up after a status resync and executes an acked OPEN once', async () => {
    rig = await barrierRig();
    const { link, board, events, waitFor } = rig;
    await waitFor(() => link.state === 'up', 5000, 'link up');
    const upAt = events.findIndex((e) => e.type === 'LINK' && e.up);
    expect(events[upAt + 1]).toMatchObject({ type: 'STATUS', flaps: 'closed', mode: 'normal' });
    expect(await link.request({ type: 'OPEN', direction: 'entry', passages: 1 })).toMatchObject({ ok: true });
    await rig.waitEvent((e) => e.type === 'FLAPS' && e.position === 'open');
    expect(board.barrier.counts.opens).toBe(1);
    expect(board.barrier.flaps).toBe('open');
    expect(link.counters.resyncs).toBe(1);
  });
});
