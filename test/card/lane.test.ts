// The whole path on real PC/SC: virtual card on vpcd → pcscd → our driver → the lane runtime → OPEN on
// the barrier link; and a reader outage taking the lane out of service and back, without a restart.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { PcscReader, pcscReaderConfigSchema } from '../../drivers/pcsc-reader.js';
import { SimulatedBarrierLink } from '../../drivers/simulated.js';
import { systemClock } from '../../drivers/seams.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { MemoryJournal } from '../../firmware/journal/journal.js';
import { startLane, type Lane } from '../../firmware/composition/start-lane.js';
import { MemoryLists } from '../../firmware/lists/list-provider.js';
import type { BarrierCommand } from '../../protocol/barrier.js';
import { VirtualBarrier } from '../../simulator/virtual-barrier.js';
import { virtualCard } from '../../simulator/virtual-card.js';
import { startPcscd, type PrivatePcscd } from '../support/pcscd.js';

let pcscd: PrivatePcscd;
let lane: Lane;
const lists = new MemoryLists();
const commands: BarrierCommand[] = [];
const modes: string[] = [];

async function until(pred: () => boolean, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  pcscd = await startPcscd();
  process.env.PCSCLITE_CSOCK_NAME = pcscd.socket;
  const board = new VirtualBarrier(systemClock);
  board.onCommand((c) => commands.push(c));
  const reader = new PcscReader(pcscReaderConfigSchema.parse({ reader: 'Gate Reader A 00 00', side: 'entry', retryMs: 100 }));
  lane = await startLane({
    config: parseLaneConfig({ lane: { id: 'L1', direction: 'bidirectional' } }),
    barrier: new SimulatedBarrierLink(board, systemClock),
    sources: [reader],
    lists,
    journal: new MemoryJournal(),
  });
  lane.on('mode', (e) => modes.push(e.to));
  await until(() => lane.view().mode === 'normal');
}, 30_000);

afterAll(async () => {
  await lane?.stop();
  await pcscd?.stop();
});

test('a registered card on the reader opens the barrier', async () => {
  lists.allowlist.set('card:3104999900000005555', 'green');
  const tap = virtualCard().tUnion({ serial: '3104999900000005555', expiry: 20301231 }).tap({ port: pcscd.readers[0].port });
  await until(() => commands.some((c) => c.type === 'OPEN'));
  expect(commands.find((c) => c.type === 'OPEN')).toEqual({ type: 'OPEN', direction: 'entry', passages: 1 });
  await tap.done;
  expect(lane.view().lastDecision).toMatchObject({ grant: true, reason: 'ok', kind: 'card' });
});

test('reader outage: lane out of service, then back in service by itself', async () => {
  await pcscd.kill();
  await until(() => lane.view().mode === 'outOfService');
  expect(Object.keys(lane.view().faults).some((k) => k.startsWith('source:'))).toBe(true);
  await pcscd.restart();
  await until(() => !Object.keys(lane.view().faults).some((k) => k.startsWith('source:')), 15_000);
});
