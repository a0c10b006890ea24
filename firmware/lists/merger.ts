// Applies verified list deltas to the gate's segmented lists. On a worker thread when the compiled
// worker is there (the runtime): verification, decoding and merging happen off the event loop and
// the gate only swaps pointers. In-thread, in time slices, otherwise (tests running from sources,
// or after the worker died): same result, the gate's own event loop does the work between lookups.
// The worker also writes the list file and appends to the delta log (blocking calls on its own
// idle-priority thread), so persisting a delta costs the event loop nothing either.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { appendInThread } from './delta-log.js';
import type { ThreadScheduling } from '../platform/thread-priority.js';
import { fetchSnapshotFile, type SnapshotFetch, type SnapshotInstall } from './snapshot-install.js';
import { changeSetFromDeltasGen, verifyDeltasGen, type TrustedListKey } from '../../protocol/lists/index.js';
import { SegmentedLists, SpareSegments, applyChangeSetGen, sharedBytes, viewOf, writeListFile } from './segmented-lists.js';
import { runSliced } from './run-sliced.js';

export interface MergeRequest {
  kind: 'merge';
  id: number;
  deltas: Uint8Array;
  keys: readonly TrustedListKey[];
  from: number;
  segmentBits: number;
  /** Merge into the segments the worker holds for version `from` (its own last merge, or a `load`). */
  entries: number;
  /** Buffers no version reads any more, for the worker to merge into. */
  spares: Uint8Array[];
}

/**
 * The segments of a version the worker did not merge itself (the list file read at boot, a snapshot
 * install, a restarted worker), in parts: posting 1,024 shared views at once took 1 ms of the event loop.
 */
export interface LoadRequest {
  kind: 'load';
  id: 0;
  version: number;
  segments: Uint8Array[];
  last: boolean;
}

/** File work for the worker: write a whole segmented list file (the segments it holds for that version), or append bytes durably. */
export type FileRequest =
  | { kind: 'write-list'; id: number; path: string; meta: { version: number; publishedAtMs: number; segmentBits: number; entries: number } }
  | { kind: 'append'; id: number; path: string; bytes: Uint8Array };

/** Fetch, check and cut the back office's snapshot into the list file (firmware/lists/snapshot-install.ts). */
export interface InstallRequest {
  kind: 'install';
  id: number;
  fetch: SnapshotFetch;
}

/** How the worker runs beside the lane's thread: SCHED_IDLE (chrt), nice 19, or as set up (neither was allowed). */
export type WorkerScheduling = ThreadScheduling;

export type MergeReply =
  | { id: 0; kind: 'hello'; scheduling: WorkerScheduling }
  | { id: number; kind: 'file-done' }
  | { id: number; kind: 'installed'; outcome: SnapshotInstall }
  | { id: number; kind: 'file-failed'; detail: string; code?: string }
  | { id: number; kind: 'rejected'; error: string; detail: string }
  | { id: number; kind: 'empty' }
  | { id: number; kind: 'overlay'; overlay: Uint8Array; entries: number; from: number; to: number; publishedAtMs: number; deltas: number }
  | { id: number; kind: 'segment'; s: number; bytes: Uint8Array }
  | { id: number; kind: 'done'; spares: Uint8Array[] }
  | { id: number; kind: 'failed'; detail: string };

export type DeltaOutcome =
  | { kind: 'applied'; next: SegmentedLists; from: number; to: number; deltas: number }
  | { kind: 'empty' }
  | { kind: 'rejected'; error: string; detail: string };

/** The compiled worker beside this module, or undefined when running from TypeScript sources. */
export function defaultWorkerUrl(): URL | undefined {
  const url = new URL('./merge-worker.js', import.meta.url);
  return import.meta.url.endsWith('.js') && existsSync(fileURLToPath(url)) ? url : undefined;
}

export class ListMerger {
  private worker: Worker | undefined;
  private sparePort: MessagePort | undefined;
  private readonly spares = new SpareSegments();
  private nextId = 1;
  private readonly waiting = new Map<number, (r: MergeReply) => void>();
  /** Counters for /metrics and tests. */
  readonly counters = { inWorker: 0, inThread: 0, workerFailures: 0, fileJobsInWorker: 0, fileJobsInThread: 0 };
  /** How the worker thread is scheduled, once it has said so (undefined: no worker, or not started yet). */
  scheduling: WorkerScheduling | undefined;
  /** The version whose segments the worker holds (it merged it, or was sent it); undefined: none. */
  private mirrored: SegmentedLists | undefined;

  constructor(
    private readonly workerUrl: URL | undefined = defaultWorkerUrl(),
    private readonly sliceMs = 0.5,
  ) {}

  get usesWorker(): boolean {
    return this.workerUrl !== undefined;
  }

