// One `gate sim` run in a process of its own, for the sim bench: a station (or a line) of riders on
// virtual time, then one JSON line with the summary, the wall and CPU time of the run, the process's peak
// RSS, and the live heap (after a full collection) at a quarter, half, three quarters and the end of the
// riders' answers: what the run holds, apart from what V8 has not collected yet. Run with --expose-gc.
// The run is described in SIM_CHILD: { lanes, passengers, seed, rate?, stations? }.
import { simulateLine } from '../../firmware/composition/simulated-line.js';
import { simulateStation } from '../../firmware/composition/simulated-station.js';

const o = JSON.parse(process.env.SIM_CHILD ?? '{}') as { lanes: number; passengers: number; seed: number; rate?: number; stations?: number };
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const live: number[] = [];
let answers = 0;
const onResult = () => {
  answers++;
  if (o.passengers >= 4 && answers % Math.floor(o.passengers / 4) === 0 && live.length < 4) {
    gc();
    live.push(process.memoryUsage().heapUsed / 2 ** 20);
  }
};
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const opts = { lanes: o.lanes, passengers: o.passengers, seed: o.seed, onResult, ...(o.rate !== undefined ? { rate: o.rate } : {}) };
const { byStation: _, ...summary } =
  o.stations === undefined ? { ...(await simulateStation(opts)).summary, byStation: undefined } : (await simulateLine({ ...opts, stations: o.stations })).summary;
const wallMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
console.log(JSON.stringify({ summary, wallMs, cpuMs: (cpu.user + cpu.system) / 1000, maxRssMB: process.resourceUsage().maxRSS / 1024, liveHeapMB: live }));
