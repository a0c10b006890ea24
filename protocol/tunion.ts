// China T-Union (JT/T 978) transport application and the older Beijing Yikatong (BMAC) layout:
// the APDUs a gate sends, and parsers of the answers into classified results. Byte layouts are in
// protocol/README.md, section "Cards and tickets". Encoders (used by the virtual cards) sit beside
// the parsers so every layout is written once. Pure: no I/O.

import {
  bcdDate,
  bcdDigits,
  checkValidity,
  dateToBcd,
  expectData,
  fail,
  splitAnswer,
  toBcd,
  type CardReadError,
  type Parsed,
  type YyyyMmDd,
} from './apdu.js';

export const TUNION_AID = Uint8Array.from([0xa0, 0x00, 0x00, 0x06, 0x32, 0x01, 0x01, 0x05]);

/** The commands of one tap, in the order the gate sends them. */
export const APDU = {
  /** SELECT by DF name: the T-Union transport application. */
  selectTUnion: Uint8Array.from([0x00, 0xa4, 0x04, 0x00, 0x08, ...TUNION_AID, 0x00]),
  /** READ BINARY, SFI 0x15 (P1 = 0x80 | SFI), 30 bytes: public issuer data. */
  readFile15: Uint8Array.from([0x00, 0xb0, 0x95, 0x00, 0x1e]),
  /** READ BINARY, SFI 0x17, 11 bytes: holder data (card type at byte 10). */
  readFile17: Uint8Array.from([0x00, 0xb0, 0x97, 0x00, 0x0b]),
  /** GET BALANCE (PBOC e-purse, P2 = 02 purse), 4 bytes in fen. */
  getBalance: Uint8Array.from([0x80, 0x5c, 0x00, 0x02, 0x04]),
  /** Older Beijing Yikatong (BMAC): READ BINARY, SFI 0x04, 32 bytes, from the card's default DF. */
  readOldYikatong: Uint8Array.from([0x00, 0xb0, 0x84, 0x00, 0x20]),
  /** PC/SC pseudo-APDU answered by the reader itself: the UID of the card in the field. */
  getUid: Uint8Array.from([0xff, 0xca, 0x00, 0x00, 0x00]),
} as const;

export const CARD_TYPES: Record<number, string> = { 1: 'normal', 2: 'student', 3: 'elderly', 4: 'test', 5: 'military' };

export interface TUnionFile15 {
  issuer: string; // 4 BCD digits
  city: string; // 4 BCD digits
  version: number;
  /** 19 digits: the 20-digit application serial without its first nibble. */
  cardNumber: string;
  start: YyyyMmDd;
  expiry: YyyyMmDd;
  /** Card type from byte 28 (0 = not recorded here; file 0x17 is authoritative). */
  cardType: number;
}

/** SELECT answer: 90 00 → selected; "not found / not supported" → try the old layout; anything else → unreadable. */
export type SelectOutcome = { kind: 'selected' } | { kind: 'absent'; sw: number } | { kind: 'error'; error: CardReadError; detail: string };

const ABSENT_SW = new Set([0x6a82, 0x6a81, 0x6d00, 0x6e00, 0x6a86, 0x6985]);

export function parseSelect(answer: Uint8Array): SelectOutcome {
  const a = splitAnswer(answer);
  if (!a) return { kind: 'error', error: 'short-answer', detail: `SELECT: ${answer.length} byte answer` };
  if (a.sw === 0x9000) return { kind: 'selected' };
  if (ABSENT_SW.has(a.sw)) return { kind: 'absent', sw: a.sw };
  return { kind: 'error', error: 'bad-status', detail: `SELECT: status ${a.sw.toString(16).toUpperCase()}` };
}

/** Parse file 0x15 (30 bytes). Validity is checked separately (checkValidity) so a technician's tool can still show an expired card. */
export function parseFile15(answer: Uint8Array): Parsed<TUnionFile15> {
  const d = expectData(answer, 30, 'file 0x15');
  if (!d.ok) return d;
  const b = d.value;
  const issuer = bcdDigits(b.subarray(0, 2));
  const city = bcdDigits(b.subarray(2, 4));
  const serial = bcdDigits(b.subarray(10, 20));
  if (issuer === undefined || city === undefined) return fail('bad-bcd', 'file 0x15: issuer or city code not BCD');
  if (serial === undefined) return fail('bad-bcd', 'file 0x15: application serial not BCD');
  const start = bcdDate(b.subarray(20, 24));
  const expiry = bcdDate(b.subarray(24, 28));
  if (start === undefined || expiry === undefined) return fail('bad-bcd', 'file 0x15: start or expiry date is not a BCD calendar date');
  if (start > expiry) return fail('inconsistent', `file 0x15: start ${start} after expiry ${expiry}`);
  const cardNumber = serial.slice(1);
  if (/^0+$/.test(cardNumber)) return fail('inconsistent', 'file 0x15: application serial is all zeros');
  return { ok: true, value: { issuer, city, version: b[9], cardNumber, start, expiry, cardType: b[28] } };
}

/** Parse file 0x17 (≥ 11 bytes): the card type at byte 10. */
export function parseFile17(answer: Uint8Array): Parsed<number> {
  const d = expectData(answer, 11, 'file 0x17');
  if (!d.ok) return d;
  const t = d.value[10];
  if (!(t in CARD_TYPES)) return fail('inconsistent', `file 0x17: unknown card type ${t}`);
  return { ok: true, value: t };
}

