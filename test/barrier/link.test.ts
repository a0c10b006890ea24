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
    await rig.waitEvent((e) => e.type === 'FLAPS' && e.position === 'open', 5000, 0);
    expect(board.barrier.counts.opens).toBe(1);
    expect(board.barrier.flaps).toBe('open');
    expect(link.counters.resyncs).toBe(1);
  });

  it('board silent → LINK down, an OPEN fails, other commands wait; board back → STATUS resync → LINK up → they go', async () => {
    rig = await barrierRig({ link: { silenceMs: 120 }, board: { failSafeAfterMs: 5000 } });
    const { link, board, events } = rig;
    await rig.waitFor(() => link.state === 'up', 5000, 'link up');
    board.faults.silent = true;
    const down = await rig.waitEvent((e) => e.type === 'LINK' && !e.up);
    expect(down).toMatchObject({ detail: expect.stringContaining('no frame from the board') });
    expect(await link.request({ type: 'OPEN', direction: 'entry', passages: 1 })).toMatchObject({ ok: false, executed: false });
    expect(board.barrier.counts.opens).toBe(0);
    const waiting = link.request({ type: 'SET_MODE', mode: 'free' });
    const from = events.length;
    board.faults.silent = false;
    await rig.waitFor(() => link.state === 'up', 5000, 'link back up');
    expect(await waiting).toMatchObject({ ok: true });
    expect(board.barrier.mode).toBe('free');
    const after = events.slice(from).map((e) => e.type);
    // The lane hears "up" only once the board's status is in, and gets that status right after.
    expect(after.slice(after.indexOf('LINK'), after.indexOf('LINK') + 2)).toEqual(['LINK', 'STATUS']);
    expect(link.counters.resyncs).toBe(2);
    expect(await link.request({ type: 'OPEN', direction: 'entry', passages: 1 })).toMatchObject({ ok: true });
    expect(board.barrier.counts.opens).toBe(1);
  });

  it('runtime silent → the board takes its configured safe state (open for egress, or locked)', async () => {
    for (const failSafe of ['open', 'locked'] as const) {
      rig = await barrierRig({ board: { failSafeAfterMs: 100, mechanics: { openMs: 5, closeMs: 5, failSafe } } });
      await rig.waitFor(() => rig!.link.state === 'up', 5000, 'link up');
      if (failSafe === 'locked') await rig.link.request({ type: 'OPEN', direction: 'entry', passages: 1 });
      await rig.link.stop();
      await rig.waitFor(() => rig!.board.counts.failSafes === 1, 5000, 'fail-safe');
      await rig.waitFor(() => rig!.board.barrier.flaps === (failSafe === 'open' ? 'open' : 'closed'), 5000, `flaps ${failSafe}`);
      expect(rig.board.barrier.authorised).toBe(0);
      await rig.close();
      rig = undefined;
    }
  });

  it('unplug and replug of the device: link down, reopened without restart, resynced, serving again', async () => {
    rig = await barrierRig();
    const { link, board, pty } = rig;
    await rig.waitFor(() => link.state === 'up', 5000, 'link up');
    const mark = rig.events.length;
    await pty.unplug();
    await rig.waitEvent((e) => e.type === 'LINK' && !e.up, 5000, mark);
    expect(link.state).toBe('down');
    await pty.replug();
    await rig.waitFor(() => link.state === 'up', 10_000, 'link up after replug');
    expect(link.counters.reopens).toBeGreaterThanOrEqual(1);
    expect(board.counts.reopens).toBeGreaterThanOrEqual(1);
    expect(await link.request({ type: 'SET_MODE', mode: 'free' })).toMatchObject({ ok: true });
    await rig.waitFor(() => board.barrier.mode === 'free', 2000, 'mode free');
  });

  it('fire alarm, stuck flap and sensor fault reach the runtime as events', async () => {
    rig = await barrierRig();
    const { link, board } = rig;
    await rig.waitFor(() => link.state === 'up', 5000, 'link up');
    board.setFireAlarm(true);
    await rig.waitEvent((e) => e.type === 'FIRE_ALARM' && e.active);
    await rig.waitEvent((e) => e.type === 'FLAPS' && e.position === 'open', 5000, 0);
    expect(board.barrier.mode).toBe('emergency');
    board.setFireAlarm(false);
    await rig.waitEvent((e) => e.type === 'FIRE_ALARM' && !e.active);
    await link.request({ type: 'SET_MODE', mode: 'normal' });
    board.setStuckFlap(true);
    link.send({ type: 'OPEN', direction: 'entry', passages: 1 });
    await rig.waitEvent((e) => e.type === 'FAULT' && e.code === 0x0101);
    expect(board.barrier.flaps).toBe('opening');
    board.setStuckFlap(false);
    board.setSensorFault(true);
    await rig.waitEvent((e) => e.type === 'FAULT' && e.code === 0x0201);
    const mark = rig.events.length;
    board.setSensorFault(false);
    await rig.waitEvent((e) => e.type === 'STATUS' && e.faultCode === 0, 5000, mark);
    board.emergencyButton(true);
    await rig.waitEvent((e) => e.type === 'EMERGENCY_BUTTON' && e.active);
    board.power('battery');
    await rig.waitEvent((e) => e.type === 'POWER' && e.state === 'battery');
  });

  it('the port missing at start: LINK down, retried until it appears', async () => {
    const { SerialBarrierLink } = await import('../../drivers/serial-barrier.js');
    const { ptyPair } = await import('../support/pty.js');
    const { BarrierBoard } = await import('../../simulator/barrier-board.js');
    const pty = await ptyPair('late');
    await pty.unplug();
    const events: { type: string; up?: boolean }[] = [];
    const link = new SerialBarrierLink({ type: 'serial', path: pty.a, reopenMs: 20, heartbeatMs: 20, silenceMs: 150 });
    await link.start((e) => events.push(e));
    const until = Date.now() + 5000;
    while (!events.some((e) => e.type === 'LINK' && e.up === false) && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    expect(events[0]).toMatchObject({ type: 'LINK', up: false });
    await pty.replug();
    const board = new BarrierBoard({ path: pty.b, heartbeatMs: 20 });
    await board.start();
    while (link.state !== 'up' && Date.now() < until + 5000) await new Promise((r) => setTimeout(r, 5));
    expect(link.state).toBe('up');
    expect(link.counters.openFailures).toBeGreaterThan(0);
    await link.stop();
    await board.stop();
    await pty.close();
  });

  it('RS-485 with RTS toggling: frames still go out one at a time (a pty ignores the RTS line)', async () => {
    rig = await barrierRig({ link: { rs485: { enabled: true, rtsToggle: true } } });
    const { link, board } = rig;
    await rig.waitFor(() => link.state === 'up', 5000, 'link up');
    expect(await link.request({ type: 'OPEN', direction: 'exit', passages: 1 })).toMatchObject({ ok: true });
    expect(await link.request({ type: 'DISPLAY', textId: 12 })).toMatchObject({ ok: true });
    expect(board.barrier.counts.opens).toBe(1);
  });
});
