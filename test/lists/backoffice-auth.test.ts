// Back-office access: with tokens configured, each endpoint opens only to its callers' role (gates,
// the registration service, QR issuers for their own accounts, the status feed, admins); the gate's
// list sync and journal upload carry their token; `gate backoffice` will not serve the network open.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileJournal } from '../../firmware/journal/file-journal.js';
import { ListSync } from '../../firmware/lists/list-sync.js';
import { trustedListKey } from '../../protocol/lists/index.js';
import { Backoffice, ROUTE_ROLES, parseAccessTokens, type AccessToken } from '../../simulator/backoffice/server.js';
import { withCheckDigit } from '../../simulator/backoffice/validate.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'bo-auth-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
};

const TOKENS: AccessToken[] = [
  { token: 'gate-token-0123456789', role: 'gate' },
  { token: 'registration-token-0123456789', role: 'registration' },
  { token: 'alipay-issuer-token-0123456789', role: 'issuer', issuer: 'alipay' },
  { token: 'status-feed-token-0123456789', role: 'status-feed' },
  { token: 'admin-token-0123456789', role: 'admin' },
];
const tok = (role: string) => TOKENS.find((t) => t.role === role)!.token;

async function backoffice() {
  const bo = new Backoffice({ db: ':memory:', tokens: TOKENS });
  const { url } = await bo.listen(0);
  cleanups.push(() => bo.close());
  return { bo, url };
}

