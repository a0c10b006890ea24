// The back office's side of fares: a generated network, its signed fare table served at GET /v1/fare-table
// (a lane verifies it, never takes a lower seq), and settlement over the real HTTP ingest: QR trips paired
// per account and priced with the table, the monthly discount per account, card debits counted once per
// (card, ATC); per-issuer CSV files whose totals equal ground truth computed here from the network's
// distances and the cited rules (not from the table or the pricing code).

import { describe, expect, it } from 'vitest';
import { FareTableHolder } from '../../firmware/fares/fare-table-file.js';
import { MemoryJournal, type JournalRecord } from '../../firmware/journal/journal.js';
import type { Alarm } from '../../protocol/alarms.js';
import { trustedListKey } from '../../protocol/lists/index.js';
import { beijingMonth } from '../../protocol/tunion-purse.js';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { settleBackoffice, settlementFiles } from '../../simulator/backoffice/settlement.js';
import { generateNetwork } from '../../simulator/network.js';
import { seededRandom } from '../../simulator/random.js';
import { virtualCard } from '../../simulator/virtual-card.js';
import { fareGate, fareTap } from './support.js';

const TOKEN = 'gate-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };

describe('the generated network', () => {
  it('is connected, symmetric, and every line after the first shares a transfer station', () => {
    const net = generateNetwork({ seed: 3, lines: 5, stationsPerLine: 12 });
    const n = net.stations.length;
    expect(n).toBe(5 * 12 - 4);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        expect(Number.isFinite(net.distancesM[i * n + j])).toBe(true);
        expect(net.distancesM[i * n + j]).toBe(net.distancesM[j * n + i]);
      }
    expect(generateNetwork({ seed: 3, lines: 5, stationsPerLine: 12 }).distancesM).toEqual(net.distancesM);
  });
});

/** The cited rules, written out here on their own: bands, +1 yuan per started 20 km, the monthly tiers. */
function truthFare(m: number): number {
  if (m <= 6000) return 300;
  if (m <= 12000) return 400;
  if (m <= 22000) return 500;
  if (m <= 32000) return 600;
  return 600 + Math.ceil((m - 32000) / 20000) * 100;
}
const truthPercent = (spent: number) => (spent >= 40000 ? 100 : spent >= 15000 ? 50 : spent >= 10000 ? 80 : 100);

