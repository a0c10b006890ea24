// The real driver against the virtual board over a real pty: what the board executed when every ack was
// lost, and a restarted runtime (a new SerialBarrierLink) against a board that remembers the previous
// one's last command. Assertions are on outcomes, counters and the order of frames, never on wall time.
import { afterEach, describe, expect, it } from 'vitest';
import type { BarrierEvent } from '../../protocol/barrier.js';
import type { LinkFrame } from '../../protocol/barrier-frame.js';
import { SerialBarrierLink } from '../../drivers/serial-barrier.js';
import { barrierRig, type BarrierRig } from './harness.js';

/** A link that stays up through a loaded machine's stalls: these tests are about commands, not silence. */
const STEADY = { link: { silenceMs: 1000 }, board: { failSafeAfterMs: 5000 } };

let rig: BarrierRig | undefined;
let extra: SerialBarrierLink | undefined;
afterEach(async () => {
  await extra?.stop();
  extra = undefined;
  await rig?.close();
  rig = undefined;
});

describe('every ack of a command lost (pty, board fault switches)', () => {
  it('the board executed the OPEN: settled as done, no COMMAND_FAILED, the board opened once', async () => {
    rig = await barrierRig(STEADY);
    const { link, board, events } = rig;
    await rig.waitFor(() => link.state === 'up', 5000, 'link up');
    const mark = events.length;
    board.faults.dropAnswers = 'OPEN';
    const o = await link.request({ type: 'OPEN', direction: 'entry', passages: 1 });
    expect(o).toEqual({ ok: true, attempts: 4, ackLost: true });
    expect(board.counts.answersDropped).toBe(4); // the first answer and the three to retransmissions
    expect(board.barrier.counts.opens).toBe(1);
    expect(events.slice(mark).filter((e) => e.type === 'COMMAND_FAILED')).toEqual([]);
    expect(link.counters).toMatchObject({ ackLostExecuted: 1, ackLostNotExecuted: 0, ackLostUnknown: 0, commandFailures: 0 });
    // The line is clean again: the next command is acknowledged as usual.
    board.faults.dropAnswers = undefined;
    expect(await link.request({ type: 'CLOSE' })).toMatchObject({ ok: true });
    expect(link.counters.ackLostExecuted).toBe(1);
  });

  it('the board executed nothing (the OPEN lost on the way in): COMMAND_FAILED with executed false', async () => {
    rig = await barrierRig(STEADY);
    const { link, board, events } = rig;
    await rig.waitFor(() => link.state === 'up', 5000, 'link up');
    const mark = events.length;
    board.faults.dropCommands = 'OPEN';
    const o = await link.request({ type: 'OPEN', direction: 'entry', passages: 1 });
    expect(o).toMatchObject({ ok: false, executed: false, detail: expect.stringMatching(/^no answer after 4 attempts; the board did not execute it \(its last executed command: /) });
    expect(board.counts.commandsDropped).toBe(4);
    expect(board.barrier.counts.opens).toBe(0);
    expect(events.slice(mark).filter((e) => e.type === 'COMMAND_FAILED')).toEqual([
      { type: 'COMMAND_FAILED', command: 'OPEN', port: rig.pty.a, executed: false, detail: (o as { detail: string }).detail },
    ]);
    expect(link.counters.ackLostNotExecuted).toBe(1);
  });

  it('the question is lost too (every answer dropped): COMMAND_FAILED, and the detail says the truth is unknown', async () => {
    rig = await barrierRig(STEADY);
    const { link, board, events } = rig;
    await rig.waitFor(() => link.state === 'up', 5000, 'link up');
    const mark = events.length;
    board.faults.dropAnswers = 'all';
    const o = await link.request({ type: 'SET_MODE', mode: 'free' });
    expect(o).toEqual({ ok: false, detail: 'no answer after 4 attempts; asking the board what it executed failed too (no answer after 4 attempts): unknown whether it executed SET_MODE' });
    const failed = events.slice(mark).filter((e) => e.type === 'COMMAND_FAILED');
    expect(failed).toHaveLength(1);
    expect(failed[0]).not.toHaveProperty('executed');
    expect(link.counters.ackLostUnknown).toBe(1);
  });

  it('a board without sessions (built before them): the link works, and a command with lost acks is reported unknown', async () => {
    rig = await barrierRig({ ...STEADY, board: { ...STEADY.board, sessions: false } });
    const { link, board } = rig;
    await rig.waitFor(() => link.state === 'up', 5000, 'link up');
    expect(link.boardSupportsSessions).toBe(false);
    expect(await link.request({ type: 'DISPLAY', textId: 3 })).toMatchObject({ ok: true });
    board.faults.dropAnswers = 'OPEN';
    const o = await link.request({ type: 'OPEN', direction: 'entry', passages: 1 });
    expect(o).toEqual({ ok: false, detail: 'no answer after 4 attempts; the board does not report what it executed (no SESSION support): unknown whether it executed OPEN' });
    expect(board.barrier.counts.opens).toBe(1);
  });
});

describe('a restarted runtime against a board that remembers the last command', () => {
  it("the new link's first commands are executed at once, never taken for repeats of the previous link's", async () => {
    // Two ids with the same first seq (1 + id mod 255): without sessions, the new link would send the very
    // bytes the previous one last sent (its STATUS_REQUEST) and the board would take them for a repeat.
    const first = 0x0000a001;
    const second = first + 255;
    rig = await barrierRig(STEADY);
    await rig.link.stop(); // the harness's own link: replaced by two of ours
    const { board, pty } = rig;
    const make = (session: number, trace: LinkFrame[], events: BarrierEvent[]) => {
      const link = new SerialBarrierLink(
        { type: 'serial', path: pty.a, heartbeatMs: 20, silenceMs: 1000, ackTimeoutMs: 15, reopenMs: 30 },
        { session, trace: (dir, f) => dir === 'out' && f.type !== 'HEARTBEAT' && f.type !== 'EVENT_ACK' && trace.push(f) },
      );
      return { link, start: () => link.start((e) => events.push(e)) };
    };
    const traceA: LinkFrame[] = [];
    const a = make(first, traceA, []);
    await a.start();
    await rig.waitFor(() => a.link.state === 'up', 5000, 'first link up');
    await rig.waitFor(() => board.idle, 5000, 'board idle');
    await a.link.stop(); // the process dies right after its start-up
    const remembered = traceA.at(-1)!; // (the harness's link and this one started the same way: the board's memory is this frame)
    expect(remembered).toMatchObject({ type: 'COMMAND', command: { type: 'STATUS_REQUEST' } });

    const traceB: LinkFrame[] = [];
    const eventsB: BarrierEvent[] = [];
    const b = make(second, traceB, eventsB);
    extra = b.link;
    const duplicatesBefore = board.counts.duplicateCommands;
    const sessionsBefore = board.counts.sessionsStarted;
    await b.start();
    await rig.waitFor(() => b.link.state === 'up', 5000, 'second link up');
    expect(await b.link.request({ type: 'OPEN', direction: 'entry', passages: 1 })).toMatchObject({ ok: true });
    // One session, one status request, then the OPEN (retransmissions, same seq, counted once): no resync
    // retried after a timeout, nothing taken for a repeat.
    const sent = traceB.filter((f, i) => i === 0 || f.seq !== traceB[i - 1].seq);
    expect(sent.map((f) => (f.type === 'COMMAND' ? f.command.type : f.type))).toEqual(['SESSION', 'STATUS_REQUEST', 'OPEN']);
    expect(sent[1]).toEqual(remembered); // the same bytes the board remembered from the previous link
    expect(b.link.counters.resyncs).toBe(1);
    // The only repeats the board saw are this link's own retransmissions (a loaded machine makes a few).
    expect(board.counts.duplicateCommands - duplicatesBefore).toBe(b.link.counters.retransmits);
    expect(board.counts.sessionsStarted - sessionsBefore).toBe(1);
    expect(board.session.id).toBe(second);
    expect(eventsB.map((e) => e.type).slice(0, 2)).toEqual(['LINK', 'STATUS']);
    await rig.waitFor(() => board.barrier.flaps === 'open', 5000, 'flaps open');
    expect(board.barrier.counts.opens).toBe(1);
  });
});
