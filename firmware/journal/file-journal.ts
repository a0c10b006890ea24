// Why this file is long: it is the journal's policy in one place — group commit, failure and self-healing
// probe, quota, recovery report and the seam; segment files, recovery scans and upload live beside it.
// The journal on disk: every record checksummed, durable (fdatasync) before append() resolves, many
// appends sharing one fsync (group commit), recovered after kill -9, power loss or damage (recovery.ts:
// a torn write is cut, a damaged segment is kept aside and every record that still checks is kept),
// uploaded to the back office in batches keyed by lane id + seq (upload.ts; retries never duplicate),
// and trimmed once uploaded. Record layout: protocol/README.md, "Journal records"; segment files:
// segment.ts, written by segment-writer.ts.
//
// A segment is created sparse at its full size: a group commit is one synchronous (O_DSYNC) write over
// zeros, one trip to libuv's pool, with no size change for the file system to journal. Sequence numbers are never handed
// out twice: recovery tells a write torn by a crash (its seq is reused) from damage (never), a closed
// segment's header holds its exact mark, and `seq.hwm` reserves seqs ahead in blocks for when the end of
// the last segment cannot be trusted. A commit that fails is cut back off the file (and its seqs reused)
// before anything else is written; until then the journal writes nothing.
//
// Disk full (ENOSPC, EDQUOT, or the configured quota) or an I/O error: append() rejects with
// JournalUnavailableError, one alarm is raised, and appends are refused at once while a probe (bounded
// back-off) checks the disk; when a probe writes and fsyncs again, 'journal-ok' is raised and appends
// resume, without a restart. The lane then refuses entries (journal-unavailable) and still opens exits.
// A failed rotation never loses the working handle: the next segment is opened before the old one is
// closed, and on failure the journal keeps writing to the old one and tries again later.

import { EventEmitter } from 'node:events';
import { open, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Alarm } from '../../protocol/alarms.js';
import { GateError, GateErrorCode } from '../../protocol/errors.js';
import { encodeJournalRecord } from '../../protocol/journal-record.js';
import { writeFully } from '../platform/atomic-file.js';
import type { TlsTrust } from '../platform/https-client.js';
import { FULL, JournalIoError, asIoError, io } from './io-error.js';
import { SeqReservation } from './seq-reservation.js';
import type { Journal, JournalAlarm, JournalEntry, JournalHealth, JournalStats } from './journal.js';
import { JournalUpload } from './upload.js';
import type { Logger } from '../config/log.js';
import { recoverJournal, recoveryAlarms, type JournalRecoveryReport } from './recovery.js';
import { SEGMENT_HEADER_BYTES } from './segment.js';
import { SegmentWriter } from './segment-writer.js';

export type { JournalRecoveryReport } from './recovery.js';

