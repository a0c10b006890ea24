// One journal segment file: `seg-<first seq, 16 digits>.jnl`. Format 2 (since issue 14): a 64-byte header
// (two identical 32-byte slots), then records back to back (protocol/journal-record.ts), then zeros: the
// file is created at its full size as a sparse file, so records overwrite zeros and the file's size never
// changes while it is written (a commit is one write and one fdatasync, with no size update to journal),
// a cut file is told by its size, and what a crash left half-written is told by its shape.
// Format 1 segments (no header, records from byte 0, no zeros) are still read.
//
// Reading is resynchronising: a record that does not check (magic, length, CRC, JSON) is skipped and the
// scan goes on at the next offset where a record checks, so damage costs only the records it touched.
// Pure functions over bytes; the file journal and its recovery do the I/O.

import { crc32 } from 'node:zlib';
import { JOURNAL_MAX_PAYLOAD, JOURNAL_RECORD_HEADER, decodeJournalRecords } from '../../protocol/journal-record.js';

export const SEGMENT_HEADER_BYTES = 64;
export const SLOT_BYTES = 32;
const H0 = 0x4a, H1 = 0x53; // "JS"
const SEGMENT_FORMAT = 2;
// A record starts with "JR", format 1, then a zero byte.
const RECORD_MAGIC = Buffer.from([0x4a, 0x52, 0x01, 0x00]);
/** Writes are torn at sector boundaries at worst (pages after a kill -9, sectors after a power cut). */
const SECTOR = 512;
const ZEROS = Buffer.alloc(64 * 1024);

export const SEG = /^seg-(\d{16})\.jnl$/;
export const segName = (firstSeq: number) => `seg-${String(firstSeq).padStart(16, '0')}.jnl`;

export interface SegmentHeader {
  firstSeq: number;
  /**
   * Closed: the highest seq ever written into the segment, exact. Open (being written, or a crash
   * stopped it): a lower bound, the last seq it held when the header was written.
   */
  hwm: number;
  /** The size the file was created with (sparse): a file found shorter was cut. */
  size: number;
  /** Seqs up to hwm it lacks on purpose (lost to damage, reported, rewritten without them). */
  knownLost: number;
  closed: boolean;
  /** Closed because the next segment was started (which must then exist). */
  rotated?: boolean;
}

/**
 * One slot: bytes 0-1 "JS", 2 format (2), 3 slot number (0, 1), 4-11 first seq (u64 LE), 12-19 high-water
 * mark (u64 LE), 20-23 created size (u32 LE), 24-26 seqs known lost (u24 LE), 27 flags (bit 0: closed, bit 1:
 * the next segment was started),
 * 28-31 CRC-32 (zlib) of bytes 0-27.
 */
export function encodeSlot(slot: 0 | 1, h: SegmentHeader): Buffer {
  const b = Buffer.alloc(SLOT_BYTES);
  b[0] = H0;
  b[1] = H1;
  b[2] = SEGMENT_FORMAT;
  b[3] = slot;
  b.writeBigUInt64LE(BigInt(h.firstSeq), 4);
  b.writeBigUInt64LE(BigInt(h.hwm), 12);
  b.writeUInt32LE(Math.min(h.size, 0xffffffff), 20);
  b.writeUIntLE(Math.min(h.knownLost, 0xffffff), 24, 3);
  b[27] = (h.closed ? 1 : 0) | (h.rotated ? 2 : 0);
  b.writeUInt32LE(crc32(b.subarray(0, 28)), 28);
  return b;
}

/** The header: both slots alike (each is a copy of the other for a bit that flips). */
export function encodeHeader(h: SegmentHeader): Buffer {
  return Buffer.concat([encodeSlot(0, h), encodeSlot(1, h)]);
}

/** The header of a segment whose first seq is `firstSeq`: the slot that checks (the higher mark if both do). */
export function decodeHeader(bytes: Uint8Array, firstSeq: number): (SegmentHeader & { goodSlots: number }) | undefined {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let best: (SegmentHeader & { goodSlots: number }) | undefined;
  let goodSlots = 0;
  for (const slot of [0, 1] as const) {
    const at = slot * SLOT_BYTES;
    if (b.length < at + SLOT_BYTES) continue;
    const s = b.subarray(at, at + SLOT_BYTES);
    if (s[0] !== H0 || s[1] !== H1 || s[2] !== SEGMENT_FORMAT || s[3] !== slot) continue;
    if (crc32(s.subarray(0, 28)) !== s.readUInt32LE(28)) continue;
    if (Number(s.readBigUInt64LE(4)) !== firstSeq) continue;
    goodSlots++;
    const h = { firstSeq, hwm: Number(s.readBigUInt64LE(12)), size: s.readUInt32LE(20), knownLost: s.readUIntLE(24, 3), closed: (s[27] & 1) === 1, rotated: (s[27] & 2) === 2, goodSlots: 0 };
    if (!best || h.hwm > best.hwm) best = h;
  }
  if (best) best.goodSlots = goodSlots;
  return best;
}

/** Format 1 segments start with a record; format 2 with a header slot (or, damaged, anything else). */
export function isLegacySegment(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 4 && RECORD_MAGIC.equals(Buffer.from(bytes.buffer, bytes.byteOffset, 4));
}

export interface ScannedRecord {
  seq: number;
  entry: unknown;
  /** Byte offset in the file, and the record's length. */
  offset: number;
  length: number;
}

