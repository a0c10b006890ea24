// How fresh the gate's lists are, on the back office's signed word (protocol/lists/freshness.ts): every
// answer to a deltas poll must carry a statement bound to the poll's nonce, newer than the last one taken;
// the list age counts from the last statement that named a version the gate holds (or from the list's own
// publication time, when that is later). An answer without a good statement is a failed round, and the
// age keeps growing: a path that answers 204, an empty 200 or an old recorded answer cannot keep a gate's
// lists looking fresh. Kept in memory only: after a reboot the age counts from the list file's own
// publication time until the first good poll (the nonce makes a recorded answer useless anyway).

import { randomBytes } from 'node:crypto';
import { acceptFreshness, nonceHex, type FreshnessChecked, type FreshnessStatement, type TrustedListKey } from '../../protocol/lists/index.js';

export class ListFreshness {
  private last: FreshnessStatement | undefined;
  /** Signed time of the last statement that named a version the gate holds. */
  private currentAtMs = 0;
  readonly counters = { statements: 0, refused: 0 };

  constructor(private readonly keys: readonly TrustedListKey[]) {}

  /** A fresh nonce for one poll, and its query-string spelling. */
  nonce(): { bytes: Uint8Array; hex: string } {
    const bytes = new Uint8Array(randomBytes(16));
    return { bytes, hex: nonceHex(bytes) };
  }

  /** Check the statement a poll's answer carried (the header's value, undefined when absent); taken when good. */
  take(header: string | string[] | undefined, nonce: Uint8Array): FreshnessChecked {
    const r = acceptFreshness(Array.isArray(header) ? header.join(',') : header, this.keys, nonce, this.last);
    if (r.ok) {
      this.last = r.value;
      this.counters.statements++;
    } else this.counters.refused++;
    return r;
  }

  /** The last statement taken. */
  get statement(): FreshnessStatement | undefined {
    return this.last;
  }

  /** After a round: the gate holds `version`; if that is what the last statement announced, the lists were current then. */
  settle(version: number): void {
    if (this.last && version >= this.last.latestVersion) this.currentAtMs = Math.max(this.currentAtMs, this.last.issuedAtMs);
  }

  /** When the lists in use were last known to be the latest (ms since epoch; 0 for none). */
  freshAtMs(list: { version: number; publishedAtMs: number }): number {
    return list.version === 0 ? 0 : Math.max(list.publishedAtMs, this.currentAtMs);
  }
}