export interface FileJournalOptions {
  dir: string;
  laneId: string;
  /** Back-office base URL; without it records are kept until an uploader is configured. */
  uploadUrl?: string;
  /** Bearer token for the back office (role `gate`), when it asks for one. */
  uploadToken?: string;
  /** How to trust the back office over https (CA file and/or pinned certificate); plain http needs none. */
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
  /** While the journal cannot write: first probe after this long, doubling up to probeMaxMs (also the rotation retry). */
  probeMinMs?: number;
  probeMaxMs?: number;
  /** Seqs reserved ahead in `seq.hwm` at a time. */
  reserveBlock?: number;
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

interface Pending {
  bytes: Uint8Array;
  entry: JournalEntry;
  seq: number;
  resolve: (seq: number) => void;
  reject: (e: Error) => void;
  /** Settled already: a batch's promise settles exactly once. */
  done: boolean;
}

export interface JournalCounters {
  appended: number;
  fsyncs: number;
  fsyncMsTotal: number;
  fsyncMsMax: number;
  lastFsyncMs: number;
  uploaded: number;
  uploadBatches: number;
  uploadFailures: number;
  /** Records the back office holds with other content under the same (lane, seq): delivered, alarmed. */
  uploadConflicts: number;
  rejectedAppends: number;
  /** Group commits that failed (write, header, fdatasync or reservation). */
  writeFailures: number;
  rotationFailures: number;
  probes: number;
  tornTailsDropped: number;
  bytesDropped: number;
}

const PROBE_BYTES = 16 * 1024;

/** A Journal on disk. Events (FileJournalEvents): 'alarm' (JournalAlarm), 'uploaded' (throughSeq), 'fsync' (ms). */
export class FileJournal extends EventEmitter<FileJournalEvents> implements Journal {
  private readonly o: Required<Omit<FileJournalOptions, 'uploadUrl' | 'uploadToken' | 'uploadTls' | 'log'>> & { uploadUrl?: string; uploadToken?: string; uploadTls?: TlsTrust };
  private readonly log: JournalLog;
  /** The segment files (undefined only before open() has recovered them). */
  private files!: SegmentWriter;
  private nextSeq = 1;
  private totalBytes = 0;
  private queue: Pending[] = [];
  /** Bytes appended and not yet on disk: the queue and the batch being written (the quota counts both). */
  private unwrittenBytes = 0;
  private flushing: Promise<void> | undefined;
  private closing = false;
  private closed = false;
  private readonly upload: JournalUpload;
  private reservation!: SeqReservation;
  /** Set while the journal cannot write; appends are refused until a probe clears it. */
  private down: { reason: 'disk-full' | 'io-error'; detail: string; sinceMs: number } | undefined;
  private quotaFull = false;
  /** Size of the record the quota refused: the quota clears once that much fits again. */
  private quotaNeed = 0;
  /** A disk-full or I/O alarm is out and 'journal-ok' has not followed yet. */
  private alarmed = false;
  private probeTimer: NodeJS.Timeout | undefined;
  private probing: Promise<void> | undefined;
  private probeFailures = 0;
  private rotateRetryAt = 0;
  private rotateFailuresInRow = 0;
  private report!: JournalRecoveryReport;
  private recoveryAlarmsPending: Alarm[] = [];
  readonly counters: JournalCounters = {
    appended: 0, fsyncs: 0, fsyncMsTotal: 0, fsyncMsMax: 0, lastFsyncMs: 0, uploaded: 0, uploadBatches: 0, uploadFailures: 0,
    uploadConflicts: 0, rejectedAppends: 0, writeFailures: 0, rotationFailures: 0, probes: 0, tornTailsDropped: 0, bytesDropped: 0,
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
      probeMinMs: 100,
      probeMaxMs: 5_000,
      reserveBlock: 65_536,
      ...opts,
    };
    // No logger given: stay quiet (and keep pino out of processes that only journal).
    this.log = opts.log ?? quietLog;
    this.upload = new JournalUpload(this.o, {
      segments: () => this.files.segments,
      trim: (through) => this.trim(through),
      raise: (a) => this.raise(a),
      uploaded: (through) => this.emit('uploaded', through),
      counters: this.counters,
      log: this.log,
    });
  }

  /**
   * Open (and recover) the journal in `dir`; starts uploading when uploadUrl is set. Emits nothing: what
   * recovery found is in `recovery`, and raiseRecoveryAlarms() raises it once listeners are attached.
   * A disk that cannot take a new segment now does not fail the open: the journal starts unavailable.
   */
  static async open(opts: FileJournalOptions): Promise<FileJournal> {
    const j = new FileJournal(opts);
    await j.recover();
    j.upload.start();
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
    return { backlog: this.backlog, appended: c.appended, fsyncs: c.fsyncs, rejectedAppends: c.rejectedAppends, uploaded: c.uploaded, uploadFailures: c.uploadFailures };
  }

  /** Durable records the back office has not acknowledged yet. */
  get backlog(): number {
    return this.upload.backlog;
  }
  get lastSeq(): number {
    return this.nextSeq - 1;
  }
  get uploadedSeq(): number {
    return this.upload.uploadedThrough;
  }

