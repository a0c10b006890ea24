// The back office the gates talk to: rider registration, QR account links, the health-status feed and
// blocking, signed list publishing (snapshot + deltas per version), the signed issuer trust list, and
// idempotent transaction ingest. A real HTTP server over a real SQLite database; the reference for an
// operator's own implementation (openapi.yaml beside this file). Imports only protocol/.

import Database from 'better-sqlite3';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { QR_ISSUERS, type QrIssuer } from '../../protocol/credential.js';
import { ListBuilder, classifyKey, encodeDelta, signList, statusByte, type ListChange, type ListStatus } from '../../protocol/lists/index.js';
import { checkRegistration, type RegistrationError } from './validate.js';

export interface BackofficeOptions {
  /** SQLite file (':memory:' for a throwaway one). */
  db: string;
  /** Ed25519 private key (PEM) that signs lists; generated and kept in the database when absent. */
  signingKeyPem?: string;
  /** Publish pending changes as a new list version this often (0: only on POST /v1/lists/publish). */
  publishIntervalMs?: number;
  /** Deltas kept for catch-up; a gate further behind gets the snapshot. */
  keepDeltas?: number;
  /** Status given to a new registration until the status feed says otherwise. */
  initialStatus?: ListStatus;
  /**
   * Bearer tokens and what each may do. Absent: every endpoint is open (a simulator, CI, a bench on
   * one machine). `gate backoffice` refuses to listen beyond loopback without them.
   */
  tokens?: readonly AccessToken[];
  now?: () => number;
}

/** Who calls the back office, and so which endpoints a token opens. */
export type AccessRole = 'gate' | 'registration' | 'issuer' | 'status-feed' | 'admin';
export interface AccessToken {
  token: string;
  role: AccessRole;
  /** For an issuer token: the only issuer whose accounts it may link. */
  issuer?: string;
}

/** The roles allowed on each route (GET /v1/health and the list public key are open to all). */
const ROUTE_ROLES: Record<string, readonly AccessRole[]> = {
  'POST /v1/registrations': ['registration', 'admin'],
  'POST /v1/qr-links': ['issuer', 'admin'],
  'POST /v1/status': ['status-feed', 'admin'],
  'POST /v1/blocks': ['status-feed', 'admin'],
  'POST /v1/lists/publish': ['admin'],
  'GET /v1/lists/latest': ['gate', 'admin'],
  'GET /v1/lists/snapshot': ['gate', 'admin'],
  'GET /v1/lists/deltas': ['gate', 'admin'],
  'GET /v1/issuer-keys': ['gate', 'admin'],
  'PUT /v1/issuer-keys': ['admin'],
  'POST /v1/transactions': ['gate', 'admin'],
  'GET /v1/transactions': ['admin'],
};
const OPEN_ROUTES = new Set(['GET /v1/health', 'GET /v1/lists/public-key']);
const ROLES: readonly AccessRole[] = ['gate', 'registration', 'issuer', 'status-feed', 'admin'];

/** Read and check a token file: a JSON array of { token, role, issuer? }. */
export function parseAccessTokens(text: string): AccessToken[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Error('tokens: not JSON');
  }
  if (!Array.isArray(v) || v.length === 0) throw new Error('tokens: expected a non-empty JSON array of { "token", "role", "issuer"? }');
  return v.map((t, i) => {
    const e = t as Partial<AccessToken>;
    if (typeof e.token !== 'string' || e.token.length < 16) throw new Error(`tokens[${i}].token: at least 16 characters`);
    if (!ROLES.includes(e.role as AccessRole)) throw new Error(`tokens[${i}].role: one of ${ROLES.join(', ')}`);
    if (e.issuer !== undefined && (e.role !== 'issuer' || !(QR_ISSUERS as readonly string[]).includes(e.issuer))) throw new Error(`tokens[${i}].issuer: a known issuer, on an issuer token`);
    return { token: e.token, role: e.role as AccessRole, issuer: e.issuer };
  });
}

const tokenDigest = (t: string) => createHash('sha256').update(t).digest('hex');

