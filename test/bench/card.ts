// Card bench, one private pcscd + vpcd, same virtual cards for every figure:
//  - card present → credential through our driver (nfc-pcsc, our session, parsing, checks), p50/p99,
//    beside the bare APDU exchange of the same cards driven directly with @pokusew/pcsclite (connect +
//    the same APDUs, no parsing), measured from the same instant: pcscd's status change reaching the process.
//  - card present → OPEN command on the barrier link, through the lane runtime, p99.
// pcscd polls vpcd every 400 ms, so detection time is NOT in these figures: both start at the status event.
// vpcd writes each message as two send() calls (length, then body); with Nagle on its side and delayed
// ACK on ours that costs ~40 ms per APDU on loopback, for the driver and the bare peer alike: absolute
// times here are vpcd's, the ratio is ours. A real reader answers an APDU in a few ms.
import { createRequire } from 'node:module';
import { PcscReader, pcscReaderConfigSchema, type TapReport } from '../../drivers/pcsc-reader.js';
import { SimulatedBarrierLink } from '../../drivers/simulated.js';
import { systemClock } from '../../drivers/seams.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { MemoryJournal } from '../../firmware/journal/journal.js';
import { startLane } from '../../firmware/composition/start-lane.js';
import { MemoryLists } from '../../firmware/lists/list-provider.js';
import { APDU } from '../../protocol/tunion.js';
import { VirtualBarrier } from '../../simulator/virtual-barrier.js';
import { virtualCard } from '../../simulator/virtual-card.js';
import { startPcscd, type PrivatePcscd } from '../support/pcscd.js';
import { interleaved, percentile, within, type BenchReport } from './report.js';

const TAPS = Number(process.env.CARD_BENCH_TAPS ?? 100);
const SEQUENCE = [APDU.getUid, APDU.selectTUnion, APDU.readFile15, APDU.readFile17, APDU.getBalance];
const serial = (i: number) => `31049999${String(i).padStart(11, '0')}`;
const card = (i: number) => virtualCard().tUnion({ serial: serial(i), expiry: 20301231, balanceFen: i });

/** Waits that ran out, by what was awaited: each one is a tap that waited on a timeout. */
const waitsTimedOut = { report: 0, decision: 0, open: 0, closed: 0 };

/** Tap `n` cards alternately on both slots, each waiting for `seen(slot)` before it leaves. */
async function tapMany(pcscd: PrivatePcscd, n: number, seen: (slot: number) => Promise<void>): Promise<void> {
  const lane = async (slot: number) => {
    for (let i = slot; i < n; i += 2) {
      const wait = seen(slot);
      const t = card(i).tap({ port: pcscd.readers[slot].port, leaveAfterIdleMs: 10_000 });
      if (!(await within(wait, 3000))) waitsTimedOut.report++;
      t.remove();
      await t.done;
    }
  };
  await Promise.all([lane(0), lane(1)]);
}

