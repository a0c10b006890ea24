// Settlement: the journal's records priced and totalled per issuer, written as one CSV file per issuer and
// month. QR rides are post-paid: the gates journal the entry and the exit, and the back office pairs them
// per account, prices each trip with the same fare table and rules the gates hold (protocol/fares.ts), and
// applies the monthly discount per account. Card rides were paid at the exit gate: their debits (card, ATC)
// are counted once each, whichever lane journaled them, with the TAC for clearing. No I/O: the store reads
// the records, the caller writes the files.

import { beijingMonth } from '../../protocol/tunion-purse.js';
import { priceTrip, stationIndex, type FareTable } from '../../protocol/fares.js';

export interface SettledTrip {
  issuer: string;
  account: string;
  entryStation?: number;
  exitStation?: number;
  entryAtMs?: number;
  exitAtMs?: number;
  rule: string;
  baseFen: number;
  percent: number;
  chargeFen: number;
  /** Card debits: the card's counter and TAC. */
  atc?: number;
  tac?: string;
}

export interface Settlement {
  /** By issuer: its trips in time order and its total. */
  issuers: Map<string, { trips: SettledTrip[]; totalFen: number }>;
  /** Exits with no entry where the rules send the rider to the ticket office, and stations the table lacks: for review. */
  unsettled: { key: string; laneId: string; atMs: number; why: string }[];
}

interface Rec {
  laneId: string;
  seq: number;
  entry: unknown;
}

type Decision = { type: 'decision'; laneId: string; atMs: number; direction: 'entry' | 'exit'; kind: string; key?: string; grant: boolean };
type Fare = { type: 'fare'; laneId: string; atMs: number; direction: 'entry' | 'exit'; key: string; outcome: string; chargeFen: number; station: number; detail?: { atc?: number; tac?: string; entryStation?: number } };

/** The issuer that settles a card debit: the T-Union clearing house. */
export const CARD_ISSUER = 'tunion';

/**
 * Price and total the records. `laneStation` names the station of each lane (the back office's lane
 * registry). QR trips pair an account's granted entry with its next granted exit, in time order.
 */
export function settle(records: Iterable<Rec>, table: FareTable, laneStation: (laneId: string) => number | undefined): Settlement {
  const index = stationIndex(table);
  const issuers: Settlement['issuers'] = new Map();
  const unsettled: Settlement['unsettled'] = [];
  const add = (t: SettledTrip) => {
    let i = issuers.get(t.issuer);
    if (!i) issuers.set(t.issuer, (i = { trips: [], totalFen: 0 }));
    i.trips.push(t);
    i.totalFen += t.chargeFen;
  };
  const qr = new Map<string, Decision[]>();
  const debits = new Map<string, Fare>();
  for (const r of records) {
    const e = r.entry as Decision | Fare;
    if (typeof e !== 'object' || e === null) continue;
    if (e.type === 'decision' && e.kind === 'qr' && e.grant && typeof e.key === 'string') {
      const list = qr.get(e.key) ?? [];
      list.push(e);
      qr.set(e.key, list);
    } else if (e.type === 'fare' && (e.outcome === 'debited' || e.outcome === 'recovered') && typeof e.detail?.atc === 'number') {
      const k = `${e.key}:${e.detail.atc}`;
      if (!debits.has(k)) debits.set(k, e);
    }
  }
  for (const d of [...debits.values()].sort((a, b) => a.atMs - b.atMs)) {
    add({ issuer: CARD_ISSUER, account: d.key.slice(5), entryStation: d.detail?.entryStation, exitStation: d.station, exitAtMs: d.atMs, rule: d.direction === 'entry' ? 'card-entry' : 'card-exit', baseFen: d.chargeFen, percent: 100, chargeFen: d.chargeFen, atc: d.detail?.atc, tac: d.detail?.tac });
  }
  for (const [key, list] of qr) {
    const [, issuer, account] = key.split(':');
    list.sort((a, b) => a.atMs - b.atMs);
    const spent = new Map<number, number>();
    let open: Decision | undefined;
    const charge = (entry: Decision | undefined, exit: Decision | undefined, atMs: number) => {
      const month = beijingMonth(atMs);
      const before = spent.get(month) ?? 0;
      let p;
      if (exit) {
        const xs = laneStation(exit.laneId);
        const es = entry ? laneStation(entry.laneId) : undefined;
        if (xs === undefined || (entry && es === undefined)) return unsettled.push({ key, laneId: exit.laneId, atMs, why: 'lane without a station' });
        p = priceTrip(table, index, { entry: entry && es !== undefined ? { station: es, atMs: entry.atMs } : undefined, exit: { station: xs, atMs: exit.atMs }, spentFen: before });
        if (!p.ok) return unsettled.push({ key, laneId: exit.laneId, atMs, why: p.detail });
        add({ issuer, account, entryStation: es, exitStation: xs, entryAtMs: entry?.atMs, exitAtMs: exit.atMs, rule: p.trip.rule, baseFen: p.trip.baseFen + p.trip.overTimeFen, percent: p.trip.percent, chargeFen: p.trip.chargeFen });
        spent.set(month, before + p.trip.chargeFen);
      } else if (entry) {
        // An entry never closed by an exit (the next record is another entry): its rule's fare.
        const fen = table.rules.entryWithoutExitFareFen;
        add({ issuer, account, entryStation: laneStation(entry.laneId), entryAtMs: entry.atMs, rule: 'entry-without-exit', baseFen: fen, percent: 100, chargeFen: fen });
        spent.set(month, before + fen);
      }
    };
    for (const d of list) {
      if (d.direction === 'entry') {
        if (open) charge(open, undefined, d.atMs);
        open = d;
      } else {
        charge(open, d, d.atMs);
        open = undefined;
      }
    }
    // A last entry with no exit yet is still a ride in progress: settled when its exit (or next entry) comes.
  }
  for (const i of issuers.values()) i.trips.sort((a, b) => (a.exitAtMs ?? a.entryAtMs ?? 0) - (b.exitAtMs ?? b.entryAtMs ?? 0));
  return { issuers, unsettled };
}

