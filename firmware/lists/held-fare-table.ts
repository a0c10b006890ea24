// The fare table a fare gate holds (its fare-table file, `fares.tablePath`), synced like the enforcement
// schedule (held-schedule.ts): a document is written there only once it verifies against the lane's list
// signing keys (the back office signs it with the key that signs the lists) and its seq is not lower than the
// one held (the same seq only with the same bytes); so the file's seq is the floor at boot, and an older or
// replayed table, before or after a reboot, is refused. Pricing is firmware/fares/'s business; this only
// keeps the document. A back office that publishes no fare table (404; 405 or 501: one, or a proxy in front
// of it, without the path) is no sync failure: the lane keeps the table it holds.

import { readFile } from 'node:fs/promises';
import type { Alarm } from '../../protocol/alarms.js';
import { verifyFareTable } from '../../protocol/fares.js';
import type { TrustedListKey } from '../../protocol/lists/index.js';
import { writeFileAtomic } from '../platform/atomic-file.js';
import { notPublished, type ScheduleGet } from './held-schedule.js';

export type FareTableAlarm = Extract<Alarm, { alarm: 'fare-table-rejected' }>;

export type FareTableOffer =
  | { kind: 'taken'; seq: number; document: Uint8Array; written: boolean; writeError?: string }
  | { kind: 'same' }
  | { kind: 'refused'; alarm: FareTableAlarm };

export class HeldFareTable {
  /** The seq of the table held (-1: none). */
  seq: number;
  /** The table held (verified), handed to the fare gate at start and after each update. */
  document: Uint8Array | undefined;
  /** The ETag of the last document fetched (a refused one is not fetched and refused again every poll). */
  private etag: string | undefined;
  private constructor(
    readonly path: string,
    private readonly keys: readonly TrustedListKey[],
    seq: number,
    document: Uint8Array | undefined,
  ) {
    this.seq = seq;
    this.document = document;
  }

  /** Read the fare-table file (verified again: a damaged or foreign file is ignored, `problem` saying why). No file: no table yet. */
  static async open(path: string, keys: readonly TrustedListKey[]): Promise<{ held: HeldFareTable; problem?: FareTableAlarm }> {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(path));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { held: new HeldFareTable(path, keys, -1, undefined) };
      return { held: new HeldFareTable(path, keys, -1, undefined), problem: { alarm: 'fare-table-rejected', error: 'read', detail: `${path}: ${(e as Error).message}` } };
    }
    const r = verifyFareTable(bytes, keys);
    if (!r.ok) return { held: new HeldFareTable(path, keys, -1, undefined), problem: { alarm: 'fare-table-rejected', error: r.error, detail: `${path} does not verify (${r.detail}); ignored until sync brings a good one` } };
    return { held: new HeldFareTable(path, keys, r.table.seq, bytes) };
  }

  /**
   * Fetch the back office's table (If-None-Match when it gave an ETag) and offer it: `unchanged` on 304,
   * 404 (none published), 405 and 501 (no such path on this back office), `http` with the status on any
   * other answer but 200 (the sync round fails).
   */
  async fetch(get: ScheduleGet): Promise<FareTableOffer | { kind: 'unchanged' } | { kind: 'http'; status: number }> {
    const r = await get(this.etag ? { 'if-none-match': this.etag } : {});
    if (r.status === 304 || notPublished(r.status)) return { kind: 'unchanged' };
    if (r.status !== 200) return { kind: 'http', status: r.status };
    const got = await this.offer(r.body);
    this.etag = typeof r.headers.etag === 'string' ? r.headers.etag : undefined;
    return got;
  }

  /**
   * A table fetched from the back office: refused unless it verifies and its seq is not lower than the one
   * held (the same seq with the same bytes changes nothing; with other bytes it is refused); then written
   * atomically (write + fsync + rename), and only then taken.
   */
  async offer(doc: Uint8Array): Promise<FareTableOffer> {
    const r = verifyFareTable(doc, this.keys);
    if (!r.ok) return { kind: 'refused', alarm: { alarm: 'fare-table-rejected', error: r.error, detail: `fare table refused (${r.error}): ${r.detail}; the table held (seq ${this.seq}) stays` } };
    const seq = r.table.seq;
    if (seq === this.seq && this.document && sameBytes(doc, this.document)) return { kind: 'same' };
    if (seq <= this.seq) {
      const why = seq === this.seq ? `seq ${seq} again with other content` : `seq ${seq} is lower than the seq ${this.seq} the gate holds (a replayed or rolled-back table)`;
      return { kind: 'refused', alarm: { alarm: 'fare-table-rejected', error: 'older', seq, detail: `fare table refused: ${why}` } };
    }
    let writeError: string | undefined;
    try {
      await writeFileAtomic(this.path, doc);
    } catch (e) {
      // Verified: used now all the same; the floor holds until a restart.
      writeError = (e as Error).message;
    }
    this.seq = seq;
    this.document = doc;
    return { kind: 'taken', seq, document: doc, written: writeError === undefined, writeError };
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}
