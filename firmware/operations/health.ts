// The lane's HTTP face for machines: /metrics (Prometheus), /healthz (the process is alive and its event
// loop answers in time) and /readyz (the lane can serve riders: barrier link up, lists fresh per policy,
// journal writable). Probes are injected so this file knows nothing of the lane's internals. Other
// routes (the station dashboard) mount on the same server with addRoute().

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { healthSchema, parseDriverConfig, type HealthSettings } from '../config/config.js';

/** What /metrics serves: one lane's GateMetrics, or a gate array's lanes merged (array-service.ts). */
export interface MetricsSource {
  /** The Prometheus text exposition. */
  text(): Promise<string>;
  readonly contentType: string;
}

export interface ProbeResult {
  ok: boolean;
  detail: string;
}
/** A readiness probe; may be async. A probe that throws or takes longer than probeTimeoutMs counts as not ok. */
export type Probe = () => ProbeResult | Promise<ProbeResult>;

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

export interface HealthServerOptions {
  /** Bind address; 127.0.0.1 by default so only the box itself (and an SSH tunnel) can reach it. */
  host?: string;
  /** 0 picks a free port (tests). */
  port?: number;
  metrics?: MetricsSource;
  /** Readiness probes by name, e.g. { barrierLink, lists, journal }. */
  ready?: Record<string, Probe>;
  /** /healthz fails when the event loop stalled longer than this since the previous /healthz. */
  maxLoopDelayMs?: number;
  probeTimeoutMs?: number;
}

export interface HealthServer {
  readonly server: Server;
  /** The bound address, e.g. "http://127.0.0.1:9464". */
  readonly url: string;
  /** Mount another route (exact path match), e.g. the dashboard page and its event stream. */
  addRoute(method: string, path: string, handler: RouteHandler): void;
  /** Mount an app that serves its own paths (the dashboard under /dashboard): it returns true when it served the request. */
  mount(handler: (req: IncomingMessage, res: ServerResponse) => boolean): void;
  /** Add or replace a readiness probe after start (for parts that come up later). */
  setProbe(name: string, probe: Probe): void;
  close(): Promise<void>;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

/** The longest time the event loop ran late, measured by a ticker that should fire every `periodMs`. */
export class LoopStallMeter {
  private last = performance.now();
  private max = 0;
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly periodMs: number) {
    this.timer = setInterval(() => this.tick(), periodMs);
    this.timer.unref();
  }
  private tick(): void {
    const now = performance.now();
    this.max = Math.max(this.max, now - this.last - this.periodMs);
    this.last = now;
  }
  /** The longest stall (ms) since the previous call, including one still in progress up to now. */
  takeMax(): number {
    this.tick();
    const m = this.max;
    this.max = 0;
    return Math.max(0, m);
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

async function runProbe(probe: Probe, timeoutMs: number): Promise<ProbeResult> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      Promise.resolve().then(probe),
      new Promise<ProbeResult>((resolve) => {
        timer = setTimeout(() => resolve({ ok: false, detail: `probe did not answer within ${timeoutMs} ms` }), timeoutMs);
      }),
    ]);
  } catch (e) {
    return { ok: false, detail: `probe failed: ${(e as Error).message}` };
  } finally {
    clearTimeout(timer);
  }
}

export async function startHealthServer(opts: HealthServerOptions = {}): Promise<HealthServer> {
  const probes = new Map<string, Probe>(Object.entries(opts.ready ?? {}));
  const routes = new Map<string, RouteHandler>();
  const mounts: ((req: IncomingMessage, res: ServerResponse) => boolean)[] = [];
  const maxLoopDelayMs = opts.maxLoopDelayMs ?? 1000;
  const probeTimeoutMs = opts.probeTimeoutMs ?? 2000;
  const started = Date.now();

  // The event loop delay since the last /healthz: a loop that answers this request but stalled for
  // seconds in between is not healthy either.
  // (perf_hooks.monitorEventLoopDelay misses a single long stall on Node 20, so a plain ticker measures it.)
  const loop = new LoopStallMeter(20);

  routes.set('GET /healthz', (_req, res) => {
    const maxMs = loop.takeMax();
    const ok = maxMs <= maxLoopDelayMs;
    sendJson(res, ok ? 200 : 503, {
      ok,
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
      eventLoop: { maxStallMs: Math.round(maxMs), limitMs: maxLoopDelayMs },
    });
  });

  routes.set('GET /readyz', async (_req, res) => {
    const entries = [...probes.entries()];
    const results = await Promise.all(entries.map(([, p]) => runProbe(p, probeTimeoutMs)));
    const checks: Record<string, ProbeResult> = {};
    entries.forEach(([name], i) => (checks[name] = results[i]));
    // No probes means nothing is known to be ready: say so rather than claim readiness.
    const ok = entries.length > 0 && results.every((r) => r.ok);
    sendJson(res, ok ? 200 : 503, { ok, checks });
  });

  routes.set('GET /metrics', async (_req, res) => {
    if (!opts.metrics) return sendJson(res, 404, { error: 'metrics are not enabled' });
    const text = await opts.metrics.text();
    res.writeHead(200, { 'content-type': opts.metrics.contentType });
    res.end(text);
  });

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    const handler = routes.get(`${method} ${url.pathname}`);
    if (!handler) {
      for (const m of mounts) if (m(req, res)) return;
      const allowed = [...routes.keys()].filter((k) => k.endsWith(` ${url.pathname}`)).map((k) => k.split(' ')[0]);
      if (allowed.length > 0) {
        res.setHeader('allow', allowed.join(', '));
        return sendJson(res, 405, { error: `method ${req.method} not allowed on ${url.pathname}` });
      }
      return sendJson(res, 404, { error: `no route ${url.pathname}` });
    }
    Promise.resolve()
      .then(() => handler(req, res, url))
      .catch((e: Error) => {
        if (!res.headersSent) sendJson(res, 500, { error: e.message });
        else res.destroy(e);
      });
  });
  // Scrapers keep connections alive; closing must not wait for them.
  server.keepAliveTimeout = 5000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 9464, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  return {
    server,
    url: `http://${host}:${addr.port}`,
    addRoute(method, path, handler) {
      const key = `${method.toUpperCase()} ${path}`;
      if (routes.has(key)) throw new Error(`route ${key} is already mounted`);
      routes.set(key, handler);
    },
    mount(handler) {
      mounts.push(handler);
    },
    setProbe(name, probe) {
      probes.set(name, probe);
    },
    close() {
      loop.stop();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** Readiness probe for list freshness per policy: too old means not ready unless the policy keeps serving. */
export function listFreshnessProbe(
  current: () => { version: number; publishedAtMs: number },
  maxAgeSeconds: number,
  now: () => number = Date.now,
): Probe {
  return () => {
    const s = current();
    if (s.version === 0) return { ok: false, detail: 'no list synced yet (version 0)' };
    const age = Math.round((now() - s.publishedAtMs) / 1000);
    return age <= maxAgeSeconds
      ? { ok: true, detail: `version ${s.version}, ${age} s old (limit ${maxAgeSeconds} s)` }
      : { ok: false, detail: `version ${s.version} is ${age} s old, over the ${maxAgeSeconds} s limit` };
  };
}

/** The `health` section of a lane config (top-level key `health`, validated with the rest of the config), read with healthConfig(). */
export const healthConfigSchema = healthSchema;
export type HealthConfig = HealthSettings;

/** The health server's settings from a lane config object (its optional `health` section). */
export function healthConfig(config: { health?: unknown }): HealthConfig {
  return parseDriverConfig(healthConfigSchema, config.health ?? {}, 'health');
}
