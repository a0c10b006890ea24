// Signed list freshness statements for the tests' own little back offices (protocol/lists/freshness.ts):
// the header a real back office puts on every answer to GET /v1/lists/deltas, for the nonce in the request.
import type { KeyObject } from 'node:crypto';
import { FRESHNESS_HEADER, freshnessHeaderValue, nonceFromHex, signFreshness } from '../../protocol/lists/index.js';

let lastIssuedAtMs = 0;

/** `{ 'list-freshness': … }` for a request to `/v1/lists/deltas?…&nonce=…`, signed by `key`; issued-at times strictly increase. */
export function freshnessHeaders(
  reqUrl: string | undefined,
  key: KeyObject,
  s: { latestVersion?: number; latestPublishedAtMs?: number; trustListSeq?: number; issuedAtMs?: number } = {},
): Record<string, string> {
  const nonce = nonceFromHex(new URL(reqUrl ?? '/', 'http://x').searchParams.get('nonce') ?? undefined);
  const issuedAtMs = s.issuedAtMs ?? (lastIssuedAtMs = Math.max(Date.now(), lastIssuedAtMs + 1));
  const statement = signFreshness({ latestVersion: s.latestVersion ?? 0, latestPublishedAtMs: s.latestPublishedAtMs ?? 0, issuedAtMs, trustListSeq: s.trustListSeq ?? 0, nonce }, key);
  return { [FRESHNESS_HEADER]: freshnessHeaderValue(statement) };
}
