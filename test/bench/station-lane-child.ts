// A well-behaved lane's station link in a process of its own, for the station bench's rogue-lane figure:
// its RSS and its event loop's worst delay while another lane with valid credentials floods used-code ids.
// Settings arrive as JSON in STATION_CHILD; it prints one JSON line when connected and one per second.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { systemClock } from '../../drivers/seams.js';
import { silentLogger } from '../../firmware/config/log.js';
import { LaneStationLink } from '../../firmware/station/lane-link.js';
import type { StationSettings } from '../../firmware/station/config.js';

const raw = JSON.parse(process.env.STATION_CHILD ?? '{}') as Omit<StationSettings, 'supervisors'>;
const link = new LaneStationLink({ settings: { ...raw, supervisors: new Map() }, clock: systemClock, log: silentLogger });
const delay = monitorEventLoopDelay({ resolution: 1 });
let rssPeak = 0;
link.start();
if (!(await link.bus.waitConnected(20_000))) {
  console.log(JSON.stringify({ error: link.bus.lastError ?? 'no connection' }));
  process.exit(1);
}
global.gc?.();
// Start-up's own collections are not the flood's: measure from a second after connecting.
await new Promise((r) => setTimeout(r, 1000));
const baseline = process.memoryUsage.rss();
delay.enable();
console.log(JSON.stringify({ ready: true, rssMB: baseline / 2 ** 20 }));
// The lane's own stalls: CPU time it spent between two ticks of a 2 ms timer. The wall-clock delay also
// counts time the OS gave the cores to others (here the broker and the rogue share the machine's 2 cores).
let ownStallMs = 0;
let lastTick = performance.now();
let lastCpu = process.cpuUsage();
const stallTimer = setInterval(() => {
  const now = performance.now();
  const cpu = process.cpuUsage();
  const used = (cpu.user + cpu.system - lastCpu.user - lastCpu.system) / 1000;
  ownStallMs = Math.max(ownStallMs, Math.min(used, now - lastTick));
  lastTick = now;
  lastCpu = cpu;
}, 2);
const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage.rss())), 100);
const timer = setInterval(() => {
  const rss = process.memoryUsage.rss();
  rssPeak = Math.max(rssPeak, rss);
  console.log(
    JSON.stringify({
      received: link.usedCodes.counters.received,
      backlogDropped: link.counters.backlogDropped,
      floodDropped: link.counters.floodDropped,
      store: link.usedCodes.size(),
      evicted: link.usedCodes.counters.evicted,
      rssMB: rss / 2 ** 20,
      rssPeakMB: rssPeak / 2 ** 20,
      baselineMB: baseline / 2 ** 20,
      heapMB: getHeapStatistics().used_heap_size / 2 ** 20,
      maxDelayMs: delay.max / 1e6,
      p99DelayMs: delay.percentile(99) / 1e6,
      ownStallMs,
    }),
  );
}, 1000);
process.once('SIGTERM', async () => {
  clearInterval(timer);
  clearInterval(sampler);
  clearInterval(stallTimer);
  await link.stop();
  process.exit(0);
});
