// The enforcement schedule a gate holds (`policy-schedule.json` in the list directory), synced like the
// issuer trust list (issuer-keys.ts): a document is written there only once it verifies against the gate's
// list signing keys (the back office signs it with the key that signs the lists) and its seq is newer than
// the one held; so the file's seq is the floor at boot, and an older or replayed document, before or after
// a reboot, is refused. The schedule the lane was provisioned with (`policy.scheduleFile`) counts too: a
// stored one no newer than it is ignored; one newer replaces it. What a schedule relaxes is verify/'s
// business (firmware/verify/policy-schedule.ts); this only keeps the document.

import { readFile } from 'node:fs/promises';
import type { Alarm } from '../../protocol/alarms.js';
import type { TrustedListKey } from '../../protocol/lists/index.js';
import { verifyPolicySchedule } from '../../protocol/policy-schedule.js';
import { writeFileAtomic } from '../platform/atomic-file.js';

export type ScheduleAlarm = Extract<Alarm, { alarm: 'schedule-rejected' }>;

export type ScheduleOffer =
  | { kind: 'taken'; seq: number; document: Uint8Array; written: boolean; writeError?: string }
  | { kind: 'same' }
  | { kind: 'refused'; alarm: ScheduleAlarm };

/**
 * A document the back office does not publish: 404 (none yet), or 405/501 from a back office (or a proxy in
 * front of it) that does not serve this path at all. Keeping the one held is right; failing the round
 * would let an older back office stop the lists from syncing.
 */
export function notPublished(status: number): boolean {
  return status === 404 || status === 405 || status === 501;
}

/** One GET of the schedule (list-sync.ts's request: bearer token, TLS, bounds). */
export type ScheduleGet = (headers: Record<string, string>) => Promise<{ status: number; body: Uint8Array; headers: Record<string, string | string[] | undefined> }>;

export class HeldSchedule {
  /** The newest seq held: the stored document's, or the provisioned one's when that is newer (-1: none). */
  seq: number;
  /** The stored document, when it is newer than the provisioned one (handed to the lane at start). */
  document: Uint8Array | undefined;
  /** The ETag of the last document fetched (taken or refused: a refused one is not fetched and refused again). */
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

  /**
   * Read the stored document (verified again: a damaged or foreign file is ignored, `problem` saying why).
   * `provisionedSeq`: the seq of the schedule the lane was provisioned with (-1: none).
   */
  static async open(path: string, keys: readonly TrustedListKey[], provisionedSeq = -1): Promise<{ held: HeldSchedule; problem?: ScheduleAlarm }> {
    let bytes: Uint8Array | undefined;
    try {
      bytes = new Uint8Array(await readFile(path));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        return { held: new HeldSchedule(path, keys, provisionedSeq, undefined), problem: { alarm: 'schedule-rejected', error: 'read', detail: `${path}: ${(e as Error).message}` } };
      }
    }
    if (!bytes) return { held: new HeldSchedule(path, keys, provisionedSeq, undefined) };
    const r = verifyPolicySchedule(bytes, keys);
    if (!r.ok) return { held: new HeldSchedule(path, keys, provisionedSeq, undefined), problem: { alarm: 'schedule-rejected', error: r.error, detail: `${path} does not verify (${r.detail}); ignored` } };
    if (r.schedule.seq <= provisionedSeq) return { held: new HeldSchedule(path, keys, provisionedSeq, undefined) };
    return { held: new HeldSchedule(path, keys, r.schedule.seq, bytes) };
  }

  /**
   * Fetch the back office's document (If-None-Match) and offer it: `unchanged` on 304 or when none is
   * published (`notPublished`), `http` with the status on any other answer but 200 (the sync round fails).
   */
  async fetch(get: ScheduleGet): Promise<ScheduleOffer | { kind: 'unchanged' } | { kind: 'http'; status: number }> {
    const r = await get(this.etag ? { 'if-none-match': this.etag } : {});
    if (r.status === 304 || notPublished(r.status)) return { kind: 'unchanged' };
    if (r.status !== 200) return { kind: 'http', status: r.status };
    const got = await this.offer(r.body);
    this.etag = typeof r.headers.etag === 'string' ? r.headers.etag : undefined;
    return got;
  }

  /**
   * A document fetched from the back office: refused unless it verifies and is newer than the one held (the
   * same seq with the same bytes changes nothing); then written atomically (write + fsync + rename), and
   * only then taken.
   */
  async offer(doc: Uint8Array): Promise<ScheduleOffer> {
    const r = verifyPolicySchedule(doc, this.keys);
    if (!r.ok) return { kind: 'refused', alarm: { alarm: 'schedule-rejected', error: r.error, detail: `enforcement schedule refused: ${r.detail}` } };
    const seq = r.schedule.seq;
    if (seq === this.seq && (!this.document || sameBytes(doc, this.document))) return { kind: 'same' };
    if (seq <= this.seq) {
      return { kind: 'refused', alarm: { alarm: 'schedule-rejected', error: 'older', seq, detail: `enforcement schedule seq ${seq} is not newer than the seq ${this.seq} the gate holds (a replayed or rolled-back schedule)` } };
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
