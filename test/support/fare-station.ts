// A private pcscd with two vpcd slots: slot 0 the card reader (our PC/SC driver), slot 1 a virtual PSAM
// read through the PSAM driver, and fare gates (entry, exit) run by the driver's card-transaction hook. The
// harness for the fare tests over real pcscd and the fare bench.

import { PcscPsam, pcscPsamConfigSchema } from '../../drivers/pcsc-psam.js';
import { PcscReader, pcscReaderConfigSchema, type TapReport } from '../../drivers/pcsc-reader.js';
import type { SourceEvent } from '../../drivers/seams.js';
import { FareGate, type FareLaneConfig } from '../../firmware/fares/fare-gate.js';
import { MemoryJournal } from '../../firmware/journal/journal.js';
import type { FareTable } from '../../protocol/fares.js';
import type { TapLog, VirtualCard } from '../../simulator/virtual-card.js';
import { VirtualPsam, type PsamSpec } from '../../simulator/virtual-psam.js';
import { startPcscd, type PrivatePcscd } from './pcscd.js';
import { waitUntil } from './wait.js';

export interface FareStation {
  pcscd: PrivatePcscd;
  reader: PcscReader;
  psam: PcscPsam;
  virtualPsam: VirtualPsam;
  journal: MemoryJournal;
  events: SourceEvent[];
  gate(cfg: Partial<FareLaneConfig> & { station: number; direction: 'entry' | 'exit' }): FareGate;
  /** Tap `card` at `gate` (the reader runs that gate's transaction); waits for the report, then the card leaves and pcscd sees it gone. */
  tap(card: VirtualCard, gate: FareGate, opts?: { timeoutMs?: number }): Promise<{ report?: TapReport; log: TapLog }>;
  stop(): Promise<void>;
}

export async function startFareStation(table: FareTable, psamSpec: PsamSpec): Promise<FareStation> {
  const pcscd = await startPcscd();
  process.env.PCSCLITE_CSOCK_NAME = pcscd.socket;
  const virtualPsam = new VirtualPsam(psamSpec);
  await virtualPsam.insert(pcscd.readers[1].port);
  const psam = new PcscPsam(pcscPsamConfigSchema.parse({ reader: pcscd.readers[1].name }));
  await psam.start();
  const reader = new PcscReader(pcscReaderConfigSchema.parse({ reader: pcscd.readers[0].name, retryMs: 100, readerWaitMs: 1000 }));
  const events: SourceEvent[] = [];
  const reports: TapReport[] = [];
  let waiter: ((r: TapReport) => void) | undefined;
  reader.onTap((r) => {
    reports.push(r);
    waiter?.(r);
  });
  await reader.start((e) => events.push(e));
  await waitUntil(() => events.some((e) => e.type === 'SOURCE_OK'), 10_000, () => `card reader not up: ${JSON.stringify(events)}`);
  const journal = new MemoryJournal();
  const readerState = () => (reader as unknown as { readers: Map<string, { tap: number; left: number }> }).readers.get(pcscd.readers[0].name);

  return {
    pcscd,
    reader,
    psam,
    virtualPsam,
    journal,
    events,
    gate: (cfg) => {
      const g = new FareGate({ laneId: `L-${cfg.station}-${cfg.direction}`, laneNumber: 1, retapGraceMs: 10 * 60_000, ...cfg }, { exchange: psam.exchange, terminalId: psam.terminalId }, journal);
      g.setTable(table);
      return g;
    },
    tap: async (card, gate, opts = {}) => {
      reader.setTransaction((exchange, cardNumber, atMs) => gate.tap(exchange, cardNumber, atMs));
      const got = new Promise<TapReport | undefined>((resolve) => {
        const t = setTimeout(() => {
          waiter = undefined;
          resolve(undefined);
        }, opts.timeoutMs ?? 5000);
        waiter = (r) => {
          clearTimeout(t);
          waiter = undefined;
          resolve(r);
        };
      });
      const t = card.tap({ port: pcscd.readers[0].port, leaveAfterIdleMs: 10_000, maxHoldMs: 10_000 });
      const report = await got;
      t.remove();
      const log = await t.done;
      // The next tap on this slot must be a new arrival for pcscd: wait until the driver saw this card leave.
      await waitUntil(() => {
        const s = readerState();
        return !s || s.left === s.tap;
      }, 5000, () => 'the driver still sees the card in the field');
      return { report, log };
    },
    stop: async () => {
      await reader.stop();
      await psam.stop();
      virtualPsam.remove();
      await pcscd.stop();
    },
  };
}