async function driverRun(pcscd: PrivatePcscd, n: number): Promise<number[]> {
  const reader = new PcscReader(pcscReaderConfigSchema.parse({ reader: 'Gate Reader', retryMs: 100 }));
  const samples: number[] = [];
  const waiters = new Map<string, () => void>();
  reader.onTap((t: TapReport) => {
    if (t.outcome.ok) samples.push(t.elapsedMs);
    waiters.get(t.reader)?.();
  });
  let ok!: () => void;
  const ready = new Promise<void>((r) => (ok = r));
  await reader.start((e) => e.type === 'SOURCE_OK' && ok());
  await ready;
  for (let i = 0; i < 50 && reader.readerNames.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
  await tapMany(pcscd, n, (slot) => new Promise<void>((r) => waiters.set(pcscd.readers[slot].name, r)));
  await reader.stop();
  return samples;
}

/** The same exchange with @pokusew/pcsclite and nothing else: connect on the status change, send the APDUs. */
async function bareRun(pcscd: PrivatePcscd, n: number): Promise<number[]> {
  const require = createRequire(import.meta.url);
  const pcsclite = require('@pokusew/pcsclite') as () => any;
  const pcsc = pcsclite();
  pcsc.on('error', () => {});
  const samples: number[] = [];
  const waiters = new Map<string, () => void>();
  const readers: any[] = [];
  await new Promise<void>((resolve) => {
    pcsc.on('reader', (reader: any) => {
      readers.push(reader);
      reader.on('error', () => {});
      let prev = 0;
      reader.on('status', (s: { state: number }) => {
        const present = s.state & reader.SCARD_STATE_PRESENT && !(prev & reader.SCARD_STATE_PRESENT);
        const gone = s.state & reader.SCARD_STATE_EMPTY && !(prev & reader.SCARD_STATE_EMPTY);
        prev = s.state;
        if (gone) reader.disconnect(reader.SCARD_LEAVE_CARD, () => {});
        if (!present) return;
        const t0 = performance.now();
        reader.connect({ share_mode: reader.SCARD_SHARE_SHARED }, async (err: Error | null, protocol: number) => {
          if (err) return waiters.get(reader.name)?.();
          try {
            for (const c of SEQUENCE) {
              await new Promise<Buffer>((res, rej) => reader.transmit(Buffer.from(c), 258, protocol, (e: Error | null, d: Buffer) => (e ? rej(e) : res(d))));
            }
            samples.push(performance.now() - t0);
          } catch {
            // torn: not a sample
          }
          waiters.get(reader.name)?.();
        });
      });
      if (readers.length === 2) resolve();
    });
  });
  await tapMany(pcscd, n, (slot) => new Promise<void>((r) => waiters.set(pcscd.readers[slot].name, r)));
  for (const r of readers) r.close();
  pcsc.close();
  return samples;
}

async function laneRun(pcscd: PrivatePcscd, n: number): Promise<{ samples: number[]; laneOnly: number[]; outcomes: Record<'passed' | 'not-passed', number>; refused: number; wallMs: number }> {
  const board = new VirtualBarrier(systemClock);
  const lists = new MemoryLists();
  for (let i = 0; i < n; i++) lists.allowlist.set(`card:${serial(i)}`, 'green');
  const reader = new PcscReader(pcscReaderConfigSchema.parse({ reader: 'Gate Reader A 00 00', retryMs: 100 }));
  const lane = await startLane({
    config: parseLaneConfig({ lane: { id: 'BENCH', direction: 'entry' }, timeouts: { passageMs: 100 }, policy: { antiPassbackSeconds: 0 } }),
    barrier: new SimulatedBarrierLink(board, systemClock),
    sources: [reader],
    lists,
    journal: new MemoryJournal(),
  });
  let presentAt = 0;
  let credentialAt = 0;
  reader.onTap((t) => {
    presentAt = t.presentAt;
    credentialAt = performance.now();
  });
  let opened: (() => void) | undefined;
  const samples: number[] = [];
  const laneOnly: number[] = [];
  board.onCommand((c) => {
    if (c.type === 'OPEN' && c.passages > 0 && presentAt) {
      const now = performance.now();
      samples.push(now - presentAt);
      laneOnly.push(now - credentialAt);
      presentAt = 0;
      opened?.();
    }
  });
  for (let i = 0; i < 200 && lane.view().mode !== 'normal'; i++) await new Promise((r) => setTimeout(r, 25));
  // The lane serves once its barrier link is up; the reader joins when pcscd lists it. Before the first rider,
  // wait for both, then once for pcscd to poll vpcd for the new context (without this pause the first card
  // put down is never powered: no APDU, no report). Set-up, once: no tap waits on it.
  if (reader.readerNames.length === 0) await within(new Promise<void>((r) => reader.onReader(() => r())), 5000);
  await new Promise((r) => setTimeout(r, 1000));
  // The next rider comes once the lane has reported this rider's passage (passed, or timed out) and the
  // board has then reported its flaps closed: facts the lane and the board report, whatever the lane's
  // states are called. (The lane hears the board first: it listened first, and delivery is synchronous.)
  let passage = false;
  let back: (() => void) | undefined;
  const outcomes = { passed: 0, 'not-passed': 0 };
  lane.on('passage', (e) => {
    passage = true;
    outcomes[e.outcome]++;
  });
  board.listen((e) => {
    if (e.type === 'FLAPS' && e.position === 'closed' && passage && lane.view().flaps === 'closed') back?.();
  });
  // A refused tap (a torn read: "tap again") opens nothing: the rider taps again at once.
  const wall0 = performance.now();
  let decided: ((grant: boolean) => void) | undefined;
  let refused = 0;
  lane.on('decision', (e) => decided?.(e.decision.grant));
  for (let i = 0; i < n; i++) {
    for (let attempt = 0; attempt < 3; attempt++) {
      const got = new Promise<void>((r) => (opened = r));
      const decision = new Promise<boolean>((r) => (decided = r));
      passage = false;
      const closed = new Promise<void>((r) => (back = r));
      const t = card(i).tap({ port: pcscd.readers[0].port, leaveAfterIdleMs: 10_000 });
      let grant = false;
      if (!(await within(decision.then((g) => (grant = g)), 10_000))) waitsTimedOut.decision++;
      if (grant && !(await within(got, 3000))) waitsTimedOut.open++;
      t.remove();
      await t.done;
      if (!grant) {
        refused++;
        presentAt = 0;
        continue;
      }
      board.walkThrough('entry');
      if (!(await within(closed, 5000))) waitsTimedOut.closed++;
      break;
    }
  }
  const wallMs = performance.now() - wall0;
  await lane.stop();
  return { samples, laneOnly, outcomes, refused, wallMs };
}


export async function run(report: BenchReport): Promise<void> {
  const pcscd = await startPcscd();
  process.env.PCSCLITE_CSOCK_NAME = pcscd.socket;
  try {
    // Interleave rounds, the order alternating (ours, bare; bare, ours), so drift (cache, CPU frequency,
    // other load) hits both alike.
    const runs = await interleaved(2, () => driverRun(pcscd, TAPS / 2), () => bareRun(pcscd, TAPS / 2));
    const ours = runs.a.flat();
    const bare = runs.b.flat();
    const note = `${ours.length} vs ${bare.length} taps, pcscd+vpcd, from the status change; 2 rounds each, interleaved A B / B A; per-round p50 ${runs.a.map((x) => percentile(x, 50).toFixed(0)).join(' / ')} vs ${runs.b.map((x) => percentile(x, 50).toFixed(0)).join(' / ')} ms`;
    report.row({ section: 'card', metric: 'present → credential p50', value: percentile(ours, 50), unit: 'ms', peer: { name: 'bare pcsclite exchange p50', value: percentile(bare, 50) }, target: 'ratio < 1.10', note });
    report.row({ section: 'card', metric: 'present → credential p99', value: percentile(ours, 99), unit: 'ms', peer: { name: 'bare pcsclite exchange p99', value: percentile(bare, 99) }, target: 'ratio < 1.10', note });
    const { samples: open, laneOnly, outcomes, refused, wallMs } = await laneRun(pcscd, Math.max(10, TAPS / 2));
    report.row({ section: 'card', metric: 'present → OPEN p99', value: percentile(open, 99), unit: 'ms', peer: { name: 'bare exchange p99', value: percentile(bare, 99) }, target: '< 300 ms (Beijing card transaction budget)', note: `${open.length} taps through the lane runtime in ${(wallMs / 1000).toFixed(1)} s (tap, OPEN, walk through, flaps closed: ${(wallMs / open.length).toFixed(0)} ms a rider); p50 ${percentile(open, 50).toFixed(1)} ms; passages ${outcomes.passed} passed, ${outcomes['not-passed']} timed out; ${refused} taps refused (torn read) and tapped again; taps that waited on a timeout: ${waitsTimedOut.report} for a tap report, ${waitsTimedOut.decision} for a decision, ${waitsTimedOut.open} for OPEN, ${waitsTimedOut.closed} for the lane to close after the passage` });
    report.row({ section: 'card', metric: 'credential → OPEN p99 (lane: decision, journal, command)', value: percentile(laneOnly, 99), unit: 'ms', peer: { name: 'present → credential p50', value: percentile(ours, 50) }, note: `p50 ${percentile(laneOnly, 50).toFixed(2)} ms` });
  } finally {
    await pcscd.stop();
  }
}
