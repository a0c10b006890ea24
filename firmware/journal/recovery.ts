// Recovery of a journal directory at open. Every segment is scanned with resync (segment.ts), so a bad
// record costs only itself: the records after it are kept and uploaded. Two kinds of trouble:
//  - a torn write: the last segment, left open by a crash, ends in the start of the next record cut at a
//    sector boundary, zeros after it. Nothing was acted on it and nothing uploaded: the bytes are zeroed
//    and its seq is handed out again (so a kill -9 leaves no gap).
//  - damage: any other bad byte range, a damaged header slot, a file shorter than it was created, or
//    records the header (or the next segment's name) says were written but that no longer check. The
//    segment is copied aside as `<name>.damaged`, rewritten (atomically) with every record that still
//    checks, and reported.
// Seqs are never handed out twice: the next one is above every record kept, every closed segment's mark,
// every segment's name and the upload state; when the end of the last segment cannot be trusted (damaged
// at its end or cut, its header unreadable, or the file itself gone) it is above the `seq.hwm`
// reservation too. Nothing here emits alarms: open() keeps the report and the lane raises the alarms
// once it listens (FileJournal.raiseRecoveryAlarms).

import { mkdir, open, readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Alarm } from '../../protocol/alarms.js';
import { syncDir, writeFileAtomic, writeFully } from '../platform/atomic-file.js';
import { SEG, SEGMENT_HEADER_BYTES, encodeHeader, isTornWrite, scanSegment, segName, type ScannedRecord } from './segment.js';
import { readReservation } from './seq-reservation.js';

export interface Segment {
  firstSeq: number;
  /** Seq of the last record in it; firstSeq - 1 when empty. */
  lastSeq: number;
  path: string;
  /** End of the last record: where the next one goes. */
  bytes: number;
  /** The file's size (format 2: created sparse at its full size). */
  fileSize: number;
  /** Format 2 (with a header). */
  headered: boolean;
  /** Seqs its header counts as lost to earlier damage. */
  knownLost: number;
  /** The mark its header keeps, when above lastSeq (seqs burnt by a repair). */
  mark?: number;
  /** Just created: its directory entry is made durable with its first commit. */
  unsyncedDir?: boolean;
}

export interface DamagedSegment {
  file: string;
  /** The damaged file as found, kept for an operator; undefined when it could not be written. */
  keptAs?: string;
  /** Byte ranges [from, to) that held no good record (a damaged header slot shows as 0-64). */
  ranges: { from: number; to: number }[];
  /** The file was shorter than it was created (cut). */
  truncated?: true;
  recordsKept: number;
  /** Records known to have been written (by seq) that no longer check. */
  recordsLost: number;
  lostSeqs: { from: number; to: number }[];
  /** After the last record that checks, seqs that may have been written (up to the reservation): never handed out again. */
  unknownTail?: { from: number; to: number };
  /** Why the segment could not be copied aside or rewritten (then it was left as found). */
  repairError?: string;
  /** The segment after this one is gone (this one was closed when the next was started). */
  missing?: true;
}

/** What open() found and did; FileJournal.recovery. */
export interface JournalRecoveryReport {
  segmentsScanned: number;
  recordsKept: number;
  /** Bytes of a torn write zeroed (or, format 1, cut) at the end of the last segment. */
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
  nextSeq: number;
  /** The last segment can take the next record (format 2, clean, ends right below nextSeq). */
  tailAppendable: boolean;
  /** The last segment's header says closed (it must be marked open again before it is written). */
  tailClosed: boolean;
  report: JournalRecoveryReport;
}

export const statePath = (dir: string) => join(dir, 'uploaded.json');

async function readJson(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    const v = JSON.parse(await readFile(path, 'utf8')) as unknown;
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined; // missing, or torn by a crash before its rename (then the older state is re-derived)
  }
}

