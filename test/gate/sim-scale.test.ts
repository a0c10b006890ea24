// `gate sim` at scale: what a run holds does not grow with the riders it has simulated (riders made as
// they arrive, answers folded into counters, journals holding their newest records, the judge's passback
// record pruned by its window), a seed still replays the riders it always did, and a line of stations runs
// on one clock and one back office with every station judged on its own. Structure only: the figures
// (wall time per rider, peak RSS) are in `npm run bench -- --only sim`.

import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { register } from '../../firmware/cli/sim.js';
import { simulateLine } from '../../firmware/composition/simulated-line.js';
import { simulateStation } from '../../firmware/composition/simulated-station.js';
import { MemoryJournal, type JournalEntry } from '../../firmware/journal/journal.js';
import { credentialKey } from '../../protocol/credential.js';
import { RiderArrivals } from '../../simulator/arrivals.js';
import { Random, makeRiders, type Rider } from '../../simulator/population.js';
import { RegisteredCredentials } from '../../simulator/registered.js';
import { STATION_RULE } from '../../simulator/station.js';
import { FAILURE_SAMPLE, LatencyHistogram } from '../../simulator/summary.js';

/**
 * What a run still holds, found by walking its objects: own properties, array items, Map and Set entries
 * (not what closures capture). Counts riders, judged answers and journal records.
 */
function held(root: unknown): { riders: number; judged: number; records: number; objects: number } {
  const seen = new Set<object>();
  const stack: unknown[] = [root];
  const n = { riders: 0, judged: 0, records: 0, objects: 0 };
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object' || seen.has(v)) continue;
    seen.add(v);
    if (seen.size > 2_000_000) throw new Error('the walk met more than 2 M objects');
    if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) continue;
    if ('registrationId' in v && 'shows' in v) n.riders++;
    if ('verdict' in v && 'expected' in v) n.judged++;
    if ('seq' in v && 'entry' in v) n.records++;
    if (v instanceof Map) for (const [k, x] of v) stack.push(k, x);
    else if (v instanceof Set) for (const x of v) stack.push(x);
    for (const k of Reflect.ownKeys(v)) {
      const d = Object.getOwnPropertyDescriptor(v, k);
      if (d && 'value' in d) stack.push(d.value);
    }
  }
  n.objects = seen.size;
  return n;
}

describe('a long run holds what is in the station, not what has been', () => {
  it('riders, answers and journal records held stay under their bounds at 500 and at 2,000 riders', { timeout: 120_000 }, async () => {
    const lanes = 4;
    const keep = 50;
    for (const passengers of [500, 2000]) {
      const { summary, sim } = await simulateStation({ lanes, passengers, seed: 11, journalKeep: keep });
      expect(summary).toMatchObject({ passengers, falseAccepts: 0, falseRejects: 0, unanswered: 0, wrongReasons: 0 });
      const h = held(sim);
      // The last 24 riders of each of the 8 stories are kept for scenarios that change riders still to come.
      expect(h.riders, `${passengers} riders`).toBeLessThanOrEqual(8 * 24);
      expect(h.judged, `${passengers} riders`).toBe(0);
      expect(h.records, `${passengers} riders`).toBeLessThanOrEqual(lanes * 2 * keep);
      // The journals did write every record: they count what they no longer hold.
      expect(sim.journals.reduce((a, j) => a + j.appended, 0)).toBeGreaterThan(summary.presentations);
      for (const j of sim.journals) expect(j.records.at(-1)?.seq).toBe(j.appended);
    }
  });

  it("the judge's passback record keeps only entries within the rule's window", { timeout: 60_000 }, async () => {
    const window = 60;
    const { summary, sim } = await simulateStation({
      lanes: 4,
      passengers: 2000,
      seed: 12,
      lanePolicy: { antiPassbackSeconds: window },
      judgeRule: { ...STATION_RULE, antiPassbackSeconds: window },
    });
    expect(summary).toMatchObject({ falseAccepts: 0, falseRejects: 0, unanswered: 0, wrongReasons: 0 });
    expect(summary.admitted).toBeGreaterThan(1000);
    // 4 lanes at 30 riders a minute: at most about three minutes of entries (the window and a pruning interval).
    const entered = (sim.station as unknown as { entered: Map<string, number> }).entered;
    expect(entered.size).toBeLessThan(400);
  });

  it('a memory journal with keep holds its newest records and counts all', async () => {
    const j = new MemoryJournal({ keep: 10 });
    const entry = (i: number): JournalEntry => ({ type: 'passage', laneId: 'L01', atMs: i, direction: 'entry', outcome: 'passed' });
    for (let i = 1; i <= 1000; i++) expect(await j.append(entry(i))).toBe(i);
    expect(j.appended).toBe(1000);
    expect(j.records.length).toBeGreaterThanOrEqual(10);
    expect(j.records.length).toBeLessThan(20);
    expect(j.records.map((r) => r.seq)).toEqual(Array.from({ length: j.records.length }, (_, i) => 1001 - j.records.length + i));
    const all = new MemoryJournal();
    for (let i = 1; i <= 100; i++) await all.append(entry(i));
    expect(all.records).toHaveLength(100);
  });

  it('wrong answers: every one counted, the first 20 kept word for word', { timeout: 60_000 }, async () => {
    // The lanes admit yellow and red at entry; the judge holds the station's rule.
    const { summary } = await simulateStation({
      lanes: 2,
      passengers: 1200,
      seed: 3,
      lanePolicy: { entry: { green: true, yellow: true, red: true, unregistered: false, blocked: false } },
      judgeRule: STATION_RULE,
    });
    expect(summary.falseAccepts).toBeGreaterThan(FAILURE_SAMPLE);
    expect(summary.failureSample).toHaveLength(FAILURE_SAMPLE);
    for (const line of summary.failureSample ?? []) expect(line).toMatch(/<<< FALSE-ACCEPT \(expected refuse status-(yellow|red)\)/);
  });
});

