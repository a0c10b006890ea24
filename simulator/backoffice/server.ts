// The back office the gates talk to: rider registration, QR account links, the health-status feed and
// blocking, signed list publishing (snapshot + deltas per version), the verified issuer trust list, and
// idempotent transaction ingest. A real HTTP server (http.ts, on Fastify) over a real SQLite database
// (store.ts); the reference for an operator's own implementation (openapi.yaml beside this file).
// Imports only protocol/.

import type { FastifyInstance } from 'fastify';
import type { KeyObject } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { ed25519PublicKey } from '../../protocol/trust-list.js';
import type { AccessToken } from './access.js';
import { buildHttp, type HttpLimits } from './http.js';
import type { Logger } from 'pino';
import { BackofficeStore, type StoreOptions } from './store.js';

export { parseAccessTokens, ROUTE_ROLES, OPEN_ROUTES, PAGE_ROUTES, type AccessRole, type AccessToken } from './access.js';
export { DEFAULT_LIMITS, type HttpLimits } from './http.js';
export { MAX_INGEST_RECORDS, MAX_STATUS_UPDATES, MAX_PAGE, DEFAULT_PAGE, type IngestConflict, type ConflictRecord } from './store.js';

export interface BackofficeOptions extends StoreOptions {
  /** Publish pending changes as a new list version this often (0: only on POST /v1/lists/publish). */
  publishIntervalMs?: number;
  /**
   * Bearer tokens and what each may do. Absent: every endpoint is open (a simulator, CI, a bench on
   * one machine). `gate backoffice` refuses to listen beyond loopback without them.
   */
  tokens?: readonly AccessToken[];
  /** Body sizes, deadlines and the connection cap (DEFAULT_LIMITS for what is not given). */
  limits?: Partial<HttpLimits>;
  /** Where errors are logged (default: warnings and errors on stderr). */
  log?: Logger;
  /** Serve https with this certificate (chain) and private key, PEM (`gate backoffice --tls-cert/--tls-key`). */
  tls?: { cert: string; key: string };
}

/**
 * Read the trust-list signers file (`gate backoffice --trust-list-keys`): a JSON object of signer id →
 * base64 raw Ed25519 public key, the same pairs a gate's `qr.backOfficeKeys` holds.
 */
export function parseTrustListSigners(text: string): Map<string, KeyObject> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Error('trust-list keys: not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.keys(v).length === 0) throw new Error('trust-list keys: expected a JSON object { "<signer id>": "<base64 Ed25519 public key>" }');
  const keys = new Map<string, KeyObject>();
  for (const [signer, b64] of Object.entries(v)) {
    if (typeof b64 !== 'string' || !/^[A-Za-z0-9+/]{43}=$/.test(b64)) throw new Error(`trust-list keys: ${signer}: a 32-byte Ed25519 public key, base64`);
    keys.set(signer, ed25519PublicKey(Buffer.from(b64, 'base64')));
  }
  return keys;
}

export class Backoffice extends BackofficeStore {
  private readonly opts: BackofficeOptions;
  private app: FastifyInstance | undefined;
  private publishTimer: NodeJS.Timeout | undefined;

  constructor(opts: BackofficeOptions) {
    super(opts);
    this.opts = opts;
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<{ port: number; url: string }> {
    this.app = buildHttp(this, { tokens: this.opts.tokens, limits: this.opts.limits, log: this.opts.log, tls: this.opts.tls });
    await this.app.listen({ port, host });
    if ((this.opts.publishIntervalMs ?? 0) > 0) {
      this.publishTimer = setInterval(() => this.publish(), this.opts.publishIntervalMs);
      this.publishTimer.unref();
    }
    const a = this.app.server.address() as AddressInfo;
    return { port: a.port, url: `${this.opts.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${a.port}` };
  }

  async close(): Promise<void> {
    if (this.publishTimer) clearInterval(this.publishTimer);
    await this.app?.close();
    this.db.close();
  }
}
