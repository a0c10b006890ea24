// `gate station`: the station view. One page for every lane of a station, fed from the station broker
// (retained birth/death and state, alarms, decision counts, command results), for supervisors who log in;
// every action they take leaves as a command signed with their own key, naming them, expiring, and is
// answered by the lane on its result topic. The view holds no lane state of its own beyond what the bus said.

import { randomBytes, scryptSync, timingSafeEqual, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import {
  COMMAND_MODES,
  FARE_MODES,
  NODE_ID,
  STATION_LEVEL,
  decodeAlarm,
  decodeLaneState,
  decodeOnline,
  decodeResult,
  decodeStats,
  encodeCommand,
  fareModeSet,
  laneTopic,
  parseTopic,
  signCommand,
  stationCommandTopic,
  supervisorPrivateKey,
  viewSubscriptions,
  type Command,
  type CommandAction,
} from '../../protocol/station-bus.js';
import { ConfigError, parseDriverConfig } from '../config/config.js';
import { silentLogger, type Logger } from '../config/log.js';
import { BusClient, type BusClientOptions } from './bus.js';
import { viewUsername } from './broker-config.js';
import { stationViewPage } from './view-page.js';

// --- Supervisor passwords (scrypt) ----------------------------------------------------------------

/** `scrypt$<N>$<salt b64>$<hash b64>`: what the view config keeps per supervisor. */
export function hashSupervisorPassword(password: string, salt = randomBytes(16), N = 16_384): string {
  return `scrypt$${N}$${salt.toString('base64')}$${scryptSync(password, salt, 32, { N }).toString('base64')}`;
}
export function supervisorPasswordOk(hash: string, password: string): boolean {
  const m = hash.match(/^scrypt\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/);
  if (!m) return false;
  const want = Buffer.from(m[3], 'base64');
  const got = scryptSync(password, Buffer.from(m[2], 'base64'), want.length, { N: Number(m[1]) });
  return timingSafeEqual(want, got);
}

// --- Config ----------------------------------------------------------------------------------------

export const stationViewConfigSchema = z
  .object({
    station: z.string().regex(NODE_ID),
    broker: z.string().regex(/^mqtts?:\/\/[^/\s]+$/),
    ca: z.string().min(1).optional(),
    username: z.string().min(1).optional(),
    passwordFile: z.string().min(1),
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8090),
    commandTtlSeconds: z.number().int().min(5).max(600).default(60),
    sessionHours: z.number().min(0.1).max(24).default(8),
    supervisors: z.record(z.string().regex(NODE_ID), z.object({ password: z.string().startsWith('scrypt$'), keyFile: z.string().min(1), name: z.string().max(64).optional() }).strict()),
  })
  .strict();
export type StationViewConfig = z.infer<typeof stationViewConfigSchema>;

export interface ViewSupervisor {
  passwordHash: string;
  key: KeyObject;
  name?: string;
}

export interface StationViewOptions {
  station: string;
  bus: Pick<BusClientOptions, 'url' | 'ca' | 'username' | 'password'>;
  supervisors: Map<string, ViewSupervisor>;
  host?: string;
  port?: number;
  commandTtlMs?: number;
  sessionMs?: number;
  log?: Logger;
  now?: () => number;
}

