// The fare gate over in-process exchanges with a virtual card whose e-purse computes real MACs and a
// virtual PSAM: fares charged as the table says, the TAC as clearing computes it, tearing after every APDU
// of entry and exit (and after the card processed one, its answer lost) settled with exactly one debit,
// FARE_MIXED_TAPS (default 1,200) mixed taps with random tears: 0 double charges, 0 free exits; refusals
// with reasons (wrong PSAM key, blocked card, bad MAC2, balance too low → ticket office); degraded modes.

import { describe, expect, it } from 'vitest';
import { MemoryJournal, type JournalEntry } from '../../firmware/journal/journal.js';
import { fareModeSink, NORMAL_MODES } from '../../firmware/fares/fare-gate.js';
import { fromHex } from '../../protocol/apdu.js';
import { BEIJING_2014_RULES, discounted } from '../../protocol/fares.js';
import { cardSerial8, diversify, EMPTY_TRIP, encodeTripRecord, parseTripRecord, tac, TX_COMPOSITE } from '../../protocol/tunion-purse.js';
import { virtualCard, type VirtualCard } from '../../simulator/virtual-card.js';
import { TEST_ISSUER_KEYS, type PurseSpec } from '../../simulator/virtual-purse.js';
import { VirtualPsam } from '../../simulator/virtual-psam.js';
import { cardExchange, fareGate, fareTap, lineTable, TERMINAL_ID } from './support.js';
import { readTap } from '../../protocol/card-session.js';

const T0 = Date.UTC(2024, 5, 3, 1); // 2024-06-03 09:00 Beijing
const MIN = 60_000;
const table = lineTable();
const fareOf = (a: number, b: number) => table.fares[(a - 1) * table.stations.length + (b - 1)];

let serialSeq = 0;
function card(purse: Partial<PurseSpec> = {}): VirtualCard {
  const serial = '31041000' + String(++serialSeq).padStart(11, '0');
  return virtualCard().tUnion({ serial, expiry: 20301231, purse: { balanceFen: 10_000, ...purse } }).build();
}
const fareEntries = (j: MemoryJournal) => j.records.map((r) => r.entry).filter((e): e is Extract<JournalEntry, { type: 'fare' }> => e.type === 'fare');

describe('a card trip', () => {
  it('entry writes the record for 0 fen, exit charges the table fare; the TAC is the one clearing computes', async () => {
    const j = new MemoryJournal();
    const entry = fareGate({ station: 3, direction: 'entry' }, j).gate;
    const exit = fareGate({ station: 11, direction: 'exit' }, j).gate;
    const c = card();
    const e = await fareTap(entry, c, T0);
    expect(e).toMatchObject({ torn: false, decision: { grant: true, reason: 'ok', outcome: 'debited', chargeFen: 0 } });
    const x = await fareTap(exit, c, T0 + 20 * MIN);
    const want = fareOf(3, 11); // 8 stops × 3.1 km = 24.8 km → 6 yuan
    expect(want).toBe(600);
    expect(x).toMatchObject({ torn: false, decision: { grant: true, outcome: 'debited', chargeFen: 600, balanceAfterFen: 9400 } });
    expect(c.purse!.balanceFen).toBe(9400);
    expect(c.purse!.debitCount).toBe(2);
    const rec = fareEntries(j).at(-1)!;
    const d = rec.detail as Record<string, unknown>;
    expect(d).toMatchObject({ rule: 'distance', entryStation: 3, atc: 1, baseFen: 600 });
    // Clearing's TAC: the issuer's TAC master key, diversified by the card serial, over the journaled fields.
    const dtk = diversify(TEST_ISSUER_KEYS.tac, cardSerial8(rec.key.slice(5)));
    const dateTime = c.purse!.debits.at(-1)!.dateTime;
    expect(Buffer.from(tac(dtk, 600, TX_COMPOSITE, TERMINAL_ID, d.terminalSerial as number, dateTime)).toString('hex').toUpperCase()).toBe(d.tac);
  });

  it('the monthly discount tier comes from the card record; a new month starts at full fare', async () => {
    const j = new MemoryJournal();
    const entry = fareGate({ station: 1, direction: 'entry' }, j).gate;
    const exit = fareGate({ station: 2, direction: 'exit' }, j).gate;
    const c = card({ balanceFen: 100_000 });
    const charges: number[] = [];
    let t = T0;
    for (let i = 0; i < 60; i++) {
      await fareTap(entry, c, (t += 30 * MIN));
      const x = await fareTap(exit, c, (t += 10 * MIN));
      charges.push(!x.torn ? x.decision.chargeFen : -1);
    }
    // 3 yuan a trip: 34 trips reach 100 yuan (102), then 2.40 until 150, then 1.50 until 400.
    expect(charges.slice(0, 34).every((f) => f === 300)).toBe(true);
    expect(charges[34]).toBe(240);
    const spent = (k: number) => charges.slice(0, k).reduce((a, b) => a + b, 0);
    const firstHalf = charges.findIndex((f) => f === 150);
    expect(spent(firstHalf)).toBeGreaterThanOrEqual(15_000);
    expect(spent(firstHalf - 1)).toBeLessThan(15_000);
    await fareTap(entry, c, Date.UTC(2024, 6, 1, 1));
    const july = await fareTap(exit, c, Date.UTC(2024, 6, 1, 2));
    expect(!july.torn && july.decision.chargeFen).toBe(300);
  });
});

