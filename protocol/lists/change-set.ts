// Change sets: the changes of one or more deltas as a sorted snapshot view (removals marked REMOVED), the
// overlay a gate serves at once and the input of every merge. Pure.

import { fail, readSnapshotHeader, type Checked } from './header.js';
import { REMOVED, classifyKey, latin1 } from './keys.js';
import { ListBuilder, allocBytes } from './builder.js';
import { SnapshotView } from './snapshot.js';
import type { DeltaFile, ListChange } from './delta.js';
import { runToEnd } from './run.js';

/** A change set as a sorted view (removals carry status REMOVED), for mergeSorted and overlays. */
export function changeSet(changes: readonly ListChange[]): SnapshotView {
  return runToEnd(changeSetGen(changes));
}
export function* changeSetGen(changes: readonly ListChange[], sliceEntries = 512, alloc: (bytes: number) => Uint8Array = allocBytes): Generator<void, SnapshotView, void> {
  const b = new ListBuilder(Math.max(16, changes.length));
  let k = 0;
  for (const c of changes) {
    b.put(c.key, c.status === 0 ? REMOVED : c.status);
    if (++k % sliceEntries === 0) yield;
  }
  const bytes = yield* b.buildGen({ version: 0, publishedAtMs: 0 }, alloc);
  const h = readSnapshotHeader(bytes);
  if (!h.ok) throw new Error(h.detail);
  return new SnapshotView(bytes, h.value);
}

/**
 * The change set of verified deltas, parsed straight from their record bytes (no object or string per
 * card change: a 100,000-change delta leaves almost no garbage). Same checks as decoding them.
 */
export function* changeSetFromDeltasGen(files: readonly DeltaFile[], sliceEntries = 512, alloc: (bytes: number) => Uint8Array = allocBytes): Generator<void, Checked<SnapshotView>, void> {
  let total = 0;
  for (const f of files) total += f.header.count;
  const b = new ListBuilder(Math.max(16, total));
  for (const f of files) {
    const body = f.body;
    let p = 0;
    for (let i = 0; i < f.header.count; i++) {
      if ((i & (sliceEntries - 1)) === sliceEntries - 1) yield;
      if (p + 3 > body.length) return fail('bad-record', `delta record ${i}: truncated`);
      const op = body[p], st = body[p + 1], len = body[p + 2];
      p += 3;
      if (p + len > body.length) return fail('bad-record', `delta record ${i}: key runs past the body`);
      if (op !== 1 && op !== 2) return fail('bad-record', `delta record ${i}: unknown op ${op}`);
      if (op === 1 && (st === 0 || st > 7)) return fail('bad-record', `delta record ${i}: bad status byte ${st}`);
      const status = op === 1 ? st : REMOVED;
      if (!cardFromBytes(body, p, len, b, status)) {
        const key = latin1(body, p, len);
        if (classifyKey(key) === 'invalid') return fail('bad-record', `delta record ${i}: bad key`);
        b.put(key, status);
      }
      p += len;
    }
    if (p !== body.length) return fail('bad-record', `delta: ${body.length - p} bytes after the last record`);
  }
  const bytes = yield* b.buildGen({ version: 0, publishedAtMs: 0 }, alloc);
  const h = readSnapshotHeader(bytes);
  if (!h.ok) return h;
  return { ok: true, value: new SnapshotView(bytes, h.value) };
}

/** `card:` + 19 digits in bytes: add it to `b` and say so; anything else: false. */
function cardFromBytes(body: Uint8Array, p: number, len: number, b: ListBuilder, status: number): boolean {
  if (len !== 24 || body[p] !== 99 || body[p + 1] !== 97 || body[p + 2] !== 114 || body[p + 3] !== 100 || body[p + 4] !== 58) return false;
  let a = 0;
  for (let i = 5; i < 15; i++) {
    const c = body[p + i] - 48;
    if (c < 0 || c > 9) return false;
    a = a * 10 + c;
  }
  let d = 0;
  for (let i = 15; i < 24; i++) {
    const c = body[p + i] - 48;
    if (c < 0 || c > 9) return false;
    d = d * 10 + c;
  }
  b.setCardParts(a, d, status);
  return true;
}
