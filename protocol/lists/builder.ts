// Building a snapshot from entries in any order: sort, dedupe, lay out the columns, bucket index, header.
// Written as generators that yield every few thousand entries, so a gate can build while it serves. Pure.

import { HEADER_BYTES, MAGIC_SNAPSHOT, bucketBitsFor, snapshotLayout, writeCommon } from './header.js';
import { classifyKey, encodeCardKey, encodeCardParts, hashKey } from './keys.js';
import { digestGen } from './signature.js';
import { runToEnd } from './run.js';

/** Uninitialised, 8-aligned bytes of their own (callers clear what they use). */
export function allocBytes(n: number): Uint8Array {
  return Buffer.allocUnsafeSlow(n) as Uint8Array;
}

function compareBytes(heap: Uint8Array, oa: number, ob: number): number {
  const la = heap[oa], lb = heap[ob];
  const n = Math.min(la, lb);
  for (let j = 1; j <= n; j++) {
    const d = heap[oa + j] - heap[ob + j];
    if (d !== 0) return d;
  }
  return la - lb;
}

/** Growable columns for one section while building. */
class Columns {
  hi: Uint32Array; lo: Uint32Array; st: Uint8Array; off: Uint32Array | null; n = 0;
  constructor(cap: number, withOff: boolean) {
    this.hi = new Uint32Array(cap);
    this.lo = new Uint32Array(cap);
    this.st = new Uint8Array(cap);
    this.off = withOff ? new Uint32Array(cap) : null;
  }
  push(h: number, l: number, s: number, o: number): void {
    if (this.n === this.hi.length) this.grow();
    this.hi[this.n] = h;
    this.lo[this.n] = l;
    this.st[this.n] = s;
    if (this.off) this.off[this.n] = o;
    this.n++;
  }
  private grow(): void {
    const cap = Math.max(16, this.hi.length * 2);
    const g = <T extends Uint32Array | Uint8Array>(a: T, C: { new (n: number): T }): T => {
      const b = new C(cap);
      b.set(a);
      return b;
    };
    this.hi = g(this.hi, Uint32Array);
    this.lo = g(this.lo, Uint32Array);
    this.st = g(this.st, Uint8Array);
    if (this.off) this.off = g(this.off, Uint32Array);
  }
}

/**
 * Builds a snapshot from entries in any order (duplicates: the last one wins). Sorting is a counting
 * sort on the bucket bits then an insertion sort inside each (small) bucket: linear, no comparator calls.
 */
export class ListBuilder {
  private readonly cards: Columns;
  private readonly gens: Columns;
  private heap = new Uint8Array(1 << 16);
  private heapLen = 0;
  private readonly tmp = new Uint32Array(2);

  constructor(capacityHint = 1024) {
    this.cards = new Columns(capacityHint, false);
    this.gens = new Columns(Math.min(capacityHint, 1 << 16), true);
  }

  /** Add or replace an entry; status byte 0 is ignored (no entry). Throws on a key no gate could present. */
  set(key: string, status: number): void {
    if (status === 0) return;
    if (status > 7) throw new Error(`bad status byte ${status}`);
    this.put(key, status);
  }

  /** @internal Like set, but any byte (a change set marks removals with REMOVED). */
  put(key: string, status: number): void {
    const t = this.tmp;
    if (encodeCardKey(key, t)) {
      this.cards.push(t[0], t[1], status, 0);
      return;
    }
    if (classifyKey(key) !== 'generic') throw new Error(`not a list key: ${JSON.stringify(key)}`);
    hashKey(key, t);
    if (this.heapLen + 1 + key.length > this.heap.length) {
      const h = new Uint8Array(this.heap.length * 2 + key.length + 1);
      h.set(this.heap.subarray(0, this.heapLen));
      this.heap = h;
    }
    const o = this.heapLen;
    this.heap[o] = key.length;
    for (let i = 0; i < key.length; i++) this.heap[o + 1 + i] = key.charCodeAt(i);
    this.heapLen += 1 + key.length;
    this.gens.push(t[0], t[1], status, o);
  }

