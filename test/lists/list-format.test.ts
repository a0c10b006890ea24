import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  HEADER_BYTES,
  ListBuilder,
  SnapshotView,
  encodeDelta,
  fillBuckets,
  hashKey,
  mergeChanges,
  readSnapshotHeader,
  runToEnd,
  signList,
  trustedListKey,
  verifyDeltas,
  verifySnapshot,
  type ListChange,
  type TrustedListKey,
} from '../../protocol/lists/index.js';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const trusted = [trustedListKey(publicKey.export({ format: 'pem', type: 'spki' }).toString())];
const other = generateKeyPairSync('ed25519');

function card(i: number): string {
  return `card:${String(3100000000000000000n + BigInt(i) * 7919n)}`;
}

function view(bytes: Uint8Array, keys: readonly TrustedListKey[] | null = trusted): SnapshotView {
  const aligned = new Uint8Array(new ArrayBuffer(bytes.byteLength));
  aligned.set(bytes);
  const v = verifySnapshot(aligned, keys);
  if (!v.ok) throw new Error(v.detail);
  const s = new SnapshotView(aligned, v.value);
  const b = s.checkBounds();
  if (!b.ok) throw new Error(b.detail);
  return s;
}

describe('list snapshots', () => {
  it('answers exactly for every key kind', () => {
    const b = new ListBuilder();
    const truth = new Map<string, number>();
    for (let i = 0; i < 5000; i++) truth.set(card(i), 1 + (i % 3));
    for (let i = 0; i < 2000; i++) truth.set(`qr:alipay:acct${i}`, 1 + (i % 3) | (i % 7 === 0 ? 4 : 0));
    for (let i = 0; i < 500; i++) truth.set(`ticket:T${String(i).padStart(9, '0')}`, 1);
    truth.set('card:0000000000000000000', 5);
    truth.set('card:9999999999999999999', 3);
    for (const [k, v] of truth) b.set(k, v);
    b.set(card(1), 3); // duplicate: last wins
    truth.set(card(1), 3);
    const s = view(signList(b.build({ version: 7, publishedAtMs: 1_650_000_000_000 }), privateKey));
    expect(s.size).toBe(truth.size);
    expect(s.header.version).toBe(7);
    for (const [k, v] of truth) expect(s.status(k)).toBe(v);
    for (let i = 5000; i < 6000; i++) expect(s.status(card(i))).toBe(0);
    expect(s.status('qr:alipay:acct99999')).toBe(0);
    expect(s.status('qr:alipay:acct1x')).toBe(0);
    expect(s.status('card:123')).toBe(0);
    expect(s.status('')).toBe(0);
    expect(s.status('card:31000000000000000０0')).toBe(0);
  });

  it('resolves a 64-bit hash collision by the stored key bytes (no false accept)', () => {
    const b = new ListBuilder();
    b.set('qr:alipay:x1', 1); // green
    b.set('qr:alipay:x2', 3); // red
    const bytes = b.build({ version: 1, publishedAtMs: 1 });
    const h = readSnapshotHeader(bytes);
    if (!h.ok) throw new Error(h.detail);
    const s = new SnapshotView(bytes, h.value);
    // Force both entries under x2's hash, ordered by key bytes (x1 < x2), as a real collision would be stored.
    const t = new Uint32Array(2);
    hashKey('qr:alipay:x2', t);
    const i1 = s.keyAt(0) === 'qr:alipay:x1' ? 0 : 1;
    const offs = [s.gOff[i1], s.gOff[1 - i1]];
    const sts = [s.gSt[i1], s.gSt[1 - i1]];
    for (const i of [0, 1]) {
      s.gHi[i] = t[0];
      s.gLo[i] = t[1];
      s.gOff[i] = offs[i];
      s.gSt[i] = sts[i];
    }
    fillBuckets(s.gBucket, s.gHi, 2, h.value.genBits);
    expect(s.keyAt(0)).toBe('qr:alipay:x1');
    // x2's lookup lands on x1 first (same hash) and must go on to its own entry: red, never x1's green.
    expect(s.status('qr:alipay:x2')).toBe(3);
    // A key that is not stored, whatever its hash, is not found.
    expect(s.status('qr:alipay:x3')).toBe(0);
  });

  it('rejects tampered, truncated and wrongly signed snapshots', () => {
    const b = new ListBuilder();
    for (let i = 0; i < 100; i++) b.set(card(i), 1);
    const good = signList(b.build({ version: 3, publishedAtMs: 1 }), privateKey);
    expect(verifySnapshot(good, trusted).ok).toBe(true);
    const flip = (at: number) => { const c = good.slice(); c[at] ^= 1; return verifySnapshot(c, trusted); };
    expect(flip(HEADER_BYTES + 10)).toMatchObject({ ok: false, error: 'bad-checksum' });
    expect(flip(8)).toMatchObject({ ok: false, error: 'bad-signature' });
    expect(flip(200)).toMatchObject({ ok: false, error: 'bad-signature' });
    expect(verifySnapshot(good.subarray(0, good.length - 1), trusted)).toMatchObject({ ok: false, error: 'bad-length' });
    expect(verifySnapshot(good.subarray(0, 100), trusted)).toMatchObject({ ok: false, error: 'too-short' });
    const wrong = signList(b.build({ version: 3, publishedAtMs: 1 }), other.privateKey);
    expect(verifySnapshot(wrong, trusted)).toMatchObject({ ok: false, error: 'unknown-key' });
  });
});