const safe = (v: unknown) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0);
const firstSeqOf = (name: string) => Number(SEG.exec(name)![1]);

/** Scan, classify, then repair; `memoryRecords` caps the unacknowledged records returned (the rest: `spilled`). */
export async function recoverJournal(dir: string, memoryRecords: number, warn: (o: object, msg: string) => void): Promise<Recovered> {
  await mkdir(dir, { recursive: true });
  await unlink(join(dir, 'probe.tmp')).catch(() => {}); // a disk probe a crash interrupted
  const uploadedThrough = safe((await readJson(statePath(dir)))?.uploadedThrough);
  const reservedThrough = await readReservation(dir);
  let names = (await readdir(dir)).filter((n) => SEG.test(n)).sort();
  const report: JournalRecoveryReport = { segmentsScanned: names.length, recordsKept: 0, tornBytesCut: 0, damaged: [], recordsLostUnreadable: 0, strayRecords: 0, nextSeq: 1 };
  names = await dropUnused(dir, names);

  // Scan and classify every segment; nothing is changed on disk yet.
  type Found = { name: string; path: string; bytes: Uint8Array; scan: ReturnType<typeof scanSegment>; written: number; lostSeqs: { from: number; to: number }[]; lost: number; damaged?: DamagedSegment; torn?: { from: number; to: number } };
  const found: Found[] = [];
  let bound = 0; // highest seq known to have been handed out
  let tailSuspect = names.length === 0 ? reservedThrough > 0 : false;
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    const path = join(dir, name);
    const firstSeq = firstSeqOf(name);
    const last = i === names.length - 1;
    const nextFirst = last ? undefined : firstSeqOf(names[i + 1]);
    const bytes = new Uint8Array(await readFile(path));
    const s = scanSegment(bytes, firstSeq, nextFirst);
    const h = s.header;
    const lastKept = s.records.at(-1)?.seq ?? firstSeq - 1;
    // Seqs it held: a closed header's mark; else up to the next segment's name; the last one: its records.
    const written = h?.closed ? Math.max(lastKept, h.hwm) : nextFirst !== undefined ? nextFirst - 1 : lastKept;
    const lostSeqs = missingSeqs(firstSeq, s.records, written);
    const lost = lostSeqs.reduce((a, r) => a + r.to - r.from + 1, 0);
    const newlyLost = Math.max(0, lost - (h?.knownLost ?? 0));
    const truncated = h !== undefined && bytes.byteLength < h.size;
    const end = s.bad.at(-1);
    const tail = end && end.to === s.zerosFrom && end.from >= s.goodEnd ? end : undefined;
    // Only the last segment, left open by a crash, may end in a torn write; format 1: any bad tail.
    const torn =
      last && tail && newlyLost === 0 && !truncated && s.bad.length === 1 &&
      (s.legacy || (h !== undefined && !h.closed && s.goodSlots === 2 && isTornWrite(bytes, tail.from, tail.to, lastKept + 1)))
        ? tail
        : undefined;
    const ranges = s.bad.filter((r) => r !== torn);
    const f: Found = { name, path, bytes, scan: s, written, lostSeqs, lost, torn };
    if (ranges.length > 0 || newlyLost > 0 || truncated) {
      f.damaged = { file: path, ranges, recordsKept: s.records.length, recordsLost: newlyLost, lostSeqs, ...(truncated ? { truncated: true as const } : {}) };
    }
    // The end of the last segment cannot be trusted unless a clean close marked it, or it ends clean or torn.
    if (last && !(h?.closed && s.goodSlots > 0)) tailSuspect = truncated || (tail !== undefined && !torn) || (!s.legacy && s.goodSlots === 0);
    bound = Math.max(bound, written, firstSeq - 1);
    report.strayRecords += s.strays;
    report.recordsKept += s.records.length;
    found.push(f);
  }
  // The last segment was closed because a next one was started: that one is gone.
  const t = found.at(-1);
  if (t?.scan.header?.rotated) {
    tailSuspect = true;
    report.damaged.push({ file: join(dir, segName(t.written + 1)), missing: true, ranges: [], recordsKept: 0, recordsLost: 0, lostSeqs: [] });
  }
  if (tailSuspect) bound = Math.max(bound, reservedThrough);
  const nextSeq = Math.max(bound, uploadedThrough) + 1;
  report.nextSeq = nextSeq;

  // Repair what needs it.
  const segments: Segment[] = [];
  const unacked: ScannedRecord[] = [];
  let spilled = false;
  let backlog = 0;
  for (const [i, f] of found.entries()) {
    const s = f.scan;
    const firstSeq = firstSeqOf(f.name);
    const last = i === found.length - 1;
    const lastKept = s.records.at(-1)?.seq ?? firstSeq - 1;
    let seg: Segment = { firstSeq, lastSeq: lastKept, path: f.path, bytes: s.goodEnd, fileSize: f.bytes.byteLength, headered: !s.legacy, knownLost: s.header?.knownLost ?? 0 };
    if (f.damaged) {
      const d = f.damaged;
      // The mark it keeps: what it held, or (the last one, its end unknown) everything below the next seq.
      const hwm = last && tailSuspect ? nextSeq - 1 : f.written;
      if (last && tailSuspect && hwm > lastKept) d.unknownTail = { from: lastKept + 1, to: hwm };
      const knownLost = missingSeqs(firstSeq, s.records, hwm).reduce((a, r) => a + r.to - r.from + 1, 0);
      try {
        d.keptAs = await keepAside(f.path, f.bytes, s.zerosFrom);
        const records = s.records.map((r) => f.bytes.subarray(r.offset, r.offset + r.length));
        const size = SEGMENT_HEADER_BYTES + records.reduce((a, r) => a + r.byteLength, 0);
        await writeFileAtomic(f.path, Buffer.concat([encodeHeader({ firstSeq, hwm, size, knownLost, closed: true }), ...records]));
        seg = { ...seg, bytes: size, fileSize: size, headered: true, knownLost, mark: hwm };
      } catch (e) {
        d.repairError = (e as Error).message;
      }
      report.damaged.unshift(d);
      report.recordsLostUnreadable += d.recordsLost;
      warn({ segment: f.name, ranges: d.ranges, kept: d.recordsKept, lost: d.recordsLost, unknownTail: d.unknownTail, keptAs: d.keptAs, repairError: d.repairError }, 'journal: damaged segment, records that still check kept');
    } else if (f.torn) {
      await cutTail(f.path, f.torn, s.legacy);
      report.tornBytesCut += f.torn.to - f.torn.from;
      if (s.legacy) seg.fileSize = f.torn.from;
      warn({ segment: f.name, cut: f.torn.to - f.torn.from }, 'journal: torn write at the end cut off');
    }
    segments.push(seg);
    for (const r of s.records) {
      if (r.seq <= uploadedThrough) continue;
      backlog++;
      if (!spilled && unacked.length < memoryRecords) unacked.push(r);
      else spilled = true;
    }
  }
  report.damaged.sort((a, b) => (a.file < b.file ? -1 : 1));
  const tailSeg = segments.at(-1);
  const tailAppendable = t !== undefined && !t.scan.legacy && t.scan.goodSlots === 2 && !t.damaged && !t.scan.header?.rotated && tailSeg!.lastSeq + 1 === nextSeq;
  return {
    segments, unacked, spilled, backlog, uploadedThrough, reservedThrough, nextSeq, report, tailAppendable,
    tailClosed: t?.scan.header?.closed === true,
  };
}

