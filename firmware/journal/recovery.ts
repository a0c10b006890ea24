// Recovery of a journal directory at open. Every segment is scanned with resync (segment.ts), so a bad
// record costs only itself: the records after it are kept and uploaded. Two kinds of trouble:
//  - a torn tail: the last segment ends in bytes that never became a committed record (its header's
//    high-water mark does not count them). The normal trace of a crash: cut, and their seqs reused
//    (nothing was acted on them, nothing was uploaded).
//  - damage: a bad byte range anywhere else, a damaged header slot, or records the header (or the next
//    segment's name) says were written but that no longer check. The segment is copied aside as
//    `<name>.damaged`, rewritten with every record that still checks (atomically), and reported.
// Seqs are never handed out twice: the next seq is above every record kept, the last segment's header
// mark, every segment's name and the upload state; and above the `seq.hwm` reservation when the last
// segment's header cannot be read. Nothing here emits alarms: open() keeps the report, and the lane
// raises the alarms once it listens (FileJournal.raiseRecoveryAlarms).

import { mkdir, readdir, readFile, open, unlink, writeFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Alarm } from '../../protocol/alarms.js';
import { writeFileAtomic, syncDir } from '../platform/atomic-file.js';
import { SEG, SEGMENT_HEADER_BYTES, encodeHeader, scanSegment, segName, type ScannedRecord } from './segment.js';

export interface Segment {
  firstSeq: number;
  /** Seq of the last record in it; firstSeq - 1 when empty. */
  lastSeq: number;
  path: string;
  /** File size: where the next record goes. */
  bytes: number;
  /** Format 2 (with a header carrying the high-water mark). */
  headered: boolean;
}

export interface DamagedSegment {
  file: string;
  /** The damaged file as found, kept for an operator; undefined when it could not be written. */
  keptAs?: string;
  /** Byte ranges [from, to) that held no good record (a damaged header slot shows as 0-64). */
  ranges: { from: number; to: number }[];
  recordsKept: number;
  /** Records known to have been written (by seq) that no longer check. */
  recordsLost: number;
  lostSeqs: { from: number; to: number }[];
  /** Why the segment could not be copied aside or rewritten (then it was left as found). */
  repairError?: string;
  /** The segment `seq.hwm` names as the working one is gone (seqs restart above the reservation). */
  missing?: true;
}

/** What open() found and did; FileJournal.recovery. */
export interface JournalRecoveryReport {
  segmentsScanned: number;
  recordsKept: number;
  /** Bytes cut from the end of the last segment: records torn by a crash before they were committed. */
  tornBytesCut: number;
  damaged: DamagedSegment[];
  recordsLostUnreadable: number;
  /** Records that check but sit in the wrong segment or out of order: skipped. */
  strayRecords: number;
  /** The first seq handed out after this recovery. */
  nextSeq: number;
}

export interface Recovered {
  segments: Segment[];
  /** Kept records not yet acknowledged, oldest first, at most `memoryRecords` of them. */
  unacked: ScannedRecord[];
  /** More unacknowledged records are on disk than in `unacked`. */
  spilled: boolean;
  /** Kept records not yet acknowledged, all of them. */
  backlog: number;
  uploadedThrough: number;
  reservedThrough: number;
  /** The working segment `seq.hwm` last named (0: none). */
  tailFirstSeq: number;
  nextSeq: number;
  /** The last segment can take the next record (clean, with a header, ends right below nextSeq). */
  tailAppendable: boolean;
  report: JournalRecoveryReport;
}

export const statePath = (dir: string) => join(dir, 'uploaded.json');
export const reservationPath = (dir: string) => join(dir, 'seq.hwm');

async function readJson(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    const v = JSON.parse(await readFile(path, 'utf8')) as unknown;
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined; // missing, or torn by a crash before its rename (then the older state is re-derived)
  }
}

const safe = (v: unknown) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0);

