// The T-Union (JT/T 978) / PBOC e-purse purchase with a PSAM: the card's and the PSAM's APDUs, the
// parsers of their answers (classified results), the trip record in the card's composite cache (file
// 0x1A), and the cryptography both sides compute (key diversification, session key, MAC1, MAC2, TAC).
// Encoders sit beside parsers so every layout is written once (protocol/README.md, "E-purse purchase").
// Pure: node:crypto only. Single DES runs as 3DES with one key three times (K|K|K = DES): Node 20's
// OpenSSL 3 keeps plain `des-ecb`/`des-cbc` in the legacy provider, `des-ede3-ecb` in the default one.

import { createCipheriv } from 'node:crypto';
import { bcdDigits, expectData, fail, splitAnswer, toBcd, type Parsed } from './apdu.js';

/** Transaction types (the MAC1/TAC input byte and GET TRANSACTION PROOF's P2). */
export const TX_PURCHASE = 0x06;
export const TX_COMPOSITE = 0x09;
/** The purchase key index the gate asks for. */
export const PURCHASE_KEY_INDEX = 0x01;
/** Our metro's record in the composite cache (file 0x1A), and its size. */
export const TRIP_RECORD_ID = 0x02;
export const TRIP_RECORD_BYTES = 48;
export const TRIP_FILE_SFI = 0x1a;

export const SW = {
  ok: 0x9000,
  /** MAC1 did not verify (wrong PSAM key), or MAC2 at the PSAM. */
  macError: 0x9302,
  /** Application permanently blocked. */
  blocked: 0x9303,
  /** Balance too low for the amount. */
  insufficient: 0x9401,
  /** GET TRANSACTION PROOF: no transaction with that counter. */
  noProof: 0x9406,
  conditions: 0x6985,
} as const;

// ---- Card commands ----

/** INITIALIZE FOR (COMPOSITE) PURCHASE: 80 50 P1 02 0B | key index | amount(4) | terminal id(6) | 0F. */
export function initPurchase(o: { amountFen: number; terminalId: Uint8Array; composite: boolean; keyIndex?: number }): Uint8Array {
  if (o.terminalId.length !== 6) throw new RangeError('terminal id must be 6 bytes');
  const c = new Uint8Array(5 + 11 + 1);
  c.set([0x80, 0x50, o.composite ? 0x03 : 0x01, 0x02, 0x0b]);
  c[5] = o.keyIndex ?? PURCHASE_KEY_INDEX;
  new DataView(c.buffer).setUint32(6, checkAmount(o.amountFen));
  c.set(o.terminalId, 10);
  c[16] = 0x0f;
  return c;
}

/** READ RECORD of the trip record (record `TRIP_RECORD_ID` of file 0x1A). */
export const readTripRecord = Uint8Array.from([0x00, 0xb2, TRIP_RECORD_ID, (TRIP_FILE_SFI << 3) | 4, TRIP_RECORD_BYTES]);

/** UPDATE CAPP DATA CACHE: 80 DC <record id> <SFI<<3> <len> record. Kept by the card until the DEBIT commits it. */
export function updateTripRecord(record: Uint8Array): Uint8Array {
  if (record.length !== TRIP_RECORD_BYTES) throw new RangeError(`trip record must be ${TRIP_RECORD_BYTES} bytes`);
  return Uint8Array.from([0x80, 0xdc, TRIP_RECORD_ID, TRIP_FILE_SFI << 3, TRIP_RECORD_BYTES, ...record]);
}

/** DEBIT FOR PURCHASE: 80 54 01 00 0F | terminal serial(4) | date(4) | time(3) | MAC1(4) | 08. */
export function debitForPurchase(o: { terminalSerial: number; dateTime: Uint8Array; mac1: Uint8Array }): Uint8Array {
  if (o.dateTime.length !== 7 || o.mac1.length !== 4) throw new RangeError('date-time 7 bytes, MAC1 4 bytes');
  const c = new Uint8Array(5 + 15 + 1);
  c.set([0x80, 0x54, 0x01, 0x00, 0x0f]);
  new DataView(c.buffer).setUint32(5, o.terminalSerial >>> 0);
  c.set(o.dateTime, 9);
  c.set(o.mac1, 16);
  c[20] = 0x08;
  return c;
}

