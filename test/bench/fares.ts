// Fare bench, one private pcscd + vpcd (card in slot 0, virtual PSAM in slot 1), the same virtual cards
// (each with an entry on its record) for both contenders:
//  - ours: card present → OPEN on the barrier link, through the lane runtime (our PC/SC driver reads the
//    card, its transaction hook runs the fare gate: price, INITIALIZE → PSAM MAC1 → UPDATE → DEBIT → PSAM
//    MAC2, journaled with the TAC; then the lane decides, journals and sends OPEN);
//  - bare: the same APDU sequence (card and PSAM) sent with @pokusew/pcsclite alone, commands built from
//    the answers with the protocol encoders, no checks, no pricing, no journal.
// Both from the same instant: pcscd's status change reaching the process (detection time is vpcd's poll).
// vpcd costs ~45 ms per APDU on loopback (its two send() calls per message meet delayed ACK; see card.ts),
// for both alike: the absolute times are vpcd's, the ratio is ours.
import { createRequire } from 'node:module';
import { PcscPsam, pcscPsamConfigSchema } from '../../drivers/pcsc-psam.js';
import { PcscReader, pcscReaderConfigSchema, type TapReport } from '../../drivers/pcsc-reader.js';
import { FareGate } from '../../firmware/fares/fare-gate.js';
import { MemoryJournal } from '../../firmware/journal/journal.js';
import { SimulatedBarrierLink } from '../../drivers/simulated.js';
import { systemClock } from '../../drivers/seams.js';
import { startLane } from '../../firmware/composition/start-lane.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { MemoryLists } from '../../firmware/lists/list-provider.js';
import { VirtualBarrier } from '../../simulator/virtual-barrier.js';
import { APDU } from '../../protocol/tunion.js';
import {
  beijingDateTime,
  cardSerial8,
  debitForPurchase,
  encodeTripRecord,
  EMPTY_TRIP,
  initPurchase,
  psamMac1,
  psamVerifyMac2,
  readTripRecord,
  TX_COMPOSITE,
  updateTripRecord,
} from '../../protocol/tunion-purse.js';
import { virtualCard } from '../../simulator/virtual-card.js';
import { VirtualPsam } from '../../simulator/virtual-psam.js';
import { lineTable, TERMINAL_ID } from '../fares/support.js';
import { startPcscd, type PrivatePcscd } from '../support/pcscd.js';
import { interleaved, percentile, within, type BenchReport } from './report.js';

const TAPS = Number(process.env.FARE_BENCH_TAPS ?? 40);
let serialSeq = 0;
function exitCard() {
  const serial = `31049998${String(++serialSeq).padStart(11, '0')}`;
  const tripRecord = encodeTripRecord({ ...EMPTY_TRIP, status: 'entered', entryStation: 1, entryLane: 1, entryAtMs: Date.now() - 20 * 60_000 });
  return { serial, card: virtualCard().tUnion({ serial, expiry: 20301231, purse: { balanceFen: 100_000, atc: 1, tripRecord } }).build() };
}

async function tapAll(pcscd: PrivatePcscd, n: number, seen: () => Promise<void>, gone: () => Promise<void>): Promise<number> {
  let timedOut = 0;
  for (let i = 0; i < n; i++) {
    const { card } = exitCard();
    const wait = seen();
    const t = card.tap({ port: pcscd.readers[0].port, leaveAfterIdleMs: 10_000 });
    if (!(await within(wait, 5000))) timedOut++;
    const left = gone();
    t.remove();
    await t.done;
    await within(left, 5000);
  }
  return timedOut;
}