  /** Fast path for bulk loads and benches: card number as its first 10 and last 9 digits. */
  setCardParts(a: number, b: number, status: number): void {
    encodeCardParts(a, b, this.tmp);
    this.cards.push(this.tmp[0], this.tmp[1], status, 0);
  }

  get size(): number {
    return this.cards.n + this.gens.n;
  }

  /** Lay out the snapshot (unsigned: sign with signList, or keep unsigned for a gate's own file). */
  build(meta: { version: number; publishedAtMs: number }): Uint8Array {
    return runToEnd(this.buildGen(meta));
  }

  /** build, yielding every few thousand entries (a gate builds change sets while it serves). */
  *buildGen(meta: { version: number; publishedAtMs: number }, alloc: (bytes: number) => Uint8Array = (n) => new Uint8Array(n)): Generator<void, Uint8Array, void> {
    const c = yield* sortSectionGen(this.cards, null);
    const g = yield* sortSectionGen(this.gens, this.heap);
    // Compact the key heap in entry order (drops replaced duplicates).
    let heapBytes = 0;
    for (let i = 0; i < g.n; i++) heapBytes += 1 + this.heap[g.off![i]];
    const cardBits = bucketBitsFor(c.n), genBits = bucketBitsFor(g.n);
    const h = { cardCount: c.n, cardBits, genCount: g.n, genBits, heapBytes };
    const L = snapshotLayout(h);
    const out = alloc(HEADER_BYTES + L.total);
    out.fill(0);
    const body = out.subarray(HEADER_BYTES);
    const u32 = (at: number, n: number) => new Uint32Array(out.buffer, out.byteOffset + HEADER_BYTES + at, n);
    u32(L.cHi, c.n).set(c.hi.subarray(0, c.n));
    u32(L.cLo, c.n).set(c.lo.subarray(0, c.n));
    yield* fillBucketsGen(u32(L.cBucket, (1 << cardBits) + 1), c.hi, c.n, cardBits);
    body.set(c.st.subarray(0, c.n), L.cSt);
    u32(L.gHi, g.n).set(g.hi.subarray(0, g.n));
    u32(L.gLo, g.n).set(g.lo.subarray(0, g.n));
    yield* fillBucketsGen(u32(L.gBucket, (1 << genBits) + 1), g.hi, g.n, genBits);
    body.set(g.st.subarray(0, g.n), L.gSt);
    const offs = u32(L.gOff, g.n);
    let p = 0;
    for (let i = 0; i < g.n; i++) {
      const o = g.off![i];
      const len = 1 + this.heap[o];
      body.set(this.heap.subarray(o, o + len), L.heap + p);
      offs[i] = p;
      p += len;
      if ((i & 0x3fff) === 0) yield;
    }
    return yield* finishSnapshotGen(out, { version: meta.version, publishedAtMs: meta.publishedAtMs, ...h });
  }
}

/** Write the header of a laid-out snapshot (counts, meta, body digest). */
type SnapMeta = { version: number; publishedAtMs: number; cardCount: number; cardBits: number; genCount: number; genBits: number; heapBytes: number; skipBits?: number };
export function finishSnapshot(out: Uint8Array, h: SnapMeta): Uint8Array {
  return runToEnd(finishSnapshotGen(out, h));
}
export function* finishSnapshotGen(out: Uint8Array, h: SnapMeta): Generator<void, Uint8Array, void> {
  const body = out.subarray(HEADER_BYTES);
  const v = writeCommon(out, MAGIC_SNAPSHOT, body.byteLength, h.publishedAtMs, yield* digestGen(body));
  v.setUint32(8, h.version, true);
  v.setUint32(32, h.cardCount, true);
  v.setUint8(36, h.cardBits);
  v.setUint8(37, h.genBits);
  v.setUint8(38, h.skipBits ?? 0);
  v.setUint32(40, h.genCount, true);
  v.setUint32(44, h.heapBytes, true);
  return out;
}

