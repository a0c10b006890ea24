import { afterEach, describe, expect, it } from 'vitest';
import { healthConfig, listFreshnessProbe, startHealthServer, type HealthServer } from '../../firmware/operations/health.js';
import { createMetrics } from '../../firmware/operations/metrics.js';
import { ConfigError } from '../../firmware/config/config.js';

let server: HealthServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function get(path: string): Promise<{ status: number; body: any; text: string; type: string | null }> {
  const r = await fetch(server!.url + path);
  const text = await r.text();
  const type = r.headers.get('content-type');
  return { status: r.status, text, type, body: type?.includes('json') ? JSON.parse(text) : undefined };
}

describe('health server', () => {
  it('serves Prometheus metrics, healthz and readyz with JSON bodies', async () => {
    const metrics = createMetrics({ labels: { lane: 'L7' } });
    metrics.decision('card', 'ok', 0.001);
    let linkUp = true;
    server = await startHealthServer({
      port: 0,
      metrics,
      ready: {
        barrierLink: () => (linkUp ? { ok: true, detail: 'board answering' } : { ok: false, detail: 'no answer for 600 ms' }),
        lists: listFreshnessProbe(() => ({ version: 3, publishedAtMs: Date.now() - 10_000 }), 86_400),
        journal: async () => ({ ok: true, detail: '/var/lib/gate/journal writable' }),
      },
    });
    const m = await get('/metrics');
    expect(m.status).toBe(200);
    expect(m.type).toMatch(/^text\/plain/);
    expect(m.text).toContain('gate_decisions_total{kind="card",reason="ok",grant="true",lane="L7"} 1');

    const h = await get('/healthz');
    expect(h.status).toBe(200);
    expect(h.body).toMatchObject({ ok: true, pid: process.pid });
    expect(h.body.eventLoop.limitMs).toBe(1000);

    let r = await get('/readyz');
    expect(r.status).toBe(200);
    expect(r.body.ok).toBe(true);
    expect(Object.keys(r.body.checks)).toEqual(['barrierLink', 'lists', 'journal']);

    linkUp = false;
    r = await get('/readyz');
    expect(r.status).toBe(503);
    expect(r.body.checks.barrierLink).toEqual({ ok: false, detail: 'no answer for 600 ms' });
    expect(r.body.checks.lists.ok).toBe(true);
  });

  it('is not ready with a stale or missing list, a throwing or hanging probe, or no probes at all', async () => {
    server = await startHealthServer({ port: 0, probeTimeoutMs: 100 });
    expect((await get('/readyz')).status).toBe(503);
    server.setProbe('lists', listFreshnessProbe(() => ({ version: 5, publishedAtMs: 0 }), 3600, () => 7200_000));
    server.setProbe('journal', () => {
      throw new Error('EROFS: read-only file system');
    });
    server.setProbe('barrierLink', () => new Promise(() => {}));
    const r = await get('/readyz');
    expect(r.status).toBe(503);
    expect(r.body.checks.lists).toEqual({ ok: false, detail: 'version 5 is 7200 s old, over the 3600 s limit' });
    expect(r.body.checks.journal.detail).toContain('EROFS');
    expect(r.body.checks.barrierLink.detail).toContain('did not answer within 100 ms');
    expect(listFreshnessProbe(() => ({ version: 0, publishedAtMs: 0 }), 60)()).toMatchObject({ ok: false });
  });

  it('reports a stalled event loop on /healthz', async () => {
    server = await startHealthServer({ port: 0, maxLoopDelayMs: 50 });
    await get('/healthz'); // resets the window
    const until = Date.now() + 300;
    while (Date.now() < until) {
      /* deliberately block the loop */
    }
    await new Promise((r) => setTimeout(r, 50));
    const h = await get('/healthz');
    expect(h.status).toBe(503);
    expect(h.body.ok).toBe(false);
  });

  it('mounts extra routes, answers 404/405 in JSON, and refuses a route twice', async () => {
    server = await startHealthServer({ port: 0 });
    server.addRoute('GET', '/dashboard', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<h1>lanes</h1>');
    });
    server.addRoute('POST', '/api/mode', async () => {
      throw new Error('lane L1 is not known');
    });
    expect((await get('/dashboard')).text).toBe('<h1>lanes</h1>');
    expect((await get('/nope')).status).toBe(404);
    expect((await get('/nope')).body.error).toContain('/nope');
    expect((await get('/api/mode')).status).toBe(405);
    const post = await fetch(server.url + '/api/mode', { method: 'POST' });
    expect(post.status).toBe(500);
    expect(((await post.json()) as any).error).toBe('lane L1 is not known');
    expect(() => server!.addRoute('GET', '/dashboard', () => {})).toThrow(/already mounted/);
    expect((await get('/metrics')).status).toBe(404);
  });

  it('reads its bind address and port from the lane config, with defaults', () => {
    expect(healthConfig({})).toEqual({ enabled: true, host: '127.0.0.1', port: 9464, maxLoopDelayMs: 1000 });
    expect(healthConfig({ health: { host: '0.0.0.0', port: 9100 } }).port).toBe(9100);
    expect(() => healthConfig({ health: { port: 'x' } })).toThrow(ConfigError);
    expect(() => healthConfig({ health: { prot: 1 } })).toThrow(/health/);
  });
});
