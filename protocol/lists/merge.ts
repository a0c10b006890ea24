// Applying changes to a snapshot: a merge of two sorted runs, written as a generator that yields
// every few hundred entries so a gate can apply a large delta between lookups; ranges of entries (a
// segment of a segmented list file is one). Pure.

import { HEADER_BYTES, bucketBitsFor, snapshotLayout } from './header.js';
import { REMOVED } from './keys.js';
import { allocBytes, fillBucketsGen, finishSnapshotGen } from './builder.js';
import { changeSetGen } from './change-set.js';
import type { ListChange } from './delta.js';
import type { SnapshotView } from './snapshot.js';

/** A run of entries in a view: cards [c0, c1), other keys [g0, g1). */
export interface EntryRange { c0: number; c1: number; g0: number; g1: number }

export function wholeRange(v: SnapshotView): EntryRange {
  return { c0: 0, c1: v.header.cardCount, g0: 0, g1: v.header.genCount };
}

/** The entries of `v` whose code's top `bits` bits equal `s` (a segment); bits = 0: all of them. */
export function segmentRange(v: SnapshotView, s: number, bits: number): EntryRange {
  if (bits === 0) return wholeRange(v);
  const lo = (s << (32 - bits)) >>> 0;
  const hiEnd = s + 1 < 2 ** bits ? ((s + 1) << (32 - bits)) >>> 0 : -1;
  const at = (f: number) => (f >= 0 ? f : -1 - f);
  const c0 = at(v.findCard(lo, 0)), g0 = at(v.findGeneric(lo, 0, ''));
  const c1 = hiEnd < 0 ? v.header.cardCount : at(v.findCard(hiEnd, 0));
  const g1 = hiEnd < 0 ? v.header.genCount : at(v.findGeneric(hiEnd, 0, ''));
  return { c0, c1, g0, g1 };
}

/** Merge `changes` (status 0 = remove) into `old`; yields periodically; returns the new (unsigned) snapshot. */
export function* mergeChanges(
  old: SnapshotView,
  changes: readonly ListChange[],
  meta: { version: number; publishedAtMs: number },
  sliceEntries = 512,
): Generator<void, Uint8Array, void> {
  const ch = yield* changeSetGen(changes, sliceEntries);
  return yield* mergeSorted(old, wholeRange(old), ch, wholeRange(ch), { ...meta, skipBits: old.header.skipBits }, sliceEntries);
}

/**
 * Merge the range `oR` of `old` with the range `cR` of a change set `ch` (null: none, which copies
 * the range out as a list of its own). Both are sorted the same way, so this is one linear merge,
 * written as a generator that yields every few hundred entries so a gate can merge between lookups.
 * The output has exact sizes: the new bytes are allocated once.
 */
