// The deltas a gate applied since it last wrote its whole list file, kept as received (signed, with
// their checksums) in one append-only file beside it. Why: a 50 M list file is 620 MB, and writing it
// after every delta would wear out an edge box's flash in weeks; a delta is a few MB at most. After a
// reboot the gate replays the log (verified again, like any delta) on top of the list file. The list
// file is rewritten, and the log emptied, only when the log grows past its limit.

import { open, truncate } from 'node:fs/promises';
import { HEADER_BYTES, readDeltaHeader } from '../../protocol/lists/index.js';
import { writeFully } from '../platform/atomic-file.js';

export interface LoggedDeltas {
  /** Complete deltas that follow `version`, concatenated (verify before use). */
  bytes: Uint8Array;
  count: number;
  changes: number;
  /** Deltas skipped because the list file already holds them (a crash between rewrite and reset). */
  skipped: number;
  /** The first delta kept does not follow `version`: the log is of no use. */
  gap: boolean;
}

export class DeltaLog {
  private constructor(
    readonly path: string,
    private bytesHeld: number,
    private changesHeld: number,
  ) {}

  get bytes(): number {
    return this.bytesHeld;
  }
  get changes(): number {
    return this.changesHeld;
  }

  /** Open (or create) the log; a torn last delta (power cut mid-append) is cut off. Returns what it holds. */
  static async open(path: string): Promise<{ log: DeltaLog; held: Uint8Array; torn: number }> {
    let held = new Uint8Array(0);
    try {
      const fh = await open(path, 'r');
      try {
        held = new Uint8Array(await fh.readFile());
      } finally {
        await fh.close();
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    let at = 0;
    let changes = 0;
    while (at + HEADER_BYTES <= held.byteLength) {
      const h = readDeltaHeader(held.subarray(at));
      if (!h.ok || at + HEADER_BYTES + h.value.bodyBytes > held.byteLength) break;
      at += HEADER_BYTES + h.value.bodyBytes;
      changes += h.value.count;
    }
    const torn = held.byteLength - at;
    if (torn > 0) await truncate(path, at);
    return { log: new DeltaLog(path, at, changes), held: held.subarray(0, at), torn };
  }

  /** The logged deltas that follow list version `version`. */
  static after(held: Uint8Array, version: number): LoggedDeltas {
    let at = 0;
    let start = -1;
    let count = 0, changes = 0, skipped = 0;
    let gap = false;
    while (at < held.byteLength) {
      const h = readDeltaHeader(held.subarray(at));
      if (!h.ok) break;
      const end = at + HEADER_BYTES + h.value.bodyBytes;
      if (h.value.toVersion <= version) skipped++;
      else {
        if (start < 0) {
          start = at;
          gap = h.value.fromVersion !== version;
        }
        count++;
        changes += h.value.count;
      }
      at = end;
    }
    return { bytes: start < 0 ? new Uint8Array(0) : held.subarray(start, at), count, changes, skipped, gap };
  }

  /**
   * Append applied deltas, durable before this resolves. `appendDurably`: how the bytes reach the
   * disk (list sync hands this to the merge worker's thread); in-thread async writes by default.
   */
  async append(deltas: Uint8Array, changes: number, appendDurably: (path: string, bytes: Uint8Array) => Promise<void> = appendInThread): Promise<void> {
    await appendDurably(this.path, deltas);
    this.bytesHeld += deltas.byteLength;
    this.changesHeld += changes;
  }

  /** Empty the log (after the list file was rewritten with everything in it). */
  async reset(): Promise<void> {
    const fh = await open(this.path, 'a');
    try {
      await fh.truncate(0);
      await fh.sync();
    } finally {
      await fh.close();
    }
    this.bytesHeld = 0;
    this.changesHeld = 0;
  }
}

export async function appendInThread(path: string, bytes: Uint8Array): Promise<void> {
  const fh = await open(path, 'a');
  try {
    await writeFully(fh, bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
}
