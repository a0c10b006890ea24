// The back office's HTTP face, on Fastify: the routes of openapi.yaml over a BackofficeStore, bearer
// tokens per role, and bounds on everything a caller controls — bodies only as application/json (the
// trust list also as application/octet-stream; 415 otherwise), a body size per route, strict query
// parameters (JSON schemas, no type coercion), paginated listings, a deadline for headers and for the
// whole request, a keep-alive timeout and a connection cap. A failure inside a handler answers a
// generic 500 and is logged; its text never reaches the caller.

import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Socket } from 'node:net';
import { createHash } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { FRESHNESS_HEADER, freshnessHeaderValue, nonceFromHex } from '../../protocol/lists/index.js';
import { ROUTE_ROLES, accessMap, tokenDigest, type AccessRole, type AccessToken } from './access.js';
import { DEFAULT_PAGE, MAX_PAGE, type BackofficeStore } from './store.js';
import { LINK_PAGE, REGISTER_PAGE, linkFromPage, registerFromPage, type PageAnswer } from './register-page.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Roles the route opens to (absent: open to all). */
    roles?: readonly AccessRole[];
    /** What the route's query parameters must be, for a 400's message. */
    queryHelp?: string;
  }
}

export interface HttpLimits {
  /** Largest body on POST /v1/transactions and POST /v1/status; other routes take 64 KiB, the trust list 1 MB. */
  bodyBytes: number;
  /** Headers and body must have arrived within this, or the caller gets 408 and the socket is closed. */
  requestTimeoutMs: number;
  /** Headers must have arrived within this (at most requestTimeoutMs). */
  headersTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** Connections open at once; one more is closed as it arrives (counted as droppedConnections). */
  maxConnections: number;
  /** Form submissions from the open rider pages (/register, /link) per client address per minute; more are answered 429. */
  pageSubmitsPerMinute: number;
}

export const DEFAULT_LIMITS: HttpLimits = { bodyBytes: 8 << 20, requestTimeoutMs: 30_000, headersTimeoutMs: 10_000, keepAliveTimeoutMs: 5_000, maxConnections: 512, pageSubmitsPerMinute: 30 };
const SMALL_BODY = 64 << 10;
const TRUST_LIST_BODY = 1_000_000;

export interface HttpOptions {
  tokens?: readonly AccessToken[];
  limits?: Partial<HttpLimits>;
  /** Where errors (and 500s' causes) are logged; default: warnings and errors as JSON lines on stderr. */
  log?: Logger;
  /** Serve https with this certificate chain and key (PEM). */
  tls?: { cert: string; key: string };
}

/** A decimal integer >= 0 (>= 1 with `positive`) of at most 15 digits, as the query string spells it: '' or '1e3' or '01' fail. */
const INT = { type: 'string', pattern: '^(0|[1-9][0-9]{0,14})$' };
const POSITIVE = { type: 'string', pattern: '^[1-9][0-9]{0,14}$' };
const LANE = { type: 'string', pattern: '^[A-Za-z0-9_-]{1,32}$' };
const NONCE = { type: 'string', pattern: '^[0-9a-f]{32}$' };
const FORMAT = { type: 'string', pattern: '^[12]$' };
const CURSOR = /^([A-Za-z0-9_-]{1,32})\.([1-9][0-9]{0,14})$/;
const query = (properties: Record<string, object>, required: string[] = []) => ({ type: 'object', properties, required });

type Result = { ok: boolean; http?: number };