/** GET TRANSACTION PROOF: 80 5A 00 <type> 02 | ATC(2) | 08 → MAC2(4) TAC(4) (the other order from DEBIT's answer). */
export function getTransactionProof(type: number, atc: number): Uint8Array {
  return Uint8Array.from([0x80, 0x5a, 0x00, type, 0x02, (atc >> 8) & 0xff, atc & 0xff, 0x08]);
}

// ---- PSAM commands ----

/** READ BINARY of the PSAM's terminal number (file 0x16, 6 bytes). */
export const readPsamTerminalId = Uint8Array.from([0x00, 0xb0, 0x96, 0x00, 0x06]);

export interface Mac1Input {
  cardRandom: Uint8Array;
  atc: number;
  amountFen: number;
  type: number;
  dateTime: Uint8Array;
  keyVersion: number;
  algorithm: number;
  /** The card's application serial, last 8 bytes (the diversification input). */
  cardSerial8: Uint8Array;
}

/** INIT SAM FOR PURCHASE: 80 70 00 00 1C | random(4) ATC(2) amount(4) type(1) date-time(7) key version(1) algorithm(1) serial(8) | 08. */
export function psamMac1(i: Mac1Input): Uint8Array {
  const c = new Uint8Array(5 + 28 + 1);
  c.set([0x80, 0x70, 0x00, 0x00, 0x1c]);
  c.set(i.cardRandom, 5);
  c[9] = (i.atc >> 8) & 0xff;
  c[10] = i.atc & 0xff;
  new DataView(c.buffer).setUint32(11, checkAmount(i.amountFen));
  c[15] = i.type;
  c.set(i.dateTime, 16);
  c[23] = i.keyVersion;
  c[24] = i.algorithm;
  c.set(i.cardSerial8, 25);
  c[33] = 0x08;
  return c;
}

/** CREDIT SAM FOR PURCHASE (verify MAC2): 80 72 00 00 04 | MAC2. */
export function psamVerifyMac2(mac2: Uint8Array): Uint8Array {
  return Uint8Array.from([0x80, 0x72, 0x00, 0x00, 0x04, ...mac2]);
}

/** Decode a PSAM MAC1 command (the virtual PSAM's side). */
export function decodePsamMac1(c: Uint8Array): Mac1Input | undefined {
  if (c.length < 33 || c[0] !== 0x80 || c[1] !== 0x70 || c[4] !== 0x1c) return undefined;
  return {
    cardRandom: c.slice(5, 9),
    atc: (c[9] << 8) | c[10],
    amountFen: new DataView(c.buffer, c.byteOffset).getUint32(11),
    type: c[15],
    dateTime: c.slice(16, 23),
    keyVersion: c[23],
    algorithm: c[24],
    cardSerial8: c.slice(25, 33),
  };
}

// ---- Answers ----

export interface InitPurchaseAnswer {
  balanceFen: number;
  atc: number;
  overdraftFen: number;
  keyVersion: number;
  algorithm: number;
  cardRandom: Uint8Array;
}

export type PurseError = 'blocked' | 'insufficient' | 'mac' | 'no-proof';
export type PurseParsed<T> = Parsed<T> | { ok: false; error: PurseError; detail: string; sw: number };

function purseStatus(answer: Uint8Array, what: string): { ok: false; error: PurseError; detail: string; sw: number } | undefined {
  const a = splitAnswer(answer);
  if (!a) return undefined;
  const detail = `${what}: status ${a.sw.toString(16).toUpperCase()}`;
  if (a.sw === SW.blocked) return { ok: false, error: 'blocked', detail, sw: a.sw };
  if (a.sw === SW.insufficient) return { ok: false, error: 'insufficient', detail, sw: a.sw };
  if (a.sw === SW.macError) return { ok: false, error: 'mac', detail, sw: a.sw };
  if (a.sw === SW.noProof) return { ok: false, error: 'no-proof', detail, sw: a.sw };
  return undefined;
}

