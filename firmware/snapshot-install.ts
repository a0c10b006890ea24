// Installing a whole snapshot from the back office without ever holding two lists in memory: a 50 M
// snapshot is 620 MB and a gate box has 1 GB. The download streams to a file beside the list file
// (header and signature checked as soon as they arrive, length and SHA-256 at the end); the
// verified file is then cut into the segmented list file one segment at a time (one segment of
// memory); the gate then opens that file lazily, reading into the buffers of the list it replaces.

import { open, unlink, type FileHandle } from 'node:fs/promises';
import {
  HEADER_BYTES,
  SnapshotStreamCheck,
  SnapshotView,
  bucketBitsFor,
  fillBucketsGen,
  finishSnapshotGen,
  readSnapshotHeader,
  snapshotLayout,
  type Checked,
  type SnapshotHeader,
  type TrustedListKey,
} from '../protocol/list-format.js';
import { runSliced, segmentBitsFor, writeSegmentedFile } from './segmented-lists.js';

/** Stream a snapshot response body into `path`, checking it on the way. The file is removed if refused. */
export async function downloadSnapshot(
  body: AsyncIterable<Uint8Array>,
  path: string,
  keys: readonly TrustedListKey[] | null,
  maxBytes: number,
): Promise<Checked<SnapshotHeader>> {
  const check = new SnapshotStreamCheck(keys);
  const fh = await open(path, 'w');
  let total = 0;
  let result: Checked<SnapshotHeader> | undefined;
  try {
    for await (const chunk of body) {
      total += chunk.byteLength;
      if (total > maxBytes) throw new Error(`more than ${maxBytes} bytes`);
      const bad = check.push(chunk);
      if (bad) {
        result = bad;
        break;
      }
      let at = 0;
      while (at < chunk.byteLength) at += (await fh.write(chunk, at, chunk.byteLength - at)).bytesWritten;
    }
    result ??= check.finish();
  } finally {
    await fh.close();
    if (!result?.ok) await unlink(path).catch(() => {});
  }
  return result;
}

async function readAt(fh: FileHandle, into: Uint8Array, position: number): Promise<void> {
  let at = 0;
  while (at < into.byteLength) {
    const { bytesRead } = await fh.read(into, at, into.byteLength - at, position + at);
    if (bytesRead === 0) throw new Error(`file ends at ${position + at}`);
    at += bytesRead;
  }
}

/**
 * Cut a verified snapshot file into a segmented list file at `dest` (write-new + fsync + rename).
 * Memory: one segment at a time. Refuses a snapshot whose key heap is not in entry order (the
 * protocol requires it) or whose entries do not sit in their buckets.
 */
