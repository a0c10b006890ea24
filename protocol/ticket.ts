// Commemorative metro ticket on an NFC Forum Type 2 tag (MIFARE Ultralight / NTAG21x): our own
// layout in user pages 4-13, read through the PC/SC reader's READ BINARY pseudo-APDU (FF B0 00 page 10,
// four pages per read, as the Type 2 READ command returns them). Layout table in protocol/README.md,
// section "Cards and tickets". Pure: no I/O.

import { bcdDate, checkValidity, dateToBcd, expectData, fail, type Parsed, type YyyyMmDd } from './apdu.js';

export const TICKET_MAGIC = Uint8Array.from([0x42, 0x4a, 0x54]); // "BJT"
export const TICKET_VERSION = 1;
export const TICKET_FIRST_PAGE = 4;
/** Pages 4..13: 40 bytes. */
export const TICKET_PAGES = 10;
export const TICKET_BYTES = TICKET_PAGES * 4;
/** Pages per READ: the Type 2 READ command answers 16 bytes (4 pages) whatever the page. */
export const PAGES_PER_READ = 4;

/** The page-read commands of one ticket tap, in order: FF B0 00 <page> 10. */
export function ticketReads(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let p = TICKET_FIRST_PAGE; p < TICKET_FIRST_PAGE + TICKET_PAGES; p += PAGES_PER_READ) out.push(readPages(p));
  return out;
}

export function readPages(page: number): Uint8Array {
  return Uint8Array.from([0xff, 0xb0, 0x00, page & 0xff, PAGES_PER_READ * 4]);
}

export interface Ticket {
  ticketNumber: string;
  series: number;
  validFrom: YyyyMmDd;
  validUntil: YyyyMmDd;
}

const TICKET_NUMBER = /^[A-Z0-9]{8,20}$/;

/** Join the answers of ticketReads() (each 16 data bytes + 90 00) into the 40-byte ticket image. */
export function joinTicketReads(answers: Uint8Array[]): Parsed<Uint8Array> {
  const image = new Uint8Array(TICKET_BYTES);
  let at = 0;
  for (let i = 0; i < answers.length && at < TICKET_BYTES; i++) {
    const d = expectData(answers[i], 16, `page read ${TICKET_FIRST_PAGE + i * PAGES_PER_READ}`);
    if (!d.ok) return d;
    const take = Math.min(16, TICKET_BYTES - at);
    image.set(d.value.subarray(0, take), at);
    at += take;
  }
  if (at < TICKET_BYTES) return fail('short-answer', `ticket: ${at} of ${TICKET_BYTES} bytes read`);
  return { ok: true, value: image };
}

/** Parse the 40-byte ticket image (pages 4..13). Validity is checked separately. */
export function parseTicket(image: Uint8Array): Parsed<Ticket> {
  if (image.length < TICKET_BYTES) return fail('short-answer', `ticket: ${image.length} bytes, need ${TICKET_BYTES}`);
  if (image[0] !== TICKET_MAGIC[0] || image[1] !== TICKET_MAGIC[1] || image[2] !== TICKET_MAGIC[2]) return fail('not-supported', 'tag does not hold a metro ticket (no "BJT" mark on page 4)');
  if (image[3] !== TICKET_VERSION) return fail('not-supported', `ticket layout version ${image[3]} not supported`);
  const crc = crc16(image.subarray(0, 36));
  const stored = (image[36] << 8) | image[37];
  if (crc !== stored) return fail('inconsistent', `ticket checksum ${hex(stored)} does not match ${hex(crc)}`);
  const len = image[4];
  if (len < 8 || len > 20) return fail('inconsistent', `ticket number length ${len} outside 8-20`);
  const number = String.fromCharCode(...image.subarray(8, 8 + len));
  if (!TICKET_NUMBER.test(number)) return fail('inconsistent', 'ticket number holds characters other than A-Z 0-9');
  for (let i = 8 + len; i < 28; i++) if (image[i] !== 0) return fail('inconsistent', 'ticket number padding is not zero');
  const validFrom = bcdDate(image.subarray(28, 32));
  const validUntil = bcdDate(image.subarray(32, 36));
  if (validFrom === undefined || validUntil === undefined) return fail('bad-bcd', 'ticket validity date is not a BCD calendar date');
  if (validFrom > validUntil) return fail('inconsistent', `ticket valid from ${validFrom} after ${validUntil}`);
  return { ok: true, value: { ticketNumber: number, series: image[5], validFrom, validUntil } };
}

export function ticketRead(t: Ticket, today: YyyyMmDd): Parsed<Ticket> {
  const v = checkValidity(today, t.validFrom, t.validUntil);
  return v.ok ? { ok: true, value: t } : v;
}

/** Build the 40-byte ticket image (card side). */
export function encodeTicket(t: Ticket): Uint8Array {
  if (!TICKET_NUMBER.test(t.ticketNumber)) throw new Error(`ticket number must be 8-20 of [A-Z0-9]: ${t.ticketNumber}`);
  const b = new Uint8Array(TICKET_BYTES);
  b.set(TICKET_MAGIC, 0);
  b[3] = TICKET_VERSION;
  b[4] = t.ticketNumber.length;
  b[5] = t.series & 0xff;
  for (let i = 0; i < t.ticketNumber.length; i++) b[8 + i] = t.ticketNumber.charCodeAt(i);
  b.set(dateToBcd(t.validFrom), 28);
  b.set(dateToBcd(t.validUntil), 32);
  const crc = crc16(b.subarray(0, 36));
  b[36] = crc >> 8;
  b[37] = crc & 0xff;
  return b;
}

/** CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR); check("123456789") = 0x29B1. */
export function crc16(data: Uint8Array): number {
  let crc = 0xffff;
  for (const byte of data) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

function hex(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}