/**
 * Remove segment files that never held a record: a rotation that crashed or failed before its first
 * record. Kept: the last one if its header checks and the segment before it holds no seq from its name on
 * (it is the working segment, its first record still to come).
 */
async function dropUnused(dir: string, names: string[]): Promise<string[]> {
  const unused: string[] = [];
  for (const [i, name] of names.entries()) {
    const path = join(dir, name);
    // Its start tells: records begin right after the header (a created file is zeros past it).
    const fh = await open(path, 'r');
    let head: Buffer;
    try {
      const { size } = await fh.stat();
      head = Buffer.alloc(Math.min(size, 1 << 16));
      await fh.read(head, 0, head.byteLength, 0);
    } finally {
      await fh.close();
    }
    const s = scanSegment(head, firstSeqOf(name));
    if (s.legacy || s.records.length > 0 || s.zerosFrom > SEGMENT_HEADER_BYTES || (s.header && s.header.hwm >= firstSeqOf(name))) continue;
    if (i === names.length - 1 && s.header) {
      const before = names[i - 1];
      const prev = before ? (scanSegment(new Uint8Array(await readFile(join(dir, before))), firstSeqOf(before)).records.at(-1)?.seq ?? 0) : 0;
      if (prev < firstSeqOf(name)) continue;
    }
    unused.push(name);
  }
  for (const name of unused) await unlink(join(dir, name));
  return names.filter((n) => !unused.includes(n));
}

