// Who may do what on the dashboard, and from where. Three modes:
// - read-only: the page and its live stream for anyone the Host allowlist lets in; every action refused;
// - supervisors: actions need a login (name + password checked against the supervisors file), which gives
//   an HttpOnly, SameSite=Strict session cookie of bounded lifetime (sessions bounded in number), and a
//   CSRF token the page sends with each action; failed logins are limited per source address;
// - loopback-demo (the simulator): no login, but only for requests over loopback, and the page says so.
// In every mode: the Host header must be allowlisted (a DNS-rebinding page has a foreign Host), and an
// action's Origin, when the browser sends one, must be the page's own (never "null").

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { z } from 'zod';
import type { Logger } from '../config/log.js';
import { parse, readJson, RequestError } from './requests.js';
import { PASSWORD_MAX, SUPERVISOR_NAME, type SupervisorDirectory } from './supervisors.js';

export type DashboardAccess =
  | { mode: 'read-only' }
  | { mode: 'loopback-demo' }
  | ({ mode: 'supervisors'; directory: SupervisorDirectory } & Partial<SessionLimits>);

export interface SessionLimits {
  sessionMs: number;
  maxSessions: number;
  /** Failed logins from one address within loginWindowMs before that address is refused until the window passes. */
  loginFailures: number;
  loginWindowMs: number;
}

export const DEFAULT_LIMITS: SessionLimits = { sessionMs: 4 * 3600_000, maxSessions: 16, loginFailures: 5, loginWindowMs: 300_000 };

/** Who acted, from where: written into the log and the journal with every action. */
export interface Actor {
  supervisor: string;
  remote: string;
}

/** Host names every dashboard answers to: loopback, as a browser on the box itself writes it. */
export const LOOPBACK_HOSTS = ['127.0.0.1', 'localhost', '[::1]'];

/** Split a Host header value into a lower-case name and its port ("" when absent); undefined when unreadable. */
export function splitHost(value: string | undefined): { name: string; port: string } | undefined {
  if (!value) return undefined;
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?$/.exec(value.trim().toLowerCase());
  return m ? { name: m[1], port: m[2] ?? '' } : undefined;
}

/** Allowlist entries are "name" (any port) or "name:port". */
export function hostAllowed(value: string | undefined, allowed: readonly string[]): boolean {
  const h = splitHost(value);
  if (!h) return false;
  return allowed.some((entry) => {
    const a = splitHost(entry);
    return a !== undefined && a.name === h.name && (a.port === '' || a.port === h.port);
  });
}

export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (a === '::1') return true;
  return isIP(a) === 4 && a.startsWith('127.');
}

/** The peer's address as the socket says (never a forwarded header: nothing here is behind a proxy). */
export function remoteOf(req: IncomingMessage): string {
  const a = req.socket.remoteAddress ?? 'unknown';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/**
 * Why an action's origin is refused, or undefined when it is fine: no Origin (not a browser, or an old
 * one) is let through to the session and CSRF checks; "null" (sandboxed frames, file: pages, some
 * redirects) and any origin other than the page's own host are refused, as is a browser saying cross-site.
 */
export function originProblem(req: IncomingMessage): string | undefined {
  const site = req.headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site') return `actions are only accepted from the dashboard's own page (Sec-Fetch-Site: ${site})`;
  const origin = req.headers.origin;
  if (origin === undefined) return undefined;
  if (origin === 'null') return 'actions are not accepted from an opaque origin (Origin: null)';
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return 'unreadable Origin header';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `actions are not accepted from ${url.protocol} pages`;
  if (url.host.toLowerCase() !== (req.headers.host ?? '').toLowerCase()) return `actions are only accepted from the dashboard's own page (origin ${url.host})`;
  return undefined;
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const k = part.slice(0, i).trim();
    if (!out.has(k)) out.set(k, part.slice(i + 1).trim());
  }
  return out;
}

const digest = (token: string) => createHash('sha256').update(token).digest('hex');
const sameSecret = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

export interface Session {
  supervisor: string;
  remote: string;
  createdMs: number;
  expiresAtMs: number;
  csrf: string;
}

/** Live sessions, by a digest of their cookie token (the token itself is kept nowhere). */
export class SessionStore {
  private readonly byDigest = new Map<string, Session>();
  constructor(
    private readonly limits: SessionLimits,
    private readonly now: () => number,
  ) {}

  get size(): number {
    this.sweep();
    return this.byDigest.size;
  }

  /** A new session; beyond maxSessions the oldest one ends (returned, for the log). */
  create(supervisor: string, remote: string): { token: string; session: Session; evicted?: Session } {
    this.sweep();
    let evicted: Session | undefined;
    if (this.byDigest.size >= this.limits.maxSessions) {
      const [oldest, s] = this.byDigest.entries().next().value as [string, Session];
      this.byDigest.delete(oldest);
      evicted = s;
    }
    const token = randomBytes(32).toString('base64url');
    const t = this.now();
    const session: Session = { supervisor, remote, createdMs: t, expiresAtMs: t + this.limits.sessionMs, csrf: randomBytes(32).toString('base64url') };
    this.byDigest.set(digest(token), session);
    return { token, session, evicted };
  }

