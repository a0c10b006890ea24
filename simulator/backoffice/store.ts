// Why this file is long: it is the back office's one SQLite store — every table with its statements and the
// documents it signs (lists, trust list, schedule, fare table) — read together; HTTP and pages live elsewhere.
// The back office's state and what can be done to it, over a real SQLite database (better-sqlite3):
// rider registration, QR account links, the health-status feed and blocking, signed list publishing
// (snapshot + deltas per version), the verified issuer trust list, and transaction ingest that is
// idempotent by (lane, seq) and keeps both versions when a lane sends a seq it already sent with other
// content. No HTTP here (http.ts); the simulator and tests also call these methods directly.

import Database from 'better-sqlite3';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { QR_ISSUERS, type QrIssuer } from '../../protocol/credential.js';
import { ListBuilder, classifyKey, encodeDelta, listKeyId, signFreshness, signList, statusByte, type FreshnessFormat, type ListChange, type ListStatus } from '../../protocol/lists/index.js';
import { verifyTrustList } from '../../protocol/trust-list.js';
import { signPolicySchedule, verifyPolicySchedule, type KindSchedule, type PolicySchedule } from '../../protocol/policy-schedule.js';
import { CREDENTIAL_KINDS, type CredentialKind } from '../../protocol/credential.js';
import { faresFromDistances, signFareTable, verifyFareTable, BEIJING_2014_RULES, type FareRules, type FareStation, type FareTable } from '../../protocol/fares.js';
import { checkRegistration, type RegistrationError } from './validate.js';

export interface StoreOptions {
  /** SQLite file (':memory:' for a throwaway one). */
  db: string;
  /** Ed25519 private key (PEM) that signs lists; generated and kept in the database when absent. */
  signingKeyPem?: string;
  /** Deltas kept for catch-up; a gate further behind gets the snapshot. */
  keepDeltas?: number;
  /** Status given to a new registration until the status feed says otherwise. */
  initialStatus?: ListStatus;
  /**
   * Who signs issuer trust lists: signer id → Ed25519 public key (the same pairs a gate's
   * `qr.backOfficeKeys` holds). PUT /v1/issuer-keys stores only a document one of them signed.
   */
  trustListSigners?: ReadonlyMap<string, KeyObject>;
  now?: () => number;
}

/**
 * Most records one ingest batch may carry. The gate's uploader sends `journal.uploadBatch` records per
 * batch: 500 by default, at most 10,000 (the lane config schema's maximum), so it never meets this cap.
 */
export const MAX_INGEST_RECORDS = 10_000;
/** Most updates one status-feed request may carry. */
export const MAX_STATUS_UPDATES = 10_000;
/** Listings answer pages of at most this many rows (100 when the caller does not say). */
export const MAX_PAGE = 1000;
export const DEFAULT_PAGE = 100;

export type Refusal = { ok: false; http: number; error: string; message: string; field?: string };

/** A record a lane sent again under a (laneId, seq) the back office holds with other content. */
export interface IngestConflict {
  seq: number;
  status: 409;
  error: 'conflict';
  message: string;
}

export interface StoredRecord {
  laneId: string;
  seq: number;
  entry: unknown;
}
export interface ConflictRecord {
  id: number;
  laneId: string;
  seq: number;
  /** The version the back office held first (and keeps in the transactions). */
  held: unknown;
  /** The other version a lane sent under the same (laneId, seq). */
  offered: unknown;
  firstAtMs: number;
  lastAtMs: number;
  /** How many times this other version arrived. */
  times: number;
}

const STATUSES: readonly string[] = ['green', 'yellow', 'red'];
const LANE_ID = /^[A-Za-z0-9_-]{1,32}$/;
const LIST_KEY = /^(card:\d{19}|qr:[a-z][a-z0-9-]{0,31}:[A-Za-z0-9_-]{1,64}|ticket:[A-Z0-9]{8,20})$/;

