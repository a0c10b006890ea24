// Journal records on disk: a fixed header with a CRC-32, then the entry as UTF-8 JSON. Pure.
// Byte table: protocol/README.md, "Journal records". A reader stops at the first record that is
// short, has a bad magic, length or CRC: that is the torn tail of a crash and is never replayed.

import { crc32 } from 'node:zlib';

export const JOURNAL_RECORD_HEADER = 20;
export const JOURNAL_MAX_PAYLOAD = 1 << 20;
const M0 = 0x4a, M1 = 0x52; // "JR"
const FORMAT = 1;

export function encodeJournalRecord(seq: number, entry: unknown): Uint8Array {
  const json = JSON.stringify(entry);
  const length = Buffer.byteLength(json, 'utf8');
  if (length > JOURNAL_MAX_PAYLOAD) throw new Error(`journal entry of ${length} bytes is too large`);
  // The JSON is encoded straight after the header: one buffer, no copy (group commit encodes every record).
  const out = Buffer.allocUnsafe(JOURNAL_RECORD_HEADER + length);
  out[0] = M0;
  out[1] = M1;
  out[2] = FORMAT;
  out[3] = 0;
  out.writeUInt32LE(length, 4);
  out.writeBigUInt64LE(BigInt(seq), 8);
  out.write(json, JOURNAL_RECORD_HEADER, length, 'utf8');
  out.writeUInt32LE(crc32(out.subarray(JOURNAL_RECORD_HEADER), crc32(out.subarray(0, 16))), 16);
  return out;
}

export type JournalTailProblem = 'torn-header' | 'torn-payload' | 'bad-magic' | 'bad-length' | 'bad-checksum' | 'bad-payload';

export interface DecodedJournal {
  records: { seq: number; entry: unknown; offset: number }[];
  /** Bytes up to the end of the last good record. */
  goodBytes: number;
  /** Why reading stopped before the end, if it did. */
  reason?: JournalTailProblem;
}

export function decodeJournalRecords(bytes: Uint8Array): DecodedJournal {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: DecodedJournal['records'] = [];
  let p = 0;
  let reason: JournalTailProblem | undefined;
  while (p < b.length) {
    if (b.length - p < JOURNAL_RECORD_HEADER) { reason = 'torn-header'; break; }
    if (b[p] !== M0 || b[p + 1] !== M1 || b[p + 2] !== FORMAT) { reason = 'bad-magic'; break; }
    const len = b.readUInt32LE(p + 4);
    if (len > JOURNAL_MAX_PAYLOAD) { reason = 'bad-length'; break; }
    if (b.length - p < JOURNAL_RECORD_HEADER + len) { reason = 'torn-payload'; break; }
    const payload = b.subarray(p + JOURNAL_RECORD_HEADER, p + JOURNAL_RECORD_HEADER + len);
    if (crc32(payload, crc32(b.subarray(p, p + 16))) !== b.readUInt32LE(p + 16)) { reason = 'bad-checksum'; break; }
    let entry: unknown;
    try {
      entry = JSON.parse(payload.toString('utf8'));
    } catch {
      reason = 'bad-payload';
      break;
    }
    const seq = Number(b.readBigUInt64LE(p + 8));
    records.push({ seq, entry, offset: p });
    p += JOURNAL_RECORD_HEADER + len;
  }
  return { records, goodBytes: p, reason };
}
