// Why this file is long: one sync round, in order — lists, then the signed documents that ride on it
// (issuer trust list, enforcement schedule), each with its failure rule; the stores it drives live apart.
// Keeps the gate's lists in step with the back office: polls over HTTP, fetches the deltas since its
// version (or the latest snapshot when it is too far behind or a delta is missing), verifies every
// byte before use, applies off the hot path (a worker thread: firmware/list-merger.ts), swaps what
// current() returns in one assignment (a reader sees old or new, never a mix), then persists the
// segmented list file atomically (write + fsync + rename; a crash leaves the old file).
// Every poll's answer must carry the back office's signed freshness statement for the poll's nonce
// (freshness.ts): the list age counts from it, and an answer without one is a failed round. Also fetches
// the issuer trust list, which is written to disk only once it verifies and is newer (issuer-keys.ts), the
// enforcement schedule (held-schedule.ts) and, at a fare gate, the fare table (held-fare-table.ts).
// Over http:// or https:// with a configured CA or pinned certificate (firmware/platform/https-client.ts).
//
// HTTP API (simulator/backoffice/openapi.yaml):
//   GET /v1/lists/deltas?since=N&max=M&nonce=H&freshness=2
//                                               200 concatenated deltas | 204 up to date | 410 chain not
//                                               held; each with the `list-freshness` statement (format 2:
//                                               it also names the schedule's and fare table's seqs)
//   GET /v1/lists/snapshot                      200 latest signed snapshot
//   GET /v1/issuer-keys                         200 trust-list document (ETag; If-None-Match → 304)
//   GET /v1/policy-schedule                     200 enforcement schedule document (ETag; If-None-Match → 304)
//   GET /v1/fare-table                          200 fare table document (ETag; If-None-Match → 304; 404/405: none)

import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FRESHNESS_FORMAT_PARAM, FRESHNESS_FORMAT_VERSION, FRESHNESS_HEADER } from '../../protocol/lists/index.js';
import { systemClock, type Clock } from '../../drivers/seams.js';
import { HttpClientError, httpRequest, type TlsTrust } from '../platform/https-client.js';
import type { ListSyncEvents, ListSyncOptions, SyncCounters, SyncOutcome, SyncStatus } from './sync-options.js';
import { DeltaLog } from './delta-log.js';
import { ListFreshness } from './freshness.js';
import { HeldTrustList } from './issuer-keys.js';
import { HeldSchedule, notPublished } from './held-schedule.js';
import { HeldFareTable } from './held-fare-table.js';
import { ListMerger } from './merger.js';
import { SegmentedLists, SpareSegments, emptySegmentedLists, openListFile } from './segmented-lists.js';
import type { ListAlarm, ListProvider, ListSnapshot, ListStats } from './list-provider.js';
import { silentLogger, type Logger } from '../config/log.js';

export type { ListSyncEvents, ListSyncOptions, SyncAlarm, SyncCounters, SyncOutcome, SyncStatus } from './sync-options.js';

class HttpFailure extends Error {
  constructor(
    message: string,
    /** The TLS error code when the back office's certificate was refused. */
    readonly tls?: string,
  ) {
    super(message);
  }
}

const LIST_FILE = 'lists.seg';
const DELTA_LOG_FILE = 'lists.deltas';
const DOWNLOAD_FILE = 'lists.download';

/** What the gate holds of a signed document the statement names. */
type HeldSeq = { readonly seq: number };

/**
 * ListProvider backed by the back office. Events (ListSyncEvents): 'alarm' (ListAlarm), 'sync-failed',
 * 'version' (ListSnapshot), 'issuer-keys' (Uint8Array). Never throws from polling: failures back off and are counted.
 */
