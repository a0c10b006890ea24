// DISPLAY_DATE (frame 0x0D) between the real serial driver and the virtual board over a real pty: a board
// that knows it shows the day; its acks lost, the board's SESSION_ACK names it as executed; a board built
// before it answers NACK unsupported (COMMAND_FAILED, not executed) while the dateless DISPLAY before it
// shows and the link stays up.
import { afterEach, describe, expect, it } from 'vitest';
import { barrierRig, type BarrierRig } from './harness.js';

const STEADY = { link: { silenceMs: 1000 }, board: { failSafeAfterMs: 5000 } };
const ADVISE = 4; // protocol/reasons.ts advise-register

let rig: BarrierRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe('DISPLAY_DATE over a pty', () => {
  it('a board that knows it shows the day; with every ack lost, SESSION_ACK says it executed it', async () => {
    rig = await barrierRig(STEADY);
    const { link, board } = rig;
    await rig.waitFor(() => link.state === 'up', 5000, 'link up');
    expect(await link.request({ type: 'DISPLAY', textId: ADVISE })).toMatchObject({ ok: true });
    expect(await link.request({ type: 'DISPLAY_DATE', textId: ADVISE, day: '2022-05-25' })).toMatchObject({ ok: true });
    expect(board.barrier.display).toEqual({ textId: ADVISE, day: '2022-05-25' });
    board.faults.dropAnswers = 'DISPLAY_DATE';
    expect(await link.request({ type: 'DISPLAY_DATE', textId: ADVISE, day: '2022-05-29' })).toEqual({ ok: true, attempts: 4, ackLost: true });
    expect(board.session.lastExecuted).toMatchObject({ command: 'DISPLAY_DATE' });
    expect(board.barrier.display).toEqual({ textId: ADVISE, day: '2022-05-29' });
  });

  it('a board built before it: NACK unsupported, reported not executed; the DISPLAY before it shows, the link stays up', async () => {
    rig = await barrierRig({ ...STEADY, board: { ...STEADY.board, displayDate: false } });
    const { link, board, events } = rig;
    await rig.waitFor(() => link.state === 'up', 5000, 'link up');
    const mark = events.length;
    expect(await link.request({ type: 'DISPLAY', textId: ADVISE })).toMatchObject({ ok: true });
    const o = await link.request({ type: 'DISPLAY_DATE', textId: ADVISE, day: '2022-05-25' });
    expect(o).toMatchObject({ ok: false });
    // (A loaded machine may retransmit it before the NACK arrives: each copy is NACKed, none executed.)
    expect(board.counts.nacks).toBeGreaterThanOrEqual(1);
    expect(board.barrier.display).toEqual({ textId: ADVISE });
    const failed = events.slice(mark).filter((e) => e.type === 'COMMAND_FAILED');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ command: 'DISPLAY_DATE', executed: false });
    expect(link.state).toBe('up');
    expect(await link.request({ type: 'CLOSE' })).toMatchObject({ ok: true });
  });
});