const STATUSES: readonly string[] = ['green', 'yellow', 'red'];
const MAX_BODY = 8 << 20;

export class Backoffice {
  readonly db: Database.Database;
  private readonly key: KeyObject;
  readonly publicKeyPem: string;
  private readonly now: () => number;
  private readonly o: Required<Omit<BackofficeOptions, 'signingKeyPem' | 'now' | 'tokens'>>;
  private snapshotCache: { version: number; bytes: Uint8Array } | undefined;
  private server: Server | undefined;
  private publishTimer: NodeJS.Timeout | undefined;
  /** SHA-256 of each token → what it may do (looked up by digest: no token compared byte by byte). */
  private readonly access: Map<string, AccessToken> | undefined;
  readonly counters = { requests: 0, badRequests: 0, registrations: 0, transactions: 0, duplicateTransactions: 0, published: 0, refusedAccess: 0 };

  constructor(opts: BackofficeOptions) {
    const { tokens, ...rest } = opts;
    this.o = { publishIntervalMs: 0, keepDeltas: 1000, initialStatus: 'green', ...rest };
    this.access = tokens ? new Map(tokens.map((t) => [tokenDigest(t.token), t])) : undefined;
    this.now = opts.now ?? Date.now;
    this.db = new Database(opts.db);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB);
      CREATE TABLE IF NOT EXISTS riders (id INTEGER PRIMARY KEY, name TEXT NOT NULL, phone TEXT NOT NULL, id_last4 TEXT, consent_at INTEGER NOT NULL, created_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS credentials (
        key TEXT PRIMARY KEY, kind TEXT NOT NULL, rider_id INTEGER, issuer TEXT,
        status TEXT NOT NULL, blocked INTEGER NOT NULL DEFAULT 0,
        pub_status INTEGER NOT NULL DEFAULT 0, dirty INTEGER NOT NULL DEFAULT 1, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS credentials_dirty ON credentials(dirty) WHERE dirty = 1;
      CREATE TABLE IF NOT EXISTS versions (version INTEGER PRIMARY KEY, published_at INTEGER NOT NULL, delta BLOB);
      CREATE TABLE IF NOT EXISTS transactions (lane_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT, entry TEXT NOT NULL, received_at INTEGER NOT NULL, PRIMARY KEY (lane_id, seq)) WITHOUT ROWID;
    `);
    let pem = opts.signingKeyPem ?? (this.db.prepare('SELECT v FROM meta WHERE k = ?').get('signing-key') as { v: string } | undefined)?.v;
    if (!pem) {
      pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
      this.db.prepare('INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)').run('signing-key', pem);
    }
    this.key = createPrivateKey(pem);
    this.publicKeyPem = createPublicKey(this.key).export({ format: 'pem', type: 'spki' }).toString();
    if (this.latestVersion() === 0) this.publish(true);
  }

  // ------------------------------------------------------------------------------------------
  // Domain operations (also used directly by the simulator and tests)

  register(body: unknown): { ok: true; key: string; status: ListStatus } | { ok: false; http: number; error: RegistrationError | 'duplicate'; field?: string; message: string } {
    const c = checkRegistration(body);
    if (!c.ok) return { ok: false, http: 400, ...c.error };
    const t = this.now();
    const r = this.db.transaction(() => {
      if (this.db.prepare('SELECT 1 FROM credentials WHERE key = ?').get(c.key)) return false;
      const rider = this.db
        .prepare('INSERT INTO riders (name, phone, id_last4, consent_at, created_at) VALUES (?, ?, ?, ?, ?)')
        .run(c.rider.name, c.rider.phone, c.rider.idLast4 ?? null, t, t);
      this.db
        .prepare('INSERT INTO credentials (key, kind, rider_id, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(c.key, c.kind, rider.lastInsertRowid, this.o.initialStatus, t, t);
      return true;
    })();
    if (!r) return { ok: false, http: 409, error: 'duplicate', field: 'number', message: 'this number is already registered / 该号码已登记' };
    this.counters.registrations++;
    return { ok: true, key: c.key, status: this.o.initialStatus };
  }

  linkQrAccount(body: unknown): { ok: true; key: string } | { ok: false; http: number; error: string; message: string } {
    const b = (body ?? {}) as { issuer?: unknown; account?: unknown; status?: unknown };
    if (!QR_ISSUERS.includes(b.issuer as QrIssuer)) return { ok: false, http: 400, error: 'unknown-issuer', message: `issuer must be one of ${QR_ISSUERS.join(', ')}` };
    if (typeof b.account !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(b.account)) return { ok: false, http: 400, error: 'invalid-account', message: 'account must be 1-64 of [A-Za-z0-9_-]' };
    const status = b.status === undefined ? this.o.initialStatus : b.status;
    if (!STATUSES.includes(status as string)) return { ok: false, http: 400, error: 'invalid-status', message: 'status must be green, yellow or red' };
    const key = `qr:${b.issuer}:${b.account}`;
    const t = this.now();
    const r = this.db
      .prepare('INSERT INTO credentials (key, kind, issuer, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING')
      .run(key, 'qr', b.issuer, status, t, t);
    if (r.changes === 0) return { ok: false, http: 409, error: 'duplicate', message: 'account already linked' };
    return { ok: true, key };
  }

  /** Status feed: one update or a batch. Unknown credentials are reported, not created. */
  setStatus(body: unknown): { ok: true; updated: number; unknown: string[] } | { ok: false; http: number; error: string; message: string } {
    const b = (body ?? {}) as { updates?: unknown; key?: unknown; status?: unknown };
    const updates = Array.isArray(b.updates) ? b.updates : [b];
    const stmt = this.db.prepare('UPDATE credentials SET status = ?, dirty = 1, updated_at = ? WHERE key = ?');
    for (const u of updates as { key?: unknown; status?: unknown }[]) {
      if (typeof u?.key !== 'string' || !STATUSES.includes(u.status as string)) return { ok: false, http: 400, error: 'invalid-update', message: 'each update needs key and status (green|yellow|red)' };
    }
    const unknown: string[] = [];
    let updated = 0;
    this.db.transaction(() => {
      for (const u of updates as { key: string; status: string }[]) {
        if (stmt.run(u.status, this.now(), u.key).changes === 0) unknown.push(u.key);
        else updated++;
      }
    })();
    return { ok: true, updated, unknown };
  }

  /** Block or unblock a key (a lost card can be blocked even if it was never registered). */
  setBlocked(body: unknown): { ok: true } | { ok: false; http: number; error: string; message: string } {
    const b = (body ?? {}) as { key?: unknown; blocked?: unknown };
    if (typeof b.key !== 'string' || !/^(card:\d{19}|qr:[a-z][a-z0-9-]{0,31}:[A-Za-z0-9_-]{1,64}|ticket:[A-Z0-9]{8,20})$/.test(b.key) || typeof b.blocked !== 'boolean') {
      return { ok: false, http: 400, error: 'invalid-block', message: 'need key (a list key) and blocked (boolean)' };
    }
    const t = this.now();
    const kind = b.key.slice(0, b.key.indexOf(':'));
    this.db
      .prepare(`INSERT INTO credentials (key, kind, status, blocked, created_at, updated_at) VALUES (?, ?, 'none', ?, ?, ?)
                ON CONFLICT(key) DO UPDATE SET blocked = excluded.blocked, dirty = 1, updated_at = excluded.updated_at`)
      .run(b.key, kind, b.blocked ? 1 : 0, t, t);
    return { ok: true };
  }

  /**
   * Operator bulk import (e.g. from the health-code system or a migration): list key → status, or
   * 'blocked'. Skips the rider form; keys must be list keys. Published with the next version.
   */
  importEntries(entries: Iterable<[string, ListStatus | 'blocked']>): number {
    const t = this.now();
    const up = this.db.prepare(`INSERT INTO credentials (key, kind, status, blocked, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT(key) DO UPDATE SET status = CASE WHEN excluded.blocked = 1 THEN credentials.status ELSE excluded.status END,
        blocked = excluded.blocked, dirty = 1, updated_at = excluded.updated_at
      WHERE credentials.status IS NOT excluded.status OR credentials.blocked IS NOT excluded.blocked`);
    let n = 0;
    this.db.transaction(() => {
      for (const [key, v] of entries) {
        if (classifyKey(key) === 'invalid') throw new Error(`import: not a list key: ${JSON.stringify(key)}`);
        const blocked = v === 'blocked';
        n += up.run(key, key.slice(0, key.indexOf(':')), blocked ? 'none' : v, blocked ? 1 : 0, t, t).changes;
      }
    })();
    return n;
  }

  latestVersion(): number {
    return (this.db.prepare('SELECT MAX(version) AS v FROM versions').get() as { v: number | null }).v ?? 0;
  }

  /** Publish every change since the last version as version N+1 (a signed delta). Returns the version. */
  publish(force = false): number {
    return this.db.transaction(() => {
      const latest = this.latestVersion();
      const rows = this.db.prepare('SELECT key, status, blocked, pub_status FROM credentials WHERE dirty = 1').all() as { key: string; status: string; blocked: number; pub_status: number }[];
      const changes: ListChange[] = [];
      const setPub = this.db.prepare('UPDATE credentials SET pub_status = ?, dirty = 0 WHERE key = ?');
      for (const r of rows) {
        const st = statusByte(STATUSES.includes(r.status) ? (r.status as ListStatus) : undefined, r.blocked === 1);
        setPub.run(st, r.key);
        if (st !== r.pub_status) changes.push({ key: r.key, status: st });
      }
      if (changes.length === 0 && !force) return latest;
      const t = this.now();
      const delta = latest === 0 ? null : Buffer.from(signList(encodeDelta(latest, t, changes), this.key));
      this.db.prepare('INSERT INTO versions (version, published_at, delta) VALUES (?, ?, ?)').run(latest + 1, t, delta);
      this.db.prepare('UPDATE versions SET delta = NULL WHERE version <= ?').run(latest + 1 - this.o.keepDeltas);
      this.counters.published++;
      return latest + 1;
    })();
  }

  /** The latest version as a signed snapshot (built from the published state, cached per version). */
  snapshot(): Uint8Array {
    const v = this.db.prepare('SELECT version, published_at FROM versions ORDER BY version DESC LIMIT 1').get() as { version: number; published_at: number };
    if (this.snapshotCache?.version === v.version) return this.snapshotCache.bytes;
    const b = new ListBuilder(1024);
    for (const r of this.db.prepare('SELECT key, pub_status FROM credentials WHERE pub_status != 0').iterate() as Iterable<{ key: string; pub_status: number }>) {
      b.set(r.key, r.pub_status);
    }
    const bytes = signList(b.build({ version: v.version, publishedAtMs: v.published_at }), this.key);
    this.snapshotCache = { version: v.version, bytes };
    return bytes;
  }

  /** Deltas since `since` (concatenated), or why not: 'current' (up to date), 'gone' (not held; use the snapshot), 'ahead'. */
  deltasSince(since: number, max: number): Uint8Array | 'current' | 'gone' | 'ahead' {
    const latest = this.latestVersion();
    if (since === latest) return 'current';
    if (since > latest) return 'ahead';
    if (since < 1) return 'gone';
    const rows = this.db.prepare('SELECT version, delta FROM versions WHERE version > ? ORDER BY version LIMIT ?').all(since, Math.max(1, max)) as { version: number; delta: Buffer | null }[];
    if (rows.length === 0 || rows[0].version !== since + 1 || rows.some((r) => r.delta === null)) return 'gone';
    return Buffer.concat(rows.map((r) => r.delta!));
  }

  setIssuerKeys(doc: Uint8Array): void {
    this.db.prepare('INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)').run('issuer-keys', Buffer.from(doc));
  }
  issuerKeys(): Buffer | undefined {
    return (this.db.prepare('SELECT v FROM meta WHERE k = ?').get('issuer-keys') as { v: Buffer } | undefined)?.v;
  }

  /** Idempotent by (laneId, seq): a retried batch adds nothing. */
  ingest(body: unknown): { ok: true; accepted: number; duplicates: number } | { ok: false; http: number; error: string; message: string } {
    const b = (body ?? {}) as { laneId?: unknown; records?: unknown };
    if (typeof b.laneId !== 'string' || !/^[A-Za-z0-9_-]{1,32}$/.test(b.laneId) || !Array.isArray(b.records)) {
      return { ok: false, http: 400, error: 'invalid-batch', message: 'need laneId and records[]' };
    }
    for (const r of b.records as { seq?: unknown; entry?: unknown }[]) {
      if (!Number.isSafeInteger(r?.seq) || (r.seq as number) < 1 || typeof r.entry !== 'object' || r.entry === null) {
        return { ok: false, http: 400, error: 'invalid-record', message: 'each record needs seq (>= 1) and entry (object)' };
      }
    }
    const ins = this.db.prepare('INSERT OR IGNORE INTO transactions (lane_id, seq, type, entry, received_at) VALUES (?, ?, ?, ?, ?)');
    let accepted = 0;
    const t = this.now();
    this.db.transaction(() => {
      for (const r of b.records as { seq: number; entry: { type?: unknown } }[]) {
        accepted += ins.run(b.laneId, r.seq, typeof r.entry.type === 'string' ? r.entry.type : null, JSON.stringify(r.entry), t).changes;
      }
    })();
    const duplicates = b.records.length - accepted;
    this.counters.transactions += accepted;
    this.counters.duplicateTransactions += duplicates;
    return { ok: true, accepted, duplicates };
  }

  // ------------------------------------------------------------------------------------------
  // HTTP

  async listen(port = 0, host = '127.0.0.1'): Promise<{ port: number; url: string }> {
    this.server = createServer((req, res) => {
      this.counters.requests++;
      this.handle(req, res).catch((e) => {
        if (!res.headersSent) json(res, 500, { error: 'internal', message: (e as Error).message });
        else res.destroy();
      });
    });
    await new Promise<void>((r) => this.server!.listen(port, host, r));
    if (this.o.publishIntervalMs > 0) {
      this.publishTimer = setInterval(() => this.publish(), this.o.publishIntervalMs);
      this.publishTimer.unref();
    }
    const a = this.server.address() as AddressInfo;
    return { port: a.port, url: `http://${host}:${a.port}` };
  }

  async close(): Promise<void> {
    if (this.publishTimer) clearInterval(this.publishTimer);
    if (this.server) {
      this.server.closeAllConnections();
      await new Promise<void>((r) => this.server!.close(() => r()));
    }
    this.db.close();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const route = `${req.method} ${url.pathname}`;
    const reply = (r: { ok: boolean; http?: number }, okStatus = 200) => {
      if (!r.ok) this.counters.badRequests++;
      const { ok: _ok, http, ...rest } = r as { ok: boolean; http?: number };
      json(res, r.ok ? okStatus : (http ?? 400), rest);
    };
    const body = async (): Promise<unknown> => {
      const b = await readBody(req);
      try {
        return JSON.parse(b.toString('utf8'));
      } catch {
        throw new BadJson();
      }
    };
    // Who may call this route: 401 without a known token, 403 for a token of another role.
    let caller: AccessToken | undefined;
    if (this.access && !OPEN_ROUTES.has(route) && ROUTE_ROLES[route]) {
      const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
      caller = m ? this.access.get(tokenDigest(m[1])) : undefined;
      if (!caller) {
        this.counters.refusedAccess++;
        res.setHeader('www-authenticate', 'Bearer');
        return json(res, 401, { error: 'unauthorized', message: 'a bearer token is needed (Authorization: Bearer …)' });
      }
      if (!ROUTE_ROLES[route].includes(caller.role)) {
        this.counters.refusedAccess++;
        return json(res, 403, { error: 'forbidden', message: `a ${caller.role} token may not call ${route}` });
      }
    }
    try {
      switch (route) {
        case 'GET /v1/health':
          return json(res, 200, { ok: true, version: this.latestVersion() });
        case 'POST /v1/registrations':
          return reply(this.register(await body()), 201);
        case 'POST /v1/qr-links': {
          const b = await body();
          // An issuer's token links that issuer's accounts only.
          if (caller?.issuer && (b as { issuer?: unknown } | null)?.issuer !== caller.issuer) {
            this.counters.refusedAccess++;
            return json(res, 403, { error: 'forbidden', message: `this token links ${caller.issuer} accounts only` });
          }
          return reply(this.linkQrAccount(b), 201);
        }
        case 'POST /v1/status':
          return reply(this.setStatus(await body()));
        case 'POST /v1/blocks':
          return reply(this.setBlocked(await body()));
        case 'POST /v1/lists/publish':
          return json(res, 200, { version: this.publish() });
        case 'GET /v1/lists/latest': {
          const v = this.db.prepare('SELECT version, published_at FROM versions ORDER BY version DESC LIMIT 1').get() as { version: number; published_at: number };
          return json(res, 200, { version: v.version, publishedAtMs: v.published_at });
        }
        case 'GET /v1/lists/public-key':
          res.writeHead(200, { 'content-type': 'application/x-pem-file' });
          return void res.end(this.publicKeyPem);
        case 'GET /v1/lists/snapshot':
          return bytes(res, this.snapshot());
        case 'GET /v1/lists/deltas': {
          const since = Number(url.searchParams.get('since'));
          const max = Number(url.searchParams.get('max') ?? '100');
          if (!Number.isSafeInteger(since) || since < 0 || !Number.isSafeInteger(max) || max < 1) return json(res, 400, { error: 'invalid-query', message: 'since >= 0 and max >= 1 integers' });
          const d = this.deltasSince(since, Math.min(max, 1000));
          if (d === 'current') return void res.writeHead(204).end();
          if (d === 'gone') return json(res, 410, { error: 'gone', message: 'deltas not held from that version; fetch the snapshot' });
          if (d === 'ahead') return json(res, 409, { error: 'ahead', message: `version ${since} is ahead of the back office` });
          return bytes(res, d);
        }
        case 'GET /v1/issuer-keys': {
          const doc = this.issuerKeys();
          if (!doc) return json(res, 404, { error: 'none', message: 'no issuer key list published' });
          const etag = `"${createHash('sha256').update(doc).digest('hex').slice(0, 32)}"`;
          if (req.headers['if-none-match'] === etag) return void res.writeHead(304, { etag }).end();
          return bytes(res, doc, { etag });
        }
        case 'PUT /v1/issuer-keys': {
          const doc = await readBody(req);
          if (doc.byteLength === 0) return json(res, 400, { error: 'empty', message: 'empty document' });
          this.setIssuerKeys(doc);
          return json(res, 200, { bytes: doc.byteLength });
        }
        case 'POST /v1/transactions':
          return reply(this.ingest(await body()));
        case 'GET /v1/transactions': {
          const lane = url.searchParams.get('laneId');
          const rows = (lane
            ? this.db.prepare('SELECT lane_id AS laneId, seq, entry FROM transactions WHERE lane_id = ? ORDER BY seq').all(lane)
            : this.db.prepare('SELECT lane_id AS laneId, seq, entry FROM transactions ORDER BY lane_id, seq').all()) as { laneId: string; seq: number; entry: string }[];
          return json(res, 200, { records: rows.map((r) => ({ laneId: r.laneId, seq: r.seq, entry: JSON.parse(r.entry) })) });
        }
        default:
          this.counters.badRequests++;
          return json(res, 404, { error: 'not-found', message: `no route ${route}` });
      }
    } catch (e) {
      this.counters.badRequests++;
      if (e instanceof BadJson) return json(res, 400, { error: 'invalid-json', message: 'request body is not valid JSON' });
      if (e instanceof TooLarge) return json(res, 413, { error: 'too-large', message: `body over ${MAX_BODY} bytes` });
      throw e;
    }
  }
}

class BadJson extends Error {}
class TooLarge extends Error {}

function json(res: ServerResponse, status: number, body: unknown): void {
  const b = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(b) });
  res.end(b);
}

function bytes(res: ServerResponse, b: Uint8Array, headers: Record<string, string> = {}): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': b.byteLength, ...headers });
  res.end(b);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > MAX_BODY) throw new TooLarge();
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}