describe('tearing after every APDU', () => {
  // The read is 5 APDUs (UID, SELECT, 0x15, 0x17, balance); entry and exit add READ RECORD, INITIALIZE, UPDATE, DEBIT.
  for (const direction of ['entry', 'exit'] as const) {
    for (const answerLost of [false, true]) {
      it(`${direction}: pulled ${answerLost ? 'after the card processed APDU n' : 'before APDU n+1'}, n = ${answerLost ? '1..9' : '0..8'} (every APDU of 9) → exactly one debit, the gate opens once`, async () => {
        for (let n = answerLost ? 1 : 0; n <= (answerLost ? 9 : 8); n++) {
          const j = new MemoryJournal();
          const entry = fareGate({ station: 5, direction: 'entry' }, j).gate;
          const exit = fareGate({ station: 9, direction: 'exit' }, j).gate;
          const c = card();
          if (direction === 'exit') expect(await fareTap(entry, c, T0)).toMatchObject({ decision: { grant: true } });
          const gate = direction === 'entry' ? entry : exit;
          const before = c.purse!.debitCount;
          const at = T0 + 30 * MIN;
          const torn = await fareTap(gate, c, at, { after: n, answerLost });
          expect(torn.torn || !torn.decision.grant).toBe(true);
          const again = await fareTap(gate, c, at + 5000);
          expect(again).toMatchObject({ torn: false, decision: { grant: true } });
          expect(c.purse!.debitCount - before).toBe(1);
          const paid = direction === 'exit' ? fareOf(5, 9) : 0;
          expect(c.purse!.balanceFen).toBe(10_000 - paid);
          // A third tap is not a second debit either.
          const third = await fareTap(gate, c, at + 9000);
          expect(third).toMatchObject({ torn: false, decision: { grant: direction === 'exit', outcome: 'retap' } });
          expect(c.purse!.debitCount - before).toBe(1);
          // Journaled once with its TAC (debited, or recovered on the re-tap).
          const settled = fareEntries(j).filter((e) => e.direction === direction && (e.outcome === 'debited' || e.outcome === 'recovered'));
          expect(settled).toHaveLength(1);
          expect((settled[0].detail as { tac?: string }).tac).toBe(Buffer.from(c.purse!.debits.at(-1)!.tac).toString('hex').toUpperCase());
        }
      });
    }
  }
});

const MIXED = Number(process.env.FARE_MIXED_TAPS ?? 1200);