/** Drop a torn write: format 2, overwrite it with zeros in place (the file keeps its size at every moment); format 1, cut the file. */
async function cutTail(path: string, torn: { from: number; to: number }, legacy: boolean): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    if (legacy) await fh.truncate(torn.from);
    else await writeFully(fh, new Uint8Array(torn.to - torn.from), torn.from);
    await fh.datasync();
  } finally {
    await fh.close();
  }
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

/**
 * Copy a damaged segment's bytes aside, as found: `<name>.damaged` (or `.damaged-2`, … when an older copy
 * differs). The zeros at its end stay a hole (`dataEnd` on), as in the segment.
 */
async function keepAside(path: string, bytes: Uint8Array, dataEnd: number): Promise<string> {
  for (let k = 1; k < 100; k++) {
    const p = k === 1 ? `${path}.damaged` : `${path}.damaged-${k}`;
    const existing = await stat(p).catch(() => undefined);
    if (existing) {
      if (existing.size === bytes.byteLength && Buffer.from(await readFile(p)).equals(bytes)) return p;
      continue;
    }
    const fh = await open(p, 'wx');
    try {
      await writeFile(fh, bytes.subarray(0, dataEnd));
      if (bytes.byteLength > dataEnd) await fh.truncate(bytes.byteLength);
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
const seqs = (x: { from: number; to: number }) => (x.from === x.to ? `${x.from}` : `${x.from}-${x.to}`);

/** The alarms a recovery report calls for: one `journal-corrupt` per damaged (or missing) segment, with its counts. */
export function recoveryAlarms(r: JournalRecoveryReport): Alarm[] {
  return r.damaged.map((d) => ({
    alarm: 'journal-corrupt' as const,
    file: d.file,
    detail: d.missing
      ? `segment missing: the records it held are lost; seqs go on from ${r.nextSeq}, above every seq reserved`
      : `${d.ranges.length} damaged range${d.ranges.length === 1 ? '' : 's'}` +
        (d.ranges.length ? ` (bytes ${list(d.ranges, (x) => `${x.from}-${x.to}`)})` : '') +
        (d.truncated ? ', file cut short' : '') +
        `: ${d.recordsLost} record${d.recordsLost === 1 ? '' : 's'} lost unreadable` +
        (d.recordsLost ? ` (seq ${list(d.lostSeqs, seqs)})` : '') +
        (d.unknownTail ? `, seqs ${seqs(d.unknownTail)} after the last readable record never handed out again` : '') +
        `, ${d.recordsKept} kept and uploaded; ` +
        (d.keptAs ? `damaged copy kept as ${basename(d.keptAs)}` : `left as found (${d.repairError ?? 'not repaired'})`),
  }));
}
