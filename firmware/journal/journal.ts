// The journal seam: every decision, alarm and mode change is recorded, durably, before the gate acts
// on it. The in-memory journal here serves the simulator and unit tests; the file journal with fsync,
// group commit and upload implements the same interface.

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
  | { type: 'mode'; laneId: string; atMs: number; from: string; to: string; cause: string };

export interface JournalRecord {
  /** Per-lane sequence, starting at 1, never reused: with laneId it is the idempotency key at the back office. */
  seq: number;
  entry: JournalEntry;
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
   * made durable (disk full, I/O error): the caller must then not act on the decision.
   */
  append(entry: JournalEntry): Promise<number>;
  close(): Promise<void>;
  /** Writable now? Journals that cannot fail (memory) leave it out. The file journal comes back by itself. */
  health?(): JournalHealth;
  /**
   * Raise, once, the alarms for what the journal's recovery found when it was opened (damaged segments,
   * records lost): a journal raises nothing while it opens, before anyone can listen. Call after attaching
   * the alarm listeners; later calls raise nothing.
   */
  raiseRecoveryAlarms?(): void;
}

export class MemoryJournal implements Journal {
  readonly records: JournalRecord[] = [];
  private seq = 0;
  append(entry: JournalEntry): Promise<number> {
    const seq = ++this.seq;
    this.records.push({ seq, entry });
    return Promise.resolve(seq);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