it(`${MIXED} mixed taps with random tears: 0 double charges, 0 free exits, the journal settles every debit once`, async () => {
  let x = 0x2545f491;
  const rnd = () => ((x = (Math.imul(x ^ (x >>> 15), 2246822519) + 0x9e3779b9) | 0) >>> 0) / 2 ** 32;
  const j = new MemoryJournal();
  const n = table.stations.length;
  const entries = Array.from({ length: n }, (_, i) => fareGate({ station: i + 1, direction: 'entry' }, j).gate);
  const exits = Array.from({ length: n }, (_, i) => fareGate({ station: i + 1, direction: 'exit' }, j).gate);
  const cards = Array.from({ length: 40 }, () => card({ balanceFen: 2000 + Math.floor(rnd() * 3000) }));
  let taps = 0;
  let t = T0;
  let doubles = 0;
  let freeExits = 0;
  let trips = 0;
  let topUps = 0;
  const maybeTear = () => (rnd() < 0.3 ? { after: Math.floor(rnd() * 10), answerLost: rnd() < 0.5 } : undefined);
  while (taps < MIXED) {
    const c = cards[Math.floor(rnd() * cards.length)];
    const a = 1 + Math.floor(rnd() * n);
    const b = 1 + Math.floor(rnd() * n);
    for (const [gate, station] of [[entries[a - 1], a], [exits[b - 1], b]] as const) {
      const before = c.purse!.debitCount;
      const spentBefore = c.purse!.debitedFen; // entries charge 0 here: all of it is this month's fares
      let granted = false;
      for (let attempt = 0; attempt < 12 && !granted; attempt++) {
        taps++;
        t += 20_000;
        const r = await fareTap(gate, c, t, attempt < 10 ? maybeTear() : undefined);
        if (!r.torn && r.decision.grant) granted = true;
        else if (!r.torn && r.decision.reason === 'insufficient-balance') {
          c.purse!.balanceFen += 5000; // the ticket office tops the card up
          topUps++;
        }
      }
      expect(granted, `station ${station}`).toBe(true);
      const debits = c.purse!.debitCount - before;
      if (debits > 1) doubles++;
      if (gate === exits[b - 1] && debits === 0) freeExits++;
      if (gate === exits[b - 1]) {
        trips++;
        const base = a === b ? BEIJING_2014_RULES.sameStationFareFen : fareOf(a, b);
        if (debits === 1) expect(c.purse!.debits.at(-1)!.amountFen).toBe(discounted(BEIJING_2014_RULES, base, spentBefore));
      }
    }
    t += 30 * MIN;
  }
  expect(doubles).toBe(0);
  expect(freeExits).toBe(0);
  expect(trips).toBeGreaterThan(MIXED / 10);
  // Settlement: each (card, ATC) once, whichever outcome journaled it; equals what the cards paid.
  const settled = new Map<string, number>();
  for (const e of fareEntries(j)) if (e.outcome === 'debited' || e.outcome === 'recovered') settled.set(`${e.key}:${(e.detail as { atc: number }).atc}`, e.chargeFen);
  const journaledFen = [...settled.values()].reduce((s, f) => s + f, 0);
  const paidFen = cards.reduce((s, c) => s + c.purse!.debitedFen, 0);
  expect(journaledFen).toBe(paidFen);
  expect(settled.size).toBe(cards.reduce((s, c) => s + c.purse!.debitCount, 0));
  console.log(`fares: ${taps} taps, ${trips} trips, ${topUps} top-ups, ${fareEntries(j).filter((e) => e.outcome === 'torn').length} torn, ${fareEntries(j).filter((e) => e.outcome === 'recovered').length} recovered`);
}, 120_000);

