// `gate sim --fares`: a generated network (lines, stations, distances), the back office publishing its
// signed fare table over real HTTP, an entry and an exit fare gate per station that take it only once it
// verifies, card riders paying at the exit from an e-purse that computes real MACs (some taps torn at a
// random APDU, re-tapped), and QR riders whose entries and exits the lanes journal for post-payment. Every
// lane's journal is uploaded to the back office, which settles per issuer. Ground truth: the simulator's
// own fare of every trip (network distance by the cited bands, the month's spending per rider), held
// against what each card paid and what the settlement charges each issuer.

import { FareGate, type FareModes } from '../fares/fare-gate.js';
import { FareTableHolder } from '../fares/fare-table-file.js';
import { MemoryJournal } from '../journal/journal.js';
import { readTap, type Exchange } from '../../protocol/card-session.js';
import { BEIJING_2014_RULES, discounted, distanceFareFen } from '../../protocol/fares.js';
import { fromHex } from '../../protocol/apdu.js';
import { trustedListKey } from '../../protocol/lists/index.js';
import { beijingMonth } from '../../protocol/tunion-purse.js';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { settleBackoffice, settlementFiles } from '../../simulator/backoffice/settlement.js';
import { generateNetwork } from '../../simulator/network.js';
import { seededRandom } from '../../simulator/random.js';
import { virtualCard, type VirtualCard } from '../../simulator/virtual-card.js';
import { VirtualPsam } from '../../simulator/virtual-psam.js';

export interface FareSimOptions {
  seed: number;
  lines: number;
  stationsPerLine: number;
  riders: number;
  trips: number;
  /** Share of card taps pulled away at a random APDU (re-tapped until the gate answers). */
  tearRate?: number;
  modes?: Partial<FareModes>;
}

export interface FareSimSummary {
  stations: number;
  trips: number;
  cardTrips: number;
  qrTrips: number;
  taps: number;
  tornTaps: number;
  /** Per issuer: the simulator's own total and the back office's settlement. */
  issuers: Record<string, { truthFen: number; settledFen: number }>;
  doubleCharges: number;
  freeExits: number;
  /** Card exits whose debit differs from the simulator's fare. */
  wrongFares: number;
  /** Riders (card or QR account) whose settled trips differ from the simulator's trips: count or fares. */
  wrongRiders: number;
  files: Record<string, string>;
}

const TOKEN = 'fare-sim-gate-token-000';