async function call(url: string, route: string, token?: string, body?: unknown): Promise<number> {
  const [method, path] = route.split(' ');
  const res = await fetch(url + path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
}

const card = (i: number) => withCheckDigit(`310400${String(i).padStart(12, '0')}`);

describe('back office access tokens', () => {
  it('opens each endpoint to its role only: 401 without a known token, 403 for another role', async () => {
    const { bo, url } = await backoffice();
    const routes: [string, string[], unknown?][] = [
      ['POST /v1/registrations', ['registration', 'admin'], { credentialType: 'yikatong-card', number: card(1), rider: { name: '张三', phone: '13800000000' }, consent: true }],
      ['POST /v1/qr-links', ['issuer', 'admin'], { issuer: 'alipay', account: '2088000000000001' }],
      ['POST /v1/status', ['status-feed', 'admin'], { key: `card:${card(1)}`, status: 'yellow' }],
      ['POST /v1/blocks', ['status-feed', 'admin'], { key: `card:${card(1)}`, blocked: false }],
      ['POST /v1/lists/publish', ['admin'], {}],
      ['GET /v1/lists/latest', ['gate', 'admin']],
      ['GET /v1/lists/snapshot', ['gate', 'admin']],
      ['GET /v1/lists/deltas?since=0', ['gate', 'admin']],
      ['GET /v1/issuer-keys', ['gate', 'admin']],
      ['GET /v1/policy-schedule', ['gate', 'admin']],
      ['POST /v1/policy-schedule', ['admin'], { kinds: {} }],
      ['GET /v1/fare-table', ['gate', 'admin']],
      ['PUT /v1/issuer-keys', ['admin'], 'signed-document'],
      ['POST /v1/transactions', ['gate', 'admin'], { laneId: 'A1', records: [] }],
      ['GET /v1/transactions', ['admin']],
      ['GET /v1/transactions/conflicts', ['admin']],
    ];
    // Every guarded route of the back office is here.
    expect(routes.map(([r]) => r.split('?')[0]).sort()).toEqual(Object.keys(ROUTE_ROLES).sort());
    for (const [route, allowed, body] of routes) {
      expect(await call(url, route, undefined, body), `${route} without a token`).toBe(401);
      expect(await call(url, route, 'not-a-known-token-at-all', body), `${route} with an unknown token`).toBe(401);
      for (const role of ['gate', 'registration', 'issuer', 'status-feed', 'admin']) {
        const status = await call(url, route, tok(role), body);
        if (allowed.includes(role)) expect([401, 403], `${route} as ${role}`).not.toContain(status);
        else expect(status, `${route} as ${role}`).toBe(403);
      }
    }
    // Open to all: health checks and the list signing public key.
    expect(await call(url, 'GET /v1/health')).toBe(200);
    expect(await call(url, 'GET /v1/lists/public-key')).toBe(200);
    expect(bo.counters.refusedAccess).toBeGreaterThan(60);
  });

  it("an issuer's token links that issuer's accounts only", async () => {
    const { url } = await backoffice();
    expect(await call(url, 'POST /v1/qr-links', tok('issuer'), { issuer: 'alipay', account: '2088000000000009' })).toBe(201);
    expect(await call(url, 'POST /v1/qr-links', tok('issuer'), { issuer: 'cmb', account: '6225000000000009' })).toBe(403);
    expect(await call(url, 'POST /v1/qr-links', tok('admin'), { issuer: 'cmb', account: '6225000000000009' })).toBe(201);
  });

  it('a gate syncs lists and uploads its journal with its token, and gets nowhere without it', async () => {
    const { bo, url } = await backoffice();
    await call(url, 'POST /v1/registrations', tok('registration'), { credentialType: 'yikatong-card', number: card(2), rider: { name: '李四', phone: '13900000000' }, consent: true });
    bo.publish();
    const keys = [trustedListKey(bo.publicKeyPem)];
    const without = await ListSync.open({ url, dir: tmp(), trustedKeys: keys });
    cleanups.push(() => without.stop());
    expect(await without.syncOnce()).toMatchObject({ kind: 'failed' });
    expect(without.current().version).toBe(0);
    const sync = await ListSync.open({ url, dir: tmp(), trustedKeys: keys, token: tok('gate') });
    cleanups.push(() => sync.stop());
    expect(await sync.syncOnce()).toMatchObject({ kind: 'applied' });
    expect(sync.current().allowlist.lookup(`card:${card(2)}`)).toBe('green');

    const entry = { type: 'decision' as const, laneId: 'T1', atMs: 1, direction: 'entry' as const, kind: 'card' as const, ref: 'card:…0001#ab', grant: true, reason: 'ok' as const, source: 'test' };
    const denied = await FileJournal.open({ dir: tmp(), laneId: 'T1', uploadUrl: url, uploadIntervalMs: 1_000_000 });
    cleanups.push(() => denied.close());
    await denied.append(entry);
    expect(await denied.uploadNow()).toBe(false);
    expect(denied.backlog).toBe(1);
    const j = await FileJournal.open({ dir: tmp(), laneId: 'T2', uploadUrl: url, uploadToken: tok('gate'), uploadIntervalMs: 1_000_000 });
    cleanups.push(() => j.close());
    await j.append({ ...entry, laneId: 'T2' });
    expect(await j.uploadNow()).toBe(true);
    expect(bo.db.prepare("SELECT COUNT(*) AS n FROM transactions WHERE lane_id = 'T2'").get()).toEqual({ n: 1 });
  });

  it('token files are checked; `gate backoffice` refuses to serve the network without tokens', () => {
    expect(() => parseAccessTokens('[]')).toThrow(/non-empty/);
    expect(() => parseAccessTokens('[{"token":"short","role":"gate"}]')).toThrow(/16 characters/);
    expect(() => parseAccessTokens('[{"token":"0123456789abcdef","role":"root"}]')).toThrow(/role/);
    expect(() => parseAccessTokens('[{"token":"0123456789abcdef","role":"gate","issuer":"alipay"}]')).toThrow(/issuer/);
    expect(parseAccessTokens(JSON.stringify(TOKENS))).toHaveLength(5);
    const gate = resolve(import.meta.dirname, '../../dist/firmware/cli/gate.js');
    const dir = tmp();
    const open = spawnSync(process.execPath, [gate, 'backoffice', '--host', '0.0.0.0', '--port', '0', '--db', join(dir, 'bo.db')], { encoding: 'utf8', timeout: 20_000 });
    expect(open.status).toBe(2);
    expect(open.stderr).toMatch(/refusing .* without --tokens/);
    writeFileSync(join(dir, 'bad.json'), '{"token":1}');
    const bad = spawnSync(process.execPath, [gate, 'backoffice', '--tokens', join(dir, 'bad.json'), '--db', join(dir, 'bo.db')], { encoding: 'utf8', timeout: 20_000 });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/bad\.json: tokens: expected a non-empty JSON array/);
  });
});
