// The journal on disk: every record checksummed, durable (fdatasync) before append() resolves, many
// appends sharing one fsync (group commit), recovered after kill -9 or power loss (a torn or garbage
// tail is cut off, never replayed), uploaded to the back office in batches keyed by lane id + seq
// (retries never duplicate), and trimmed once uploaded. Record layout: protocol/README.md, "Journal records".
//
// Disk full (or the configured quota reached): append() rejects with JournalUnavailableError (a GateError,
// code journal-unavailable) and a journal-disk-full alarm is raised. The lane must then not act on an entry decision (refuse with journal-unavailable);
// an exit is opened anyway (a status may never trap a rider inside) and counted as unjournaled.

import { EventEmitter } from 'node:events';
import { mkdir, open, readdir, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeJournalRecords, encodeJournalRecord } from '../../protocol/journal-record.js';
import { GateError, GateErrorCode } from '../../protocol/errors.js';
import { syncDir, writeFileAtomic } from '../platform/atomic-file.js';
import { httpRequest, type TlsTrust } from '../platform/https-client.js';
import type { Journal, JournalAlarm, JournalEntry, JournalRecord, JournalStats } from './journal.js';
import type { Logger } from '../config/log.js';

export interface FileJournalOptions {
  dir: string;
  laneId: string;
  /** Back-office base URL; without it records are kept until an uploader is configured. */
  uploadUrl?: string;
  /** Bearer token for the back office (role `gate`), when it asks for one. */
  uploadToken?: string;
  /** For an https uploadUrl: the CA and/or pinned certificate the back office must show. */
  uploadTls?: TlsTrust;
  /** Start a new segment file beyond this size. */
  segmentBytes?: number;
  /** Refuse appends once the journal's files reach this many bytes (keeps room for the OS). */
  maxBytes?: number;
  uploadBatch?: number;
  uploadIntervalMs?: number;
  uploadTimeoutMs?: number;
  maxBackoffMs?: number;
  /** Unacknowledged records kept in memory for upload; beyond this they are read back from disk. */
  memoryRecords?: number;
  log?: Logger;
}

/** Why the journal cannot make a record durable. */
export type JournalUnavailableReason = 'disk-full' | 'io-error' | 'closed';

/**
 * append() rejected: a GateError with code GateErrorCode.JournalUnavailable (branch on
 * `isGateError(e, GateErrorCode.JournalUnavailable)`); `reason` (also in `context`) says why.
 */
export class JournalUnavailableError extends GateError {
  constructor(
    readonly reason: JournalUnavailableReason,
    message: string,
    context: Record<string, unknown> = {},
  ) {
    super(message, GateErrorCode.JournalUnavailable, { reason, ...context });
    this.name = 'JournalUnavailableError';
  }
}

/** The file journal's events, typed. */
export interface FileJournalEvents {
  alarm: [alarm: JournalAlarm];
  /** The back office acknowledged every record up to this seq. */
  uploaded: [throughSeq: number];
  /** One group-commit fsync, in milliseconds. */
  fsync: [ms: number];
}

/** The logger methods the journal uses (pino's Logger has them; the default is silent). */
type JournalLog = Pick<Logger, 'warn' | 'error' | 'info' | 'debug'>;

interface Pending {
  bytes: Uint8Array;
  entry: JournalEntry;
  seq: number;
  resolve: (seq: number) => void;
  reject: (e: Error) => void;
  atMs: number;
}

interface Segment {
  firstSeq: number;
  lastSeq: number; // firstSeq - 1 when empty
  path: string;
  bytes: number;
}

const SEG = /^seg-(\d{16})\.jnl$/;
const segName = (firstSeq: number) => `seg-${String(firstSeq).padStart(16, '0')}.jnl`;

export interface JournalCounters {
  appended: number;
  fsyncs: number;
  fsyncMsTotal: number;
  fsyncMsMax: number;
  lastFsyncMs: number;
  uploaded: number;
  uploadBatches: number;
  uploadFailures: number;
  rejectedAppends: number;
  tornTailsDropped: number;
  bytesDropped: number;
}

