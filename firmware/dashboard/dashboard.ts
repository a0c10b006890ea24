// The station dashboard: one self-contained web page (no CDN, works with no internet) that shows every
// lane live over server-sent events, lets a logged-in supervisor switch a lane's mode (with confirmation)
// and reset an emergency, and — in the simulator only — make things happen (taps, QR codes, tailgating,
// fire alarm, barrier faults). It mounts on any node:http server through `handle(req, res)`, or runs its
// own. Who may act, and from where, is access.ts; every action is logged and journaled with who, where, what.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { CREDENTIAL_KINDS, QR_ISSUERS, type Direction } from '../../protocol/credential.js';
import { REASONS, riderMessage, type ReasonCode } from '../../protocol/reasons.js';
import { alarmText } from '../../protocol/alarms.js';
import { adviseMessage } from '../../protocol/policy-schedule.js';
import { dashboardPage } from './dashboard-page.js';
import { createGatekeeper, isLoopbackAddress, remoteOf, type Actor, type DashboardAccess } from './access.js';
import { checkContentType, json, parse, readJson, RequestError } from './requests.js';
import type { GateEmitted, OperatorMode } from '../lane/gate-machine.js';
import type { Lane, LaneView } from '../lane/lane.js';
import { silentLogger, type Logger } from '../config/log.js';
import { ConfigError } from '../config/config.js';

import { simulatorAction, TAP_STORIES, type DashboardSim } from './sim-controls.js';

export type { DashboardAccess, Actor } from './access.js';
export { TAP_STORIES, type DashboardSim, type TapRequest, type TapStory } from './sim-controls.js';

export interface DashboardOptions {
  lanes: Lane[];
  sim?: DashboardSim;
  /** Mount point on a shared server, e.g. "/dashboard"; "" serves at the root. */
  prefix?: string;
  /** Shown in the page title. */
  station?: string;
  log?: Logger;
  /** Decisions kept per lane for a newly opened page. */
  keepDecisions?: number;
  /** Who may act (access.ts): read-only unless said otherwise. */
  access?: DashboardAccess;
  /** Host header values answered besides loopback (127.0.0.1, localhost, [::1]): "name" (any port) or "name:port". */
  allowedHosts?: readonly string[];
  /** Wall clock of sessions and login limits (tests move it). */
  now?: () => number;
  /** The lanes' clock, for the time of journaled actions (the simulator's virtual time); `now` by default. */
  laneNow?: () => number;
}

export interface Dashboard {
  /** Serve the request if it is the dashboard's; false leaves it to the caller. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** Open event streams (for tests and health pages). */
  readonly clients: number;
  /** Refused requests by kind (bad-json, bad-body, unknown-lane, no-session, bad-host, ...). */
  readonly refused: Readonly<Record<string, number>>;
  /** Live supervisor sessions. */
  readonly sessions: number;
  close(): void;
}

/** What a page sees of one decision: a privacy-safe reference, never the card number or account. */
export interface DecisionRow {
  seq: number;
  laneId: string;
  atMs: number;
  grant: boolean;
  reason: ReasonCode;
  zh: string;
  en: string;
  kind: string;
  ref: string;
  direction: Direction;
  source: string;
  latencyMs: number;
}

interface LaneCard extends Omit<LaneView, 'lastDecision'> {
  direction: string;
  sides: Direction[];
  sources: string[];
  zh: string;
  en: string;
}

interface LogRow {
  seq: number;
  laneId: string;
  atMs: number;
  kind: 'alarm' | 'mode' | 'action';
  text: string;
}

const IDLE_MESSAGE = { zh: '请刷卡或扫码', en: 'Tap card or scan code' };
const OPERATOR_MODES = ['normal', 'free', 'maintenance', 'closed'] as const satisfies readonly OperatorMode[];

const ModeBody = z.object({ mode: z.enum(OPERATOR_MODES), confirmed: z.literal(true) });
const ConfirmBody = z.object({ confirmed: z.literal(true) });

