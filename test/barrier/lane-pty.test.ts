// The lane runtime (firmware/lane.ts) with its barrier on a real pty through the real serial driver,
// the virtual board on the other end: out of service on heartbeat loss, back after a status resync;
// fire alarm from the board → emergency, flaps open, latched until reset, even mid-verification; every
// ack of an OPEN lost while the board opens → a normal passage in the journal; the port opening late →
// no alarm, the lane's first commands carried out once the link is up.
import { afterEach, describe, expect, it } from 'vitest';
import type { Alarm } from '../../protocol/alarms.js';
import type { BarrierCommand } from '../../protocol/barrier.js';
import { REASONS } from '../../protocol/reasons.js';
import { SerialBarrierLink } from '../../drivers/serial-barrier.js';
import { systemClock } from '../../drivers/seams.js';
import { SimulatedSource } from '../../drivers/simulated.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import type { Journal, JournalEntry } from '../../firmware/journal/journal.js';
import { startLane, type Lane } from '../../firmware/composition/start-lane.js';
import { MemoryLists } from '../../firmware/lists/list-provider.js';
import { BarrierBoard } from '../../simulator/barrier-board.js';
import { ptyPair, type PtyPair } from '../support/pty.js';

const CARD = '3104100012300000001';
const CARD2 = '3104100012300000002';
const card = (n = CARD) => ({ kind: 'card' as const, cardNumber: n });

/** A journal whose appends can be held, to catch the lane mid-verification. */
class HeldJournal implements Journal {
  hold = false;
  readonly entries: JournalEntry[] = [];
  private held: (() => void)[] = [];
  private seq = 0;
  append(entry: JournalEntry): Promise<number> {
    this.entries.push(entry);
    const seq = ++this.seq;
    if (entry.type === 'decision' && this.hold) return new Promise((r) => this.held.push(() => r(seq)));
    return Promise.resolve(seq);
  }
  release(): void {
    const h = this.held;
    this.held = [];
    h.forEach((f) => f());
  }
  async close(): Promise<void> {}
}

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

const newBoard = (pty: PtyPair) => new BarrierBoard({ path: pty.b, heartbeatMs: 20, failSafeAfterMs: 2000, eventRetryMs: 15, mechanics: { openMs: 10, closeMs: 10 } });

/**
 * The lane on a pty; with `portLate`, the pty is unplugged when the lane starts and the board not yet there.
 * `silenceMs`: short for the heartbeat-loss test; tests about commands take a longer one, so a loaded
 * machine's stall does not take the link down under them.
 */
async function rig(opts: { portLate?: boolean; silenceMs?: number } = {}) {
  const pty: PtyPair = await ptyPair('lane');
  cleanup.push(() => pty.close());
  let board = newBoard(pty);
  if (opts.portLate) await pty.unplug();
  else {
    await board.start();
    cleanup.push(() => board.stop());
  }
  const link = new SerialBarrierLink({ type: 'serial', path: pty.a, heartbeatMs: 20, silenceMs: opts.silenceMs ?? 150, ackTimeoutMs: 15, reopenMs: 30 });
  const entry = new SimulatedSource('sim-entry', 'entry', systemClock);
  const lists = new MemoryLists(Date.now());
  lists.allowlist.set(`card:${CARD}`, 'green');
  lists.allowlist.set(`card:${CARD2}`, 'green');
  const journal = new HeldJournal();
  const config = parseLaneConfig({ lane: { id: 'P1', direction: 'entry' } });
  const lane: Lane = await startLane({ config, clock: systemClock, barrier: link, sources: [entry], lists, journal });
  cleanup.push(() => lane.stop());
  const waitFor = async (pred: () => boolean, what: string, ms = 5000) => {
    const until = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}; lane ${JSON.stringify(lane.view())}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  const state = () => lane.view().state;
  const alarms = () => journal.entries.flatMap((e) => (e.type === 'alarm' ? [e] : []));
  /** Plug the port back in and start the board (after `portLate`). */
  const plugIn = async () => {
    await pty.replug();
    board = newBoard(pty);
    r.board = board;
    await board.start();
    cleanup.push(() => board.stop());
  };
  const r = { pty, board, link, entry, journal, lane, waitFor, state, alarms, plugIn };
  return r;
}

