// The enforcement schedule: per credential kind, from when the gates advise riders to register and from
// when they enforce registration and status, as a document the back office signs (Ed25519, with the key
// that signs its lists; the envelope names the key by the same 8-byte key id). Versioned by `seq`: a gate
// never goes back to a lower one. The payload is signed as exact bytes (no JSON canonicalisation), as the
// issuer trust list is. Pure: node:crypto only. Fields: protocol/README.md ("Enforcement schedule").

import { signDocument, verifySignedDocument, type SignedDocumentError } from './signed-document.js';
import type { KeyObject } from 'node:crypto';
import { CREDENTIAL_KINDS, type CredentialKind } from './credential.js';
import type { TrustedListKey } from './lists/signature.js';

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

export type PolicyScheduleError = SignedDocumentError;
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
  return signDocument(POLICY_SCHEDULE_FORMAT, POLICY_SCHEDULE_VERSION, { v: POLICY_SCHEDULE_VERSION, seq: schedule.seq, issuedAtMs: schedule.issuedAtMs, kinds }, privateKey);
}

const isInt = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= Number.MAX_SAFE_INTEGER;

/** Parse the document and verify its signature against the list keys the gate trusts (by key id). */
export function verifyPolicySchedule(doc: Uint8Array, keys: readonly TrustedListKey[]): PolicyScheduleResult {
  const signed = verifySignedDocument(doc, MAX_DOCUMENT_BYTES, POLICY_SCHEDULE_FORMAT, POLICY_SCHEDULE_VERSION, keys);
  if (!signed.ok) return signed;
  const s = parsePayload(signed.payload);
  return typeof s === 'string' ? { ok: false, error: 'payload', detail: s } : { ok: true, schedule: s };
}

function parsePayload(p: Record<string, unknown>): PolicySchedule | string {
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
