// Worker thread: verifies, decodes and merges list deltas off the gate's event loop, so the
// garbage and the megabytes a 100,000-change delta costs never pause a lookup. It reads the segments
// the gate serves from (shared memory), and posts back the overlay, then each merged segment, then
// done. It also writes the list file and appends to the delta log, with blocking calls on this
// thread. Protocol: firmware/lists/merger.ts. The gate keeps serving throughout; it only swaps.

import { closeSync, fsyncSync, openSync } from 'node:fs';
import { writeFullySync } from '../platform/atomic-file.js';
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { changeSetFromDeltasGen, runToEnd, verifyDeltasGen, type TrustedListKey } from '../../protocol/lists/index.js';
import { SegmentedLists, SpareSegments, applyChangeSetGen, viewOf, sharedBytes, writeSegmentedFile } from './segmented-lists.js';
import type { FileRequest, InstallRequest, LoadRequest, MergeReply, MergeRequest } from './merger.js';
import { fetchSnapshotFile } from './snapshot-install.js';
import { runAtIdlePriority } from '../platform/thread-priority.js';

const port = parentPort;
if (!port) throw new Error('list-merge-worker runs as a worker thread');

// Run only when the lane's thread does not want the CPU (firmware/platform/thread-priority.ts says why: nice 10
// was not enough).
port.postMessage({ id: 0, kind: 'hello', scheduling: runAtIdlePriority() } satisfies MergeReply);

// The gate hands back each replaced segment's buffer on this port once it has swapped the new one in,
// so merges reuse memory instead of growing it.
const { sparePort } = workerData as { sparePort: MessagePort };
// Sleeps of 1 ms while waiting for one: on a word only this thread uses, so the gate never signals it.
const nap = new Int32Array(new SharedArrayBuffer(4));

function spareSource(initial: Uint8Array[]): SpareSegments {
  const pool = new SpareSegments(64);
  for (const b of initial) pool.put(b);
  const take = pool.take;
  const drain = () => {
    for (let m = receiveMessageOnPort(sparePort); m; m = receiveMessageOnPort(sparePort)) pool.put(m.message as Uint8Array);
  };
  pool.take = (n: number) => {
    drain();
    // Wait briefly for the gate to swap and give one back; if it is busy, a new buffer will do.
    for (let i = 0; i < 20 && pool.count === 0; i++) {
      Atomics.wait(nap, 0, 0, 1);
      drain();
    }
    return take(n);
  };
  return pool;
}

// The segments of the version the gate serves, as the worker last merged or was sent them.
let held: { version: number; segments: Uint8Array[] } | undefined;
let loading: Uint8Array[] = [];

function load(m: LoadRequest): void {
  loading.push(...m.segments);
  if (!m.last) return;
  held = { version: m.version, segments: loading };
  loading = [];
}

function segmentsOf(version: number, count: number): Uint8Array[] {
  if (!held || held.version !== version || held.segments.length !== count) throw new Error(`worker holds no segments of version ${version}`);
  return held.segments;
}

function merge(m: MergeRequest, post: (r: MergeReply) => void): void {
  const v = runToEnd(verifyDeltasGen(m.deltas, m.keys as TrustedListKey[], false));
  if (!v.ok) return post({ id: m.id, kind: 'rejected', error: v.error, detail: v.detail });
  if (v.value.length === 0) return post({ id: m.id, kind: 'empty' });
  const first = v.value[0].header, last = v.value[v.value.length - 1].header;
  if (first.fromVersion !== m.from) {
    return post({ id: m.id, kind: 'rejected', error: first.fromVersion < m.from ? 'replayed' : 'gap', detail: `delta starts at ${first.fromVersion}, gate is at ${m.from}` });
  }
  const cs = runToEnd(changeSetFromDeltasGen(v.value, 512, sharedBytes));
  if (!cs.ok) return post({ id: m.id, kind: 'rejected', error: cs.error, detail: cs.detail });
  const old = new SegmentedLists(m.from, 0, m.segmentBits, segmentsOf(m.from, 2 ** m.segmentBits).map(viewOf), null, m.entries);
  const next = runToEnd(applyChangeSetGen(old, cs.value, { version: last.toVersion, publishedAtMs: last.publishedAtMs }));
  post({ id: m.id, kind: 'overlay', overlay: next.overlayBytes!, entries: next.size, from: m.from, to: last.toVersion, publishedAtMs: last.publishedAtMs, deltas: v.value.length });
  const pool = spareSource(m.spares);
  runToEnd(next.mergeOverlayGen(512, pool, (s, bytes) => post({ id: m.id, kind: 'segment', s, bytes })));
  held = { version: next.version, segments: next.segments.map((v) => v.bytes) };
  post({ id: m.id, kind: 'done', spares: pool.takeAll() });
}

function file(m: FileRequest): () => void | Promise<void> {
  if (m.kind === 'write-list') {
    const segments = segmentsOf(m.meta.version, 2 ** m.meta.segmentBits);
    return () => writeSegmentedFile(m.path, m.meta, segments.length, segments, true);
  }
  return () => {
    // Append, durable before the reply.
    const fd = openSync(m.path, 'a');
    try {
      writeFullySync(fd, m.bytes);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  };
}

// One job at a time, in order (a file write must not start before the merge it persists has finished).
let queue: Promise<void> = Promise.resolve();
port.on('message', (m: MergeRequest | FileRequest | LoadRequest | InstallRequest) => {
  queue = queue.then(() => run(m));
});

async function run(m: MergeRequest | FileRequest | LoadRequest | InstallRequest): Promise<void> {
  const post = (r: MergeReply) => port!.postMessage(r);
  try {
    if (m.kind === 'load') return load(m);
    if (m.kind === 'merge') return merge(m, post);
    // Never throws: every failure (HTTP, checks, disk) is an outcome.
    if (m.kind === 'install') return post({ id: m.id, kind: 'installed', outcome: await fetchSnapshotFile(m.fetch, true) });
    const job = file(m);
    try {
      await job();
    } catch (e) {
      // The disk refused (full, read-only, gone): the caller's error, not the worker's.
      return post({ id: m.id, kind: 'file-failed', detail: (e as Error).message, code: (e as NodeJS.ErrnoException).code });
    }
    post({ id: m.id, kind: 'file-done' });
  } catch (e) {
    post({ id: m.id, kind: 'failed', detail: (e as Error).stack ?? String(e) });
  }
}