export interface SegmentScan {
  /** Where records start (after the header; 0 for format 1). */
  dataStart: number;
  header?: SegmentHeader;
  /** Header slots that check (0-2; 0 for format 1). */
  goodSlots: number;
  legacy: boolean;
  /** Records that check, seqs strictly increasing and inside the segment's range. */
  records: ScannedRecord[];
  /** Byte ranges [from, to) that are neither a good record nor the free zeros at the end, in file order. */
  bad: { from: number; to: number }[];
  /** End of the last good record (the header's end when there is none): where the next record goes. */
  goodEnd: number;
  /** Where the zeros that run to the end of the file start (format 2: the free part; the length when none). */
  zerosFrom: number;
  /** Records that check but whose seq does not belong here (out of range or not increasing): skipped. */
  strays: number;
}

/**
 * Scan a segment's bytes. `firstSeq` comes from the file name; `seqLimit` (the next segment's first seq)
 * bounds the seqs that may be in it. Never throws.
 */
export function scanSegment(bytes: Uint8Array, firstSeq: number, seqLimit = Number.MAX_SAFE_INTEGER): SegmentScan {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const legacy = isLegacySegment(b);
  const header = legacy ? undefined : decodeHeader(b, firstSeq);
  const dataStart = legacy ? 0 : Math.min(SEGMENT_HEADER_BYTES, b.length);
  const out: SegmentScan = { dataStart, header, goodSlots: header?.goodSlots ?? 0, legacy, records: [], bad: [], goodEnd: dataStart, zerosFrom: b.length, strays: 0 };
  if (!legacy && b.length > 0 && out.goodSlots < 2) out.bad.push({ from: 0, to: dataStart });
  let last = firstSeq - 1;
  let p = dataStart;
  let badFrom: number | undefined;
  while (p < b.length) {
    const run = decodeJournalRecords(b.subarray(p));
    for (const r of run.records) {
      const length = JOURNAL_RECORD_HEADER + b.readUInt32LE(p + r.offset + 4);
      if (r.seq > last && r.seq < seqLimit) {
        if (badFrom !== undefined) out.bad.push({ from: badFrom, to: p + r.offset });
        badFrom = undefined;
        out.records.push({ seq: r.seq, entry: r.entry, offset: p + r.offset, length });
        out.goodEnd = p + r.offset + length;
        last = r.seq;
      } else {
        out.strays++;
        badFrom ??= p + r.offset;
      }
    }
    p += run.goodBytes;
    if (p >= b.length) break;
    // Damage here (or the free zeros): resync at the next offset where a whole record checks.
    badFrom ??= p;
    p = nextRecordStart(b, p + 1);
  }
  if (badFrom !== undefined) out.bad.push({ from: badFrom, to: b.length });
  // The zeros at the end are free space in format 2, not damage.
  if (!legacy) {
    let z = b.length;
    while (z - out.goodEnd >= ZEROS.length && ZEROS.equals(b.subarray(z - ZEROS.length, z))) z -= ZEROS.length;
    while (z > out.goodEnd && b[z - 1] === 0) z--;
    out.zerosFrom = z;
    out.bad = out.bad.filter((r) => r.from < z).map((r) => ({ from: r.from, to: Math.min(r.to, z) }));
  }
  return out;
}

/** The next offset at or after `from` where a record checks; the buffer's length when there is none. */
function nextRecordStart(b: Buffer, from: number): number {
  for (let q = b.indexOf(RECORD_MAGIC, from); q >= 0; q = b.indexOf(RECORD_MAGIC, q + 1)) {
    if (q + JOURNAL_RECORD_HEADER > b.length) break;
    const end = q + JOURNAL_RECORD_HEADER + b.readUInt32LE(q + 4);
    if (end <= b.length && decodeJournalRecords(b.subarray(q, end)).records.length === 1) return q;
  }
  return b.length;
}

/**
 * Is [from, to) — bytes after the last good record, zeros after them — what a write cut short leaves?
 * That is: it ends on a sector boundary, and it is the start of the record that should come next (`seq`),
 * cut before its end. A record whose bytes are all there but do not check (a flipped bit, also in its
 * length field) is damage, not a torn write.
 */
export function isTornWrite(bytes: Uint8Array, from: number, to: number, seq: number): boolean {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (to <= from || to % SECTOR !== 0) return false;
  const n = to - from;
  const want = Buffer.alloc(16);
  RECORD_MAGIC.copy(want, 0);
  want.writeBigUInt64LE(BigInt(seq), 8);
  // The magic, and the seq as far as it got (bytes 4-7, the length, are checked below).
  for (let i = 0; i < Math.min(n, 16); i++) if ((i < 4 || i >= 8) && b[from + i] !== want[i]) return false;
  if (n < 8) return true;
  const len = b.readUInt32LE(from + 4);
  if (len > JOURNAL_MAX_PAYLOAD || JOURNAL_RECORD_HEADER + len <= n) return false;
  // All there but with a damaged length? Then the bytes up to `to` check as a record of that length.
  if (n > JOURNAL_RECORD_HEADER) {
    const h = Buffer.from(b.subarray(from, from + 16));
    h.writeUInt32LE(n - JOURNAL_RECORD_HEADER, 4);
    const fixed = Buffer.concat([h, b.subarray(from + 16, to)]);
    if (decodeJournalRecords(fixed).records.length === 1) return false;
  }
  return true;
}

/** The records of a segment file's bytes (tests, tools): header skipped, damage skipped. */
export function segmentRecords(bytes: Uint8Array, firstSeq: number): ScannedRecord[] {
  return scanSegment(bytes, firstSeq).records;
}