/** A Journal on disk. Events (FileJournalEvents): 'alarm' (JournalAlarm), 'uploaded' (throughSeq), 'fsync' (ms). */
export class FileJournal extends EventEmitter<FileJournalEvents> implements Journal {
  private readonly o: Required<Omit<FileJournalOptions, 'uploadUrl' | 'uploadToken' | 'uploadTls' | 'log'>> & { uploadUrl?: string; uploadToken?: string; uploadTls?: TlsTrust };
  private readonly log: JournalLog;
  private segments: Segment[] = [];
  private fh: FileHandle | undefined;
  private nextSeq = 1;
  private uploadedThrough = 0;
  private totalBytes = 0;
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;
  /** Durable records not yet acknowledged by the back office (oldest first), at most `memoryRecords` of them. */
  private unsent: JournalRecord[] = [];
  /** More unacknowledged records are on disk than in `unsent` (a long back-office outage): reload from the segments. */
  private spilled = false;
  private backlogCount = 0;
  private uploadTimer: NodeJS.Timeout | undefined;
  private uploading: Promise<void> | undefined;
  /** Upload rounds run one after another (a timer round and uploadNow() never send side by side). */
  private uploadChain: Promise<unknown> = Promise.resolve();
  private uploadFailuresInRow = 0;
  private diskFull = false;
  readonly counters: JournalCounters = {
    appended: 0, fsyncs: 0, fsyncMsTotal: 0, fsyncMsMax: 0, lastFsyncMs: 0,
    uploaded: 0, uploadBatches: 0, uploadFailures: 0, rejectedAppends: 0, tornTailsDropped: 0, bytesDropped: 0,
  };

  private constructor(opts: FileJournalOptions) {
    super();
    this.o = {
      segmentBytes: 4 << 20,
      maxBytes: 1 << 30,
      uploadBatch: 500,
      uploadIntervalMs: 1000,
      uploadTimeoutMs: 10_000,
      maxBackoffMs: 60_000,
      memoryRecords: 50_000,
      ...opts,
    };
    // No logger given: stay quiet (and keep pino out of processes that only journal).
    this.log = opts.log ?? quietLog;
  }

  /** Open (and recover) the journal in `dir`; starts uploading when uploadUrl is set. */
  static async open(opts: FileJournalOptions): Promise<FileJournal> {
    const j = new FileJournal(opts);
    await j.recover();
    if (opts.uploadUrl) j.scheduleUpload(j.o.uploadIntervalMs);
    return j;
  }

  onAlarm(listener: (alarm: JournalAlarm) => void): () => void {
    this.on('alarm', listener);
    return () => void this.off('alarm', listener);
  }

  onFsync(listener: (ms: number) => void): () => void {
    this.on('fsync', listener);
    return () => void this.off('fsync', listener);
  }

  stats(): JournalStats {
    const c = this.counters;
    return { backlog: this.backlogCount, appended: c.appended, fsyncs: c.fsyncs, rejectedAppends: c.rejectedAppends, uploaded: c.uploaded, uploadFailures: c.uploadFailures };
  }

  /** Durable records the back office has not acknowledged yet. */
  get backlog(): number {
    return this.backlogCount;
  }
  get lastSeq(): number {
    return this.nextSeq - 1;
  }
  get uploadedSeq(): number {
    return this.uploadedThrough;
  }
  get segmentCount(): number {
    return this.segments.length;
  }

  private get statePath(): string {
    return join(this.o.dir, 'uploaded.json');
  }

