// List freshness from the back office's signed word (protocol/lists/freshness.ts): the statement's bytes
// as protocol/README.md tables them, and a real lane on lists synced from the real back office through a
// path that can answer for it. A quiet back office keeps the lane's lists fresh; a path that answers 204,
// an empty 200 or a recorded old answer is a failed round (counted, alarmed after 3), the list age keeps
// growing on the lane's own (virtual) clock, and the stale-list policy takes the lane out of service.
import { generateKeyPairSync, verify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedBarrierLink, SimulatedSource } from '../../drivers/simulated.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { startLane, type Lane } from '../../firmware/composition/start-lane.js';
import { ListSync } from '../../firmware/lists/list-sync.js';
import {
  FRESHNESS_BYTES,
  acceptFreshness,
  checkFreshness,
  freshnessHeaderValue,
  readFreshness,
  signFreshness,
  trustedListKey,
  type FreshnessStatement,
} from '../../protocol/lists/index.js';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { withCheckDigit } from '../../simulator/backoffice/validate.js';
import { VirtualBarrier } from '../../simulator/virtual-barrier.js';
import { VirtualClock } from '../../simulator/virtual-clock.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('the freshness statement (protocol/README.md, "List freshness statement")', () => {
  const k = generateKeyPairSync('ed25519');
  const other = generateKeyPairSync('ed25519');
  const keys = [trustedListKey(k.publicKey.export({ format: 'pem', type: 'spki' }).toString())];
  const nonce = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
  const fields = { latestVersion: 0x01020304, latestPublishedAtMs: 1_650_000_000_123, issuedAtMs: 1_650_000_100_456, trustListSeq: 42, nonce };

  /** Bytes 0-55, laid out alike in both formats. */
  const commonFields = (b: Uint8Array, format: 1 | 2): DataView => {
    const v = new DataView(b.buffer);
    expect(Buffer.from(b.subarray(0, 4)).toString('latin1')).toBe('GLFS');
    expect([v.getUint16(4, true), v.getUint16(6, true)]).toEqual([format, format === 1 ? 128 : 144]);
    expect(v.getUint32(8, true)).toBe(0x01020304);
    expect(v.getUint32(12, true)).toBe(0);
    expect(Number(v.getBigUint64(16, true))).toBe(1_650_000_000_123);
    expect(Number(v.getBigUint64(24, true))).toBe(1_650_000_100_456);
    expect(Number(v.getBigUint64(32, true))).toBe(42);
    expect([...b.subarray(40, 56)]).toEqual([...nonce]);
    return v;
  };

  it('format 2 lays its fields where the table says, signs bytes 0-79, and reads back', () => {
    const b = signFreshness({ ...fields, scheduleSeq: 7, fareTableSeq: 9 }, k.privateKey);
    expect(b.byteLength).toBe(FRESHNESS_BYTES);
    expect(b.byteLength).toBe(144);
    const v = commonFields(b, 2);
    expect([Number(v.getBigUint64(56, true)), Number(v.getBigUint64(64, true))]).toEqual([7, 9]);
    expect(Buffer.from(b.subarray(72, 80)).equals(Buffer.from(keys[0].keyId))).toBe(true);
    expect(verify(null, b.subarray(0, 80), k.publicKey, b.subarray(80))).toBe(true);
    expect(readFreshness(b, keys)).toMatchObject({ ok: true, value: { format: 2, latestVersion: 0x01020304, trustListSeq: 42, scheduleSeq: 7, fareTableSeq: 9 } });
  });

  it('format 1 (a gate that does not ask for 2) lays its fields where the table says, signs bytes 0-63, and reads back', () => {
    const b = signFreshness({ ...fields, format: 1, scheduleSeq: 7 }, k.privateKey);
    expect(b.byteLength).toBe(128);
    commonFields(b, 1);
    expect(Buffer.from(b.subarray(56, 64)).equals(Buffer.from(keys[0].keyId))).toBe(true);
    expect(verify(null, b.subarray(0, 64), k.publicKey, b.subarray(64))).toBe(true);
    const r = readFreshness(b, keys);
    expect(r).toMatchObject({ ok: true, value: { format: 1, latestVersion: 0x01020304, latestPublishedAtMs: 1_650_000_000_123, issuedAtMs: 1_650_000_100_456, trustListSeq: 42, scheduleSeq: 0, fareTableSeq: 0 } });
    // Every byte of it checked too.
    for (let i = 0; i < 128; i++) {
      const c = b.slice();
      c[i] ^= 0x10;
      expect(readFreshness(c, keys).ok, `format 1 byte ${i}`).toBe(false);
    }
  });

  it('refuses every byte changed, a stranger key, a wrong length, and breaks of the gate rules', () => {
    const b = signFreshness(fields, k.privateKey);
    for (let i = 0; i < FRESHNESS_BYTES; i++) {
      const c = b.slice();
      c[i] ^= 0x10;
      expect(readFreshness(c, keys).ok, `byte ${i}`).toBe(false);
    }
    expect(readFreshness(signFreshness(fields, other.privateKey), keys)).toMatchObject({ ok: false, error: 'unknown-key' });
    expect(readFreshness(b.subarray(0, 127), keys)).toMatchObject({ ok: false, error: 'too-short' });
    expect(acceptFreshness(undefined, keys, nonce, undefined)).toMatchObject({ ok: false, error: 'missing' });
    expect(acceptFreshness('not base64!', keys, nonce, undefined)).toMatchObject({ ok: false, error: 'bad-length' });
    expect(acceptFreshness(freshnessHeaderValue(b), keys, nonce, undefined)).toMatchObject({ ok: true });
    const s = (readFreshness(b, keys) as { value: FreshnessStatement }).value;
    expect(checkFreshness(s, new Uint8Array(16), undefined)).toMatchObject({ ok: false, error: 'wrong-nonce' });
    expect(checkFreshness(s, nonce, s)).toMatchObject({ ok: false, error: 'not-newer' });
    expect(checkFreshness(s, nonce, { ...s, issuedAtMs: s.issuedAtMs + 1 })).toMatchObject({ ok: false, error: 'not-newer' });
    expect(checkFreshness(s, nonce, { ...s, issuedAtMs: s.issuedAtMs - 1, latestVersion: s.latestVersion + 1 })).toMatchObject({ ok: false, error: 'rollback' });
    expect(checkFreshness(s, nonce, { ...s, issuedAtMs: s.issuedAtMs - 1, trustListSeq: 43 })).toMatchObject({ ok: false, error: 'rollback' });
    expect(checkFreshness(s, nonce, { ...s, issuedAtMs: s.issuedAtMs - 1, scheduleSeq: 1 })).toMatchObject({ ok: false, error: 'rollback' });
    expect(checkFreshness(s, nonce, { ...s, issuedAtMs: s.issuedAtMs - 1, fareTableSeq: 1 })).toMatchObject({ ok: false, error: 'rollback' });
    expect(checkFreshness(s, nonce, { ...s, issuedAtMs: s.issuedAtMs - 1 })).toMatchObject({ ok: true });
    // Format 1 after format 2: the request's `freshness=2` was stripped on the way.
    const one = (readFreshness(signFreshness({ ...fields, format: 1 }, k.privateKey), keys) as { value: FreshnessStatement }).value;
    expect(checkFreshness(one, nonce, { ...s, issuedAtMs: s.issuedAtMs - 1 })).toMatchObject({ ok: false, error: 'rollback' });
    expect(checkFreshness(s, nonce, { ...one, issuedAtMs: s.issuedAtMs - 1 })).toMatchObject({ ok: true });
    // A format this gate does not know.
    const three = signFreshness(fields, k.privateKey);
    new DataView(three.buffer).setUint16(4, 3, true);
    expect(readFreshness(three, keys)).toMatchObject({ ok: false, error: 'unsupported-format' });
  });
});

