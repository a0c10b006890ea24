// Worker thread: verifies, decodes and merges list deltas off the gate's event loop, so the
// garbage and the megabytes a 100,000-change delta costs never pause a lookup. It reads the segments
// the gate serves from (shared memory), and posts back the overlay, then each merged segment, then
// done. Protocol: firmware/list-merger.ts. The gate keeps serving throughout; it only swaps.

import { setPriority } from 'node:os';
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { changeSetFromDeltasGen, runToEnd, verifyDeltasGen, type TrustedListKey } from '../protocol/list-format.js';
import { SegmentedLists, SpareSegments, applyChangeSetGen, sharedBytes, viewOf } from './segmented-lists.js';
import type { MergeReply, MergeRequest } from './list-merger.js';

const port = parentPort;
if (!port) throw new Error('list-merge-worker runs as a worker thread');
// Below the lane's own thread: on Linux a thread's nice value is its own, so a busy merge yields the
// CPU to the event loop that answers riders.
try {
  setPriority(10);
} catch {
  // not permitted here: same priority, still off the event loop
}
// The gate hands back each replaced segment's buffer on this port once it has swapped the new one in
// (and bumps `returned[0]`), so merges reuse memory instead of growing it.
const { sparePort, returned } = workerData as { sparePort: MessagePort; returned: Int32Array };

function spareSource(initial: Uint8Array[]): SpareSegments {
  const pool = new SpareSegments(64);
  for (const b of initial) pool.put(b);
  const take = pool.take;
  pool.take = (n: number) => {
    for (let m = receiveMessageOnPort(sparePort); m; m = receiveMessageOnPort(sparePort)) pool.put(m.message as Uint8Array);
    if (pool.count === 0) {
      // Wait briefly for the gate to swap and give one back; if it is busy, a new buffer will do.
      const seen = Atomics.load(returned, 0);
      Atomics.wait(returned, 0, seen, 20);
      for (let m = receiveMessageOnPort(sparePort); m; m = receiveMessageOnPort(sparePort)) pool.put(m.message as Uint8Array);
    }
    return take(n);
  };
  return pool;
}

port.on('message', (m: MergeRequest) => {
  const post = (r: MergeReply) => port.postMessage(r);
  try {
    const v = runToEnd(verifyDeltasGen(m.deltas, m.keys as TrustedListKey[], false));
    if (!v.ok) return post({ id: m.id, kind: 'rejected', error: v.error, detail: v.detail });
    if (v.value.length === 0) return post({ id: m.id, kind: 'empty' });
    const first = v.value[0].header, last = v.value[v.value.length - 1].header;
    if (first.fromVersion !== m.from) {
      return post({ id: m.id, kind: 'rejected', error: first.fromVersion < m.from ? 'replayed' : 'gap', detail: `delta starts at ${first.fromVersion}, gate is at ${m.from}` });
    }
    const cs = runToEnd(changeSetFromDeltasGen(v.value, 512, sharedBytes));
    if (!cs.ok) return post({ id: m.id, kind: 'rejected', error: cs.error, detail: cs.detail });
    const old = new SegmentedLists(m.from, 0, m.segmentBits, m.segments.map(viewOf), null, m.entries);
    const next = runToEnd(applyChangeSetGen(old, cs.value, { version: last.toVersion, publishedAtMs: last.publishedAtMs }));
    post({ id: m.id, kind: 'overlay', overlay: next.overlayBytes!, entries: next.size, from: m.from, to: last.toVersion, publishedAtMs: last.publishedAtMs, deltas: v.value.length });
    const pool = spareSource(m.spares);
    runToEnd(next.mergeOverlayGen(512, pool, (s, bytes) => post({ id: m.id, kind: 'segment', s, bytes })));
    post({ id: m.id, kind: 'done', spares: pool.takeAll() });
  } catch (e) {
    post({ id: m.id, kind: 'failed', detail: (e as Error).stack ?? String(e) });
  }
});
