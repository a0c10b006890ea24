// Supervisor identity on the dashboard, over real HTTP on loopback. The lane's service as `gate run` wires
// it (health port shared by /metrics, /healthz and /dashboard/): metrics and health stay open; the page is
// readable; every action needs a supervisor's login, a session cookie, the CSRF token, an allowlisted Host
// and the page's own Origin; failed logins are limited per source; each action is logged and journaled
// with who, from where and what. Then the same dashboard on an injected clock for the bounds (session
// lifetime, session count, login window), the read-only and demo modes, and `gate supervisor add`.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request as httpRequest, createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedSource } from '../../drivers/simulated.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { createLogger } from '../../firmware/config/log.js';
import { startLane, type Lane } from '../../firmware/composition/start-lane.js';
import { createDashboard, startDashboardServer, type Dashboard } from '../../firmware/dashboard/dashboard.js';
import { hostAllowed, isLoopbackAddress } from '../../firmware/dashboard/access.js';
import { formatSupervisors, hashPassword, openSupervisorFile, verifyPassword } from '../../firmware/dashboard/supervisors.js';
import { MemoryJournal } from '../../firmware/journal/journal.js';
import { startLaneService, type LaneService } from '../../firmware/operations/service.js';
import { SystemdNotifier } from '../../firmware/platform/systemd.js';
import { laneHarness, type LaneHarness } from '../support/lane-harness.js';

const root = new URL('../..', import.meta.url).pathname;
/** Cheap scrypt for the many logins below; `gate supervisor add` (last block) writes the real cost. */
const FAST = { N: 1024, r: 8, p: 1 };
const PASSWORD = 'correct horse battery staple';
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gate-supervisors-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function supervisorsFile(name: string, people: Record<string, string>): Promise<string> {
  const file = join(dir, name);
  const supervisors: Record<string, { hash: string }> = {};
  for (const [who, pw] of Object.entries(people)) supervisors[who] = { hash: await hashPassword(pw, FAST) };
  writeFileSync(file, formatSupervisors({ version: 1, supervisors }));
  return file;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: any;
}

