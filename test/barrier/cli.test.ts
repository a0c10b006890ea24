// `gate barrier` against the virtual board over a real pty, run in-process through commander.
import { Command } from 'commander';
import { afterEach, expect, it, vi } from 'vitest';
import { register } from '../../firmware/cli/barrier.js';
import { BarrierBoard } from '../../simulator/barrier-board.js';
import { ptyPair, type PtyPair } from '../support/pty.js';

let pty: PtyPair | undefined;
let board: BarrierBoard | undefined;
afterEach(async () => {
  await board?.stop();
  await pty?.close();
  vi.restoreAllMocks();
  process.exitCode = 0;
});

async function gate(...args: string[]): Promise<string[]> {
  const out: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const program = new Command().exitOverride();
  register(program);
  await program.parseAsync(['node', 'gate', ...args]);
  vi.restoreAllMocks();
  return out;
}

it('gate barrier open / mode / status talk to a board on a pty', async () => {
  pty = await ptyPair('cli');
  board = new BarrierBoard({ path: pty.b, heartbeatMs: 20, mechanics: { openMs: 5, closeMs: 5 } });
  await board.start();
  expect(await gate('barrier', '--port', pty.a, 'open', '--direction', 'exit', '--passages', '2')).toContain('OPEN: acknowledged');
  expect(board.barrier.counts.opens).toBe(1);
  expect(board.barrier.authorised).toBe(2);
  expect(await gate('barrier', '--port', pty.a, 'mode', 'locked')).toContain('SET_MODE: acknowledged');
  expect(board.barrier.mode).toBe('locked');
  const status = await gate('barrier', '--port', pty.a, 'status');
  expect(JSON.parse(status[0])).toMatchObject({ type: 'STATUS', mode: 'locked', session: expect.stringMatching(/^[0-9a-f]{8}$/), boardSessions: true });
  expect(process.exitCode ?? 0).toBe(0);
});

it('gate barrier reports a board that never answers (exit code 2)', async () => {
  pty = await ptyPair('cli-dead');
  const out = await gate('barrier', '--port', pty.a, '--timeout', '300', 'close');
  expect(out.join('\n')).toMatch(/no answer from a barrier board/);
  expect(process.exitCode).toBe(2);
});