export function parseInitPurchase(answer: Uint8Array): PurseParsed<InitPurchaseAnswer> {
  const s = purseStatus(answer, 'INITIALIZE FOR PURCHASE');
  if (s) return s;
  const d = expectData(answer, 15, 'INITIALIZE FOR PURCHASE');
  if (!d.ok) return d;
  const b = d.value;
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  return {
    ok: true,
    value: { balanceFen: v.getInt32(0), atc: v.getUint16(4), overdraftFen: (b[6] << 16) | (b[7] << 8) | b[8], keyVersion: b[9], algorithm: b[10], cardRandom: b.slice(11, 15) },
  };
}

export function encodeInitPurchaseAnswer(a: InitPurchaseAnswer): Uint8Array {
  const b = new Uint8Array(15);
  const v = new DataView(b.buffer);
  v.setInt32(0, a.balanceFen);
  v.setUint16(4, a.atc);
  b.set([(a.overdraftFen >> 16) & 0xff, (a.overdraftFen >> 8) & 0xff, a.overdraftFen & 0xff], 6);
  b[9] = a.keyVersion;
  b[10] = a.algorithm;
  b.set(a.cardRandom, 11);
  return b;
}

/** DEBIT FOR PURCHASE answer: TAC(4) MAC2(4). */
export function parseProof(answer: Uint8Array, what: string): PurseParsed<{ tac: Uint8Array; mac2: Uint8Array }> {
  const s = purseStatus(answer, what);
  if (s) return s;
  const d = expectData(answer, 8, what);
  if (!d.ok) return d;
  return { ok: true, value: { tac: d.value.slice(0, 4), mac2: d.value.slice(4, 8) } };
}

/** GET TRANSACTION PROOF answer: MAC2(4) TAC(4); `94 06` = no debit with that counter. */
export function parseTransactionProof(answer: Uint8Array): PurseParsed<{ tac: Uint8Array; mac2: Uint8Array }> {
  const what = 'GET TRANSACTION PROOF';
  const s = purseStatus(answer, what);
  if (s) return s;
  const d = expectData(answer, 8, what);
  if (!d.ok) return d;
  return { ok: true, value: { mac2: d.value.slice(0, 4), tac: d.value.slice(4, 8) } };
}

/** The card's side of GET TRANSACTION PROOF: the 8 data bytes, MAC2 then TAC. */
export function encodeTransactionProof(p: { mac2: Uint8Array; tac: Uint8Array }): Uint8Array {
  if (p.mac2.length !== 4 || p.tac.length !== 4) throw new RangeError('MAC2 and TAC are 4 bytes each');
  return Uint8Array.from([...p.mac2, ...p.tac]);
}

export function parsePsamMac1(answer: Uint8Array): PurseParsed<{ terminalSerial: number; mac1: Uint8Array }> {
  const d = expectData(answer, 8, 'PSAM MAC1');
  if (!d.ok) return d;
  return { ok: true, value: { terminalSerial: new DataView(d.value.buffer, d.value.byteOffset).getUint32(0), mac1: d.value.slice(4, 8) } };
}

export function parsePsamTerminalId(answer: Uint8Array): Parsed<Uint8Array> {
  const d = expectData(answer, 6, 'PSAM terminal id');
  return d.ok ? { ok: true, value: d.value.slice(0, 6) } : d;
}

/** 90 00 → verified; 93 02 → MAC2 wrong; anything else is classified as unusable. */
export function parsePsamMac2(answer: Uint8Array): PurseParsed<true> {
  const s = purseStatus(answer, 'PSAM MAC2');
  if (s) return s;
  const a = splitAnswer(answer);
  if (!a) return fail('short-answer', 'PSAM MAC2: no status word');
  if (a.sw !== SW.ok) return fail('bad-status', `PSAM MAC2: status ${a.sw.toString(16).toUpperCase()}`);
  return { ok: true, value: true };
}

// ---- The trip record (our layout in the composite cache; README table) ----

export type TripStatus = 'none' | 'entered' | 'exited';
const STATUS_BYTE: Record<TripStatus, number> = { none: 0, entered: 1, exited: 2 };