/** A request with exactly the headers given (node:http lets a test set Host and Origin as any client can). */
function call(base: string, path: string, o: { method?: string; headers?: Record<string, string>; body?: unknown } = {}): Promise<Answer> {
  const url = new URL(path, base);
  const body = o.body === undefined ? undefined : typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
  const headers: Record<string, string> = { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...o.headers };
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, method: o.method ?? (body === undefined ? 'GET' : 'POST'), headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let parsed: unknown = text;
        if ((res.headers['content-type'] ?? '').includes('json')) parsed = JSON.parse(text);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const kindOf = (a: Answer) => [a.status, a.body?.error?.kind];

/** Log lines as objects (pino JSON), captured from a real logger. */
function capturedLog() {
  const lines: any[] = [];
  const stream = new Writable({
    write(c, _e, cb) {
      for (const l of c.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { log: createLogger('info', { app: 'test' }, stream), lines };
}

async function login(base: string, name: string, password: string, headers: Record<string, string> = {}): Promise<{ answer: Answer; cookie: string; csrf: string }> {
  const answer = await call(base, '/dashboard/api/login', { body: { name, password }, headers });
  const set = answer.headers['set-cookie']?.[0] ?? '';
  return { answer, cookie: set.split(';')[0], csrf: answer.body?.csrf };
}

describe('gate run: the dashboard on the health port with supervisor control', () => {
  let lane: Lane;
  let service: LaneService;
  let base: string;
  let port: string;
  let journal: MemoryJournal;
  const captured = capturedLog();

  beforeAll(async () => {
    const file = await supervisorsFile('run.json', { 'wang.li': PASSWORD, 'zhao.min': 'another long password' });
    const config = parseLaneConfig({
      lane: { id: 'R1', station: 'BJ-T' },
      health: { host: '127.0.0.1', port: 0 },
      dashboard: { allowedHosts: ['gate-r1.bj-t.metro'], control: { supervisors: file, loginFailures: 3 } },
    });
    journal = new MemoryJournal();
    const entry = new SimulatedSource('sim-entry', 'entry', { now: Date.now, setTimeout, clearTimeout });
    lane = await startLane({ config, sources: [entry], journal });
    service = await startLaneService(lane, { log: captured.log, notifier: new SystemdNotifier({ env: {} }) });
    base = service.health!.url;
    port = new URL(base).port;
  });
  afterAll(async () => {
    await service?.stop();
    await lane?.stop();
  });

  const modeAction = (headers: Record<string, string>, mode = 'free') => call(base, '/dashboard/api/lanes/R1/mode', { body: { mode, confirmed: true }, headers });

  it('keeps /metrics, /healthz and the read-only page open without a login', async () => {
    expect((await call(base, '/metrics')).status).toBe(200);
    expect((await call(base, '/healthz')).status).toBe(200);
    const page = await call(base, '/dashboard/');
    expect(page.status).toBe(200);
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect((await call(base, '/dashboard/api/state')).body.lanes[0].laneId).toBe('R1');
    expect((await call(base, '/dashboard/api/session')).body).toEqual({ access: 'supervisors', control: false });
  });

  it('refuses control without a login (401), and a wrong password or an unknown name (401, same answer)', async () => {
    expect(kindOf(await modeAction({}))).toEqual([401, 'no-session']);
    expect(kindOf(await modeAction({ cookie: 'gate_session=forged-token-value' }))).toEqual([401, 'no-session']);
    const wrong = await login(base, 'wang.li', 'not the password');
    const unknown = await login(base, 'nobody', PASSWORD);
    expect([kindOf(wrong.answer), wrong.answer.body.error.message]).toEqual([[401, 'bad-login'], 'wrong name or password']);
    expect([kindOf(unknown.answer), unknown.answer.body.error.message]).toEqual([[401, 'bad-login'], 'wrong name or password']);
    expect(wrong.answer.headers['set-cookie']).toBeUndefined();
    expect(lane.view().mode).toBe('normal');
  });

  it('logs in with an HttpOnly SameSite=Strict cookie of bounded lifetime and a CSRF token', async () => {
    const s = await login(base, 'zhao.min', 'another long password');
    expect(s.answer.status).toBe(200);
    const set = s.answer.headers['set-cookie']![0];
    expect(set).toMatch(/^gate_session=[A-Za-z0-9_-]{40,}; /);
    expect(set).toContain('HttpOnly');
    expect(set).toContain('SameSite=Strict');
    expect(set).toContain('Path=/dashboard');
    expect(set).toContain(`Max-Age=${240 * 60}`);
    expect(s.csrf).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    const info = await call(base, '/dashboard/api/session', { headers: { cookie: s.cookie } });
    expect(info.body).toMatchObject({ access: 'supervisors', control: true, supervisor: 'zhao.min', csrf: s.csrf });
  });

  it('refuses a forged Host (DNS rebinding), Origin null, a foreign Origin, and a missing or wrong CSRF token', async () => {
    const s = await login(base, 'wang.li', PASSWORD);
    const ok = { cookie: s.cookie, 'x-csrf-token': s.csrf };
    expect(kindOf(await modeAction({ ...ok, host: `rebind.evil.example:${port}` }))).toEqual([403, 'bad-host']);
    expect(kindOf(await call(base, '/dashboard/', { headers: { host: `rebind.evil.example:${port}` } }))).toEqual([403, 'bad-host']);
    expect(kindOf(await call(base, '/dashboard/api/login', { body: { name: 'wang.li', password: PASSWORD }, headers: { host: `rebind.evil.example:${port}` } }))).toEqual([403, 'bad-host']);
    expect(kindOf(await modeAction({ ...ok, origin: 'null' }))).toEqual([403, 'bad-origin']);
    expect(kindOf(await modeAction({ ...ok, origin: 'http://evil.example' }))).toEqual([403, 'bad-origin']);
    // The Host and Origin agree, but on a name the allowlist does not hold.
    expect(kindOf(await modeAction({ ...ok, host: `evil.example:${port}`, origin: `http://evil.example:${port}` }))).toEqual([403, 'bad-host']);
    expect(kindOf(await modeAction({ ...ok, 'sec-fetch-site': 'cross-site' }))).toEqual([403, 'bad-origin']);
    expect(kindOf(await modeAction({ cookie: s.cookie }))).toEqual([403, 'bad-csrf']);
    expect(kindOf(await modeAction({ cookie: s.cookie, 'x-csrf-token': 'x'.repeat(43) }))).toEqual([403, 'bad-csrf']);
    // Metrics are not the dashboard's: no Host check there.
    expect((await call(base, '/metrics', { headers: { host: `rebind.evil.example:${port}` } })).status).toBe(200);
    expect(lane.view().mode).toBe('normal');
  });

  it('a supervisor action with login, CSRF, allowlisted Host and own Origin: done, logged and journaled with who, where, what', async () => {
    const host = `gate-r1.bj-t.metro:${port}`;
    const s = await login(base, 'wang.li', PASSWORD, { host, origin: `http://${host}` });
    expect(s.answer.status).toBe(200);
    const r = await modeAction({ cookie: s.cookie, 'x-csrf-token': s.csrf, host, origin: `http://${host}` });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ ok: true, lane: 'R1', mode: 'freePassage', supervisor: 'wang.li', journaled: true });
    expect(lane.view().mode).toBe('freePassage');
    const line = captured.lines.find((l) => l.event === 'supervisor' && l.action === 'set-mode');
    expect(line).toMatchObject({ lane: 'R1', supervisor: 'wang.li', remote: '127.0.0.1', action: 'set-mode', detail: 'free' });
    expect(line.msg).toBe('supervisor wang.li from 127.0.0.1: set-mode free on lane R1');
    expect(journal.records.map((x) => x.entry).filter((e) => e.type === 'supervisor')).toEqual([
      { type: 'supervisor', laneId: 'R1', atMs: expect.any(Number), supervisor: 'wang.li', remote: '127.0.0.1', action: 'set-mode', detail: 'free' },
    ]);
    // The lane's own mode record follows the supervisor's record in the journal.
    const kinds = journal.records.map((x) => x.entry.type);
    expect(kinds.lastIndexOf('mode')).toBeGreaterThan(kinds.indexOf('supervisor'));
    // The password never reaches the log.
    expect(JSON.stringify(captured.lines)).not.toContain(PASSWORD);

    const reset = await call(base, '/dashboard/api/lanes/R1/mode', { body: { mode: 'normal', confirmed: true }, headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } });
    expect(reset.status).toBe(200);
    expect(lane.view().mode).toBe('normal');

    // Logged out: the cookie no longer acts.
    expect((await call(base, '/dashboard/api/logout', { body: {}, headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } })).status).toBe(200);
    expect(kindOf(await modeAction({ cookie: s.cookie, 'x-csrf-token': s.csrf }))).toEqual([401, 'no-session']);
  });

  it('limits failed logins per source: after loginFailures the right password is refused too (429)', async () => {
    // Two failures happened above (wrong password, unknown name); the config allows three.
    expect(kindOf((await login(base, 'wang.li', 'guess 1 of many')).answer)).toEqual([401, 'bad-login']);
    const blocked = await login(base, 'wang.li', PASSWORD);
    expect(kindOf(blocked.answer)).toEqual([429, 'too-many-attempts']);
    expect(Number(blocked.answer.headers['retry-after'])).toBeGreaterThan(0);
    expect(blocked.answer.headers['set-cookie']).toBeUndefined();
  });
});

describe('dashboard bounds on an injected clock', () => {
  let h: LaneHarness;
  let server: Server;
  let dash: Dashboard;
  let base: string;
  let nowMs = 1_700_000_000_000;
  let file: string;

  beforeAll(async () => {
    h = await laneHarness();
    file = await supervisorsFile('bounds.json', { 'wang.li': PASSWORD, 'li.na': 'li.na long password' });
    const directory = await openSupervisorFile(file);
    dash = createDashboard({ lanes: [h.lane], prefix: '/dashboard', now: () => nowMs, access: { mode: 'supervisors', directory, sessionMs: 60_000, maxSessions: 2, loginFailures: 2, loginWindowMs: 30_000 } });
    server = createServer((req, res) => {
      if (!dash.handle(req, res)) res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    dash.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await h.lane.stop();
  });

  const act = (s: { cookie: string; csrf: string }) => call(base, '/dashboard/api/lanes/L1/mode', { body: { mode: 'maintenance', confirmed: true }, headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } });

  it('a session ends after its lifetime', async () => {
    const s = await login(base, 'wang.li', PASSWORD);
    expect((await act(s)).status).toBe(200);
    nowMs += 60_000;
    expect(kindOf(await act(s))).toEqual([401, 'no-session']);
  });

  it('sessions are bounded in number: a login beyond the bound ends the oldest', async () => {
    const a = await login(base, 'wang.li', PASSWORD);
    const b = await login(base, 'li.na', 'li.na long password');
    const c = await login(base, 'wang.li', PASSWORD);
    expect(dash.sessions).toBe(2);
    expect(kindOf(await act(a))).toEqual([401, 'no-session']);
    expect((await act(b)).status).toBe(200);
    expect((await act(c)).status).toBe(200);
  });

  it('failed logins from one source wait out the window, then may try again', async () => {
    await login(base, 'wang.li', 'wrong one');
    await login(base, 'wang.li', 'wrong two');
    expect(kindOf((await login(base, 'wang.li', PASSWORD)).answer)).toEqual([429, 'too-many-attempts']);
    nowMs += 30_000;
    expect((await login(base, 'wang.li', PASSWORD)).answer.status).toBe(200);
  });

  it('a supervisor removed from the file loses their session at the next action', async () => {
    const s = await login(base, 'li.na', 'li.na long password');
    expect((await act(s)).status).toBe(200);
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    delete doc.supervisors['li.na'];
    writeFileSync(file, JSON.stringify(doc) + '\n'.repeat(3));
    expect(kindOf(await act(s))).toEqual([401, 'no-session']);
  });
});

describe('read-only and demo dashboards', () => {
  it('without dashboard.control (health open to the LAN for metrics) every action and login is refused', async () => {
    const config = parseLaneConfig({ lane: { id: 'R2' }, health: { port: 0 } });
    const lane = await startLane({ config, sources: [] });
    const service = await startLaneService(lane, { log: capturedLog().log, notifier: new SystemdNotifier({ env: {} }) });
    try {
      const base = service.health!.url;
      expect((await call(base, '/dashboard/')).status).toBe(200);
      expect(kindOf(await call(base, '/dashboard/api/lanes/R2/mode', { body: { mode: 'free', confirmed: true } }))).toEqual([403, 'control-disabled']);
      expect(kindOf(await call(base, '/dashboard/api/station/reset-emergency', { body: { confirmed: true } }))).toEqual([403, 'control-disabled']);
      expect(kindOf(await call(base, '/dashboard/api/login', { body: { name: 'a', password: 'b' } }))).toEqual([403, 'control-disabled']);
      expect((await call(base, '/dashboard/api/session')).body).toEqual({ access: 'read-only', control: false });
      expect(lane.view().mode).toBe('normal');
    } finally {
      await service.stop();
      await lane.stop();
    }
  });

  it('the no-login demo dashboard refuses to listen anywhere but loopback, and acts as "demo" from loopback', async () => {
    const h = await laneHarness();
    try {
      await expect(startDashboardServer({ lanes: [h.lane], port: 0, host: '0.0.0.0', access: { mode: 'loopback-demo' } })).rejects.toMatchObject({ code: 'config' });
      const captured = capturedLog();
      const s = await startDashboardServer({ lanes: [h.lane], port: 0, access: { mode: 'loopback-demo' }, log: captured.log });
      try {
        const page = await call(s.url, '/');
        expect(page.body).toContain('Demo mode: no login, loopback (127.0.0.1) only');
        const r = await call(s.url, '/api/lanes/L1/mode', { body: { mode: 'closed', confirmed: true } });
        expect(r.body).toMatchObject({ ok: true, supervisor: 'demo (no login)' });
        expect(captured.lines.find((l) => l.event === 'supervisor')).toMatchObject({ supervisor: 'demo (no login)', remote: '127.0.0.1', action: 'set-mode' });
        expect(kindOf(await call(s.url, '/api/lanes/L1/mode', { body: { mode: 'normal', confirmed: true }, headers: { origin: 'null' } }))).toEqual([403, 'bad-origin']);
      } finally {
        await s.close();
      }
    } finally {
      await h.lane.stop();
    }
  });

  it('recognises loopback peers and allowlisted hosts exactly', () => {
    expect(['127.0.0.1', '::1', '::ffff:127.0.0.1', '127.8.9.1'].map(isLoopbackAddress)).toEqual([true, true, true, true]);
    expect(['10.0.0.5', '::ffff:10.0.0.5', '0.0.0.0', undefined].map(isLoopbackAddress)).toEqual([false, false, false, false]);
    const allowed = ['127.0.0.1', 'gate-l01.metro:9464'];
    expect(['127.0.0.1:9464', 'GATE-L01.metro:9464', 'gate-l01.metro:9465', 'gate-l01.metro', '127.0.0.1.evil.example:9464', undefined].map((h) => hostAllowed(h, allowed))).toEqual([true, true, false, false, false, false]);
  });
});

describe('gate supervisor add', () => {
  it('writes a scrypt hash (mode 0640) that the dashboard accepts, never the password; refuses a short one', async () => {
    const gateJs = join(root, 'dist/firmware/cli/gate.js');
    if (spawnSync('test', ['-f', gateJs]).status !== 0) {
      const b = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, encoding: 'utf8' });
      if (b.status !== 0) throw new Error(`build failed: ${b.stdout}${b.stderr}`);
    }
    const file = join(dir, 'cli-supervisors.json');
    const add = spawnSync(process.execPath, [gateJs, 'supervisor', 'add', 'wang.li', '--file', file, '--password-stdin'], { input: `${PASSWORD}\n`, encoding: 'utf8', timeout: 20_000 });
    expect([add.status, add.stderr]).toEqual([0, '']);
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain(PASSWORD);
    expect(statSync(file).mode & 0o777).toBe(0o640);
    const hash = JSON.parse(text).supervisors['wang.li'].hash as string;
    expect(hash).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(await verifyPassword(PASSWORD, hash)).toBe(true);
    expect(await verifyPassword('something else', hash)).toBe(false);
    const again = spawnSync(process.execPath, [gateJs, 'supervisor', 'add', 'wang.li', '--file', file, '--password-stdin'], { input: `${PASSWORD}\n`, encoding: 'utf8', timeout: 20_000 });
    expect(again.status).toBe(2);
    expect(again.stderr).toMatch(/already in .*--replace/);
    const short = spawnSync(process.execPath, [gateJs, 'supervisor', 'add', 'li.na', '--file', file, '--password-stdin'], { input: 'short\n', encoding: 'utf8', timeout: 20_000 });
    expect(short.status).toBe(2);
    expect(short.stderr.trim().split('\n')).toHaveLength(1);
    const directory = await openSupervisorFile(file);
    expect(await directory.verify('wang.li', PASSWORD)).toBe(true);
    expect(await directory.has('li.na')).toBe(false);
  });
});