export function buildHttp(store: BackofficeStore, opts: HttpOptions = {}): FastifyInstance {
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  limits.headersTimeoutMs = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  const access = opts.tokens ? accessMap(opts.tokens) : undefined;
  const callers = new WeakMap<FastifyRequest, AccessToken>();
  const c = store.counters;
  const nodeDeadlines = { headersTimeout: limits.headersTimeoutMs, requestTimeout: limits.requestTimeoutMs, connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))) };
  const app = Fastify({
    loggerInstance: (opts.log ?? pino({ level: 'warn', base: { service: 'backoffice' } }, pino.destination(2))) as FastifyBaseLogger,
    bodyLimit: SMALL_BODY,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionTimeout: limits.requestTimeoutMs,
    // Node checks the request and headers deadlines on this tick (30 s by default: too coarse for short deadlines).
    // (Fastify hands node:https only its `https` object: the same deadlines go in there too.)
    http: nodeDeadlines,
    ...(opts.tls ? { https: { ...nodeDeadlines, cert: opts.tls.cert, key: opts.tls.key } } : {}),
    forceCloseConnections: true,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false } },
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
      if (timeout) c.timeouts++;
      else c.badRequests++;
      const [status, body] = timeout
        ? ['408 Request Timeout', { error: 'timeout', message: `headers within ${limits.headersTimeoutMs} ms and the whole request within ${limits.requestTimeoutMs} ms` }]
        : ['400 Bad Request', { error: 'bad-request', message: 'malformed HTTP request' }];
      const text = JSON.stringify(body);
      if (socket.writable) socket.write(`HTTP/1.1 ${status}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
      socket.destroy();
    },
  });
  app.server.maxConnections = limits.maxConnections;
  app.server.on('drop', () => c.droppedConnections++);
  // Bodies are JSON (Fastify's parser, with prototype-poisoning checks); no text/plain, no forms.
  app.removeContentTypeParser('text/plain');

  app.addHook('onRequest', async (req, reply) => {
    c.requests++;
    const roles = req.routeOptions.config.roles;
    if (!access || !roles) return;
    // Who may call this route: 401 without a known token, 403 for a token of another role.
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    const caller = m ? access.get(tokenDigest(m[1])) : undefined;
    if (!caller) {
      c.refusedAccess++;
      return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'unauthorized', message: 'a bearer token is needed (Authorization: Bearer …)' });
    }
    if (!roles.includes(caller.role)) {
      c.refusedAccess++;
      return reply.code(403).send({ error: 'forbidden', message: `a ${caller.role} token may not call ${req.method} ${req.routeOptions.url}` });
    }
    callers.set(req, caller);
  });

  app.setNotFoundHandler((req, reply) => {
    c.badRequests++;
    reply.code(404).send({ error: 'not-found', message: `no route ${req.method} ${req.url.split('?')[0].slice(0, 200)}` });
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const client = (status: number, error: string, message: string) => {
      c.badRequests++;
      return reply.code(status).send({ error, message });
    };
    if (err.validation) return client(400, 'invalid-query', `${req.routeOptions.config.queryHelp ?? 'query'}: ${err.message}`);
    switch (err.code) {
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return client(415, 'unsupported-media-type', `this endpoint takes ${req.method === 'PUT' ? 'application/octet-stream or application/json' : 'application/json'} (Content-Type)`);
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return client(413, 'too-large', `body over ${req.routeOptions.bodyLimit} bytes`);
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return client(400, 'invalid-json', 'request body is not valid JSON');
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return client(400, 'invalid-length', 'Content-Length does not match the body');
    }
    if (err instanceof SyntaxError && err.statusCode === 400) return client(400, 'invalid-json', 'request body is not valid JSON');
    // Other 4xx from Fastify or the request stream (an aborted body): the caller's doing, told in general terms.
    if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
      return client(err.statusCode, 'bad-request', typeof err.code === 'string' && err.code.startsWith('FST_') ? err.message : 'bad request');
    }
    c.internalErrors++;
    req.log.error({ err, route: `${req.method} ${req.routeOptions.url}` }, 'back office: internal error');
    return reply.code(500).send({ error: 'internal', message: 'internal error (logged at the back office)' });
  });

  // A domain answer: { ok: true, ...body } with okStatus, or { ok: false, http, error, message }.
  const answer = (reply: FastifyReply, r: Result, okStatus = 200) => {
    if (!r.ok) c.badRequests++;
    const { ok: _ok, http, ...rest } = r;
    return reply.code(r.ok ? okStatus : (http ?? 400)).send(rest);
  };
  const route = (
    method: 'GET' | 'POST' | 'PUT',
    url: string,
    handler: (req: FastifyRequest, reply: FastifyReply) => unknown,
    extra: { bodyLimit?: number; query?: object; queryHelp?: string } = {},
    on: FastifyInstance = app,
  ) =>
    on.route({
      method,
      url,
      bodyLimit: extra.bodyLimit,
      schema: extra.query ? { querystring: extra.query } : undefined,
      config: { roles: ROUTE_ROLES[`${method} ${url}`], queryHelp: extra.queryHelp },
      handler: async (req, reply) => handler(req, reply),
    });
  const q = (req: FastifyRequest) => req.query as Record<string, string | undefined>;
  /** A page size: 1-MAX_PAGE, DEFAULT_PAGE when absent; undefined when out of range. */
  const limitOf = (s: string | undefined) => (s === undefined ? DEFAULT_PAGE : Number(s) <= MAX_PAGE ? Number(s) : undefined);
  const badLimit = (reply: FastifyReply) => {
    c.badRequests++;
    return reply.code(400).send({ error: 'invalid-query', message: `limit: 1-${MAX_PAGE} rows per page` });
  };

  route('GET', '/v1/health', () => ({ ok: true, version: store.latestVersion() }));
  route('POST', '/v1/registrations', (req, reply) => answer(reply, store.register(req.body), 201));
  route('POST', '/v1/qr-links', (req, reply) => {
    // An issuer's token links that issuer's accounts only.
    const caller = callers.get(req);
    if (caller?.issuer && (req.body as { issuer?: unknown } | null)?.issuer !== caller.issuer) {
      c.refusedAccess++;
      return reply.code(403).send({ error: 'forbidden', message: `this token links ${caller.issuer} accounts only` });
    }
    return answer(reply, store.linkQrAccount(req.body), 201);
  });
  route('POST', '/v1/status', (req, reply) => answer(reply, store.setStatus(req.body)), { bodyLimit: limits.bodyBytes });
  route('POST', '/v1/blocks', (req, reply) => answer(reply, store.setBlocked(req.body)));
  route('POST', '/v1/lists/publish', () => ({ version: store.publish() }));
  route('GET', '/v1/lists/latest', () => store.latest());
  route('GET', '/v1/lists/public-key', (_req, reply) => reply.type('application/x-pem-file').send(store.publicKeyPem));
  route('GET', '/v1/lists/snapshot', (_req, reply) => reply.type('application/octet-stream').send(Buffer.from(store.snapshot())));
  route(
    'GET',
    '/v1/lists/deltas',
    (req, reply) => {
      const since = Number(q(req).since);
      // Every answer, 204 and 410 too, carries the signed freshness statement for the gate's nonce: a gate
      // counts its list age from it, so an answer without one (a path that fakes "up to date") fails.
      reply.header(FRESHNESS_HEADER, freshnessHeaderValue(store.freshness(nonceFromHex(q(req).nonce), q(req).freshness === '2' ? 2 : 1)));
      const d = store.deltasSince(since, Math.min(Number(q(req).max ?? '100'), 1000));
      if (d === 'current') return reply.code(204).send();
      if (d === 'gone') return reply.code(410).send({ error: 'gone', message: 'deltas not held from that version; fetch the snapshot' });
      if (d === 'ahead') return reply.code(409).send({ error: 'ahead', message: `version ${since} is ahead of the back office` });
      return reply.type('application/octet-stream').send(Buffer.from(d));
    },
    { query: query({ since: INT, max: POSITIVE, nonce: NONCE, freshness: FORMAT }, ['since']), queryHelp: 'since: an integer >= 0 (the gate\'s list version); max: an integer >= 1 (at most 1000 are sent); nonce: 32 lowercase hex digits, echoed in the list-freshness statement; freshness: 1 or 2, the statement\'s format (2 also names the schedule and fare-table seqs)' },
  );
  route('GET', '/v1/issuer-keys', (req, reply) => {
    const doc = store.issuerKeys();
    if (!doc) return reply.code(404).send({ error: 'none', message: 'no issuer key list published' });
    const etag = `"${createHash('sha256').update(doc).digest('hex').slice(0, 32)}"`;
    if (req.headers['if-none-match'] === etag) return reply.code(304).header('etag', etag).send();
    return reply.header('etag', etag).type('application/octet-stream').send(doc);
  });
  route('GET', '/v1/fare-table', (req, reply) => {
    const doc = store.fareTable();
    if (!doc) return reply.code(404).send({ error: 'none', message: 'no fare table published' });
    // An ETag as for the schedule: every lane polls it with the lists, and a table is hundreds of kB.
    const etag = `"${createHash('sha256').update(doc).digest('hex').slice(0, 32)}"`;
    if (req.headers['if-none-match'] === etag) return reply.code(304).header('etag', etag).send();
    return reply.header('etag', etag).type('application/json').send(doc);
  });
  route('GET', '/v1/policy-schedule', (req, reply) => {
    const doc = store.policySchedule();
    if (!doc) return reply.code(404).send({ error: 'none', message: 'no enforcement schedule published' });
    const etag = `"${createHash('sha256').update(doc).digest('hex').slice(0, 32)}"`;
    if (req.headers['if-none-match'] === etag) return reply.code(304).header('etag', etag).send();
    return reply.header('etag', etag).type('application/json').send(doc);
  });
  route('POST', '/v1/policy-schedule', (req, reply) => answer(reply, store.putPolicySchedule(req.body), 201));
  // The trust list travels as the signed document's exact bytes: its own content-type parsers, in a context of its own.
  app.register(async (raw) => {
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser(['application/octet-stream', 'application/json'], { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    route('PUT', '/v1/issuer-keys', (req, reply) => answer(reply, store.putIssuerKeys(Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0))), { bodyLimit: TRUST_LIST_BODY }, raw);
  });
  route('POST', '/v1/transactions', (req, reply) => answer(reply, store.ingest(req.body)), { bodyLimit: limits.bodyBytes });
  route(
    'GET',
    '/v1/transactions',
    (req, reply) => {
      const { laneId, after } = q(req);
      const cursor = after === undefined ? undefined : CURSOR.exec(after);
      if (cursor === null || (cursor && laneId !== undefined && cursor[1] !== laneId)) {
        c.badRequests++;
        return reply.code(400).send({ error: 'invalid-query', message: 'after: the `next` cursor of the previous page (of the same laneId)' });
      }
      const limit = limitOf(q(req).limit);
      if (limit === undefined) return badLimit(reply);
      return store.transactionsPage({ laneId, after: cursor ? { laneId: cursor[1], seq: Number(cursor[2]) } : undefined, limit });
    },
    { query: query({ laneId: LANE, after: { type: 'string' }, limit: POSITIVE }), queryHelp: `laneId: a lane id; after: the previous page's next cursor; limit: 1-${MAX_PAGE}` },
  );
  route(
    'GET',
    '/v1/transactions/conflicts',
    (req, reply) => {
      const limit = limitOf(q(req).limit);
      if (limit === undefined) return badLimit(reply);
      return store.conflictsPage({ after: q(req).after === undefined ? undefined : Number(q(req).after), limit });
    },
    { query: query({ after: INT, limit: POSITIVE }), queryHelp: `after: the previous page's next cursor; limit: 1-${MAX_PAGE}` },
  );
  // The rider pages: open (no token), bodies JSON of at most 4 KiB, submissions rate-limited per client
  // address (a fixed one-minute window; at most 10,000 addresses tracked, the table restarts beyond).
  const submits = new Map<string, number>();
  let submitWindow = 0;
  const pageSubmit = (handle: (store: BackofficeStore, body: unknown) => PageAnswer) => (req: FastifyRequest, reply: FastifyReply) => {
    const minute = Math.floor(Date.now() / 60_000);
    if (minute !== submitWindow || submits.size >= 10_000) {
      submits.clear();
      submitWindow = minute;
    }
    const ip = req.ip ?? '?';
    const n = (submits.get(ip) ?? 0) + 1;
    submits.set(ip, n);
    if (n > limits.pageSubmitsPerMinute) {
      c.refusedAccess++;
      return reply.code(429).header('retry-after', '60').send({ error: 'too-many', field: '(form)', zh: '提交过于频繁，请一分钟后再试', en: 'too many submissions: please try again in a minute' });
    }
    const r = handle(store, req.body);
    if (r.status >= 400) c.badRequests++;
    return reply.code(r.status).header('cache-control', 'no-store').send(r.body);
  };
  const html = (p: { html: string; csp: string }) => (_req: FastifyRequest, reply: FastifyReply) =>
    reply.type('text/html; charset=utf-8').header('content-security-policy', p.csp).header('x-content-type-options', 'nosniff').header('cache-control', 'no-cache').send(p.html);
  route('GET', '/register', html(REGISTER_PAGE));
  route('POST', '/register/submit', pageSubmit(registerFromPage), { bodyLimit: 4096 });
  route('GET', '/link', html(LINK_PAGE));
  route('POST', '/link/submit', pageSubmit(linkFromPage), { bodyLimit: 4096 });
  return app;
}
