// Golden bytes for the card and ticket layouts, both directions, and every classified refusal.
import { describe, expect, test } from 'vitest';
import { beijingDate, bcdDate, classifyAtr, classifyPcscCode, fromHex, isRandomUid, pcscCodeOf, TYPE2_ATR, iso14443Atr, toHex } from '../../protocol/apdu.js';
import { readTap } from '../../protocol/card-session.js';
import { crc16, encodeTicket, joinTicketReads, parseTicket, ticketReads } from '../../protocol/ticket.js';
import { APDU, encodeFile15, encodeOldYikatong, parseBalance, parseFile15, parseFile17, parseOldYikatong, parseSelect, tUnionRead } from '../../protocol/tunion.js';
import { checkCredential } from '../../protocol/credential.js';
import { virtualCard } from '../../simulator/virtual-card.js';

const F15 = '0000 1000 0000 0000 00 01 0310 4999 9000 0123 4567 2015 0101 2030 1231 02 00';
const NOW = Date.UTC(2022, 4, 15, 2, 0); // 2022-05-15 10:00 Beijing

describe('T-Union commands', () => {
  test('golden command bytes', () => {
    expect(toHex(APDU.selectTUnion)).toBe('00A4040008A00000063201010500');
    expect(toHex(APDU.readFile15)).toBe('00B095001E');
    expect(toHex(APDU.readFile17)).toBe('00B097000B');
    expect(toHex(APDU.getBalance)).toBe('805C000204');
    expect(toHex(APDU.readOldYikatong)).toBe('00B0840020');
    expect(toHex(APDU.getUid)).toBe('FFCA000000');
    expect(ticketReads().map(toHex)).toEqual(['FFB0000410', 'FFB0000810', 'FFB0000C10']);
  });
});

describe('file 0x15', () => {
  test('golden bytes parse to the 19-digit card number, dates and type', () => {
    const r = parseFile15(fromHex(F15 + '9000'));
    expect(r).toEqual({ ok: true, value: { issuer: '0000', city: '1000', version: 1, cardNumber: '3104999900001234567', start: 20150101, expiry: 20301231, cardType: 2 } });
    expect(checkCredential({ kind: 'card', cardNumber: (r as { value: { cardNumber: string } }).value.cardNumber }).ok).toBe(true);
  });
  test('the encoder writes the same bytes', () => {
    expect(toHex(encodeFile15({ cardNumber: '3104999900001234567', start: 20150101, expiry: 20301231, cardType: 2 }))).toBe(F15.replace(/ /g, ''));
  });
  test('classified refusals', () => {
    expect(parseFile15(fromHex('6A82'))).toMatchObject({ ok: false, error: 'bad-status' });
    expect(parseFile15(fromHex('90'))).toMatchObject({ ok: false, error: 'short-answer' });
    expect(parseFile15(fromHex(F15.slice(0, 40) + '9000'))).toMatchObject({ ok: false, error: 'short-answer' });
    expect(parseFile15(fromHex(F15.replace('0310', '031A') + '9000'))).toMatchObject({ ok: false, error: 'bad-bcd' });
    expect(parseFile15(fromHex(F15.replace('2030 1231', '2030 0228') + '9000'))).toMatchObject({ ok: true });
    expect(parseFile15(fromHex(F15.replace('2030 1231', '2030 0230') + '9000'))).toMatchObject({ ok: false, error: 'bad-bcd' }); // 30 February
    expect(parseFile15(fromHex(F15.replace('2030 1231', '2010 1231') + '9000'))).toMatchObject({ ok: false, error: 'inconsistent' });
  });
  test('validity and card type agreement', () => {
    const f = parseFile15(fromHex(F15 + '9000'));
    if (!f.ok) throw new Error();
    expect(tUnionRead(f.value, 2, 100, 20220515)).toMatchObject({ ok: true, value: { cardNumber: '3104999900001234567', balanceFen: 100, cardType: 2 } });
    expect(tUnionRead(f.value, 3, 100, 20220515)).toMatchObject({ ok: false, error: 'inconsistent' });
    expect(tUnionRead(f.value, 2, 0, 20310101)).toMatchObject({ ok: false, error: 'expired' });
    expect(tUnionRead(f.value, 2, 0, 20301231)).toMatchObject({ ok: true }); // expiry day inclusive
    expect(tUnionRead(f.value, 2, 0, 20141231)).toMatchObject({ ok: false, error: 'not-yet-valid' });
  });
});

