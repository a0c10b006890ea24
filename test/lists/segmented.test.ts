// The gate's segmented lists: segments answer exactly like the whole snapshot, a delta is served at
// once and merged segment by segment without any reader seeing a mix, the merge worker gives the
// same bytes as the in-thread merge, and the segmented list file refuses damage.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ListMerger } from '../../firmware/lists/merger.js';
import { downloadSnapshot, segmentSnapshotFile } from '../../firmware/lists/snapshot-install.js';
import { SegmentedLists, SpareSegments, applyChanges, applyChangesGen, openListFile, splitSnapshotGen, writeListFile } from '../../firmware/lists/segmented-lists.js';
import { ListBuilder, SnapshotView, encodeDelta, fillBuckets, hashKey, readSnapshotHeader, runToEnd, signList, statusByte, trustedListKey, type ListChange } from '../../protocol/lists/index.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'segments-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
};

// The compiled worker: `npm test` builds before vitest runs.
const WORKER = new URL('../../dist/firmware/lists/merge-worker.js', import.meta.url);
if (!existsSync(fileURLToPath(WORKER))) throw new Error('dist/firmware/lists/merge-worker.js is missing: run `npm run build` first (npm test does)');

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const keys = [trustedListKey(publicKey.export({ format: 'pem', type: 'spki' }).toString())];

let seed = 7;
const rnd = (k: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0), seed % k);
const card = (i: number) => `card:3104${String(i).padStart(15, '0')}`;
const qr = (i: number) => `qr:${['alipay', 'yitongxing', 'cmb'][i % 3]}:acct${i}`;
const ticket = (i: number) => `ticket:BJ${String(i).padStart(10, '0')}`;
const anyKey = (i: number) => (i % 5 === 0 ? qr(i) : i % 7 === 0 ? ticket(i) : card(i));

function snapshotOf(model: Map<string, number>, version = 1): SnapshotView {
  const b = new ListBuilder();
  for (const [k, v] of model) b.set(k, v);
  const bytes = b.build({ version, publishedAtMs: 1000 });
  const h = readSnapshotHeader(bytes);
  if (!h.ok) throw new Error(h.detail);
  return new SnapshotView(bytes, h.value);
}

function randomModel(n: number): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < n; i++) m.set(anyKey(i * 3), 1 + rnd(7));
  return m;
}

/** Adds, updates, blocks, removals (of present and absent keys) and a key changed twice (the last wins). */
function randomChanges(model: Map<string, number>, n: number, universe: number): ListChange[] {
  const out: ListChange[] = [];
  for (let i = 0; i < n; i++) {
    const key = anyKey(rnd(universe));
    out.push({ key, status: rnd(4) === 0 ? 0 : 1 + rnd(7) });
  }
  out.push({ ...out[0], status: out[0].status === 0 ? 2 : 0 });
  for (const c of out) (c.status === 0 ? model.delete(c.key) : model.set(c.key, c.status));
  return out;
}

function expectAnswers(lists: SegmentedLists, model: Map<string, number>, universe: number, step = 1): void {
  let wrong = 0;
  for (let i = 0; i < universe; i += step) {
    const k = anyKey(i);
    if (lists.statusByte(k) !== (model.get(k) ?? 0)) wrong++;
  }
  expect(wrong).toBe(0);
}

