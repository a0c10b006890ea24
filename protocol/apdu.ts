// Smart-card exchange vocabulary shared by the PC/SC driver and the virtual cards: status words,
// BCD dates, ATR classification, and PC/SC error codes sorted into card faults and reader faults.
// Pure: no I/O.

/** Why an answer from a card could not be used. Values, never exceptions; each one is counted. */
export type CardReadError =
  /** The card answered a status word other than 90 00. */
  | 'bad-status'
  /** Fewer bytes than the layout needs (or no status word at all). */
  | 'short-answer'
  /** A field that must be BCD holds a nibble above 9, or a date that does not exist. */
  | 'bad-bcd'
  /** Fields that contradict each other (start after expiry, card type mismatch, bad checksum, ...). */
  | 'inconsistent'
  /** The card does not hold any application or layout we know. */
  | 'not-supported'
  | 'expired'
  | 'not-yet-valid'
  /** No bytes at all: the card left the field mid-exchange (vpcd and some readers report it so, not as an error). */
  | 'no-answer';

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: CardReadError; detail: string };

export function fail<T>(error: CardReadError, detail: string): Parsed<T> {
  return { ok: false, error, detail };
}

/** Split an R-APDU into data and status word; undefined when shorter than the 2-byte status word. */
export function splitAnswer(answer: Uint8Array): { data: Uint8Array; sw: number } | undefined {
  if (answer.length < 2) return undefined;
  return { data: answer.subarray(0, answer.length - 2), sw: (answer[answer.length - 2] << 8) | answer[answer.length - 1] };
}

/** Data of a 90 00 answer of at least `min` bytes, or the classified reason it is unusable. */
export function expectData(answer: Uint8Array, min: number, what: string): Parsed<Uint8Array> {
  const a = splitAnswer(answer);
  if (!a) return fail('short-answer', `${what}: ${answer.length} byte answer, no status word`);
  if (a.sw !== 0x9000) return fail('bad-status', `${what}: status ${hex16(a.sw)}`);
  if (a.data.length < min) return fail('short-answer', `${what}: ${a.data.length} bytes, need ${min}`);
  return { ok: true, value: a.data };
}

export function hex16(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex').toUpperCase();
}

export function fromHex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
}

/** BCD digits of `b` as a string, or undefined if any nibble is above 9. */
export function bcdDigits(b: Uint8Array): string | undefined {
  let s = '';
  for (const x of b) {
    const hi = x >> 4;
    const lo = x & 0x0f;
    if (hi > 9 || lo > 9) return undefined;
    s += String(hi) + String(lo);
  }
  return s;
}

/** Digits → packed BCD (the inverse of bcdDigits); `digits.length` must be even. */
export function toBcd(digits: string): Uint8Array {
  if (!/^(\d\d)*$/.test(digits)) throw new Error(`toBcd: need an even count of digits, got "${digits}"`);
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = (Number(digits[2 * i]) << 4) | Number(digits[2 * i + 1]);
  return out;
}

/** A calendar date as the number YYYYMMDD (orders like the date). */
export type YyyyMmDd = number;

/** A 4-byte BCD YYYYMMDD date, or undefined when not BCD or not a real calendar day. */
export function bcdDate(b: Uint8Array): YyyyMmDd | undefined {
  const s = bcdDigits(b);
  if (s === undefined || s.length !== 8) return undefined;
  const y = Number(s.slice(0, 4));
  const m = Number(s.slice(4, 6));
  const d = Number(s.slice(6, 8));
  if (y < 1990 || m < 1 || m > 12 || d < 1) return undefined;
  const days = new Date(Date.UTC(y, m, 0)).getUTCDate();
  if (d > days) return undefined;
  return y * 10000 + m * 100 + d;
}

export function dateToBcd(d: YyyyMmDd): Uint8Array {
  return toBcd(String(d).padStart(8, '0'));
}

/** The calendar date in Beijing (UTC+8, no daylight saving) at `ms`: card validity is in local days. */
export function beijingDate(ms: number): YyyyMmDd {
  const t = new Date(ms + 8 * 3600_000);
  return t.getUTCFullYear() * 10000 + (t.getUTCMonth() + 1) * 100 + t.getUTCDate();
}

/** Validity window check, both ends inclusive. */
export function checkValidity(today: YyyyMmDd, start: YyyyMmDd, expiry: YyyyMmDd): Parsed<true> {
  if (today < start) return fail('not-yet-valid', `valid from ${start}, today ${today}`);
  if (today > expiry) return fail('expired', `expired ${expiry}, today ${today}`);
  return { ok: true, value: true };
}

// ---- ATR (PC/SC Part 3 contactless ATR built by the reader) ----

