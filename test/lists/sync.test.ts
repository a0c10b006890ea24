import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { policySchema } from '../../firmware/config/config.js';
import { DecisionCore } from '../../firmware/verify/decision-core.js';
import { ListMerger } from '../../firmware/lists/merger.js';
import { ListSync } from '../../firmware/lists/list-sync.js';
import { openListFile } from '../../firmware/lists/segmented-lists.js';
import { ListBuilder, encodeDelta, signList, trustedListKey, type ListChange } from '../../protocol/lists/index.js';
import { verifyTrustList } from '../../protocol/trust-list.js';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { withCheckDigit } from '../../simulator/backoffice/validate.js';
import { IssuerApps } from '../../simulator/virtual-phone.js';
import { freshnessHeaders } from '../support/freshness.js';

// The compiled worker: `npm test` builds before vitest runs.
const WORKER = new URL('../../dist/firmware/lists/merge-worker.js', import.meta.url);
if (!existsSync(fileURLToPath(WORKER))) throw new Error('dist/firmware/lists/merge-worker.js is missing: run `npm run build` first (npm test does)');

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'sync-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
};

async function backoffice(): Promise<{ bo: Backoffice; url: string }> {
  const bo = new Backoffice({ db: ':memory:' });
  const { url } = await bo.listen(0);
  cleanups.push(() => bo.close());
  return { bo, url };
}