describe('lane with its barrier on a pty', () => {
  it('heartbeat loss → out of service; link back → status resync → in service', async () => {
    const r = await rig();
    await r.waitFor(() => r.state() === 'normal.ready', 'lane in service');
    r.board.faults.silent = true;
    await r.waitFor(() => r.state() === 'outOfService', 'lane out of service');
    expect(r.lane.view().faults['barrier-link']).toMatch(/no frame from the board/);
    r.entry.present(card());
    r.board.faults.silent = false;
    await r.waitFor(() => r.state() === 'normal.ready', 'lane back in service');
    expect(r.link.counters.resyncs).toBe(2);
    expect(r.board.barrier.counts.opens).toBe(0); // the tap while out of service opened nothing
    r.entry.present(card());
    await r.waitFor(() => r.board.barrier.counts.opens === 1, 'an opening for a tap in service');
  });

  it('fire alarm from the board mid-verification → emergency, flaps open, latched until reset', async () => {
    const r = await rig();
    await r.waitFor(() => r.state() === 'normal.ready', 'lane in service');
    r.journal.hold = true;
    r.entry.present(card());
    await r.waitFor(() => r.state() === 'normal.verifying', 'verifying');
    r.board.setFireAlarm(true);
    await r.waitFor(() => r.state() === 'emergency', 'emergency');
    await r.waitFor(() => r.board.barrier.mode === 'emergency' && r.board.barrier.flaps === 'open', 'board in emergency, flaps open');
    r.journal.release(); // the decision lands after the alarm: it must not close anything
    r.journal.hold = false;
    r.entry.present(card(CARD2));
    await new Promise((res) => setTimeout(res, 100));
    expect(r.state()).toBe('emergency');
    expect(r.board.barrier.flaps).toBe('open');
    r.lane.send({ type: 'RESET_EMERGENCY' }); // fire input still on: refused
    await new Promise((res) => setTimeout(res, 20));
    expect(r.state()).toBe('emergency');
    r.board.setFireAlarm(false);
    await r.waitFor(() => r.lane.view().fireAlarm === false, 'fire input off reaches the lane');
    await new Promise((res) => setTimeout(res, 100));
    expect(r.state()).toBe('emergency'); // latched
    expect(r.board.barrier.flaps).toBe('open');
    r.lane.send({ type: 'RESET_EMERGENCY' });
    await r.waitFor(() => r.state() === 'normal.ready', 'back to normal after reset');
    await r.waitFor(() => r.board.barrier.mode === 'normal', 'board back to normal');
  });

  it('a command the board never acknowledges: the alarm names the command and the port, in the journal too', async () => {
    const r = await rig({ silenceMs: 1000 });
    await r.waitFor(() => r.state() === 'normal.ready', 'lane in service');
    await r.waitFor(() => r.link.idle, 'start-up commands done');
    const alarms: Alarm[] = [];
    r.lane.on('alarm', (e) => alarms.push(e.alarm));
    // Commands sent before the link came up waited for it: no alarm before this point.
    expect(r.alarms()).toEqual([]);
    const journaledBefore = r.journal.entries.length;
    // The board hears nothing more (its own heartbeats still arrive, so the link stays up): commands go
    // unanswered, and so does the question of what the board executed.
    r.board.setLineFaults('in', { drop: 1 });
    r.lane.send({ type: 'SET_MODE', mode: 'maintenance' });
    await r.waitFor(() => alarms.some((a) => a.alarm === 'barrier-command-failed'), 'a barrier-command-failed alarm');
    const a = alarms.find((x) => x.alarm === 'barrier-command-failed');
    const unknown = /^no answer after \d+ attempts; asking the board what it executed failed too \(no answer after \d+ attempts\): unknown whether it executed SET_MODE$/;
    expect(a).toMatchObject({ alarm: 'barrier-command-failed', command: 'SET_MODE', port: r.pty.a, detail: expect.stringMatching(unknown) });
    expect(a).not.toHaveProperty('executed');
    const rec = r.journal.entries.slice(journaledBefore).find((e) => e.type === 'alarm' && e.alarm === 'barrier-command-failed');
    expect(rec).toMatchObject({ type: 'alarm', laneId: 'P1', alarm: 'barrier-command-failed' });
    const detail = rec?.type === 'alarm' ? (rec.detail ?? '') : '';
    expect(detail).toContain('SET_MODE');
    expect(detail).toContain(r.pty.a);
    expect(detail).toMatch(/no answer after \d+ attempts; .*unknown whether it executed SET_MODE/);
    r.board.setLineFaults('in', { drop: 0 });
  });

  it("every ack of the OPEN lost while the board opens: no open-failed, the rider's passage journaled as a normal passage", async () => {
    const r = await rig({ silenceMs: 1000 });
    await r.waitFor(() => r.state() === 'normal.ready', 'lane in service');
    await r.waitFor(() => r.link.idle, 'start-up commands done');
    const journaledBefore = r.journal.entries.length;
    r.board.faults.dropAnswers = 'OPEN';
    r.entry.present(card());
    await r.waitFor(() => r.board.barrier.counts.opens === 1, 'the board opening');
    // The driver has settled the OPEN (and the commands behind it) one way or the other before the rider walks.
    await r.waitFor(() => r.link.idle && r.board.counts.answersDropped >= 4, 'the OPEN settled');
    r.board.faults.dropAnswers = undefined;
    r.board.barrier.walkThrough('entry');
    await r.waitFor(() => r.journal.entries.slice(journaledBefore).some((e) => e.type === 'passage'), 'a passage record');
    await r.waitFor(() => r.state() === 'normal.ready', 'lane ready again');
    const after = r.journal.entries.slice(journaledBefore);
    expect(after.filter((e) => e.type === 'alarm')).toEqual([]); // no open-failed, no unexpected-passage, no command failure
    expect(after.filter((e) => e.type === 'passage')).toEqual([expect.objectContaining({ type: 'passage', direction: 'entry', outcome: 'passed' })]);
    expect(after.map((e) => e.type)).toEqual(['decision', 'passage']);
    expect(r.link.counters).toMatchObject({ ackLostExecuted: 1, ackLostNotExecuted: 0, ackLostUnknown: 0 });
    expect(r.board.barrier.counts.passed).toBe(1);
  });

  it('start-up with the port opening late: no alarm before the port opens, the queued commands carried out after', async () => {
    const r = await rig({ portLate: true, silenceMs: 1000 });
    // The lane has sent its out-of-service commands; the port cannot be opened yet (bounded wait, no clock assertions).
    await r.waitFor(() => r.link.counters.openFailures >= 3, 'three failed opens');
    expect(r.state()).toBe('outOfService');
    expect(r.alarms()).toEqual([]);
    const executed: BarrierCommand[] = [];
    await r.plugIn();
    r.board.barrier.onCommand((c) => c.type !== 'STATUS_REQUEST' && executed.push(c));
    await r.waitFor(() => r.state() === 'normal.ready', 'lane in service');
    await r.waitFor(() => r.link.idle && r.board.barrier.mode === 'normal', 'commands carried out');
    expect(r.alarms()).toEqual([]);
    // First what the lane asked for while the port was missing (out of service: locked, its display, red cross),
    // in order, then what it asked for once in service.
    expect(executed.slice(0, 3)).toEqual([
      { type: 'SET_MODE', mode: 'locked' },
      { type: 'DISPLAY', textId: REASONS['out-of-service'].id },
      { type: 'INDICATE', indicator: 'red-cross', buzzer: 'off' },
    ]);
    expect(executed.at(-1)).toEqual({ type: 'INDICATE', indicator: 'green-arrow', buzzer: 'off' });
    expect(executed).toContainEqual({ type: 'SET_MODE', mode: 'normal' });
    expect(r.link.counters.linkWaitExpired).toBe(0);
  });
});