describe('file 0x17, balance, SELECT', () => {
  test('golden bytes', () => {
    expect(parseFile17(fromHex('00000000000000000000039000'))).toEqual({ ok: true, value: 3 });
    expect(parseFile17(fromHex('00000000000000000000099000'))).toMatchObject({ ok: false, error: 'inconsistent' });
    expect(parseBalance(fromHex('000009309000'))).toEqual({ ok: true, value: 2352 });
    expect(parseBalance(fromHex('FFFFFF389000'))).toEqual({ ok: true, value: -200 });
    expect(parseBalance(fromHex('00009000'))).toMatchObject({ ok: false, error: 'short-answer' });
    expect(parseSelect(fromHex('9000'))).toEqual({ kind: 'selected' });
    expect(parseSelect(fromHex('6A82'))).toEqual({ kind: 'absent', sw: 0x6a82 });
    expect(parseSelect(fromHex('6F00'))).toMatchObject({ kind: 'error', error: 'bad-status' });
    expect(parseSelect(fromHex(''))).toMatchObject({ kind: 'error', error: 'short-answer' });
  });
});

describe('old Yikatong (BMAC) record', () => {
  const OLD = '9876 5432 1098 7654 1000 01 00000000000000000000000000 2010 0101 2030 1231';
  test('golden bytes both ways', () => {
    expect(parseOldYikatong(fromHex(OLD + '9000'))).toEqual({ ok: true, value: { cardNumber: '1009876543210987654', city: '1000', cardType: 1, start: 20100101, expiry: 20301231 } });
    expect(toHex(encodeOldYikatong({ serial: '9876543210987654', start: 20100101, expiry: 20301231 }))).toBe(OLD.replace(/ /g, ''));
  });
  test('refusals', () => {
    expect(parseOldYikatong(fromHex('6A82'))).toMatchObject({ ok: false, error: 'not-supported' });
    expect(parseOldYikatong(fromHex('6581'))).toMatchObject({ ok: false, error: 'bad-status' });
    expect(parseOldYikatong(fromHex(OLD.replace('9876', '98F6') + '9000'))).toMatchObject({ ok: false, error: 'bad-bcd' });
  });
});

describe('commemorative ticket (Type 2 pages 4-13)', () => {
  const IMG = '424A5401 0C010000 4F4C594D 50494332 30323230 00000000 00000000 20220204 20221231';
  test('golden image and checksum', () => {
    const img = encodeTicket({ ticketNumber: 'OLYMPIC20220', series: 1, validFrom: 20220204, validUntil: 20221231 });
    expect(toHex(img.subarray(0, 36))).toBe(IMG.replace(/ /g, '').slice(0, 72));
    expect(crc16(new TextEncoder().encode('123456789'))).toBe(0x29b1);
    expect(parseTicket(img)).toEqual({ ok: true, value: { ticketNumber: 'OLYMPIC20220', series: 1, validFrom: 20220204, validUntil: 20221231 } });
  });
  test('literal image', () => {
    // "BJT" v1, length 12, series 1, "OLYMPIC20220", 2022-02-04 .. 2022-12-31, CRC-16/CCITT-FALSE over bytes 0-35.
    const body = fromHex('424A5401 0C010000 4F4C594D 50494332 30323230 00000000 00000000 20220204 20221231');
    const crc = crc16(body);
    const img = new Uint8Array(40);
    img.set(body);
    img[36] = crc >> 8;
    img[37] = crc & 0xff;
    expect(toHex(encodeTicket({ ticketNumber: 'OLYMPIC20220', series: 1, validFrom: 20220204, validUntil: 20221231 }))).toBe(toHex(img));
  });
  test('refusals', () => {
    const img = encodeTicket({ ticketNumber: 'OLYMPIC20220', series: 1, validFrom: 20220204, validUntil: 20221231 });
    const bad = Uint8Array.from(img);
    bad[10] ^= 1;
    expect(parseTicket(bad)).toMatchObject({ ok: false, error: 'inconsistent' });
    const blank = new Uint8Array(40);
    expect(parseTicket(blank)).toMatchObject({ ok: false, error: 'not-supported' });
    expect(joinTicketReads([fromHex('00'.repeat(16) + '9000'), fromHex('6A81')])).toMatchObject({ ok: false, error: 'bad-status' });
    expect(joinTicketReads([fromHex('00'.repeat(16) + '9000')])).toMatchObject({ ok: false, error: 'short-answer' });
  });
});