export interface TripRecord {
  status: TripStatus;
  entryStation: number;
  entryLane: number;
  entryAtMs: number;
  exitStation: number;
  exitLane: number;
  exitAtMs: number;
  /** What the last transaction charged (fen). */
  lastChargeFen: number;
  /** The calendar month (Beijing) `monthSpentFen` counts, YYYYMM, 0 = none. */
  month: number;
  monthSpentFen: number;
}

export const EMPTY_TRIP: TripRecord = { status: 'none', entryStation: 0, entryLane: 0, entryAtMs: 0, exitStation: 0, exitLane: 0, exitAtMs: 0, lastChargeFen: 0, month: 0, monthSpentFen: 0 };

export function encodeTripRecord(r: TripRecord): Uint8Array {
  const b = new Uint8Array(TRIP_RECORD_BYTES);
  const v = new DataView(b.buffer);
  b[0] = TRIP_RECORD_ID;
  b[1] = TRIP_RECORD_BYTES - 2;
  b[3] = STATUS_BYTE[r.status];
  v.setUint16(4, r.entryStation);
  b[6] = r.entryLane;
  b.set(r.entryAtMs ? beijingDateTime(r.entryAtMs) : new Uint8Array(7), 7);
  v.setUint16(14, r.exitStation);
  b[16] = r.exitLane;
  b.set(r.exitAtMs ? beijingDateTime(r.exitAtMs) : new Uint8Array(7), 17);
  v.setUint32(24, r.lastChargeFen);
  b.set(toBcd(String(r.month).padStart(6, '0')), 28);
  v.setUint32(31, r.monthSpentFen);
  return b;
}

export function parseTripRecord(answer: Uint8Array): Parsed<TripRecord> {
  const a = splitAnswer(answer);
  // A card that never rode our metro has no record yet.
  if (a && (a.sw === 0x6a83 || a.sw === 0x6a82)) return { ok: true, value: EMPTY_TRIP };
  const d = expectData(answer, TRIP_RECORD_BYTES, 'trip record');
  if (!d.ok) return d;
  const b = d.value;
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  if (b[0] !== TRIP_RECORD_ID || b[1] !== TRIP_RECORD_BYTES - 2) return fail('inconsistent', `trip record: id ${b[0]} length ${b[1]}`);
  const status = (['none', 'entered', 'exited'] as const)[b[3]];
  if (!status) return fail('inconsistent', `trip record: status ${b[3]}`);
  const entryAtMs = parseDateTime(b.subarray(7, 14));
  const exitAtMs = parseDateTime(b.subarray(17, 24));
  const month = bcdDigits(b.subarray(28, 31));
  if (entryAtMs === undefined || exitAtMs === undefined || month === undefined) return fail('bad-bcd', 'trip record: time or month not BCD');
  return {
    ok: true,
    value: {
      status,
      entryStation: v.getUint16(4),
      entryLane: b[6],
      entryAtMs,
      exitStation: v.getUint16(14),
      exitLane: b[16],
      exitAtMs,
      lastChargeFen: v.getUint32(24),
      month: Number(month),
      monthSpentFen: v.getUint32(31),
    },
  };
}

/** 7-byte BCD YYYYMMDDhhmmss in Beijing time (UTC+8): the date-time of MAC1, DEBIT and TAC. Whole seconds. */
export function beijingDateTime(ms: number): Uint8Array {
  const t = new Date(ms + 8 * 3600_000);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return toBcd(`${p(t.getUTCFullYear(), 4)}${p(t.getUTCMonth() + 1)}${p(t.getUTCDate())}${p(t.getUTCHours())}${p(t.getUTCMinutes())}${p(t.getUTCSeconds())}`);
}

function parseDateTime(b: Uint8Array): number | undefined {
  const s = bcdDigits(b);
  if (s === undefined) return undefined;
  if (/^0+$/.test(s)) return 0;
  const [y, mo, d, h, mi, se] = [s.slice(0, 4), s.slice(4, 6), s.slice(6, 8), s.slice(8, 10), s.slice(10, 12), s.slice(12, 14)].map(Number);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59) return undefined;
  return Date.UTC(y, mo - 1, d, h - 8, mi, se);
}

