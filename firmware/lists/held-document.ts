// A signed, numbered document a gate holds beside its lists and keeps current by list sync: the
// enforcement schedule (held-schedule.ts) and the fare table (held-fare-table.ts). It is written to its
// file only once it verifies against the gate's list signing keys (the back office signs it with the key
// that signs the lists) and its seq is newer than the one held (the same seq only with the same bytes); so
// the file's seq is the floor at boot, and an older or replayed document, before or after a reboot, is
// refused. What the document means is another room's business; this only keeps it.

import { readFile } from 'node:fs/promises';
import type { Alarm } from '../../protocol/alarms.js';
import type { TrustedListKey } from '../../protocol/lists/index.js';
import { writeFileAtomic } from '../platform/atomic-file.js';

export type HeldAlarmName = 'schedule-rejected' | 'fare-table-rejected';
export type HeldAlarm<A extends HeldAlarmName> = Extract<Alarm, { alarm: A }>;

/** What kind of document: its alarm, its name in messages, and its check. */
export interface HeldKind<A extends HeldAlarmName> {
  alarm: A;
  /** As a technician reads it: "enforcement schedule", "fare table". */
  what: string;
  verify(bytes: Uint8Array, keys: readonly TrustedListKey[]): { ok: true; seq: number } | { ok: false; error: string; detail: string };
}

export type HeldOffer<A extends HeldAlarmName> =
  | { kind: 'taken'; seq: number; document: Uint8Array; written: boolean; writeError?: string }
  | { kind: 'same' }
  | { kind: 'refused'; alarm: HeldAlarm<A> };

/** One GET of the document (list-sync.ts's request: bearer token, TLS, bounds). */
export type DocumentGet = (headers: Record<string, string>) => Promise<{ status: number; body: Uint8Array; headers: Record<string, string | string[] | undefined> }>;

/**
 * A document the back office does not publish: 404 (none yet), or 405/501 from a back office (or a proxy in
 * front of it) that does not serve this path at all. Keeping the one held is right; failing the round
 * would let an older back office stop the lists from syncing.
 */
export function notPublished(status: number): boolean {
  return status === 404 || status === 405 || status === 501;
}

export class HeldDocument<A extends HeldAlarmName> {
  /** The newest seq held: the stored document's, or the provisioned one's when that is newer (-1: none). */
  seq: number;
  /** The stored document, when it is newer than the provisioned one (handed on at start). */
  document: Uint8Array | undefined;
  /** The ETag of the last document fetched (taken or refused: a refused one is not fetched and refused again). */
  private etag: string | undefined;
  private constructor(
    readonly path: string,
    private readonly keys: readonly TrustedListKey[],
    private readonly kind: HeldKind<A>,
    seq: number,
    document: Uint8Array | undefined,
  ) {
    this.seq = seq;
    this.document = document;
  }

  /**
   * Read the stored document (verified again: a damaged or foreign file is ignored, `problem` saying why).
   * `provisionedSeq`: the seq of a document the gate was provisioned with (-1: none); a stored one no
   * newer than it is ignored.
   */
  static async open<A extends HeldAlarmName>(path: string, keys: readonly TrustedListKey[], kind: HeldKind<A>, provisionedSeq = -1): Promise<{ held: HeldDocument<A>; problem?: HeldAlarm<A> }> {
    const none = () => new HeldDocument(path, keys, kind, provisionedSeq, undefined);
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(path));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { held: none() };
      return { held: none(), problem: { alarm: kind.alarm, error: 'read', detail: `${path}: ${(e as Error).message}` } as HeldAlarm<A> };
    }
    const r = kind.verify(bytes, keys);
    if (!r.ok) return { held: none(), problem: { alarm: kind.alarm, error: r.error, detail: `${path} does not verify (${r.detail}); ignored until sync brings a good one` } as HeldAlarm<A> };
    if (r.seq <= provisionedSeq) return { held: none() };
    return { held: new HeldDocument(path, keys, kind, r.seq, bytes) };
  }

  /**
   * Fetch the back office's document (If-None-Match) and offer it: `unchanged` on 304 or when none is
   * published (`notPublished`), `http` with the status on any other answer but 200 (the sync round fails).
   */
  async fetch(get: DocumentGet): Promise<HeldOffer<A> | { kind: 'unchanged' } | { kind: 'http'; status: number }> {
    const r = await get(this.etag ? { 'if-none-match': this.etag } : {});
    if (r.status === 304 || notPublished(r.status)) return { kind: 'unchanged' };
    if (r.status !== 200) return { kind: 'http', status: r.status };
    const got = await this.offer(r.body);
    this.etag = typeof r.headers.etag === 'string' ? r.headers.etag : undefined;
    return got;
  }

  /**
   * A document fetched from the back office: refused unless it verifies and is newer than the one held (the
   * same seq with the same bytes changes nothing; with other bytes it is refused); then written atomically
   * (write + fsync + rename), and only then taken.
   */
  async offer(doc: Uint8Array): Promise<HeldOffer<A>> {
    const { alarm, what } = this.kind;
    const r = this.kind.verify(doc, this.keys);
    if (!r.ok) return { kind: 'refused', alarm: { alarm, error: r.error, detail: `${what} refused (${r.error}): ${r.detail}; the ${what} held (seq ${this.seq}) stays` } as HeldAlarm<A> };
    const seq = r.seq;
    if (seq === this.seq && (!this.document || sameBytes(doc, this.document))) return { kind: 'same' };
    if (seq <= this.seq) {
      const why = seq === this.seq ? `seq ${seq} again with other content` : `seq ${seq} is not newer than the seq ${this.seq} the gate holds (a replayed or rolled-back ${what})`;
      return { kind: 'refused', alarm: { alarm, error: 'older', seq, detail: `${what} refused: ${why}` } as HeldAlarm<A> };
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
