// Distance fares: the rules (Beijing's 2014 bands, the monthly spending discount, over-time, same-station
// exit, trips missing an end) and the fare table the back office signs (a station-to-station matrix in fen
// with the rules beside it), signed and versioned like the enforcement schedule. Pure: node:crypto only.
// Fields and cited facts: protocol/README.md ("Fares").

import type { KeyObject } from 'node:crypto';
import { signDocument, verifySignedDocument, type SignedDocumentError } from './signed-document.js';
import type { TrustedListKey } from './lists/signature.js';

export const FARE_TABLE_FORMAT = 'bj-fare-table';
export const FARE_TABLE_VERSION = 1;
/** 1,000 stations: a 2 MB matrix, 2.7 MB in base64. */
export const MAX_FARE_TABLE_BYTES = 4 << 20;
export const MAX_STATIONS = 1000;

/** One distance band: trips up to `upToM` metres (inclusive) cost `fareFen`. */
export interface FareBand {
  upToM: number;
  fareFen: number;
}

/** A monthly spending tier: once the month's spending so far reaches `fromFen`, trips cost `percent` % of their fare. */
export interface DiscountTier {
  fromFen: number;
  percent: number;
}

export interface FareRules {
  /** Ascending by upToM. */
  bands: FareBand[];
  /** Past the last band: `stepFen` more for every started `stepM`. */
  beyondStepM: number;
  beyondStepFen: number;
  /** Ascending by fromFen; below the first tier: full fare. */
  monthlyDiscount: DiscountTier[];
  /** Longer than this in the paid area (entry to exit) costs `overTimeSurchargeFen` more. */
  overTimeMinutes: number;
  overTimeSurchargeFen: number;
  /** Entry and exit at the same station. */
  sameStationFareFen: number;
  /** Exit with no entry on the card (or the last entry already closed): charged this, or sent to the ticket office when `null`. */
  exitWithoutEntryFareFen: number | null;
  /** Entry while the card still shows an open entry (the last trip never exited): charged at this entry. */
  entryWithoutExitFareFen: number;
}

/** Beijing since 28 Dec 2014 (airport express excepted); the rider rules that are ours are marked in the README. */
export const BEIJING_2014_RULES: FareRules = {
  bands: [
    { upToM: 6000, fareFen: 300 },
    { upToM: 12000, fareFen: 400 },
    { upToM: 22000, fareFen: 500 },
    { upToM: 32000, fareFen: 600 },
  ],
  beyondStepM: 20000,
  beyondStepFen: 100,
  monthlyDiscount: [
    { fromFen: 10000, percent: 80 },
    { fromFen: 15000, percent: 50 },
    { fromFen: 40000, percent: 100 },
  ],
  overTimeMinutes: 240,
  overTimeSurchargeFen: 300,
  sameStationFareFen: 300,
  exitWithoutEntryFareFen: null,
  entryWithoutExitFareFen: 300,
};

/** The fare of a trip of `distanceM` metres by the bands (no discount, no time rules). */
export function distanceFareFen(rules: FareRules, distanceM: number): number {
  if (!Number.isFinite(distanceM) || distanceM < 0) throw new RangeError(`distance must be >= 0 m: ${distanceM}`);
  for (const b of rules.bands) if (distanceM <= b.upToM) return b.fareFen;
  const last = rules.bands[rules.bands.length - 1];
  return last.fareFen + Math.ceil((distanceM - last.upToM) / rules.beyondStepM) * rules.beyondStepFen;
}

/** The percent of the fare paid when `spentFen` was already spent this month. */
export function discountPercent(rules: FareRules, spentFen: number): number {
  let p = 100;
  for (const t of rules.monthlyDiscount) if (spentFen >= t.fromFen) p = t.percent;
  return p;
}

/** Apply the monthly discount: whole fen, rounded half up. */
export function discounted(rules: FareRules, fareFen: number, spentFen: number): number {
  return Math.floor((fareFen * discountPercent(rules, spentFen) + 50) / 100);
}

/** A station, numbered 1..65535 (0 = none) as the card's trip record and the journal carry it. */
export interface FareStation {
  id: number;
  name: string;
  line: string;
}

export interface FareTable {
  /** Monotonic; a gate never takes a lower one. */
  seq: number;
  issuedAtMs: number;
  rules: FareRules;
  stations: FareStation[];
  /** n×n row-major fares in fen (row = entry station index, column = exit station index), n = stations.length. */
  fares: Uint16Array;
}

export type FareReason = 'distance' | 'same-station' | 'exit-without-entry' | 'entry-without-exit';

