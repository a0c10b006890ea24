// The fare rules at every edge: each band's last metre and the next, the +1 yuan per started 20 km past
// 32 km, the monthly discount tiers at their exact fen, over-time at its exact millisecond, same-station
// and trips missing an end; the signed fare table: round trip, tamper, unknown key, bad payloads.

import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  BEIJING_2014_RULES as R,
  discounted,
  discountPercent,
  distanceFareFen,
  faresFromDistances,
  priceTrip,
  signFareTable,
  stationIndex,
  verifyFareTable,
  type FareTable,
} from '../../protocol/fares.js';
import { trustedListKey } from '../../protocol/lists/index.js';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const TRUSTED = [trustedListKey(publicKey.export({ format: 'pem', type: 'spki' }).toString())];

describe('distance bands (Beijing, 28 Dec 2014)', () => {
  it.each([
    [0, 300],
    [1, 300],
    [6000, 300],
    [6001, 400],
    [12000, 400],
    [12001, 500],
    [22000, 500],
    [22001, 600],
    [32000, 600],
    [32001, 700],
    [52000, 700],
    [52001, 800],
    [72000, 800],
    [72001, 900],
    [92000, 900],
    [92001, 1000],
  ])('%i m → %i fen', (m, fen) => {
    expect(distanceFareFen(R, m)).toBe(fen);
  });
  it('refuses a negative or non-finite distance', () => {
    expect(() => distanceFareFen(R, -1)).toThrow(RangeError);
    expect(() => distanceFareFen(R, Number.NaN)).toThrow(RangeError);
  });
});

describe('monthly discount', () => {
  it.each([
    [0, 100],
    [9999, 100],
    [10000, 80],
    [14999, 80],
    [15000, 50],
    [39999, 50],
    [40000, 100],
    [1_000_000, 100],
  ])('spent %i fen → pays %i %%', (spent, pct) => {
    expect(discountPercent(R, spent)).toBe(pct);
  });
  it('rounds to whole fen, half up', () => {
    expect(discounted(R, 300, 10000)).toBe(240);
    expect(discounted(R, 500, 15000)).toBe(250);
    expect(discounted({ ...R, monthlyDiscount: [{ fromFen: 0, percent: 33 }] }, 150, 0)).toBe(50); // 49.5 → 50
    expect(discounted({ ...R, monthlyDiscount: [{ fromFen: 0, percent: 33 }] }, 148, 0)).toBe(49); // 48.84 → 49
  });
});

function table(): FareTable {
  // Four stations on a line at 0, 6, 12.5 and 40 km.
  const at = [0, 6000, 12500, 40000];
  const n = at.length;
  const d = Array.from({ length: n * n }, (_, k) => Math.abs(at[Math.floor(k / n)] - at[k % n]));
  return {
    seq: 7,
    issuedAtMs: Date.UTC(2024, 0, 1),
    rules: R,
    stations: at.map((_, i) => ({ id: 101 + i, name: `S${i}`, line: 'L1' })),
    fares: faresFromDistances(R, d, n),
  };
}

