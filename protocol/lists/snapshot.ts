// Lookups straight over a snapshot's bytes (typed-array views over its columns, no parsing, no V8 heap
// per entry). Pure. Byte table: protocol/README.md, "Snapshot body".

import { HEADER_BYTES, fail, snapshotLayout, type Checked, type SnapshotHeader } from './header.js';
import { encodeCardKey, hashKey, latin1 } from './keys.js';
import { runToEnd } from './run.js';

/**
 * Lookups straight over snapshot bytes. `bytes` must start 8-aligned in its buffer (a Buffer from
 * readFile, or a SharedArrayBuffer); verify the bytes first (verifySnapshot) — this only re-checks bounds.
 */
export class SnapshotView {
  readonly header: SnapshotHeader;
  readonly cHi: Uint32Array; readonly cLo: Uint32Array; readonly cBucket: Uint32Array; readonly cSt: Uint8Array;
  readonly gHi: Uint32Array; readonly gLo: Uint32Array; readonly gOff: Uint32Array; readonly gBucket: Uint32Array; readonly gSt: Uint8Array;
  readonly heap: Uint8Array;
  private readonly cShift: number;
  private readonly gShift: number;
  private readonly skip: number;
  private readonly tmp = new Uint32Array(2);

  constructor(readonly bytes: Uint8Array, header: SnapshotHeader) {
    if (bytes.byteOffset % 8 !== 0) throw new Error('snapshot bytes must be 8-aligned');
    this.header = header;
    const L = snapshotLayout(header);
    const base = bytes.byteOffset + HEADER_BYTES;
    const buf = bytes.buffer;
    const nc = header.cardCount, ng = header.genCount;
    this.cHi = new Uint32Array(buf, base + L.cHi, nc);
    this.cLo = new Uint32Array(buf, base + L.cLo, nc);
    this.cBucket = new Uint32Array(buf, base + L.cBucket, (1 << header.cardBits) + 1);
    this.cSt = new Uint8Array(buf, base + L.cSt, nc);
    this.gHi = new Uint32Array(buf, base + L.gHi, ng);
    this.gLo = new Uint32Array(buf, base + L.gLo, ng);
    this.gOff = new Uint32Array(buf, base + L.gOff, ng);
    this.gBucket = new Uint32Array(buf, base + L.gBucket, (1 << header.genBits) + 1);
    this.gSt = new Uint8Array(buf, base + L.gSt, ng);
    this.heap = new Uint8Array(buf, base + L.heap, header.heapBytes);
    this.cShift = header.cardBits === 0 ? -1 : 32 - header.cardBits;
    this.gShift = header.genBits === 0 ? -1 : 32 - header.genBits;
    this.skip = header.skipBits;
  }

  /** Bounds the lookups rely on: bucket index monotonic and within the counts, key offsets inside the heap. O(buckets + generic entries). */
  checkBounds(): Checked<true> {
    return runToEnd(this.checkBoundsGen());
  }

  *checkBoundsGen(): Generator<void, Checked<true>, void> {
    for (const [bk, n, what] of [[this.cBucket, this.header.cardCount, 'card'], [this.gBucket, this.header.genCount, 'generic']] as const) {
      if (bk[0] !== 0 || bk[bk.length - 1] !== n) return fail('bad-layout', `snapshot: ${what} bucket index does not span the entries`);
      for (let i = 1; i < bk.length; i++) {
        if (bk[i] < bk[i - 1]) return fail('bad-layout', `snapshot: ${what} bucket index not monotonic at ${i}`);
        if ((i & 0xffff) === 0) yield;
      }
    }
    const hb = this.header.heapBytes;
    for (let i = 0; i < this.gOff.length; i++) {
      const o = this.gOff[i];
      if (o >= hb || o + 1 + this.heap[o] > hb) return fail('bad-layout', `snapshot: key ${i} outside the key heap`);
      if ((i & 0xffff) === 0) yield;
    }
    return { ok: true, value: true };
  }

  get size(): number {
    return this.header.cardCount + this.header.genCount;
  }

  /** The status byte of a key (0 = no entry). */
  status(key: string): number {
    const t = this.tmp;
    if (key.charCodeAt(0) === 99 /* c */ && encodeCardKey(key, t)) return this.cardStatus(t[0], t[1]);
    hashKey(key, t);
    return this.genericStatus(t[0], t[1], key);
  }

  cardStatus(H: number, L: number): number {
    const i = this.findCard(H, L);
    return i >= 0 ? this.cSt[i] : 0;
  }

  /** Index of the card entry with code (H, L), or -1 - (insertion point). */
  findCard(H: number, L: number): number {
    const hiA = this.cHi, loA = this.cLo;
    const b = this.cShift < 0 ? 0 : (H << this.skip) >>> this.cShift;
    let l = this.cBucket[b], r = this.cBucket[b + 1];
    while (l < r) {
      const m = (l + r) >>> 1;
      const x = hiA[m];
      if (x < H || (x === H && loA[m] < L)) l = m + 1;
      else r = m;
    }
    return l < hiA.length && hiA[l] === H && loA[l] === L ? l : -1 - l;
  }

  genericStatus(H: number, L: number, key: string): number {
    const i = this.findGeneric(H, L, key);
    return i >= 0 ? this.gSt[i] : 0;
  }

  /** Index of the generic entry (hash H:L, exact key), or -1 - (insertion point in (hash, key) order). */
  findGeneric(H: number, L: number, key: string): number {
    const hiA = this.gHi, loA = this.gLo;
    const b = this.gShift < 0 ? 0 : (H << this.skip) >>> this.gShift;
    let l = this.gBucket[b], r = this.gBucket[b + 1];
    while (l < r) {
      const m = (l + r) >>> 1;
      const x = hiA[m];
      if (x < H || (x === H && loA[m] < L)) l = m + 1;
      else r = m;
    }
    // Equal hashes sit together, ordered by key bytes: compare the whole key (collisions resolved exactly).
    while (l < hiA.length && hiA[l] === H && loA[l] === L) {
      const c = this.compareKeyAt(l, key);
      if (c === 0) return l;
      if (c > 0) break;
      l++;
    }
    return -1 - l;
  }

  /** Compare the stored key of generic entry i with `key` (stored − key, by bytes). */
  compareKeyAt(i: number, key: string): number {
    const heap = this.heap;
    const o = this.gOff[i];
    const len = heap[o];
    const n = Math.min(len, key.length);
    for (let j = 0; j < n; j++) {
      const d = heap[o + 1 + j] - key.charCodeAt(j);
      if (d !== 0) return d;
    }
    return len - key.length;
  }

  keyAt(i: number): string {
    const o = this.gOff[i];
    return latin1(this.heap, o + 1, this.heap[o]);
  }
}
