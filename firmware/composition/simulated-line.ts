// `gate sim --stations S --lanes N`: a line of S simulated stations of N real lanes each, in one run on
// one virtual clock and one back office. Each station has its own riders (its own serial range, so every
// registration on the line is one rider's), its own lanes, its own used-code store and passback record,
// and its own judge; the line's summary adds them up and lists each station's.

import { VirtualClock } from '../../simulator/virtual-clock.js';
import { DEFAULT_MIX } from '../../simulator/population.js';
import { RiderArrivals } from '../../simulator/arrivals.js';
import { FAILURE_SAMPLE, LatencyHistogram } from '../../simulator/summary.js';
import type { StationSummary } from '../../simulator/station.js';
import { ConfigError } from '../config/config.js';
import { silentLogger } from '../config/log.js';
import { DEFAULT_SIM, JOURNAL_RECORDS_HELD, MAX_LANES, backofficeWirings, openStation, type OpenStation, type SimOptions } from './simulated-station.js';

/** Stations one line may have, and lanes in all: what one process is sized for. */
export const MAX_STATIONS = 64;
export const MAX_LINE_LANES = 4096;

export interface LineOptions extends SimOptions {
  stations: number;
}

export interface LineSummary extends StationSummary {
  stations: number;
  /** Each station's own summary, in line order. */
  byStation: (StationSummary & { station: string })[];
}

/** The station's name on the line: S01, S02, … */
export function stationName(k: number): string {
  return `S${String(k + 1).padStart(2, '0')}`;
}

/** Station k's seed: station 1 takes the run's own, so a line of one station is `gate sim` itself. */
export function stationSeed(seed: number, k: number): number {
  return (seed + k * 0x9e3779b9) >>> 0;
}

export async function simulateLine(opts: Partial<LineOptions> & { stations: number }): Promise<{ summary: LineSummary }> {
  const o: LineOptions = { ...DEFAULT_SIM, ...opts };
  if (!Number.isInteger(o.stations) || o.stations < 1 || o.stations > MAX_STATIONS) throw new ConfigError(`--stations must be 1-${MAX_STATIONS}, got ${o.stations}`);
  if (!Number.isInteger(o.lanes) || o.lanes < 1 || o.lanes > MAX_LANES) throw new ConfigError(`--lanes must be 1-${MAX_LANES}, got ${o.lanes}`);
  if (o.stations * o.lanes > MAX_LINE_LANES) throw new ConfigError(`a line of ${o.stations} stations of ${o.lanes} lanes is ${o.stations * o.lanes} lanes; at most ${MAX_LINE_LANES}`);
  if (!Number.isInteger(o.passengers) || o.passengers < 0) throw new ConfigError(`--passengers must be a whole number >= 0, got ${o.passengers}`);
  // What a line does not do yet: pace to the wall clock (a dashboard) or share used codes over a broker.
  if (o.realtime || o.untilStopped) throw new ConfigError('--stations runs on virtual time only (no --realtime, no --dashboard)');
  if (o.broker !== undefined && o.broker !== 'none') throw new ConfigError('--stations shares used codes within each station in process only (--broker none)');
  const log = o.log ?? silentLogger;
  const backofficeWiring = Object.hasOwn(backofficeWirings, o.backoffice) ? backofficeWirings[o.backoffice] : undefined;
  if (!backofficeWiring) throw new ConfigError(`unknown back office (--backoffice) "${o.backoffice}"; known: ${Object.keys(backofficeWirings).join(', ')}`);

  const clock = new VirtualClock();
  // The line's riders, split as evenly as they go; each station numbers its own from where the last stopped.
  const populations: RiderArrivals[] = [];
  let firstSerial = 0;
  for (let k = 0; k < o.stations; k++) {
    const count = Math.floor(o.passengers / o.stations) + (k < o.passengers % o.stations ? 1 : 0);
    populations.push(new RiderArrivals({ seed: stationSeed(o.seed, k), count, mix: DEFAULT_MIX, firstSerial }));
    firstSerial += count;
  }
  const backoffice = await backofficeWiring({ clock, log, seed: o.seed });
  const opened: OpenStation[] = [];
  try {
    await backoffice.publish(populations);
    const journalKeep = o.journalKeep ?? Math.max(16, Math.floor(JOURNAL_RECORDS_HELD / (o.stations * o.lanes)));
    for (let k = 0; k < o.stations; k++) {
      const station = stationName(k);
      opened.push(
        await openStation(
          { ...o, seed: stationSeed(o.seed, k), passengers: populations[k].count, log: log.child({ station }) },
          { clock, backoffice, riders: populations[k], station, journalKeep },
        ),
      );
    }
    const wallStart = performance.now();
    await drive(clock, opened);
    const byStation = opened.map((s, k) => ({ station: stationName(k), ...s.sim.station.end() }));
    return { summary: lineSummary(byStation, opened, (performance.now() - wallStart) / 1000) };
  } finally {
    await Promise.allSettled(opened.map((s) => s.close()));
    await backoffice.close();
  }
}

/**
 * One clock for every station: fire the next timer, give the event loop one turn (every lane's promise
 * chains run), and let a station that holds the clock (real I/O, a registration on its way) settle.
 */
async function drive(clock: VirtualClock, opened: OpenStation[]): Promise<void> {
  const settle = async () => {
    await new Promise<void>((r) => setImmediate(r));
    for (const s of opened) if (!s.quiet()) await s.sim.station.settle();
  };
  for (const s of opened) s.sim.station.begin();
  await settle();
  while (opened.some((s) => s.sim.station.busy)) {
    if (!clock.step()) break;
    await settle();
  }
}

function lineSummary(byStation: (StationSummary & { station: string })[], opened: OpenStation[], wallSeconds: number): LineSummary {
  const sum = (f: (s: StationSummary) => number) => byStation.reduce((n, s) => n + f(s), 0);
  const byReason: Record<string, number> = {};
  for (const s of byStation) for (const [k, v] of Object.entries(s.byReason)) byReason[k] = (byReason[k] ?? 0) + v;
  const latency = new LatencyHistogram();
  for (const s of opened) latency.merge(s.sim.station.tally.latency);
  const lanes = sum((s) => s.lanes);
  const admitted = sum((s) => s.admitted);
  const virtualSeconds = Math.max(0, ...byStation.map((s) => s.virtualSeconds));
  const failures = byStation.flatMap((s) => (s.failureSample ?? []).map((line) => `${s.station} ${line}`)).slice(0, FAILURE_SAMPLE);
  const round = (n: number, d: number) => Math.round(n * 10 ** d) / 10 ** d;
  return {
    passengers: sum((s) => s.passengers),
    presentations: sum((s) => s.presentations),
    admitted,
    refused: sum((s) => s.refused),
    falseAccepts: sum((s) => s.falseAccepts),
    falseRejects: sum((s) => s.falseRejects),
    unanswered: sum((s) => s.unanswered),
    wrongReasons: sum((s) => s.wrongReasons),
    byReason,
    throughputPerLanePerMin: virtualSeconds > 0 ? round(admitted / lanes / (virtualSeconds / 60), 2) : 0,
    decisionLatencyMs: { p50: round(latency.percentile(50), 3), p99: round(latency.percentile(99), 3), max: round(latency.max, 3) },
    virtualSeconds,
    wallSeconds: round(wallSeconds, 2),
    tailgates: sum((s) => s.tailgates),
    intrusions: sum((s) => s.intrusions),
    lanes,
    ...(failures.length > 0 ? { failureSample: failures } : {}),
    stations: byStation.length,
    byStation,
  };
}
