// What a rider presents at the gate, after the reader or camera has turned it into data.
// Pure: no I/O. Shared by the runtime and the simulator.

/** The eight issuer apps whose dynamic QR ride codes Beijing gates accept. */
export const QR_ISSUERS = [
  'yitongxing',
  'alipay',
  'unionpay',
  'cmb',
  'shanghai-metro',
  'tianjin-metro',
  'guangzhou-metro',
  'hohhot-metro',
] as const;
export type QrIssuer = (typeof QR_ISSUERS)[number];

export const CREDENTIAL_KINDS = ['qr', 'card', 'phone-nfc', 'ticket'] as const;
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number];

/** A QR ride code whose signature, issuer key, validity window and replay state have been checked. */
export interface QrCredential {
  kind: 'qr';
  issuer: QrIssuer;
  account: string;
  /** Unique id of this one code (replay protection); absent for pre-verified simulated codes. */
  codeId?: string;
  /** Last instant (ms since epoch) this code can be valid, used to expire replay records. */
  validUntilMs?: number;
}

/** A T-Union / Beijing Yikatong physical card: keyed by its 19-digit card number. */
export interface CardCredential {
  kind: 'card';
  cardNumber: string;
  cardType?: number;
  balanceFen?: number;
}

/** A phone emulating a T-Union card over NFC: random UID on every tap, so keyed by card number only. */
export interface PhoneNfcCredential {
  kind: 'phone-nfc';
  cardNumber: string;
  balanceFen?: number;
}

/** A commemorative metro ticket (NFC Type 2 tag) keyed by its printed ticket number. */
export interface TicketCredential {
  kind: 'ticket';
  ticketNumber: string;
}

export type Credential = QrCredential | CardCredential | PhoneNfcCredential | TicketCredential;

/**
 * The list key of a credential. A phone emulating a card and the physical card share the card's
 * number, so both map to `card:`: the rider registers the card number once.
 */
export function credentialKey(c: Credential): string {
  switch (c.kind) {
    case 'qr':
      return `qr:${c.issuer}:${c.account}`;
    case 'card':
    case 'phone-nfc':
      return `card:${c.cardNumber}`;
    case 'ticket':
      return `ticket:${c.ticketNumber}`;
  }
}

/**
 * A privacy-safe reference for logs and dashboards: never the full number or account.
 * Keeps the kind and the last four characters, plus a short non-reversible tag so two
 * different credentials with the same tail can still be told apart in one log.
 */
export function credentialRef(c: Credential): string {
  const key = credentialKey(c);
  const id = key.slice(key.lastIndexOf(':') + 1);
  const tail = id.slice(-4);
  return `${c.kind}:…${tail}#${fnv1a(key).toString(16).padStart(8, '0').slice(0, 6)}`;
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const CARD_NUMBER = /^\d{19}$/;
const TICKET_NUMBER = /^[A-Z0-9]{8,20}$/;
const ACCOUNT = /^[A-Za-z0-9_-]{1,64}$/;

export type CredentialCheck = { ok: true } | { ok: false; field: string; why: string };

/** Shape check for credentials arriving from any source (a driver bug or a simulator must not crash us). */
export function checkCredential(c: unknown): CredentialCheck {
  if (typeof c !== 'object' || c === null) return { ok: false, field: 'credential', why: 'not an object' };
  const o = c as Record<string, unknown>;
  switch (o.kind) {
    case 'qr':
      if (!QR_ISSUERS.includes(o.issuer as QrIssuer)) return { ok: false, field: 'issuer', why: `unknown QR issuer ${String(o.issuer)}` };
      if (typeof o.account !== 'string' || !ACCOUNT.test(o.account)) return { ok: false, field: 'account', why: 'account must be 1-64 of [A-Za-z0-9_-]' };
      return { ok: true };
    case 'card':
    case 'phone-nfc':
      if (typeof o.cardNumber !== 'string' || !CARD_NUMBER.test(o.cardNumber)) return { ok: false, field: 'cardNumber', why: 'card number must be 19 digits' };
      return { ok: true };
    case 'ticket':
      if (typeof o.ticketNumber !== 'string' || !TICKET_NUMBER.test(o.ticketNumber)) return { ok: false, field: 'ticketNumber', why: 'ticket number must be 8-20 of [A-Z0-9]' };
      return { ok: true };
    default:
      return { ok: false, field: 'kind', why: `unknown credential kind ${String(o.kind)}` };
  }
}

export type Direction = 'entry' | 'exit';
export type LaneDirection = Direction | 'bidirectional';