describe('riders made as they arrive', () => {
  it('are the riders makeRiders makes for the seed, and the gap and tie-break streams start where they did', () => {
    const a = new RiderArrivals({ seed: 3, count: 500 });
    const made: Rider[] = [];
    for (let r = a.next(); r; r = a.next()) made.push(r);
    expect(a.next()).toBeUndefined();
    const rng = new Random(3);
    expect(made).toEqual(makeRiders(500, rng));
    // The station drew one gap per rider after the riders were made, then broke ties on what followed.
    for (let i = 0; i < 500; i++) expect(a.gaps.next()).toBe(rng.next());
    expect(a.tieBreaks.next()).toBe(rng.next());
    // The riders kept from the end of the run are the very objects handed out when they come.
    const lastGreen = a.last('green')[0];
    expect(made.filter((r) => r.story === 'green').at(-1)).toBe(lastGreen);
  });

  it("the back office's book answers each rider's registration, the phone of a card included, and nothing else", () => {
    const a = new RiderArrivals({ seed: 5, count: 2000, firstSerial: 1000 });
    const riders: Rider[] = [];
    for (let r = a.next(); r; r = a.next()) riders.push(r);
    const book = new RegisteredCredentials();
    book.add(a.listing);
    let phonesOfCards = 0;
    for (const r of riders) {
      expect(book.lookup(credentialKey(r.credential)), `rider ${r.id}`).toBe(r.registration);
      for (const shown of r.shows) expect(book.lookup(credentialKey(shown))).toBe(r.registration);
      if (r.shows.length > 1) phonesOfCards++;
    }
    expect(phonesOfCards).toBeGreaterThan(10);
    expect(riders[0].id).toBe(1001);
    // A rider's serial with other digits is nobody's credential.
    const card = riders.find((r) => r.credential.kind === 'card')!;
    const number = (card.credential as { cardNumber: string }).cardNumber;
    const other = `card:${number.slice(0, 8)}${number[8] === '9' ? '0' : '9'}${number.slice(9)}`;
    expect(book.lookup(other)).toBe('unregistered');
    // Registered entries, in serial order, and a change on file.
    const listed = [...book.entries()];
    expect(listed).toHaveLength(riders.filter((r) => r.registration !== 'unregistered').length);
    const newcomer = riders.find((r) => r.registration === 'unregistered')!;
    book.set(credentialKey(newcomer.credential), 'green');
    expect(book.lookup(credentialKey(newcomer.credential))).toBe('green');
    book.set('card:3104100055500000001', 'red');
    expect(book.lookup('card:3104100055500000001')).toBe('red');
    expect([...book.entries()]).toHaveLength(listed.length + 2);
    // Two runs' riders may not share serials (every registration is one rider's).
    expect(() => book.add(new RiderArrivals({ seed: 6, count: 10, firstSerial: 2990 }).listing)).toThrow(/overlap/);
    book.add(new RiderArrivals({ seed: 6, count: 10, firstSerial: 3000 }).listing);
  });
});

