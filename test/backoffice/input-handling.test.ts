// The reference back office's input handling, against the real HTTP server on loopback and the real
// SQLite database: bodies only as JSON, a record cap per ingest batch that the gate's uploader never
// meets, listings in pages, trust lists verified before they are stored, names without control or bidi
// characters, a 500 that says nothing of its cause (logged instead), strict query parameters, deadlines
// for a trickled request, a connection cap, and a lane's (lane, seq) sent again with other content kept
// beside the first and answered 409. Every wait is bounded; nothing asserts elapsed time.
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { DriverContext } from '../../firmware/composition/driver-context.js';
import { fileJournalFromConfig } from '../../firmware/composition/storage-drivers.js';
import { FileJournal } from '../../firmware/journal/file-journal.js';
import type { JournalEntry } from '../../firmware/journal/journal.js';
import { Backoffice, DEFAULT_PAGE, MAX_INGEST_RECORDS, MAX_PAGE, OPEN_ROUTES, PAGE_ROUTES, ROUTE_ROLES, type AccessToken, type BackofficeOptions } from '../../simulator/backoffice/server.js';
import { withCheckDigit } from '../../simulator/backoffice/validate.js';
import { IssuerApps } from '../../simulator/virtual-phone.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'bo-input-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
};

const TOKENS: AccessToken[] = [
  { token: 'gate-token-0123456789', role: 'gate' },
  { token: 'admin-token-0123456789', role: 'admin' },
];
const GATE = { authorization: `Bearer ${TOKENS[0].token}` };
const ADMIN = { authorization: `Bearer ${TOKENS[1].token}` };
const JSON_TYPE = { 'content-type': 'application/json' };

async function start(opts: Partial<BackofficeOptions> = {}) {
  const bo = new Backoffice({ db: ':memory:', ...opts });
  const { url, port } = await bo.listen(0);
  cleanups.push(() => bo.close());
  return { bo, url, port };
}

