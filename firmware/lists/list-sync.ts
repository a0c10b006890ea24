// Keeps the gate's lists in step with the back office: polls over HTTP, fetches the deltas since its
// version (or the latest snapshot when it is too far behind or a delta is missing), verifies every
// byte before use, applies off the hot path (a worker thread: firmware/list-merger.ts), swaps what
// current() returns in one assignment (a reader sees old or new, never a mix), then persists the
// segmented list file atomically (write + fsync + rename; a crash leaves the old file).
// Also fetches the issuer trust-list document (opaque signed bytes) and hands it on.
//
// HTTP API (simulator/backoffice/openapi.yaml):
//   GET /v1/lists/deltas?since=N&max=M  200 concatenated deltas | 204 up to date | 410 chain not held
//   GET /v1/lists/snapshot              200 latest signed snapshot
//   GET /v1/issuer-keys                 200 trust-list document (ETag; If-None-Match → 304)

import { EventEmitter } from 'node:events';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TrustedListKey } from '../../protocol/lists/index.js';
import { systemClock, type Clock } from '../../drivers/seams.js';
import { writeFileAtomic } from './stored-lists.js';
import { DeltaLog } from './delta-log.js';
import { ListMerger } from './merger.js';
import { SegmentedLists, SpareSegments, emptySegmentedLists, openListFile } from './segmented-lists.js';
import type { ListAlarm, ListProvider, ListSnapshot, ListStats } from './list-provider.js';
import { silentLogger, type Logger } from '../config/log.js';

export interface ListSyncOptions {
  /** Back-office base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  /** Where the gate keeps its list file (lists.snap) and the issuer trust list (issuer-keys.bin). */
  dir: string;
  /** Back-office list signing keys the gate trusts. */
  trustedKeys: readonly TrustedListKey[];
  /** Bearer token for the back office (role `gate`), when it asks for one. */
  token?: string;
  pollMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Per request (headers and whole body). */
  timeoutMs?: number;
  /** For the snapshot download (hundreds of MB at metro scale). */
  snapshotTimeoutMs?: number;
  /** Deltas fetched per request before applying. */
  maxDeltas?: number;
  /** Largest response accepted (a snapshot of 50 M entries is about 500 MB). */
  maxResponseBytes?: number;
  /** Longest uninterrupted slice of apply work on the event loop. */
  sliceMs?: number;
  /** Where deltas are merged: the default (a worker thread when compiled), or a given merger (tests). */
  merger?: ListMerger;
  /**
   * Applied deltas are appended to a log beside the list file, which is rewritten only once the log
   * holds this many changes or bytes (the list file of a 50 M list is 620 MB: flash wears out).
   */
  logMaxChanges?: number;
  logMaxBytes?: number;
  clock?: Clock;
  log?: Logger;
}

export type SyncAlarm = ListAlarm['alarm'];

/** ListSync's events, typed. */
export interface ListSyncEvents {
  alarm: [alarm: ListAlarm];
  'sync-failed': [kind: 'failed' | 'rejected'];
  /** A new version is served. */
  version: [snapshot: ListSnapshot];
  /** A new issuer trust-list document (opaque signed bytes). */
  'issuer-keys': [document: Uint8Array];
}

export interface SyncStatus {
  version: number;
  publishedAtMs: number;
  /** ms since the back office published the version in use (Infinity before the first sync). */
  ageMs: number;
  lastSuccessAtMs: number | undefined;
  consecutiveFailures: number;
  counters: { polls: number; deltasApplied: number; snapshotsApplied: number; rejected: number; httpFailures: number; issuerKeyUpdates: number; listFileWrites: number; deltaLogAppends: number; deltasReplayed: number };
}

export type SyncOutcome =
  | { kind: 'up-to-date'; version: number }
  | { kind: 'applied'; via: 'deltas' | 'snapshot'; from: number; to: number }
  | { kind: 'rejected'; error: string; detail: string }
  | { kind: 'failed'; detail: string };

class HttpFailure extends Error {}

const LIST_FILE = 'lists.seg';
const DELTA_LOG_FILE = 'lists.deltas';
const DOWNLOAD_FILE = 'lists.download';

/**
 * ListProvider backed by the back office. Events (ListSyncEvents): 'alarm' (ListAlarm), 'sync-failed',
 * 'version' (ListSnapshot), 'issuer-keys' (Uint8Array). Never throws from polling: failures back off and are counted.
 */