  /** Verify `deltas` (signed, chained from old.version) and apply them; resolves when the new version can be served. */
  async applyDeltas(old: SegmentedLists, deltas: Uint8Array, keys: readonly TrustedListKey[]): Promise<DeltaOutcome> {
    await old.settled;
    if (this.workerUrl) {
      try {
        const r = await this.inWorker(old, deltas, keys);
        this.counters.inWorker++;
        return r;
      } catch {
        this.counters.workerFailures++;
        // Fall through: the same work in-thread.
      }
    }
    this.counters.inThread++;
    return this.inThread(old, deltas, keys);
  }

  /** Start the worker now (a few ms on the event loop), not on the first delta. */
  warm(): void {
    if (this.workerUrl) this.ensureWorker();
  }

  /** Write `lists` (once its merge settles) as the segmented list file at `path`: new file, fsync, rename. */
  async writeListFile(path: string, lists: SegmentedLists): Promise<void> {
    await lists.settled;
    const meta = { version: lists.version, publishedAtMs: lists.publishedAtMs, segmentBits: lists.segmentBits, entries: lists.size };
    // The segments stay this version's until the next merge, which the worker runs after this write.
    return this.fileJob({ kind: 'write-list', id: 0, path, meta }, () => writeListFile(path, lists), lists);
  }

  /** Append `bytes` to the file at `path`, durable (fsync) before this resolves. */
  appendDurably(path: string, bytes: Uint8Array): Promise<void> {
    return this.fileJob({ kind: 'append', id: 0, path, bytes }, () => appendInThread(path, bytes));
  }

  /**
   * Fetch the back office's snapshot and cut it into the list file, on the worker (blocking file I/O
   * on its idle-priority thread); in-thread in time slices without one, or if it dies on the way.
   */
  async installSnapshot(f: SnapshotFetch): Promise<SnapshotInstall> {
    if (this.workerUrl) {
      const w = this.ensureWorker();
      const r = await this.ask(w, (id) => ({ kind: 'install', id, fetch: f }) satisfies InstallRequest);
      if (r.kind === 'installed') {
        this.counters.fileJobsInWorker++;
        return r.outcome;
      }
      this.counters.workerFailures++;
    }
    this.counters.fileJobsInThread++;
    return fetchSnapshotFile(f, false);
  }

  /** A file job on the worker when there is one (its errors are the disk's: they reject); in-thread otherwise or if it died. */
  private async fileJob(req: FileRequest, inThread: () => Promise<void>, needs?: SegmentedLists): Promise<void> {
    if (this.workerUrl) {
      const w = this.ensureWorker();
      if (needs) await this.mirror(w, needs);
      const r = await this.ask(w, (id) => ({ ...req, id }));
      if (r.kind === 'file-done') {
        this.counters.fileJobsInWorker++;
        return;
      }
      if (r.kind === 'file-failed') throw Object.assign(new Error(r.detail), { code: r.code });
      this.counters.workerFailures++;
    }
    this.counters.fileJobsInThread++;
    await inThread();
  }

  /** One request, one reply (or 'failed' if the worker dies first). */
  private ask(w: Worker, request: (id: number) => FileRequest | InstallRequest): Promise<MergeReply> {
    const id = this.nextId++;
    return new Promise<MergeReply>((resolve) => {
      this.waiting.set(id, (reply) => {
        this.waiting.delete(id);
        resolve(reply);
      });
      w.postMessage(request(id));
    });
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    this.sparePort?.close();
    this.sparePort = undefined;
    if (w) await w.terminate();
  }

  private async inThread(old: SegmentedLists, deltas: Uint8Array, keys: readonly TrustedListKey[]): Promise<DeltaOutcome> {
    const v = await runSliced(verifyDeltasGen(deltas, keys, false), this.sliceMs);
    if (!v.ok) return { kind: 'rejected', error: v.error, detail: v.detail };
    if (v.value.length === 0) return { kind: 'empty' };
    const first = v.value[0].header, last = v.value[v.value.length - 1].header;
    if (first.fromVersion !== old.version) {
      return { kind: 'rejected', error: first.fromVersion < old.version ? 'replayed' : 'gap', detail: `delta starts at ${first.fromVersion}, gate is at ${old.version}` };
    }
    const cs = await runSliced(changeSetFromDeltasGen(v.value, 512, sharedBytes), this.sliceMs);
    if (!cs.ok) return { kind: 'rejected', error: cs.error, detail: cs.detail };
    const next = await runSliced(applyChangeSetGen(old, cs.value, { version: last.toVersion, publishedAtMs: last.publishedAtMs }), this.sliceMs);
    next.settled = runSliced(next.mergeOverlayGen(512, this.spares), this.sliceMs);
    return { kind: 'applied', next, from: old.version, to: last.toVersion, deltas: v.value.length };
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const { port1, port2 } = new MessageChannel();
    const w = new Worker(this.workerUrl!, { workerData: { sparePort: port2 }, transferList: [port2] });
    w.unref();
    port1.unref();
    this.sparePort = port1;
    w.on('message', (r: MergeReply) => {
      if (r.kind === 'hello') this.scheduling = r.scheduling;
      else this.waiting.get(r.id)?.(r);
    });
    const die = (why: string) => {
      if (this.worker === w) this.worker = undefined;
      this.mirrored = undefined;
      for (const [id, f] of this.waiting) f({ id, kind: 'failed', detail: why });
    };
    w.on('error', (e) => die(`worker error: ${e.message}`));
    w.on('exit', (code) => die(`worker exited (${code})`));
    this.worker = w;
    return w;
  }