export async function segmentSnapshotFile(src: string, h: SnapshotHeader, dest: string, bits = segmentBitsFor(h.cardCount + h.genCount), sliceMs = 0.5): Promise<Checked<{ entries: number }>> {
  const L = snapshotLayout(h);
  const body = HEADER_BYTES;
  const fh = await open(src, 'r');
  const u32 = new Uint32Array(1);
  const u32b = new Uint8Array(u32.buffer);
  const readU32 = async (col: number, i: number) => (await readAt(fh, u32b, body + col + i * 4), u32[0]);
  const readU8 = async (at: number) => (await readAt(fh, u32b.subarray(0, 1), body + at), u32b[0]);
  /** First index in a sorted hi column (n entries, bucket index of `bb` bits) whose hi >= x. */
  const lowerBound = async (col: number, bucket: number, bb: number, n: number, x: number): Promise<number> => {
    if (bb >= bits && bits > 0) return readU32(bucket, (x >>> (32 - bits)) << (bb - bits));
    let l = 0, r = n;
    while (l < r) {
      const m = (l + r) >>> 1;
      if ((await readU32(col, m)) < x) l = m + 1;
      else r = m;
    }
    return l;
  };
  const fail = (detail: string): Checked<never> => ({ ok: false, error: 'bad-layout', detail: `snapshot: ${detail}` });
  let seg = new Uint8Array(1 << 16);
  let entries = 0;
  try {
    const n = 2 ** bits;
    const bounds: { c: number[]; g: number[] } = { c: [], g: [] };
    for (let s = 0; s <= n; s++) {
      const x = s === n ? -1 : (s << (32 - bits)) >>> 0;
      bounds.c.push(s === 0 ? 0 : s === n ? h.cardCount : await lowerBound(L.cHi, L.cBucket, h.cardBits, h.cardCount, x));
      bounds.g.push(s === 0 ? 0 : s === n ? h.genCount : await lowerBound(L.gHi, L.gBucket, h.genBits, h.genCount, x));
      if (bounds.c[s] < (bounds.c[s - 1] ?? 0) || bounds.g[s] < (bounds.g[s - 1] ?? 0)) return fail('bucket index not monotonic');
    }
    const segments = async function* (): AsyncGenerator<Uint8Array> {
      for (let s = 0; s < n; s++) {
        const c0 = bounds.c[s], c1 = bounds.c[s + 1], g0 = bounds.g[s], g1 = bounds.g[s + 1];
        const nc = c1 - c0, ng = g1 - g0;
        // The key heap range of this segment's keys: from the first key's offset to the end of the last.
        let hs = 0, he = 0;
        if (ng > 0) {
          hs = await readU32(L.gOff, g0);
          const last = await readU32(L.gOff, g1 - 1);
          he = last + 1 + (await readU8(L.heap + last));
          if (he < hs || he - hs > ng * 256 || he > h.heapBytes) throw new Layout('key heap not in entry order');
        }
        const sh = { cardCount: nc, cardBits: Math.min(bucketBitsFor(nc), 32 - bits), genCount: ng, genBits: Math.min(bucketBitsFor(ng), 32 - bits), heapBytes: he - hs, skipBits: bits };
        const SL = snapshotLayout(sh);
        const len = HEADER_BYTES + SL.total;
        if (seg.byteLength < len) seg = new Uint8Array(len + (len >>> 3));
        const out = seg.subarray(0, len);
        out.fill(0);
        const at = (o: number, n4: number) => new Uint32Array(out.buffer, HEADER_BYTES + o, n4);
        await readAt(fh, out.subarray(HEADER_BYTES + SL.cHi, HEADER_BYTES + SL.cHi + nc * 4), body + L.cHi + c0 * 4);
        await readAt(fh, out.subarray(HEADER_BYTES + SL.cLo, HEADER_BYTES + SL.cLo + nc * 4), body + L.cLo + c0 * 4);
        await readAt(fh, out.subarray(HEADER_BYTES + SL.cSt, HEADER_BYTES + SL.cSt + nc), body + L.cSt + c0);
        await readAt(fh, out.subarray(HEADER_BYTES + SL.gHi, HEADER_BYTES + SL.gHi + ng * 4), body + L.gHi + g0 * 4);
        await readAt(fh, out.subarray(HEADER_BYTES + SL.gLo, HEADER_BYTES + SL.gLo + ng * 4), body + L.gLo + g0 * 4);
        await readAt(fh, out.subarray(HEADER_BYTES + SL.gOff, HEADER_BYTES + SL.gOff + ng * 4), body + L.gOff + g0 * 4);
        await readAt(fh, out.subarray(HEADER_BYTES + SL.gSt, HEADER_BYTES + SL.gSt + ng), body + L.gSt + g0);
        await readAt(fh, out.subarray(HEADER_BYTES + SL.heap, HEADER_BYTES + SL.heap + (he - hs)), body + L.heap + hs);
        const cHi = at(SL.cHi, nc), gHi = at(SL.gHi, ng), gOff = at(SL.gOff, ng);
        for (let i = 0; i < ng; i++) gOff[i] -= hs; // offsets below hs wrap to huge values: caught by checkBounds
        const top = (x: number) => (bits === 0 ? 0 : x >>> (32 - bits));
        if ((nc > 0 && (top(cHi[0]) !== s || top(cHi[nc - 1]) !== s)) || (ng > 0 && (top(gHi[0]) !== s || top(gHi[ng - 1]) !== s))) throw new Layout(`entries outside segment ${s}`);
        // Bucket index, digest and bounds in time slices: the gate keeps answering while it installs.
        await runSliced(
          (function* () {
            yield* fillBucketsGen(at(SL.cBucket, (1 << sh.cardBits) + 1), cHi, nc, sh.cardBits, bits);
            yield* fillBucketsGen(at(SL.gBucket, (1 << sh.genBits) + 1), gHi, ng, sh.genBits, bits);
            yield* finishSnapshotGen(out, { version: h.version, publishedAtMs: h.publishedAtMs, ...sh });
          })(),
          sliceMs,
        );
        const hh = readSnapshotHeader(out);
        if (!hh.ok) throw new Layout(hh.detail);
        const ok = await runSliced(new SnapshotView(out, hh.value).checkBoundsGen(), sliceMs);
        if (!ok.ok) throw new Layout(`segment ${s}: ${ok.detail}${ng > 0 ? ' (key heap not in entry order?)' : ''}`);
        entries += nc + ng;
        yield out;
      }
    };
    await writeSegmentedFile(dest, { version: h.version, publishedAtMs: h.publishedAtMs, segmentBits: bits, entries: h.cardCount + h.genCount }, n, segments());
    return { ok: true, value: { entries } };
  } catch (e) {
    if (e instanceof Layout) return fail(e.message);
    throw e;
  } finally {
    await fh.close();
  }
}

class Layout extends Error {}
