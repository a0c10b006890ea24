// The journal's upload side: the durable records the back office has not acknowledged yet (in memory up
// to a cap, then read back from the segments), sent in batches keyed by lane id + seq (`POST
// /v1/transactions`; a batch sent twice adds nothing there), the acknowledged mark kept in
// `uploaded.json`, and trimming of segments every record of which is acknowledged.
//
// A back office that holds other content under one of our (lane, seq) answers with the conflicting seqs
// (`{ conflicts: [{ seq }] }`, with 200, or with 409 for the batch): it stored the rest and kept both
// versions for an operator, so the batch counts as delivered and a `journal-corrupt` alarm names them.

import { httpRequest, type TlsTrust } from '../platform/https-client.js';
import { readFile } from 'node:fs/promises';
import type { Alarm } from '../../protocol/alarms.js';
import { writeFileAtomic } from '../platform/atomic-file.js';
import type { Logger } from '../config/log.js';
import type { JournalEntry, JournalRecord } from './journal.js';
import { statePath, type Segment } from './recovery.js';
import { scanSegment } from './segment.js';

export interface UploadOptions {
  dir: string;
  laneId: string;
  uploadUrl?: string;
  uploadToken?: string;
  uploadTls?: TlsTrust;
  uploadBatch: number;
  uploadIntervalMs: number;
  uploadTimeoutMs: number;
  maxBackoffMs: number;
  memoryRecords: number;
}

export interface UploadCounters {
  uploaded: number;
  uploadBatches: number;
  uploadFailures: number;
  uploadConflicts: number;
}

/** What the uploader needs from its journal. */
export interface UploadHost {
  segments(): readonly Segment[];
  /** Every record up to this seq is acknowledged: delete what can go. */
  trim(throughSeq: number): Promise<void>;
  raise(a: Alarm): void;
  uploaded(throughSeq: number): void;
  counters: UploadCounters;
  log: Pick<Logger, 'warn' | 'error'>;
}

export class JournalUpload {
  /** Durable records not yet acknowledged (oldest first), at most `memoryRecords` of them. */
  private unsent: JournalRecord[] = [];
  /** More unacknowledged records are on disk than in `unsent` (a long outage): reload from the segments. */
  private spilled = false;
  private backlogCount = 0;
  private through = 0;
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;
  /** Upload rounds run one after another (a timer round and uploadNow() never send side by side). */
  private chain: Promise<unknown> = Promise.resolve();
  private failuresInRow = 0;
  private stopped = false;

  constructor(private readonly o: UploadOptions, private readonly host: UploadHost) {}

  /** Start from what recovery found. */
  restore(r: { uploadedThrough: number; unacked: { seq: number; entry: unknown }[]; spilled: boolean; backlog: number }): void {
    this.through = r.uploadedThrough;
    this.unsent = r.unacked.map((x) => ({ seq: x.seq, entry: x.entry as JournalEntry }));
    this.spilled = r.spilled;
    this.backlogCount = r.backlog;
  }

  /** Records just made durable. */
  add(records: readonly { seq: number; entry: JournalEntry }[]): void {
    for (const p of records) {
      this.backlogCount++;
      if (!this.spilled && this.unsent.length < this.o.memoryRecords) this.unsent.push({ seq: p.seq, entry: p.entry });
      else this.spilled = true;
    }
  }

  get backlog(): number {
    return this.backlogCount;
  }
  get uploadedThrough(): number {
    return this.through;
  }

  start(): void {
    this.schedule(this.o.uploadIntervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.round?.catch(() => {});
  }

  private schedule(ms: number): void {
    if (this.stopped || !this.o.uploadUrl || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.round = this.timedRound().finally(() => (this.round = undefined));
    }, ms);
    this.timer.unref();
  }

  /** Upload everything durable and not yet acknowledged, in batches; then trim. Resolves when done or failed. */
  now(): Promise<boolean> {
    const p = this.chain.then(() => this.batches());
    this.chain = p.catch(() => false);
    return p;
  }

