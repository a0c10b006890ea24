// One `gate sim` run in a process of its own, for the sim bench: a station (or a line) of riders on
// virtual time, then one JSON line with the summary, the wall and CPU time of the run, and the process's
// peak RSS. The run is described in SIM_CHILD: { lanes, passengers, seed, stations? }.
import { simulateLine } from '../../firmware/composition/simulated-line.js';
import { simulateStation } from '../../firmware/composition/simulated-station.js';

const o = JSON.parse(process.env.SIM_CHILD ?? '{}') as { lanes: number; passengers: number; seed: number; stations?: number };
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const { byStation: _, ...summary } =
  o.stations === undefined ? { ...(await simulateStation({ lanes: o.lanes, passengers: o.passengers, seed: o.seed })).summary, byStation: undefined } : (await simulateLine({ stations: o.stations, lanes: o.lanes, passengers: o.passengers, seed: o.seed })).summary;
const wallMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
console.log(JSON.stringify({ summary, wallMs, cpuMs: (cpu.user + cpu.system) / 1000, maxRssMB: process.resourceUsage().maxRSS / 1024 }));
