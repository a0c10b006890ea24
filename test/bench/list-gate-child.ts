// The gate's side of the list bench, in a process of its own so its memory figures are the gate's
// alone: boot from the segmented list file, serve lookups, apply a signed delta while serving.
// Usage: node list-gate-child.js <listFile> <deltaFile> <publicKeyPem> <worker|thread|compact> <probeCount>
// (worker and thread keep the delta in the delta log as the runtime does; compact rewrites the list file.)
//        node list-gate-child.js <listFile> <deltaFile> <publicKeyPem> snapshot <probeCount> <backOfficeUrl>
// (snapshot: the gate syncs, is told its delta chain is gone, and installs the back office's snapshot.)
// Prints one JSON line.

import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { ListMerger, defaultWorkerUrl } from '../../firmware/lists/merger.js';
import { ListSync } from '../../firmware/lists/list-sync.js';
import type { ListSnapshot } from '../../firmware/lists/list-provider.js';
import { openListFile, type SegmentedLists } from '../../firmware/lists/segmented-lists.js';
import { trustedListKey } from '../../protocol/lists/index.js';
import { lowerHelperThreads } from '../../firmware/platform/thread-priority.js';

const [listFile, deltaFile, pem, mode, probeArg, url] = process.argv.slice(2);
const rss = () => process.memoryUsage.rss() / 2 ** 20;
// As `gate run` starts (firmware/cli/run.ts): Node's and V8's helper threads yield to this one.
lowerHelperThreads();
const rssBoot0 = rss();

const gateDir = mode === 'snapshot' ? mkdtempSync(join(tmpdir(), 'gate-')) : '';
if (gateDir) copyFileSync(listFile, join(gateDir, 'lists.seg'));
const keys = [trustedListKey(pem)];
const t0 = performance.now();
let sync: ListSync | undefined;
let lists: SegmentedLists;
let bootMs: number;
if (gateDir) {
  // Boot as the runtime does: the sync client opens the gate's list file.
  sync = await ListSync.open({ url, dir: gateDir, trustedKeys: keys });
  bootMs = performance.now() - t0;
  if (!(await sync.bootCheck)) throw new Error('list file refused');
  lists = sync.current() as SegmentedLists;
} else {
  const f = await openListFile(listFile);
  bootMs = performance.now() - t0;
  const v = await f.verified;
  if (!v.ok) throw new Error(v.detail);
  lists = f.lists;
}
const verifiedMs = performance.now() - t0;
const rssLoaded = rss();

// Probe keys: the parent wrote them one per line after the delta file's name + ".probes".
const probes = readFileSync(`${deltaFile}.probes`, 'utf8').split('\n').filter(Boolean).slice(0, Number(probeArg));
// In shared memory, as list sync reads a delta body (firmware/list-sync.ts), so it reaches the merge worker without a copy.
const deltaRead = readFileSync(deltaFile);
const delta = new Uint8Array(new SharedArrayBuffer(deltaRead.byteLength));
delta.set(deltaRead);

let current: ListSnapshot = lists;
// A lane's event loop: lookups keep arriving. Each serve turn is timed from its start to the start of the
// next, so the time inside its lookups (a segment read while a snapshot installs) counts as well as the
// time the loop was away: that is the pause a rider would see.
const gaps = new Float64Array(8_000_000);
// LIST_BENCH_GAPS=1: print when the long pauses happened (ms from the start of the apply).
const traceGaps: string[] | undefined = process.env.LIST_BENCH_GAPS ? [] : undefined;
let traceAt = performance.now();
// With it, this process's garbage collections over 0.5 ms too, on the same time line (gc:kind@start:ms).
if (traceGaps) {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as { detail?: { kind?: number } }).detail?.kind;
      if (e.duration > 0.5) traceGaps.push(`gc${kind ?? ''}@${(e.startTime - traceAt).toFixed(0)}:${e.duration.toFixed(1)}`);
    }
  }).observe({ entryTypes: ['gc'] });
}
let n = 0;
let done = false;
let peak = 0;
let insideWorst = 0;
async function serve(): Promise<void> {
  let pi = 0;
  let start = performance.now();
  while (!done) {
    for (let j = 0; j < 16; j++) {
      current.allowlist.lookup(probes[pi]);
      pi = pi + 1 === probes.length ? 0 : pi + 1;
    }
    // The part inside the lookups, on its own: what a gap measured after the lookups never saw.
    const inside = performance.now() - start;
    if (inside > insideWorst) insideWorst = inside;
    await new Promise<void>((r) => setImmediate(r));
    // One turn: its lookups, then the loop's absence until it comes back.
    const now = performance.now();
    if (n < gaps.length) gaps[n++] = now - start;
    if (traceGaps && now - start > 2) traceGaps.push(`${(start - traceAt).toFixed(0)}:${(now - start).toFixed(1)}`);
    // The bench's own RSS sampling is no lane work: outside every turn.
    if ((n & 255) === 0) peak = Math.max(peak, rss());
    start = performance.now();
  }
}
const stats = (k: number) => {
  const a = Float64Array.from(gaps.subarray(0, k)).sort();
  const at = (p: number) => a[Math.min(a.length - 1, Math.ceil((p / 100) * a.length) - 1)];
  let over1 = 0;
  for (let i = a.length - 1; i >= 0 && a[i] > 1; i--) over1++;
  const worstInside = insideWorst;
  insideWorst = 0;
  return { worst: a[a.length - 1], p99: at(99), p999: at(99.9), turns: k, over1, insideWorst: worstInside };
};

