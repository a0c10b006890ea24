// Installing a whole snapshot from the back office without ever holding two lists in memory: a 50 M
// snapshot is 620 MB and a gate box has 1 GB. The download streams to a file beside the list file
// (header and signature checked as soon as they arrive, length and SHA-256 at the end); the
// verified file is then cut into the segmented list file one segment at a time (one segment of
// memory); the gate then opens that file lazily, reading into the buffers of the list it replaces.

import { closeSync, openSync, readSync } from 'node:fs';
import { writeFully, writeFullySync } from '../platform/atomic-file.js';
import { HttpClientError, httpStream, type HttpStream, type TlsTrust } from '../platform/https-client.js';
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
} from '../../protocol/lists/index.js';
import { segmentBitsFor, writeSegmentedFile } from './segmented-lists.js';
import { runSliced } from './run-sliced.js';

/**
 * Stream a snapshot response body into `path`, checking it on the way. The file is removed if refused.
 * `blocking`: write with writeSync (on the merge worker's own thread, not libuv's pool).
 */
export async function downloadSnapshot(
  body: AsyncIterable<Uint8Array>,
  path: string,
  keys: readonly TrustedListKey[] | null,
  maxBytes: number,
  blocking = false,
): Promise<Checked<SnapshotHeader>> {
  const check = new SnapshotStreamCheck(keys);
  const sink = blocking ? blockingSink(path) : await asyncSink(path);
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
      await sink.append(chunk);
    }
    result ??= check.finish();
  } finally {
    await sink.close();
    if (!result?.ok) await unlink(path).catch(() => {});
  }
  return result;
}

interface Sink {
  append(b: Uint8Array): void | Promise<void>;
  close(): void | Promise<void>;
}

function blockingSink(path: string): Sink {
  const fd = openSync(path, 'w');
  return {
    append: (b) => writeFullySync(fd, b),
    close: () => closeSync(fd),
  };
}

async function asyncSink(path: string): Promise<Sink> {
  const fh = await open(path, 'w');
  return {
    append: (b) => writeFully(fh, b),
    close: () => fh.close(),
  };
}

/** Positioned reads from the downloaded file: async (libuv's pool) or blocking (the worker's own thread). */
interface Source {
  read(into: Uint8Array, position: number): void | Promise<void>;
  close(): void | Promise<void>;
}

function exact(into: Uint8Array, position: number, n: number, at: number): number {
  if (n === 0) throw new Error(`file ends at ${position + at}`);
  return at + n;
}

async function openSource(path: string, blocking: boolean): Promise<Source> {
  if (blocking) {
    const fd = openSync(path, 'r');
    return {
      read: (into, position) => {
        for (let at = 0; at < into.byteLength; ) at = exact(into, position, readSync(fd, into, at, into.byteLength - at, position + at), at);
      },
      close: () => closeSync(fd),
    };
  }
  const fh: FileHandle = await open(path, 'r');
  return {
    read: async (into, position) => {
      for (let at = 0; at < into.byteLength; ) at = exact(into, position, (await fh.read(into, at, into.byteLength - at, position + at)).bytesRead, at);
    },
    close: () => fh.close(),
  };
}

/**
 * Cut a verified snapshot file into a segmented list file at `dest` (write-new + fsync + rename).
 * Memory: one segment at a time. Refuses a snapshot whose key heap is not in entry order (the
 * protocol requires it) or whose entries do not sit in their buckets.
 */
export async function segmentSnapshotFile(
  src: string,
  h: SnapshotHeader,
  dest: string,
  bits = segmentBitsFor(h.cardCount + h.genCount),
  sliceMs = 0.5,
  blocking = false,
): Promise<Checked<{ entries: number }>> {
  const L = snapshotLayout(h);
  const body = HEADER_BYTES;
  const fh = await openSource(src, blocking);
  // On the worker nothing else runs on this thread: no slices.
  if (blocking) sliceMs = Infinity;
  const u32 = new Uint32Array(1);
  const u32b = new Uint8Array(u32.buffer);
  const readU32 = async (col: number, i: number) => (await fh.read(u32b, body + col + i * 4), u32[0]);
  const readU8 = async (at: number) => (await fh.read(u32b.subarray(0, 1), body + at), u32b[0]);
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
        await fh.read(out.subarray(HEADER_BYTES + SL.cHi, HEADER_BYTES + SL.cHi + nc * 4), body + L.cHi + c0 * 4);
        await fh.read(out.subarray(HEADER_BYTES + SL.cLo, HEADER_BYTES + SL.cLo + nc * 4), body + L.cLo + c0 * 4);
        await fh.read(out.subarray(HEADER_BYTES + SL.cSt, HEADER_BYTES + SL.cSt + nc), body + L.cSt + c0);
        await fh.read(out.subarray(HEADER_BYTES + SL.gHi, HEADER_BYTES + SL.gHi + ng * 4), body + L.gHi + g0 * 4);
        await fh.read(out.subarray(HEADER_BYTES + SL.gLo, HEADER_BYTES + SL.gLo + ng * 4), body + L.gLo + g0 * 4);
        await fh.read(out.subarray(HEADER_BYTES + SL.gOff, HEADER_BYTES + SL.gOff + ng * 4), body + L.gOff + g0 * 4);
        await fh.read(out.subarray(HEADER_BYTES + SL.gSt, HEADER_BYTES + SL.gSt + ng), body + L.gSt + g0);
        await fh.read(out.subarray(HEADER_BYTES + SL.heap, HEADER_BYTES + SL.heap + (he - hs)), body + L.heap + hs);
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
    await writeSegmentedFile(dest, { version: h.version, publishedAtMs: h.publishedAtMs, segmentBits: bits, entries: h.cardCount + h.genCount }, n, segments(), blocking);
    return { ok: true, value: { entries } };
  } catch (e) {
    if (e instanceof Layout) return fail(e.message);
    throw e;
  } finally {
    await fh.close();
  }
}

