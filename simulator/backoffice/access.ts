// Who may call which back-office endpoint: bearer tokens, each with one role, and the roles each route
// opens to. Without tokens every endpoint is open (a simulator, CI, a bench on one machine); `gate
// backoffice` refuses to listen beyond loopback that way.

import { createHash } from 'node:crypto';
import { QR_ISSUERS } from '../../protocol/credential.js';

/** Who calls the back office, and so which endpoints a token opens. */
export type AccessRole = 'gate' | 'registration' | 'issuer' | 'status-feed' | 'admin';
export interface AccessToken {
  token: string;
  role: AccessRole;
  /** For an issuer token: the only issuer whose accounts it may link. */
  issuer?: string;
}

export const ROLES: readonly AccessRole[] = ['gate', 'registration', 'issuer', 'status-feed', 'admin'];

/** Every route but the open ones, and the roles it opens to (openapi.yaml `x-roles` says the same). */
export const ROUTE_ROLES: Readonly<Record<string, readonly AccessRole[]>> = {
  'POST /v1/registrations': ['registration', 'admin'],
  'POST /v1/qr-links': ['issuer', 'admin'],
  'POST /v1/status': ['status-feed', 'admin'],
  'POST /v1/blocks': ['status-feed', 'admin'],
  'POST /v1/lists/publish': ['admin'],
  'GET /v1/lists/latest': ['gate', 'admin'],
  'GET /v1/lists/snapshot': ['gate', 'admin'],
  'GET /v1/lists/deltas': ['gate', 'admin'],
  'GET /v1/issuer-keys': ['gate', 'admin'],
  'GET /v1/policy-schedule': ['gate', 'admin'],
  'POST /v1/policy-schedule': ['admin'],
  'GET /v1/fare-table': ['gate', 'admin'],
  'PUT /v1/issuer-keys': ['admin'],
  'POST /v1/transactions': ['gate', 'admin'],
  'GET /v1/transactions': ['admin'],
  'GET /v1/transactions/conflicts': ['admin'],
};
/** Open to anyone, tokens or not: health checks and the list signing public key. */
export const OPEN_ROUTES: readonly string[] = ['GET /v1/health', 'GET /v1/lists/public-key'];
/**
 * The rider pages, open to anyone too (register-page.ts): their form posts are rate-limited per client
 * address and go through the same checks as the API, so no token reaches a browser.
 */
export const PAGE_ROUTES: readonly string[] = ['GET /register', 'POST /register/submit', 'GET /link', 'POST /link/submit'];

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

/** SHA-256 of a token: tokens are looked up by digest, never compared byte by byte. */
export const tokenDigest = (t: string) => createHash('sha256').update(t).digest('hex');

/** Tokens by digest. */
export function accessMap(tokens: readonly AccessToken[]): Map<string, AccessToken> {
  return new Map(tokens.map((t) => [tokenDigest(t.token), t]));
}
