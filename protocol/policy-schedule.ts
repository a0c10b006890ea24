// The enforcement schedule: per credential kind, from when the gates advise riders to register and from
// when they enforce registration and status, as a document the back office signs (Ed25519, with the key
// that signs its lists; the envelope names the key by the same 8-byte key id). Versioned by `seq`: a gate
// never goes back to a lower one. The payload is signed as exact bytes (no JSON canonicalisation), as the
// issuer trust list is. Pure: node:crypto only. Fields: protocol/README.md ("Enforcement schedule").

import { parseSignedEnvelope } from './signed-document.js';
import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { CREDENTIAL_KINDS, type CredentialKind } from './credential.js';
import { listKeyId, type TrustedListKey } from './lists/signature.js';

export const POLICY_SCHEDULE_FORMAT = 'bj-policy-schedule';
export const POLICY_SCHEDULE_VERSION = 1;
const MAX_DOCUMENT_BYTES = 64 << 10;

/** What the gate does about registration and status for one kind of credential at one instant. */
export type EnforcementStage = 'not-enforced' | 'advise' | 'enforce';

export interface KindSchedule {
  /** From this instant (ms since epoch, inclusive) the gate advises: it opens and asks the rider to register. */
  adviseFromMs: number;
  /** From this instant (inclusive) it enforces: refusals as the lane's policy says. adviseFromMs <= enforceFromMs. */
  enforceFromMs: number;
}

export interface PolicySchedule {
  /** Monotonic; a gate never takes a lower one (the same seq again only with the same bytes). */
  seq: number;
  issuedAtMs: number;
  /** A kind absent here is enforced (today's behaviour). */
  kinds: Partial<Record<CredentialKind, KindSchedule>>;
}

export type PolicyScheduleError = 'json' | 'envelope' | 'unknown-key' | 'bad-signature' | 'payload';
export type PolicyScheduleResult = { ok: true; schedule: PolicySchedule } | { ok: false; error: PolicyScheduleError; detail: string };

/** The stage of `kind` at `nowMs`: not-enforced before adviseFromMs, advise before enforceFromMs, then enforce. */
export function stageAt(schedule: PolicySchedule | undefined, kind: CredentialKind, nowMs: number): EnforcementStage {
  const k = schedule?.kinds[kind];
  if (!k) return 'enforce';
  if (nowMs < k.adviseFromMs) return 'not-enforced';
  if (nowMs < k.enforceFromMs) return 'advise';
  return 'enforce';
}