describe('refusals with reasons', () => {
  it('a PSAM with the wrong key: the card refuses MAC1 (93 02), nothing debited, fare-unavailable', async () => {
    const j = new MemoryJournal();
    const bad = new VirtualPsam({ terminalId: TERMINAL_ID, masterPurchaseKey: fromHex('00000000000000000000000000000001') });
    const entry = fareGate({ station: 1, direction: 'entry' }, j, bad).gate;
    const c = card();
    const r = await fareTap(entry, c, T0);
    expect(r).toMatchObject({ torn: false, decision: { grant: false, reason: 'fare-unavailable', outcome: 'refused' } });
    expect(!r.torn && r.decision.detail).toMatch(/MAC1/);
    expect(c.purse!.debitCount).toBe(0);
  });
  it('a blocked card (93 03) and a card whose MAC2 is wrong (journaled with its TAC)', async () => {
    const j = new MemoryJournal();
    const entry = fareGate({ station: 1, direction: 'entry' }, j).gate;
    expect(await fareTap(entry, card({ blocked: true }), T0)).toMatchObject({ decision: { grant: false, reason: 'blocked' } });
    const fake = card({ badMac: true });
    const r = await fareTap(entry, fake, T0);
    expect(r).toMatchObject({ decision: { grant: false, reason: 'card-invalid', outcome: 'mac2-failed' } });
    expect(fareEntries(j).at(-1)!.detail).toMatchObject({ tac: Buffer.from(fake.purse!.debits[0].tac).toString('hex').toUpperCase() });
  });
  it('balance too low at the exit: 余额不足, then topped up at the ticket office it pays and leaves', async () => {
    const j = new MemoryJournal();
    const entry = fareGate({ station: 1, direction: 'entry' }, j).gate;
    const exit = fareGate({ station: 20, direction: 'exit' }, j).gate;
    const c = card({ balanceFen: 200 });
    await fareTap(entry, c, T0);
    const low = await fareTap(exit, c, T0 + 40 * MIN);
    expect(low).toMatchObject({ decision: { grant: false, reason: 'insufficient-balance', outcome: 'refused' } });
    c.purse!.balanceFen += 1000;
    expect(await fareTap(exit, c, T0 + 45 * MIN)).toMatchObject({ decision: { grant: true, chargeFen: fareOf(1, 20) } });
  });
  it('the ticket office settles a refused exit in cash: the trip closed on the card, journaled, the rider leaves by the office', async () => {
    const j = new MemoryJournal();
    const entry = fareGate({ station: 1, direction: 'entry' }, j).gate;
    const exit = fareGate({ station: 20, direction: 'exit' }, j).gate;
    const office = fareGate({ station: 20, direction: 'exit', laneNumber: 99 }, j).gate;
    const c = card({ balanceFen: 100 });
    await fareTap(entry, c, T0);
    expect(await fareTap(exit, c, T0 + 40 * MIN)).toMatchObject({ decision: { grant: false, reason: 'insufficient-balance' } });
    // The office's reader reads the card as a gate does, then the clerk settles.
    const ex = cardExchange(c);
    const read = await readTap(ex.exchange, c.atr, T0 + 45 * MIN);
    expect(read.ok).toBe(true);
    const paid = await office.ticketOffice(ex.exchange, read.ok && read.credential.kind === 'card' ? read.credential.cardNumber : '', T0 + 45 * MIN);
    expect(paid).toMatchObject({ grant: true, outcome: 'ticket-office', chargeFen: fareOf(1, 20) });
    expect(c.purse!.balanceFen).toBe(100);
    expect(fareEntries(j).at(-1)).toMatchObject({ outcome: 'ticket-office', chargeFen: fareOf(1, 20), detail: { paid: 'cash' } });
    // The card's trip is closed: a next entry is a plain entry, not an entry over an open trip.
    expect(await fareTap(fareGate({ station: 3, direction: 'entry' }, j).gate, c, T0 + 120 * MIN)).toMatchObject({ decision: { grant: true, chargeFen: 0 } });
  });

  it('exit with no entry: the ticket office; entry over an open trip: its rule fare', async () => {
    const j = new MemoryJournal();
    const entry = fareGate({ station: 1, direction: 'entry' }, j).gate;
    const entry2 = fareGate({ station: 7, direction: 'entry' }, j).gate;
    const exit = fareGate({ station: 4, direction: 'exit' }, j).gate;
    expect(await fareTap(exit, card(), T0)).toMatchObject({ decision: { grant: false, reason: 'fare-ticket-office' } });
    const c = card();
    await fareTap(entry, c, T0);
    expect(await fareTap(entry2, c, T0 + 60 * MIN)).toMatchObject({ decision: { grant: true, chargeFen: 300 } });
  });
  it('over-time: more than 240 minutes inside costs 3 yuan more; same station costs the minimum fare', async () => {
    const j = new MemoryJournal();
    const entry = fareGate({ station: 2, direction: 'entry' }, j).gate;
    const exit = fareGate({ station: 3, direction: 'exit' }, j).gate;
    const same = fareGate({ station: 2, direction: 'exit' }, j).gate;
    const c = card();
    await fareTap(entry, c, T0);
    expect(await fareTap(exit, c, T0 + 240 * MIN + 1000)).toMatchObject({ decision: { chargeFen: 600 } });
    await fareTap(entry, c, T0 + 300 * MIN);
    expect(await fareTap(same, c, T0 + 320 * MIN)).toMatchObject({ decision: { chargeFen: 300 } });
  });
});