describe('decision latency histogram', () => {
  it('reads percentiles to within 1 % and the max exactly', () => {
    const rng = new Random(9);
    const h = new LatencyHistogram();
    const xs: number[] = [];
    for (let i = 0; i < 10_000; i++) {
      const x = rng.exp(0.4) + (rng.chance(0.02) ? 20 * rng.next() : 0);
      xs.push(x);
      h.add(x);
    }
    xs.sort((p, q) => p - q);
    for (const p of [50, 90, 99]) {
      const exact = xs[Math.ceil((p / 100) * xs.length) - 1];
      expect(h.percentile(p)).toBeGreaterThanOrEqual(exact);
      expect(h.percentile(p)).toBeLessThanOrEqual(exact * 1.01);
    }
    expect(h.max).toBe(xs.at(-1));
    expect(new LatencyHistogram().percentile(50)).toBe(0);
  });
});

describe('a line of stations', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
  });

  it('two stations on one clock and one back office: each judged on its own, no wrong answer', { timeout: 60_000 }, async () => {
    const { summary } = await simulateLine({ stations: 2, lanes: 3, passengers: 601, seed: 4 });
    expect(summary.stations).toBe(2);
    expect(summary.lanes).toBe(6);
    expect(summary.byStation.map((s) => [s.station, s.passengers, s.lanes])).toEqual([
      ['S01', 301, 3],
      ['S02', 300, 3],
    ]);
    for (const s of summary.byStation) {
      expect(s, s.station).toMatchObject({ falseAccepts: 0, falseRejects: 0, unanswered: 0, wrongReasons: 0 });
      expect(s.admitted, s.station).toBeGreaterThan(200);
      // Riders who register after a refusal reach the lanes through the shared back office.
      expect(s.byReason['not-registered'], s.station).toBeGreaterThan(0);
    }
    expect(summary.admitted).toBe(summary.byStation[0].admitted + summary.byStation[1].admitted);
    expect(summary.presentations).toBe(summary.admitted + summary.refused);
  });

  it('a line of one station is the station: same riders, same answers', { timeout: 60_000 }, async () => {
    const strip = ({ wallSeconds, decisionLatencyMs, ...rest }: { wallSeconds: number; decisionLatencyMs: unknown } & Record<string, unknown>) => rest;
    const { summary: line } = await simulateLine({ stations: 1, lanes: 4, passengers: 400, seed: 2 });
    const { summary: station } = await simulateStation({ lanes: 4, passengers: 400, seed: 2 });
    const { stations, byStation, ...total } = line;
    expect(stations).toBe(1);
    expect(strip(total)).toEqual(strip({ ...station }));
  });

  it('`gate sim --stations 2 --lanes 3 --json` prints the line summary with each station', { timeout: 60_000 }, async () => {
    const out: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
    const program = new Command().exitOverride();
    register(program);
    await program.parseAsync(['node', 'gate', 'sim', '--stations', '2', '--lanes', '3', '--passengers', '200', '--json', '--quiet']);
    const summary = JSON.parse(out.at(-1)!) as { stations: number; lanes: number; passengers: number; falseAccepts: number; byStation: { station: string }[] };
    expect(summary).toMatchObject({ stations: 2, lanes: 6, passengers: 200, falseAccepts: 0 });
    expect(summary.byStation.map((s) => s.station)).toEqual(['S01', 'S02']);
    expect(process.exitCode ?? 0).toBe(0);
  });

  it('bad line options get clear errors', async () => {
    await expect(simulateLine({ stations: 0 })).rejects.toThrow(/--stations must be 1-64/);
    await expect(simulateLine({ stations: 64, lanes: 100 })).rejects.toThrow(/6400 lanes; at most 4096/);
    await expect(simulateLine({ stations: 2, realtime: true })).rejects.toThrow(/virtual time only/);
    await expect(simulateLine({ stations: 2, broker: 'mqtt' })).rejects.toThrow(/--broker none/);
  });
});