// A running gate has its merge worker up already (ListSync.start warms it).
const merger = new ListMerger(mode === 'worker' || mode === 'compact' ? defaultWorkerUrl() : undefined);
if ((mode === 'worker' || mode === 'compact') && !merger.usesWorker) throw new Error('worker not found beside the compiled merger');
merger.warm();
sync?.merger.warm();

// Let the collection that follows loading and checking a large list happen first: it is part of
// boot, not of the steady state the apply is compared with.
await new Promise((r) => setTimeout(r, 1500));

// Noise floor: the same loop with nothing applying, for as long as an apply lasts (LIST_BENCH_IDLE_MS).
let s = serve();
await new Promise((r) => setTimeout(r, Number(process.env.LIST_BENCH_IDLE_MS ?? 1000)));
done = true;
await s;
const idle = stats(n);

n = 0;
done = false;
peak = rss();
const rssBefore = peak;
if (sync) {
  // A running gate has talked to its back office before (the first fetch() loads the HTTP client).
  await (await fetch(`${url}/v1/issuer-keys`)).arrayBuffer();
  // The back office has no delta chain for this gate, only a newer snapshot.
  s = serve();
  const a0 = performance.now();
  traceAt = a0;
  if (traceGaps) traceGaps.length = 0;
  sync.on('version', () => traceGaps?.push(`swap@${(performance.now() - a0).toFixed(0)}`));
  const r = await sync.syncOnce();
  if (r.kind !== 'applied') throw new Error(JSON.stringify(r));
  current = sync.current();
  const servedMs = performance.now() - a0;
  await (current as SegmentedLists).settled;
  const mergedMs = performance.now() - a0;
  done = true;
  await s;
  const during = stats(n);
  await sync.stop();
  rmSync(gateDir, { recursive: true, force: true });
  if (traceGaps) console.error(traceGaps.join(' '));
  console.log(JSON.stringify({ bootMs, verifiedMs, rssBoot0, rssLoaded, rssBefore, rssPeak: peak, servedMs, mergedMs, writtenMs: servedMs, idle, during, size: current.allowlist.size, mode, version: current.version }));
  process.exit(0);
}
s = serve();
const a0 = performance.now();
traceAt = a0;
if (traceGaps) traceGaps.length = 0;
const out = await merger.applyDeltas(lists, delta, keys);
traceGaps?.push(`swap@${(performance.now() - a0).toFixed(0)}`);
if (out.kind !== 'applied') throw new Error(JSON.stringify(out));
current = out.next;
const servedMs = performance.now() - a0;
await out.next.settled;
const mergedMs = performance.now() - a0;
// Kept as the runtime keeps it (ListSync.persist): a delta that fits the delta log is appended to it
// durably; the list file is rewritten whole only when the log is full (`compact`: 1.3 GB at 50 M).
if (mode === 'compact') await merger.writeListFile(`${listFile}.next`, out.next);
// The bytes in shared memory, as list sync hands them on (its response body): posted to the worker without
// a copy, as the runtime posts them (a plain buffer would be copied on this thread first).
else await merger.appendDurably(`${listFile}.deltas`, delta);
const writtenMs = performance.now() - a0;
done = true;
await s;
const during = stats(n);
// The bench's own clean-up, after the measured window: unlinking the 2.7 MB log it just made durable took
// 2-3 ms of this thread (ext4 frees its blocks in the call), inside the last turns, and a gate never does it.
rmSync(`${listFile}.deltas`, { force: true });
await merger.close();
if (traceGaps) console.error(traceGaps.join(' '));
console.log(JSON.stringify({ bootMs, verifiedMs, rssBoot0, rssLoaded, rssBefore, rssPeak: peak, servedMs, mergedMs, writtenMs, idle, during, size: out.next.size, mode, scheduling: merger.scheduling ?? 'in-thread' }));