describe('degraded modes (per station)', () => {
  async function trip(modes: Partial<typeof NORMAL_MODES>, o: { balanceFen?: number; enter?: boolean; insideMin?: number } = {}) {
    const j = new MemoryJournal();
    const entry = fareGate({ station: 1, direction: 'entry' }, j).gate;
    const exit = fareGate({ station: 20, direction: 'exit' }, j).gate;
    const c = card({ balanceFen: o.balanceFen ?? 10_000 });
    if (o.enter !== false) await fareTap(entry, c, T0);
    exit.modes = { ...NORMAL_MODES, ...modes };
    return { r: await fareTap(exit, c, T0 + (o.insideMin ?? 60) * MIN), c };
  }
  const full = fareOf(1, 20);
  it('waive order: an exit with no entry pays the minimum fare', async () => {
    expect((await trip({ waiveOrder: true }, { enter: false })).r).toMatchObject({ decision: { grant: true, chargeFen: 300 } });
  });
  it('waive time: no over-time surcharge', async () => {
    expect((await trip({}, { insideMin: 300 })).r).toMatchObject({ decision: { chargeFen: full + 300 } });
    expect((await trip({ waiveTime: true }, { insideMin: 300 })).r).toMatchObject({ decision: { chargeFen: full } });
  });
  it('waive fare: a balance too low pays what it holds', async () => {
    const { r, c } = await trip({ waiveFare: true }, { balanceFen: 250 });
    expect(r).toMatchObject({ decision: { grant: true, chargeFen: 250 } });
    expect(c.purse!.balanceFen).toBe(0);
  });
  it('train failure: the exit charges nothing and closes the trip', async () => {
    const { r, c } = await trip({ trainFailure: true });
    expect(r).toMatchObject({ decision: { grant: true, chargeFen: 0, reason: 'ok-fare-waived' } });
    expect(c.purse!.balanceFen).toBe(10_000);
  });
  it('emergency release: no transaction, let through, journaled', async () => {
    const { r, c } = await trip({ emergency: true });
    expect(r).toMatchObject({ decision: { grant: true, outcome: 'waived', reason: 'ok-free-passage' } });
    expect(c.purse!.debitCount).toBe(1); // the entry only
  });
  it('the names a signed fare-mode command carries set the whole set, and read back in bus order', () => {
    const { gate } = fareGate({ station: 4, direction: 'exit' }, new MemoryJournal());
    const sink = fareModeSink(gate);
    sink.set(['waive-fare', 'emergency-release']);
    expect(gate.modes).toEqual({ ...NORMAL_MODES, waiveFare: true, emergency: true });
    sink.set(['train-failure']);
    expect(gate.modes).toEqual({ ...NORMAL_MODES, trainFailure: true });
    gate.modes = { ...NORMAL_MODES, emergency: true, waiveOrder: true };
    expect(sink.current()).toEqual(['waive-order', 'emergency-release']);
    sink.set([]);
    expect(gate.modes).toEqual(NORMAL_MODES);
  });
  it('waive fare with an empty purse: a 0-fen debit, journaled with the mode and the fare waived', async () => {
    const j = new MemoryJournal();
    const exit = fareGate({ station: 20, direction: 'exit' }, j).gate;
    const c = card({ balanceFen: 0 });
    await fareTap(fareGate({ station: 1, direction: 'entry' }, j).gate, c, T0);
    fareModeSink(exit).set(['waive-fare']);
    const r = await fareTap(exit, c, T0 + 60 * MIN);
    expect(r).toMatchObject({ decision: { grant: true, chargeFen: 0, reason: 'ok-fare-waived', outcome: 'debited' } });
    expect(fareEntries(j).at(-1)).toMatchObject({ chargeFen: 0, reason: 'ok-fare-waived', detail: { modes: ['waiveFare'], waivedFen: full } });
    expect(parseTripRecord(Uint8Array.from([...c.purse!.record, 0x90, 0x00]))).toMatchObject({ ok: true, value: { status: 'exited', exitStation: 20 } });
  });
  it('emergency release writes nothing on the card; the trip left open is taken later by rule', async () => {
    const j = new MemoryJournal();
    const exit = fareGate({ station: 20, direction: 'exit' }, j).gate;
    const c = card();
    await fareTap(fareGate({ station: 1, direction: 'entry' }, j).gate, c, T0);
    const record = Uint8Array.from(c.purse!.record);
    fareModeSink(exit).set(['emergency-release']);
    const debitsBefore = c.purse!.debitCount;
    expect(await fareTap(exit, c, T0 + 30 * MIN)).toMatchObject({ decision: { grant: true, outcome: 'waived', chargeFen: 0 } });
    expect(c.purse!.record).toEqual(record);
    expect(c.purse!.debitCount).toBe(debitsBefore);
    expect(fareEntries(j).at(-1)).toMatchObject({ outcome: 'waived', detail: { modes: ['emergency'] } });
    // Next day the card still shows the open entry: the entry-without-exit rule charges it, or nothing where order is waived.
    expect(await fareTap(fareGate({ station: 3, direction: 'entry' }, j).gate, c, T0 + 24 * 60 * MIN)).toMatchObject({ decision: { grant: true, chargeFen: BEIJING_2014_RULES.entryWithoutExitFareFen } });
    const waived = card();
    await fareTap(fareGate({ station: 1, direction: 'entry' }, j).gate, waived, T0);
    const lenient = fareGate({ station: 3, direction: 'entry' }, j).gate;
    fareModeSink(lenient).set(['waive-order']);
    expect(await fareTap(lenient, waived, T0 + 24 * 60 * MIN)).toMatchObject({ decision: { grant: true, chargeFen: 0 } });
  });
});

