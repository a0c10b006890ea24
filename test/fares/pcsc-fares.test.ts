// Fares over real pcscd + vpcd: the card in slot 0 read by our PC/SC driver, whose transaction hook runs
// the fare gate while the card is in the field; the virtual PSAM in slot 1 through the PSAM driver. Tearing
// after every APDU of entry and exit; FARE_TAPS (default 30; pcscd polls vpcd every 400 ms, so a tap costs
// about a second) mixed taps with random tears: 0 double charges, 0 free exits; refusals with reasons.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JournalEntry } from '../../firmware/journal/journal.js';
import { fromHex } from '../../protocol/apdu.js';
import { virtualCard, type VirtualCard } from '../../simulator/virtual-card.js';
import type { PurseSpec } from '../../simulator/virtual-purse.js';
import { startFareStation, type FareStation } from '../support/fare-station.js';
import { lineTable, TERMINAL_ID } from './support.js';

const table = lineTable();
const fareOf = (a: number, b: number) => table.fares[(a - 1) * table.stations.length + (b - 1)];
let st: FareStation;
beforeAll(async () => {
  st = await startFareStation(table, { terminalId: TERMINAL_ID });
}, 30_000);
afterAll(async () => {
  await st?.stop();
});

let serialSeq = 0;
function card(purse: Partial<PurseSpec> = {}): VirtualCard {
  return virtualCard().tUnion({ serial: '31041000' + String(++serialSeq + 50_000).padStart(11, '0'), expiry: 20301231, purse: { balanceFen: 10_000, ...purse } }).build();
}
const fareEntries = () => st.journal.records.map((r) => r.entry).filter((e): e is Extract<JournalEntry, { type: 'fare' }> => e.type === 'fare');

it('entry then exit through pcscd: the exit debits the table fare with the PSAM, the tap reports the grant', async () => {
  const entry = st.gate({ station: 2, direction: 'entry' });
  const exit = st.gate({ station: 10, direction: 'exit' });
  const c = card();
  const e = await st.tap(c, entry);
  expect(e.report?.transaction).toMatchObject({ grant: true, reason: 'ok' });
  const x = await st.tap(c, exit);
  expect(x.report?.transaction).toMatchObject({ grant: true, reason: 'ok' });
  expect(c.purse!.balanceFen).toBe(10_000 - fareOf(2, 10));
  expect(st.psam.terminalId).toEqual(TERMINAL_ID);
  expect(fareEntries().at(-1)).toMatchObject({ outcome: 'debited', chargeFen: fareOf(2, 10), station: 10 });
}, 30_000);

describe('tearing after every APDU, through pcscd', () => {
  for (const direction of ['entry', 'exit'] as const) {
    it(`${direction}: torn before each APDU and after each processed APDU → one debit, then the gate opens`, async () => {
      const cases = [...Array.from({ length: 9 }, (_, n) => ({ n, lost: false })), ...Array.from({ length: 9 }, (_, n) => ({ n: n + 1, lost: true }))];
      for (const { n, lost } of cases) {
        const entry = st.gate({ station: 4, direction: 'entry' });
        const exit = st.gate({ station: 8, direction: 'exit' });
        const c = card();
        if (direction === 'exit') expect((await st.tap(c, entry)).report?.transaction?.grant).toBe(true);
        const gate = direction === 'entry' ? entry : exit;
        const before = c.purse!.debitCount;
        const torn = await st.tap(c.tearNextTap(n, lost), gate);
        expect(torn.log.ended, `n=${n} lost=${lost}`).toBe('torn');
        expect(torn.report?.transaction?.grant ?? false, `n=${n} lost=${lost}: ${JSON.stringify(torn.report)}`).toBe(false);
        const again = await st.tap(c, gate);
        expect(again.report?.transaction, `n=${n} lost=${lost}`).toMatchObject({ grant: true });
        expect(c.purse!.debitCount - before, `n=${n} lost=${lost}`).toBe(1);
        expect(c.purse!.balanceFen).toBe(10_000 - (direction === 'exit' ? fareOf(4, 8) : 0));
      }
    }, 240_000);
  }
});