/** Settle everything a back office holds: its fare table in force, every ingested record (page by page). */
export function settleBackoffice(
  store: { currentFareTable(): FareTable | undefined; transactionsPage(q: { after?: { laneId: string; seq: number }; limit: number }): { records: Rec[]; next: string | null } },
  laneStation: (laneId: string) => number | undefined,
): Settlement {
  const table = store.currentFareTable();
  if (!table) throw new Error('no fare table published');
  const records: Rec[] = [];
  let after: { laneId: string; seq: number } | undefined;
  for (let page = 0; page < 1_000_000; page++) {
    const p = store.transactionsPage({ after, limit: 1000 });
    records.push(...p.records);
    if (!p.next) break;
    const last = p.records[p.records.length - 1];
    after = { laneId: last.laneId, seq: last.seq };
  }
  return settle(records, table, laneStation);
}

const CSV_HEADER = 'issuer,account,entry_station,exit_station,entry_at,exit_at,rule,base_fen,percent,charge_fen,atc,tac';

/** One CSV file per issuer: `settlement-<issuer>.csv`, a header, one line per trip, then `total,<fen>`. */
export function settlementFiles(s: Settlement): Map<string, string> {
  const files = new Map<string, string>();
  const iso = (ms?: number) => (ms === undefined ? '' : new Date(ms).toISOString());
  for (const [issuer, { trips, totalFen }] of [...s.issuers].sort(([a], [b]) => a.localeCompare(b))) {
    const lines = trips.map((t) =>
      [t.issuer, t.account, t.entryStation ?? '', t.exitStation ?? '', iso(t.entryAtMs), iso(t.exitAtMs), t.rule, t.baseFen, t.percent, t.chargeFen, t.atc ?? '', t.tac ?? ''].map((v) => csvField(String(v))).join(','),
    );
    files.set(`settlement-${issuer}.csv`, [CSV_HEADER, ...lines, `total,${totalFen}`].join('\n') + '\n');
  }
  return files;
}

function csvField(v: string): string {
  // Leading = + - @ would be a formula in a spreadsheet: quote them, as fields with commas or quotes.
  return /[",\n=+\-@]/.test(v[0] ?? '') || /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}
