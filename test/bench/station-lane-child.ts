// A well-behaved lane's station link in a process of its own, for the station bench's rogue-lane figure:
// its RSS and its event loop's worst delay while another lane with valid credentials floods used-code ids.
// Settings arrive as JSON in STATION_CHILD; it prints one JSON line when connected and one per second.
import { openSync, readSync, writeFileSync } from 'node:fs';
import { PerformanceObserver, constants as perfConstants, createHistogram, monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { systemClock } from '../../drivers/seams.js';
import { silentLogger } from '../../firmware/config/log.js';
import { LaneStationLink } from '../../firmware/station/lane-link.js';
import type { StationSettings } from '../../firmware/station/config.js';
import { decodeUsed, laneTopic } from '../../protocol/station-bus.js';

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
const readyAt = performance.now();
console.log(JSON.stringify({ ready: true, rssMB: baseline / 2 ** 20, readyAtMs: readyAt }));
/** Since when the figures count (reset by SIGUSR2, below). */
let readyAtMs = readyAt;
// The lane's own stalls: the CPU time its event loop's thread ran between two ticks of a 2 ms timer (from
// /proc/<pid>/task/<pid>/schedstat, ns). The wall-clock delay also counts time the OS gave the cores to
// others (here the broker and the rogue share the machine's 2 cores); the whole process's CPU
// (process.cpuUsage) also counts V8's background threads (the optimizing compiler), which do not hold up
// the loop: both are reported beside it.
// STATION_CHILD_GAPS=<file>: every gap over 3 ms written there at exit, in the monotonic clock's µs (the
// clock of a --cpu-prof profile), so station-turns.ts can say what ran in each.
const schedstat = openSync(`/proc/${process.pid}/task/${process.pid}/schedstat`, 'r');
const statBuf = Buffer.alloc(128);
const loopThreadMs = () => {
  const n = readSync(schedstat, statBuf, 0, statBuf.length, 0);
  return Number(statBuf.toString('latin1', 0, n).split(' ')[0]) / 1e6;
};
let ownStallMs = 0;
let processStallMs = 0;
let lastTick = performance.now();
let lastCpu = process.cpuUsage();
let lastThread = loopThreadMs();
let lastHr = process.hrtime.bigint();
type Gap = { startUs: number; endUs: number; startMs: number; endMs: number; wallMs: number; cpuMs: number; processCpuMs: number; systemMs: number; packets: number; bytes: number; gcMs?: number };
const gaps: Gap[] = [];
let worst: Gap[] = [];
// MQTT packets read between two ticks (what the bus did in a gap).
let packets = 0;
let bytes = 0;
// And the time each peer's used message took, from MQTT.js taking the packet to the link having dealt
// with it (this listener runs after the link's): decoded (within the byte budget) apart from dropped.
let packetAt = 0;
let receivedBefore = 0;
// Native histograms (ns): recording is O(1) and reading a percentile does not sort, so the 1 s report
// below costs the loop nothing worth measuring (sorting arrays there showed up as a 12 ms "stall").
const perMessage = { decoded: createHistogram(), dropped: createHistogram() };
link.bus.client.on('packetreceive', (p) => {
  packets++;
  bytes += (p as { length?: number }).length ?? 0;
  packetAt = performance.now();
  receivedBefore = link.usedCodes.counters.received;
});
link.bus.on('message', (t) => {
  if (!t.endsWith('/used')) return;
  const h = link.usedCodes.counters.received > receivedBefore ? perMessage.decoded : perMessage.dropped;
  h.record(Math.max(1, Math.round((performance.now() - packetAt) * 1e6)));
});
const stallTimer = setInterval(() => {
  const now = performance.now();
  const cpu = process.cpuUsage();
  const thread = loopThreadMs();
  const hr = process.hrtime.bigint();
  const wall = now - lastTick;
  const used = thread - lastThread;
  const processUsed = (cpu.user + cpu.system - lastCpu.user - lastCpu.system) / 1000;
  ownStallMs = Math.max(ownStallMs, Math.min(used, wall));
  processStallMs = Math.max(processStallMs, Math.min(processUsed, wall));
  if (wall > 3 && gaps.length < 10_000) {
    const g = { startUs: Number(lastHr / 1000n), endUs: Number(hr / 1000n), startMs: lastTick, endMs: now, wallMs: wall, cpuMs: used, processCpuMs: processUsed, systemMs: (cpu.system - lastCpu.system) / 1000, packets, bytes };
    gaps.push(g);
    if (worst.length < 3 || g.cpuMs > worst[worst.length - 1].cpuMs) worst = [...worst, g].sort((a, b) => b.cpuMs - a.cpuMs).slice(0, 3);
  }
  packets = bytes = 0;
  lastTick = now;
  lastCpu = cpu;
  lastThread = thread;
  lastHr = hr;
}, 2);
// Collections during the flood: the longest pause and its kind.
const gcKinds: Record<number, string> = { [perfConstants.NODE_PERFORMANCE_GC_MAJOR]: 'major', [perfConstants.NODE_PERFORMANCE_GC_MINOR]: 'minor', [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental', [perfConstants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb' };
const gc = { count: 0, totalMs: 0, maxMs: 0, maxKind: '' };
const gcLog: { startMs: number; ms: number }[] = [];
/** The worst gaps by the loop thread's CPU, each with the collections inside it and the packets it read. */
const worstGaps = () =>
  worst.map((g) => {
    g.gcMs = gcLog.reduce((a, x) => a + Math.max(0, Math.min(g.endMs, x.startMs + x.ms) - Math.max(g.startMs, x.startMs)), 0);
    return `${g.cpuMs.toFixed(1)} ms CPU at +${((g.startMs - readyAtMs) / 1000).toFixed(2)} s (process: ${g.processCpuMs.toFixed(1)} ms of which kernel ${g.systemMs.toFixed(1)} ms; GC ${g.gcMs.toFixed(1)} ms, ${g.packets} packets, ${(g.bytes / 1024).toFixed(0)} kB)`;
  });
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    if (gcLog.length < 10_000) gcLog.push({ startMs: e.startTime, ms: e.duration });
    gc.count++;
    gc.totalMs += e.duration;
    if (e.duration > gc.maxMs) {
      gc.maxMs = e.duration;
      gc.maxKind = gcKinds[(e as unknown as { detail: { kind: number } }).detail.kind] ?? '?';
    }
  }
}).observe({ entryTypes: ['gc'] });
// The honest lane L03's codes (in order, each ending 60 s after it was accepted): counted once the store
// has them, with how long they took to get here.
const honestTopic = laneTopic(raw.station, 'L03', 'used');
let honestKnown = 0;
const honestDelays = createHistogram();
link.bus.on('message', (t, p) => {
  if (t !== honestTopic) return;
  const d = decodeUsed(p);
  if (!d.ok) return;
  for (const [id, until] of d.value.codes) {
    if (!link.usedCodes.isUsed(id, Date.now())) continue;
    honestKnown++;
    honestDelays.record(Math.max(1, Date.now() - (until - 60_000)));
  }
});
const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage.rss())), 100);
const timer = setInterval(() => {
  const rss = process.memoryUsage.rss();
  rssPeak = Math.max(rssPeak, rss);
  console.log(
    JSON.stringify({
      received: link.usedCodes.counters.received,
      honestKnown,
      honestP50Ms: honestDelays.count ? honestDelays.percentile(50) : 0,
      honestMaxMs: honestDelays.count ? honestDelays.max : 0,
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
      processStallMs,
      gcCount: gc.count,
      gcTotalMs: gc.totalMs,
      gcMaxMs: gc.maxMs,
      gcMaxKind: gc.maxKind,
      worstGaps: worstGaps(),
      readYields: link.bus.counters.readYields,
      perMessageUs: Object.fromEntries(Object.entries(perMessage).map(([k, h]) => [k, h.count ? `n ${h.count} p50 ${(h.percentile(50) / 1000).toFixed(0)} p99 ${(h.percentile(99) / 1000).toFixed(0)} max ${(h.max / 1000).toFixed(0)}` : 'n 0'])),
    }),
  );
}, 1000);
// SIGUSR2: start measuring afresh (the bench first has the lane take an honest peer's codes, as a lane
// in service has, and measures the flood from there). The honest count goes on.
process.on('SIGUSR2', () => {
  ownStallMs = processStallMs = 0;
  gaps.length = 0;
  worst = [];
  gcLog.length = 0;
  Object.assign(gc, { count: 0, totalMs: 0, maxMs: 0, maxKind: '' });
  perMessage.decoded.reset();
  perMessage.dropped.reset();
  delay.reset();
  rssPeak = 0;
  readyAtMs = performance.now();
});
process.once('SIGTERM', async () => {
  clearInterval(timer);
  clearInterval(sampler);
  clearInterval(stallTimer);
  await link.stop();
  worstGaps();
  if (process.env.STATION_CHILD_GAPS) writeFileSync(process.env.STATION_CHILD_GAPS, JSON.stringify(gaps));
  process.exit(0);
});