const TAPS = Number(process.env.FARE_TAPS ?? 30);

it(`${TAPS} mixed taps through pcscd with random tears: 0 double charges, 0 free exits, journal = what cards paid`, async () => {
  let x = 0x1234567;
  const rnd = () => ((x = (Math.imul(x ^ (x >>> 15), 2246822519) + 0x9e3779b9) | 0) >>> 0) / 2 ** 32;
  const n = table.stations.length;
  const entries = Array.from({ length: n }, (_, i) => st.gate({ station: i + 1, direction: 'entry' }));
  const exits = Array.from({ length: n }, (_, i) => st.gate({ station: i + 1, direction: 'exit' }));
  const cards = Array.from({ length: 6 }, () => card({ balanceFen: 1500 + Math.floor(rnd() * 2000) }));
  const paidBefore = cards.reduce((s, c) => s + c.purse!.debitedFen, 0);
  const journalFrom = st.journal.records.length;
  let taps = 0;
  let doubles = 0;
  let freeExits = 0;
  while (taps < TAPS) {
    const c = cards[Math.floor(rnd() * cards.length)];
    const legs = [entries[Math.floor(rnd() * n)], exits[Math.floor(rnd() * n)]];
    for (const gate of legs) {
      const before = c.purse!.debitCount;
      let granted = false;
      for (let attempt = 0; attempt < 8 && !granted; attempt++) {
        taps++;
        if (attempt < 6 && rnd() < 0.35) c.tearNextTap(Math.floor(rnd() * 10), rnd() < 0.5);
        const r = await st.tap(c, gate);
        if (r.report?.transaction?.grant) granted = true;
        else if (r.report?.transaction?.reason === 'insufficient-balance') c.purse!.balanceFen += 3000;
      }
      expect(granted).toBe(true);
      const debits = c.purse!.debitCount - before;
      if (debits > 1) doubles++;
      if (gate.config.direction === 'exit' && debits === 0) freeExits++;
    }
  }
  expect(doubles).toBe(0);
  expect(freeExits).toBe(0);
  const settled = new Map<string, number>();
  for (const r of st.journal.records.slice(journalFrom)) {
    const e = r.entry;
    if (e.type === 'fare' && (e.outcome === 'debited' || e.outcome === 'recovered')) settled.set(`${e.key}:${(e.detail as { atc: number }).atc}`, e.chargeFen);
  }
  expect([...settled.values()].reduce((s, f) => s + f, 0)).toBe(cards.reduce((s, c) => s + c.purse!.debitedFen, 0) - paidBefore);
}, 900_000);

describe('refusals with reasons, through pcscd', () => {
  it('a PSAM with the wrong key, a blocked card, a card whose MAC2 is wrong', async () => {
    const entry = st.gate({ station: 1, direction: 'entry' });
    const good = st.virtualPsam.spec.masterPurchaseKey;
    st.virtualPsam.spec.masterPurchaseKey = fromHex('00000000000000000000000000000001');
    try {
      const c = card();
      expect((await st.tap(c, entry)).report?.transaction).toMatchObject({ grant: false, reason: 'fare-unavailable' });
      expect(c.purse!.debitCount).toBe(0);
    } finally {
      st.virtualPsam.spec.masterPurchaseKey = good;
    }
    expect((await st.tap(card({ blocked: true }), entry)).report?.transaction).toMatchObject({ grant: false, reason: 'blocked' });
    expect((await st.tap(card({ badMac: true }), entry)).report?.transaction).toMatchObject({ grant: false, reason: 'card-invalid' });
    expect(fareEntries().at(-1)).toMatchObject({ outcome: 'mac2-failed' });
  }, 30_000);
});