async function oursRun(pcscd: PrivatePcscd, psam: PcscPsam, n: number): Promise<number[]> {
  const reader = new PcscReader(pcscReaderConfigSchema.parse({ reader: pcscd.readers[0].name, side: 'exit', retryMs: 100 }));
  const journal = new MemoryJournal();
  const gate = new FareGate({ laneId: 'BENCH-X', laneNumber: 1, station: 12, direction: 'exit', retapGraceMs: 600_000 }, { exchange: psam.exchange, terminalId: psam.terminalId }, journal);
  gate.setTable(lineTable());
  reader.setTransaction((ex, num, at) => gate.tap(ex, num, at));
  const board = new VirtualBarrier(systemClock);
  const lane = await startLane({
    config: parseLaneConfig({ lane: { id: 'BENCH-X', direction: 'exit' }, timeouts: { passageMs: 100 }, policy: { antiPassbackSeconds: 0 } }),
    barrier: new SimulatedBarrierLink(board, systemClock),
    sources: [reader],
    lists: new MemoryLists(),
    journal,
  });
  const samples: number[] = [];
  let presentAt = 0;
  let opened: (() => void) | undefined;
  reader.onTap((t: TapReport) => {
    presentAt = t.transaction?.grant ? t.presentAt : 0;
  });
  board.onCommand((c) => {
    if (c.type === 'OPEN' && c.passages > 0 && presentAt) {
      samples.push(performance.now() - presentAt);
      presentAt = 0;
      opened?.();
    }
  });
  for (let i = 0; i < 200 && (lane.view().mode !== 'normal' || reader.readerNames.length === 0); i++) await new Promise((r) => setTimeout(r, 25));
  await new Promise((r) => setTimeout(r, 1000)); // set-up, once: pcscd's first poll for the new context
  const st = () => (reader as unknown as { readers: Map<string, { tap: number; left: number }> }).readers.get(pcscd.readers[0].name);
  const gone = async () => {
    for (let i = 0; i < 500; i++) {
      const s = st();
      if (!s || s.left === s.tap) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    // The rider walks through; the next comes once the flaps are closed again.
    board.walkThrough('exit');
    for (let i = 0; i < 500 && lane.view().flaps !== 'closed'; i++) await new Promise((r) => setTimeout(r, 5));
  };
  await tapAll(pcscd, n, () => new Promise<void>((r) => (opened = r)), gone);
  await lane.stop();
  return samples;
}

/** The same exchange with @pokusew/pcsclite and nothing else: card in slot 0, PSAM in slot 1. */
async function bareRun(pcscd: PrivatePcscd, n: number): Promise<number[]> {
  const require = createRequire(import.meta.url);
  const pcsc = (require('@pokusew/pcsclite') as () => any)();
  pcsc.on('error', () => {});
  const samples: number[] = [];
  let done: (() => void) | undefined;
  let left: (() => void) | undefined;
  const readers: any[] = [];
  let psam: { reader: any; protocol: number } | undefined;
  const tx = (r: any, protocol: number, c: Uint8Array) => new Promise<Buffer>((res, rej) => r.transmit(Buffer.from(c), 258, protocol, (e: Error | null, d: Buffer) => (e ? rej(e) : res(d))));
  await new Promise<void>((resolve) => {
    pcsc.on('reader', (reader: any) => {
      readers.push(reader);
      reader.on('error', () => {});
      if (reader.name === pcscd.readers[1].name) {
        reader.on('status', (s: { state: number }) => {
          if (psam || !(s.state & reader.SCARD_STATE_PRESENT)) return;
          reader.connect({ share_mode: reader.SCARD_SHARE_SHARED }, (err: Error | null, protocol: number) => {
            if (!err) psam = { reader, protocol };
          });
        });
        return;
      }
      if (reader.name !== pcscd.readers[0].name) return;
      let prev = 0;
      reader.on('status', (s: { state: number }) => {
        const present = s.state & reader.SCARD_STATE_PRESENT && !(prev & reader.SCARD_STATE_PRESENT);
        const gone = s.state & reader.SCARD_STATE_EMPTY && !(prev & reader.SCARD_STATE_EMPTY);
        prev = s.state;
        if (gone) reader.disconnect(reader.SCARD_LEAVE_CARD, () => left?.());
        if (!present) return;
        const t0 = performance.now();
        reader.connect({ share_mode: reader.SCARD_SHARE_SHARED }, async (err: Error | null, protocol: number) => {
          if (err || !psam) return done?.();
          try {
            for (const c of [APDU.getUid, APDU.selectTUnion]) await tx(reader, protocol, c);
            const f15 = await tx(reader, protocol, APDU.readFile15);
            const cardNumber = f15.subarray(10, 20).toString('hex').slice(1);
            await tx(reader, protocol, APDU.readFile17);
            await tx(reader, protocol, APDU.getBalance);
            await tx(reader, protocol, readTripRecord);
            const amount = 600;
            const init = await tx(reader, protocol, initPurchase({ amountFen: amount, terminalId: TERMINAL_ID, composite: true }));
            const dateTime = beijingDateTime(Date.now());
            const m1 = await tx(psam.reader, psam.protocol, psamMac1({ cardRandom: init.subarray(11, 15), atc: init.readUInt16BE(4), amountFen: amount, type: TX_COMPOSITE, dateTime, keyVersion: init[9], algorithm: init[10], cardSerial8: cardSerial8(cardNumber) }));
            await tx(reader, protocol, updateTripRecord(encodeTripRecord({ ...EMPTY_TRIP, status: 'exited', exitStation: 12, exitLane: 1, exitAtMs: Date.now() })));
            const debit = await tx(reader, protocol, debitForPurchase({ terminalSerial: m1.readUInt32BE(0), dateTime, mac1: m1.subarray(4, 8) }));
            const v = await tx(psam.reader, psam.protocol, psamVerifyMac2(debit.subarray(4, 8)));
            if (v[0] === 0x90) samples.push(performance.now() - t0);
          } catch {
            // torn: not a sample
          }
          done?.();
        });
      });
      resolve();
    });
  });
  for (let i = 0; i < 200 && !psam; i++) await new Promise((r) => setTimeout(r, 25));
  await tapAll(
    pcscd,
    n,
    () => new Promise<void>((r) => (done = r)),
    () => new Promise<void>((r) => (left = r)),
  );
  for (const r of readers) r.close();
  pcsc.close();
  return samples;
}

export async function run(report: BenchReport): Promise<void> {
  const pcscd = await startPcscd();
  process.env.PCSCLITE_CSOCK_NAME = pcscd.socket;
  const vpsam = new VirtualPsam({ terminalId: TERMINAL_ID });
  await vpsam.insert(pcscd.readers[1].port);
  const psam = new PcscPsam(pcscPsamConfigSchema.parse({ reader: pcscd.readers[1].name }));
  try {
    await psam.start();
    const runs = await interleaved(2, () => oursRun(pcscd, psam, TAPS / 2), () => bareRun(pcscd, TAPS / 2));
    const ours = runs.a.flat();
    const bare = runs.b.flat();
    const note = `${ours.length} vs ${bare.length} exits, pcscd+vpcd, 11 APDUs (9 card, 2 PSAM), from the status change; 2 rounds each, interleaved A B / B A; per-round p50 ${runs.a.map((x) => percentile(x, 50).toFixed(0)).join(' / ')} vs ${runs.b.map((x) => percentile(x, 50).toFixed(0)).join(' / ')} ms; PSAM MAC1 ${vpsam.counts.mac1}, MAC2 ok ${vpsam.counts.mac2Ok}`;
    report.row({ section: 'fares', metric: 'card exit with debit: present → OPEN p50', value: percentile(ours, 50), unit: 'ms', peer: { name: 'bare APDU exchange p50', value: percentile(bare, 50) }, target: 'ratio ≤ 1.10', note });
    report.row({ section: 'fares', metric: 'card exit with debit: present → OPEN p99', value: percentile(ours, 99), unit: 'ms', peer: { name: 'bare APDU exchange p99', value: percentile(bare, 99) }, target: 'ratio ≤ 1.10', note });
  } finally {
    await psam.stop();
    vpsam.remove();
    await pcscd.stop();
  }
}