  get(token: string | undefined): Session | undefined {
    if (!token || token.length > 128) return undefined;
    const s = this.byDigest.get(digest(token));
    if (!s) return undefined;
    if (s.expiresAtMs <= this.now()) {
      this.byDigest.delete(digest(token));
      return undefined;
    }
    return s;
  }

  end(token: string | undefined): void {
    if (token) this.byDigest.delete(digest(token));
  }

  /** End every session of a supervisor no longer in the file. */
  endFor(supervisor: string): void {
    for (const [k, s] of this.byDigest) if (s.supervisor === supervisor) this.byDigest.delete(k);
  }

  csrfMatches(s: Session, header: string | string[] | undefined): boolean {
    return typeof header === 'string' && sameSecret(s.csrf, header);
  }

  private sweep(): void {
    const t = this.now();
    for (const [k, s] of this.byDigest) if (s.expiresAtMs <= t) this.byDigest.delete(k);
  }
}

/**
 * Failed logins per source address in a fixed window (a success does not reset it: one known password must
 * not buy more guesses at another's); the table is bounded (oldest sources forgotten first).
 */
export class LoginLimiter {
  private readonly bySource = new Map<string, { windowStartMs: number; failures: number }>();
  constructor(
    private readonly limits: Pick<SessionLimits, 'loginFailures' | 'loginWindowMs'>,
    private readonly now: () => number,
    private readonly maxSources = 4096,
  ) {}

  /** Milliseconds until this source may try again, or 0 when it may now. */
  blockedForMs(source: string): number {
    const e = this.bySource.get(source);
    if (!e) return 0;
    const left = e.windowStartMs + this.limits.loginWindowMs - this.now();
    if (left <= 0) {
      this.bySource.delete(source);
      return 0;
    }
    return e.failures >= this.limits.loginFailures ? left : 0;
  }

  failed(source: string): void {
    const t = this.now();
    const e = this.bySource.get(source);
    if (e && e.windowStartMs + this.limits.loginWindowMs > t) {
      e.failures++;
      return;
    }
    this.bySource.delete(source);
    if (this.bySource.size >= this.maxSources) this.bySource.delete(this.bySource.keys().next().value as string);
    this.bySource.set(source, { windowStartMs: t, failures: 1 });
  }
}

const LoginBody = z.object({ name: z.string().min(1).max(64), password: z.string().min(1).max(PASSWORD_MAX) });
/** The session cookie; its Path is the dashboard's prefix. */
const COOKIE = 'gate_session';
/** scrypt checks running at once; more logins than that are answered 503, so logins cannot eat the box's cores. */
const MAX_VERIFYING = 2;

export interface GatekeeperOptions {
  access: DashboardAccess;
  /** The dashboard's mount point ("" or "/dashboard"): the cookie's Path. */
  prefix: string;
  /** Host header values answered besides loopback. */
  allowedHosts?: readonly string[];
  now: () => number;
  log: Logger;
}

/** The per-request checks of one dashboard, in the order handle() runs them. */
export interface Gatekeeper {
  /** Throws bad-host (403) unless the Host header is allowlisted. Every dashboard request, reads too. */
  checkHost(req: IncomingMessage): void;
  /** Throws bad-origin (403) for a foreign or opaque Origin. Every action, the login too. */
  checkOrigin(req: IncomingMessage): void;
  /** What the page needs: the access mode, whether it may act, and (logged in) who and the CSRF token. */
  sessionInfo(req: IncomingMessage): Record<string, unknown>;
  /** POST /api/login: a session cookie on `res` and the CSRF token, or 401 / 429 / 503. */
  login(req: IncomingMessage, res: ServerResponse): Promise<unknown>;
  /** Who asks for an action, or why they may not (control-disabled, not-loopback, no-session, bad-csrf). */
  authorize(req: IncomingMessage): Promise<Actor>;
  /** POST /api/logout (after authorize): ends the session and clears the cookie. */
  logout(req: IncomingMessage, res: ServerResponse, actor: Actor): void;
  readonly sessions: number;
}