/** One priced trip: the fare before the discount, what is charged, and why. */
export interface PricedTrip {
  baseFen: number;
  overTimeFen: number;
  percent: number;
  chargeFen: number;
  rule: FareReason;
}

export type PriceResult = { ok: true; trip: PricedTrip } | { ok: false; error: 'unknown-station' | 'ticket-office'; detail: string };

/** Index of each station id in the table (for lookups). */
export function stationIndex(table: FareTable): Map<number, number> {
  return new Map(table.stations.map((s, i) => [s.id, i]));
}

/**
 * Price a trip from its entry (absent: no entry on the card) to its exit. `spentFen` is the month's spending
 * so far on this card or account (the discount tier). Over-time adds to the fare before the discount.
 */
export function priceTrip(
  table: FareTable,
  index: Map<number, number>,
  trip: { entry?: { station: number; atMs: number }; exit: { station: number; atMs: number }; spentFen: number },
): PriceResult {
  const r = table.rules;
  const xi = index.get(trip.exit.station);
  if (xi === undefined) return { ok: false, error: 'unknown-station', detail: `exit station ${trip.exit.station} not in fare table ${table.seq}` };
  if (!trip.entry) {
    if (r.exitWithoutEntryFareFen === null) return { ok: false, error: 'ticket-office', detail: 'no entry on the card: fare adjustment at the ticket office' };
    return priced(r, r.exitWithoutEntryFareFen, 0, trip.spentFen, 'exit-without-entry');
  }
  const ei = index.get(trip.entry.station);
  if (ei === undefined) return { ok: false, error: 'unknown-station', detail: `entry station ${trip.entry.station} not in fare table ${table.seq}` };
  const inside = trip.exit.atMs - trip.entry.atMs;
  const overTimeFen = inside > r.overTimeMinutes * 60_000 ? r.overTimeSurchargeFen : 0;
  if (ei === xi) return priced(r, r.sameStationFareFen, overTimeFen, trip.spentFen, 'same-station');
  return priced(r, table.fares[ei * table.stations.length + xi], overTimeFen, trip.spentFen, 'distance');
}

function priced(r: FareRules, baseFen: number, overTimeFen: number, spentFen: number, rule: FareReason): PriceResult {
  const percent = discountPercent(r, spentFen);
  return { ok: true, trip: { baseFen, overTimeFen, percent, chargeFen: discounted(r, baseFen + overTimeFen, spentFen), rule } };
}

/** The fare matrix from a symmetric distance matrix (metres) by the rules: what the back office publishes. */
export function faresFromDistances(rules: FareRules, distancesM: ArrayLike<number>, n: number): Uint16Array {
  const out = new Uint16Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[i * n + j] = i === j ? rules.sameStationFareFen : distanceFareFen(rules, distancesM[i * n + j]);
  return out;
}

// ---- The signed document ----

/** Sign a fare table with the back office's list signing key (Ed25519). */
export function signFareTable(t: FareTable, privateKey: KeyObject): Uint8Array {
  const fares = Buffer.alloc(t.fares.length * 2);
  t.fares.forEach((f, i) => fares.writeUInt16BE(f, i * 2));
  const payload = { v: FARE_TABLE_VERSION, seq: t.seq, issuedAtMs: t.issuedAtMs, rules: t.rules, stations: t.stations, fares: fares.toString('base64') };
  return signDocument(FARE_TABLE_FORMAT, FARE_TABLE_VERSION, payload, privateKey);
}

export type FareTableError = SignedDocumentError;
export type FareTableResult = { ok: true; table: FareTable } | { ok: false; error: FareTableError; detail: string };

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
const b64 = (s: unknown): Buffer | undefined => (typeof s === 'string' && s.length % 4 === 0 && B64.test(s) ? Buffer.from(s, 'base64') : undefined);
const isInt = (n: unknown, max = Number.MAX_SAFE_INTEGER): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= max;

/** Parse the document and verify its signature against the list keys the gate trusts (by key id). */
export function verifyFareTable(doc: Uint8Array, keys: readonly TrustedListKey[]): FareTableResult {
  const signed = verifySignedDocument(doc, MAX_FARE_TABLE_BYTES, FARE_TABLE_FORMAT, FARE_TABLE_VERSION, keys);
  if (!signed.ok) return signed;
  const t = parseFarePayload(signed.payload);
  return typeof t === 'string' ? { ok: false, error: 'payload', detail: t } : { ok: true, table: t };
}