describe('the proof of a torn debit is MAC2-checked by the PSAM before it counts', () => {
  // The read is 5 APDUs, then READ RECORD, INITIALIZE, UPDATE: the 9th is the DEBIT, its answer lost here.
  const lostDebit = { after: 9, answerLost: true };
  async function tornExit(purse: Partial<PurseSpec> = {}) {
    const j = new MemoryJournal();
    const entry = fareGate({ station: 2, direction: 'entry' }, j).gate;
    const exit = fareGate({ station: 8, direction: 'exit' }, j);
    const c = card(purse);
    await fareTap(entry, c, T0);
    expect(await fareTap(exit.gate, c, T0 + 30 * MIN, lostDebit)).toMatchObject({ torn: false, decision: { outcome: 'torn' } });
    expect(c.purse!.debitCount).toBe(2); // entry (0 fen) and the exit's debit the gate never heard of
    return { j, exit, c };
  }
  const cardTac = (c: VirtualCard) => Buffer.from(c.purse!.debits.at(-1)!.tac).toString('hex').toUpperCase();

  it('a good proof: verified by the PSAM session of its MAC1, journaled recovered with its TAC, the rider leaves', async () => {
    const { j, exit, c } = await tornExit();
    const okBefore = exit.psam.counts.mac2Ok;
    const r = await fareTap(exit.gate, c, T0 + 30 * MIN + 4000);
    expect(r).toMatchObject({ torn: false, decision: { grant: true, outcome: 'recovered', chargeFen: fareOf(2, 8), tac: cardTac(c) } });
    expect(exit.psam.counts.mac2Ok - okBefore).toBe(1);
    expect(fareEntries(j).at(-1)).toMatchObject({ outcome: 'recovered', detail: { proof: 'verified', tac: cardTac(c), atc: 1 } });
    expect(c.purse!.debitCount).toBe(2);
  });

  it('a bad proof: refused card-invalid, journaled mac2-failed with the TAC for clearing; no free exit and no second debit on any re-tap', async () => {
    const { j, exit, c } = await tornExit({ badProof: true });
    const r = await fareTap(exit.gate, c, T0 + 30 * MIN + 4000);
    expect(r).toMatchObject({ torn: false, decision: { grant: false, reason: 'card-invalid', outcome: 'mac2-failed', chargeFen: fareOf(2, 8), tac: cardTac(c) } });
    expect(exit.psam.counts.mac2Bad).toBe(1);
    expect(fareEntries(j).at(-1)).toMatchObject({ outcome: 'mac2-failed', detail: { proof: 'mac2-failed', tac: cardTac(c) } });
    for (const dt of [8000, 12_000]) {
      expect(await fareTap(exit.gate, c, T0 + 30 * MIN + dt)).toMatchObject({ torn: false, decision: { grant: false, reason: 'card-invalid' } });
    }
    expect(c.purse!.debitCount).toBe(2);
    expect(c.purse!.balanceFen).toBe(10_000 - fareOf(2, 8));
  });

  it('no PSAM session to check it (another card paid since, or another lane): the ticket office, TAC journaled, never a second debit', async () => {
    const { j, exit, c } = await tornExit();
    const other = card();
    await fareTap(fareGate({ station: 3, direction: 'entry' }, j).gate, other, T0);
    expect(await fareTap(exit.gate, other, T0 + 30 * MIN + 2000)).toMatchObject({ decision: { grant: true, outcome: 'debited' } });
    const r = await fareTap(exit.gate, c, T0 + 30 * MIN + 4000);
    expect(r).toMatchObject({ torn: false, decision: { grant: false, reason: 'fare-ticket-office', outcome: 'refused' } });
    expect(fareEntries(j).at(-1)).toMatchObject({ detail: { proof: 'unchecked', tac: cardTac(c), claimedFen: fareOf(2, 8) } });
    const elsewhere = fareGate({ station: 8, direction: 'exit', laneNumber: 2 }, j).gate;
    expect(await fareTap(elsewhere, c, T0 + 30 * MIN + 6000)).toMatchObject({ decision: { grant: false, reason: 'fare-ticket-office' } });
    expect(c.purse!.debitCount).toBe(2);
  });

  it('the two sides of a lane share one PSAM: a purchase on the other side ends the torn debit\'s session, so the ticket office, not a PSAM fault', async () => {
    const j = new MemoryJournal();
    const entry = fareGate({ station: 2, direction: 'entry' }, j).gate;
    const exit = fareGate({ station: 8, direction: 'exit' }, j);
    const otherSide = fareGate({ station: 8, direction: 'entry' }, j, exit.psam).gate;
    const c = card();
    await fareTap(entry, c, T0);
    expect(await fareTap(exit.gate, c, T0 + 30 * MIN, lostDebit)).toMatchObject({ decision: { outcome: 'torn' } });
    // Someone enters on the other side meanwhile, through the same PSAM (a new MAC1 session).
    expect(await fareTap(otherSide, card(), T0 + 30 * MIN + 1000)).toMatchObject({ decision: { grant: true, outcome: 'debited' } });
    const r = await fareTap(exit.gate, c, T0 + 30 * MIN + 4000);
    expect(r).toMatchObject({ torn: false, decision: { grant: false, reason: 'fare-ticket-office', outcome: 'refused' } });
    expect(fareEntries(j).at(-1)).toMatchObject({ detail: { proof: 'unchecked', tac: cardTac(c) } });
    expect(c.purse!.debitCount).toBe(2);
  });

  it('a card whose MAC2 failed at the DEBIT stays refused when it comes back (its record says "exited here")', async () => {
    const j = new MemoryJournal();
    const exit = fareGate({ station: 8, direction: 'exit' }, j).gate;
    // Entered at station 2 (written here: an entry gate's PSAM would refuse the fake too).
    const fake = card({ badMac: true, tripRecord: encodeTripRecord({ ...EMPTY_TRIP, status: 'entered', entryStation: 2, entryLane: 1, entryAtMs: T0 }) });
    expect(await fareTap(exit, fake, T0 + 30 * MIN)).toMatchObject({ decision: { grant: false, outcome: 'mac2-failed' } });
    expect(await fareTap(exit, fake, T0 + 30 * MIN + 4000)).toMatchObject({ decision: { grant: false, reason: 'card-invalid', outcome: 'refused' } });
    expect(fake.purse!.debitCount).toBe(1);
  });
});
