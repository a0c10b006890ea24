// `seq.hwm`: seqs reserved ahead, in blocks. No seq above the reservation is ever handed out, so when the
// end of the last segment cannot be trusted (damaged or cut while it was being written, its header gone,
// or the file itself lost), recovery still starts above every seq that could have been used: a gap of at
// most a block, never a seq handed out twice.
//
// The file is 64 bytes, two 32-byte slots written in turn in place, each followed by an fdatasync (a
// write torn by a power cut spoils one slot only; the other holds the previous, still valid, reservation):
// bytes 0-1 "JH", 2 format (1), 3 slot number, 4-11 reserved through (u64 LE), 12-27 zero, 28-31 CRC-32
// (zlib) of bytes 0-27. The next block is written in the background when half of this one is used; a
// commit waits for it only if that write has not finished (or failed).

import { constants } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from '../config/log.js';
import { syncDir } from '../platform/atomic-file.js';
import { io } from './io-error.js';

export const reservationPath = (dir: string) => join(dir, 'seq.hwm');
const SLOT = 32;

function encode(slot: 0 | 1, through: number): Buffer {
  const b = Buffer.alloc(SLOT);
  b[0] = 0x4a;
  b[1] = 0x48;
  b[2] = 1;
  b[3] = slot;
  b.writeBigUInt64LE(BigInt(through), 4);
  b.writeUInt32LE(crc32(b.subarray(0, 28)), 28);
  return b;
}

/** The reservation in `dir` (the higher slot that checks), 0 when there is none. */
export async function readReservation(dir: string): Promise<number> {
  let b: Buffer;
  try {
    b = await readFile(reservationPath(dir));
  } catch {
    return 0;
  }
  let through = 0;
  for (const slot of [0, 1] as const) {
    const s = b.subarray(slot * SLOT, slot * SLOT + SLOT);
    if (s.length < SLOT || s[0] !== 0x4a || s[1] !== 0x48 || s[2] !== 1 || s[3] !== slot || crc32(s.subarray(0, 28)) !== s.readUInt32LE(28)) continue;
    through = Math.max(through, Number(s.readBigUInt64LE(4)));
  }
  return through;
}

export class SeqReservation {
  private writing: Promise<void> | undefined;
  private fh: FileHandle | undefined;
  private slot: 0 | 1 = 0;

  constructor(
    private readonly dir: string,
    private readonly block: number,
    private readonly log: Pick<Logger, 'warn'>,
    /** No seq above this has been handed out (from `seq.hwm` at open). */
    public through: number,
  ) {}

  /** Make sure `need` is reserved; waits for the write. Throws a JournalIoError when it cannot be written. */
  async ensure(need: number): Promise<void> {
    while (this.through < need) {
      this.writing ??= this.write(need + this.block).finally(() => (this.writing = undefined));
      await this.writing;
    }
  }

  /** Reserve the next block in the background when less than half of this one is left above `lastSeq`. */
  ahead(lastSeq: number): void {
    if (this.writing || this.through - lastSeq >= this.block / 2) return;
    this.writing = this.write(lastSeq + this.block)
      .catch((e: Error) => this.log.warn({ err: e.message }, 'journal: seq reservation failed (retried before it is needed)'))
      .finally(() => (this.writing = undefined));
  }

  /** Wait for a write in progress, then release the file. */
  async close(): Promise<void> {
    await this.writing?.catch(() => {});
    await this.fh?.close().catch(() => {});
    this.fh = undefined;
  }

  private async write(through: number): Promise<void> {
    const path = reservationPath(this.dir);
    if (!this.fh) {
      this.fh = await io('open', path, () => open(path, constants.O_RDWR | constants.O_CREAT, 0o644));
      await io('fsync directory of', path, () => syncDir(this.dir));
    }
    const fh = this.fh;
    const slot = this.slot;
    await io('write', path, () => fh.write(encode(slot, through), 0, SLOT, slot * SLOT));
    await io('fdatasync', path, () => fh.datasync());
    this.slot = slot === 0 ? 1 : 0;
    this.through = Math.max(this.through, through);
  }
}