/** Parse a GET BALANCE answer: 4 bytes, big-endian, fen. */
export function parseBalance(answer: Uint8Array): Parsed<number> {
  const d = expectData(answer, 4, 'balance');
  if (!d.ok) return d;
  const b = d.value;
  // Signed: a card may be a few yuan overdrawn after the last ride's fare.
  return { ok: true, value: ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) | 0 };
}

export interface OldYikatong {
  /** 19 digits: "100" (our prefix for the old Beijing numbering) followed by the 16-digit BMAC serial. */
  cardNumber: string;
  city: string;
  cardType: number;
  start: YyyyMmDd;
  expiry: YyyyMmDd;
}

export const OLD_YIKATONG_PREFIX = '100';

/** Parse the older Beijing Yikatong (BMAC) 32-byte record. */
export function parseOldYikatong(answer: Uint8Array): Parsed<OldYikatong> {
  const a = splitAnswer(answer);
  if (a && a.sw !== 0x9000 && ABSENT_SW.has(a.sw)) return fail('not-supported', `old Yikatong record: status ${a.sw.toString(16).toUpperCase()}`);
  const d = expectData(answer, 32, 'old Yikatong record');
  if (!d.ok) return d;
  const b = d.value;
  const serial = bcdDigits(b.subarray(0, 8));
  const city = bcdDigits(b.subarray(8, 10));
  if (serial === undefined || city === undefined) return fail('bad-bcd', 'old Yikatong record: serial or city not BCD');
  const start = bcdDate(b.subarray(24, 28));
  const expiry = bcdDate(b.subarray(28, 32));
  if (start === undefined || expiry === undefined) return fail('bad-bcd', 'old Yikatong record: date not a BCD calendar date');
  if (start > expiry) return fail('inconsistent', `old Yikatong record: start ${start} after expiry ${expiry}`);
  if (/^0+$/.test(serial)) return fail('inconsistent', 'old Yikatong record: serial is all zeros');
  return { ok: true, value: { cardNumber: OLD_YIKATONG_PREFIX + serial, city, cardType: b[10], start, expiry } };
}

/** What one tap of a T-Union or old Yikatong card yielded. */
export interface CardRead {
  layout: 't-union' | 'old-yikatong';
  cardNumber: string;
  cardType?: number;
  balanceFen?: number;
  start: YyyyMmDd;
  expiry: YyyyMmDd;
}

/** Combine the T-Union reads of one tap: checks card type agreement and the validity window. */
export function tUnionRead(f15: TUnionFile15, cardType: number | undefined, balanceFen: number | undefined, today: YyyyMmDd): Parsed<CardRead> {
  if (cardType !== undefined && f15.cardType !== 0 && f15.cardType !== cardType) {
    return fail('inconsistent', `card type ${f15.cardType} in file 0x15 but ${cardType} in file 0x17`);
  }
  const v = checkValidity(today, f15.start, f15.expiry);
  if (!v.ok) return v;
  return { ok: true, value: { layout: 't-union', cardNumber: f15.cardNumber, cardType: cardType ?? (f15.cardType || undefined), balanceFen, start: f15.start, expiry: f15.expiry } };
}

export function oldYikatongRead(r: OldYikatong, balanceFen: number | undefined, today: YyyyMmDd): Parsed<CardRead> {
  const v = checkValidity(today, r.start, r.expiry);
  if (!v.ok) return v;
  return { ok: true, value: { layout: 'old-yikatong', cardNumber: r.cardNumber, cardType: r.cardType, balanceFen, start: r.start, expiry: r.expiry } };
}

// ---- Encoders (the card side; used by the virtual cards and the golden-byte tests) ----

export interface TUnionFields {
  /** 19-digit card number. */
  cardNumber: string;
  issuer?: string;
  city?: string;
  version?: number;
  start: YyyyMmDd;
  expiry: YyyyMmDd;
  cardType?: number;
}

export function encodeFile15(f: TUnionFields): Uint8Array {
  if (!/^\d{19}$/.test(f.cardNumber)) throw new Error(`card number must be 19 digits: ${f.cardNumber}`);
  const b = new Uint8Array(30);
  b.set(toBcd(f.issuer ?? '0000'), 0);
  b.set(toBcd(f.city ?? '1000'), 2);
  b[9] = f.version ?? 0x01;
  b.set(toBcd('0' + f.cardNumber), 10);
  b.set(dateToBcd(f.start), 20);
  b.set(dateToBcd(f.expiry), 24);
  b[28] = f.cardType ?? 1;
  return b;
}

export function encodeFile17(cardType: number): Uint8Array {
  const b = new Uint8Array(11);
  b[10] = cardType;
  return b;
}

export function encodeBalance(fen: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, fen);
  return b;
}

export interface OldYikatongFields {
  /** 16-digit BMAC serial (the card number is "100" + serial). */
  serial: string;
  city?: string;
  cardType?: number;
  start: YyyyMmDd;
  expiry: YyyyMmDd;
}

export function encodeOldYikatong(f: OldYikatongFields): Uint8Array {
  if (!/^\d{16}$/.test(f.serial)) throw new Error(`old Yikatong serial must be 16 digits: ${f.serial}`);
  const b = new Uint8Array(32);
  b.set(toBcd(f.serial), 0);
  b.set(toBcd(f.city ?? '1000'), 8);
  b[10] = f.cardType ?? 1;
  b.set(dateToBcd(f.start), 24);
  b.set(dateToBcd(f.expiry), 28);
  return b;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
