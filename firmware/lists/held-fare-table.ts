// The fare table a fare gate holds (its fare-table file, `fares.tablePath`), kept by held-document.ts like
// the enforcement schedule: verified with the lane's list signing keys, never a lower seq (the same seq only
// with the same bytes), written before it is taken, so the file's seq is the floor at boot. Pricing is
// firmware/fares/'s business; this only keeps the document. A back office that publishes no fare table
// (404; 405 or 501: one, or a proxy in front of it, without the path) is no sync failure.

import { verifyFareTable } from '../../protocol/fares.js';
import type { TrustedListKey } from '../../protocol/lists/index.js';
import { HeldDocument, type HeldKind } from './held-document.js';

const FARE_TABLE: HeldKind<'fare-table-rejected'> = {
  alarm: 'fare-table-rejected',
  what: 'fare table',
  verify: (bytes, keys) => {
    const r = verifyFareTable(bytes, keys);
    return r.ok ? { ok: true, seq: r.table.seq } : r;
  },
};

export type HeldFareTable = HeldDocument<'fare-table-rejected'>;
export const HeldFareTable = {
  /** No file: no table yet. */
  open: (path: string, keys: readonly TrustedListKey[]) => HeldDocument.open(path, keys, FARE_TABLE),
};
