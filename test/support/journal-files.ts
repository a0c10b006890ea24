// Reading and shaping journal directories in tests: segment files, their records, and the states a crash
// or damage leaves them in (firmware/journal/segment.ts has the layout).
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeHeader, scanSegment, type ScannedRecord } from '../../firmware/journal/segment.js';

export const segFiles = (dir: string) => readdirSync(dir).filter((n) => /^seg-\d{16}\.jnl$/.test(n)).sort();
export const firstSeqOf = (name: string) => Number(name.slice(4, 20));

/** The records that check in one segment file. */
export function fileRecords(path: string): ScannedRecord[] {
  const name = path.split('/').at(-1)!;
  return scanSegment(readFileSync(path), firstSeqOf(name)).records;
}

/** Every seq that checks, over all segment files, in file order. */
export function seqsOnDisk(dir: string): number[] {
  return segFiles(dir).flatMap((n) => fileRecords(join(dir, n)).map((r) => r.seq));
}

/** Give a closed segment the header a crash leaves: open, its mark at its first seq - 1 (as created). */
export function markOpen(path: string): void {
  const b = readFileSync(path);
  const first = firstSeqOf(path.split('/').at(-1)!);
  encodeHeader({ firstSeq: first, hwm: first - 1, size: b.length, knownLost: 0, closed: false }).copy(b, 0);
  writeFileSync(path, b);
}

/** Where the next record would go: the end of the last one that checks. */
export function dataEnd(path: string): number {
  const name = path.split('/').at(-1)!;
  return scanSegment(readFileSync(path), firstSeqOf(name)).goodEnd;
}