/** JSON with object keys sorted at every level: two entries are the same record when these agree. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

export class BackofficeStore {
  readonly db: Database.Database;
  private readonly key: KeyObject;
  readonly publicKeyPem: string;
  protected readonly now: () => number;
  private readonly keepDeltas: number;
  private readonly initialStatus: ListStatus;
  private readonly trustListSigners: ReadonlyMap<string, KeyObject>;
  private snapshotCache: { version: number; bytes: Uint8Array } | undefined;
  private lastStatementAtMs = 0;
  private trustSeq: { doc: Buffer | undefined; seq: number } | undefined;
  readonly counters = {
    requests: 0, badRequests: 0, registrations: 0, transactions: 0, duplicateTransactions: 0, conflictingTransactions: 0,
    published: 0, refusedAccess: 0, internalErrors: 0, timeouts: 0, droppedConnections: 0, statements: 0,
  };

  constructor(opts: StoreOptions) {
    this.keepDeltas = opts.keepDeltas ?? 1000;
    this.initialStatus = opts.initialStatus ?? 'green';
    this.trustListSigners = opts.trustListSigners ?? new Map();
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
      CREATE TABLE IF NOT EXISTS conflicts (
        id INTEGER PRIMARY KEY, lane_id TEXT NOT NULL, seq INTEGER NOT NULL, offered TEXT NOT NULL, offered_sha TEXT NOT NULL,
        first_at INTEGER NOT NULL, last_at INTEGER NOT NULL, times INTEGER NOT NULL DEFAULT 1, UNIQUE (lane_id, seq, offered_sha));
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
  // Riders, accounts, statuses

  register(body: unknown): { ok: true; key: string; status: ListStatus } | (Refusal & { error: RegistrationError | 'duplicate' }) {
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
        .run(c.key, c.kind, rider.lastInsertRowid, this.initialStatus, t, t);
      return true;
    })();
    if (!r) return { ok: false, http: 409, error: 'duplicate', field: 'number', message: 'this number is already registered / 该号码已登记' };
    this.counters.registrations++;
    return { ok: true, key: c.key, status: this.initialStatus };
  }

  linkQrAccount(body: unknown): { ok: true; key: string } | Refusal {
    const b = (body ?? {}) as { issuer?: unknown; account?: unknown; status?: unknown };
    if (!QR_ISSUERS.includes(b.issuer as QrIssuer)) return { ok: false, http: 400, error: 'unknown-issuer', message: `issuer must be one of ${QR_ISSUERS.join(', ')}` };
    if (typeof b.account !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(b.account)) return { ok: false, http: 400, error: 'invalid-account', message: 'account must be 1-64 of [A-Za-z0-9_-]' };
    const status = b.status === undefined ? this.initialStatus : b.status;
    if (!STATUSES.includes(status as string)) return { ok: false, http: 400, error: 'invalid-status', message: 'status must be green, yellow or red' };
    const key = `qr:${b.issuer}:${b.account}`;
    const t = this.now();
    const r = this.db
      .prepare('INSERT INTO credentials (key, kind, issuer, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING')
      .run(key, 'qr', b.issuer, status, t, t);
    if (r.changes === 0) return { ok: false, http: 409, error: 'duplicate', message: 'account already linked' };
    return { ok: true, key };
  }

  /** Status feed: one update or a batch (at most MAX_STATUS_UPDATES). Unknown credentials are reported, not created. */
  setStatus(body: unknown): { ok: true; updated: number; unknown: string[] } | Refusal {
    const b = (body ?? {}) as { updates?: unknown; key?: unknown; status?: unknown };
    const updates = Array.isArray(b.updates) ? b.updates : [b];
    if (updates.length > MAX_STATUS_UPDATES) return { ok: false, http: 413, error: 'too-many-updates', message: `at most ${MAX_STATUS_UPDATES} updates per request (got ${updates.length}): split the batch` };
    const stmt = this.db.prepare('UPDATE credentials SET status = ?, dirty = 1, updated_at = ? WHERE key = ?');
    for (const u of updates as { key?: unknown; status?: unknown }[]) {
      if (typeof u?.key !== 'string' || !LIST_KEY.test(u.key) || !STATUSES.includes(u.status as string)) {
        return { ok: false, http: 400, error: 'invalid-update', message: 'each update needs key (a list key) and status (green|yellow|red)' };
      }
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
  setBlocked(body: unknown): { ok: true } | Refusal {
    const b = (body ?? {}) as { key?: unknown; blocked?: unknown };
    if (typeof b.key !== 'string' || !LIST_KEY.test(b.key) || typeof b.blocked !== 'boolean') {
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

  // ------------------------------------------------------------------------------------------
  // Signed lists

  latestVersion(): number {
    return (this.db.prepare('SELECT MAX(version) AS v FROM versions').get() as { v: number | null }).v ?? 0;
  }

  latest(): { version: number; publishedAtMs: number } {
    const v = this.db.prepare('SELECT version, published_at FROM versions ORDER BY version DESC LIMIT 1').get() as { version: number; published_at: number };
    return { version: v.version, publishedAtMs: v.published_at };
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
      this.db.prepare('UPDATE versions SET delta = NULL WHERE version <= ?').run(latest + 1 - this.keepDeltas);
      this.counters.published++;
      return latest + 1;
    })();
  }

  /** The latest version as a signed snapshot (built from the published state, cached per version). */
  snapshot(): Uint8Array {
    const v = this.latest();
    if (this.snapshotCache?.version === v.version) return this.snapshotCache.bytes;
    const b = new ListBuilder(1024);
    for (const r of this.db.prepare('SELECT key, pub_status FROM credentials WHERE pub_status != 0').iterate() as Iterable<{ key: string; pub_status: number }>) {
      b.set(r.key, r.pub_status);
    }
    const bytes = signList(b.build({ version: v.version, publishedAtMs: v.publishedAtMs }), this.key);
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

  /**
   * A signed freshness statement (protocol/lists/freshness.ts): the latest list version, its publication
   * time and the served trust list's seq (format 2: also the schedule's and fare table's), as of now,
   * echoing the gate's nonce. Signed afresh on every call
   * (one Ed25519 signature); issued-at times strictly increase, even within one millisecond.
   */
  freshness(nonce?: Uint8Array, format: FreshnessFormat = 1): Uint8Array {
    const l = this.latest();
    const issuedAtMs = Math.max(this.now(), this.lastStatementAtMs + 1);
    this.lastStatementAtMs = issuedAtMs;
    this.counters.statements++;
    const seqs = format === 2 ? { scheduleSeq: this.servedSeq('schedule'), fareTableSeq: this.servedSeq('fare-table') } : {};
    return signFreshness({ latestVersion: l.version, latestPublishedAtMs: l.publishedAtMs, issuedAtMs, trustListSeq: this.trustListSeq(), nonce, format, ...seqs }, this.key);
  }

  /**
   * The seq of the schedule or fare table this back office last published (0: none): its word, kept apart
   * from the document bytes, so a document altered in its store or on the way does not change what it says.
   */
  private servedSeq(which: 'schedule' | 'fare-table'): number {
    const row = this.db.prepare('SELECT v FROM meta WHERE k = ?').get(`published-seq:${which}`) as { v: Buffer } | undefined;
    return row ? Number(row.v.toString('utf8')) || 0 : 0;
  }
  /** Publishing numbers the next seq above both the stored document's and this. */
  private published(which: 'schedule' | 'fare-table', seq: number): void {
    this.db.prepare('INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)').run(`published-seq:${which}`, Buffer.from(String(seq)));
  }

  /** The seq of the trust list served (0: none), read from the document's payload (held as the operator's own). */
  private trustListSeq(): number {
    if (this.trustSeq) return this.trustSeq.seq;
    const doc = this.issuerKeys();
    let seq = 0;
    try {
      const env = doc && JSON.parse(doc.toString('utf8'));
      const p = env && JSON.parse(Buffer.from(String(env.payload), 'base64').toString('utf8'));
      if (Number.isSafeInteger(p?.seq) && p.seq >= 0) seq = p.seq;
    } catch {
      seq = 0;
    }
    this.trustSeq = { doc, seq };
    return seq;
  }

  // ------------------------------------------------------------------------------------------
  // Enforcement schedule

  /**
   * Publish an enforcement schedule (per credential kind: advise from, enforce from), signed with the list
   * signing key under the next seq. Returns the signed document, as GET /v1/policy-schedule serves it.
   */
  publishPolicySchedule(kinds: Partial<Record<CredentialKind, KindSchedule>>): Uint8Array {
    const held = this.policySchedule();
    const prev = held ? verifyPolicySchedule(held, [{ keyId: listKeyId(createPublicKey(this.key)), publicKey: createPublicKey(this.key) }]) : undefined;
    const schedule: PolicySchedule = { seq: Math.max(prev?.ok ? prev.schedule.seq : 0, this.servedSeq('schedule')) + 1, issuedAtMs: this.now(), kinds };
    const doc = signPolicySchedule(schedule, this.key);
    this.db.prepare('INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)').run('policy-schedule', Buffer.from(doc));
    this.published('schedule', schedule.seq);
    return doc;
  }
  policySchedule(): Buffer | undefined {
    return (this.db.prepare('SELECT v FROM meta WHERE k = ?').get('policy-schedule') as { v: Buffer } | undefined)?.v;
  }

  /**
   * POST /v1/policy-schedule (operator): `{ kinds: { <kind>: { adviseFromMs, enforceFromMs } } }` checked,
   * then signed and published under the next seq (publishPolicySchedule).
   */
  putPolicySchedule(body: unknown): { ok: true; seq: number; kinds: Partial<Record<CredentialKind, KindSchedule>> } | Refusal {
    const b = (body ?? {}) as { kinds?: unknown };
    const bad = (message: string): Refusal => ({ ok: false, http: 400, error: 'invalid-schedule', message });
    if (typeof b.kinds !== 'object' || b.kinds === null || Array.isArray(b.kinds)) return bad('need kinds: { <credential kind>: { adviseFromMs, enforceFromMs } }');
    const kinds: Partial<Record<CredentialKind, KindSchedule>> = {};
    const ms = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
    for (const [kind, v] of Object.entries(b.kinds)) {
      if (!(CREDENTIAL_KINDS as readonly string[]).includes(kind)) return bad(`kinds.${kind.slice(0, 40)}: one of ${CREDENTIAL_KINDS.join(', ')}`);
      const k = (v ?? {}) as { adviseFromMs?: unknown; enforceFromMs?: unknown };
      if (!ms(k.adviseFromMs) || !ms(k.enforceFromMs) || k.adviseFromMs > k.enforceFromMs) return bad(`kinds.${kind}: adviseFromMs <= enforceFromMs, ms since the epoch`);
      kinds[kind as CredentialKind] = { adviseFromMs: k.adviseFromMs, enforceFromMs: k.enforceFromMs };
    }
    const doc = this.publishPolicySchedule(kinds);
    const r = verifyPolicySchedule(doc, [{ keyId: listKeyId(createPublicKey(this.key)), publicKey: createPublicKey(this.key) }]);
    return { ok: true, seq: r.ok ? r.schedule.seq : -1, kinds };
  }

  /** Serve these bytes as the schedule, unverified: the simulator's and tests' own hand (a tampered or replayed document). */
  setPolicyScheduleDocument(doc: Uint8Array): void {
    this.db.prepare('INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)').run('policy-schedule', Buffer.from(doc));
  }

  // ------------------------------------------------------------------------------------------
  // Fare table and settlement (protocol/fares.ts, settlement.ts)

  /**
   * Publish the station-to-station fare table of a network (stations, shortest distances in metres) by
   * `rules`, signed with the list signing key under the next seq. Returns the signed document, as GET
   * /v1/fare-table serves it.
   */
  publishFareTable(network: { stations: FareStation[]; distancesM: ArrayLike<number> }, rules: FareRules = BEIJING_2014_RULES): Uint8Array {
    const held = this.currentFareTable();
    const n = network.stations.length;
    const table: FareTable = { seq: Math.max(held?.seq ?? 0, this.servedSeq('fare-table')) + 1, issuedAtMs: this.now(), rules, stations: network.stations, fares: faresFromDistances(rules, network.distancesM, n) };
    const doc = signFareTable(table, this.key);
    this.db.prepare('INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)').run('fare-table', Buffer.from(doc));
    this.published('fare-table', table.seq);
    return doc;
  }
  fareTable(): Buffer | undefined {
    return (this.db.prepare('SELECT v FROM meta WHERE k = ?').get('fare-table') as { v: Buffer } | undefined)?.v;
  }
  currentFareTable(): FareTable | undefined {
    const doc = this.fareTable();
    const r = doc && verifyFareTable(doc, [{ keyId: listKeyId(createPublicKey(this.key)), publicKey: createPublicKey(this.key) }]);
    return r && r.ok ? r.table : undefined;
  }

  // ------------------------------------------------------------------------------------------
  // Issuer trust list

  /** Store a trust-list document as is, unverified: the simulator's and tests' own hand. Over HTTP: putIssuerKeys. */
  setIssuerKeys(doc: Uint8Array): void {
    this.db.prepare('INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)').run('issuer-keys', Buffer.from(doc));
    this.trustSeq = undefined;
  }
  issuerKeys(): Buffer | undefined {
    return (this.db.prepare('SELECT v FROM meta WHERE k = ?').get('issuer-keys') as { v: Buffer } | undefined)?.v;
  }

  /**
   * Publish a trust list an operator sends: stored only when a configured signer's signature verifies
   * (protocol/trust-list.ts, as the gate checks it) and its seq is newer than the one held (the same
   * document again is fine). Gates never take a lower seq, so an older one could only mislead.
   */
  putIssuerKeys(doc: Uint8Array): { ok: true; bytes: number; seq: number; signer: string } | Refusal {
    if (doc.byteLength === 0) return { ok: false, http: 400, error: 'empty', message: 'empty document' };
    const r = verifyTrustList(doc, this.trustListSigners);
    if (!r.ok) {
      const hint = this.trustListSigners.size === 0 ? ' (this back office knows no trust-list signer: gate backoffice --trust-list-keys)' : '';
      return { ok: false, http: 400, error: 'invalid-trust-list', message: `${r.error}: ${r.detail}${hint}` };
    }
    const held = this.issuerKeys();
    const heldList = held ? verifyTrustList(held, this.trustListSigners) : undefined;
    if (held && heldList?.ok && !Buffer.from(doc).equals(held) && r.list.seq <= heldList.list.seq) {
      return { ok: false, http: 409, error: 'stale-trust-list', message: `seq ${r.list.seq} is not newer than the published seq ${heldList.list.seq}` };
    }
    this.setIssuerKeys(doc);
    return { ok: true, bytes: doc.byteLength, seq: r.list.seq, signer: r.signer };
  }

  // ------------------------------------------------------------------------------------------
  // Transactions (the lanes' journals)

  /**
   * Store a lane's batch. Idempotent by (laneId, seq): a record already held with the same content is a
   * duplicate and adds nothing; one held with other content is a conflict: answered 409 for that record,
   * counted, and the other version kept beside the first for an operator (conflictsPage).
   */
  ingest(body: unknown): { ok: true; accepted: number; duplicates: number; conflicts: IngestConflict[] } | Refusal {
    const b = (body ?? {}) as { laneId?: unknown; records?: unknown };
    if (typeof b.laneId !== 'string' || !LANE_ID.test(b.laneId) || !Array.isArray(b.records)) {
      return { ok: false, http: 400, error: 'invalid-batch', message: 'need laneId and records[]' };
    }
    if (b.records.length > MAX_INGEST_RECORDS) {
      return { ok: false, http: 413, error: 'too-many-records', message: `at most ${MAX_INGEST_RECORDS} records per batch (got ${b.records.length}): send smaller batches` };
    }
    for (const r of b.records as { seq?: unknown; entry?: unknown }[]) {
      if (!Number.isSafeInteger(r?.seq) || (r.seq as number) < 1 || typeof r.entry !== 'object' || r.entry === null || Array.isArray(r.entry)) {
        return { ok: false, http: 400, error: 'invalid-record', message: 'each record needs seq (>= 1) and entry (object)' };
      }
    }
    const laneId = b.laneId;
    const ins = this.db.prepare('INSERT OR IGNORE INTO transactions (lane_id, seq, type, entry, received_at) VALUES (?, ?, ?, ?, ?)');
    const held = this.db.prepare('SELECT entry FROM transactions WHERE lane_id = ? AND seq = ?');
    const keep = this.db.prepare(`INSERT INTO conflicts (lane_id, seq, offered, offered_sha, first_at, last_at) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (lane_id, seq, offered_sha) DO UPDATE SET times = times + 1, last_at = excluded.last_at`);
    let accepted = 0;
    let duplicates = 0;
    const conflicts: IngestConflict[] = [];
    const t = this.now();
    this.db.transaction(() => {
      for (const r of b.records as { seq: number; entry: { type?: unknown } }[]) {
        const text = JSON.stringify(r.entry);
        if (ins.run(laneId, r.seq, typeof r.entry.type === 'string' ? r.entry.type : null, text, t).changes === 1) {
          accepted++;
          continue;
        }
        // The same bytes (a retried batch, the usual case), else the same JSON in another key order: a duplicate.
        const first = (held.get(laneId, r.seq) as { entry: string }).entry;
        const offered = first === text ? '' : canonicalJson(r.entry);
        if (first === text || canonicalJson(JSON.parse(first)) === offered) {
          duplicates++;
          continue;
        }
        keep.run(laneId, r.seq, text, createHash('sha256').update(offered).digest('hex'), t, t);
        conflicts.push({ seq: r.seq, status: 409, error: 'conflict', message: `lane ${laneId} seq ${r.seq} is held with other content; both versions kept for an operator` });
      }
    })();
    this.counters.transactions += accepted;
    this.counters.duplicateTransactions += duplicates;
    this.counters.conflictingTransactions += conflicts.length;
    return { ok: true, accepted, duplicates, conflicts };
  }

  /** Stored transactions in (laneId, seq) order, one page after `after`; `next` is the cursor of the page's last row, or null at the end. */
  transactionsPage(q: { laneId?: string; after?: { laneId: string; seq: number }; limit: number }): { records: StoredRecord[]; next: string | null } {
    const limit = Math.min(MAX_PAGE, Math.max(1, q.limit));
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.laneId !== undefined) {
      where.push('lane_id = ?');
      args.push(q.laneId);
    }
    if (q.after) {
      where.push('(lane_id, seq) > (?, ?)');
      args.push(q.after.laneId, q.after.seq);
    }
    const rows = this.db
      .prepare(`SELECT lane_id AS laneId, seq, entry FROM transactions ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY lane_id, seq LIMIT ?`)
      .all(...args, limit + 1) as { laneId: string; seq: number; entry: string }[];
    const more = rows.length > limit;
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return { records: page.map((r) => ({ laneId: r.laneId, seq: r.seq, entry: JSON.parse(r.entry) })), next: more && last ? `${last.laneId}.${last.seq}` : null };
  }

  /** Conflicting versions, oldest first, one page after the conflict id `after`. */
  conflictsPage(q: { after?: number; limit: number }): { conflicts: ConflictRecord[]; next: string | null } {
    const limit = Math.min(MAX_PAGE, Math.max(1, q.limit));
    const rows = this.db
      .prepare(`SELECT c.id, c.lane_id AS laneId, c.seq, t.entry AS held, c.offered, c.first_at, c.last_at, c.times
                FROM conflicts c LEFT JOIN transactions t ON t.lane_id = c.lane_id AND t.seq = c.seq WHERE c.id > ? ORDER BY c.id LIMIT ?`)
      .all(q.after ?? 0, limit + 1) as { id: number; laneId: string; seq: number; held: string | null; offered: string; first_at: number; last_at: number; times: number }[];
    const more = rows.length > limit;
    const page = rows.slice(0, limit);
    return {
      conflicts: page.map((r) => ({
        id: r.id, laneId: r.laneId, seq: r.seq, held: r.held === null ? null : JSON.parse(r.held), offered: JSON.parse(r.offered),
        firstAtMs: r.first_at, lastAtMs: r.last_at, times: r.times,
      })),
      next: more ? String(page[page.length - 1].id) : null,
    };
  }
}