export function stationViewOptions(raw: unknown): StationViewOptions {
  const c = parseDriverConfig(stationViewConfigSchema, raw, 'station view config');
  const read = (f: string, what: string) => {
    try {
      return readFileSync(f, 'utf8');
    } catch (e) {
      throw new ConfigError(`${what}: cannot read ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  const supervisors = new Map<string, ViewSupervisor>();
  for (const [id, s] of Object.entries(c.supervisors)) {
    let key: KeyObject;
    try {
      key = supervisorPrivateKey(read(s.keyFile, `supervisors.${id}.keyFile`));
    } catch (e) {
      throw new ConfigError(`supervisors.${id}.keyFile: ${(e as Error).message}`);
    }
    supervisors.set(id, { passwordHash: s.password, key, name: s.name });
  }
  return {
    station: c.station,
    bus: { url: c.broker, ca: c.ca ? read(c.ca, 'ca') : undefined, username: c.username ?? viewUsername(c.station), password: read(c.passwordFile, 'passwordFile').split('\n')[0].trim() },
    supervisors,
    host: c.host,
    port: c.port,
    commandTtlMs: c.commandTtlSeconds * 1000,
    sessionMs: c.sessionHours * 3_600_000,
  };
}

// --- The view --------------------------------------------------------------------------------------

interface LaneRow {
  id: string;
  online?: boolean;
  onlineAtMs?: number;
  cause?: string;
  state?: unknown;
  stats?: unknown;
}
interface Event {
  seq: number;
  kind: 'alarm' | 'result' | 'sent' | 'online';
  lane: string;
  atMs: number;
  text: string;
  ok?: boolean;
  id?: string;
}

export interface StationView {
  url: string;
  port: number;
  server: Server;
  bus: BusClient;
  /** Refused requests by kind (login failures, unauthenticated actions...). */
  refused: Record<string, number>;
  close(): Promise<void>;
}

const ModeBody = z.object({ mode: z.enum(COMMAND_MODES), confirmed: z.literal(true) });
const Confirm = z.object({ confirmed: z.literal(true) });
const EmergencyBody = z.object({ active: z.boolean(), confirmed: z.literal(true) });
/** The whole set of fare modes to be in force (`[]`: normal), in any order. */
const FareModesBody = z.object({ modes: z.array(z.enum(FARE_MODES)).max(FARE_MODES.length), confirmed: z.literal(true) });
const LoginBody = z.object({ user: z.string().max(64), password: z.string().max(256) });

class HttpError extends Error {
  constructor(readonly status: number, readonly kind: string, message: string) {
    super(message);
  }
}

export async function startStationView(o: StationViewOptions): Promise<StationView> {
  const log = o.log ?? silentLogger;
  const now = o.now ?? Date.now;
  const S = o.station;
  const lanes = new Map<string, LaneRow>();
  const events: Event[] = [];
  const sessions = new Map<string, { user: string; untilMs: number }>();
  const failures = new Map<string, { count: number; sinceMs: number }>();
  const clients = new Set<ServerResponse>();
  const refused: Record<string, number> = {};
  let seq = 0;

  const push = (e: Omit<Event, 'seq'>) => {
    const ev = { ...e, seq: ++seq };
    events.push(ev);
    if (events.length > 200) events.shift();
    send('event', ev);
  };
  const send = (name: string, data: unknown) => {
    const chunk = `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const r of clients) {
      if (r.writableLength > 1 << 20) {
        clients.delete(r);
        r.destroy();
      } else r.write(chunk);
    }
  };
  const row = (id: string) => {
    let r = lanes.get(id);
    if (!r) {
      if (lanes.size >= 256) return undefined;
      lanes.set(id, (r = { id }));
    }
    return r;
  };

  const bus = new BusClient({
    url: o.bus.url,
    ca: o.bus.ca,
    username: o.bus.username,
    password: o.bus.password,
    clientId: `${o.bus.username}-${randomBytes(4).toString('hex')}`,
    keepaliveSeconds: 10,
    sessionExpirySeconds: 0,
    clean: true,
    reconnectMs: 1000,
    subscriptions: viewSubscriptions(S),
    log: log.child({ part: 'station-view-bus' }),
  });
  bus.on('connect', () => send('bus', { up: true }));
  bus.on('down', (why) => send('bus', { up: false, why }));
  bus.on('message', (topic, payload) => {
    const t = parseTopic(topic);
    if (!t || t.station !== S || t.lane === STATION_LEVEL) return;
    const r = row(t.lane);
    if (!r) return;
    switch (t.leaf) {
      case 'online': {
        const d = decodeOnline(payload);
        if (!d.ok) return;
        r.online = d.value.online;
        r.onlineAtMs = d.value.atMs;
        r.cause = d.value.cause;
        push({ kind: 'online', lane: t.lane, atMs: now(), text: d.value.online ? 'born (online)' : `death (${d.value.cause ?? 'lost'})`, ok: d.value.online });
        break;
      }
      case 'state': {
        const d = decodeLaneState(payload);
        if (d.ok) r.state = d.value;
        break;
      }
      case 'stats': {
        const d = decodeStats(payload);
        if (d.ok) r.stats = d.value;
        break;
      }
      case 'alarm': {
        const d = decodeAlarm(payload);
        if (d.ok) push({ kind: 'alarm', lane: t.lane, atMs: d.value.atMs, text: d.value.detail ? `${d.value.alarm} (${d.value.detail})` : d.value.alarm });
        break;
      }
      case 'result': {
        const d = decodeResult(payload);
        if (d.ok) push({ kind: 'result', lane: t.lane, atMs: d.value.atMs, id: d.value.id, ok: d.value.ok, text: `${d.value.action} by ${d.value.by}: ${d.value.ok ? 'done' : `refused (${d.value.refusal})`}${d.value.detail ? ` — ${d.value.detail}` : ''}; mode ${d.value.mode}` });
        break;
      }
      default:
        return;
    }
    send('lane', r);
  });
  bus.start();

  const page = stationViewPage({ station: S, modes: COMMAND_MODES, fareModes: FARE_MODES });

  function issue(user: string, lane: string, action: CommandAction, args: Command['args']): { id: string } {
    const sup = o.supervisors.get(user);
    if (!sup) throw new HttpError(403, 'no-key', `${user} has no signing key here`);
    const t = now();
    const c: Command = { id: randomBytes(16).toString('hex'), station: S, lane, action, args, by: user, issuedAtMs: t, expiresAtMs: t + (o.commandTtlMs ?? 60_000) };
    const topic = lane === STATION_LEVEL ? stationCommandTopic(S) : laneTopic(S, lane, 'cmd');
    if (!bus.publish(topic, encodeCommand(signCommand(c, sup.key)), { qos: 1, expirySeconds: (c.expiresAtMs - t) / 1000 })) {
      throw new HttpError(503, 'bus-down', 'the station broker is not reachable: nothing was sent');
    }
    log.info({ event: 'command-sent', by: user, id: c.id, lane, action, args }, 'supervisor command sent');
    push({ kind: 'sent', lane, atMs: t, id: c.id, text: `${action}${args.mode ? ` ${args.mode}` : ''}${args.active !== undefined ? ` ${args.active ? 'on' : 'off'}` : ''}${args.fareModes ? ` ${args.fareModes.join(', ') || 'normal'}` : ''} sent by ${user}` });
    return { id: c.id };
  }

  const who = (req: IncomingMessage): string | undefined => {
    const m = (req.headers.cookie ?? '').match(/(?:^|;\s*)gate_session=([0-9a-f]{64})/);
    const s = m ? sessions.get(m[1]) : undefined;
    if (!s || s.untilMs < now()) return undefined;
    return s.user;
  };
  const laneId = (id: string) => {
    const d = decodeURIComponent(id);
    if (!NODE_ID.test(d) || d === STATION_LEVEL) throw new HttpError(404, 'unknown-lane', `no lane "${d}"`);
    return d;
  };

  async function post(req: IncomingMessage, res: ServerResponse, path: string, body: unknown): Promise<unknown> {
    if (path === '/api/login') {
      const b = parse(LoginBody, body);
      const t = now();
      // Five wrong passwords a minute for a user name, then it waits (a guessing script gets 5 a minute).
      const f = failures.get(b.user);
      if (f && f.count >= 5 && t - f.sinceMs < 60_000) throw new HttpError(429, 'login-throttled', 'too many wrong passwords: wait a minute');
      const sup = o.supervisors.get(b.user);
      if (!sup || !supervisorPasswordOk(sup.passwordHash, b.password)) {
        if (!f || t - f.sinceMs >= 60_000) failures.set(b.user.slice(0, 64), { count: 1, sinceMs: t });
        else f.count++;
        if (failures.size > 1000) failures.clear();
        log.warn({ event: 'login-refused', user: b.user.slice(0, 64) }, 'station view login refused');
        throw new HttpError(401, 'bad-login', 'wrong user or password');
      }
      failures.delete(b.user);
      for (const [k, s] of sessions) if (s.untilMs < t) sessions.delete(k);
      if (sessions.size >= 1000) throw new HttpError(503, 'too-many-sessions', 'too many open sessions: log out elsewhere first');
      const token = randomBytes(32).toString('hex');
      sessions.set(token, { user: b.user, untilMs: now() + (o.sessionMs ?? 8 * 3_600_000) });
      res.setHeader('set-cookie', `gate_session=${token}; HttpOnly; SameSite=Strict; Path=/`);
      log.info({ event: 'login', user: b.user }, 'supervisor logged in');
      return { ok: true, user: b.user, name: sup.name ?? b.user };
    }
    const user = who(req);
    if (!user) throw new HttpError(401, 'not-logged-in', 'log in first');
    if (path === '/api/logout') {
      for (const [k, s] of sessions) if (s.user === user) sessions.delete(k);
      return { ok: true };
    }
    let m: RegExpMatchArray | null;
    if ((m = path.match(/^\/api\/lanes\/([^/]+)\/mode$/))) return issue(user, laneId(m[1]), 'set-mode', { mode: parse(ModeBody, body).mode });
    if ((m = path.match(/^\/api\/lanes\/([^/]+)\/reset-emergency$/))) return (parse(Confirm, body), issue(user, laneId(m[1]), 'reset-emergency', {}));
    if ((m = path.match(/^\/api\/lanes\/([^/]+)\/reload$/))) return (parse(Confirm, body), issue(user, laneId(m[1]), 'reload', {}));
    if ((m = path.match(/^\/api\/lanes\/([^/]+)\/fare-modes$/))) return issue(user, laneId(m[1]), 'fare-mode', { fareModes: fareModeSet(parse(FareModesBody, body).modes) });
    if (path === '/api/station/fare-modes') return issue(user, STATION_LEVEL, 'fare-mode', { fareModes: fareModeSet(parse(FareModesBody, body).modes) });
    if (path === '/api/station/emergency') return issue(user, STATION_LEVEL, 'station-emergency', { active: parse(EmergencyBody, body).active });
    if (path === '/api/station/reset-emergency') {
      parse(Confirm, body);
      return { ok: true, ids: [...lanes.keys()].sort().map((l) => issue(user, l, 'reset-emergency', {}).id) };
    }
    throw new HttpError(404, 'not-found', `no such action: POST ${path}`);
  }

  const state = (user?: string) => ({ station: S, user, bus: bus.connected, lanes: [...lanes.values()].sort((a, b) => a.id.localeCompare(b.id)), events });

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://view.invalid');
    const path = url.pathname;
    const fail = (e: HttpError) => {
      refused[e.kind] = (refused[e.kind] ?? 0) + 1;
      json(res, e.status, { error: { kind: e.kind, message: e.message } });
    };
    if (req.method === 'GET' && (path === '/' || path === '/index.html')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'" });
      res.end(page);
      return;
    }
    if (req.method === 'GET' && path === '/api/state') {
      const u = who(req);
      if (!u) return fail(new HttpError(401, 'not-logged-in', 'log in first'));
      return json(res, 200, state(u));
    }
    if (req.method === 'GET' && path === '/events') {
      const u = who(req);
      if (!u) return fail(new HttpError(401, 'not-logged-in', 'log in first'));
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write(`retry: 1000\nevent: hello\ndata: ${JSON.stringify(state(u))}\n\n`);
      clients.add(res);
      req.on('close', () => clients.delete(res));
      return;
    }
    if (req.method !== 'POST' || !path.startsWith('/api/')) return fail(new HttpError(404, 'not-found', `no such page: ${req.method} ${path}`));
    void (async () => {
      try {
        sameOrigin(req);
        json(res, 200, await post(req, res, path, await readJson(req)));
      } catch (e) {
        if (e instanceof HttpError) fail(e);
        else fail(new HttpError(500, 'internal', (e as Error).message));
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => (server.off('error', reject), resolve()));
  });
  const port = (server.address() as AddressInfo).port;
  const keepAlive = setInterval(() => {
    for (const r of clients) r.write(': keep-alive\n\n');
  }, 15_000);
  keepAlive.unref();
  return {
    url: `http://${o.host && o.host !== '0.0.0.0' ? o.host : '127.0.0.1'}:${port}/`,
    port,
    server,
    bus,
    refused,
    close: async () => {
      clearInterval(keepAlive);
      for (const r of clients) r.end();
      clients.clear();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await bus.end();
    },
  };
}

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (!r.success) {
    const i = r.error.issues[0];
    const where = i.path.join('.') || 'body';
    throw new HttpError(400, where === 'confirmed' ? 'not-confirmed' : 'bad-body', `${where}: ${i.message}`);
  }
  return r.data;
}

/** JSON bodies only, from the view's own page (no cross-site form can send them). */
function sameOrigin(req: IncomingMessage): void {
  if ((req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase() !== 'application/json') throw new HttpError(415, 'bad-content-type', 'actions take a JSON body');
  const origin = req.headers.origin;
  if (origin && origin !== 'null') {
    let host = '';
    try {
      host = new URL(origin).host;
    } catch {
      /* unreadable: refused below */
    }
    if (host !== req.headers.host) throw new HttpError(403, 'bad-origin', 'actions are only accepted from the view page itself');
  }
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 16_384) reject(new HttpError(413, 'too-large', 'body over 16 kB'));
      else chunks.push(c);
    });
    req.on('end', () => {
      if (size > 16_384) return;
      const t = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(t.trim() ? JSON.parse(t) : {});
      } catch {
        reject(new HttpError(400, 'bad-json', 'body is not valid JSON'));
      }
    });
  });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}
