// The station dashboard: one self-contained web page (no CDN, works with no internet) that shows every
// lane live over server-sent events, lets a supervisor switch a lane's mode (with confirmation) and reset
// an emergency, and — in the simulator only — make things happen (taps, QR codes, tailgating, fire alarm,
// barrier faults). It mounts on any node:http server through `handle(req, res)`, or runs its own.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { CREDENTIAL_KINDS, QR_ISSUERS, checkCredential, type Credential, type CredentialKind, type Direction, type QrIssuer } from '../../protocol/credential.js';
import { REASONS, riderMessage, type ReasonCode } from '../../protocol/reasons.js';
import { alarmText } from '../../protocol/alarms.js';
import { dashboardPage } from './dashboard-page.js';
import type { GateEmitted, OperatorMode } from '../lane/gate-machine.js';
import type { Lane, LaneView } from '../lane/lane.js';
import { silentLogger, type Logger } from '../config/log.js';

/** Registration stories the simulator's tap form offers; "as-listed" leaves the lists as they are (typed numbers). */
export const TAP_STORIES = ['green', 'yellow', 'red', 'blocked', 'unregistered', 'as-listed'] as const;
export type TapStory = (typeof TAP_STORIES)[number];

export interface TapRequest {
  laneIndex: number;
  side: Direction;
  kind: CredentialKind;
  /** QR codes: the issuing app (a generated account). */
  issuer?: QrIssuer;
  /** A typed credential; when absent the simulator makes a fresh one of `kind`. */
  credential?: Credential;
  story: TapStory;
  /** Walk through if admitted (otherwise the lane times the passage out). */
  walk: boolean;
  /** Someone walks through right behind on the same opening. */
  tailgater: boolean;
}

/** What the dashboard may ask of a simulated station. Only present in simulator mode. */
export interface DashboardSim {
  /** Register the credential as the story says, then present it at the lane side. Resolves with its privacy-safe reference. */
  tap(req: TapRequest): Promise<{ ref: string }>;
  /** The station's fire-alarm input: on opens every lane; off clears it everywhere (lanes then need a reset). */
  fireAlarm(active: boolean): void;
  /** A barrier board fault code on one lane (0 clears it). */
  barrierFault(laneIndex: number, code: number): void;
  /** Something blocks the flaps of one lane. */
  obstruct(laneIndex: number, active: boolean): void;
}

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
}

export interface Dashboard {
  /** Serve the request if it is the dashboard's; false leaves it to the caller. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** Open event streams (for tests and health pages). */
  readonly clients: number;
  /** Refused requests by kind (bad-json, bad-body, unknown-lane, ...). */
  readonly refused: Readonly<Record<string, number>>;
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
  kind: 'alarm' | 'mode';
  text: string;
}

const IDLE_MESSAGE = { zh: '请刷卡或扫码', en: 'Tap card or scan code' };
const MAX_BODY = 16 * 1024;
const OPERATOR_MODES = ['normal', 'free', 'maintenance', 'closed'] as const satisfies readonly OperatorMode[];

const ModeBody = z.object({ mode: z.enum(OPERATOR_MODES), confirmed: z.literal(true) });
const ConfirmBody = z.object({ confirmed: z.literal(true) });
const TapBody = z.object({
  lane: z.string().max(32),
  side: z.enum(['entry', 'exit']).optional(),
  kind: z.enum(CREDENTIAL_KINDS),
  issuer: z.enum(QR_ISSUERS).optional(),
  story: z.enum(TAP_STORIES),
  number: z.string().max(64).optional(),
  walk: z.boolean().default(true),
  tailgater: z.boolean().default(false),
});
const FireBody = z.object({ active: z.boolean() });
const FaultBody = z.object({ lane: z.string().max(32), code: z.number().int().min(0).max(255) });
const ObstructBody = z.object({ lane: z.string().max(32), active: z.boolean() });
const LaneBody = z.object({ lane: z.string().max(32) });

class RequestError extends Error {
  constructor(
    readonly status: number,
    readonly kind: string,
    message: string,
  ) {
    super(message);
  }
}