/** bk[b] = first index whose bucket (top `bits` of hi) is >= b; bk[2^bits] = n. hi must be sorted. */
export function fillBuckets(bk: Uint32Array, hi: Uint32Array, n: number, bits: number, skip = 0): void {
  runToEnd(fillBucketsGen(bk, hi, n, bits, skip));
}
export function* fillBucketsGen(bk: Uint32Array, hi: Uint32Array, n: number, bits: number, skip = 0): Generator<void, void, void> {
  const nb = 1 << bits;
  const shift = 32 - bits;
  let b = 0;
  for (let i = 0; i < n; i++) {
    const ib = bits === 0 ? 0 : (hi[i] << skip) >>> shift;
    while (b <= ib) bk[b++] = i;
    if ((i & 0xffff) === 0) yield;
  }
  while (b <= nb) bk[b++] = n;
}

/** Sort one section by (hi, lo[, key bytes]) and keep the last of equal keys. */
function* sortSectionGen(cols: Columns, heap: Uint8Array | null): Generator<void, Columns, void> {
  const n = cols.n;
  const bits = Math.min(20, bucketBitsFor(n));
  const shift = 32 - bits;
  const nb = 1 << bits;
  const count = new Uint32Array(nb + 1);
  for (let i = 0; i < n; i++) {
    count[(bits === 0 ? 0 : cols.hi[i] >>> shift) + 1]++;
    if ((i & 0xffff) === 0) yield;
  }
  for (let b = 0; b < nb; b++) count[b + 1] += count[b];
  const out = new Columns(Math.max(1, n), cols.off !== null);
  const pos = count.slice(0, nb);
  for (let i = 0; i < n; i++) {
    const b = bits === 0 ? 0 : cols.hi[i] >>> shift;
    const j = pos[b]++;
    out.hi[j] = cols.hi[i];
    out.lo[j] = cols.lo[i];
    out.st[j] = cols.st[i];
    if (out.off) out.off[j] = cols.off![i];
    if ((i & 0xffff) === 0) yield;
  }
  out.n = n;
  // Insertion sort within each bucket: stable, so the later of two equal keys stays later.
  const H = out.hi, L = out.lo, S = out.st, O = out.off;
  const less = (i: number, j: number): boolean => {
    if (H[i] !== H[j]) return H[i] < H[j];
    if (L[i] !== L[j]) return L[i] < L[j];
    return O !== null && heap !== null && compareBytes(heap, O[i], O[j]) < 0;
  };
  let sinceYield = 0;
  for (let b = 0; b < nb; b++) {
    const s = count[b], e = count[b + 1];
    sinceYield += e - s + 1;
    if (sinceYield > 2048) {
      sinceYield = 0;
      yield;
    }
    for (let i = s + 1; i < e; i++) {
      let j = i;
      while (j > s && less(j, j - 1)) {
        swap(H, j, j - 1); swap(L, j, j - 1); swap(S, j, j - 1);
        if (O) swap(O, j, j - 1);
        j--;
      }
    }
  }
  // Dedupe: keep the last of each run of equal keys.
  let w = 0;
  for (let i = 0; i < n; i++) {
    const nextSame = i + 1 < n && H[i + 1] === H[i] && L[i + 1] === L[i] && (O === null || heap === null || compareBytes(heap, O[i], O[i + 1]) === 0);
    if (nextSame) continue;
    H[w] = H[i]; L[w] = L[i]; S[w] = S[i];
    if (O) O[w] = O[i];
    w++;
    if ((i & 0xffff) === 0) yield;
  }
  out.n = w;
  return out;
}

function swap(a: Uint32Array | Uint8Array, i: number, j: number): void {
  const t = a[i];
  a[i] = a[j];
  a[j] = t;
}