export function* mergeSorted(
  old: SnapshotView,
  oR: EntryRange,
  ch: SnapshotView | null,
  cR: EntryRange,
  meta: { version: number; publishedAtMs: number; skipBits: number },
  sliceEntries = 512,
  alloc: (bytes: number) => Uint8Array = allocBytes,
): Generator<void, Uint8Array, void> {
  const cc0 = ch ? cR.c0 : 0, cc1 = ch ? cR.c1 : 0, gc0 = ch ? cR.g0 : 0, gc1 = ch ? cR.g1 : 0;
  // Exact output counts first.
  let nc = oR.c1 - oR.c0, ng = oR.g1 - oR.g0;
  let heapBytes = 0;
  if (oR.g0 === 0 && oR.g1 === old.header.genCount) heapBytes = old.header.heapBytes;
  else {
    for (let i = oR.g0; i < oR.g1; i++) {
      heapBytes += 1 + old.heap[old.gOff[i]];
      if ((i & 0x3fff) === 0) yield;
    }
  }
  if (ch) {
    for (let j = cc0; j < cc1; j++) {
      const found = old.findCard(ch.cHi[j], ch.cLo[j]) >= 0;
      if (ch.cSt[j] === REMOVED) { if (found) nc--; } else if (!found) nc++;
      if (j % sliceEntries === 0) yield;
    }
    for (let j = gc0; j < gc1; j++) {
      const key = ch.keyAt(j);
      const found = old.findGeneric(ch.gHi[j], ch.gLo[j], key) >= 0;
      if (ch.gSt[j] === REMOVED) { if (found) { ng--; heapBytes -= 1 + key.length; } } else if (!found) { ng++; heapBytes += 1 + key.length; }
      if (j % sliceEntries === 0) yield;
    }
  }
  const skip = meta.skipBits;
  const cardBits = Math.min(bucketBitsFor(nc), 32 - skip), genBits = Math.min(bucketBitsFor(ng), 32 - skip);
  const hdr = { cardCount: nc, cardBits, genCount: ng, genBits, heapBytes, skipBits: skip };
  const L = snapshotLayout(hdr);
  // Allocate without the one-shot zero fill (hundreds of MB for a whole list) and clear it in slices.
  const out = alloc(HEADER_BYTES + L.total);
  for (let p = 0; p < out.byteLength; p += 1 << 18) {
    out.fill(0, p, Math.min(out.byteLength, p + (1 << 18)));
    yield;
  }
  const base = out.byteOffset + HEADER_BYTES;
  const u32 = (at: number, n: number) => new Uint32Array(out.buffer, base + at, n);
  const u8 = (at: number, n: number) => new Uint8Array(out.buffer, base + at, n);
  const block = sliceEntries * 16;

  // Cards.
  {
    const oH = old.cHi, oL = old.cLo, oS = old.cSt, on = oR.c1;
    const nH = u32(L.cHi, nc), nL = u32(L.cLo, nc), nS = u8(L.cSt, nc);
    let i = oR.c0, j = cc0, w = 0;
    while (i < on || j < cc1) {
      // Old entries before the next change (or all the rest): copied in blocks (memcpy).
      let stop = on, hit = false;
      if (j < cc1) {
        const p = old.findCard(ch!.cHi[j], ch!.cLo[j]);
        stop = Math.min(on, p >= 0 ? p : -1 - p);
        hit = p >= 0;
      }
      if (stop > i) {
        const e = Math.min(stop, i + block);
        nH.set(oH.subarray(i, e), w); nL.set(oL.subarray(i, e), w); nS.set(oS.subarray(i, e), w);
        w += e - i; i = e;
        if (e < stop || j >= cc1) { yield; continue; }
      }
      if (j >= cc1) continue;
      if (hit) i++; // replaced or removed
      if (ch!.cSt[j] !== REMOVED) { nH[w] = ch!.cHi[j]; nL[w] = ch!.cLo[j]; nS[w] = ch!.cSt[j]; w++; }
      j++;
      if (j % sliceEntries === 0) yield;
    }
    yield* fillBucketsGen(u32(L.cBucket, (1 << cardBits) + 1), nH, nc, cardBits, skip);
  }
  // Other keys (few compared with cards): entry by entry, rebuilding the key heap in entry order.
  {
    const on = oR.g1;
    const nH = u32(L.gHi, ng), nL = u32(L.gLo, ng), nO = u32(L.gOff, ng), nS = u8(L.gSt, ng), heap = u8(L.heap, heapBytes);
    const oheap = old.heap, cheap = ch ? ch.heap : oheap;
    let i = oR.g0, j = gc0, w = 0, hp = 0, n = 0;
    while (i < on || j < gc1) {
      let cmp: number;
      if (j >= gc1) cmp = -1;
      else if (i >= on) cmp = 1;
      else {
        cmp = old.gHi[i] !== ch!.gHi[j] ? (old.gHi[i] < ch!.gHi[j] ? -1 : 1) : old.gLo[i] !== ch!.gLo[j] ? (old.gLo[i] < ch!.gLo[j] ? -1 : 1) : 0;
        if (cmp === 0) {
          const co = old.gOff[i], no = ch!.gOff[j];
          const la = oheap[co], lb = cheap[no];
          const m = Math.min(la, lb);
          for (let q = 1; q <= m && cmp === 0; q++) cmp = oheap[co + q] - cheap[no + q];
          if (cmp === 0) cmp = la - lb;
        }
      }
      if (cmp < 0) {
        const o = old.gOff[i], len = 1 + oheap[o];
        heap.set(oheap.subarray(o, o + len), hp);
        nH[w] = old.gHi[i]; nL[w] = old.gLo[i]; nS[w] = old.gSt[i]; nO[w] = hp;
        hp += len; w++; i++;
      } else {
        if (cmp === 0) i++;
        if (ch!.gSt[j] !== REMOVED) {
          const o = ch!.gOff[j], len = 1 + cheap[o];
          heap.set(cheap.subarray(o, o + len), hp);
          nH[w] = ch!.gHi[j]; nL[w] = ch!.gLo[j]; nS[w] = ch!.gSt[j]; nO[w] = hp;
          hp += len; w++;
        }
        j++;
      }
      if (++n % sliceEntries === 0) yield;
    }
    yield* fillBucketsGen(u32(L.gBucket, (1 << genBits) + 1), nH, ng, genBits, skip);
  }
  return yield* finishSnapshotGen(out, { ...meta, ...hdr });
}