describe('list deltas', () => {
  it('merges upserts and removals exactly, and rejects tampering', () => {
    const b = new ListBuilder();
    const truth = new Map<string, number>();
    for (let i = 0; i < 3000; i++) { truth.set(card(i), 1); b.set(card(i), 1); }
    for (let i = 0; i < 300; i++) { truth.set(`qr:cmb:u${i}`, 2); b.set(`qr:cmb:u${i}`, 2); }
    const s0 = view(signList(b.build({ version: 1, publishedAtMs: 1 }), privateKey));
    const changes: ListChange[] = [];
    for (let i = 0; i < 3000; i += 3) changes.push({ key: card(i), status: 0 });
    for (let i = 1; i < 3000; i += 3) changes.push({ key: card(i), status: 3 });
    for (let i = 3000; i < 3500; i++) changes.push({ key: card(i), status: 2 });
    for (let i = 0; i < 300; i += 2) changes.push({ key: `qr:cmb:u${i}`, status: 0 });
    for (let i = 300; i < 400; i++) changes.push({ key: `qr:cmb:u${i}`, status: 5 });
    changes.push({ key: 'ticket:ABCDEFGH', status: 1 });
    for (const c of changes) if (c.status === 0) truth.delete(c.key); else truth.set(c.key, c.status);
    const d = signList(encodeDelta(1, 2, changes), privateKey);
    const v = verifyDeltas(d, trusted);
    if (!v.ok) throw new Error(v.detail);
    expect(v.value[0].changes.length).toBe(changes.length);
    const merged = runToEnd(mergeChanges(s0, v.value[0].changes, { version: 2, publishedAtMs: 2 }, 64));
    const s1 = view(merged, null);
    expect(s1.size).toBe(truth.size);
    for (const [k, st] of truth) expect(s1.status(k)).toBe(st);
    for (let i = 0; i < 3000; i += 3) expect(s1.status(card(i))).toBe(0);
    const t = d.slice(); t[t.length - 1] ^= 0x20;
    expect(verifyDeltas(t, trusted)).toMatchObject({ ok: false, error: 'bad-checksum' });
    expect(verifyDeltas(d.subarray(0, d.length - 2), trusted)).toMatchObject({ ok: false, error: 'bad-length' });
    const d2 = signList(encodeDelta(2, 3, []), privateKey);
    const d3 = signList(encodeDelta(3, 4, []), privateKey);
    expect(verifyDeltas(Buffer.concat([d, d2, d3]), trusted).ok).toBe(true);
    expect(verifyDeltas(Buffer.concat([d, d3, d2]), trusted)).toMatchObject({ ok: false, error: 'bad-layout' });
  });
});