async function post(url: string, path: string, body: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

const card = (n: number) => withCheckDigit(`310000${String(n).padStart(12, '0')}`);
const rider = { name: '张三', phone: '13800138000' };

/** An HTTP front that forwards to `target` or misbehaves on demand. */
async function faultyFront(target: string) {
  let mode: 'pass' | 'down' | 'slow' | 'error' | 'garbage' | 'cut' = 'pass';
  const server: Server = createServer(async (req, res) => {
    if (mode === 'down') return void req.socket.destroy();
    if (mode === 'error') return void res.writeHead(503).end('back office overloaded');
    if (mode === 'slow') return void setTimeout(() => res.writeHead(503).end(), 3000);
    const r = await fetch(target + req.url);
    const body = new Uint8Array(await r.arrayBuffer());
    if (mode === 'garbage') {
      const g = new Uint8Array(body.length + 300).map(() => (Math.random() * 256) | 0);
      return void res.writeHead(200, { 'content-length': g.length }).end(g);
    }
    if (mode === 'cut' && body.length > 0) {
      res.writeHead(r.status, { 'content-length': body.length });
      res.write(body.subarray(0, body.length >> 1));
      return void setTimeout(() => res.destroy(), 20);
    }
    const h: Record<string, string> = {};
    for (const k of ['content-type', 'etag', 'list-freshness']) if (r.headers.get(k)) h[k] = r.headers.get(k)!;
    res.writeHead(r.status, h).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, set: (m: typeof mode) => (mode = m) };
}

describe('registration', () => {
  it('valid, invalid number, duplicate, missing consent, unknown type, QR link', async () => {
    const { url } = await backoffice();
    const ok = await post(url, '/v1/registrations', { credentialType: 'yikatong-card', number: card(1), rider, consent: true });
    expect(ok).toMatchObject({ status: 201, body: { key: `card:${card(1)}`, status: 'green' } });
    const t = await post(url, '/v1/registrations', { credentialType: 'commemorative-ticket', number: 'bj2022 0001', rider, consent: true });
    expect(t).toMatchObject({ status: 201, body: { key: 'ticket:BJ20220001' } });
    const dup = await post(url, '/v1/registrations', { credentialType: 'phone-nfc-card', number: card(1), rider, consent: true });
    expect(dup).toMatchObject({ status: 409, body: { error: 'duplicate', field: 'number' } });
    const typo = card(2).slice(0, 18) + ((Number(card(2)[18]) + 1) % 10);
    expect(await post(url, '/v1/registrations', { credentialType: 'yikatong-card', number: typo, rider, consent: true })).toMatchObject({ status: 400, body: { error: 'invalid-number', field: 'number' } });
    expect(await post(url, '/v1/registrations', { credentialType: 'yikatong-card', number: '12345', rider, consent: true })).toMatchObject({ status: 400, body: { error: 'invalid-number' } });
    expect(await post(url, '/v1/registrations', { credentialType: 'commemorative-ticket', number: 'AB', rider, consent: true })).toMatchObject({ status: 400, body: { error: 'invalid-number' } });
    expect(await post(url, '/v1/registrations', { credentialType: 'yikatong-card', number: card(3), rider })).toMatchObject({ status: 400, body: { error: 'missing-consent', field: 'consent' } });
    expect(await post(url, '/v1/registrations', { credentialType: 'yikatong-card', number: card(3), rider, consent: 'yes' })).toMatchObject({ status: 400, body: { error: 'missing-consent' } });
    expect(await post(url, '/v1/registrations', { credentialType: 'bus-pass', number: card(3), rider, consent: true })).toMatchObject({ status: 400, body: { error: 'unknown-type', field: 'credentialType' } });
    expect(await post(url, '/v1/registrations', { credentialType: 'yikatong-card', number: card(3), rider: { name: '' }, consent: true })).toMatchObject({ status: 400, body: { error: 'invalid-details' } });
    expect(await post(url, '/v1/registrations', '{not json')).toMatchObject({ status: 400, body: { error: 'invalid-json' } });
    expect(await post(url, '/v1/qr-links', { issuer: 'alipay', account: '2088000000000001' })).toMatchObject({ status: 201, body: { key: 'qr:alipay:2088000000000001' } });
    expect(await post(url, '/v1/qr-links', { issuer: 'alipay', account: '2088000000000001' })).toMatchObject({ status: 409 });
    expect(await post(url, '/v1/qr-links', { issuer: 'wechat', account: 'x' })).toMatchObject({ status: 400, body: { error: 'unknown-issuer' } });
  });
});

// The same suites with deltas and snapshots applied in-thread (as from sources) and by the compiled
// merge worker (as in the runtime: merges, list file writes, log appends and the snapshot install on
// its own thread, with blocking file I/O).
describe.each(['in-thread', 'worker'] as const)('%s', (how) => {
  const merger = () => {
    if (how === 'in-thread') return new ListMerger(undefined);
    const m = new ListMerger(WORKER);
    cleanups.push(() => m.close());
    return m;
  };

  describe('list sync', () => {
    it('a new registration, a status change and a block reach a DecisionCore through sync and change its decision', async () => {
      const { bo, url } = await backoffice();
      const dir = tmp();
      const sync = await ListSync.open({ merger: merger(), url, dir, trustedKeys: [trustedListKey(bo.publicKeyPem)] });
      cleanups.push(() => sync.stop());
      const core = new DecisionCore("bidirectional", policySchema.parse({ antiPassbackSeconds: 0 }), { lists: sync });
      const tap = (n: number) => core.decide({ presented: { kind: 'credential', credential: { kind: 'phone-nfc', cardNumber: card(n) } }, side: 'entry', nowMs: Date.now() });
      expect(await sync.syncOnce()).toMatchObject({ kind: 'applied', via: 'snapshot' });
      expect(tap(7).reason).toBe('not-registered');
      await post(url, '/v1/registrations', { credentialType: 'yikatong-card', number: card(7), rider, consent: true });
      expect(tap(7).reason).toBe('not-registered'); // not published yet
      bo.publish();
      expect(await sync.syncOnce()).toMatchObject({ kind: 'applied', via: 'deltas' });
      expect(tap(7)).toMatchObject({ grant: true, reason: 'ok' });
      await post(url, '/v1/status', { key: `card:${card(7)}`, status: 'red' });
      bo.publish();
      await sync.syncOnce();
      expect(tap(7)).toMatchObject({ grant: false, reason: 'status-red' });
      await post(url, '/v1/status', { updates: [{ key: `card:${card(7)}`, status: 'green' }] });
      await post(url, '/v1/blocks', { key: `card:${card(7)}`, blocked: true });
      bo.publish();
      await sync.syncOnce();
      expect(tap(7)).toMatchObject({ grant: false, reason: 'blocked' });
      expect(sync.status().version).toBe(bo.latestVersion());
      expect(await sync.syncOnce()).toMatchObject({ kind: 'up-to-date' });
      // The list survives a restart with the back office gone: the list file holds the snapshot, the
      // delta log the deltas since (the 620 MB file of a big list is not rewritten for every delta).
      const { lists: file } = await openListFile(sync.snapshotPath);
      await file.settled;
      expect(file.version).toBeLessThan(bo.latestVersion());
      expect(sync.status().counters).toMatchObject({ listFileWrites: 1, deltaLogAppends: 3 });
      const again = await ListSync.open({ merger: merger(), url: 'http://127.0.0.1:9', dir, trustedKeys: [trustedListKey(bo.publicKeyPem)] });
      cleanups.push(() => again.stop());
      expect(await again.bootCheck).toBe(true);
      expect(again.current().version).toBe(bo.latestVersion());
      expect(again.current().denylist.isBlocked(`card:${card(7)}`)).toBe(true);
      expect(again.status().counters.deltasReplayed).toBe(3);
    });

    it('falls back to the snapshot when a delta is missing, and fetches issuer keys', async () => {
      const { bo, url } = await backoffice();
      const apps = new IssuerApps('sync-test');
      const doc = apps.trustListDocument();
      bo.setIssuerKeys(doc);
      const got: string[] = [];
      const keys = apps.backOfficeKeys();
      const verify = (d: Uint8Array) => {
        const r = verifyTrustList(d, keys);
        return r.ok ? { ok: true as const, seq: r.list.seq } : { ok: false as const, detail: r.detail };
      };
      const sync = await ListSync.open({ merger: merger(), url, dir: tmp(), trustedKeys: [trustedListKey(bo.publicKeyPem)], issuerKeys: { verify } }, (b) => got.push(Buffer.from(b).toString()));
      await sync.syncOnce();
      for (let i = 0; i < 5; i++) {
        await post(url, '/v1/registrations', { credentialType: 'yikatong-card', number: card(100 + i), rider, consent: true });
        bo.publish();
      }
      bo.db.prepare('UPDATE versions SET delta = NULL WHERE version = ?').run(bo.latestVersion() - 2);
      expect(await sync.syncOnce()).toMatchObject({ kind: 'applied', via: 'snapshot', to: bo.latestVersion() });
      expect(sync.current().allowlist.lookup(`card:${card(104)}`)).toBe('green');
      expect(got).toEqual([Buffer.from(doc).toString()]);
      expect(readFileSync(sync.issuerKeysPath).equals(Buffer.from(doc))).toBe(true);
      await sync.syncOnce();
      expect(got.length).toBe(1); // ETag: not handed on again
      // The worker did it all: two snapshot installs, the deltas between them, and no in-thread fallback.
      if (how === 'worker') expect(sync.merger.counters).toMatchObject({ inThread: 0, fileJobsInThread: 0, workerFailures: 0 });
      if (how === 'worker') expect(sync.merger.counters.fileJobsInWorker).toBeGreaterThanOrEqual(2);
    });

    it('keeps serving through a back office that is down, slow, failing, garbled or cut mid-response, then catches up', async () => {
      const { bo, url } = await backoffice();
      const front = await faultyFront(url);
      const alarms: string[] = [];
      const sync = await ListSync.open({ merger: merger(), url: front.url, dir: tmp(), trustedKeys: [trustedListKey(bo.publicKeyPem)], timeoutMs: 500 });
      sync.onAlarm((a) => alarms.push(a.alarm));
      await sync.syncOnce();
      await post(url, '/v1/registrations', { credentialType: 'yikatong-card', number: card(1), rider, consent: true });
      bo.publish();
      await sync.syncOnce();
      const v = sync.status().version;
      for (let i = 2; i < 30; i++) await post(url, '/v1/registrations', { credentialType: 'yikatong-card', number: card(i), rider, consent: true });
      bo.publish();
      for (const m of ['down', 'slow', 'error', 'garbage', 'cut'] as const) {
        front.set(m);
        const r = await sync.syncOnce();
        expect(['failed', 'rejected'], m).toContain(r.kind);
        expect(sync.current().version, m).toBe(v);
        expect(sync.current().allowlist.lookup(`card:${card(1)}`), m).toBe('green');
      }
      expect(sync.status().consecutiveFailures).toBe(5);
      expect(alarms).toContain('list-sync-failing');
      front.set('pass');
      expect(await sync.syncOnce()).toMatchObject({ kind: 'applied' });
      expect(sync.current().allowlist.lookup(`card:${card(29)}`)).toBe('green');
      expect(sync.status().consecutiveFailures).toBe(0);
    });

    it('polls on its own with backoff while down and reports version and age', async () => {
      const { bo, url } = await backoffice();
      const front = await faultyFront(url);
      front.set('error');
      const sync = await ListSync.open({ merger: merger(), url: front.url, dir: tmp(), trustedKeys: [trustedListKey(bo.publicKeyPem)], pollMs: 20, minBackoffMs: 20, maxBackoffMs: 80 });
      cleanups.push(() => sync.stop());
      sync.start();
      await until(() => sync.status().consecutiveFailures >= 3);
      expect(sync.status().ageMs).toBe(Infinity);
      front.set('pass');
      await until(() => sync.status().version === bo.latestVersion());
      expect(sync.status().ageMs).toBeLessThan(60_000);
    });
  });

  async function until(f: () => boolean, ms = 10_000): Promise<void> {
    const end = Date.now() + ms;
    while (!f()) {
      if (Date.now() > end) throw new Error('condition not reached');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  describe('hostile list updates', () => {
    const good = generateKeyPairSync('ed25519');
    const evil = generateKeyPairSync('ed25519');
    const keys = [trustedListKey(good.publicKey.export({ format: 'pem', type: 'spki' }).toString())];

    function snap(version: number, entries: [string, number][], key = good.privateKey): Uint8Array {
      const b = new ListBuilder();
      for (const [k, s] of entries) b.set(k, s);
      return signList(b.build({ version, publishedAtMs: Date.now() }), key);
    }
    const delta = (from: number, changes: ListChange[], key = good.privateKey) => signList(encodeDelta(from, Date.now(), changes), key);

    /** A back office serving whatever bytes the test sets. */
    async function fake() {
      const s = { snapshot: new Uint8Array(0) as Uint8Array, deltas: null as Uint8Array | null };
      const server = createServer((req, res) => {
        if (req.url!.startsWith('/v1/lists/deltas')) {
          const fresh = freshnessHeaders(req.url, good.privateKey);
          if (!s.deltas) return void res.writeHead(410, fresh).end();
          if (s.deltas.length === 0) return void res.writeHead(204, fresh).end();
          return void res.writeHead(200, { 'content-length': s.deltas.length, ...fresh }).end(s.deltas);
        }
        if (req.url === '/v1/lists/snapshot') return void res.writeHead(200, { 'content-length': s.snapshot.length }).end(s.snapshot);
        res.writeHead(404).end();
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
      return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, s };
    }

    it('rejects tampered, truncated, reordered, replayed and wrongly signed updates; keeps the old list; raises an alarm', async () => {
      const f = await fake();
      const A = `card:${card(1)}`, B = `card:${card(2)}`;
      f.s.snapshot = snap(5, [[A, 1]]);
      const dir = tmp();
      const sync = await ListSync.open({ merger: merger(), url: f.url, dir, trustedKeys: keys });
      const alarms: string[] = [];
      sync.onAlarm((a) => alarms.push(`${a.alarm} ${a.detail}`));
      expect(await sync.syncOnce()).toMatchObject({ kind: 'applied', to: 5 });
      const fileBefore = readFileSync(sync.snapshotPath);
      const d56 = delta(5, [{ key: B, status: 1 }, { key: A, status: 0 }]);
      const d67 = delta(6, [{ key: B, status: 3 }]);
      const flip = (b: Uint8Array, at: number) => { const c = b.slice(); c[at] ^= 1; return c; };
      const cases: [string, () => void, string][] = [
        ['tampered delta body', () => (f.s.deltas = flip(d56, d56.length - 1)), 'bad-checksum'],
        ['tampered delta header', () => (f.s.deltas = flip(d56, 20)), 'bad-signature'],
        ['tampered delta version', () => (f.s.deltas = flip(d56, 12)), 'bad-layout'],
        ['truncated delta', () => (f.s.deltas = d56.subarray(0, d56.length - 3)), 'bad-length'],
        ['reordered deltas', () => (f.s.deltas = Buffer.concat([d67, d56])), 'bad-layout'],
        ['missing delta (gap)', () => (f.s.deltas = d67), 'gap'],
        ['reordered pair', () => (f.s.deltas = Buffer.concat([d56, delta(7, []), d67])), 'bad-layout'],
        ['replayed old delta', () => (f.s.deltas = delta(4, [{ key: B, status: 1 }])), 'replayed'],
        ['wrongly signed delta', () => (f.s.deltas = delta(5, [{ key: B, status: 1 }], evil.privateKey)), 'unknown-key'],
        ['garbage delta', () => (f.s.deltas = new Uint8Array(300).fill(7)), 'bad-magic'],
        ['replayed older snapshot', () => { f.s.deltas = null; f.s.snapshot = snap(4, [[B, 1]]); }, 'replayed'],
        ['wrongly signed snapshot', () => { f.s.deltas = null; f.s.snapshot = snap(9, [[B, 1]], evil.privateKey); }, 'unknown-key'],
        ['tampered snapshot', () => { f.s.deltas = null; f.s.snapshot = flip(snap(9, [[B, 1]]), 258); }, 'bad-checksum'],
        ['truncated snapshot', () => { f.s.deltas = null; const s = snap(9, [[B, 1]]); f.s.snapshot = s.subarray(0, s.length - 8); }, 'bad-length'],
      ];
      for (const [name, arrange, error] of cases) {
        arrange();
        alarms.length = 0;
        const r = await sync.syncOnce();
        expect(r, name).toMatchObject({ kind: 'rejected', error });
        expect(alarms.length, name).toBe(1);
        expect(alarms[0], name).toMatch(/^list-rejected/);
        expect(sync.current().version, name).toBe(5);
        expect(sync.current().allowlist.lookup(A), name).toBe('green');
        expect(sync.current().allowlist.lookup(B), name).toBeUndefined();
        expect(readFileSync(sync.snapshotPath).equals(fileBefore), name).toBe(true);
      }
      expect(sync.counters.rejected).toBe(cases.length);
      f.s.deltas = Buffer.concat([d56, d67]);
      expect(await sync.syncOnce()).toMatchObject({ kind: 'applied', via: 'deltas', to: 7 });
      expect(sync.current().allowlist.lookup(B)).toBe('red');
      expect(sync.current().allowlist.lookup(A)).toBeUndefined();
      if (how === 'worker') expect(sync.merger.counters).toMatchObject({ inThread: 0, fileJobsInThread: 0, workerFailures: 0 });
    });

    it('a crash mid-apply leaves the old file intact: a half-written temporary file is ignored at boot', async () => {
      const f = await fake();
      f.s.snapshot = snap(3, [[`card:${card(1)}`, 1]]);
      const dir = tmp();
      const sync = await ListSync.open({ merger: merger(), url: f.url, dir, trustedKeys: keys });
      await sync.syncOnce();
      const next = snap(4, [[`card:${card(2)}`, 1]]);
      writeFileSync(`${sync.snapshotPath}.tmp-99999`, next.subarray(0, next.length >> 1));
      const rebooted = await ListSync.open({ merger: merger(), url: f.url, dir, trustedKeys: keys });
      expect(rebooted.current().version).toBe(3);
      expect(rebooted.current().allowlist.lookup(`card:${card(1)}`)).toBe('green');
      // A damaged list file (disk error) is refused whole: the gate starts at version 0 and resyncs.
      const b = readFileSync(sync.snapshotPath);
      b[b.length - 1] ^= 0xff;
      writeFileSync(sync.snapshotPath, b);
      const damaged = await ListSync.open({ merger: merger(), url: f.url, dir, trustedKeys: keys });
      const alarms: string[] = [];
      damaged.onAlarm((a) => alarms.push(a.alarm));
      expect(await damaged.bootCheck).toBe(false);
      expect(alarms).toEqual(['list-rejected']);
      expect(damaged.current().version).toBe(0);
      expect(await damaged.syncOnce()).toMatchObject({ kind: 'applied', to: 3 });
    });

    it('readers see the old version or the new one while a large delta applies', async () => {
      const f = await fake();
      const entries: [string, number][] = [];
      for (let i = 0; i < 200_000; i++) entries.push([`card:${card(i)}`, 1]);
      f.s.snapshot = snap(1, entries);
      const sync = await ListSync.open({ merger: merger(), url: f.url, dir: tmp(), trustedKeys: keys, sliceMs: 0.2 });
      await sync.syncOnce();
      const changes: ListChange[] = [];
      for (let i = 0; i < 200_000; i += 2) changes.push({ key: `card:${card(i)}`, status: 3 });
      f.s.deltas = delta(1, changes);
      const p = sync.syncOnce();
      let ticks = 0;
      let mixed = 0;
      let done = false;
      void p.then(() => (done = true));
      while (!done) {
        const l = sync.current();
        const a = l.allowlist.lookup(`card:${card(0)}`), b = l.allowlist.lookup(`card:${card(199_998)}`);
        const want = l.version === 1 ? 'green' : 'red';
        if (a !== want || b !== want) mixed++;
        ticks++;
        await new Promise((r) => setImmediate(r));
      }
      expect(await p).toMatchObject({ kind: 'applied', to: 2 });
      expect(mixed).toBe(0);
      expect(ticks).toBeGreaterThan(10); // lookups kept being answered while it applied
    });
  });

  describe('delta log', () => {
    const keyPair = generateKeyPairSync('ed25519');
    const trusted = [trustedListKey(keyPair.publicKey.export({ format: 'pem', type: 'spki' }).toString())];
    const cardN = (i: number) => withCheckDigit(`310400${String(i).padStart(12, '0')}`);
    async function station(): Promise<{ url: string; state: { snapshot: Uint8Array; deltas: Uint8Array[] } }> {
      const state = { snapshot: new Uint8Array(0), deltas: [] as Uint8Array[] };
      const server: Server = createServer((req, res) => {
        const u = new URL(req.url ?? '/', 'http://x');
        if (u.pathname === '/v1/lists/snapshot') return void res.writeHead(200).end(state.snapshot);
        if (u.pathname === '/v1/lists/deltas') {
          const since = Number(u.searchParams.get('since'));
          const fresh = freshnessHeaders(req.url, keyPair.privateKey);
          if (since === 0) return void res.writeHead(410, fresh).end();
          const out = state.deltas.filter((d) => new DataView(d.buffer, d.byteOffset).getUint32(8, true) >= since);
          if (out.length === 0) return void res.writeHead(204, fresh).end();
          return void res.writeHead(200, fresh).end(Buffer.concat(out));
        }
        res.writeHead(404).end();
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
      return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, state };
    }
    const snapshot = (v: number) => {
      const b = new ListBuilder();
      for (let i = 0; i < 50; i++) b.set(`card:${cardN(i)}`, 1);
      return signList(b.build({ version: v, publishedAtMs: Date.now() }), keyPair.privateKey);
    };
    const deltaTo = (from: number, i: number, status: number) => signList(encodeDelta(from, Date.now(), [{ key: `card:${cardN(i)}`, status }]), keyPair.privateKey);

    it('appends deltas until the log is full, then rewrites the list file and empties the log; a reboot replays the log', async () => {
      const { url, state } = await station();
      state.snapshot = snapshot(1);
      const dir = tmp();
      const sync = await ListSync.open({ merger: merger(), url, dir, trustedKeys: trusted, logMaxChanges: 3 });
      cleanups.push(() => sync.stop());
      expect(await sync.syncOnce()).toMatchObject({ kind: 'applied', via: 'snapshot', to: 1 });
      for (let v = 1; v <= 4; v++) {
        state.deltas.push(deltaTo(v, v, 3));
        expect(await sync.syncOnce()).toMatchObject({ kind: 'applied', via: 'deltas', to: v + 1 });
      }
      // Deltas 1→2, 2→3, 3→4 went to the log; 4→5 found it full: list file rewritten at 5, log emptied.
      expect(sync.status().counters).toMatchObject({ listFileWrites: 2, deltaLogAppends: 3 });
      expect(readFileSync(join(dir, 'lists.deltas')).length).toBe(0);
      state.deltas.push(deltaTo(5, 9, 0));
      expect(await sync.syncOnce()).toMatchObject({ kind: 'applied', to: 6 });
      const log = readFileSync(join(dir, 'lists.deltas'));
      expect(log.length).toBeGreaterThan(0);
      // Reboot with the back office unreachable: list file (5) + log (5→6) = 6.
      const rebooted = await ListSync.open({ merger: merger(), url: 'http://127.0.0.1:9', dir, trustedKeys: trusted });
      cleanups.push(() => rebooted.stop());
      expect(await rebooted.bootCheck).toBe(true);
      expect(rebooted.current().version).toBe(6);
      expect(rebooted.current().allowlist.lookup(`card:${cardN(9)}`)).toBeUndefined();
      expect(rebooted.current().allowlist.lookup(`card:${cardN(4)}`)).toBe('red');
    });

    it('a torn last delta is cut off; a damaged log is refused whole with an alarm and the gate resyncs from its list file', async () => {
      const { url, state } = await station();
      state.snapshot = snapshot(1);
      const dir = tmp();
      const sync = await ListSync.open({ merger: merger(), url, dir, trustedKeys: trusted });
      cleanups.push(() => sync.stop());
      await sync.syncOnce();
      for (let v = 1; v <= 2; v++) {
        state.deltas.push(deltaTo(v, v, 2));
        await sync.syncOnce();
      }
      const logPath = join(dir, 'lists.deltas');
      const good = readFileSync(logPath);
      // Power cut mid-append: half of a third delta.
      const third = deltaTo(3, 3, 3);
      writeFileSync(logPath, Buffer.concat([good, third.subarray(0, third.length >> 1)]));
      const torn = await ListSync.open({ merger: merger(), url: 'http://127.0.0.1:9', dir, trustedKeys: trusted });
      cleanups.push(() => torn.stop());
      expect(await torn.bootCheck).toBe(true);
      expect(torn.current().version).toBe(3);
      expect(readFileSync(logPath).equals(good)).toBe(true);
      // A flipped byte in a logged delta: refused (checksum), alarm, list file version kept, log dropped.
      const bad = Buffer.from(good);
      bad[bad.length - 2] ^= 1;
      writeFileSync(logPath, bad);
      const damaged = await ListSync.open({ merger: merger(), url, dir, trustedKeys: trusted });
      cleanups.push(() => damaged.stop());
      const alarms: string[] = [];
      damaged.onAlarm((a) => alarms.push(`${a.alarm} ${a.detail}`));
      expect(await damaged.bootCheck).toBe(true);
      expect(alarms.join()).toMatch(/list-rejected delta log on disk refused \(bad-checksum/);
      expect(damaged.current().version).toBe(1);
      expect(readFileSync(logPath).length).toBe(0);
      // And it catches up from the back office.
      expect(await damaged.syncOnce()).toMatchObject({ kind: 'applied', via: 'deltas', to: 3 });
    });
  });
});