describe('fare table served, verified, and settlement', () => {
  it('GET /v1/fare-table: the lane takes the newest verified table and refuses an older one', async () => {
    const bo = new Backoffice({ db: ':memory:', tokens: [{ token: TOKEN, role: 'gate' }] });
    const { url } = await bo.listen(0);
    try {
      expect((await fetch(`${url}/v1/fare-table`, { headers: auth })).status).toBe(404);
      const net = generateNetwork({ seed: 1, lines: 3, stationsPerLine: 8 });
      const first = bo.publishFareTable(net);
      bo.publishFareTable(net);
      expect((await fetch(`${url}/v1/fare-table`)).status).toBe(401);
      const r = await fetch(`${url}/v1/fare-table`, { headers: auth });
      expect(r.status).toBe(200);
      const alarms: Alarm[] = [];
      const holder = new FareTableHolder([trustedListKey(bo.publicKeyPem)], (a) => alarms.push(a));
      expect(holder.update(new Uint8Array(await r.arrayBuffer()))).toEqual({ ok: true, seq: 2 });
      expect(holder.update(first)).toMatchObject({ ok: false, alarm: { alarm: 'fare-table-rejected', error: 'older' } });
      expect(holder.current()?.stations).toHaveLength(net.stations.length);
      expect(alarms).toHaveLength(1);
    } finally {
      await bo.close();
    }
  });

  it('QR trips priced per account with the monthly discount, card debits once each: settlement = ground truth', async () => {
    const bo = new Backoffice({ db: ':memory:', tokens: [{ token: TOKEN, role: 'gate' }] });
    const { url } = await bo.listen(0);
    try {
      const net = generateNetwork({ seed: 9, lines: 4, stationsPerLine: 10 });
      const n = net.stations.length;
      bo.publishFareTable(net);
      const table = bo.currentFareTable()!;
      const laneStation = (laneId: string) => Number(/^L-(\d+)-/.exec(laneId)?.[1]);
      const rnd = seededRandom(42);
      const journals = new Map<string, MemoryJournal>();
      const journalOf = (laneId: string) => journals.get(laneId) ?? journals.set(laneId, new MemoryJournal()).get(laneId)!;
      // QR riders: each account rides many times over two months; the lanes journal granted entries and exits.
      const truth = new Map<string, number>();
      const accounts = Array.from({ length: 12 }, (_, i) => ({ issuer: ['alipay', 'yitongxing', 'unionpay'][i % 3], account: `acct-${i}`, spent: new Map<number, number>() }));
      let t = Date.UTC(2024, 4, 20, 0);
      for (let trip = 0; trip < 900; trip++) {
        const a = accounts[Math.floor(rnd() * accounts.length)];
        const s = 1 + Math.floor(rnd() * n);
        let x = 1 + Math.floor(rnd() * n);
        if (x === s) x = (x % n) + 1;
        t += 45 * 60_000 + Math.floor(rnd() * 3 * 3600_000);
        const key = `qr:${a.issuer}:${a.account}`;
        const decision = (laneId: string, atMs: number, direction: 'entry' | 'exit') => journalOf(laneId).append({ type: 'decision', laneId, atMs, direction, kind: 'qr', ref: 'x', key, grant: true, reason: 'ok', source: 'camera' });
        await decision(`L-${s}-entry`, t, 'entry');
        await decision(`L-${x}-exit`, t + 40 * 60_000, 'exit');
        const month = beijingMonth(t + 40 * 60_000);
        const spent = a.spent.get(month) ?? 0;
        const fen = Math.floor((truthFare(net.distancesM[(s - 1) * n + (x - 1)]) * truthPercent(spent) + 50) / 100);
        a.spent.set(month, spent + fen);
        truth.set(a.issuer, (truth.get(a.issuer) ?? 0) + fen);
      }
      // Card riders: exits debit through the fare gate; some taps torn after the debit (recovered on the re-tap).
      const cards = Array.from({ length: 5 }, (_, i) => virtualCard().tUnion({ serial: `3104100099${String(i).padStart(9, '0')}`, expiry: 20301231, purse: { balanceFen: 1_000_000 } }).build());
      for (let trip = 0; trip < 60; trip++) {
        const c = cards[trip % cards.length];
        const s = 1 + Math.floor(rnd() * n);
        const x = 1 + Math.floor(rnd() * n);
        t += 3600_000;
        const entry = fareGate({ station: s, direction: 'entry' }, journalOf(`L-${s}-entry`), undefined, table).gate;
        const exit = fareGate({ station: x, direction: 'exit' }, journalOf(`L-${x}-exit`), undefined, table).gate;
        await fareTap(entry, c, t);
        if (trip % 4 === 0) await fareTap(exit, c, t + 30 * 60_000, { after: 9, answerLost: true });
        const r = await fareTap(exit, c, t + 31 * 60_000);
        expect(r.torn ? false : r.decision.grant).toBe(true);
      }
      // Upload every lane's journal over HTTP, twice (the ingest is idempotent by lane and seq).
      for (let round = 0; round < 2; round++)
        for (const [laneId, j] of journals) {
          const res = await fetch(`${url}/v1/transactions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ laneId, records: j.records satisfies JournalRecord[] }) });
          expect(res.status).toBe(200);
        }
      const s = settleBackoffice(bo, laneStation);
      expect(s.unsettled, JSON.stringify(s.unsettled.slice(0, 3))).toEqual([]);
      for (const [issuer, fen] of truth) expect(s.issuers.get(issuer)?.totalFen, issuer).toBe(fen);
      expect(s.issuers.get('tunion')?.totalFen).toBe(cards.reduce((sum, c) => sum + c.purse!.debitedFen, 0));
      // Every debit once, entries (0 fen) too: clearing gets every TAC.
      expect(s.issuers.get('tunion')?.trips).toHaveLength(cards.reduce((sum, c) => sum + c.purse!.debitCount, 0));
      // The discount was used: some QR trips at 80 % and 50 %.
      const pcts = new Set([...s.issuers.values()].flatMap((i) => i.trips.map((x) => x.percent)));
      expect(pcts).toEqual(new Set([100, 80, 50]));
      const files = settlementFiles(s);
      expect([...files.keys()].sort()).toEqual(['settlement-alipay.csv', 'settlement-tunion.csv', 'settlement-unionpay.csv', 'settlement-yitongxing.csv']);
      for (const [name, text] of files) {
        const lines = text.trim().split('\n');
        expect(lines[0]).toMatch(/^issuer,account,/);
        const sum = lines.slice(1, -1).reduce((acc, l) => acc + Number(l.split(',')[9]), 0);
        expect(lines.at(-1), name).toBe(`total,${sum}`);
      }
    } finally {
      await bo.close();
    }
  }, 60_000);
});