export class ListSync extends EventEmitter<ListSyncEvents> implements ListProvider {
  private lists: SegmentedLists;
  private readonly o: Required<Omit<ListSyncOptions, 'log' | 'clock' | 'merger' | 'token'>>;
  private readonly auth: Record<string, string>;
  readonly merger: ListMerger;
  private readonly clock: Clock;
  private readonly log: Logger;
  private timer: unknown;
  private running = false;
  private inFlight: Promise<SyncOutcome> | undefined;
  private issuerEtag: string | undefined;
  private lastSuccessAtMs: number | undefined;
  private failures = 0;
  readonly counters = { polls: 0, deltasApplied: 0, snapshotsApplied: 0, rejected: 0, httpFailures: 0, issuerKeyUpdates: 0, listFileWrites: 0, deltaLogAppends: 0, deltasReplayed: 0 };
  private deltaLog!: DeltaLog;
  /** Resolves once the list file loaded at boot has been checksummed (false: it was damaged and dropped). */
  bootCheck: Promise<boolean> = Promise.resolve(true);

  private constructor(opts: ListSyncOptions, lists: SegmentedLists) {
    super();
    this.o = {
      pollMs: 30_000,
      minBackoffMs: 1000,
      maxBackoffMs: 300_000,
      timeoutMs: 30_000,
      snapshotTimeoutMs: 900_000,
      maxDeltas: 100,
      maxResponseBytes: 1 << 30,
      sliceMs: 0.5,
      logMaxChanges: 500_000,
      logMaxBytes: 64 << 20,
      ...opts,
      url: opts.url.replace(/\/+$/, ''),
    };
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? silentLogger;
    this.lists = lists;
    this.merger = opts.merger ?? new ListMerger(undefined, this.o.sliceMs);
    this.auth = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  }

  /** The gate's segmented list file. */
  get snapshotPath(): string {
    return join(this.o.dir, LIST_FILE);
  }
  get issuerKeysPath(): string {
    return join(this.o.dir, 'issuer-keys.bin');
  }