function parseFarePayload(p: Record<string, unknown>): FareTable | string {
  if (!isInt(p.seq)) return 'seq must be a non-negative integer';
  if (!isInt(p.issuedAtMs)) return 'issuedAtMs must be a non-negative integer';
  const rules = parseRules(p.rules);
  if (typeof rules === 'string') return `rules: ${rules}`;
  if (!Array.isArray(p.stations) || p.stations.length === 0 || p.stations.length > MAX_STATIONS) return `stations: 1..${MAX_STATIONS} entries`;
  const stations: FareStation[] = [];
  const ids = new Set<number>();
  for (const [i, s] of (p.stations as unknown[]).entries()) {
    const o = s as Record<string, unknown>;
    if (typeof o !== 'object' || o === null || !isInt(o.id, 0xffff) || o.id === 0) return `stations[${i}].id: integer 1..65535`;
    if (ids.has(o.id)) return `stations[${i}].id ${o.id} repeated`;
    if (typeof o.name !== 'string' || o.name.length > 64 || typeof o.line !== 'string' || o.line.length > 32) return `stations[${i}]: name (≤ 64) and line (≤ 32) strings`;
    ids.add(o.id);
    stations.push({ id: o.id, name: o.name, line: o.line });
  }
  const f = b64(p.fares);
  const n = stations.length;
  if (!f || f.length !== n * n * 2) return `fares: base64 of ${n}×${n} big-endian 16-bit fen`;
  const fares = new Uint16Array(n * n);
  for (let i = 0; i < fares.length; i++) fares[i] = f.readUInt16BE(i * 2);
  return { seq: p.seq, issuedAtMs: p.issuedAtMs, rules, stations, fares };
}

const FEN_MAX = 100_000; // 1,000 yuan: no single rule charges more

function parseRules(v: unknown): FareRules | string {
  const r = v as Record<string, unknown>;
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return 'not an object';
  if (!Array.isArray(r.bands) || r.bands.length === 0 || r.bands.length > 32) return 'bands: 1..32 entries';
  const bands: FareBand[] = [];
  for (const [i, b] of (r.bands as Record<string, unknown>[]).entries()) {
    if (typeof b !== 'object' || b === null || !isInt(b.upToM, 10_000_000) || !isInt(b.fareFen, FEN_MAX)) return `bands[${i}]: upToM, fareFen integers`;
    if (i > 0 && b.upToM <= bands[i - 1].upToM) return `bands[${i}]: upToM must increase`;
    bands.push({ upToM: b.upToM, fareFen: b.fareFen });
  }
  if (!isInt(r.beyondStepM, 10_000_000) || r.beyondStepM === 0 || !isInt(r.beyondStepFen, FEN_MAX)) return 'beyondStepM (> 0), beyondStepFen integers';
  if (!Array.isArray(r.monthlyDiscount) || r.monthlyDiscount.length > 16) return 'monthlyDiscount: up to 16 tiers';
  const monthlyDiscount: DiscountTier[] = [];
  for (const [i, t] of (r.monthlyDiscount as Record<string, unknown>[]).entries()) {
    if (typeof t !== 'object' || t === null || !isInt(t.fromFen, 100_000_000) || !isInt(t.percent, 100)) return `monthlyDiscount[${i}]: fromFen integer, percent 0..100`;
    if (i > 0 && t.fromFen <= monthlyDiscount[i - 1].fromFen) return `monthlyDiscount[${i}]: fromFen must increase`;
    monthlyDiscount.push({ fromFen: t.fromFen, percent: t.percent });
  }
  for (const k of ['overTimeMinutes', 'overTimeSurchargeFen', 'sameStationFareFen', 'entryWithoutExitFareFen'] as const) {
    if (!isInt(r[k], FEN_MAX)) return `${k}: integer 0..${FEN_MAX}`;
  }
  if (r.exitWithoutEntryFareFen !== null && !isInt(r.exitWithoutEntryFareFen, FEN_MAX)) return `exitWithoutEntryFareFen: null or integer 0..${FEN_MAX}`;
  return {
    bands,
    beyondStepM: r.beyondStepM,
    beyondStepFen: r.beyondStepFen,
    monthlyDiscount,
    overTimeMinutes: r.overTimeMinutes as number,
    overTimeSurchargeFen: r.overTimeSurchargeFen as number,
    sameStationFareFen: r.sameStationFareFen as number,
    exitWithoutEntryFareFen: r.exitWithoutEntryFareFen as number | null,
    entryWithoutExitFareFen: r.entryWithoutExitFareFen as number,
  };
}