export async function simulateFares(o: FareSimOptions): Promise<FareSimSummary> {
  const rnd = seededRandom(o.seed);
  const bo = new Backoffice({ db: ':memory:', tokens: [{ token: TOKEN, role: 'gate' }] });
  const { url } = await bo.listen(0);
  try {
    const net = generateNetwork({ seed: o.seed, lines: o.lines, stationsPerLine: o.stationsPerLine });
    const n = net.stations.length;
    bo.publishFareTable(net);
    // Every lane fetches the table over HTTP and takes it only once it verifies against the list key.
    const res = await fetch(`${url}/v1/fare-table`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const doc = new Uint8Array(await res.arrayBuffer());
    const keys = [trustedListKey(bo.publicKeyPem)];
    const lanes = new Map<string, { gate: FareGate; journal: MemoryJournal; station: number }>();
    for (const s of net.stations) {
      for (const direction of ['entry', 'exit'] as const) {
        const laneId = `S${s.id}-${direction}`;
        const holder = new FareTableHolder(keys);
        const upd = holder.update(doc);
        if (!upd.ok) throw new Error(`fare table refused: ${upd.alarm.detail}`);
        const psam = new VirtualPsam({ terminalId: fromHex(`1101${String(s.id).padStart(6, '0')}${direction === 'entry' ? '01' : '02'}`) });
        const journal = new MemoryJournal();
        const gate = new FareGate({ laneId, laneNumber: direction === 'entry' ? 1 : 2, station: s.id, direction, retapGraceMs: 10 * 60_000 }, { exchange: async (c) => psam.respond(c), terminalId: psam.spec.terminalId }, journal);
        holder.onTable((t) => gate.setTable(t));
        gate.modes = { ...gate.modes, ...o.modes };
        lanes.set(laneId, { gate, journal, station: s.id });
      }
    }
    const riders = Array.from({ length: o.riders }, (_, i) => {
      const qr = rnd() < 0.5;
      return {
        qr,
        issuer: qr ? ['yitongxing', 'alipay', 'unionpay', 'cmb'][i % 4] : 'tunion',
        account: qr ? `acct-${i}` : `3104100${String(i).padStart(12, '0')}`,
        card: qr ? undefined : virtualCard().tUnion({ serial: `3104100${String(i).padStart(12, '0')}`, expiry: 20301231, purse: { balanceFen: 1_000_000 } }).build(),
        spent: new Map<number, number>(),
        busyUntil: 0,
      };
    });
    const sum: FareSimSummary = { stations: n, trips: 0, cardTrips: 0, qrTrips: 0, taps: 0, tornTaps: 0, issuers: {}, doubleCharges: 0, freeExits: 0, wrongFares: 0, wrongRiders: 0, files: {} };
    // The fare of every trip, per rider, in order: held against the settlement's trips of that rider.
    const truthTrips = new Map<string, number[]>();
    const truth = (issuer: string, fen: number) => {
      const i = (sum.issuers[issuer] ??= { truthFen: 0, settledFen: 0 });
      i.truthFen += fen;
    };
    let t = Date.UTC(2024, 5, 1, 0);
    for (let trip = 0; trip < o.trips; trip++) {
      t += 1 + Math.floor(rnd() * 120_000);
      const r = riders[Math.floor(rnd() * riders.length)];
      const at = Math.max(t, r.busyUntil);
      const a = 1 + Math.floor(rnd() * n);
      const b = 1 + Math.floor(rnd() * n);
      const exitAt = at + (10 + Math.floor(rnd() * 80)) * 60_000;
      r.busyUntil = exitAt + 60_000;
      const month = beijingMonth(exitAt);
      const spent = r.spent.get(month) ?? 0;
      const base = a === b ? BEIJING_2014_RULES.sameStationFareFen : distanceFareFen(BEIJING_2014_RULES, net.distancesM[(a - 1) * n + (b - 1)]);
      const fare = discounted(BEIJING_2014_RULES, base, spent);
      r.spent.set(month, spent + fare);
      truth(r.issuer, fare);
      truthTrips.set(`${r.issuer}:${r.account}`, [...(truthTrips.get(`${r.issuer}:${r.account}`) ?? []), fare]);
      sum.trips++;
      const entryLane = lanes.get(`S${a}-entry`)!;
      const exitLane = lanes.get(`S${b}-exit`)!;
      if (r.qr) {
        sum.qrTrips++;
        const key = `qr:${r.issuer}:${r.account}`;
        for (const [lane, when, direction] of [[entryLane, at, 'entry'], [exitLane, exitAt, 'exit']] as const) {
          await lane.journal.append({ type: 'decision', laneId: lane.gate.config.laneId, atMs: when, direction, kind: 'qr', ref: r.account.slice(-4), key, grant: true, reason: 'ok', source: 'camera:sim' });
        }
        continue;
      }
      sum.cardTrips++;
      const card = r.card!;
      for (const [lane, when] of [[entryLane, at], [exitLane, exitAt]] as const) {
        const before = card.purse!.debitCount;
        let granted = false;
        for (let attempt = 0; attempt < 10 && !granted; attempt++) {
          sum.taps++;
          const tear = attempt < 8 && rnd() < (o.tearRate ?? 0.1) ? { after: Math.floor(rnd() * 10), answerLost: rnd() < 0.5 } : undefined;
          if (tear) sum.tornTaps++;
          granted = await cardTap(lane.gate, card, when + attempt * 5000, tear);
        }
        const debits = card.purse!.debitCount - before;
        if (debits > 1) sum.doubleCharges++;
        if (lane === exitLane) {
          if (debits === 0) sum.freeExits++;
          else if (card.purse!.debits.at(-1)!.amountFen !== fare) sum.wrongFares++;
        }
      }
    }
    // Every lane uploads its journal; the back office settles per issuer.
    for (const [laneId, l] of lanes) {
      for (let i = 0; i < l.journal.records.length; i += 5000) {
        const up = await fetch(`${url}/v1/transactions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify({ laneId, records: l.journal.records.slice(i, i + 5000) }),
        });
        if (up.status !== 200) throw new Error(`upload of ${laneId} refused: ${up.status} ${await up.text()}`);
      }
    }
    const stationOf = (laneId: string) => lanes.get(laneId)?.station;
    const s = settleBackoffice(bo, stationOf);
    for (const [issuer, { totalFen }] of s.issuers) (sum.issuers[issuer] ??= { truthFen: 0, settledFen: 0 }).settledFen = totalFen;
    const settledTrips = new Map<string, number[]>();
    for (const [issuer, { trips }] of s.issuers)
      for (const t of trips) {
        // Card entries are 0-fen debits (the entry written on the card): not trips of their own.
        if (t.rule === 'card-entry' && t.chargeFen === 0) continue;
        const k = `${issuer}:${t.account}`;
        settledTrips.set(k, [...(settledTrips.get(k) ?? []), t.chargeFen]);
      }
    for (const [k, fares] of truthTrips) if ((settledTrips.get(k) ?? []).join() !== fares.join()) sum.wrongRiders++;
    sum.files = Object.fromEntries(settlementFiles(s));
    return sum;
  } finally {
    await bo.close();
  }
}

/** One tap as the PC/SC driver runs it, on an in-process exchange: read, then the fare transaction. */
async function cardTap(gate: FareGate, card: VirtualCard, nowMs: number, tear?: { after: number; answerLost: boolean }): Promise<boolean> {
  const state = { selected: false, uid: card.newUid() };
  card.purse?.reset();
  let n = 0;
  let gone = false;
  const exchange: Exchange = async (c) => {
    if (gone) throw new Error('card gone');
    n++;
    if (tear && !tear.answerLost && n > tear.after) {
      gone = true;
      throw new Error('card pulled away');
    }
    const a = card.respond(c, state);
    if (tear?.answerLost && n >= tear.after) {
      gone = true;
      throw new Error('card pulled away, answer lost');
    }
    return a;
  };
  try {
    const read = await readTap(exchange, card.atr, nowMs);
    if (!read.ok || (read.credential.kind !== 'card' && read.credential.kind !== 'phone-nfc')) return false;
    return (await gate.tap(exchange, read.credential.cardNumber, nowMs)).grant;
  } catch (e) {
    // Only the card pulled away ends a tap so; anything else is a fault in the simulation itself.
    if (gone) return false;
    throw e;
  }
}

export function fareSummaryText(s: FareSimSummary): string {
  const issuers = Object.entries(s.issuers)
    .map(([k, v]) => `${k} truth ${(v.truthFen / 100).toFixed(2)} settled ${(v.settledFen / 100).toFixed(2)} yuan${v.truthFen === v.settledFen ? '' : '  MISMATCH'}`)
    .join('\n  ');
  return [
    `Network of ${s.stations} stations, ${s.trips} trips (${s.cardTrips} card, ${s.qrTrips} QR), ${s.taps} card taps of which ${s.tornTaps} torn`,
    `double charges ${s.doubleCharges}, free exits ${s.freeExits}, wrong card fares ${s.wrongFares}, riders whose settled trips differ from the simulator's ${s.wrongRiders}`,
    `settlement per issuer:\n  ${issuers}`,
  ].join('\n');
}

export function fareSimFailed(s: FareSimSummary): boolean {
  return s.doubleCharges > 0 || s.freeExits > 0 || s.wrongFares > 0 || s.wrongRiders > 0 || Object.values(s.issuers).some((i) => i.truthFen !== i.settledFen);
}