  /** Open the gate's list file (or start empty at version 0 when there is none or it is damaged). */
  static async open(opts: ListSyncOptions, onIssuerKeys?: (bytes: Uint8Array) => void): Promise<ListSync> {
    await mkdir(opts.dir, { recursive: true });
    const log = opts.log ?? silentLogger;
    let lists: SegmentedLists;
    let verified: Promise<unknown> | undefined;
    let damage: string | undefined;
    try {
      const f = await openListFile(join(opts.dir, LIST_FILE), opts.sliceMs ?? 0.5);
      lists = f.lists;
      verified = f.verified;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        damage = (e as Error).message;
        log.error({ err: damage }, 'list file unusable; starting empty until the next sync');
      }
      lists = emptySegmentedLists();
    }
    const s = new ListSync(opts, lists);
    // Called with the document on disk now, and with each new one (as an 'issuer-keys' listener).
    if (onIssuerKeys) s.on('issuer-keys', onIssuerKeys);
    const dl = await DeltaLog.open(join(opts.dir, DELTA_LOG_FILE));
    s.deltaLog = dl.log;
    if (dl.torn > 0) log.warn({ bytes: dl.torn }, 'delta log ended in a torn delta (power cut mid-append); cut off');
    try {
      const keys = await readFile(s.issuerKeysPath);
      onIssuerKeys?.(new Uint8Array(keys));
    } catch {
      // none yet
    }
    // Served at once; the body checksum is checked in the background. A damaged file is dropped.
    // (After a turn of the event loop, so alarm listeners attached right after open() hear it.)
    const settle = new Promise<void>((r) => setImmediate(r));
    s.bootCheck = Promise.all([verified ?? Promise.resolve(damage ? { ok: false, detail: damage } : { ok: true }), settle]).then(async ([r]) => {
      const c = r as { ok: boolean; detail?: string };
      if (c.ok) {
        await s.replayLog(dl.held);
        return true;
      }
      if (s.lists === lists) s.lists = emptySegmentedLists();
      await s.deltaLog.reset().catch(() => {});
      s.emit('alarm', { alarm: 'list-rejected', file: s.snapshotPath, detail: `list file on disk is damaged (${c.detail}); dropped, resyncing` });
      return false;
    });
    return s;
  }

  current(): ListSnapshot {
    return this.lists;
  }

  onAlarm(listener: (alarm: ListAlarm) => void): () => void {
    this.on('alarm', listener);
    return () => void this.off('alarm', listener);
  }

  onSyncFailed(listener: (kind: 'failed' | 'rejected') => void): () => void {
    this.on('sync-failed', listener);
    return () => void this.off('sync-failed', listener);
  }

  onIssuerKeys(listener: (document: Uint8Array) => void): () => void {
    this.on('issuer-keys', listener);
    return () => void this.off('issuer-keys', listener);
  }

  stats(): ListStats {
    const c = this.counters;
    return { consecutiveFailures: this.failures, polls: c.polls, deltasApplied: c.deltasApplied, snapshotsApplied: c.snapshotsApplied, rejected: c.rejected, httpFailures: c.httpFailures };
  }

  /** Re-apply the deltas logged since the list file was written (verified like any delta). */
  private async replayLog(held: Uint8Array): Promise<void> {
    const cur = this.lists;
    const d = DeltaLog.after(held, cur.version);
    if (d.count === 0) return;
    if (d.gap) {
      this.log.warn({ version: cur.version }, 'delta log does not follow the list file; dropped');
      await this.deltaLog.reset().catch(() => {});
      return;
    }
    const out = await this.merger.applyDeltas(cur, d.bytes, this.o.trustedKeys);
    if (out.kind === 'applied') {
      if (this.lists === cur) this.swap(out.next);
      this.counters.deltasReplayed += out.deltas;
      return;
    }
    if (out.kind === 'rejected') {
      await this.deltaLog.reset().catch(() => {});
      this.counters.rejected++;
      this.emit('alarm', { alarm: 'list-rejected', error: out.error, file: this.deltaLog.path, detail: `delta log on disk refused (${out.error}: ${out.detail}); dropped, resyncing` });
    }
  }

  status(nowMs = this.clock.now()): SyncStatus {
    const v = this.lists.version;
    return {
      version: v,
      publishedAtMs: this.lists.publishedAtMs,
      ageMs: v === 0 ? Infinity : Math.max(0, nowMs - this.lists.publishedAtMs),
      lastSuccessAtMs: this.lastSuccessAtMs,
      consecutiveFailures: this.failures,
      counters: { ...this.counters },
    };
  }

  /** Start polling (first poll at once). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.merger.warm();
    this.schedule(0);
  }

  /** Stop polling and wait for a round in flight (and its merge worker). */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight?.catch(() => {});
    await this.merger.close();
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      void this.syncOnce().then((r) => {
        const failed = r.kind === 'failed' || r.kind === 'rejected';
        this.schedule(failed ? this.backoffMs() : this.o.pollMs);
      });
    }, ms);
    (this.timer as { unref?: () => void })?.unref?.();
  }

  /** Exponential backoff with jitter, from minBackoffMs up to maxBackoffMs. */
  private backoffMs(): number {
    const base = Math.min(this.o.maxBackoffMs, this.o.minBackoffMs * 2 ** Math.min(20, this.failures - 1));
    return Math.round(base * (0.75 + Math.random() * 0.5));
  }

  /** One sync round: lists then issuer keys. Concurrent callers share the round in flight. */
  syncOnce(): Promise<SyncOutcome> {
    this.inFlight ??= this.round().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async round(): Promise<SyncOutcome> {
    await this.bootCheck;
    this.counters.polls++;
    let outcome: SyncOutcome;
    try {
      outcome = await this.syncLists();
      await this.syncIssuerKeys();
    } catch (e) {
      const detail = (e as Error).message;
      if (e instanceof HttpFailure) this.counters.httpFailures++;
      outcome = { kind: 'failed', detail };
    }
    if (outcome.kind === 'failed' || outcome.kind === 'rejected') {
      this.failures++;
      this.emit('sync-failed', outcome.kind);
      this.log.warn({ outcome: outcome.kind, detail: outcome.detail, failures: this.failures }, 'list sync failed');
      if (outcome.kind === 'failed' && (this.failures === 3 || this.failures % 20 === 0)) {
        this.emit('alarm', { alarm: 'list-sync-failing', failures: this.failures, detail: `${this.failures} sync rounds failed: ${outcome.detail}` });
      }
    } else {
      this.failures = 0;
      this.lastSuccessAtMs = this.clock.now();
    }
    return outcome;
  }

  private async syncLists(): Promise<SyncOutcome> {
    const from = this.lists.version;
    // Read straight into shared memory: the merge worker then gets the body without a copy.
    const r = await this.get(`/v1/lists/deltas?since=${from}&max=${this.o.maxDeltas}`, {}, true);
    if (r.status === 204) return { kind: 'up-to-date', version: from };
    if (r.status === 410 || r.status === 404 || r.status === 409 || from === 0) return this.syncSnapshot(from);
    if (r.status !== 200) throw new HttpFailure(`deltas: HTTP ${r.status}`);
    const d = await this.merger.applyDeltas(this.lists, r.body, this.o.trustedKeys);
    if (d.kind === 'rejected') return this.reject(d.error, d.detail);
    if (d.kind === 'empty') return { kind: 'up-to-date', version: from };
    // Served from here on; the segments catch up in the background. Persisted by appending the
    // deltas to the log, or, when the log is full, by writing the whole list file.
    this.swap(d.next);
    this.counters.deltasApplied += d.deltas;
    if (!(await this.persist(d.next, { bytes: r.body, changes: DeltaLog.after(r.body, from).changes }))) return { kind: 'failed', detail: 'list write failed' };
    return { kind: 'applied', via: 'deltas', from, to: d.to };
  }

  private async syncSnapshot(from: number): Promise<SyncOutcome> {
    // Streamed to a file beside the list file, never held whole in memory (a 50 M list is 620 MB), and
    // cut into the segmented list file: on the merge worker's thread, so the lane's loop does none of it.
    await this.lists.settled;
    const got = await this.merger.installSnapshot({
      url: `${this.o.url}/v1/lists/snapshot`,
      headers: this.auth,
      timeoutMs: this.o.snapshotTimeoutMs,
      maxBytes: this.o.maxResponseBytes,
      keys: this.o.trustedKeys,
      download: join(this.o.dir, DOWNLOAD_FILE),
      dest: this.snapshotPath,
      fromVersion: from,
    });
    switch (got.kind) {
      case 'http-failed':
        throw new HttpFailure(got.detail);
      case 'rejected':
        return this.reject(got.error, got.detail);
      case 'up-to-date':
        return { kind: 'up-to-date', version: from };
      case 'write-failed':
        this.emit('alarm', { alarm: 'list-write-failed', file: this.snapshotPath, detail: got.detail });
        return { kind: 'failed', detail: 'list write failed' };
    }
    this.counters.listFileWrites++;
    // The new list file holds everything: the delta log is of no more use.
    await this.deltaLog.reset().catch(() => {});
    // Serve the new file at once, read into the buffers of the list it replaces (which from now on
    // answers as the new one): never two lists in memory.
    const old = this.lists;
    const spares = new SpareSegments(Infinity);
    let opened: Awaited<ReturnType<typeof openListFile>>;
    try {
      opened = await openListFile(this.snapshotPath, this.o.sliceMs, spares);
    } catch (e) {
      this.emit('alarm', { alarm: 'list-write-failed', file: this.snapshotPath, detail: `written but unreadable: ${(e as Error).message}` });
      return { kind: 'failed', detail: 'list write failed' };
    }
    old.retireInto(opened.lists);
    for (const v of old.segments) spares.put(v.bytes);
    this.swap(opened.lists);
    this.counters.snapshotsApplied++;
    const v = await opened.verified;
    if (!v.ok) {
      // Written by us a moment ago and damaged already: a failing disk. Serve nothing rather than guess.
      if (this.lists === opened.lists) this.swap(emptySegmentedLists());
      this.emit('alarm', { alarm: 'list-write-failed', file: this.snapshotPath, detail: `damaged right after writing (${v.detail})` });
      return { kind: 'failed', detail: 'list write failed' };
    }
    return { kind: 'applied', via: 'snapshot', from, to: opened.lists.version };
  }

  private async persist(next: SegmentedLists, deltas?: { bytes: Uint8Array; changes: number }): Promise<boolean> {
    const log = this.deltaLog;
    if (deltas && log.changes + deltas.changes <= this.o.logMaxChanges && log.bytes + deltas.bytes.byteLength <= this.o.logMaxBytes) {
      try {
        await log.append(deltas.bytes, deltas.changes, (path, bytes) => this.merger.appendDurably(path, bytes));
        this.counters.deltaLogAppends++;
        return true;
      } catch (e) {
        this.emit('alarm', { alarm: 'list-write-failed', file: log.path, detail: (e as Error).message });
        return false;
      }
    }
    try {
      await this.merger.writeListFile(this.snapshotPath, next);
      this.counters.listFileWrites++;
      // The list file now holds everything the log held (a crash before this reset: replay skips them).
      await log.reset();
      return true;
    } catch (e) {
      this.emit('alarm', { alarm: 'list-write-failed', file: this.snapshotPath, detail: (e as Error).message });
      return false;
    }
  }

  private swap(next: SegmentedLists): void {
    const from = this.lists.version;
    this.lists = next;
    this.log.info({ from, to: next.version, entries: next.allowlist.size }, 'lists updated');
    this.emit('version', next);
  }

  private reject(error: string, detail: string): SyncOutcome {
    this.counters.rejected++;
    this.log.error({ error, detail }, 'list update rejected; keeping the current list');
    this.emit('alarm', { alarm: 'list-rejected', error, detail });
    return { kind: 'rejected', error, detail };
  }

  private async syncIssuerKeys(): Promise<void> {
    const r = await this.get('/v1/issuer-keys', this.issuerEtag ? { 'if-none-match': this.issuerEtag } : {});
    if (r.status === 304 || r.status === 404) return;
    if (r.status !== 200) throw new HttpFailure(`issuer keys: HTTP ${r.status}`);
    this.issuerEtag = r.etag;
    try {
      await writeFileAtomic(this.issuerKeysPath, r.body);
    } catch (e) {
      this.emit('alarm', { alarm: 'list-write-failed', file: this.issuerKeysPath, detail: (e as Error).message });
    }
    this.counters.issuerKeyUpdates++;
    // The document carries its own signature; its reader (protocol/trust-list.ts) verifies it.
    this.emit('issuer-keys', r.body);
  }

  private async get(path: string, headers: Record<string, string> = {}, shared = false): Promise<{ status: number; body: Uint8Array; etag?: string }> {
    let res: Response;
    const signal = AbortSignal.timeout(this.o.timeoutMs);
    try {
      res = await fetch(this.o.url + path, { headers: { ...this.auth, ...headers }, signal });
    } catch (e) {
      throw new HttpFailure(`GET ${path}: ${(e as Error).message}`);
    }
    const len = Number(res.headers.get('content-length') ?? '0');
    if (len > this.o.maxResponseBytes) {
      await res.body?.cancel().catch(() => {});
      throw new HttpFailure(`GET ${path}: ${len} bytes exceeds the limit`);
    }
    let body: Uint8Array;
    try {
      body = await readBody(res, this.o.maxResponseBytes, shared);
    } catch (e) {
      throw new HttpFailure(`GET ${path}: body: ${(e as Error).message}`);
    }
    if (res.headers.has('content-length') && body.byteLength !== len) throw new HttpFailure(`GET ${path}: body cut at ${body.byteLength} of ${len} bytes`);
    return { status: res.status, body, etag: res.headers.get('etag') ?? undefined };
  }
}

/** Read a body into one 8-aligned buffer (shared memory if asked), refusing more than `max` bytes. */
async function readBody(res: Response, max: number, shared = false): Promise<Uint8Array> {
  const alloc = (n: number) => new Uint8Array(shared ? new SharedArrayBuffer(n) : new ArrayBuffer(n));
  if (!res.body) return new Uint8Array(0);
  const len = Number(res.headers.get('content-length') ?? NaN);
  const chunks: Uint8Array[] = [];
  let total = 0;
  let out = Number.isFinite(len) ? alloc(len) : undefined;
  for await (const c of res.body) {
    if (total + c.byteLength > max) throw new Error(`more than ${max} bytes`);
    if (out && total + c.byteLength <= out.byteLength) out.set(c, total);
    else {
      // More than content-length said: fall back to collecting (the length check then fails the read).
      if (out) chunks.push(out.subarray(0, total));
      out = undefined;
      chunks.push(c);
    }
    total += c.byteLength;
  }
  if (out && total === out.byteLength) return out;
  if (out) return out.subarray(0, total);
  const b = alloc(total);
  let p = 0;
  for (const c of chunks) {
    b.set(c, p);
    p += c.byteLength;
  }
  return b;
}