  /** Upload everything durable and not yet acknowledged, in batches; then trim. Resolves when done or failed. */
  uploadNow(): Promise<boolean> {
    return this.upload.now();
  }
  get segmentCount(): number {
    return this.files.segments.length;
  }
  /** What recovery found at open: segments scanned, torn bytes cut, damaged segments, records kept and lost. */
  get recovery(): JournalRecoveryReport {
    return this.report;
  }

  /** Emit, once, a `journal-corrupt` alarm per damaged segment recovery found (call after attaching listeners). */
  raiseRecoveryAlarms(): void {
    const pending = this.recoveryAlarmsPending;
    this.recoveryAlarmsPending = [];
    for (const a of pending) this.raise(a);
  }

  health(): JournalHealth {
    if (this.closed || this.closing) return { writable: false, state: 'closed', detail: 'journal closed' };
    if (this.down) {
      return { writable: false, state: this.down.reason, sinceMs: this.down.sinceMs, detail: `${this.down.detail}; probing every ${this.probeDelay()} ms at most (${this.probeFailures} probes failed)` };
    }
    if (this.quotaFull) return { writable: false, state: 'disk-full', detail: `journal quota of ${this.o.maxBytes} bytes reached (${this.upload.backlog} records awaiting upload)` };
    const tail = this.files.tail;
    const rot = this.rotateFailuresInRow ? `; ${this.rotateFailuresInRow} attempts to start the next segment failed, writing on` : '';
    return { writable: true, state: 'ok', detail: `${this.o.dir}: writing ${tail ? basename(tail.path) : '-'}${rot}; ${this.upload.backlog} records awaiting upload` };
  }

  /** The one place alarms leave the journal. */
  private raise(a: Alarm): void {
    this.emit('alarm', a as JournalAlarm);
  }

  private async recover(): Promise<void> {
    const r = await recoverJournal(this.o.dir, this.o.memoryRecords, (o, msg) => this.log.warn(o, msg));
    this.report = r.report;
    this.recoveryAlarmsPending = recoveryAlarms(r.report);
    this.files = new SegmentWriter(this.o.dir, this.o.segmentBytes, this.log, r.tailAppendable, r.tailClosed);
    this.files.segments = r.segments;
    this.totalBytes = r.segments.reduce((a, s) => a + s.bytes, 0);
    this.upload.restore(r);
    this.reservation = new SeqReservation(this.o.dir, this.o.reserveBlock, this.log, r.reservedThrough);
    this.nextSeq = r.nextSeq;
    if (r.report.tornBytesCut > 0) this.counters.tornTailsDropped++;
    this.counters.bytesDropped += r.report.tornBytesCut;
    try {
      await this.openWorking();
    } catch (e) {
      this.fail(e as Error);
    }
    if (!this.down) this.reservation.ahead(this.nextSeq - 1);
  }

  /** Make the last segment the working one (it takes the next seq), or start a new one. */
  private async openWorking(): Promise<void> {
    const before = this.files.segments.length;
    await this.files.openWorking(this.nextSeq);
    if (this.files.segments.length > before) this.totalBytes += SEGMENT_HEADER_BYTES;
  }