  private async recover(): Promise<void> {
    await mkdir(this.o.dir, { recursive: true });
    try {
      const st = JSON.parse(await readFile(this.statePath, 'utf8')) as { laneId?: string; uploadedThrough?: number };
      if (typeof st.uploadedThrough === 'number' && Number.isSafeInteger(st.uploadedThrough)) this.uploadedThrough = st.uploadedThrough;
    } catch {
      // no state yet (or torn by a crash before its rename: the older state is simply re-uploaded; the back office dedupes)
    }
    const names = (await readdir(this.o.dir)).filter((n) => SEG.test(n)).sort();
    for (let i = 0; i < names.length; i++) {
      const name = names[i];
      const path = join(this.o.dir, name);
      const firstSeq = Number(SEG.exec(name)![1]);
      const bytes = new Uint8Array(await readFile(path));
      const r = decodeJournalRecords(bytes);
      let goodBytes = r.goodBytes;
      let reason: string | undefined = r.reason;
      let lastSeq = firstSeq - 1;
      for (const rec of r.records) {
        // Sequence numbers run on without gaps inside a segment; anything else is damage and ends the good part.
        if (rec.seq !== lastSeq + 1) {
          goodBytes = rec.offset;
          reason = `sequence ${rec.seq} after ${lastSeq}`;
          break;
        }
        lastSeq = rec.seq;
        if (rec.seq > this.uploadedThrough) {
          this.backlogCount++;
          if (this.unsent.length < this.o.memoryRecords) this.unsent.push({ seq: rec.seq, entry: rec.entry as JournalEntry });
          else this.spilled = true;
        }
      }
      if (goodBytes < bytes.byteLength) {
        const dropped = bytes.byteLength - goodBytes;
        this.counters.tornTailsDropped++;
        this.counters.bytesDropped += dropped;
        this.log.warn({ segment: name, dropped, reason }, 'journal: damaged tail cut off');
        // A torn tail of the last segment is the normal trace of a crash; damage anywhere else is not.
        if (i !== names.length - 1) this.emit('alarm', { alarm: 'journal-corrupt', file: path, detail: `${dropped} bytes after seq ${lastSeq} unreadable (${reason})` });
        const fh = await open(path, 'r+');
        await fh.truncate(goodBytes);
        await fh.sync();
        await fh.close();
      }
      this.segments.push({ firstSeq, lastSeq, path, bytes: goodBytes });
      this.totalBytes += goodBytes;
    }
    const tail = this.segments[this.segments.length - 1];
    this.nextSeq = Math.max(tail ? tail.lastSeq + 1 : 1, this.uploadedThrough + 1);
    if (!tail || tail.lastSeq + 1 !== this.nextSeq) await this.newSegment(this.nextSeq);
    else this.fh = await open(tail.path, 'a');
  }

  /** Start a segment whose first record will be `firstSeq` (appends already queued may hold later seqs). */
  private async newSegment(firstSeq: number): Promise<void> {
    await this.fh?.close();
    const path = join(this.o.dir, segName(firstSeq));
    this.fh = await open(path, 'a');
    await this.fh.sync();
    await syncDir(this.o.dir);
    this.segments.push({ firstSeq, lastSeq: firstSeq - 1, path, bytes: 0 });
  }

