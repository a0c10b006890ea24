// `seq.hwm`: seqs reserved ahead, in blocks, in a small file replaced atomically. No seq above the
// reservation is ever handed out, so when the last segment's header (its exact high-water mark) cannot
// be read, recovery still starts above every seq that could have been used (a gap of at most a block,
// never a seq handed out twice). The next block is written in the background when half of this one is
// used; a commit waits for it only if the background write has not finished (or failed).

import type { Logger } from '../config/log.js';
import { writeFileAtomic } from '../platform/atomic-file.js';
import { io } from './io-error.js';
import { reservationPath } from './recovery.js';

export class SeqReservation {
  private writing: Promise<void> | undefined;

  constructor(
    private readonly dir: string,
    private readonly laneId: string,
    private readonly block: number,
    private readonly log: Pick<Logger, 'warn'>,
    /** No seq above this has been handed out (from `seq.hwm` at open). */
    public through: number,
    /** The working segment's first seq, as last noted. */
    private tail: number,
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

  /**
   * Name the new working segment (its first seq): recovery then knows that a later segment than the last
   * one it finds was lost, and restarts above the reservation. Best effort (a failure is logged).
   */
  async noteTail(firstSeq: number): Promise<void> {
    await this.idle();
    this.tail = firstSeq;
    await this.write(this.through).catch((e: Error) => this.log.warn({ err: e.message }, 'journal: could not note the new segment in seq.hwm'));
  }

  /** Wait for a write in progress (close). */
  async idle(): Promise<void> {
    await this.writing?.catch(() => {});
  }

  private async write(through: number): Promise<void> {
    const path = reservationPath(this.dir);
    const body = { laneId: this.laneId, reservedThrough: Math.max(through, this.through), tail: this.tail };
    await io('write', path, () => writeFileAtomic(path, new TextEncoder().encode(JSON.stringify(body))));
    this.through = Math.max(this.through, body.reservedThrough);
  }
}