describe('segmented lists', () => {
  it('answer exactly like the whole snapshot, for any number of segments', () => {
    const model = randomModel(20_000);
    const whole = snapshotOf(model);
    for (const bits of [0, 1, 3, 6]) {
      const lists = runToEnd(splitSnapshotGen(whole, bits));
      expect(lists.segments.length).toBe(2 ** bits);
      expect(lists.size).toBe(model.size);
      for (let i = 0; i < 60_000; i++) expect(lists.statusByte(anyKey(i))).toBe(whole.status(anyKey(i)));
      expect(lists.statusByte('card:0000000000000000000')).toBe(0);
      expect(lists.statusByte('not a key')).toBe(0);
    }
  });

  it('a delta is served at once through the overlay; no reader sees a mix while segments merge; the old version answers as the new', () => {
    const model = randomModel(20_000);
    const old = runToEnd(splitSnapshotGen(snapshotOf(model), 4));
    const before = new Map(model);
    const changes = randomChanges(model, 3000, 60_000);
    const next = runToEnd(applyChangesGen(old, changes, { version: 2, publishedAtMs: 2000 }));
    expect(next.merging).toBe(true);
    expect(next.size).toBe(model.size);
    expectAnswers(next, model, 60_000);
    // The old version's buffers may be reused from now on: it answers through the new one.
    expectAnswers(old, model, 60_000, 7);
    expect(before.size).not.toBe(0);
    const g = next.mergeOverlayGen(64, new SpareSegments());
    let steps = 0;
    for (let r = g.next(); !r.done; r = g.next()) if (++steps % 25 === 0) expectAnswers(next, model, 60_000, 13);
    expect(steps).toBeGreaterThan(50);
    expect(next.merging).toBe(false);
    expectAnswers(next, model, 60_000);
    expect(next.segments.reduce((a, s) => a + s.size, 0)).toBe(model.size);
  });

  it('resolves a 64-bit hash collision exactly through segments and merges', async () => {
    const b = new ListBuilder();
    b.set('qr:alipay:x1', 2);
    b.set('qr:alipay:x2', 3);
    const bytes = b.build({ version: 1, publishedAtMs: 1 });
    const h = readSnapshotHeader(bytes);
    if (!h.ok) throw new Error(h.detail);
    const s = new SnapshotView(bytes, h.value);
    // Both entries stored under x2's hash, ordered by key bytes, as a real collision would be.
    const t = new Uint32Array(2);
    hashKey('qr:alipay:x2', t);
    const i1 = s.keyAt(0) === 'qr:alipay:x1' ? 0 : 1;
    const offs = [s.gOff[i1], s.gOff[1 - i1]], sts = [s.gSt[i1], s.gSt[1 - i1]];
    for (const i of [0, 1]) Object.assign(s.gHi, { [i]: t[0] }), Object.assign(s.gLo, { [i]: t[1] }), (s.gOff[i] = offs[i]), (s.gSt[i] = sts[i]);
    fillBuckets(s.gBucket, s.gHi, 2, h.value.genBits);
    const lists = runToEnd(splitSnapshotGen(s, 3));
    expect(lists.statusByte('qr:alipay:x2')).toBe(3);
    expect(lists.statusByte('qr:alipay:x3')).toBe(0);
    const next = await applyChanges(lists, [{ key: 'qr:alipay:x2', status: 1 }], { version: 2, publishedAtMs: 2 });
    await next.settled;
    expect(next.statusByte('qr:alipay:x2')).toBe(1);
    // x1's entry (same hash, different key) is untouched by the change to x2.
    const seg = next.segments.find((v) => v.header.genCount === 2)!;
    expect([seg.keyAt(0), seg.gSt[0], seg.keyAt(1), seg.gSt[1]]).toEqual(['qr:alipay:x1', 2, 'qr:alipay:x2', 1]);
    const gone = await applyChanges(next, [{ key: 'qr:alipay:x2', status: 0 }], { version: 3, publishedAtMs: 3 });
    await gone.settled;
    expect(gone.statusByte('qr:alipay:x2')).toBe(0);
    expect(gone.size).toBe(1);
  });

  it('the merge worker verifies, applies and merges deltas to the same bytes as the in-thread merge, and reuses segment memory', async () => {
    const dir = tmp();
    const model = randomModel(30_000);
    const base = runToEnd(splitSnapshotGen(snapshotOf(model), 5));
    const worker = new ListMerger(WORKER);
    const thread = new ListMerger(undefined);
    cleanups.push(() => void worker.close());
    let a = base, b = runToEnd(splitSnapshotGen(snapshotOf(model), 5));
    for (let v = 1; v <= 4; v++) {
      const delta = signList(encodeDelta(v, 5000 + v, randomChanges(model, 4000, 90_000)), privateKey);
      const ra = await worker.applyDeltas(a, delta, keys);
      const rb = await thread.applyDeltas(b, delta, keys);
      if (ra.kind !== 'applied' || rb.kind !== 'applied') throw new Error(JSON.stringify([ra, rb]));
      a = ra.next;
      b = rb.next;
      expectAnswers(a, model, 90_000, 3); // served through the overlay while the worker merges
      await Promise.all([a.settled, b.settled]);
      expect(a.merging).toBe(false);
      expectAnswers(a, model, 90_000);
      await writeListFile(join(dir, 'a.seg'), a);
      await writeListFile(join(dir, 'b.seg'), b);
      expect(readFileSync(join(dir, 'a.seg')).equals(readFileSync(join(dir, 'b.seg')))).toBe(true);
    }
    expect(worker.counters).toMatchObject({ inWorker: 4, inThread: 0, workerFailures: 0 });
    // Replaced segment buffers came back for the next merge instead of becoming garbage.
    expect((worker as unknown as { spares: SpareSegments }).spares.count).toBeGreaterThan(0);
    expect(a.version).toBe(5);
    expect(a.size).toBe(model.size);
  });

  it('the worker writes the list file (same bytes as the in-thread writer) and appends durably, at idle priority; a disk error rejects', async () => {
    const dir = tmp();
    const model = randomModel(20_000);
    const lists = runToEnd(splitSnapshotGen(snapshotOf(model, 4), 4));
    const worker = new ListMerger(WORKER);
    cleanups.push(() => void worker.close());
    await worker.writeListFile(join(dir, 'w.seg'), lists);
    await writeListFile(join(dir, 't.seg'), lists);
    expect(readFileSync(join(dir, 'w.seg')).equals(readFileSync(join(dir, 't.seg')))).toBe(true);
    const back = await openListFile(join(dir, 'w.seg'));
    expect((await back.verified).ok).toBe(true);
    expectAnswers(back.lists, model, 60_000);
    // Appends land in order and whole (a shared-memory body too, as list sync reads one).
    const a = new Uint8Array(new SharedArrayBuffer(3000)).fill(1);
    await worker.appendDurably(join(dir, 'log'), a);
    await worker.appendDurably(join(dir, 'log'), new Uint8Array(5).fill(2));
    expect([...readFileSync(join(dir, 'log'))]).toEqual([...a, 2, 2, 2, 2, 2]);
    expect(worker.counters).toMatchObject({ fileJobsInWorker: 3, fileJobsInThread: 0, workerFailures: 0 });
    // The disk's refusal is the caller's error, not a reason to retry in-thread.
    await expect(worker.writeListFile(join(dir, 'missing/dir/x.seg'), lists)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(worker.counters.fileJobsInThread).toBe(0);
    // SCHED_IDLE (policy 5 in /proc/<pid>/task/<tid>/stat): preempted at once by the lane's thread.
    expect(worker.scheduling).toBe('idle');
    const policies = readdirSync('/proc/self/task').map((t) => Number(readFileSync(`/proc/self/task/${t}/stat`, 'latin1').split(') ')[1].split(' ')[38]));
    expect(policies.filter((p) => p === 5).length).toBeGreaterThanOrEqual(1);
  });

  it('the worker refuses tampered, replayed and out-of-chain deltas and the gate keeps its version', async () => {
    const model = randomModel(5000);
    const lists = runToEnd(splitSnapshotGen(snapshotOf(model, 3), 2));
    const worker = new ListMerger(WORKER);
    cleanups.push(() => void worker.close());
    const good = signList(encodeDelta(3, 9, [{ key: card(1), status: 1 }]), privateKey);
    const tampered = good.slice();
    tampered[tampered.length - 1] ^= 1;
    expect(await worker.applyDeltas(lists, tampered, keys)).toMatchObject({ kind: 'rejected', error: 'bad-checksum' });
    const other = generateKeyPairSync('ed25519').privateKey;
    expect(await worker.applyDeltas(lists, signList(encodeDelta(3, 9, [{ key: card(1), status: 1 }]), other), keys)).toMatchObject({ kind: 'rejected' });
    expect(await worker.applyDeltas(lists, signList(encodeDelta(2, 9, [{ key: card(1), status: 1 }]), privateKey), keys)).toMatchObject({ kind: 'rejected', error: 'replayed' });
    expect(await worker.applyDeltas(lists, signList(encodeDelta(5, 9, [{ key: card(1), status: 1 }]), privateKey), keys)).toMatchObject({ kind: 'rejected', error: 'gap' });
    expect(await worker.applyDeltas(lists, new Uint8Array(0), keys)).toMatchObject({ kind: 'empty' });
    expect(lists.merging).toBe(false);
    expectAnswers(lists, model, 15_000);
    expect(await worker.applyDeltas(lists, good, keys)).toMatchObject({ kind: 'applied', to: 4 });
  });

  it('a worker that dies mid-merge: the new version keeps answering and the merge finishes in-thread', async () => {
    const model = randomModel(60_000);
    const lists = runToEnd(splitSnapshotGen(snapshotOf(model), 6));
    const worker = new ListMerger(WORKER);
    cleanups.push(() => void worker.close());
    const r = await worker.applyDeltas(lists, signList(encodeDelta(1, 9, randomChanges(model, 20_000, 180_000)), privateKey), keys);
    if (r.kind !== 'applied') throw new Error(r.kind);
    await (worker as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    expect(r.next.merging).toBe(true); // 64 segments of 20,000 changes: the worker was still at it
    expectAnswers(r.next, model, 180_000, 5);
    await r.next.settled;
    expect(worker.counters.workerFailures).toBe(1);
    expect(r.next.merging).toBe(false);
    expectAnswers(r.next, model, 180_000);
    // The next delta starts a new worker.
    const again = await worker.applyDeltas(r.next, signList(encodeDelta(2, 10, randomChanges(model, 100, 180_000)), privateKey), keys);
    if (again.kind !== 'applied') throw new Error(again.kind);
    await again.next.settled;
    expectAnswers(again.next, model, 180_000);
  });
});

describe('segmented list file', () => {
  async function written(entries = 8000, bits = 3): Promise<{ path: string; bytes: Buffer; model: Map<string, number>; dirEnd: number }> {
    const model = randomModel(entries);
    const lists = runToEnd(splitSnapshotGen(snapshotOf(model, 9), bits));
    const path = join(tmp(), 'lists.seg');
    await writeListFile(path, lists);
    return { path, bytes: readFileSync(path), model, dirEnd: 64 + 2 ** bits * 48 };
  }

  it('round-trips: version, time, size and every answer; the background check passes', async () => {
    const f = await written();
    const { lists, verified } = await openListFile(f.path);
    expect((await verified).ok).toBe(true);
    expect([lists.version, lists.publishedAtMs, lists.size, lists.segments.length]).toEqual([9, 1000, f.model.size, 8]);
    expectAnswers(lists, f.model, 24_000);
    expect(statusByte('green', false)).toBe(1);
  });

  it('serves at once: a lookup ahead of the background reader reads its own segment', async () => {
    const f = await written();
    const { lists, verified } = await openListFile(f.path);
    expect(() => lists.segments).toThrow(/still being read/);
    expectAnswers(lists, f.model, 24_000); // before any background read has completed
    expect((await verified).ok).toBe(true);
    await lists.settled;
    expect(lists.segments.length).toBe(8);
    expectAnswers(lists, f.model, 24_000);
  });

  it('every byte of the file tried: damage to the header, directory or a segment header is refused before serving; damage to a body is found in that segment', async () => {
    // A small list (4 segments, a few dozen entries of every kind) so that every byte of the whole file can be tried.
    const f = await written(40, 2);
    const segments = 4;
    const segmentHeaderBytes = 256;
    // Where each segment lies, from the undamaged directory (offset and length, u64 little-endian, 48 bytes an entry).
    const seg = Array.from({ length: segments }, (_, s) => ({ off: Number(f.bytes.readBigUInt64LE(64 + s * 48)), len: Number(f.bytes.readBigUInt64LE(64 + s * 48 + 8)) }));
    expect(seg[0].off).toBe(f.dirEnd);
    expect(seg[segments - 1].off + seg[segments - 1].len).toBe(f.bytes.length);
    expect(f.bytes.length).toBeLessThan(20_000);
    const segmentOf = (at: number) => seg.findIndex((x) => at >= x.off && at < x.off + x.len);
    let refused = 0, foundInItsSegment = 0;
    const missed: string[] = [];
    for (let at = 0; at < f.bytes.length; at++) {
      const b = Buffer.from(f.bytes);
      b[at] ^= 0x41;
      writeFileSync(f.path, b);
      const s = segmentOf(at);
      const beforeServing = at < f.dirEnd || at < seg[s].off + segmentHeaderBytes;
      let opened: Awaited<ReturnType<typeof openListFile>>;
      try {
        opened = await openListFile(f.path, 50); // check a body in one slice: the file is small
      } catch (e) {
        if ((e as Error).name !== 'ListFileError') throw e;
        refused++;
        continue;
      }
      const v = await opened.verified;
      if (beforeServing) missed.push(`byte ${at}: opened, damage in a header or the directory`);
      else if (v.ok) missed.push(`byte ${at} (segment ${s} body): not detected`);
      else if (!v.detail?.startsWith(`segment ${s}:`)) missed.push(`byte ${at} (segment ${s} body): reported as ${v.detail}`);
      else foundInItsSegment++;
    }
    expect(missed).toEqual([]);
    expect(refused + foundInItsSegment).toBe(f.bytes.length);
    expect(refused).toBeGreaterThanOrEqual(f.dirEnd + segments * segmentHeaderBytes);
    expect(foundInItsSegment).toBeGreaterThan(0);
  }, 120_000);

  it('a damaged segment body is found by the background check; a short file is refused', async () => {
    const f = await written();
    const b = Buffer.from(f.bytes);
    b[b.length - 3] ^= 1;
    writeFileSync(f.path, b);
    const { verified } = await openListFile(f.path);
    expect(await verified).toMatchObject({ ok: false, error: 'bad-checksum' });
    writeFileSync(f.path, f.bytes);
    truncateSync(f.path, f.bytes.length - 100);
    await expect(openListFile(f.path)).rejects.toMatchObject({ name: 'ListFileError', code: 'list-file', reason: 'list-file-bad-layout' });
    truncateSync(f.path, 10);
    await expect(openListFile(f.path)).rejects.toMatchObject({ name: 'ListFileError', code: 'list-file', reason: 'list-file-too-short' });
  });
});

describe('installing a snapshot from a file (bounded memory)', () => {
  const signedSnapshot = (model: Map<string, number>, version: number) => {
    const b = new ListBuilder();
    for (const [k, v] of model) b.set(k, v);
    return signList(b.build({ version, publishedAtMs: 4242 }), privateKey);
  };

  it('streams, checks and cuts a snapshot into the same answers, whatever the segment bits (bucket or binary-search boundaries)', async () => {
    const dir = tmp();
    // Segment bits at or below the bucket bits (boundaries read from the bucket index), and above
    // them on a small list (boundaries by binary search over the file).
    for (const [size, bits] of [[20_000, 0], [20_000, 4], [20_000, 11], [2000, 9]]) {
      const model = randomModel(size);
      const bytes = signedSnapshot(model, 12);
      const whole = snapshotOf(model);
      const chunks = async function* () {
        for (let at = 0; at < bytes.length; at += 777) yield bytes.subarray(at, at + 777);
      };
      const dl = join(dir, 'dl');
      const h = await downloadSnapshot(chunks(), dl, keys, 1 << 30);
      if (!h.ok) throw new Error(h.detail);
      if (bits === 9) expect(h.value.cardBits).toBeLessThan(bits);
      const dest = join(dir, `l${bits}.seg`);
      expect(await segmentSnapshotFile(dl, h.value, dest, bits)).toMatchObject({ ok: true, value: { entries: model.size } });
      const { lists, verified } = await openListFile(dest);
      expect((await verified).ok).toBe(true);
      expect([lists.version, lists.publishedAtMs, lists.size, lists.segments.length]).toEqual([12, 4242, model.size, 2 ** bits]);
      for (let i = 0; i < 3 * size; i++) expect(lists.statusByte(anyKey(i))).toBe(whole.status(anyKey(i)));
    }
  });

  it('refuses a snapshot stream that is tampered, cut, too long or wrongly signed, and leaves no file', async () => {
    const dir = tmp();
    const bytes = signedSnapshot(randomModel(500), 3);
    const one = async function* (b: Uint8Array) {
      yield b;
    };
    const dl = join(dir, 'dl');
    const flip = (at: number) => {
      const c = bytes.slice();
      c[at] ^= 1;
      return c;
    };
    expect(await downloadSnapshot(one(flip(bytes.length - 1)), dl, keys, 1 << 30)).toMatchObject({ ok: false, error: 'bad-checksum' });
    expect(await downloadSnapshot(one(flip(20)), dl, keys, 1 << 30)).toMatchObject({ ok: false, error: 'bad-signature' });
    expect(await downloadSnapshot(one(bytes.subarray(0, bytes.length - 5)), dl, keys, 1 << 30)).toMatchObject({ ok: false, error: 'bad-length' });
    expect(await downloadSnapshot(one(Buffer.concat([bytes, Buffer.from([0])])), dl, keys, 1 << 30)).toMatchObject({ ok: false, error: 'bad-length' });
    expect(await downloadSnapshot(one(bytes.subarray(0, 100)), dl, keys, 1 << 30)).toMatchObject({ ok: false, error: 'too-short' });
    const other = generateKeyPairSync('ed25519').privateKey;
    expect(await downloadSnapshot(one(signList(bytes.slice(), other)), dl, keys, 1 << 30)).toMatchObject({ ok: false, error: 'unknown-key' });
    await expect(downloadSnapshot(one(bytes), dl, keys, 100)).rejects.toThrow(/more than 100 bytes/);
    expect(existsSync(dl)).toBe(false);
  });

  it('refuses a snapshot whose key heap is not in entry order (the protocol requires it)', async () => {
    const dir = tmp();
    const model = new Map<string, number>();
    for (let i = 0; i < 40; i++) model.set(qr(i * 5), 1);
    const view = snapshotOf(model);
    const b = view.bytes;
    // Rewrite the key heap in reverse entry order (keys and statuses unchanged, offsets updated).
    const keysInOrder = Array.from({ length: view.header.genCount }, (_, i) => view.keyAt(i));
    let p = 0;
    const heap = view.heap;
    for (let i = keysInOrder.length - 1; i >= 0; i--) {
      const k = keysInOrder[i];
      heap[p] = k.length;
      for (let j = 0; j < k.length; j++) heap[p + 1 + j] = k.charCodeAt(j);
      view.gOff[i] = p;
      p += 1 + k.length;
    }
    for (let i = 0; i < keysInOrder.length; i++) expect(view.keyAt(i)).toBe(keysInOrder[i]); // still a valid list
    const h = readSnapshotHeader(b);
    if (!h.ok) throw new Error(h.detail);
    const src = join(dir, 'src');
    writeFileSync(src, b);
    expect(await segmentSnapshotFile(src, h.value, join(dir, 'out.seg'), 0)).toMatchObject({ ok: false, error: 'bad-layout' });
    expect(existsSync(join(dir, 'out.seg'))).toBe(false);
  });
});