export class ListSync extends EventEmitter<ListSyncEvents> implements ListProvider {
  private lists: SegmentedLists;
  private readonly o: Required<Omit<ListSyncOptions, 'log' | 'clock' | 'merger' | 'token' | 'tls' | 'issuerKeys' | 'policySchedule' | 'fareTable'>>;
  private readonly tls: TlsTrust | undefined;
  private readonly freshness: ListFreshness;
  private held: HeldTrustList | undefined;
  private heldSchedule: HeldSchedule | undefined;
  private heldFareTable: HeldFareTable | undefined;
  private tlsAlarmed = false;
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
  readonly counters: SyncCounters = {
    polls: 0, deltasApplied: 0, snapshotsApplied: 0, rejected: 0, httpFailures: 0, tlsFailures: 0, freshnessRefused: 0,
    issuerKeyUpdates: 0, issuerKeysRefused: 0, listFileWrites: 0, deltaLogAppends: 0, deltasReplayed: 0,
    scheduleUpdates: 0, schedulesRefused: 0, fareTableUpdates: 0, fareTablesRefused: 0,
  };
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
      alarmAfterFailures: 3,
      ...opts,
      url: opts.url.replace(/\/+$/, ''),
    };
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? silentLogger;
    this.lists = lists;
    this.merger = opts.merger ?? new ListMerger(undefined, this.o.sliceMs);
    this.auth = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
    this.tls = opts.tls;
    this.freshness = new ListFreshness(opts.trustedKeys);
  }

  /** The gate's segmented list file. */
  get snapshotPath(): string {
    return join(this.o.dir, LIST_FILE);
  }
  get issuerKeysPath(): string {
    return join(this.o.dir, 'issuer-keys.bin');
  }
  get policySchedulePath(): string {
    return join(this.o.dir, 'policy-schedule.json');
  }

  /**
   * Open the gate's list file (or start empty at version 0 when there is none or it is damaged) and the
   * stored issuer trust list. `onIssuerKeys`: as onIssuerKeys() (the held document at once, then each new one).
   */
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
    const dl = await DeltaLog.open(join(opts.dir, DELTA_LOG_FILE));
    s.deltaLog = dl.log;
    if (dl.torn > 0) log.warn({ bytes: dl.torn }, 'delta log ended in a torn delta (power cut mid-append); cut off');
    let trustProblem: string | undefined;
    if (opts.issuerKeys) {
      // Written only once verified, so its seq is the floor; verified again all the same (a damaged disk).
      const h = await HeldTrustList.open(s.issuerKeysPath, opts.issuerKeys.verify, opts.issuerKeys.provisionedSeq);
      s.held = h.held;
      trustProblem = h.problem;
      if (trustProblem) log.warn({ detail: trustProblem }, 'stored issuer trust list unusable');
    }
    if (onIssuerKeys) s.onIssuerKeys(onIssuerKeys);
    const schedule = opts.policySchedule && (await HeldSchedule.open(s.policySchedulePath, opts.trustedKeys, opts.policySchedule.provisionedSeq));
    s.heldSchedule = schedule ? schedule.held : undefined;
    const fares = opts.fareTable && (await HeldFareTable.open(opts.fareTable.path, opts.trustedKeys));
    s.heldFareTable = fares ? fares.held : undefined;
    // Served at once; the body checksum is checked in the background. A damaged file is dropped.
    // (After a turn of the event loop, so alarm listeners attached right after open() hear it.)
    const settle = new Promise<void>((r) => setImmediate(r));
    s.bootCheck = Promise.all([verified ?? Promise.resolve(damage ? { ok: false, detail: damage } : { ok: true }), settle]).then(async ([r]) => {
      const c = r as { ok: boolean; detail?: string };
      if (trustProblem) s.emit('alarm', { alarm: 'trust-list-rejected', detail: trustProblem });
      if (schedule && schedule.problem) s.emit('alarm', schedule.problem);
      if (fares && fares.problem) s.emit('alarm', fares.problem);
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

  /** The held trust-list document (stored, verified, newer than the provisioned one) at once, then each new one. */
  onIssuerKeys(listener: (document: Uint8Array) => void): () => void {
    this.on('issuer-keys', listener);
    if (this.held?.document) listener(this.held.document);
    return () => void this.off('issuer-keys', listener);
  }

  /** The held enforcement schedule (stored, verified, newer than the provisioned one) at once, then each new one. */
  onPolicySchedule(listener: (document: Uint8Array) => void): () => void {
    this.on('policy-schedule', listener);
    if (this.heldSchedule?.document) listener(this.heldSchedule.document);
    return () => void this.off('policy-schedule', listener);
  }

  /** The fare table held in the fare-table file (verified) at once, then each new one. */
  onFareTable(listener: (document: Uint8Array) => void): () => void {
    this.on('fare-table', listener);
    if (this.heldFareTable?.document) listener(this.heldFareTable.document);
    return () => void this.off('fare-table', listener);
  }

  /** The lane's fare-table file, when the fare table is synced. */
  get fareTablePath(): string | undefined {
    return this.heldFareTable?.path;
  }

  /** When the lists in use were last known to be the latest (ms since epoch; 0 before any): list age counts from here. */
  freshAtMs(): number {
    return this.freshness.freshAtMs(this.lists);
  }

  /** The seq of the issuer trust list held (stored or provisioned; -1: none; undefined: trust lists not synced). */
  get trustListSeq(): number | undefined {
    return this.held?.seq;
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
    const freshAtMs = this.freshAtMs();
    return {
      version: v,
      publishedAtMs: this.lists.publishedAtMs,
      freshAtMs,
      ageMs: v === 0 ? Infinity : Math.max(0, nowMs - freshAtMs),
      lastSuccessAtMs: this.lastSuccessAtMs,
      consecutiveFailures: this.failures,
      counters: { ...this.counters },
    };
  }

  /** No sync round running (a simulator's virtual clock waits for this before it moves on). */
  get idle(): boolean {
    return this.inFlight === undefined;
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
    let tls: string | undefined;
    try {
      outcome = await this.syncLists();
      if (outcome.kind !== 'failed') await this.syncIssuerKeys();
      if (outcome.kind !== 'failed') await this.syncPolicySchedule();
      if (outcome.kind !== 'failed') await this.syncFareTable();
      outcome = this.checkAnnounced(outcome);
    } catch (e) {
      const detail = (e as Error).message;
      if (e instanceof HttpFailure) {
        this.counters.httpFailures++;
        tls = e.tls;
        if (tls) this.counters.tlsFailures++;
      }
      outcome = { kind: 'failed', detail };
    }
    // The lists were current as of the statement when the gate now holds the version it announced, and
    // every document it names: a gate kept on an older schedule or fare table is not current, whatever its lists.
    if (this.missingAnnounced() === undefined) this.freshness.settle(this.lists.version);
    if (outcome.kind === 'failed' || outcome.kind === 'rejected') {
      this.failures++;
      this.emit('sync-failed', outcome.kind);
      this.log.warn({ outcome: outcome.kind, detail: outcome.detail, failures: this.failures }, 'list sync failed');
      const n = this.o.alarmAfterFailures;
      // A certificate refused is no passing outage: a misconfiguration or someone in the path. Raised at once.
      const tlsFirst = tls !== undefined && !this.tlsAlarmed;
      if (tlsFirst) this.tlsAlarmed = true;
      if (outcome.kind === 'failed' && (tlsFirst || this.failures === n || this.failures % 20 === 0)) {
        this.emit('alarm', { alarm: 'list-sync-failing', failures: this.failures, detail: `${this.failures} sync rounds failed: ${outcome.detail}` });
      }
    } else {
      this.failures = 0;
      this.tlsAlarmed = false;
      this.lastSuccessAtMs = this.clock.now();
    }
    return outcome;
  }

  /**
   * A round that brought nothing although the statement announces more (a path that dropped the deltas
   * but kept the statement), or a trust list, enforcement schedule or fare table announced and not held
   * (a path that blocks that one document, so a gate would stay on an older stage or older fares): failed.
   * A round that applied some deltas but not yet all (`maxDeltas` per poll) made progress and is no failure.
   */
  private checkAnnounced(outcome: SyncOutcome): SyncOutcome {
    const st = this.freshness.statement;
    if (!st || outcome.kind === 'failed' || outcome.kind === 'rejected') return outcome;
    if (outcome.kind === 'up-to-date' && this.lists.version < st.latestVersion) {
      return { kind: 'failed', detail: `the back office announces list version ${st.latestVersion}, the answer left the gate at ${this.lists.version}` };
    }
    const missing = this.missingAnnounced();
    return missing === undefined ? outcome : { kind: 'failed', detail: missing };
  }

  /** A document the last statement names that the gate does not hold (its seq is lower), said in words; undefined: none. */
  private missingAnnounced(): string | undefined {
    const st = this.freshness.statement;
    if (!st) return undefined;
    const behind: [string, HeldSeq | undefined, number][] = [
      ['issuer trust list', this.held, st.trustListSeq],
      ['enforcement schedule', this.heldSchedule, st.scheduleSeq],
      ['fare table', this.heldFareTable, st.fareTableSeq],
    ];
    for (const [what, held, announced] of behind) {
      if (held && announced > 0 && held.seq < announced) return `the back office announces ${what} seq ${announced}, the gate holds ${held.seq}`;
    }
    return undefined;
  }

  private async syncLists(): Promise<SyncOutcome> {
    const from = this.lists.version;
    const nonce = this.freshness.nonce();
    // Read straight into shared memory: the merge worker then gets the body without a copy.
    const r = await this.get(`/v1/lists/deltas?since=${from}&max=${this.o.maxDeltas}&nonce=${nonce.hex}&${FRESHNESS_FORMAT_PARAM}=${FRESHNESS_FORMAT_VERSION}`, {}, true);
    // Whatever the status, the answer must carry a good statement for this poll: nothing else is believed.
    const f = this.freshness.take(r.headers[FRESHNESS_HEADER], nonce.bytes);
    if (!f.ok) {
      this.counters.freshnessRefused++;
      return { kind: 'failed', detail: `HTTP ${r.status} without a good freshness statement (${f.error}): ${f.detail}` };
    }
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
      tls: this.tls,
      timeoutMs: this.o.snapshotTimeoutMs,
      maxBytes: this.o.maxResponseBytes,
      keys: this.o.trustedKeys,
      download: join(this.o.dir, DOWNLOAD_FILE),
      dest: this.snapshotPath,
      fromVersion: from,
    });
    switch (got.kind) {
      case 'http-failed':
        throw new HttpFailure(got.detail, got.tls);
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
    const held = this.held;
    if (!held) return;
    const r = await this.get('/v1/issuer-keys', this.issuerEtag ? { 'if-none-match': this.issuerEtag } : {});
    if (r.status === 304 || notPublished(r.status)) return;
    if (r.status !== 200) throw new HttpFailure(`issuer keys: HTTP ${r.status}`);
    // Verified and newer, or refused; written (write + fsync + rename) before it is handed on.
    const got = await held.offer(r.body);
    this.issuerEtag = typeof r.headers.etag === 'string' ? r.headers.etag : undefined;
    if (got.kind === 'same') return;
    if (got.kind === 'refused') {
      this.counters.issuerKeysRefused++;
      this.log.error({ detail: got.detail }, 'issuer trust list refused; keeping the one held');
      this.emit('alarm', { alarm: 'trust-list-rejected', detail: got.detail });
      return;
    }
    if (!got.written) this.emit('alarm', { alarm: 'list-write-failed', file: held.path, detail: got.writeError ?? 'write failed' });
    this.counters.issuerKeyUpdates++;
    this.emit('issuer-keys', r.body);
  }

  /** The enforcement schedule: verified, newer than the one held, written, then handed on; else refused with an alarm. */
  private async syncPolicySchedule(): Promise<void> {
    const got = await this.heldSchedule?.fetch((h) => this.get('/v1/policy-schedule', h));
    if (got?.kind === 'http') throw new HttpFailure(`policy schedule: HTTP ${got.status}`);
    if (got?.kind === 'refused') {
      this.counters.schedulesRefused++;
      this.emit('alarm', got.alarm);
    } else if (got?.kind === 'taken') {
      if (!got.written) this.emit('alarm', { alarm: 'list-write-failed', file: this.policySchedulePath, detail: got.writeError ?? 'write failed' });
      this.counters.scheduleUpdates++;
      this.emit('policy-schedule', got.document);
    }
  }

  /** The fare table: verified, not lower than the one held, written, then handed on; else refused with an alarm. */
  private async syncFareTable(): Promise<void> {
    const held = this.heldFareTable;
    const got = await held?.fetch((h) => this.get('/v1/fare-table', h));
    if (got?.kind === 'http') throw new HttpFailure(`fare table: HTTP ${got.status}`);
    if (got?.kind === 'refused') {
      this.counters.fareTablesRefused++;
      this.log.error({ detail: got.alarm.detail }, 'fare table refused; keeping the one held');
      this.emit('alarm', got.alarm);
    } else if (got?.kind === 'taken') {
      if (!got.written) this.emit('alarm', { alarm: 'list-write-failed', file: held!.path, detail: got.writeError ?? 'write failed' });
      this.counters.fareTableUpdates++;
      this.emit('fare-table', got.document);
    }
  }

  private async get(path: string, headers: Record<string, string> = {}, shared = false): Promise<{ status: number; body: Uint8Array; headers: Record<string, string | string[] | undefined> }> {
    try {
      return await httpRequest(this.o.url + path, { headers: { ...this.auth, ...headers }, timeoutMs: this.o.timeoutMs, maxBytes: this.o.maxResponseBytes, shared, tls: this.tls });
    } catch (e) {
      const tls = e instanceof HttpClientError && e.kind === 'tls' ? (e.code ?? 'TLS') : undefined;
      throw new HttpFailure(`GET ${path}: ${(e as Error).message}`, tls);
    }
  }
}