class Layout extends Error {}

const tlsCode = (e: unknown) => (e instanceof HttpClientError && e.kind === 'tls' ? (e.code ?? 'TLS') : undefined);

export interface SnapshotFetch {
  /** GET this URL (the back office's /v1/lists/snapshot). */
  url: string;
  headers: Record<string, string>;
  /** For an https URL: what the back office's certificate must prove (plain data: it crosses to the worker). */
  tls?: TlsTrust;
  timeoutMs: number;
  maxBytes: number;
  keys: readonly TrustedListKey[];
  /** Where the download is kept until it is cut (removed after). */
  download: string;
  /** The gate's segmented list file, replaced (write-new + fsync + rename) when the snapshot is newer. */
  dest: string;
  /** The version the gate serves: an equal snapshot changes nothing, an older one is refused. */
  fromVersion: number;
}

export type SnapshotInstall =
  | { kind: 'installed'; version: number }
  | { kind: 'up-to-date' }
  | { kind: 'rejected'; error: string; detail: string }
  | { kind: 'http-failed'; detail: string; tls?: string }
  | { kind: 'write-failed'; detail: string };

/**
 * Fetch the back office's snapshot, stream it to disk with its checks, and cut it into the gate's
 * segmented list file. Never throws: every way it can go wrong is an outcome. `blocking`: file I/O with
 * blocking calls and no time slices (on the merge worker's thread); otherwise async, in 0.5 ms slices.
 */
export async function fetchSnapshotFile(f: SnapshotFetch, blocking = false): Promise<SnapshotInstall> {
  const what = 'GET /v1/lists/snapshot';
  let res: HttpStream;
  try {
    res = await httpStream(f.url, { headers: f.headers, timeoutMs: f.timeoutMs, tls: f.tls });
  } catch (e) {
    return { kind: 'http-failed', detail: `${what}: ${(e as Error).message}`, tls: tlsCode(e) };
  }
  if (res.status !== 200) {
    res.cancel();
    return { kind: 'http-failed', detail: `snapshot: HTTP ${res.status}` };
  }
  const len = Number(res.headers['content-length'] ?? '0');
  if (len > f.maxBytes) {
    res.cancel();
    return { kind: 'http-failed', detail: `${what}: ${len} bytes exceeds the limit` };
  }
  let h: Checked<SnapshotHeader>;
  try {
    h = await downloadSnapshot(res.body, f.download, f.keys, f.maxBytes, blocking);
  } catch (e) {
    await unlink(f.download).catch(() => {});
    return { kind: 'http-failed', detail: `${what}: body: ${(e as Error).message}` };
  } finally {
    res.done();
  }
  if (!h.ok) return { kind: 'rejected', error: h.error, detail: h.detail };
  try {
    if (h.value.version === f.fromVersion) return { kind: 'up-to-date' };
    if (h.value.version < f.fromVersion) return { kind: 'rejected', error: 'replayed', detail: `snapshot version ${h.value.version} is older than the gate's ${f.fromVersion}` };
    const cut = await segmentSnapshotFile(f.download, h.value, f.dest, undefined, 0.5, blocking);
    if (!cut.ok) return { kind: 'rejected', error: cut.error, detail: cut.detail };
    return { kind: 'installed', version: h.value.version };
  } catch (e) {
    return { kind: 'write-failed', detail: `${f.dest}: ${(e as Error).message}` };
  } finally {
    await unlink(f.download).catch(() => {});
  }
}