export function createDashboard(opts: DashboardOptions): Dashboard {
  const { lanes, sim } = opts;
  const prefix = (opts.prefix ?? '').replace(/\/+$/, '');
  const log = opts.log ?? silentLogger;
  const access: DashboardAccess = opts.access ?? { mode: 'read-only' };
  const now = opts.now ?? Date.now;
  const laneNow = opts.laneNow ?? now;
  const gate = createGatekeeper({ access, prefix, allowedHosts: opts.allowedHosts, now, log });
  const keep = opts.keepDecisions ?? 6;
  const byId = new Map(lanes.map((l, i) => [l.id, i]));
  const clients = new Set<ServerResponse>();
  const refused: Record<string, number> = {};
  const recent = new Map<string, DecisionRow[]>(lanes.map((l) => [l.id, []]));
  const logRows: LogRow[] = [];
  const lastSent = new Map<string, string>();
  const dirty = new Set<number>();
  const undo: (() => void)[] = [];
  let seq = 0;
  let flushScheduled = false;
  let closed = false;
  const page = dashboardPage({
    prefix,
    station: opts.station ?? 'station',
    access: access.mode,
    sim: sim ? { kinds: CREDENTIAL_KINDS, issuers: QR_ISSUERS, stories: TAP_STORIES } : undefined,
  });

  const card = (i: number): LaneCard => {
    const lane = lanes[i];
    const { lastDecision, ...v } = lane.view();
    const dir = lane.config.lane.direction;
    // An advise grant's message has its day in it, as the rider display shows it (DISPLAY_DATE).
    const registerBy = v.display === 'advise-register' ? lastDecision?.registerByMs : undefined;
    const msg = v.display === 'idle' || !Object.hasOwn(REASONS, v.display) ? IDLE_MESSAGE : registerBy !== undefined ? adviseMessage(registerBy) : riderMessage(v.display as ReasonCode);
    return { ...v, direction: dir, sides: dir === 'bidirectional' ? ['entry', 'exit'] : [dir], sources: lane.sources.map((s) => s.name), zh: msg.zh, en: msg.en };
  };

  const send = (event: string, data: unknown) => {
    if (clients.size === 0) return;
    const chunk = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of clients) {
      // A page that stopped reading must not make the runtime buffer without bound.
      if (res.writableLength > 1 << 20) {
        clients.delete(res);
        res.destroy();
        continue;
      }
      res.write(chunk);
    }
  };

  const flush = () => {
    flushScheduled = false;
    // Nobody watching: no work on the lane's behalf (a page that opens gets the full state in its hello).
    if (clients.size === 0) {
      dirty.clear();
      lastSent.clear();
      return;
    }
    for (const i of dirty) {
      const c = card(i);
      const json = JSON.stringify(c);
      if (lastSent.get(c.laneId) === json) continue;
      lastSent.set(c.laneId, json);
      send('lane', c);
    }
    dirty.clear();
  };
  const markDirty = (i: number) => {
    dirty.add(i);
    if (!flushScheduled && !closed) {
      flushScheduled = true;
      setImmediate(flush);
    }
  };

  const pushLog = (row: Omit<LogRow, 'seq'>) => {
    const r = { ...row, seq: ++seq };
    logRows.push(r);
    if (logRows.length > 50) logRows.shift();
    send('log', r);
  };

  lanes.forEach((lane, i) => {
    const sub = lane.actor.subscribe(() => markDirty(i));
    undo.push(() => sub.unsubscribe());
    const onDecision = (e: Extract<GateEmitted, { type: 'decision' }>) => {
      const d = e.decision;
      const m = riderMessage(d.reason);
      // Only named fields: the decision also carries the full list key, which never leaves the lane.
      const row: DecisionRow = {
        seq: ++seq,
        laneId: lane.id,
        atMs: e.atMs,
        grant: d.grant,
        reason: d.reason,
        zh: m.zh,
        en: m.en,
        kind: d.kind,
        ref: d.ref,
        direction: d.direction,
        source: e.source,
        latencyMs: e.decidedAtMs - e.atMs,
      };
      const list = recent.get(lane.id)!;
      list.push(row);
      if (list.length > keep) list.shift();
      send('decision', row);
      markDirty(i);
    };
    const onAlarm = (e: Extract<GateEmitted, { type: 'alarm' }>) => {
      const detail = alarmText(e.alarm);
      pushLog({ laneId: lane.id, atMs: e.atMs, kind: 'alarm', text: detail ? `${e.alarm.alarm} (${detail})` : e.alarm.alarm });
    };
    const onMode = (e: Extract<GateEmitted, { type: 'mode' }>) => pushLog({ laneId: lane.id, atMs: e.atMs, kind: 'mode', text: `${e.from} → ${e.to}: ${e.cause}` });
    lane.on('decision', onDecision).on('alarm', onAlarm).on('mode', onMode);
    undo.push(() => {
      lane.events.off('decision', onDecision);
      lane.events.off('alarm', onAlarm);
      lane.events.off('mode', onMode);
    });
  });

  // List age moves on its own, and a keep-alive comment stops proxies from closing an idle stream.
  const tick = setInterval(() => {
    lanes.forEach((_, i) => markDirty(i));
  }, 1000);
  const keepAlive = setInterval(() => {
    for (const res of clients) res.write(': keep-alive\n\n');
  }, 15_000);
  tick.unref();
  keepAlive.unref();

  const state = () => ({
    station: opts.station ?? 'station',
    sim: sim !== undefined,
    lanes: lanes.map((_, i) => card(i)),
    decisions: lanes.flatMap((l) => recent.get(l.id)!),
    log: logRows,
  });

  const laneIndex = (id: string): number => {
    const i = byId.get(id);
    if (i === undefined) throw new RequestError(404, 'unknown-lane', `no lane "${id}"; lanes: ${[...byId.keys()].join(', ')}`);
    return i;
  };


  /**
   * A supervisor's action on a lane: logged and journaled (who, from where, what) before the lane is told.
   * The journal gets a bounded wait: an evacuation (free passage, emergency reset) never waits on a full disk.
   */
  async function laneAction(i: number, actor: Actor, action: string, detail: string | undefined, apply: () => void): Promise<boolean> {
    const lane = lanes[i];
    const atMs = laneNow();
    const what = detail ? `${action} ${detail}` : action;
    log.info({ lane: lane.id, event: 'supervisor', supervisor: actor.supervisor, remote: actor.remote, action, detail }, `supervisor ${actor.supervisor} from ${actor.remote}: ${what} on lane ${lane.id}`);
    const entry = { type: 'supervisor' as const, laneId: lane.id, atMs, supervisor: actor.supervisor, remote: actor.remote, action, ...(detail ? { detail } : {}) };
    let timer: NodeJS.Timeout | undefined;
    const journaled = await Promise.race([
      lane.journal.append(entry).then(
        () => true,
        (e: Error) => (log.error({ lane: lane.id, event: 'supervisor', err: e.message, action }, 'supervisor action not journaled'), false),
      ),
      new Promise<false>((r) => (timer = setTimeout(() => r(false), Math.max(100, lane.config.timeouts.decisionMs)))),
    ]);
    clearTimeout(timer);
    pushLog({ laneId: lane.id, atMs, kind: 'action', text: `${actor.supervisor} (${actor.remote}): ${what}` });
    apply();
    return journaled;
  }

  async function post(path: string, body: unknown, actor: Actor): Promise<unknown> {
    let m: RegExpMatchArray | null;
    if ((m = path.match(/^\/api\/lanes\/([^/]+)\/mode$/))) {
      const i = laneIndex(decodeURIComponent(m[1]));
      const b = parse(ModeBody, body);
      const journaled = await laneAction(i, actor, 'set-mode', b.mode, () => lanes[i].send({ type: 'SET_MODE', mode: b.mode }));
      return { ok: true, lane: lanes[i].id, mode: lanes[i].view().mode, supervisor: actor.supervisor, journaled };
    }
    if ((m = path.match(/^\/api\/lanes\/([^/]+)\/reset-emergency$/))) {
      const i = laneIndex(decodeURIComponent(m[1]));
      parse(ConfirmBody, body);
      const journaled = await laneAction(i, actor, 'reset-emergency', undefined, () => lanes[i].send({ type: 'RESET_EMERGENCY' }));
      return { ok: true, lane: lanes[i].id, mode: lanes[i].view().mode, supervisor: actor.supervisor, journaled };
    }
    if (path === '/api/station/reset-emergency') {
      parse(ConfirmBody, body);
      const journaled = await Promise.all(lanes.map((l, i) => laneAction(i, actor, 'reset-emergency', 'every lane', () => l.send({ type: 'RESET_EMERGENCY' }))));
      return { ok: true, supervisor: actor.supervisor, journaled: journaled.every(Boolean) };
    }
    if (path.startsWith('/api/sim/')) {
      if (!sim) throw new RequestError(404, 'not-simulator', 'simulator controls are only available in simulator mode');
      return simulatorAction(path, body, { sim, actor, log, laneIndex, sides: (i) => card(i).sides, laneId: (i) => lanes[i].id });
    }
    throw new RequestError(404, 'not-found', `no such action: POST ${path}`);
  }

  function refuse(res: ServerResponse, e: RequestError, remote?: string) {
    refused[e.kind] = (refused[e.kind] ?? 0) + 1;
    log.warn({ event: 'dashboard-refused', kind: e.kind, err: e.message, remote }, 'dashboard request refused');
    for (const [k, v] of Object.entries(e.headers)) if (!res.headersSent) res.setHeader(k, v);
    json(res, e.status, { error: { kind: e.kind, message: e.message } });
  }

  function openStream(req: IncomingMessage, res: ServerResponse) {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(`retry: 1000\nevent: hello\ndata: ${JSON.stringify(state())}\n\n`);
    clients.add(res);
    const drop = () => clients.delete(res);
    req.on('close', drop);
    res.on('error', drop);
  }

  function handle(req: IncomingMessage, res: ServerResponse): boolean {
    if (closed) return false;
    const url = new URL(req.url ?? '/', 'http://dashboard.invalid');
    let path = url.pathname;
    if (prefix) {
      if (path !== prefix && !path.startsWith(prefix + '/')) return false;
      path = path.slice(prefix.length) || '/';
    }
    const method = req.method ?? 'GET';
    try {
      gate.checkHost(req);
    } catch (e) {
      refuse(res, e as RequestError, remoteOf(req));
      return true;
    }
    if (method === 'GET' || method === 'HEAD') {
      if (path === '/' || path === '/index.html') {
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'cache-control': 'no-store',
          'content-security-policy': "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'none'; base-uri 'none'",
          'x-frame-options': 'DENY',
          'referrer-policy': 'no-referrer',
        });
        res.end(method === 'HEAD' ? undefined : page);
        return true;
      }
      if (path === '/events') {
        openStream(req, res);
        return true;
      }
      if (path === '/api/state') {
        json(res, 200, { ...state(), refused });
        return true;
      }
      if (path === '/api/session') {
        json(res, 200, gate.sessionInfo(req));
        return true;
      }
      if (!prefix) return false;
      refuse(res, new RequestError(404, 'not-found', `no such page: ${path}`));
      return true;
    }
    if (method !== 'POST') {
      if (!prefix && !path.startsWith('/api/')) return false;
      refuse(res, new RequestError(405, 'bad-method', `${method} is not allowed here`));
      return true;
    }
    if (!path.startsWith('/api/')) {
      if (!prefix) return false;
      refuse(res, new RequestError(404, 'not-found', `no such action: POST ${path}`));
      return true;
    }
    void (async () => {
      try {
        checkContentType(req);
        gate.checkOrigin(req);
        if (path === '/api/login') return json(res, 200, await gate.login(req, res));
        const actor = await gate.authorize(req);
        if (path === '/api/logout') {
          gate.logout(req, res, actor);
          return json(res, 200, { ok: true });
        }
        const body = await readJson(req);
        json(res, 200, await post(path, body, actor));
      } catch (e) {
        if (e instanceof RequestError) refuse(res, e, remoteOf(req));
        else {
          log.error({ event: 'dashboard-error', err: (e as Error).message }, 'dashboard action failed');
          refuse(res, new RequestError(500, 'internal', (e as Error).message));
        }
      }
    })();
    return true;
  }

  return {
    handle,
    get clients() {
      return clients.size;
    },
    refused,
    get sessions() {
      return gate.sessions;
    },
    close() {
      if (closed) return;
      closed = true;
      clearInterval(tick);
      clearInterval(keepAlive);
      for (const u of undo) u();
      for (const res of clients) res.end();
      clients.clear();
    },
  };
}

