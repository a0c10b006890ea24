// The lane runtime (firmware/lane.ts) with its barrier on a real pty through the real serial driver,
// the virtual board on the other end: out of service on heartbeat loss, back after a status resync;
// fire alarm from the board → emergency, flaps open, latched until reset, even mid-verification.
import { afterEach, describe, expect, it } from 'vitest';
import type { Alarm } from '../../protocol/alarms.js';
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

async function rig() {
  const pty: PtyPair = await ptyPair('lane');
  cleanup.push(() => pty.close());
  const board = new BarrierBoard({ path: pty.b, heartbeatMs: 20, failSafeAfterMs: 2000, eventRetryMs: 15, mechanics: { openMs: 10, closeMs: 10 } });
  await board.start();
  cleanup.push(() => board.stop());
  const link = new SerialBarrierLink({ type: 'serial', path: pty.a, heartbeatMs: 20, silenceMs: 150, ackTimeoutMs: 15, reopenMs: 30 });
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
  return { pty, board, link, entry, journal, lane, waitFor, state };
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
    const r = await rig();
    await r.waitFor(() => r.state() === 'normal.ready', 'lane in service');
    const alarms: Alarm[] = [];
    r.lane.on('alarm', (e) => alarms.push(e.alarm));
    // (Commands sent before the link first came up failed as "link down": those records come before this.)
    const journaledBefore = r.journal.entries.length;
    // The board hears nothing more (its own heartbeats still arrive, so the link stays up): commands go unanswered.
    r.board.setLineFaults('in', { drop: 1 });
    r.lane.send({ type: 'SET_MODE', mode: 'maintenance' });
    await r.waitFor(() => alarms.some((a) => a.alarm === 'barrier-command-failed'), 'a barrier-command-failed alarm');
    const a = alarms.find((x) => x.alarm === 'barrier-command-failed');
    expect(a).toMatchObject({ alarm: 'barrier-command-failed', command: 'SET_MODE', port: r.pty.a, detail: expect.stringMatching(/^no answer after \d+ attempts$/) });
    const rec = r.journal.entries.slice(journaledBefore).find((e) => e.type === 'alarm' && e.alarm === 'barrier-command-failed');
    expect(rec).toMatchObject({ type: 'alarm', laneId: 'P1', alarm: 'barrier-command-failed' });
    const detail = rec?.type === 'alarm' ? (rec.detail ?? '') : '';
    expect(detail).toContain('SET_MODE');
    expect(detail).toContain(r.pty.a);
    expect(detail).toMatch(/no answer after \d+ attempts/);
    r.board.setLineFaults('in', { drop: 0 });
  });
});
