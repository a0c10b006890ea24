// Shared wiring for the barrier pty tests: a socat pty pair, the real driver on one end, the virtual
// board on the other, and an event log with a wait helper (polling real time, never asserting on it).
import type { BarrierEvent } from '../../protocol/barrier.js';
import { SerialBarrierLink, type SerialBarrierConfigInput } from '../../drivers/serial-barrier.js';
import { BarrierBoard, type BoardOptions } from '../../simulator/barrier-board.js';
import { ptyPair, type PtyPair } from '../support/pty.js';

export interface BarrierRig {
  pty: PtyPair;
  link: SerialBarrierLink;
  board: BarrierBoard;
  events: BarrierEvent[];
  waitFor(pred: () => boolean, ms?: number, what?: string): Promise<void>;
  /** Wait for an event at or after index `from` (default: events from now on). */
  waitEvent(pred: (e: BarrierEvent) => boolean, ms?: number, from?: number): Promise<BarrierEvent>;
  close(): Promise<void>;
}

export async function barrierRig(opts: { link?: Partial<SerialBarrierConfigInput>; board?: Partial<BoardOptions> } = {}): Promise<BarrierRig> {
  const pty = await ptyPair('barrier');
  const board = new BarrierBoard({ path: pty.b, heartbeatMs: 20, failSafeAfterMs: 300, eventRetryMs: 15, mechanics: { openMs: 5, closeMs: 5 }, ...opts.board });
  await board.start();
  const link = new SerialBarrierLink({ type: 'serial', path: pty.a, heartbeatMs: 20, silenceMs: 150, ackTimeoutMs: 15, reopenMs: 30, ...opts.link });
  const events: BarrierEvent[] = [];
  await link.start((e) => events.push(e));
  const waitFor = async (pred: () => boolean, ms = 5000, what = 'condition') => {
    const until = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}; events: ${JSON.stringify(events.slice(-10))}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  const waitEvent = async (pred: (e: BarrierEvent) => boolean, ms = 5000, from = events.length) => {
    let found: BarrierEvent | undefined;
    await waitFor(() => (found = events.slice(from).find(pred)) !== undefined, ms, 'event');
    return found!;
  };
  return {
    pty,
    link,
    board,
    events,
    waitFor,
    waitEvent,
    async close() {
      await link.stop();
      await board.stop();
      await pty.close();
    },
  };
}