export type AtrKind =
  /** ISO 14443-4 (T=CL) card or phone: speaks APDUs. */
  | 'iso14443-4'
  /** NFC Forum Type 2 tag (MIFARE Ultralight / NTAG): storage card, page reads through the reader. */
  | 'type2'
  /** Another storage card (MIFARE Classic, FeliCa, ...): not supported at the gate. */
  | 'storage-other'
  | 'unknown';

/**
 * Classify a contactless ATR. Storage cards get `3B 8F 80 01 80 4F 0C A0 00 00 03 06 SS NN NN 00 00 00 00 TCK`
 * (RID A0 00 00 03 06 = PC/SC, SS = standard, NN NN = card name); ISO 14443-4 cards get
 * `3B 8n 80 01 <historical bytes> TCK`. nfc-pcsc only looks at byte 5 == 0x4F; we also read the card name.
 */
export function classifyAtr(atr: Uint8Array): AtrKind {
  if (atr.length < 4 || atr[0] !== 0x3b) return 'unknown';
  if (atr.length >= 15 && atr[4] === 0x80 && atr[5] === 0x4f && atr[7] === 0xa0 && atr[8] === 0 && atr[9] === 0 && atr[10] === 0x03 && atr[11] === 0x06) {
    const ss = atr[12];
    const nn = (atr[13] << 8) | atr[14];
    // SS 03 = ISO 14443 A part 3; NN 0003 = MIFARE Ultralight (and NTAG2xx as ACS/CCID readers report them), 0026/003A = Ultralight C / EV1.
    if (ss === 0x03 && (nn === 0x0003 || nn === 0x0026 || nn === 0x003a)) return 'type2';
    return 'storage-other';
  }
  if ((atr[1] & 0xf0) === 0x80 && atr[2] === 0x80 && atr[3] === 0x01) return 'iso14443-4';
  return 'unknown';
}

/** The ATR a PC/SC reader builds for a Type 2 tag (MIFARE Ultralight / NTAG). */
export const TYPE2_ATR = withTck([0x3b, 0x8f, 0x80, 0x01, 0x80, 0x4f, 0x0c, 0xa0, 0x00, 0x00, 0x03, 0x06, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00]);

/** The ATR a PC/SC reader builds for an ISO 14443-4 card with the given historical bytes (≤ 15). */
export function iso14443Atr(historical: Uint8Array): Uint8Array {
  return withTck([0x3b, 0x80 | historical.length, 0x80, 0x01, ...historical]);
}

/** Append TCK: XOR of all bytes after TS. */
function withTck(bytes: number[]): Uint8Array {
  let x = 0;
  for (let i = 1; i < bytes.length; i++) x ^= bytes[i];
  return Uint8Array.from([...bytes, x]);
}

/** A 4-byte UID starting 0x08 is a random ID (ISO 14443-3 §6.4.4): phones (HCE) show a new one each tap. */
export function isRandomUid(uid: Uint8Array): boolean {
  return uid.length === 4 && uid[0] === 0x08;
}

// ---- PC/SC error codes ----

export type PcscFaultClass =
  /** The card went away or misbehaved during the exchange: ask the rider to tap again. */
  | 'card'
  /** The reader or pcscd is gone: the lane goes out of service until it is back. */
  | 'reader'
  | 'other';

const CARD_GONE = new Set([
  0x80100016, // SCARD_E_NOT_TRANSACTED
  0x8010002f, // SCARD_E_COMM_ERROR (card left the field mid-frame on many readers)
  0x80100066, // SCARD_W_UNRESPONSIVE_CARD
  0x80100067, // SCARD_W_UNPOWERED_CARD
  0x80100068, // SCARD_W_RESET_CARD
  0x80100069, // SCARD_W_REMOVED_CARD
  0x8010000c, // SCARD_E_NO_SMARTCARD
  0x8010000a, // SCARD_E_TIMEOUT
  0x80100008, // SCARD_E_INSUFFICIENT_BUFFER (answer longer than asked: a garbled card)
]);
const READER_GONE = new Set([
  0x80100017, // SCARD_E_READER_UNAVAILABLE
  0x80100009, // SCARD_E_UNKNOWN_READER
  0x8010001d, // SCARD_E_NO_SERVICE
  0x8010001e, // SCARD_E_SERVICE_STOPPED
  0x8010002e, // SCARD_E_NO_READERS_AVAILABLE
  0x80100003, // SCARD_E_INVALID_HANDLE (context died with pcscd)
  0x80100002, // SCARD_E_CANCELLED
]);

export function classifyPcscCode(code: number): PcscFaultClass {
  if (CARD_GONE.has(code)) return 'card';
  if (READER_GONE.has(code)) return 'reader';
  return 'other';
}

/** The PC/SC code in an error message such as "SCardTransmit error: Card was removed.(0x80100069)". */
export function pcscCodeOf(message: string): number | undefined {
  const m = /0x(8010[0-9a-fA-F]{4})/.exec(message);
  return m ? parseInt(m[1], 16) : undefined;
}
