// The dashboard's HTTP side without a browser: mounted on someone else's server under a prefix, actions
// refused with a classified error and a counter (no confirmation, bad JSON, foreign or opaque origin,
// unknown lane, simulator controls outside the simulator), and the event stream never carrying a full card
// number. Here in the no-login demo mode (loopback); logins and sessions: supervisor-access.test.ts.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDashboard, startDashboardServer, type Dashboard } from '../../firmware/dashboard/dashboard.js';
import { laneHarness, type LaneHarness } from '../support/lane-harness.js';

describe('dashboard over HTTP, mounted on an existing server', () => {
  let h: LaneHarness;
  let dash: Dashboard;
  let server: Server;
  let base: string;

  beforeAll(async () => {
    h = await laneHarness();
    dash = createDashboard({ lanes: [h.lane], prefix: '/dashboard', access: { mode: 'loopback-demo' } });
    server = createServer((req, res) => {
      if (dash.handle(req, res)) return;
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('host server');
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

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

  it('serves its page under the prefix and leaves other paths to the host server', async () => {
    const page = await fetch(`${base}/dashboard/`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('Station dashboard');
    // Self-contained: no external scripts, styles or fonts.
    expect(html).not.toMatch(/<(script|link)[^>]+(src|href)=["']?https?:/i);
    expect(html).toContain('"prefix":"/dashboard"');
    expect(await (await fetch(`${base}/metrics`)).text()).toBe('host server');
    const state = (await (await fetch(`${base}/dashboard/api/state`)).json()) as { lanes: { laneId: string; mode: string }[] };
    expect(state.lanes.map((l) => [l.laneId, l.mode])).toEqual([['L1', 'normal']]);
  });

  it('switches a mode only with an explicit confirmation', async () => {
    const refused = await post('/dashboard/api/lanes/L1/mode', { mode: 'closed' });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { kind: string } }).error.kind).toBe('not-confirmed');
    expect(h.lane.view().mode).toBe('normal');
    const ok = await post('/dashboard/api/lanes/L1/mode', { mode: 'closed', confirmed: true });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ lane: 'L1', mode: 'closed' });
    expect(h.lane.view().mode).toBe('closed');
    await post('/dashboard/api/lanes/L1/mode', { mode: 'normal', confirmed: true });
    expect(h.lane.view().mode).toBe('normal');
  });

  it('refuses bad requests with a classified error and counts them', async () => {
    const cases: [Promise<Response>, number, string][] = [
      [post('/dashboard/api/lanes/L1/mode', '{not json'), 400, 'bad-json'],
      [post('/dashboard/api/lanes/L1/mode', { mode: 'party', confirmed: true }), 400, 'bad-body'],
      [post('/dashboard/api/lanes/L9/mode', { mode: 'closed', confirmed: true }), 404, 'unknown-lane'],
      [post('/dashboard/api/lanes/L1/mode', { mode: 'closed', confirmed: true }, { origin: 'http://evil.example' }), 403, 'bad-origin'],
      [post('/dashboard/api/lanes/L1/mode', { mode: 'closed', confirmed: true }, { origin: 'null' }), 403, 'bad-origin'],
      [fetch(`${base}/dashboard/api/lanes/L1/mode`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"mode":"closed","confirmed":true}' }), 415, 'bad-content-type'],
      [post('/dashboard/api/sim/tap', { lane: 'L1', kind: 'card', story: 'green' }), 404, 'not-simulator'],
      [post('/dashboard/api/sim/fire-alarm', { active: true }), 404, 'not-simulator'],
      [post('/dashboard/api/lanes/L1/mode', 'x'.repeat(20_000)), 413, 'too-large'],
    ];
    for (const [req, status, kind] of cases) {
      const res = await req;
      expect([res.status, ((await res.json()) as { error: { kind: string } }).error.kind]).toEqual([status, kind]);
    }
    expect(h.lane.view().mode).toBe('normal');
    expect(dash.refused).toMatchObject({ 'bad-json': 1, 'bad-body': 1, 'unknown-lane': 1, 'bad-origin': 2, 'bad-content-type': 1, 'not-simulator': 2, 'too-large': 1 });
  });

  it('streams decisions with privacy-safe references only', async () => {
    const number = '3104100012345678901';
    h.register(`card:${number}`, 'green');
    const ac = new AbortController();
    const res = await fetch(`${base}/dashboard/events`, { signal: ac.signal });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    let text = '';
    const until = async (what: string) => {
      while (!text.includes(what)) {
        const { value, done } = await reader.read();
        if (done) throw new Error('stream ended');
        text += new TextDecoder().decode(value);
      }
    };
    await until('event: hello');
    expect(dash.clients).toBe(1);
    h.entry.present({ kind: 'card', cardNumber: number });
    await h.settle();
    await until('event: decision');
    await until('\n\n');
    expect(text).toMatch(/"ref":"card:…8901#[0-9a-f]{6}"/);
    expect(text).toContain('"reason":"ok"');
    expect(text).not.toContain(number);
    ac.abort();
    await expect.poll(() => dash.clients).toBe(0);
  });
});

describe('dashboard on its own server', () => {
  it('binds to loopback by default, is read-only unless told otherwise, and answers 404 outside its routes', async () => {
    const h = await laneHarness();
    const s = await startDashboardServer({ lanes: [h.lane], port: 0 });
    try {
      expect(s.url).toBe(`http://127.0.0.1:${s.port}/`);
      expect((s.server.address() as AddressInfo).address).toBe('127.0.0.1');
      expect((await fetch(s.url)).status).toBe(200);
      expect((await fetch(`${s.url}nothing-here`)).status).toBe(404);
      const act = await fetch(`${s.url}api/lanes/L1/mode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'closed', confirmed: true }) });
      expect(act.status).toBe(403);
      expect(h.lane.view().mode).toBe('normal');
    } finally {
      await s.close();
      await h.lane.stop();
    }
  });
});