describe('ATR, UID, PC/SC codes, dates', () => {
  test('ATR classes', () => {
    expect(toHex(TYPE2_ATR)).toBe('3B8F8001804F0CA0000003060300030000000068');
    expect(classifyAtr(TYPE2_ATR)).toBe('type2');
    expect(classifyAtr(fromHex('3B8F8001804F0CA0000003060300010000000000'))).toBe('storage-other'); // MIFARE Classic 1K
    expect(classifyAtr(iso14443Atr(new Uint8Array()))).toBe('iso14443-4');
    expect(toHex(iso14443Atr(new Uint8Array()))).toBe('3B80800101');
    expect(classifyAtr(fromHex('3B00'))).toBe('unknown');
  });
  test('random UIDs', () => {
    expect(isRandomUid(fromHex('08A1B2C3'))).toBe(true);
    expect(isRandomUid(fromHex('04A1B2C3D4E5F6'))).toBe(false);
  });
  test('PC/SC codes', () => {
    expect(pcscCodeOf('SCardTransmit error: Transaction failed.(0x80100016)')).toBe(0x80100016);
    for (const c of [0x80100016, 0x8010002f, 0x80100068, 0x80100069]) expect(classifyPcscCode(c)).toBe('card');
    for (const c of [0x80100017, 0x8010001d, 0x80100009]) expect(classifyPcscCode(c)).toBe('reader');
  });
  test('dates', () => {
    expect(bcdDate(fromHex('20240229'))).toBe(20240229);
    expect(bcdDate(fromHex('20230229'))).toBeUndefined();
    expect(beijingDate(Date.UTC(2022, 4, 14, 16, 0))).toBe(20220515); // midnight in Beijing
  });
});

describe('one tap against a virtual card, no PC/SC (exchange order)', () => {
  test('T-Union card and phone', async () => {
    for (const b of [virtualCard().tUnion({ serial: '3104999900001234567', expiry: 20301231, balanceFen: 42 }), virtualCard().phone({ serial: '3104999900001234567', expiry: 20301231 })]) {
      const card = b.build();
      const st = { selected: false, uid: card.newUid() };
      const sent: string[] = [];
      const out = await readTap(async (c) => (sent.push(toHex(c)), card.respond(c, st)), card.atr, NOW);
      expect(sent).toEqual(['FFCA000000', '00A4040008A00000063201010500', '00B095001E', '00B097000B', '805C000204']);
      expect(out).toMatchObject({ ok: true, credential: { kind: card.kind === 'phone' ? 'phone-nfc' : 'card', cardNumber: '3104999900001234567' } });
    }
  });
  test('an empty answer (card gone under vpcd) is "tap again"', async () => {
    const out = await readTap(async (c) => (c[0] === 0xff ? fromHex('112233449000') : new Uint8Array()), iso14443Atr(new Uint8Array()), NOW);
    expect(out).toMatchObject({ ok: false, reason: 'tap-again', error: 'no-answer' });
  });
});
