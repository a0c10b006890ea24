// A fare exit lane end to end over real pcscd + vpcd: the lane runtime (startLane) with our PC/SC reader
// whose transaction hook runs the fare gate (PSAM in the second slot). A paid exit opens the flaps; a
// card whose balance is too low is refused with 余额不足 and nothing opens; the lane journals both.

import { afterAll, beforeAll, expect, it } from 'vitest';
import { PcscPsam, pcscPsamConfigSchema } from '../../drivers/pcsc-psam.js';
import { PcscReader, pcscReaderConfigSchema } from '../../drivers/pcsc-reader.js';
import { SimulatedBarrierLink } from '../../drivers/simulated.js';
import { systemClock } from '../../drivers/seams.js';
import { startLane } from '../../firmware/composition/start-lane.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { FareGate } from '../../firmware/fares/fare-gate.js';
import { MemoryJournal } from '../../firmware/journal/journal.js';
import { MemoryLists } from '../../firmware/lists/list-provider.js';
import { encodeTripRecord, EMPTY_TRIP } from '../../protocol/tunion-purse.js';
import { VirtualBarrier } from '../../simulator/virtual-barrier.js';
import { virtualCard } from '../../simulator/virtual-card.js';
import { VirtualPsam } from '../../simulator/virtual-psam.js';
import { startPcscd, type PrivatePcscd } from '../support/pcscd.js';
import { waitUntil } from '../support/wait.js';
import { lineTable, TERMINAL_ID } from './support.js';

let pcscd: PrivatePcscd;
let vpsam: VirtualPsam;
let psam: PcscPsam;
beforeAll(async () => {
  pcscd = await startPcscd();
  process.env.PCSCLITE_CSOCK_NAME = pcscd.socket;
  vpsam = new VirtualPsam({ terminalId: TERMINAL_ID });
  await vpsam.insert(pcscd.readers[1].port);
  psam = new PcscPsam(pcscPsamConfigSchema.parse({ reader: pcscd.readers[1].name }));
  await psam.start();
}, 30_000);
afterAll(async () => {
  await psam?.stop();
  vpsam?.remove();
  await pcscd?.stop();
});

it('a paid exit opens; a balance too low is refused (insufficient-balance) and opens nothing', async () => {
  const table = lineTable();
  const board = new VirtualBarrier(systemClock);
  const journal = new MemoryJournal();
  const reader = new PcscReader(pcscReaderConfigSchema.parse({ reader: pcscd.readers[0].name, side: 'exit', retryMs: 100 }));
  const gate = new FareGate({ laneId: 'X-12', laneNumber: 1, station: 12, direction: 'exit', retapGraceMs: 600_000 }, { exchange: psam.exchange, terminalId: psam.terminalId }, journal);
  gate.setTable(table);
  reader.setTransaction((ex, num, at) => gate.tap(ex, num, at));
  const lane = await startLane({
    config: parseLaneConfig({ lane: { id: 'X-12', direction: 'exit' }, timeouts: { passageMs: 200 }, policy: { antiPassbackSeconds: 0 } }),
    barrier: new SimulatedBarrierLink(board, systemClock),
    sources: [reader],
    lists: new MemoryLists(),
    journal,
  });
  try {
    const opens: number[] = [];
    board.onCommand((c) => {
      if (c.type === 'OPEN' && c.passages > 0) opens.push(Date.now());
    });
    const decisions: { grant: boolean; reason: string }[] = [];
    lane.on('decision', (e) => decisions.push({ grant: e.decision.grant, reason: e.decision.reason }));
    await waitUntil(() => lane.view().mode === 'normal' && reader.readerNames.length > 0, 10_000, () => `lane ${lane.view().mode}, readers ${reader.readerNames}`);
    const entered = encodeTripRecord({ ...EMPTY_TRIP, status: 'entered', entryStation: 1, entryLane: 1, entryAtMs: Date.now() - 30 * 60_000 });
    const tap = async (balanceFen: number) => {
      const c = virtualCard().tUnion({ serial: `310410007${String(balanceFen).padStart(10, '0')}`, expiry: 20301231, purse: { balanceFen, tripRecord: entered } }).build();
      const before = decisions.length;
      // A tap takes 0-400 ms to be seen (pcscd polls vpcd); the first one after start may wait for a poll more.
      for (let attempt = 0; attempt < 3 && decisions.length === before; attempt++) {
        const t = c.tap({ port: pcscd.readers[0].port, leaveAfterIdleMs: 10_000 });
        await waitUntil(() => decisions.length > before, 5000, () => 'no decision').catch(() => undefined);
        t.remove();
        await t.done;
      }
      return { c, d: decisions[before] };
    };
    const paid = await tap(5000);
    expect(paid.d).toEqual({ grant: true, reason: 'ok' });
    await waitUntil(() => opens.length === 1, 5000, () => 'no OPEN');
    expect(paid.c.purse!.balanceFen).toBe(5000 - table.fares[0 * table.stations.length + 11]);
    board.walkThrough('exit');
    await waitUntil(() => lane.view().flaps === 'closed', 5000, () => 'flaps not closed');
    const low = await tap(100);
    expect(low.d).toEqual({ grant: false, reason: 'insufficient-balance' });
    expect(low.c.purse!.debitCount).toBe(0);
    expect(opens).toHaveLength(1);
    const types = journal.records.map((r) => (r.entry.type === 'fare' ? `fare:${r.entry.outcome}` : r.entry.type === 'decision' ? `decision:${r.entry.reason}` : r.entry.type));
    expect(types).toEqual(expect.arrayContaining(['fare:debited', 'decision:ok', 'fare:refused', 'decision:insufficient-balance']));
  } finally {
    await lane.stop();
  }
}, 60_000);
