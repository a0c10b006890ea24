// The journal seam: every decision, alarm and mode change is recorded, durably, before the gate acts
// on it. The in-memory journal here serves the simulator and unit tests; the file journal with fsync,
// group commit and upload implements the same interface.

import type { Alarm } from '../../protocol/alarms.js';
import type { CredentialKind, Direction } from '../../protocol/credential.js';
import type { ReasonCode } from '../../protocol/reasons.js';

export type JournalEntry =
  | {
      type: 'decision';
      laneId: string;
      atMs: number;
      direction: Direction;
      kind: CredentialKind | 'unknown';
      /** Privacy-safe reference (protocol/credential.ts credentialRef). */
      ref: string;
      /** Full list key, needed by the back office for fare settlement; never logged. */
      key?: string;
      grant: boolean;
      reason: ReasonCode;
      source: string;
    }
  | { type: 'passage'; laneId: string; atMs: number; direction: Direction; outcome: 'passed' | 'not-passed' }
  | { type: 'alarm'; laneId: string; atMs: number; alarm: string; detail?: string }
  | { type: 'mode'; laneId: string; atMs: number; from: string; to: string; cause: string }
  /**
   * A card trip's e-purse transaction or a fare rule applied (firmware/fares/): what was charged, with the
   * card's counter (ATC) and TAC for clearing; (cardNumber, atc) identifies one debit at the back office.
   */
  | { type: 'fare'; laneId: string; atMs: number; direction: Direction; key: string; outcome: FareOutcome; reason: ReasonCode; station: number; chargeFen: number; detail?: Record<string, unknown> }
  /** A supervisor's action on the lane from the dashboard: who (supervisor name), from where (remote address), what. */
  | { type: 'supervisor'; laneId: string; atMs: number; supervisor: string; remote: string; action: string; detail?: string };

/** debited: the card paid (TAC); recovered: a torn debit proven on the re-tap (TAC); torn: card pulled mid-transaction; refused; ticket-office: settled by the clerk. */
export type FareOutcome = 'debited' | 'recovered' | 'retap' | 'torn' | 'refused' | 'ticket-office' | 'mac2-failed' | 'waived';

export interface JournalRecord {
  /** Per-lane sequence, starting at 1, never reused: with laneId it is the idempotency key at the back office. */
  seq: number;
  entry: JournalEntry;
}

/** The alarms a journal raises (protocol/alarms.ts), each naming its file, directory or upload URL. */
export type JournalAlarm = Extract<Alarm, { alarm: 'journal-corrupt' | 'journal-disk-full' | 'journal-io-error' | 'journal-ok' | 'journal-upload-failing' | 'journal-upload-conflict' }>;

/** What a journal reports about itself, read at scrape time. */
export interface JournalStats {
  /** Durable records the back office has not acknowledged yet. */
  backlog: number;
  appended: number;
  fsyncs: number;
  /** Appends refused (disk full, I/O error, closed). */
  rejectedAppends: number;
  uploaded: number;
  uploadFailures: number;
}

/** Whether a journal can make records durable now (for /readyz and the dashboard). */
export interface JournalHealth {
  writable: boolean;
  state: 'ok' | 'disk-full' | 'io-error' | 'closed';
  /** One line for a technician: what is wrong (or what it writes to), and what it is doing about it. */
  detail: string;
  /** When it stopped being writable (ms since the epoch). */
  sinceMs?: number;
}

export interface Journal {
  /**
   * Append an entry. Resolves with its sequence number once the record is durable (for the file journal:
   * written and fsynced, possibly together with others in one group commit). Rejects when it cannot be
   * made durable (disk full, I/O error, closed) with a GateError of code GateErrorCode.JournalUnavailable:
   * the caller must then not act on the decision. Never throws synchronously.
   */
  append(entry: JournalEntry): Promise<number>;
  /** Wait for appends in flight, stop uploading, release the files. Idempotent; append() rejects afterwards. */
  close(): Promise<void>;
  /** Writable now? Journals that cannot fail (memory) leave it out. The file journal comes back by itself. */
  health?(): JournalHealth;
  /**
   * Raise, once, the alarms for what the journal's recovery found when it was opened (damaged segments,
   * records lost): a journal raises nothing while it opens, before anyone can listen. Call after attaching
   * the alarm listeners; later calls raise nothing.
   */
  raiseRecoveryAlarms?(): void;
  /**
   * Listen to the journal's alarms (damaged segment found at open, disk full, I/O error, writable again,
   * upload failing). Listeners run synchronously when the journal notices; none after close() resolves.
   * Returns a function that removes the listener (idempotent). Absent on journals that cannot fail (memory).
   */
  onAlarm?(listener: (alarm: JournalAlarm) => void): () => void;
  /**
   * Listen to each group-commit fsync with its duration in milliseconds (the fsync-time histogram).
   * Returns a function that removes the listener. Absent on journals that do not fsync.
   */
  onFsync?(listener: (ms: number) => void): () => void;
  /** Backlog and running totals; cheap, never throws, also after close(). Absent on journals that keep none. */
  stats?(): JournalStats;
}

export class MemoryJournal implements Journal {
  /** The records held, oldest first: all of them, or with `keep` the newest `keep` at least (twice that at most). */
  readonly records: JournalRecord[] = [];
  private seq = 0;
  /** `keep`: hold only the newest records (a long simulation); the sequence still counts every one. */
  constructor(private readonly opts: { keep?: number } = {}) {}
  append(entry: JournalEntry): Promise<number> {
    const seq = ++this.seq;
    this.records.push({ seq, entry });
    const keep = this.opts.keep;
    // Dropped in bulk, so an append costs the same however long the run.
    if (keep !== undefined && this.records.length >= 2 * Math.max(1, keep)) this.records.splice(0, this.records.length - keep);
    return Promise.resolve(seq);
  }
  /** Records appended in all, those no longer held included. */
  get appended(): number {
    return this.seq;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