async function call(url: string, method: string, path: string, headers: Record<string, string> = {}, body?: string | Uint8Array) {
  const res = await fetch(url + path, { method, headers, body });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

/** One request through node:http, with exactly the headers given (fetch adds a content-type to string bodies). */
function raw(port: number, method: string, path: string, headers: Record<string, string>, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A raw TCP connection that collects what the server sends and notes when it closes. */
async function socket(port: number): Promise<{ s: Socket; received: () => string; closed: Promise<void>; isClosed: () => boolean }> {
  const s = connect(port, '127.0.0.1');
  s.on('error', () => {});
  let data = '';
  let isClosed = false;
  s.on('data', (c: Buffer) => (data += c.toString()));
  const closed = new Promise<void>((r) => s.on('close', () => ((isClosed = true), r())));
  await new Promise<void>((r, j) => {
    s.once('connect', r);
    s.once('close', () => j(new Error('closed before connecting')));
  });
  cleanups.push(() => void s.destroy());
  return { s, received: () => data, closed, isClosed: () => isClosed };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Wait for `cond`, polling at most `tries` times. */
async function until(cond: () => boolean, tries = 200, everyMs = 25): Promise<boolean> {
  for (let i = 0; i < tries && !cond(); i++) await sleep(everyMs);
  return cond();
}

const card = (i: number) => withCheckDigit(`310400${String(i).padStart(12, '0')}`);
const registration = (name: string, i: number) => ({ credentialType: 'yikatong-card', number: card(i), rider: { name, phone: '13800000000' }, consent: true });
const decision = (laneId: string, atMs: number, ref = 'card:…0001#ab'): JournalEntry => ({ type: 'decision', laneId, atMs, direction: 'entry', kind: 'card', ref, grant: true, reason: 'ok', source: 'test' });
const batch = (laneId: string, from: number, n: number) => ({ laneId, records: Array.from({ length: n }, (_, i) => ({ seq: from + i, entry: decision(laneId, from + i) })) });
const count = (bo: Backoffice, table = 'transactions') => (bo.db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;

describe('back office input handling', () => {
  it('takes bodies only as application/json: text/plain, forms and untyped bodies get 415 and change nothing', async () => {
    const { bo, url, port } = await start();
    const body = JSON.stringify(registration('张三', 1));
    for (const type of ['text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx']) {
      const r = await call(url, 'POST', '/v1/registrations', { 'content-type': type }, body);
      expect(r.status, type).toBe(415);
      expect(r.json, type).toMatchObject({ error: 'unsupported-media-type' });
    }
    expect((await raw(port, 'POST', '/v1/registrations', {}, body)).status).toBe(415);
    expect((await call(url, 'POST', '/v1/transactions', { 'content-type': 'text/plain' }, JSON.stringify(batch('L1', 1, 2)))).status).toBe(415);
    expect((await call(url, 'PUT', '/v1/issuer-keys', { 'content-type': 'text/plain' }, 'doc')).status).toBe(415);
    expect(bo.counters.registrations).toBe(0);
    expect(count(bo)).toBe(0);
    // JSON that would set a prototype is refused.
    expect((await call(url, 'POST', '/v1/registrations', JSON_TYPE, '{"__proto__":{"consent":true}}')).json).toMatchObject({ error: 'invalid-json' });
    // The same body as JSON is taken (with or without a charset).
    expect((await call(url, 'POST', '/v1/registrations', { 'content-type': 'application/json; charset=utf-8' }, body)).status).toBe(201);
  });

  it(`caps an ingest batch at ${MAX_INGEST_RECORDS} records (413), a cap the gate's uploader never meets`, async () => {
    const { bo, url } = await start();
    const over = await call(url, 'POST', '/v1/transactions', JSON_TYPE, JSON.stringify(batch('L1', 1, MAX_INGEST_RECORDS + 1)));
    expect(over.status).toBe(413);
    expect(over.json).toMatchObject({ error: 'too-many-records' });
    expect(over.json.message).toContain(String(MAX_INGEST_RECORDS));
    expect(count(bo)).toBe(0);

    // The lane config refuses an upload batch above the cap; at the cap the real uploader gets everything in.
    const dir = tmp();
    const quiet = { error() {}, warn() {}, info() {}, debug() {} } as unknown as DriverContext['log'];
    const ctx = { laneId: 'L9', log: quiet } as DriverContext;
    await expect(fileJournalFromConfig({ type: 'file', dir, uploadUrl: url, uploadBatch: MAX_INGEST_RECORDS + 1 }, ctx)).rejects.toThrow(/uploadBatch/);
    const j = await fileJournalFromConfig({ type: 'file', dir, uploadUrl: url, uploadBatch: MAX_INGEST_RECORDS, uploadIntervalMs: 3_600_000 }, ctx);
    cleanups.push(() => j.close());
    await Promise.all(Array.from({ length: MAX_INGEST_RECORDS + 5 }, (_, i) => j.append(decision('L9', i))));
    expect(await j.uploadNow()).toBe(true);
    expect(j.backlog).toBe(0);
    expect(j.counters.uploadBatches).toBe(2);
    expect(count(bo)).toBe(MAX_INGEST_RECORDS + 5);
  });

  it('lists transactions in pages: no answer holds more than the page cap, and the cursors walk every row once', async () => {
    const { bo, url } = await start({ tokens: TOKENS });
    for (const [lane, n] of [['A1', 1200], ['B2', 900], ['C3', 245]] as const) expect(bo.ingest(batch(lane, 1, n))).toMatchObject({ ok: true, accepted: n });
    const first = await call(url, 'GET', '/v1/transactions', ADMIN);
    expect(first.status).toBe(200);
    expect(first.json.records.length).toBe(DEFAULT_PAGE);
    expect(first.json.next).toBe(`A1.${DEFAULT_PAGE}`);
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 10; page++) {
      const r = await call(url, 'GET', `/v1/transactions?limit=${MAX_PAGE}${after ? `&after=${after}` : ''}`, ADMIN);
      expect(r.status).toBe(200);
      expect(r.json.records.length).toBeLessThanOrEqual(MAX_PAGE);
      for (const rec of r.json.records) seen.push(`${rec.laneId}.${rec.seq}`);
      after = r.json.next;
      if (after === null) break;
    }
    expect(after).toBeNull();
    expect(seen.length).toBe(2345);
    expect(new Set(seen).size).toBe(2345);
    // One lane, in pages of 500.
    const b2 = await call(url, 'GET', '/v1/transactions?laneId=B2&limit=500', ADMIN);
    expect(b2.json.records.map((r: { seq: number }) => r.seq)).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    const b2more = await call(url, 'GET', `/v1/transactions?laneId=B2&limit=500&after=${b2.json.next}`, ADMIN);
    expect(b2more.json).toMatchObject({ next: null });
    expect(b2more.json.records.length).toBe(400);
    // Bigger pages and made-up cursors are refused.
    for (const q of [`limit=${MAX_PAGE + 1}`, 'limit=0', 'limit=', 'limit=10abc', 'after=', 'after=A1', 'after=A1.x', 'laneId=B2&after=A1.5', 'laneId=%00']) {
      const r = await call(url, 'GET', `/v1/transactions?${q}`, ADMIN);
      expect(r.status, q).toBe(400);
      expect(r.json, q).toMatchObject({ error: 'invalid-query' });
    }
  });

  it('stores a trust list only when a known signer signed it and it is newer', async () => {
    const apps = new IssuerApps('bo-trust');
    const { url } = await start({ tokens: TOKENS, trustListSigners: apps.backOfficeKeys() });
    const octet = { ...ADMIN, 'content-type': 'application/octet-stream' };
    const put = (doc: Uint8Array | string, headers = octet) => call(url, 'PUT', '/v1/issuer-keys', headers, typeof doc === 'string' ? doc : Buffer.from(doc));
    const good = apps.trustListDocument();
    const forged = new IssuerApps('impostor').trustListDocument();
    const env = JSON.parse(Buffer.from(good).toString());
    const payload = JSON.parse(Buffer.from(env.payload, 'base64').toString());
    payload.keys[0].revoked = !payload.keys[0].revoked;
    const tampered = JSON.stringify({ ...env, payload: Buffer.from(JSON.stringify(payload)).toString('base64') });
    for (const [what, doc] of [['forged', forged], ['tampered', tampered], ['unknown signer', JSON.stringify({ ...env, signer: 'someone' })], ['not a document', 'signed-document'], ['empty', '']] as const) {
      const r = await put(doc);
      expect(r.status, what).toBe(400);
      expect((await call(url, 'GET', '/v1/issuer-keys', GATE)).status, what).toBe(404);
    }
    expect((await put(forged)).json).toMatchObject({ error: 'invalid-trust-list', message: expect.stringMatching(/bad-signature/) });
    const ok = await put(good, { ...ADMIN, ...JSON_TYPE });
    expect(ok).toMatchObject({ status: 200, json: { bytes: good.byteLength, seq: payload.seq } });
    const served = await fetch(`${url}/v1/issuer-keys`, { headers: GATE });
    expect(Buffer.from(await served.arrayBuffer()).equals(Buffer.from(good))).toBe(true);
    expect((await put(good)).status).toBe(200); // the same document again
    const newer = apps.trustListDocument();
    expect((await put(newer)).status).toBe(200);
    expect((await put(good)).json).toMatchObject({ error: 'stale-trust-list' }); // an older seq after a newer one
    // A back office that knows no signer stores none, and says why.
    const { url: bare } = await start();
    const r = await call(bare, 'PUT', '/v1/issuer-keys', { 'content-type': 'application/octet-stream' }, Buffer.from(good));
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/--trust-list-keys/);
  });

  it('refuses names with control, invisible or text-direction characters', async () => {
    const { bo, url } = await start();
    const bad = ['张\u0000三', 'a\u0007b', 'Ali\u202Eecila', '\u202Aname', 'x\u2066y\u2069', 'zero\u200Bwidth', '\uFEFFbom', 'lone\uD800', 'line\u2028sep', 'tab\tname', 'new\nline', 'del\u007F', 'c1\u0085'];
    for (const [i, name] of bad.entries()) {
      const r = await call(url, 'POST', '/v1/registrations', JSON_TYPE, JSON.stringify(registration(name, 10 + i)));
      expect(r.status, JSON.stringify(name)).toBe(400);
      expect(r.json, JSON.stringify(name)).toMatchObject({ error: 'invalid-details', field: 'rider.name' });
    }
    expect(count(bo, 'riders')).toBe(0);
    for (const [i, name] of ['张三', '阿依古丽·买买提', 'Zoë O’Brien-Smith', 'عمر'].entries()) {
      expect((await call(url, 'POST', '/v1/registrations', JSON_TYPE, JSON.stringify(registration(name, 50 + i)))).status, name).toBe(201);
    }
    expect((bo.db.prepare('SELECT name FROM riders ORDER BY id').all() as { name: string }[]).map((r) => r.name)).toEqual(['张三', '阿依古丽·买买提', 'Zoë O’Brien-Smith', 'عمر']);
  });

  it('answers a failing handler with a generic 500 and logs the cause', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (s: string) => void lines.push(s) });
    const { bo, url } = await start({ log });
    Object.assign(bo, {
      setBlocked: () => {
        throw new Error('SQLITE_CORRUPT at /var/lib/backoffice/secret.db page 42');
      },
    });
    const r = await call(url, 'POST', '/v1/blocks', JSON_TYPE, JSON.stringify({ key: `card:${card(1)}`, blocked: true }));
    expect(r.status).toBe(500);
    expect(r.json).toEqual({ error: 'internal', message: 'internal error (logged at the back office)' });
    expect(r.text).not.toMatch(/SQLITE|secret|var\/lib/);
    expect(bo.counters.internalErrors).toBe(1);
    expect(lines.join('\n')).toContain('SQLITE_CORRUPT at /var/lib/backoffice/secret.db page 42');
    expect((await call(url, 'GET', '/v1/health')).status).toBe(200);
  });

  it('parses query parameters strictly: empty, garbage, repeated or missing `since` is a 400', async () => {
    const { bo, url } = await start();
    bo.publish(true);
    const latest = bo.latestVersion();
    for (const q of ['since=', 'since=abc', 'since=1.5', 'since=-1', 'since=1e1', 'since=0x1', 'since=01', 'since=%201', 'since=1&since=2', '', 'since=1&max=0', 'since=1&max=', 'since=1&max=x', `since=${'9'.repeat(16)}`]) {
      const r = await call(url, 'GET', `/v1/lists/deltas?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.json, q).toMatchObject({ error: 'invalid-query' });
    }
    expect((await call(url, 'GET', `/v1/lists/deltas?since=${latest}`)).status).toBe(204);
    expect((await call(url, 'GET', `/v1/lists/deltas?since=${latest - 1}&max=5000`)).status).toBe(200);
    expect((await call(url, 'GET', '/v1/lists/deltas?since=0')).status).toBe(410);
    for (const q of ['after=', 'after=x', 'limit=-1']) expect((await call(url, 'GET', `/v1/transactions/conflicts?${q}`)).status, q).toBe(400);
  });

  it('cuts off a request trickled with a valid token (408), slow headers too, and idle keep-alive connections', async () => {
    const { bo, port } = await start({ tokens: TOKENS, limits: { requestTimeoutMs: 400, headersTimeoutMs: 400, keepAliveTimeoutMs: 300 } });
    // A body announced at 100 kB, sent one byte at a time: at most 400 bytes get out before the bound.
    const t = await socket(port);
    t.s.write(`POST /v1/transactions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKENS[0].token}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`);
    let sent = 1;
    for (; sent < 400 && !t.isClosed(); sent++) {
      t.s.write(' ');
      await sleep(25);
    }
    expect(t.isClosed()).toBe(true);
    expect(t.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(t.received()).toContain('"error":"timeout"');
    expect(count(bo)).toBe(0);
    // Headers that never end.
    const h = await socket(port);
    h.s.write('GET /v1/health HTTP/1.1\r\nHost: x\r\n');
    for (let i = 0; i < 400 && !h.isClosed(); i++) {
      h.s.write(`X-Slow-${i}: 1\r\n`);
      await sleep(25);
    }
    expect(h.isClosed()).toBe(true);
    expect(bo.counters.timeouts).toBeGreaterThanOrEqual(2);
    // A keep-alive connection left idle after its answer is closed.
    const k = await socket(port);
    k.s.write('GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await until(() => k.received().includes('"ok":true'))).toBe(true);
    expect(await until(() => k.isClosed())).toBe(true);
  });

  it('caps open connections: one more is closed unanswered, and a freed place is taken again', async () => {
    const { bo, port } = await start({ limits: { maxConnections: 3, keepAliveTimeoutMs: 60_000 } });
    const held = [];
    for (let i = 0; i < 3; i++) {
      const c = await socket(port);
      c.s.write('GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(await until(() => c.received().includes('"ok":true'))).toBe(true);
      held.push(c);
    }
    const extra = connect(port, '127.0.0.1');
    let answered = '';
    extra.on('error', () => {});
    extra.on('data', (c: Buffer) => (answered += c.toString()));
    extra.on('connect', () => extra.write('GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n'));
    cleanups.push(() => void extra.destroy());
    let extraClosed = false;
    extra.on('close', () => (extraClosed = true));
    expect(await until(() => extraClosed)).toBe(true);
    expect(answered).toBe('');
    expect(bo.counters.droppedConnections).toBeGreaterThanOrEqual(1);
    for (const c of held) expect(c.isClosed()).toBe(false);
    held[0].s.destroy();
    await held[0].closed;
    let served = false;
    for (let i = 0; i < 40 && !served; i++) {
      const r = await raw(port, 'GET', '/v1/health', {}, '').catch(() => undefined);
      served = r?.status === 200;
      if (!served) await sleep(25);
    }
    expect(served).toBe(true);
  });

  it('keeps both versions of a (lane, seq) sent again with other content, answers 409 for that record, and counts it', async () => {
    const { bo, url } = await start({ tokens: TOKENS });
    const post = (b: unknown) => call(url, 'POST', '/v1/transactions', { ...GATE, ...JSON_TYPE }, JSON.stringify(b));
    expect((await post(batch('L1', 1, 3))).json).toEqual({ accepted: 3, duplicates: 0, conflicts: [] });
    // The same records again, one with its keys in another order: duplicates, as before.
    const again = batch('L1', 1, 3);
    again.records[1].entry = Object.fromEntries(Object.entries(again.records[1].entry).reverse()) as JournalEntry;
    expect((await post(again)).json).toEqual({ accepted: 0, duplicates: 3, conflicts: [] });
    // Seq 2 with other content, beside a new seq 4.
    const other = { laneId: 'L1', records: [{ seq: 2, entry: decision('L1', 2, 'card:…9999#ff') }, { seq: 4, entry: decision('L1', 4) }] };
    const r = await post(other);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ accepted: 1, duplicates: 0, conflicts: [{ seq: 2, status: 409, error: 'conflict' }] });
    expect((await post(other)).json).toMatchObject({ accepted: 0, duplicates: 1, conflicts: [{ seq: 2, status: 409 }] });
    expect(bo.counters.conflictingTransactions).toBe(2);
    expect(bo.counters.duplicateTransactions).toBe(4);
    // The first version stays in the transactions; an admin sees both.
    const held = await call(url, 'GET', '/v1/transactions?laneId=L1', ADMIN);
    expect(held.json.records[1]).toMatchObject({ seq: 2, entry: { ref: 'card:…0001#ab' } });
    expect((await call(url, 'GET', '/v1/transactions/conflicts', GATE)).status).toBe(403);
    const c = await call(url, 'GET', '/v1/transactions/conflicts', ADMIN);
    expect(c.json).toMatchObject({ next: null, conflicts: [{ laneId: 'L1', seq: 2, held: { ref: 'card:…0001#ab' }, offered: { ref: 'card:…9999#ff' }, times: 2 }] });
  });

  it("the gate's uploader takes a 409 record as answered: no endless retry, an alarm, both versions at the back office", async () => {
    const { bo, url } = await start();
    const first = await FileJournal.open({ dir: tmp(), laneId: 'L7', uploadUrl: url, uploadIntervalMs: 3_600_000 });
    cleanups.push(() => first.close());
    for (let i = 1; i <= 3; i++) await first.append(decision('L7', i));
    expect(await first.uploadNow()).toBe(true);
    // The lane's journal is lost (a replaced SD card): it starts at seq 1 again, with new decisions.
    const fresh = await FileJournal.open({ dir: tmp(), laneId: 'L7', uploadUrl: url, uploadIntervalMs: 3_600_000 });
    cleanups.push(() => fresh.close());
    const alarms: [string, string][] = [];
    fresh.on('alarm', (a) => alarms.push([a.alarm, 'detail' in a ? a.detail : '']));
    for (let i = 1; i <= 4; i++) await fresh.append(decision('L7', 1000 + i));
    expect(await fresh.uploadNow()).toBe(true);
    expect(fresh.backlog).toBe(0);
    expect(alarms).toEqual([['journal-upload-conflict', expect.stringMatching(/L7 seq 1, 2, 3 /)]]);
    expect(await fresh.uploadNow()).toBe(true);
    expect(fresh.counters.uploadBatches).toBe(1);
    expect(count(bo)).toBe(4);
    expect(count(bo, 'conflicts')).toBe(3);
    expect(bo.counters.conflictingTransactions).toBe(3);
  });

  it('openapi.yaml lists every route the server has, with the roles it opens to', async () => {
    const yaml = readFileSync(new URL('../../simulator/backoffice/openapi.yaml', import.meta.url), 'utf8');
    const documented: Record<string, string[] | 'open'> = {};
    let path = '';
    let op = '';
    for (const line of yaml.split('\n')) {
      const p = /^  (\/\S+):$/.exec(line);
      if (p) path = p[1];
      const m = /^    (get|post|put|delete|patch):$/.exec(line);
      if (m && path) documented[(op = `${m[1].toUpperCase()} ${path}`)] = 'open';
      const r = /^      x-roles: \[(.*)\]$/.exec(line);
      if (r && op) documented[op] = r[1].split(',').map((x) => x.trim());
    }
    const served: Record<string, string[] | 'open'> = Object.fromEntries([...Object.entries(ROUTE_ROLES).map(([k, v]) => [k, [...v]]), ...[...OPEN_ROUTES, ...PAGE_ROUTES].map((k) => [k, 'open'])]);
    expect(documented).toEqual(served);
    // And the server has each of them (an unknown route is 404 not-found).
    const { url } = await start();
    for (const route of Object.keys(served)) {
      const [method, p] = route.split(' ');
      const r = await call(url, method, p + (p === '/v1/lists/deltas' ? '?since=0' : ''), JSON_TYPE, method === 'GET' ? undefined : '{}');
      expect(r.json?.error, route).not.toBe('not-found');
    }
    expect((await call(url, 'GET', '/v1/nothing-here')).json).toMatchObject({ error: 'not-found' });
  });
});