export interface DashboardServerOptions extends DashboardOptions {
  /** 0 picks a free port. */
  port?: number;
  /** Loopback by default: a supervisor's console is not for the station LAN unless someone decides so. */
  host?: string;
}

export interface DashboardServer {
  url: string;
  port: number;
  server: Server;
  dashboard: Dashboard;
  close(): Promise<void>;
}

/**
 * The dashboard on a server of its own. The no-login demo mode listens on loopback only: anything else
 * is refused here, before a port opens.
 */
export async function startDashboardServer(opts: DashboardServerOptions): Promise<DashboardServer> {
  const host = opts.host ?? '127.0.0.1';
  if (opts.access?.mode === 'loopback-demo' && !isLoopbackAddress(host) && host !== 'localhost') {
    throw new ConfigError(`the dashboard without login listens on loopback only, not ${host}: give it a supervisors file (gate sim --supervisors FILE) to open it to the network`);
  }
  const dashboard = createDashboard(opts);
  const server = createServer((req, res) => {
    if (!dashboard.handle(req, res)) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return {
    url: `http://${shownHost}:${port}${(opts.prefix ?? '').replace(/\/+$/, '')}/`,
    port,
    server,
    dashboard,
    close: () =>
      new Promise<void>((resolve) => {
        dashboard.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