  append(entry: JournalEntry): Promise<number> {
    if (this.closed) return Promise.reject(new JournalUnavailableError('closed', 'journal is closed'));
    const seq = this.nextSeq;
    const bytes = encodeJournalRecord(seq, entry);
    if (this.totalBytes + this.pendingBytes() + bytes.byteLength > this.o.maxBytes) {
      this.counters.rejectedAppends++;
      this.raiseDiskFull(`journal quota of ${this.o.maxBytes} bytes reached (${this.unsent.length} records awaiting upload)`);
      return Promise.reject(new JournalUnavailableError('disk-full', 'journal full: cannot make the record durable'));
    }
    this.nextSeq++;
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ bytes, entry, seq, resolve, reject, atMs: performance.now() });
      this.counters.appended++;
      if (!this.flushing) this.flushing = this.flushLoop();
    });
  }

  private pendingBytes(): number {
    let n = 0;
    for (const p of this.queue) n += p.bytes.byteLength;
    return n;
  }

  /** Group commit: everything queued while the previous fsync ran goes out in one write + one fsync. */
  private async flushLoop(): Promise<void> {
    // Let the appends of this tick join the batch.
    await new Promise<void>((r) => setImmediate(r));
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      let written = 0;
      try {
        const seg = this.segments[this.segments.length - 1];
        const n = await this.fh!.writev(batch.map((p) => p.bytes));
        written = n.bytesWritten;
        const want = batch.reduce((a, p) => a + p.bytes.byteLength, 0);
        if (written !== want) throw Object.assign(new Error(`short write ${written} of ${want}`), { code: 'ENOSPC' });
        const t0 = performance.now();
        await this.fh!.datasync();
        const ms = performance.now() - t0;
        this.counters.fsyncs++;
        this.counters.fsyncMsTotal += ms;
        this.counters.lastFsyncMs = ms;
        this.emit('fsync', ms);
        if (ms > this.counters.fsyncMsMax) this.counters.fsyncMsMax = ms;
        seg.bytes += written;
        seg.lastSeq = batch[batch.length - 1].seq;
        this.totalBytes += written;
        for (const p of batch) {
          this.backlogCount++;
          if (!this.spilled && this.unsent.length < this.o.memoryRecords) this.unsent.push({ seq: p.seq, entry: p.entry });
          else this.spilled = true;
        }
        for (const p of batch) p.resolve(p.seq);
        if (this.diskFull) {
          this.diskFull = false;
          this.emit('alarm', { alarm: 'journal-ok', dir: this.o.dir });
        }
        if (seg.bytes >= this.o.segmentBytes) await this.newSegment(seg.lastSeq + 1);
      } catch (e) {
        await this.failBatch(batch, written, e as NodeJS.ErrnoException);
      }
    }
    this.flushing = undefined;
  }

  /** A failed write: cut the file back to its last durable record and reject the batch (and renumber). */
  private async failBatch(batch: Pending[], written: number, e: NodeJS.ErrnoException): Promise<void> {
    const seg = this.segments[this.segments.length - 1];
    const full = e.code === 'ENOSPC' || e.code === 'EDQUOT';
    try {
      if (written > 0) {
        await this.fh!.truncate(seg.bytes);
        await this.fh!.datasync();
      }
    } catch {
      // recovery at the next open cuts a torn tail anyway
    }
    // The failed records were never durable: their seqs are free again (nothing was acted on them).
    const rejected = [...batch, ...this.queue];
    this.queue = [];
    this.nextSeq = seg.lastSeq + 1;
    this.counters.rejectedAppends += rejected.length;
    const err = new JournalUnavailableError(full ? 'disk-full' : 'io-error', `journal write failed: ${e.message}`, { file: seg.path, errno: e.code });
    if (full) this.raiseDiskFull(e.message);
    else this.emit('alarm', { alarm: 'journal-io-error', file: seg.path, code: e.code, detail: e.message });
    for (const p of rejected) p.reject(err);
  }

  private raiseDiskFull(detail: string): void {
    if (this.diskFull) return;
    this.diskFull = true;
    this.log.error({ dir: this.o.dir, detail }, 'journal full');
    this.emit('alarm', { alarm: 'journal-disk-full', dir: this.o.dir, detail });
  }

  // ------------------------------------------------------------------------------------------
  // Upload

  private scheduleUpload(ms: number): void {
    if (this.closed || !this.o.uploadUrl || this.uploadTimer) return;
    this.uploadTimer = setTimeout(() => {
      this.uploadTimer = undefined;
      this.uploading = this.uploadRound().finally(() => (this.uploading = undefined));
    }, ms);
    this.uploadTimer.unref();
  }

  /** Upload everything durable and not yet acknowledged, in batches; then trim. Resolves when done or failed. */
  uploadNow(): Promise<boolean> {
    return this.serialUpload();
  }

  private serialUpload(): Promise<boolean> {
    const p = this.uploadChain.then(() => this.uploadBatches());
    this.uploadChain = p.catch(() => false);
    return p;
  }

  private async uploadRound(): Promise<void> {
    const ok = await this.serialUpload();
    if (ok) this.uploadFailuresInRow = 0;
    const delay = ok ? this.o.uploadIntervalMs : Math.min(this.o.maxBackoffMs, this.o.uploadIntervalMs * 2 ** Math.min(10, this.uploadFailuresInRow));
    this.scheduleUpload(delay);
  }

  private async uploadBatches(): Promise<boolean> {
    if (!this.o.uploadUrl) return false;
    for (;;) {
      if (this.unsent.length === 0 && this.spilled) await this.reloadUnsent();
      if (this.unsent.length === 0 || this.closed) break;
      const batch = this.unsent.slice(0, this.o.uploadBatch);
      const url = `${this.o.uploadUrl.replace(/\/+$/, '')}/v1/transactions`;
      let conflicts: number[] = [];
      try {
        const res = await httpRequest(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(this.o.uploadToken ? { authorization: `Bearer ${this.o.uploadToken}` } : {}) },
          body: JSON.stringify({ laneId: this.o.laneId, records: batch }),
          timeoutMs: this.o.uploadTimeoutMs,
          tls: this.o.uploadTls,
        });
        const text = await res.text();
        if (!res.ok) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
        conflicts = conflictSeqs(text);
      } catch (e) {
        this.counters.uploadFailures++;
        this.uploadFailuresInRow++;
        if (this.uploadFailuresInRow === 5) this.emit('alarm', { alarm: 'journal-upload-failing', url, detail: (e as Error).message });
        this.log.warn({ err: (e as Error).message, backlog: this.unsent.length }, 'journal upload failed');
        return false;
      }
      // Seqs the back office already held with other content: it keeps both versions for an operator and
      // answers 409 for each. Acknowledged like the rest (sending them again changes nothing), and raised.
      if (conflicts.length > 0) {
        const detail = `back office holds lane ${this.o.laneId} seq ${conflicts.slice(0, 10).join(', ')}${conflicts.length > 10 ? ` and ${conflicts.length - 10} more` : ''} with other content`;
        this.log.error({ conflicts: conflicts.length, detail }, 'journal upload conflict');
        this.emit('alarm', { alarm: 'journal-upload-conflict', detail });
      }
      const through = batch[batch.length - 1].seq;
      // Drop what was acknowledged (appends may have arrived meanwhile, at the end).
      let k = 0;
      while (k < this.unsent.length && this.unsent[k].seq <= through) k++;
      this.unsent.splice(0, k);
      this.backlogCount = Math.max(0, this.backlogCount - k);
      this.counters.uploaded += batch.length;
      this.counters.uploadBatches++;
      this.uploadedThrough = through;
      try {
        await writeFileAtomic(this.statePath, new TextEncoder().encode(JSON.stringify({ laneId: this.o.laneId, uploadedThrough: through })));
      } catch {
        // at worst a batch is sent again after a restart; the back office ignores duplicates
      }
      await this.trim();
      this.emit('uploaded', through);
    }
    return true;
  }

  /** Refill `unsent` from the segment files after a spill (records kept only on disk). */
  private async reloadUnsent(): Promise<void> {
    this.spilled = false;
    for (const seg of this.segments) {
      if (seg.lastSeq <= this.uploadedThrough) continue;
      const r = decodeJournalRecords(new Uint8Array(await readFile(seg.path)).subarray(0, seg.bytes));
      for (const rec of r.records) {
        if (rec.seq <= this.uploadedThrough) continue;
        if (this.unsent.length >= this.o.memoryRecords) {
          this.spilled = true;
          return;
        }
        this.unsent.push({ seq: rec.seq, entry: rec.entry as JournalEntry });
      }
    }
  }

  /** Delete closed segments whose every record the back office has acknowledged. */
  private async trim(): Promise<void> {
    while (this.segments.length > 1 && this.segments[0].lastSeq <= this.uploadedThrough) {
      const s = this.segments.shift()!;
      this.totalBytes -= s.bytes;
      await unlink(s.path).catch(() => {});
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.flushing;
    this.closed = true;
    if (this.uploadTimer) clearTimeout(this.uploadTimer);
    this.uploadTimer = undefined;
    await this.uploading?.catch(() => {});
    await this.fh?.close();
    this.fh = undefined;
  }
}

/** The seqs of a 200 ingest answer's per-record 409s: `{ conflicts: [{ seq, status: 409, … }] }` (openapi.yaml). */
function conflictSeqs(text: string): number[] {
  try {
    const c = (JSON.parse(text) as { conflicts?: unknown }).conflicts;
    return Array.isArray(c) ? c.map((r) => (r as { seq?: unknown } | null)?.seq).filter((seq): seq is number => typeof seq === 'number') : [];
  } catch {
    return [];
  }
}

const noop = () => {};
const quietLog: JournalLog = { warn: noop, error: noop, info: noop, debug: noop };
