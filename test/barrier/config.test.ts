// The serial barrier driver picked by name from a lane config (registry entry "serial"), and its config
// errors naming the bad field.
import { afterEach, expect, it } from 'vitest';
import { ConfigError, parseLaneConfig } from '../../firmware/config/config.js';
import { startLane, type Lane } from '../../firmware/composition/start-lane.js';
import { BarrierBoard } from '../../simulator/barrier-board.js';
import { ptyPair, type PtyPair } from '../support/pty.js';

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

const config = (barrier: Record<string, unknown>) => parseLaneConfig({ lane: { id: 'C1' }, drivers: { barrier } });

it('bad serial settings fail at start-up naming the field', async () => {
  await expect(startLane({ config: config({ type: 'serial', path: '/dev/ttyUSB0', baudRate: 'fast' }) })).rejects.toThrow(
    /lane C1 drivers\.barrier\.baudRate/,
  );
  await expect(startLane({ config: config({ type: 'serial' }) })).rejects.toThrow(/drivers\.barrier\.path/);
  await expect(startLane({ config: config({ type: 'serial', path: '/x', parity: 'sometimes' }) })).rejects.toThrow(ConfigError);
  await expect(startLane({ config: config({ type: 'serial', path: '/x', rs485: { enabled: true, bogus: 1 } }) })).rejects.toThrow(/rs485/);
});

it('a lane configured with { type: "serial", path } comes into service against a board on a pty', async () => {
  const pty: PtyPair = await ptyPair('cfg');
  cleanup.push(() => pty.close());
  const board = new BarrierBoard({ path: pty.b, heartbeatMs: 50 });
  await board.start();
  cleanup.push(() => board.stop());
  const lane: Lane = await startLane({ config: config({ type: 'serial', path: pty.a, baudRate: 115200, parity: 'none', heartbeatMs: 50, silenceMs: 300 }) });
  cleanup.push(() => lane.stop());
  const until = Date.now() + 5000;
  while (lane.view().state !== 'normal.ready' && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  expect(lane.view().state).toBe('normal.ready');
});
