// The fare table a lane holds: a signed document from the back office (protocol/fares.ts), used only when
// its signature verifies against the lists' signing keys and its seq is not lower than the one held (the
// same seq only with the same bytes). A refused document raises `fare-table-rejected` and the old table
// stays. Read from its file at start (`fromFile`), replaced by sync with `update`.

import { readFileSync } from 'node:fs';
import type { Alarm } from '../../protocol/alarms.js';
import { verifyFareTable, type FareTable } from '../../protocol/fares.js';
import type { TrustedListKey } from '../../protocol/lists/index.js';

export type FareTableUpdate = { ok: true; seq: number } | { ok: false; alarm: Extract<Alarm, { alarm: 'fare-table-rejected' }> };

export class FareTableHolder {
  private table?: FareTable;
  private doc?: Uint8Array;
  private readonly listeners = new Set<(t: FareTable) => void>();

  constructor(
    private readonly keys: readonly TrustedListKey[],
    private readonly onAlarm: (a: Alarm) => void = () => {},
  ) {}

  current(): FareTable | undefined {
    return this.table;
  }

  /** Called with every table taken (the lane's fare gates set it). Returns a function that removes the listener. */
  onTable(fn: (t: FareTable) => void): () => void {
    this.listeners.add(fn);
    if (this.table) fn(this.table);
    return () => this.listeners.delete(fn);
  }

  update(doc: Uint8Array): FareTableUpdate {
    const r = verifyFareTable(doc, this.keys);
    const reject = (error: string, detail: string, seq?: number): FareTableUpdate => {
      const alarm = { alarm: 'fare-table-rejected' as const, error, seq, detail };
      this.onAlarm(alarm);
      return { ok: false, alarm };
    };
    if (!r.ok) return reject(r.error, r.detail);
    const held = this.table?.seq;
    if (held !== undefined && r.table.seq < held) return reject('older', `seq ${r.table.seq} is older than the table in force (seq ${held})`, r.table.seq);
    if (held !== undefined && r.table.seq === held) {
      if (this.doc && Buffer.compare(Buffer.from(doc), Buffer.from(this.doc)) === 0) return { ok: true, seq: held };
      return reject('older', `seq ${held} again with other content`, held);
    }
    this.table = r.table;
    this.doc = doc.slice();
    for (const fn of this.listeners) fn(r.table);
    return { ok: true, seq: r.table.seq };
  }

  /** Read and verify the table file; a missing or bad file is a `fare-table-rejected` alarm (no table: fares refused as `fare-unavailable`). */
  static fromFile(path: string, keys: readonly TrustedListKey[], onAlarm?: (a: Alarm) => void): FareTableHolder {
    const h = new FareTableHolder(keys, onAlarm);
    let doc: Uint8Array;
    try {
      doc = new Uint8Array(readFileSync(path));
    } catch (e) {
      onAlarm?.({ alarm: 'fare-table-rejected', error: 'read', detail: `${path}: ${(e as Error).message}` });
      return h;
    }
    h.update(doc);
    return h;
  }
}