describe('priceTrip', () => {
  const t = table();
  const ix = stationIndex(t);
  const T0 = Date.UTC(2024, 5, 1, 2);
  it('prices by the table, with the discount tier of the month so far', () => {
    expect(priceTrip(t, ix, { entry: { station: 101, atMs: T0 }, exit: { station: 102, atMs: T0 + 60_000 }, spentFen: 0 })).toEqual({
      ok: true,
      trip: { baseFen: 300, overTimeFen: 0, percent: 100, chargeFen: 300, rule: 'distance' },
    });
    expect(priceTrip(t, ix, { entry: { station: 101, atMs: T0 }, exit: { station: 103, atMs: T0 + 60_000 }, spentFen: 10000 })).toMatchObject({ ok: true, trip: { baseFen: 500, chargeFen: 400 } });
    expect(priceTrip(t, ix, { entry: { station: 104, atMs: T0 }, exit: { station: 101, atMs: T0 + 60_000 }, spentFen: 15000 })).toMatchObject({ ok: true, trip: { baseFen: 700, chargeFen: 350 } });
  });
  it('over-time: 240 minutes in the paid area is fine, one millisecond more costs 3 yuan more', () => {
    const at = (ms: number) => priceTrip(t, ix, { entry: { station: 101, atMs: T0 }, exit: { station: 102, atMs: T0 + ms }, spentFen: 0 });
    expect(at(240 * 60_000)).toMatchObject({ ok: true, trip: { chargeFen: 300, overTimeFen: 0 } });
    expect(at(240 * 60_000 + 1)).toMatchObject({ ok: true, trip: { chargeFen: 600, overTimeFen: 300 } });
  });
  it('same station, exit without entry, unknown stations', () => {
    expect(priceTrip(t, ix, { entry: { station: 102, atMs: T0 }, exit: { station: 102, atMs: T0 + 60_000 }, spentFen: 0 })).toMatchObject({ ok: true, trip: { chargeFen: 300, rule: 'same-station' } });
    expect(priceTrip(t, ix, { exit: { station: 102, atMs: T0 }, spentFen: 0 })).toMatchObject({ ok: false, error: 'ticket-office' });
    const charging = { ...t, rules: { ...R, exitWithoutEntryFareFen: 900 } };
    expect(priceTrip(charging, ix, { exit: { station: 102, atMs: T0 }, spentFen: 0 })).toMatchObject({ ok: true, trip: { chargeFen: 900, rule: 'exit-without-entry' } });
    expect(priceTrip(t, ix, { entry: { station: 999, atMs: T0 }, exit: { station: 102, atMs: T0 }, spentFen: 0 })).toMatchObject({ ok: false, error: 'unknown-station' });
    expect(priceTrip(t, ix, { entry: { station: 101, atMs: T0 }, exit: { station: 998, atMs: T0 }, spentFen: 0 })).toMatchObject({ ok: false, error: 'unknown-station' });
  });
});

describe('signed fare table', () => {
  it('round-trips and verifies', () => {
    const t = table();
    const r = verifyFareTable(signFareTable(t, privateKey), TRUSTED);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.table.seq).toBe(7);
    expect(r.table.stations).toEqual(t.stations);
    expect([...r.table.fares]).toEqual([...t.fares]);
    expect(r.table.rules).toEqual(R);
  });
  it('refuses a tampered payload, an unknown key, a bad envelope and bad payloads, with reasons', () => {
    const doc = JSON.parse(Buffer.from(signFareTable(table(), privateKey)).toString());
    const payload = JSON.parse(Buffer.from(doc.payload, 'base64').toString());
    const resign = (p: unknown) => {
      const other = { ...doc, payload: Buffer.from(JSON.stringify(p)).toString('base64') };
      return new Uint8Array(Buffer.from(JSON.stringify(other)));
    };
    expect(verifyFareTable(resign({ ...payload, seq: 8 }), TRUSTED)).toMatchObject({ ok: false, error: 'bad-signature' });
    const stranger = generateKeyPairSync('ed25519');
    expect(verifyFareTable(signFareTable(table(), stranger.privateKey), TRUSTED)).toMatchObject({ ok: false, error: 'unknown-key' });
    expect(verifyFareTable(new Uint8Array(Buffer.from('[1]')), TRUSTED)).toMatchObject({ ok: false, error: 'envelope' });
    expect(verifyFareTable(new Uint8Array(Buffer.from('{')), TRUSTED)).toMatchObject({ ok: false, error: 'json' });
    expect(verifyFareTable(new Uint8Array(5 << 20), TRUSTED)).toMatchObject({ ok: false, error: 'envelope' });
    const bad = (mutate: (t: FareTable) => void, detail: RegExp) => {
      const t = table();
      mutate(t);
      const r = verifyFareTable(signFareTable(t, privateKey), TRUSTED);
      expect(r).toMatchObject({ ok: false, error: 'payload' });
      expect(!r.ok && r.detail).toMatch(detail);
    };
    bad((t) => (t.stations[1].id = t.stations[0].id), /repeated/);
    bad((t) => (t.stations[0].id = 0), /1\.\.65535/);
    bad((t) => (t.fares = t.fares.subarray(1)), /fares/);
    bad((t) => (t.rules = { ...R, bands: [R.bands[1], R.bands[0]] }), /must increase/);
    bad((t) => (t.rules = { ...R, monthlyDiscount: [{ fromFen: 1, percent: 101 }] }), /percent/);
    bad((t) => (t.rules = { ...R, beyondStepM: 0 }), /beyondStepM/);
  });
});