/** Sign a schedule with the back office's list signing key (Ed25519 private key). */
export function signPolicySchedule(schedule: PolicySchedule, privateKey: KeyObject): Uint8Array {
  const kinds: Record<string, { adviseFromMs: number; enforceFromMs: number }> = {};
  for (const k of CREDENTIAL_KINDS) {
    const s = schedule.kinds[k];
    if (s) kinds[k] = { adviseFromMs: s.adviseFromMs, enforceFromMs: s.enforceFromMs };
  }
  const payload = Buffer.from(JSON.stringify({ v: POLICY_SCHEDULE_VERSION, seq: schedule.seq, issuedAtMs: schedule.issuedAtMs, kinds }), 'utf8');
  const env = {
    format: POLICY_SCHEDULE_FORMAT,
    v: POLICY_SCHEDULE_VERSION,
    alg: 'Ed25519',
    keyId: Buffer.from(listKeyId(createPublicKey(privateKey))).toString('hex'),
    payload: payload.toString('base64'),
    signature: sign(null, payload, privateKey).toString('base64'),
  };
  return new Uint8Array(Buffer.from(JSON.stringify(env), 'utf8'));
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
const b64 = (s: unknown): Buffer | undefined => (typeof s === 'string' && s.length % 4 === 0 && B64.test(s) ? Buffer.from(s, 'base64') : undefined);
const isInt = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= Number.MAX_SAFE_INTEGER;

/** Parse the document and verify its signature against the list keys the gate trusts (by key id). */
export function verifyPolicySchedule(doc: Uint8Array, keys: readonly TrustedListKey[]): PolicyScheduleResult {
  const parsed = parseSignedEnvelope(doc, MAX_DOCUMENT_BYTES, POLICY_SCHEDULE_FORMAT, POLICY_SCHEDULE_VERSION, true);
  if (!parsed.ok) return parsed;
  const env = parsed.env;
  if (typeof env.keyId !== 'string' || !/^[0-9a-f]{16}$/.test(env.keyId)) return { ok: false, error: 'envelope', detail: 'keyId must be 16 hex digits' };
  const payload = b64(env.payload);
  const sig = b64(env.signature);
  if (!payload || !sig || sig.length !== 64) return { ok: false, error: 'envelope', detail: 'payload/signature must be base64 (signature 64 bytes)' };
  const key = keys.find((k) => Buffer.from(k.keyId).toString('hex') === env.keyId);
  if (!key) return { ok: false, error: 'unknown-key', detail: `signing key ${env.keyId} not trusted` };
  let good = false;
  try {
    good = verify(null, payload, key.publicKey, sig);
  } catch {
    good = false;
  }
  if (!good) return { ok: false, error: 'bad-signature', detail: 'back office signature does not verify' };
  const s = parsePayload(payload);
  return typeof s === 'string' ? { ok: false, error: 'payload', detail: s } : { ok: true, schedule: s };
}

function parsePayload(bytes: Buffer): PolicySchedule | string {
  let p: Record<string, unknown>;
  try {
    p = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    return `payload JSON: ${(e as Error).message}`;
  }
  if (typeof p !== 'object' || p === null || Array.isArray(p)) return 'payload not an object';
  if (p.v !== POLICY_SCHEDULE_VERSION) return `payload v must be ${POLICY_SCHEDULE_VERSION}`;
  if (!isInt(p.seq)) return 'seq must be a non-negative integer';
  if (!isInt(p.issuedAtMs)) return 'issuedAtMs must be a non-negative integer';
  if (typeof p.kinds !== 'object' || p.kinds === null || Array.isArray(p.kinds)) return 'kinds must be an object';
  const kinds: PolicySchedule['kinds'] = {};
  for (const [kind, v] of Object.entries(p.kinds as Record<string, unknown>)) {
    if (!(CREDENTIAL_KINDS as readonly string[]).includes(kind)) return `kinds.${kind}: unknown credential kind`;
    const k = v as Record<string, unknown>;
    if (typeof k !== 'object' || k === null || !isInt(k.adviseFromMs) || !isInt(k.enforceFromMs) || k.adviseFromMs > k.enforceFromMs) {
      return `kinds.${kind}: adviseFromMs <= enforceFromMs, both integers`;
    }
    kinds[kind as CredentialKind] = { adviseFromMs: k.adviseFromMs, enforceFromMs: k.enforceFromMs };
  }
  return { seq: p.seq, issuedAtMs: p.issuedAtMs, kinds };
}

/**
 * The last day to register when enforcement begins at `enforceFromMs`: the Beijing (UTC+8) calendar day of
 * the millisecond before it, YYYY-MM-DD (what the display's "register by" shows: DISPLAY_DATE's day).
 */
export function registerByDay(enforceFromMs: number): string {
  const d = new Date(enforceFromMs - 1 + 8 * 3600_000);
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}-${String(d.getUTCDate()).padStart(2, '0')}`;
}

/**
 * The rider display's advice during the advise stage: register by the last day before enforcement begins
 * (`enforceFromMs`, the decision's `registerByMs`), in Beijing time (UTC+8).
 */
export function adviseMessage(enforceFromMs: number): { zh: string; en: string } {
  const day = registerByDay(enforceFromMs);
  const [, m, d] = day.split('-').map(Number);
  return { zh: `请于${m}月${d}日前完成乘车码升级或卡片登记`, en: `Please register by ${day}` };
}
