// One journal segment file: `seg-<first seq, 16 digits>.jnl`. Since format 2 it starts with a 64-byte
// header of two 32-byte slots that carry the segment's high-water mark (the highest seq ever written into
// it, rewritten with every group commit before its fdatasync), then records back to back
// (protocol/journal-record.ts). Format 1 segments (no header, records from byte 0) are still read.
//
// Reading is resynchronising: a record that does not check (magic, length, CRC, JSON) is skipped and the
// scan goes on at the next offset where a record checks, so damage costs only the records it touched.
// Pure functions over bytes; the file journal and its recovery do the I/O.

import { crc32 } from 'node:zlib';
import { JOURNAL_RECORD_HEADER, decodeJournalRecords } from '../../protocol/journal-record.js';

export const SEGMENT_HEADER_BYTES = 64;
export const SLOT_BYTES = 32;
const H0 = 0x4a, H1 = 0x53; // "JS"
const SEGMENT_FORMAT = 2;
// A record starts with "JR", format 1, then a zero byte.
const RECORD_MAGIC = Buffer.from([0x4a, 0x52, 0x01, 0x00]);

export const SEG = /^seg-(\d{16})\.jnl$/;
export const segName = (firstSeq: number) => `seg-${String(firstSeq).padStart(16, '0')}.jnl`;

/**
 * One header slot: bytes 0-1 "JS", 2 format (2), 3 slot number, 4-11 first seq (u64 LE), 12-19 high-water
 * mark (u64 LE), 20-27 seqs known lost (u64 LE: lost to damage, reported, and rewritten without them),
 * 28-31 CRC-32 of 0-27.
 */
export function encodeSlot(slot: 0 | 1, firstSeq: number, hwm: number, knownLost = 0): Buffer {
  const b = Buffer.alloc(SLOT_BYTES);
  b[0] = H0;
  b[1] = H1;
  b[2] = SEGMENT_FORMAT;
  b[3] = slot;
  b.writeBigUInt64LE(BigInt(firstSeq), 4);
  b.writeBigUInt64LE(BigInt(hwm), 12);
  b.writeBigUInt64LE(BigInt(knownLost), 20);
  b.writeUInt32LE(crc32(b.subarray(0, 28)), 28);
  return b;
}

/** Both slots with the same mark: a new segment's header, or a header rewritten after a failed commit. */
export function encodeHeader(firstSeq: number, hwm: number, knownLost = 0): Buffer {
  return Buffer.concat([encodeSlot(0, firstSeq, hwm, knownLost), encodeSlot(1, firstSeq, hwm, knownLost)]);
}

/** The high-water mark a header holds: the highest of its slots that check (and name this segment), or undefined. */
export function decodeHeader(bytes: Uint8Array, firstSeq: number): { hwm: number; knownLost: number; goodSlots: number } | undefined {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let hwm: number | undefined;
  let knownLost = 0;
  let goodSlots = 0;
  for (const slot of [0, 1] as const) {
    const at = slot * SLOT_BYTES;
    if (b.length < at + SLOT_BYTES) continue;
    const s = b.subarray(at, at + SLOT_BYTES);
    if (s[0] !== H0 || s[1] !== H1 || s[2] !== SEGMENT_FORMAT || s[3] !== slot) continue;
    if (crc32(s.subarray(0, 28)) !== s.readUInt32LE(28)) continue;
    if (Number(s.readBigUInt64LE(4)) !== firstSeq) continue;
    const h = Number(s.readBigUInt64LE(12));
    goodSlots++;
    hwm = hwm === undefined ? h : Math.max(hwm, h);
    knownLost = Math.max(knownLost, Number(s.readBigUInt64LE(20)));
  }
  return hwm === undefined ? undefined : { hwm, knownLost, goodSlots };
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
  /** The header's high-water mark, when a slot checks. */
  hwm?: number;
  /** Seqs up to hwm the segment lacks on purpose (an earlier recovery reported them lost). */
  knownLost: number;
  /** Header slots that check (0-2; 0 for format 1). */
  goodSlots: number;
  legacy: boolean;
  /** Records that check, seqs strictly increasing and inside the segment's range. */
  records: ScannedRecord[];
  /** Byte ranges [from, to) that are not part of a good record, in file order (the last may run to the end). */
  bad: { from: number; to: number }[];
  /** End of the last good record (the header's end when there is none). */
  goodEnd: number;
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
  const out: SegmentScan = { dataStart, hwm: header?.hwm, knownLost: header?.knownLost ?? 0, goodSlots: header?.goodSlots ?? 0, legacy, records: [], bad: [], goodEnd: dataStart, strays: 0 };
  if (!legacy && b.length > 0 && (header?.goodSlots ?? 0) < 2) out.bad.push({ from: 0, to: dataStart });
  let last = firstSeq - 1;
  let p = dataStart;
  let badFrom: number | undefined;
  while (p < b.length) {
    const run = decodeJournalRecords(b.subarray(p));
    for (const r of run.records) {
      const length = recordLength(b, p + r.offset);
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
    // Damage here: resync at the next offset where a whole record checks.
    badFrom ??= p;
    p = nextRecordStart(b, p + 1);
  }
  if (badFrom !== undefined) out.bad.push({ from: badFrom, to: b.length });
  return out;
}

function recordLength(b: Buffer, at: number): number {
  return JOURNAL_RECORD_HEADER + b.readUInt32LE(at + 4);
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

/** The records of a segment file's bytes (tests, tools): header skipped, damage skipped. */
export function segmentRecords(bytes: Uint8Array, firstSeq: number): ScannedRecord[] {
  return scanSegment(bytes, firstSeq).records;
}