export function createDashboard(opts: DashboardOptions): Dashboard {
  const { lanes, sim } = opts;
  const prefix = (opts.prefix ?? '').replace(/\/+$/, '');
  const log = opts.log ?? silentLogger;
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
    sim: sim ? { kinds: CREDENTIAL_KINDS, issuers: QR_ISSUERS, stories: TAP_STORIES } : undefined,
  });

  const card = (i: number): LaneCard => {
    const lane = lanes[i];
    const { lastDecision: _omit, ...v } = lane.view();
    const dir = lane.config.lane.direction;
    const msg = v.display === 'idle' || !Object.hasOwn(REASONS, v.display) ? IDLE_MESSAGE : riderMessage(v.display as ReasonCode);
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

  const needSim = (): DashboardSim => {
    if (!sim) throw new RequestError(404, 'not-simulator', 'simulator controls are only available in simulator mode');
    return sim;
  };

  async function post(path: string, body: unknown): Promise<unknown> {
    let m: RegExpMatchArray | null;
    if ((m = path.match(/^\/api\/lanes\/([^/]+)\/mode$/))) {
      const i = laneIndex(decodeURIComponent(m[1]));
      const b = parse(ModeBody, body);
      log.info({ lane: lanes[i].id, event: 'supervisor', action: 'set-mode', mode: b.mode }, 'supervisor set mode');
      lanes[i].send({ type: 'SET_MODE', mode: b.mode });
      return { ok: true, lane: lanes[i].id, mode: lanes[i].view().mode };
    }
    if ((m = path.match(/^\/api\/lanes\/([^/]+)\/reset-emergency$/))) {
      const i = laneIndex(decodeURIComponent(m[1]));
      parse(ConfirmBody, body);
      log.info({ lane: lanes[i].id, event: 'supervisor', action: 'reset-emergency' }, 'supervisor reset emergency');
      lanes[i].send({ type: 'RESET_EMERGENCY' });
      return { ok: true, lane: lanes[i].id, mode: lanes[i].view().mode };
    }
    if (path === '/api/station/reset-emergency') {
      parse(ConfirmBody, body);
      log.info({ event: 'supervisor', action: 'reset-emergency', lanes: 'all' }, 'supervisor reset emergency on every lane');
      for (const l of lanes) l.send({ type: 'RESET_EMERGENCY' });
      return { ok: true };
    }
    if (path === '/api/sim/tap' || path === '/api/sim/tailgate') {
      const s = needSim();
      const tailgate = path === '/api/sim/tailgate';
      const b = tailgate ? { ...parse(LaneBody, body), kind: 'card' as const, story: 'green' as const, walk: true, tailgater: true, side: undefined, issuer: undefined, number: undefined } : parse(TapBody, body);
      const i = laneIndex(b.lane);
      const sides = card(i).sides;
      const side = b.side ?? sides[0];
      if (!sides.includes(side)) throw new RequestError(400, 'wrong-side', `lane ${b.lane} has no ${side} side (it serves ${sides.join(' and ')})`);
      const credential = b.number !== undefined && b.number.trim() !== '' ? typedCredential(b.kind, b.number.trim(), b.issuer) : undefined;
      const r = await s.tap({ laneIndex: i, side, kind: b.kind, issuer: b.issuer, credential, story: b.story, walk: b.walk, tailgater: b.tailgater });
      return { ok: true, lane: lanes[i].id, side, ref: r.ref };
    }
    if (path === '/api/sim/fire-alarm') {
      const s = needSim();
      const b = parse(FireBody, body);
      s.fireAlarm(b.active);
      return { ok: true };
    }
    if (path === '/api/sim/fault') {
      const s = needSim();
      const b = parse(FaultBody, body);
      s.barrierFault(laneIndex(b.lane), b.code);
      return { ok: true };
    }
    if (path === '/api/sim/obstruct') {
      const s = needSim();
      const b = parse(ObstructBody, body);
      s.obstruct(laneIndex(b.lane), b.active);
      return { ok: true };
    }
    throw new RequestError(404, 'not-found', `no such action: POST ${path}`);
  }

  function refuse(res: ServerResponse, e: RequestError) {
    refused[e.kind] = (refused[e.kind] ?? 0) + 1;
    log.warn({ event: 'dashboard-refused', kind: e.kind, err: e.message }, 'dashboard request refused');
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
    if (method === 'GET' || method === 'HEAD') {
      if (path === '/' || path === '/index.html') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:" });
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
        checkOrigin(req);
        const body = await readJson(req);
        json(res, 200, await post(path, body));
      } catch (e) {
        if (e instanceof RequestError) refuse(res, e);
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

/** A credential the supervisor typed; its shape is checked like any input from a reader. */
function typedCredential(kind: CredentialKind, number: string, issuer: QrIssuer | undefined): Credential {
  const c: Credential =
    kind === 'qr'
      ? { kind, issuer: issuer ?? 'yitongxing', account: number }
      : kind === 'ticket'
        ? { kind, ticketNumber: number.toUpperCase() }
        : { kind, cardNumber: number.replace(/\s+/g, '') };
  const check = checkCredential(c);
  if (!check.ok) throw new RequestError(400, 'bad-credential', `${check.field}: ${check.why}`);
  return c;
}

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (!r.success) {
    const first = r.error.issues[0];
    const where = first.path.length ? first.path.join('.') : 'body';
    const hint = where === 'confirmed' ? ' (this action needs an explicit confirmation)' : '';
    throw new RequestError(400, where === 'confirmed' ? 'not-confirmed' : 'bad-body', `${where}: ${first.message}${hint}`);
  }
  return r.data;
}

/**
 * Actions must come from the dashboard's own page: JSON only (a cross-site form cannot send it without a
 * preflight we never answer) and, when the browser says where it comes from, the same host.
 */
function checkOrigin(req: IncomingMessage): void {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') throw new RequestError(415, 'bad-content-type', 'actions take a JSON body (content-type: application/json)');
  const origin = req.headers.origin;
  if (origin && origin !== 'null') {
    let host: string;
    try {
      host = new URL(origin).host;
    } catch {
      throw new RequestError(403, 'bad-origin', `unreadable Origin header`);
    }
    if (host !== req.headers.host) throw new RequestError(403, 'bad-origin', `actions are only accepted from the dashboard's own page (origin ${host})`);
  }
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      // Over the limit: answer 413 and drop the rest as it arrives (cutting the socket would lose the answer).
      if (size > MAX_BODY) reject(new RequestError(413, 'too-large', `body over ${MAX_BODY} bytes`));
      else chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_BODY) return;
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return resolve({});
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new RequestError(400, 'bad-json', 'body is not valid JSON'));
      }
    });
    req.on('error', (e) => reject(new RequestError(400, 'bad-request', e.message)));
  });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
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

/** The dashboard on a server of its own. */
export async function startDashboardServer(opts: DashboardServerOptions): Promise<DashboardServer> {
  const dashboard = createDashboard(opts);
  const server = createServer((req, res) => {
    if (!dashboard.handle(req, res)) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('not found\n');
    }
  });
  const host = opts.host ?? '127.0.0.1';
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
