// The gate's side of the list bench, in a process of its own so its memory figures are the gate's
// alone: boot from the segmented list file, serve lookups, apply a signed delta while serving.
// Usage: node list-gate-child.js <listFile> <deltaFile> <publicKeyPem> <worker|thread> <probeCount>
// Prints one JSON line.

import { readFileSync } from 'node:fs';
import { ListMerger, defaultWorkerUrl } from '../../firmware/list-merger.js';
import { openListFile, writeListFile, type SegmentedLists } from '../../firmware/segmented-lists.js';
import { trustedListKey } from '../../protocol/list-format.js';

const [listFile, deltaFile, pem, mode, probeArg] = process.argv.slice(2);
const rss = () => process.memoryUsage.rss() / 2 ** 20;
const rssBoot0 = rss();

const t0 = performance.now();
const { lists, verified } = await openListFile(listFile);
const bootMs = performance.now() - t0;
const v = await verified;
const verifiedMs = performance.now() - t0;
if (!v.ok) throw new Error(v.detail);
const rssLoaded = rss();

// Probe keys: the parent wrote them one per line after the delta file's name + ".probes".
const probes = readFileSync(`${deltaFile}.probes`, 'utf8').split('\n').filter(Boolean).slice(0, Number(probeArg));
const keys = [trustedListKey(pem)];
const delta = new Uint8Array(readFileSync(deltaFile));

let current: SegmentedLists = lists;
// A lane's event loop: lookups keep arriving; the gap between two turns is the pause a rider would see.
const gaps = new Float64Array(8_000_000);
let n = 0;
let done = false;
let peak = 0;
async function serve(): Promise<void> {
  let pi = 0;
  let last = performance.now();
  while (!done) {
    const now = performance.now();
    if (n < gaps.length) gaps[n++] = now - last;
    for (let j = 0; j < 16; j++) {
      current.allowlist.lookup(probes[pi]);
      pi = pi + 1 === probes.length ? 0 : pi + 1;
    }
    if ((n & 255) === 0) peak = Math.max(peak, rss());
    last = performance.now();
    await new Promise<void>((r) => setImmediate(r));
  }
}
const stats = (k: number) => {
  const a = Float64Array.from(gaps.subarray(0, k)).sort();
  const at = (p: number) => a[Math.min(a.length - 1, Math.ceil((p / 100) * a.length) - 1)];
  let over1 = 0;
  for (let i = a.length - 1; i >= 0 && a[i] > 1; i--) over1++;
  return { worst: a[a.length - 1], p99: at(99), p999: at(99.9), turns: k, over1 };
};

// Noise floor: the same loop with nothing applying.
let s = serve();
await new Promise((r) => setTimeout(r, 1000));
done = true;
await s;
const idle = stats(n);

n = 0;
done = false;
peak = rss();
const rssBefore = peak;
const merger = new ListMerger(mode === 'worker' ? defaultWorkerUrl() : undefined);
if (mode === 'worker' && !merger.usesWorker) throw new Error('worker not found beside the compiled merger');
s = serve();
const a0 = performance.now();
const out = await merger.applyDeltas(lists, delta, keys);
if (out.kind !== 'applied') throw new Error(JSON.stringify(out));
current = out.next;
const servedMs = performance.now() - a0;
await out.next.settled;
const mergedMs = performance.now() - a0;
await writeListFile(`${listFile}.next`, out.next);
const writtenMs = performance.now() - a0;
done = true;
await s;
const during = stats(n);
await merger.close();
console.log(JSON.stringify({ bootMs, verifiedMs, rssBoot0, rssLoaded, rssBefore, rssPeak: peak, servedMs, mergedMs, writtenMs, idle, during, size: out.next.size, mode }));