type Mode = 'pass' | '204' | 'empty-200' | 'replay' | 'strip' | 'block-schedule' | 'block-fare-table' | 'old-format';

/**
 * A path between gate and back office that forwards, or answers for the back office: 204, an empty 200, an
 * answer recorded earlier, the real answer with its statement cut off, 404 for the schedule or the fare
 * table alone, or the gate's request with its `freshness=2` taken out (the back office then signs format 1).
 */
async function path(target: string) {
  let mode: Mode = 'pass';
  let recorded: { status: number; headers: IncomingHttpHeaders; body: Buffer } | undefined;
  const server = createServer(async (req, res) => {
    const deltas = req.url!.startsWith('/v1/lists/deltas');
    if (deltas && mode === '204') return void res.writeHead(204).end();
    if (deltas && mode === 'empty-200') return void res.writeHead(200, { 'content-length': 0 }).end();
    if (deltas && mode === 'replay' && recorded) return void res.writeHead(recorded.status, recorded.headers).end(recorded.body);
    if (mode === 'block-schedule' && req.url!.startsWith('/v1/policy-schedule')) return void res.writeHead(404).end();
    if (mode === 'block-fare-table' && req.url!.startsWith('/v1/fare-table')) return void res.writeHead(404).end();
    const url = deltas && mode === 'old-format' ? req.url!.replace(/&freshness=2/, '') : req.url!;
    const r = await fetch(target + url, { headers: req.headers.authorization ? { authorization: req.headers.authorization } : {} });
    const body = Buffer.from(await r.arrayBuffer());
    const headers: IncomingHttpHeaders = {};
    for (const [k, v] of r.headers) if (k !== 'transfer-encoding' && k !== 'connection' && k !== 'keep-alive') headers[k] = v;
    if (deltas && mode === 'strip') delete headers['list-freshness'];
    if (deltas && mode === 'pass') recorded = { status: r.status, headers, body };
    res.writeHead(r.status, headers).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, set: (m: Mode) => (mode = m) };
}

const card = withCheckDigit('310410009876543210'.slice(0, 18));

async function station(documents: { schedule?: boolean; fareTable?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'freshness-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const clock = new VirtualClock(Date.now());
  // The back office keeps the same (virtual) time as the gate: its statements are signed at that time.
  const bo = new Backoffice({ db: ':memory:', now: () => clock.now() });
  const { url } = await bo.listen(0);
  cleanups.push(() => bo.close());
  bo.importEntries([[`card:${card}`, 'green']]);
  bo.publish();
  const front = await path(url);
  const sync = await ListSync.open({
    url: front.url, dir: join(dir, 'lists'), trustedKeys: [trustedListKey(bo.publicKeyPem)], clock,
    ...(documents.schedule ? { policySchedule: {} } : {}),
    ...(documents.fareTable ? { fareTable: { path: join(dir, 'fare-table.json') } } : {}),
  });
  cleanups.push(() => sync.stop());
  const alarms: string[] = [];
  sync.onAlarm((a) => alarms.push(`${a.alarm}: ${a.detail}`));
  const config = parseLaneConfig({ lane: { id: 'F1', direction: 'entry' }, policy: { listMaxAgeSeconds: 60, staleListAction: 'out-of-service' } });
  const entry = new SimulatedSource('sim-entry', 'entry', clock);
  const lane: Lane = await startLane({ config, clock, barrier: new SimulatedBarrierLink(new VirtualBarrier(clock), clock), sources: [entry], lists: sync });
  cleanups.push(() => lane.stop());
  /** Move the lane's clock (and the back office's) on, letting the lane's timers and I/O run. */
  const advance = async (ms: number) => {
    const until = clock.now() + ms;
    for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
    while (clock.step(until)) for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
    clock.advanceTo(until);
    for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
  };
  return { bo, url, dir, sync, lane, front, alarms, advance, clock };
}

describe('list age from the last verified statement, on the lane clock', () => {
  it('a quiet back office (no new version for longer than listMaxAgeSeconds) keeps the lane fresh and in service', async () => {
    // Failed on the old code: age counted from the version's publication, so the lane went out of service
    // after 60 s of a back office that simply had nothing new to publish.
    const { sync, lane, advance, clock } = await station();
    expect(await sync.syncOnce()).toMatchObject({ kind: 'applied', via: 'snapshot' });
    await advance(0);
    const publishedAtMs = sync.current().publishedAtMs;
    for (let i = 0; i < 6; i++) {
      await advance(30_000);
      expect(await sync.syncOnce()).toMatchObject({ kind: 'up-to-date' });
    }
    await advance(5_000);
    expect(clock.now() - publishedAtMs).toBeGreaterThan(180_000);
    expect(sync.status().ageMs).toBeLessThanOrEqual(5_000);
    expect(lane.view().listAgeMs).toBeLessThanOrEqual(5_000);
    expect(lane.view().mode).toBe('normal');
    expect(lane.view().faults['list-too-old']).toBeUndefined();
  });

  it('204, an empty 200, a replayed answer or a stripped statement: failures counted and alarmed, age grows, the stale policy takes the lane out of service; a good answer brings it back', async () => {
    // Failed on the old code: 204 and an empty 200 were "up to date" and reset the failure count, so no
    // round failed and no alarm was raised while the path froze the gate's lists.
    const { sync, lane, front, alarms, advance } = await station();
    expect(await sync.syncOnce()).toMatchObject({ kind: 'applied' });
    await advance(10_000);
    expect(await sync.syncOnce()).toMatchObject({ kind: 'up-to-date' }); // recorded by the path for its replay
    const freshAt = sync.freshAtMs();
    const modes: Mode[] = ['204', 'empty-200', 'replay', 'strip'];
    for (const [i, m] of modes.entries()) {
      await advance(15_000);
      front.set(m);
      const r = await sync.syncOnce();
      expect(r, m).toMatchObject({ kind: 'failed' });
      expect((r as { detail: string }).detail, m).toMatch(m === 'replay' ? /wrong-nonce/ : /freshness statement \(missing\)/);
      expect(sync.status().consecutiveFailures, m).toBe(i + 1);
      expect(sync.freshAtMs(), m).toBe(freshAt);
      expect(sync.status().ageMs, m).toBe(15_000 * (i + 1));
    }
    expect(sync.status().counters.freshnessRefused).toBe(4);
    expect(alarms.filter((a) => a.startsWith('list-sync-failing'))).toHaveLength(1);
    expect(alarms[0]).toMatch(/^list-sync-failing: 3 sync rounds failed: HTTP 204 without a good freshness statement \(wrong-nonce\)/);
    // Past 60 s since the last statement: the lane's own age check (every 6 s here) applies the stale-list policy.
    await advance(7_000);
    expect(lane.view().listAgeMs).toBeGreaterThan(60_000);
    expect(lane.view().faults['list-too-old']).toBe('list older than policy allows');
    expect(lane.view().mode).toBe('outOfService');
    // The real back office again: fresh, in service.
    front.set('pass');
    expect(await sync.syncOnce()).toMatchObject({ kind: 'up-to-date' });
    expect(sync.status().consecutiveFailures).toBe(0);
    await advance(7_000);
    expect(lane.view().faults['list-too-old']).toBeUndefined();
    expect(lane.view().mode).toBe('normal');
  });

  it('a path that blocks only the schedule or only the fare table fails the round the statement contradicts; the lists do not stay fresh on it', async () => {
    // Failed before format 2: the statement named neither, a 404 reads as "none published", the round
    // succeeded and the gate stayed on its older schedule (an earlier enforcement stage) with fresh lists.
    const { bo, sync, front, alarms, advance } = await station({ schedule: true, fareTable: true });
    const stations = Array.from({ length: 3 }, (_, i) => ({ id: i + 1, name: `S${i + 1}`, line: 'L1' }));
    bo.publishPolicySchedule({ card: { adviseFromMs: 0, enforceFromMs: 0 } });
    bo.publishFareTable({ stations, distancesM: Array.from({ length: 9 }, (_, k) => Math.abs(Math.floor(k / 3) - (k % 3)) * 3000) });
    expect(await sync.syncOnce()).toMatchObject({ kind: 'applied' });
    expect(sync.status().counters).toMatchObject({ scheduleUpdates: 1, fareTableUpdates: 1 });
    const freshAt = sync.freshAtMs();
    // The operator moves the stage on; the path keeps the schedule back (the fare table passes).
    bo.publishPolicySchedule({ card: { adviseFromMs: 0, enforceFromMs: 0 }, qr: { adviseFromMs: 0, enforceFromMs: 0 } });
    const round = async (m: Mode, why: RegExp, n: number) => {
      await advance(10_000);
      front.set(m);
      const r = await sync.syncOnce();
      expect(r, m).toMatchObject({ kind: 'failed' });
      expect((r as { detail: string }).detail, m).toMatch(why);
      expect(sync.status().consecutiveFailures, m).toBe(n);
      expect(sync.freshAtMs(), m).toBe(freshAt);
    };
    await round('block-schedule', /^the back office announces enforcement schedule seq 2, the gate holds 1$/, 1);
    await round('block-schedule', /^the back office announces enforcement schedule seq 2, the gate holds 1$/, 2);
    // Now the fares change and the path keeps the fare table back instead (the schedule passes).
    bo.publishFareTable({ stations, distancesM: Array.from({ length: 9 }, (_, k) => Math.abs(Math.floor(k / 3) - (k % 3)) * 6000) });
    await round('block-fare-table', /^the back office announces fare table seq 2, the gate holds 1$/, 3);
    expect(sync.status().counters).toMatchObject({ scheduleUpdates: 2, fareTableUpdates: 1 });
    expect(sync.status().ageMs).toBe(30_000);
    expect(alarms.filter((a) => a.startsWith('list-sync-failing'))).toEqual([expect.stringMatching(/3 sync rounds failed: the back office announces fare table seq 2, the gate holds 1/)]);
    // Let through: both taken, the round succeeds, fresh again.
    front.set('pass');
    expect(await sync.syncOnce()).toMatchObject({ kind: 'up-to-date' });
    expect(sync.status()).toMatchObject({ consecutiveFailures: 0, counters: { scheduleUpdates: 2, fareTableUpdates: 2 } });
    expect(sync.freshAtMs()).toBeGreaterThan(freshAt);
  });

  it('a request whose freshness=2 is taken out on the way gets a format-1 statement: refused once the gate has had format 2', async () => {
    const { sync, front } = await station({ schedule: true });
    expect(await sync.syncOnce()).toMatchObject({ kind: 'applied' });
    expect(sync.status().consecutiveFailures).toBe(0);
    front.set('old-format');
    const r = await sync.syncOnce();
    expect(r).toMatchObject({ kind: 'failed' });
    expect((r as { detail: string }).detail).toMatch(/\(rollback\): freshness statement in format 1 after format 2/);
    front.set('pass');
    expect(await sync.syncOnce()).toMatchObject({ kind: 'up-to-date' });
  });

  it('a back office that only signs format 1 (built before it) still keeps a new gate fresh', async () => {
    const { sync, front, advance } = await station({ schedule: true });
    front.set('old-format');
    expect(await sync.syncOnce()).toMatchObject({ kind: 'applied' });
    await advance(10_000);
    expect(await sync.syncOnce()).toMatchObject({ kind: 'up-to-date' });
    expect(sync.status().ageMs).toBe(0);
  });

  it('a genuine statement on an answer that dropped the deltas is a failed round, not "up to date"', async () => {
    // Failed on the old code: a 204 was "up to date", whatever the back office had published.
    const { bo, url, dir } = await station();
    // A path that keeps the back office's statement for this very poll, but answers 204 instead of the deltas.
    const dropper = createServer(async (req, res) => {
      const r = await fetch(url + req.url);
      await r.arrayBuffer();
      res.writeHead(204, { 'list-freshness': r.headers.get('list-freshness') ?? '' }).end();
    });
    await new Promise<void>((r) => dropper.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => { dropper.closeAllConnections(); dropper.close(() => r()); }));
    const via = await ListSync.open({ url: `http://127.0.0.1:${(dropper.address() as AddressInfo).port}`, dir: join(dir, 'dropped'), trustedKeys: [trustedListKey(bo.publicKeyPem)] });
    cleanups.push(() => via.stop());
    const r = await via.syncOnce();
    expect(r).toMatchObject({ kind: 'failed' });
    expect((r as { detail: string }).detail).toBe(`the back office announces list version ${bo.latestVersion()}, the answer left the gate at 0`);
    expect(via.status().ageMs).toBe(Infinity);
  });
});