/** Scan, repair and report; `memoryRecords` caps the unacknowledged records returned (the rest: `spilled`). */
export async function recoverJournal(dir: string, memoryRecords: number, warn: (o: object, msg: string) => void): Promise<Recovered> {
  await mkdir(dir, { recursive: true });
  const uploadedThrough = safe((await readJson(statePath(dir)))?.uploadedThrough);
  const reservation = await readJson(reservationPath(dir));
  const reservedThrough = safe(reservation?.reservedThrough);
  const tailFirstSeq = safe(reservation?.tail);
  let names = (await readdir(dir)).filter((n) => SEG.test(n)).sort();
  const report: JournalRecoveryReport = { segmentsScanned: names.length, recordsKept: 0, tornBytesCut: 0, damaged: [], recordsLostUnreadable: 0, strayRecords: 0, nextSeq: 1 };

  // A segment file with no record that never had one (no header, or a header whose mark is below its
  // first seq) is a rotation that crashed or failed before use: nothing was written into it. Removed,
  // unless it is the last one with a good header (the working segment, its first record still to come)
  // and the segment before it holds no seq from its name on (else it is a failed rotation's leftover).
  const empty: string[] = [];
  for (const name of names) {
    const path = join(dir, name);
    if ((await stat(path)).size > SEGMENT_HEADER_BYTES) continue;
    const s = scanSegment(new Uint8Array(await readFile(path)), firstSeqOf(name));
    if (s.legacy || s.records.length > 0 || (s.hwm !== undefined && s.hwm >= firstSeqOf(name))) continue;
    if (name === names.at(-1) && s.hwm !== undefined) {
      const before = names.at(-2);
      const prev = before ? scanSegment(new Uint8Array(await readFile(join(dir, before))), firstSeqOf(before)).records.at(-1)?.seq ?? 0 : 0;
      if (prev < firstSeqOf(name)) continue;
    }
    empty.push(name);
  }
  for (const name of empty) await unlink(join(dir, name));
  if (empty.length) names = names.filter((n) => !empty.includes(n));

  const segments: Segment[] = [];
  const unacked: ScannedRecord[] = [];
  let spilled = false;
  let backlog = 0;
  let bound = 0; // highest seq known to have been handed out
  let lastHeaderUsable = false;
  let tailAppendable = false;
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    const path = join(dir, name);
    const firstSeq = firstSeqOf(name);
    const last = i === names.length - 1;
    const nextFirst = last ? undefined : firstSeqOf(names[i + 1]);
    const bytes = new Uint8Array(await readFile(path));
    const s = scanSegment(bytes, firstSeq, nextFirst);
    const kept = s.records;
    const lastKept = kept.length ? kept[kept.length - 1].seq : firstSeq - 1;
    // Seqs this segment held: up to its header's mark when a slot checks, else up to the next segment's
    // name (a segment without a readable header that is the last one: what its records say).
    const written = s.hwm !== undefined ? Math.max(lastKept, s.hwm) : nextFirst !== undefined ? nextFirst - 1 : lastKept;
    const lostSeqs = missingSeqs(firstSeq, kept, written);
    const lost = lostSeqs.reduce((a, r) => a + r.to - r.from + 1, 0);
    const newlyLost = Math.max(0, lost - s.knownLost);
    const end = s.bad.at(-1);
    const tail = end && end.to === bytes.byteLength && end.from >= s.goodEnd ? end : undefined;
    // Only the last segment may end torn, and only in bytes its header's mark never counted.
    const torn = last && tail && newlyLost === 0 && (s.goodSlots === 2 || s.legacy) ? tail : undefined;
    const ranges = s.bad.filter((r) => r !== torn);
    report.strayRecords += s.strays;
    report.recordsKept += kept.length;
    bound = Math.max(bound, written, firstSeq - 1);
    let size = bytes.byteLength;
    let headered = !s.legacy;
    let appendable = last && !s.legacy && s.goodSlots === 2;

    if (ranges.length > 0 || newlyLost > 0) {
      const d: DamagedSegment = { file: path, ranges, recordsKept: kept.length, recordsLost: newlyLost, lostSeqs };
      try {
        d.keptAs = await keepAside(path, bytes);
        // Rewrite with the records that check, under a header that keeps the mark (no seq comes back) and
        // counts the lost ones (reported now, not again at the next open).
        const body = Buffer.concat([encodeHeader(firstSeq, written, lost), ...kept.map((r) => bytes.subarray(r.offset, r.offset + r.length))]);
        await writeFileAtomic(path, body);
        size = body.byteLength;
        headered = true;
      } catch (e) {
        d.repairError = (e as Error).message;
      }
      // New records go to a new segment, after the mark.
      appendable = false;
      report.damaged.push(d);
      report.recordsLostUnreadable += newlyLost;
      warn({ segment: name, ranges, kept: kept.length, lost: newlyLost, keptAs: d.keptAs, repairError: d.repairError }, 'journal: damaged segment, records that still check kept');
    } else if (torn) {
      const fh = await open(path, 'r+');
      try {
        await fh.truncate(torn.from);
        await fh.sync();
      } finally {
        await fh.close();
      }
      size = torn.from;
      report.tornBytesCut += torn.to - torn.from;
      warn({ segment: name, cut: torn.to - torn.from }, 'journal: torn tail cut off');
    }
    if (last) {
      lastHeaderUsable = s.goodSlots > 0;
      tailAppendable = appendable;
    }
    segments.push({ firstSeq, lastSeq: lastKept, path, bytes: size, headered });
    for (const r of kept) {
      if (r.seq <= uploadedThrough) continue;
      backlog++;
      if (!spilled && unacked.length < memoryRecords) unacked.push(r);
      else spilled = true;
    }
  }
  if (names.length > 0) bound = Math.max(bound, firstSeqOf(names.at(-1)!) - 1);
  // `seq.hwm` names the working segment of its time: a later one is never missing unless lost.
  const missingTail = tailFirstSeq > (names.length > 0 ? firstSeqOf(names.at(-1)!) : 0);
  if (missingTail) {
    const file = join(dir, segName(tailFirstSeq));
    report.damaged.push({ file, missing: true, ranges: [], recordsKept: 0, recordsLost: 0, lostSeqs: [] });
    warn({ segment: basename(file) }, 'journal: the working segment is missing; seqs restart above the reservation');
  }
  // No header to trust for the last segment (damaged, old format, or no segment at all): the reservation bounds it.
  if (!lastHeaderUsable || missingTail) bound = Math.max(bound, reservedThrough);
  const nextSeq = Math.max(bound, uploadedThrough) + 1;
  const tail = segments.at(-1);
  report.nextSeq = nextSeq;
  return {
    segments, unacked, spilled, backlog, uploadedThrough, reservedThrough, tailFirstSeq, nextSeq, report,
    tailAppendable: tailAppendable && tail !== undefined && tail.lastSeq + 1 === nextSeq,
  };
}