export function createGatekeeper(o: GatekeeperOptions): Gatekeeper {
  const { access, log, now } = o;
  const allowedHosts = [...LOOPBACK_HOSTS, ...(o.allowedHosts ?? [])];
  const limits: SessionLimits = { ...DEFAULT_LIMITS };
  if (access.mode === 'supervisors') {
    for (const k of Object.keys(DEFAULT_LIMITS) as (keyof SessionLimits)[]) if (access[k] !== undefined) limits[k] = access[k];
  }
  const sessions = new SessionStore(limits, now);
  const limiter = new LoginLimiter(limits, now);
  let verifying = 0;

  const sessionOf = (req: IncomingMessage) => {
    const token = parseCookies(req.headers.cookie).get(COOKIE);
    return { token, session: sessions.get(token) };
  };
  const cookie = (req: IncomingMessage, token: string, maxAgeSeconds: number) => {
    const secure = (req.socket as { encrypted?: boolean }).encrypted ? '; Secure' : '';
    return `${COOKIE}=${token}; Path=${o.prefix || '/'}; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure}`;
  };

  return {
    checkHost(req) {
      // DNS rebinding: a page on a foreign name that resolves to this box still sends its own name as Host.
      if (!hostAllowed(req.headers.host, allowedHosts)) {
        const host = (req.headers.host ?? '(none)').slice(0, 100);
        throw new RequestError(403, 'bad-host', `Host ${host} is not one this dashboard answers to (dashboard.allowedHosts)`);
      }
    },
    checkOrigin(req) {
      const problem = originProblem(req);
      if (problem) throw new RequestError(403, 'bad-origin', problem);
    },
    sessionInfo(req) {
      if (access.mode === 'loopback-demo') return { access: access.mode, control: isLoopbackAddress(req.socket.remoteAddress) };
      if (access.mode === 'read-only') return { access: access.mode, control: false };
      const { session } = sessionOf(req);
      return session ? { access: access.mode, control: true, supervisor: session.supervisor, csrf: session.csrf, expiresAtMs: session.expiresAtMs } : { access: access.mode, control: false };
    },
    async login(req, res) {
      if (access.mode !== 'supervisors') {
        throw access.mode === 'read-only'
          ? new RequestError(403, 'control-disabled', 'this dashboard is read-only: set dashboard.control in the lane config to let supervisors log in')
          : new RequestError(400, 'no-login', 'this demo dashboard has no login (it takes actions from loopback only)');
      }
      const remote = remoteOf(req);
      const waitMs = limiter.blockedForMs(remote);
      if (waitMs > 0) {
        const seconds = Math.ceil(waitMs / 1000);
        throw new RequestError(429, 'too-many-attempts', `too many failed logins from ${remote}; try again in ${seconds} s`, { 'retry-after': String(seconds) });
      }
      const b = parse(LoginBody, await readJson(req));
      if (verifying >= MAX_VERIFYING) throw new RequestError(503, 'busy', 'other logins are being checked; try again in a moment', { 'retry-after': '1' });
      verifying++;
      let ok: boolean;
      try {
        ok = await access.directory.verify(b.name, b.password);
      } finally {
        verifying--;
      }
      if (!ok) {
        limiter.failed(remote);
        // The name as typed only when it is shaped like one (a password typed into the name field stays out of the log).
        log.warn({ event: 'supervisor-login-failed', supervisor: SUPERVISOR_NAME.test(b.name) ? b.name : '(not a name)', remote }, `failed supervisor login from ${remote}`);
        throw new RequestError(401, 'bad-login', 'wrong name or password');
      }
      const { token, session, evicted } = sessions.create(b.name, remote);
      if (evicted) log.info({ event: 'supervisor-session-evicted', supervisor: evicted.supervisor, remote: evicted.remote }, 'oldest supervisor session ended (session limit)');
      log.info({ event: 'supervisor-login', supervisor: b.name, remote }, `supervisor ${b.name} logged in from ${remote}`);
      res.setHeader('set-cookie', cookie(req, token, Math.floor(limits.sessionMs / 1000)));
      return { ok: true, supervisor: session.supervisor, csrf: session.csrf, expiresAtMs: session.expiresAtMs };
    },
    async authorize(req) {
      const remote = remoteOf(req);
      if (access.mode === 'read-only') throw new RequestError(403, 'control-disabled', 'this dashboard is read-only: set dashboard.control in the lane config to enable supervisor actions');
      if (access.mode === 'loopback-demo') {
        if (!isLoopbackAddress(req.socket.remoteAddress)) throw new RequestError(403, 'not-loopback', 'the demo dashboard takes actions from this machine (loopback) only');
        return { supervisor: 'demo (no login)', remote };
      }
      const { session } = sessionOf(req);
      if (!session) throw new RequestError(401, 'no-session', 'log in first: supervisor actions need a login');
      if (!(await access.directory.has(session.supervisor))) {
        sessions.endFor(session.supervisor);
        throw new RequestError(401, 'no-session', `supervisor ${session.supervisor} is no longer in the supervisors file`);
      }
      if (!sessions.csrfMatches(session, req.headers['x-csrf-token'])) throw new RequestError(403, 'bad-csrf', 'missing or wrong CSRF token (x-csrf-token): reload the page');
      return { supervisor: session.supervisor, remote };
    },
    logout(req, res, actor) {
      const { token, session } = sessionOf(req);
      sessions.end(token);
      if (session) log.info({ event: 'supervisor-logout', supervisor: session.supervisor, remote: actor.remote }, `supervisor ${session.supervisor} logged out`);
      res.setHeader('set-cookie', cookie(req, '', 0));
    },
    get sessions() {
      return sessions.size;
    },
  };
}