  private async inWorker(old: SegmentedLists, deltas: Uint8Array, keys: readonly TrustedListKey[]): Promise<DeltaOutcome> {
    // Posted by reference from shared memory: a structured-clone copy of a 2.7 MB body took 1.5 ms
    // of the event loop. Bodies from list sync arrive shared already; others are copied in slices.
    const shared = deltas.buffer instanceof SharedArrayBuffer ? deltas : await toShared(deltas);
    const w = this.ensureWorker();
    await this.mirror(w, old);
    const id = this.nextId++;
    return await new Promise<DeltaOutcome>((resolve, reject) => {
      let next: SegmentedLists | undefined;
      let settle: { ok: () => void } | undefined;
      const end = () => this.waiting.delete(id);
      this.waiting.set(id, (r) => {
        switch (r.kind) {
          case 'rejected':
            end();
            return resolve({ kind: 'rejected', error: r.error, detail: r.detail });
          case 'empty':
            end();
            return resolve({ kind: 'empty' });
          case 'overlay': {
            const n = new SegmentedLists(r.to, r.publishedAtMs, old.segmentBits, old.segments.slice(), viewOf(r.overlay), r.entries, true);
            old.retireInto(n);
            next = n;
            n.settled = new Promise<void>((ok) => (settle = { ok }));
            return resolve({ kind: 'applied', next: n, from: r.from, to: r.to, deltas: r.deltas });
          }
          case 'segment': {
            if (!next) return;
            // No version reads the replaced buffer now (the old version answers through the new one).
            // (No Atomics.notify: that takes V8's process-wide futex mutex and signals the idle-priority
            // worker's condition variable, which can stall this thread; the worker polls instead.)
            this.sparePort?.postMessage(next.replaceSegment(r.s, r.bytes));
            return;
          }
          case 'done':
            end();
            for (const b of r.spares) this.spares.put(b);
            next?.finishMerge();
            // The worker now holds the new version's segments: the next delta sends none.
            if (this.worker === w) this.mirrored = next;
            settle?.ok();
            return;
          case 'failed':
            end();
            this.mirrored = undefined;
            if (!next) return reject(new Error(r.detail));
            // The new version is already served (overlay + segments): finish merging it here.
            this.counters.workerFailures++;
            void runSliced(next.mergeOverlayGen(512, this.spares), this.sliceMs).then(() => settle?.ok());
            return;
        }
      });
      const req: MergeRequest = { kind: 'merge', id, deltas: shared, keys, from: old.version, segmentBits: old.segmentBits, entries: old.size, spares: this.spares.takeAll() };
      w.postMessage(req);
    });
  }

  /** Make sure the worker holds `lists`' segments: nothing to do after its own merge, else sent 128 at a time between turns. */
  private async mirror(w: Worker, lists: SegmentedLists): Promise<void> {
    if (this.mirrored === lists) return;
    this.mirrored = undefined;
    const all = lists.segments;
    for (let at = 0; at < all.length; at += 128) {
      if (at > 0) await new Promise<void>((r) => setImmediate(r));
      const part = all.slice(at, at + 128).map((v) => v.bytes);
      w.postMessage({ kind: 'load', id: 0, version: lists.version, segments: part, last: at + 128 >= all.length } satisfies LoadRequest);
    }
    if (this.worker === w) this.mirrored = lists;
  }
}

/** A copy of `b` in shared memory, 64 kB between event-loop turns (first touches of new pages are slow: ~4 µs/kB measured). */
async function toShared(b: Uint8Array): Promise<Uint8Array> {
  const out = sharedBytes(b.byteLength);
  const piece = 1 << 16;
  for (let at = 0; at < b.byteLength; at += piece) {
    out.set(b.subarray(at, Math.min(b.byteLength, at + piece)), at);
    if (at + piece < b.byteLength) await new Promise<void>((r) => setImmediate(r));
  }
  return out;
}