/** The Beijing calendar month at `ms`, as YYYYMM. */
export function beijingMonth(ms: number): number {
  const t = new Date(ms + 8 * 3600_000);
  return t.getUTCFullYear() * 100 + t.getUTCMonth() + 1;
}

// ---- Cryptography ----

function ecb3(key24: Uint8Array, block: Uint8Array): Uint8Array {
  const c = createCipheriv('des-ede3-ecb', key24, null);
  c.setAutoPadding(false);
  return new Uint8Array(c.update(block));
}

/** Single DES of one 8-byte block. */
export function des(key8: Uint8Array, block8: Uint8Array): Uint8Array {
  return ecb3(Uint8Array.from([...key8, ...key8, ...key8]), block8);
}

/** Two-key 3DES (K1 K2 K1, EDE) of one 8-byte block. */
export function tdes(key16: Uint8Array, block8: Uint8Array): Uint8Array {
  if (key16.length !== 16) throw new RangeError('3DES key must be 16 bytes');
  return ecb3(Uint8Array.from([...key16, ...key16.subarray(0, 8)]), block8);
}

/** The card's key from the issuer's master key and the card serial (8 bytes): 3DES(M, s) ‖ 3DES(M, ¬s). */
export function diversify(master16: Uint8Array, serial8: Uint8Array): Uint8Array {
  return Uint8Array.from([...tdes(master16, serial8), ...tdes(master16, serial8.map((x) => ~x & 0xff))]);
}

/** The purchase session key: 3DES(card purchase key, card random ‖ ATC ‖ terminal serial's last 2 bytes). */
export function purchaseSessionKey(dpk16: Uint8Array, cardRandom: Uint8Array, atc: number, terminalSerial: number): Uint8Array {
  return tdes(dpk16, Uint8Array.from([...cardRandom, (atc >> 8) & 0xff, atc & 0xff, (terminalSerial >> 8) & 0xff, terminalSerial & 0xff]));
}

/** The PBOC MAC: pad 80 00…, single-DES CBC from a zero IV, the first 4 bytes of the last block. */
export function pbocMac(key8: Uint8Array, data: Uint8Array): Uint8Array {
  const padded = new Uint8Array((Math.floor(data.length / 8) + 1) * 8);
  padded.set(data);
  padded[data.length] = 0x80;
  let x: Uint8Array = new Uint8Array(8);
  for (let i = 0; i < padded.length; i += 8) x = des(key8, x.map((b, j) => b ^ padded[i + j]));
  return x.slice(0, 4);
}

const u32 = (n: number) => Uint8Array.from([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);

/** MAC1 (PSAM → card): amount ‖ type ‖ terminal id ‖ date-time, under the session key. */
export function mac1(sessionKey: Uint8Array, amountFen: number, type: number, terminalId: Uint8Array, dateTime: Uint8Array): Uint8Array {
  return pbocMac(sessionKey, Uint8Array.from([...u32(amountFen), type, ...terminalId, ...dateTime]));
}

/** MAC2 (card → PSAM): amount, under the session key. */
export function mac2(sessionKey: Uint8Array, amountFen: number): Uint8Array {
  return pbocMac(sessionKey, u32(amountFen));
}

/** TAC (card → clearing): amount ‖ type ‖ terminal id ‖ terminal serial ‖ date-time, under the TAC key's halves XORed. */
export function tac(tacKey16: Uint8Array, amountFen: number, type: number, terminalId: Uint8Array, terminalSerial: number, dateTime: Uint8Array): Uint8Array {
  const k = tacKey16.slice(0, 8).map((b, i) => b ^ tacKey16[8 + i]);
  return pbocMac(k, Uint8Array.from([...u32(amountFen), type, ...terminalId, ...u32(terminalSerial), ...dateTime]));
}

/** The last 8 bytes of the 10-byte application serial (file 0x15 bytes 12-19) from the 19-digit card number. */
export function cardSerial8(cardNumber: string): Uint8Array {
  return toBcd(('0' + cardNumber).slice(4));
}

function checkAmount(fen: number): number {
  if (!Number.isInteger(fen) || fen < 0 || fen > 0x7fffffff) throw new RangeError(`amount must be 0..2^31-1 fen: ${fen}`);
  return fen;
}