function firstSeqOf(name: string): number {
  return Number(SEG.exec(name)![1]);
}

/** Seq ranges in [firstSeq, written] that no kept record holds. */
function missingSeqs(firstSeq: number, kept: ScannedRecord[], written: number): { from: number; to: number }[] {
  const out: { from: number; to: number }[] = [];
  let expect = firstSeq;
  for (const r of kept) {
    if (r.seq > expect) out.push({ from: expect, to: r.seq - 1 });
    expect = r.seq + 1;
  }
  if (written >= expect) out.push({ from: expect, to: written });
  return out;
}

/** Copy a damaged segment's bytes aside, as found: `<name>.damaged` (or `.damaged-2`, … when an older copy differs). */
async function keepAside(path: string, bytes: Uint8Array): Promise<string> {
  for (let k = 1; k < 100; k++) {
    const p = k === 1 ? `${path}.damaged` : `${path}.damaged-${k}`;
    const existing = await stat(p).catch(() => undefined);
    if (existing) {
      if (existing.size === bytes.byteLength && Buffer.from(await readFile(p)).equals(bytes)) return p;
      continue;
    }
    const fh = await open(p, 'wx');
    try {
      await writeFile(fh, bytes);
      await fh.sync();
    } catch (e) {
      await fh.close().catch(() => {});
      await unlink(p).catch(() => {});
      throw e;
    }
    await fh.close();
    await syncDir(dirname(path));
    return p;
  }
  throw new Error(`too many damaged copies of ${basename(path)}`);
}

const list = (rs: { from: number; to: number }[], fmt: (r: { from: number; to: number }) => string, max = 4) =>
  rs.slice(0, max).map(fmt).join(', ') + (rs.length > max ? `, … (${rs.length} in all)` : '');

/** The alarms a recovery report calls for: one `journal-corrupt` per damaged segment, with its counts. */
export function recoveryAlarms(r: JournalRecoveryReport): Alarm[] {
  return r.damaged.map((d) => d.missing ? {
    alarm: 'journal-corrupt' as const,
    file: d.file,
    detail: `segment missing: the records it held are lost; seqs go on from ${r.nextSeq}, above every seq reserved`,
  } : {
    alarm: 'journal-corrupt' as const,
    file: d.file,
    detail:
      `${d.ranges.length} damaged range${d.ranges.length === 1 ? '' : 's'}` +
      (d.ranges.length ? ` (bytes ${list(d.ranges, (x) => `${x.from}-${x.to}`)})` : '') +
      `: ${d.recordsLost} record${d.recordsLost === 1 ? '' : 's'} lost unreadable` +
      (d.lostSeqs.length ? ` (seq ${list(d.lostSeqs, (x) => (x.from === x.to ? `${x.from}` : `${x.from}-${x.to}`))})` : '') +
      `, ${d.recordsKept} kept and uploaded; ` +
      (d.keptAs ? `damaged copy kept as ${basename(d.keptAs)}` : `left as found (${d.repairError ?? 'not repaired'})`),
  });
}