  private async timedRound(): Promise<void> {
    const ok = await this.now();
    if (ok) this.failuresInRow = 0;
    const delay = ok ? this.o.uploadIntervalMs : Math.min(this.o.maxBackoffMs, this.o.uploadIntervalMs * 2 ** Math.min(10, this.failuresInRow));
    this.schedule(delay);
  }

  private async batches(): Promise<boolean> {
    if (!this.o.uploadUrl) return false;
    const { counters, log } = this.host;
    const url = `${this.o.uploadUrl.replace(/\/+$/, '')}/v1/transactions`;
    for (;;) {
      if (this.unsent.length === 0 && this.spilled) await this.reload();
      if (this.unsent.length === 0 || this.stopped) break;
      const batch = this.unsent.slice(0, this.o.uploadBatch);
      let conflicts: number[];
      try {
        const res = await httpRequest(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(this.o.uploadToken ? { authorization: `Bearer ${this.o.uploadToken}` } : {}) },
          body: JSON.stringify({ laneId: this.o.laneId, records: batch }),
          timeoutMs: this.o.uploadTimeoutMs,
          tls: this.o.uploadTls,
        });
        const text = await res.text();
        conflicts = conflictSeqs(text);
        // A 409 that names its records: the back office stored the batch and kept the other versions aside.
        if (!res.ok && !(res.status === 409 && conflicts.length > 0)) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
      } catch (e) {
        counters.uploadFailures++;
        this.failuresInRow++;
        if (this.failuresInRow === 5) this.host.raise({ alarm: 'journal-upload-failing', url, detail: (e as Error).message });
        log.warn({ err: (e as Error).message, backlog: this.unsent.length }, 'journal upload failed');
        return false;
      }
      if (conflicts.length > 0) {
        // Delivered: the back office holds both versions for an operator; sending again would change nothing.
        counters.uploadConflicts += conflicts.length;
        const seqs = conflicts.slice(0, 8).join(', ') + (conflicts.length > 8 ? `, … (${conflicts.length} in all)` : '');
        log.error({ url, conflicts: conflicts.length, seqs }, 'journal: back office holds other content for some seqs');
        this.host.raise({ alarm: 'journal-upload-conflict', detail: `back office holds lane ${this.o.laneId} seq ${seqs} with other content (${url}): both versions kept there for an operator; counted as delivered` });
      }
      const through = batch[batch.length - 1].seq;
      // Drop what was acknowledged (appends may have arrived meanwhile, at the end).
      let k = 0;
      while (k < this.unsent.length && this.unsent[k].seq <= through) k++;
      this.unsent.splice(0, k);
      this.backlogCount = Math.max(0, this.backlogCount - k);
      counters.uploaded += batch.length;
      counters.uploadBatches++;
      this.through = through;
      try {
        await writeFileAtomic(statePath(this.o.dir), new TextEncoder().encode(JSON.stringify({ laneId: this.o.laneId, uploadedThrough: through })));
      } catch {
        // at worst a batch is sent again after a restart; the back office ignores duplicates
      }
      await this.host.trim(through);
      this.host.uploaded(through);
    }
    return true;
  }

  /** Refill `unsent` from the segment files after a spill (records kept only on disk). */
  private async reload(): Promise<void> {
    this.spilled = false;
    for (const seg of this.host.segments()) {
      if (seg.lastSeq <= this.through) continue;
      const bytes = new Uint8Array(await readFile(seg.path)).subarray(0, seg.bytes);
      for (const rec of scanSegment(bytes, seg.firstSeq).records) {
        if (rec.seq <= this.through) continue;
        if (this.unsent.length >= this.o.memoryRecords) {
          this.spilled = true;
          return;
        }
        this.unsent.push({ seq: rec.seq, entry: rec.entry as JournalEntry });
      }
    }
  }
}

/** The seqs a back office reply names as conflicting (`{ conflicts: [{ seq }] }`); none when it names none. */
function conflictSeqs(text: string): number[] {
  try {
    const b = JSON.parse(text) as { conflicts?: unknown };
    if (!Array.isArray(b.conflicts)) return [];
    return b.conflicts.map((c) => (c as { seq?: unknown })?.seq).filter((s): s is number => Number.isSafeInteger(s));
  } catch {
    return [];
  }
}
