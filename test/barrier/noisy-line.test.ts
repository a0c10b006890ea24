// 10,000 commands over a real pty with 1 % of the bytes damaged in both directions (dropped, flipped
// or duplicated, seeded): every command executes exactly once or is reported failed; the board never
// opens without a valid command and never opens twice for one command.
import { afterAll, expect, it } from 'vitest';
import type { BarrierCommand } from '../../protocol/barrier.js';
import type { CommandOutcome } from '../../drivers/serial-barrier.js';
import { FRAME_LENGTH } from '../../protocol/barrier-frame.js';
import { barrierRig, type BarrierRig } from './harness.js';

let rig: BarrierRig | undefined;
afterAll(async () => rig?.close());

const N = 10_000;
const third = 0.01 / 3;

/**
 * Walk the board's executions against what was sent: consecutive commands always differ, so a double
 * execution or an execution nobody sent breaks the walk. Returns how many OPENs were matched.
 */
function checkExactlyOnce(sent: BarrierCommand[], outcomes: CommandOutcome[], executed: BarrierCommand[]): { opensMatched: number; failedButExecuted: number } {
  let at = 0;
  let opensMatched = 0;
  let failedButExecuted = 0;
  for (let i = 0; i < sent.length; i++) {
    if (at < executed.length && JSON.stringify(executed[at]) === JSON.stringify(sent[i])) {
      if (sent[i].type === 'OPEN') opensMatched++;
      if (!outcomes[i].ok) failedButExecuted++;
      at++;
    } else {
      expect(outcomes[i], `command ${i} ${JSON.stringify(sent[i])} acked but not executed (or executed twice before it)`).toMatchObject({ ok: false });
    }
  }
  expect(at, 'board executed commands nobody sent, or executed one twice').toBe(executed.length);
  return { opensMatched, failedButExecuted };
}

/**
 * Let the line drain: wait until every byte the driver has written (retransmits included) has come through
 * the damaged line (less the bytes it dropped, plus the ones it duplicated, nothing held back) and been read
 * by the board, so a late copy of a command has been executed (or refused) before the executions are checked.
 */
async function drained(r: BarrierRig): Promise<void> {
  const { link, board } = r;
  const written = () => link.counters.framesOut * FRAME_LENGTH - board.lineCounts.in.dropped + board.lineCounts.in.duplicated;
  const read = () => {
    const c = board.reader.counters;
    return (c.frames + c.badFrames) * FRAME_LENGTH + c.bytesDiscarded + board.reader.pending;
  };
  await r.waitFor(() => read() === written(), 10_000, `the board to read every byte the driver wrote (read ${read()} of ${written()})`);
}

const commandFor = (i: number): BarrierCommand =>
  i % 2 === 0 ? { type: 'OPEN', direction: (i >> 1) % 2 === 0 ? 'entry' : 'exit', passages: 1 + ((i >> 2) % 3) } : { type: 'DISPLAY', textId: i };

it(`${N} commands, 1 % of bytes damaged both ways: each executes exactly once or is reported failed`, { timeout: 120_000 }, async () => {
  rig = await barrierRig({
    link: { ackTimeoutMs: 3, retries: 6, heartbeatMs: 20, silenceMs: 1000, queueLimit: 10 },
    board: {
      seed: 20220501,
      eventRetryMs: 3,
      heartbeatMs: 20,
      failSafeAfterMs: 5000,
      mechanics: { openMs: 1, closeMs: 1 },
      faults: { out: { drop: third, corrupt: third, duplicate: third }, in: { drop: third, corrupt: third, duplicate: third } },
    },
  });
  const { link, board } = rig;
  await rig.waitFor(() => link.state === 'up', 10_000, 'link up');
  const executed: BarrierCommand[] = [];
  board.barrier.onCommand((c) => {
    if (c.type !== 'STATUS_REQUEST') executed.push(c);
  });
  const sent: BarrierCommand[] = [];
  const outcomes: CommandOutcome[] = [];
  for (let i = 0; i < N; i++) {
    const cmd = commandFor(i);
    sent.push(cmd);
    outcomes.push(await link.request(cmd));
  }
  // Commands that were in flight when the last one was answered may still arrive: let the line drain.
  await drained(rig);

  const { opensMatched, failedButExecuted } = checkExactlyOnce(sent, outcomes, executed);
  expect(board.barrier.counts.opens, 'openings without a valid command / double openings').toBe(opensMatched);

  const failed = outcomes.filter((o) => !o.ok).length;
  const why = [...new Set(outcomes.flatMap((o) => (o.ok ? [] : [o.detail])))];
  const c = link.counters;
  const lines = board.lineCounts;
  console.log(
    `noisy line: ${N} commands, ${failed} reported failed ${JSON.stringify(why)} (${failedButExecuted} of them executed once), ` +
      `retransmits ${c.retransmits}, board duplicates ${board.counts.duplicateCommands}, driver: bad CRC ${c.badCrc}, ` +
      `discarded ${c.bytesDiscarded} B, realigns ${c.realigns}, dup events ${c.duplicateEvents}; ` +
      `damage out ${JSON.stringify(lines.out)} in ${JSON.stringify(lines.in)}`,
  );
  // The run must really have been noisy, and the link must have coped with it.
  expect(lines.out.dropped + lines.out.corrupted + lines.out.duplicated).toBeGreaterThan(100);
  expect(lines.in.dropped + lines.in.corrupted + lines.in.duplicated).toBeGreaterThan(100);
  expect(c.retransmits).toBeGreaterThan(100);
  expect(board.counts.duplicateCommands).toBeGreaterThan(0);
  expect(failed).toBeLessThan(N / 100);
});

it('500 commands with chunks held back longer than the ack timeout: retransmits never execute twice', { timeout: 60_000 }, async () => {
  await rig?.close();
  rig = await barrierRig({
    link: { ackTimeoutMs: 4, retries: 6, heartbeatMs: 20, silenceMs: 1000 },
    board: {
      seed: 7,
      eventRetryMs: 4,
      heartbeatMs: 20,
      failSafeAfterMs: 5000,
      mechanics: { openMs: 1, closeMs: 1 },
      faults: { out: { delay: 0.03, delayMs: 10 }, in: { delay: 0.03, delayMs: 10 } },
    },
  });
  const { link, board } = rig;
  await rig.waitFor(() => link.state === 'up', 10_000, 'link up');
  const executed: BarrierCommand[] = [];
  board.barrier.onCommand((c) => {
    if (c.type !== 'STATUS_REQUEST') executed.push(c);
  });
  const sent: BarrierCommand[] = [];
  const outcomes: CommandOutcome[] = [];
  for (let i = 0; i < 500; i++) {
    sent.push(commandFor(i));
    outcomes.push(await link.request(commandFor(i)));
  }
  await drained(rig);
  const { opensMatched } = checkExactlyOnce(sent, outcomes, executed);
  expect(board.barrier.counts.opens).toBe(opensMatched);
  const lines = board.lineCounts;
  expect(lines.in.delayed + lines.out.delayed).toBeGreaterThan(5);
  expect(board.counts.duplicateCommands).toBeGreaterThan(0);
});