  append(entry: JournalEntry): Promise<number> {
    if (this.closed || this.closing) return Promise.reject(new JournalUnavailableError('closed', 'journal is closed'));
    if (this.down) {
      this.counters.rejectedAppends++;
      return Promise.reject(new JournalUnavailableError(this.down.reason, `journal cannot write: ${this.down.detail}`));
    }
    const seq = this.nextSeq;
    let bytes: Uint8Array;
    try {
      bytes = encodeJournalRecord(seq, entry);
    } catch (e) {
      return Promise.reject(e as Error);
    }
    if (this.totalBytes + this.unwrittenBytes + bytes.byteLength > this.o.maxBytes) {
      this.counters.rejectedAppends++;
      this.quotaNeed = bytes.byteLength;
      if (!this.quotaFull) {
        this.quotaFull = true;
        this.alarmDown({ alarm: 'journal-disk-full', dir: this.o.dir, detail: `journal quota of ${this.o.maxBytes} bytes reached (${this.upload.backlog} records awaiting upload)` });
      }
      return Promise.reject(new JournalUnavailableError('disk-full', 'journal full: cannot make the record durable'));
    }
    this.nextSeq++;
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ bytes, entry, seq, resolve, reject, done: false });
      this.unwrittenBytes += bytes.byteLength;
      this.counters.appended++;
      if (!this.flushing) this.flushing = this.flushLoop();
    });
  }

  /** Group commit: everything queued while the previous fsync ran goes out in one write + one fsync. */
  private async flushLoop(): Promise<void> {
    // Let the appends of this tick join the batch.
    await new Promise<void>((r) => setImmediate(r));
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        await this.commit(batch);
      } catch (e) {
        this.fail(e as Error, batch);
        break;
      }
      for (const p of batch) settle(p, p.seq);
      this.quotaCheck();
      this.maybeOk();
      // After the batch settled: a rotation that fails costs nothing but a retry later.
      await this.maybeRotate();
      if (!this.down) this.reservation.ahead(this.nextSeq - 1);
    }
    this.flushing = undefined;
    if (!this.down) this.files.idle();
  }

  /** Write a batch at the durable end, then one fdatasync. Throws JournalIoError. */
  private async commit(batch: Pending[]): Promise<void> {
    const last = batch[batch.length - 1].seq;
    await this.reservation.ensure(last);
    const want = batch.reduce((a, p) => a + p.bytes.byteLength, 0);
    const ms = await this.files.write(batch.map((p) => p.bytes), last);
    this.counters.fsyncs++;
    this.counters.fsyncMsTotal += ms;
    this.counters.lastFsyncMs = ms;
    if (ms > this.counters.fsyncMsMax) this.counters.fsyncMsMax = ms;
    this.emit('fsync', ms);
    this.totalBytes += want;
    this.unwrittenBytes -= want;
    this.upload.add(batch);
  }

  /**
   * A commit (or opening a segment) failed: reject the batch and everything queued behind it, each once.
   * Their seqs are free again: nothing was acted on them, none was uploaded, and heal() cuts whatever of
   * them reached the file before anything else is written. Appends are refused until a probe succeeds.
   */
  private fail(e: Error, batch: Pending[] = []): void {
    const ioe = asIoError(e, 'write', this.o.dir);
    const rejected = [...batch, ...this.queue];
    this.queue = [];
    this.unwrittenBytes = 0;
    const tail = this.files.tail;
    if (this.files.working && tail) this.nextSeq = tail.lastSeq + 1;
    this.counters.rejectedAppends += rejected.length;
    if (batch.length) this.counters.writeFailures++;
    const full = FULL.has(ioe.code ?? '');
    const reason = full ? 'disk-full' : 'io-error';
    if (!this.down) {
      this.down = { reason, detail: ioe.message, sinceMs: Date.now() };
      this.log.error({ dir: this.o.dir, err: ioe.message, code: ioe.code }, full ? 'journal full' : 'journal write failed');
      this.alarmDown(full ? { alarm: 'journal-disk-full', dir: this.o.dir, detail: ioe.message } : { alarm: 'journal-io-error', file: ioe.file, code: ioe.code, detail: ioe.message });
    }
    const err = new JournalUnavailableError(reason, `journal write failed: ${ioe.message}`);
    for (const p of rejected) settle(p, err);
    this.scheduleProbe();
  }

  private alarmDown(a: Alarm): void {
    if (this.alarmed) return;
    this.alarmed = true;
    this.raise(a);
  }

  private maybeOk(): void {
    if (!this.alarmed || this.down || this.quotaFull) return;
    this.alarmed = false;
    this.raise({ alarm: 'journal-ok', dir: this.o.dir });
  }

  /** Cut the working segment back to its durable end (or open one). */
  private async heal(): Promise<void> {
    const before = this.files.segments.length;
    await this.files.heal(this.nextSeq);
    if (this.files.segments.length > before) this.totalBytes += SEGMENT_HEADER_BYTES;
  }

  private probeDelay(): number {
    return Math.min(this.o.probeMaxMs, this.o.probeMinMs * 2 ** Math.min(16, this.probeFailures));
  }

  private scheduleProbe(): void {
    if (this.closed || this.closing || this.probeTimer || this.probing) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      this.probing = this.probe().finally(() => (this.probing = undefined));
    }, this.probeDelay());
    this.probeTimer.unref();
  }

  /** Heal, then write and fsync a probe file: when that works the journal is writable again. */
  private async probe(): Promise<void> {
    if (this.closed || this.closing || !this.down) return;
    this.counters.probes++;
    const path = join(this.o.dir, 'probe.tmp');
    try {
      await this.heal();
      const fh = await io('create', path, () => open(path, 'w'));
      try {
        await io('write', path, () => writeFully(fh, new Uint8Array(PROBE_BYTES), 0));
        await io('fdatasync', path, () => fh.datasync());
      } finally {
        await fh.close().catch(() => {});
        await unlink(path).catch(() => {});
      }
    } catch (e) {
      this.probeFailures++;
      const ioe = asIoError(e, 'probe', path);
      if (this.down) this.down = { ...this.down, reason: FULL.has(ioe.code ?? '') ? 'disk-full' : 'io-error', detail: ioe.message };
      this.log.debug({ err: (e as Error).message, failures: this.probeFailures }, 'journal probe failed');
      this.probing = undefined;
      this.scheduleProbe();
      return;
    }
    this.log.info({ dir: this.o.dir, after: this.probeFailures + 1 }, 'journal writable again');
    this.down = undefined;
    this.probeFailures = 0;
    this.maybeOk();
  }

  /** Start the next segment when this one is full, unless a recent attempt failed (then keep writing here). */
  private async maybeRotate(): Promise<void> {
    const seg = this.files.tail;
    if (!seg || seg.bytes < this.o.segmentBytes || Date.now() < this.rotateRetryAt || this.down) return;
    try {
      await this.files.rotate(seg.lastSeq + 1);
      this.totalBytes += SEGMENT_HEADER_BYTES;
      if (this.rotateFailuresInRow) this.log.info({ after: this.rotateFailuresInRow }, 'journal: next segment started');
      this.rotateFailuresInRow = 0;
    } catch (e) {
      this.counters.rotationFailures++;
      this.rotateFailuresInRow++;
      this.rotateRetryAt = Date.now() + Math.min(this.o.probeMaxMs, this.o.probeMinMs * 2 ** Math.min(16, this.rotateFailuresInRow - 1));
      const ioe = e as JournalIoError;
      this.log.warn({ err: ioe.message, failures: this.rotateFailuresInRow }, 'journal: could not start the next segment, writing on in the current one');
      if (this.rotateFailuresInRow === 1) {
        this.raise({ alarm: 'journal-io-error', file: ioe.file ?? seg.path, code: ioe.code, detail: `${ioe.message}; still writing to ${basename(seg.path)}` });
      }
    }
  }

  private quotaCheck(): void {
    if (this.quotaFull && this.totalBytes + this.unwrittenBytes + this.quotaNeed <= this.o.maxBytes) this.quotaFull = false;
  }

  /** Delete closed segments whose every record the back office has acknowledged (damaged copies stay). */
  private async trim(through: number): Promise<void> {
    this.totalBytes -= await this.files.trim(through);
    this.quotaCheck();
    this.maybeOk();
  }

  async close(): Promise<void> {
    if (this.closed || this.closing) return;
    this.closing = true;
    await this.flushing;
    this.closed = true;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    await this.probing;
    await this.upload.stop();
    await this.reservation.close();
    await this.files.close(!this.down);
  }
}

function settle(p: Pending, r: number | Error): void {
  if (p.done) return;
  p.done = true;
  if (typeof r === 'number') p.resolve(r);
  else p.reject(r);
}

const noop = () => {};
type JournalLog = Pick<Logger, 'warn' | 'error' | 'info' | 'debug'>;
const quietLog: JournalLog = { warn: noop, error: noop, info: noop, debug: noop };
