// The e-purse cryptography against an independent implementation: the openssl command line (its legacy
// provider's single DES in CBC mode, its two-key 3DES "des-ede"), never Node's code path (which runs
// single DES as des-ede3 with one key). Plus the NBS single-DES vector, and golden bytes of every APDU.

import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../protocol/apdu.js';
import { VirtualPsam } from '../../simulator/virtual-psam.js';
import { VirtualPurse } from '../../simulator/virtual-purse.js';
import {
  beijingDateTime,
  cardSerial8,
  debitForPurchase,
  des,
  diversify,
  encodeInitPurchaseAnswer,
  encodeTripRecord,
  getTransactionProof,
  initPurchase,
  mac1,
  mac2,
  parseInitPurchase,
  parseProof,
  parsePsamMac2,
  parseTransactionProof,
  parseTripRecord,
  pbocMac,
  psamMac1,
  psamVerifyMac2,
  decodePsamMac1,
  purchaseSessionKey,
  readTripRecord,
  tac,
  tdes,
  updateTripRecord,
  TX_COMPOSITE,
} from '../../protocol/tunion-purse.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex').toUpperCase();
function openssl(args: string[], input: Uint8Array): Uint8Array {
  return new Uint8Array(execFileSync('openssl', ['enc', ...args, '-nopad'], { input: Buffer.from(input) }));
}
/** Single-DES CBC-MAC as the PBOC MAC, computed by the openssl CLI (legacy provider). */
function opensslMac(key8: Uint8Array, data: Uint8Array): string {
  const padded = new Uint8Array((Math.floor(data.length / 8) + 1) * 8);
  padded.set(data);
  padded[data.length] = 0x80;
  const out = openssl(['-des-cbc', '-K', hex(key8), '-iv', '0000000000000000', '-provider', 'legacy', '-provider', 'default'], padded);
  return hex(out.subarray(out.length - 8, out.length - 4));
}
const opensslTdes = (key16: Uint8Array, block: Uint8Array) => hex(openssl(['-des-ede', '-K', hex(key16)], block));

const MASTER_PURCHASE = fromHex('00112233445566778899AABBCCDDEEFF');
const MASTER_TAC = fromHex('0F1E2D3C4B5A69788796A5B4C3D2E1F0');
const CARD = '3104100070000000017';
const SERIAL8 = cardSerial8(CARD);
const TERMINAL_ID = fromHex('010203040506');
const DATETIME = beijingDateTime(Date.UTC(2024, 5, 1, 1, 2, 3)); // 2024-06-01 09:02:03 Beijing
const RANDOM = fromHex('A1B2C3D4');

describe('DES and 3DES', () => {
  it('single DES: the NBS vector (key 01…01, zero block → 8CA64DE9C1B123A7) and openssl', () => {
    expect(hex(des(fromHex('0101010101010101'), new Uint8Array(8)))).toBe('8CA64DE9C1B123A7');
    const k = fromHex('133457799BBCDFF1');
    const p = fromHex('0123456789ABCDEF');
    expect(hex(des(k, p))).toBe('85E813540F0AB405'); // the textbook example (Grabbe)
    expect(hex(des(k, p))).toBe(hex(openssl(['-des-ecb', '-K', hex(k), '-provider', 'legacy', '-provider', 'default'], p)));
  });
  it('two-key 3DES matches openssl des-ede', () => {
    for (const block of ['0000000000000000', 'FFFFFFFFFFFFFFFF', '0123456789ABCDEF']) {
      expect(hex(tdes(MASTER_PURCHASE, fromHex(block)))).toBe(opensslTdes(MASTER_PURCHASE, fromHex(block)));
    }
  });
});

describe('purchase keys and MACs against openssl', () => {
  const dpk = diversify(MASTER_PURCHASE, SERIAL8);
  const dtk = diversify(MASTER_TAC, SERIAL8);
  it('diversification: 3DES(M, serial) ‖ 3DES(M, ¬serial)', () => {
    expect(hex(dpk)).toBe(opensslTdes(MASTER_PURCHASE, SERIAL8) + opensslTdes(MASTER_PURCHASE, SERIAL8.map((x) => ~x & 0xff)));
  });
  it('session key, MAC1, MAC2 and TAC', () => {
    const atc = 0x0102;
    const serial = 0x0000abcd;
    const sk = purchaseSessionKey(dpk, RANDOM, atc, serial);
    expect(hex(sk)).toBe(opensslTdes(dpk, fromHex('A1B2C3D40102ABCD')));
    for (const amount of [0, 300, 450, 0x7fffffff]) {
      const a = fromHex(amount.toString(16).padStart(8, '0'));
      expect(hex(mac1(sk, amount, TX_COMPOSITE, TERMINAL_ID, DATETIME))).toBe(opensslMac(sk, Uint8Array.from([...a, TX_COMPOSITE, ...TERMINAL_ID, ...DATETIME])));
      expect(hex(mac2(sk, amount))).toBe(opensslMac(sk, a));
      const k = dtk.slice(0, 8).map((b, i) => b ^ dtk[8 + i]);
      expect(hex(tac(dtk, amount, TX_COMPOSITE, TERMINAL_ID, serial, DATETIME))).toBe(
        opensslMac(k, Uint8Array.from([...a, TX_COMPOSITE, ...TERMINAL_ID, 0x00, 0x00, 0xab, 0xcd, ...DATETIME])),
      );
    }
  });
  it('MAC padding: exact multiples of 8 get a whole block of 80 00…', () => {
    const k = fromHex('0123456789ABCDEF');
    for (const n of [0, 7, 8, 9, 16]) {
      const d = Uint8Array.from({ length: n }, (_, i) => i * 7);
      expect(hex(pbocMac(k, d))).toBe(opensslMac(k, d));
    }
  });
});

describe('golden bytes', () => {
  it('card commands', () => {
    expect(toHex(initPurchase({ amountFen: 300, terminalId: TERMINAL_ID, composite: true }))).toBe('805003020B01' + '0000012C' + '010203040506' + '0F');
    expect(toHex(initPurchase({ amountFen: 0, terminalId: TERMINAL_ID, composite: false }))).toBe('805001020B01' + '00000000' + '010203040506' + '0F');
    expect(toHex(readTripRecord)).toBe('00B202D430');
    expect(toHex(debitForPurchase({ terminalSerial: 0xabcd, dateTime: DATETIME, mac1: fromHex('11223344') }))).toBe('805401000F' + '0000ABCD' + '20240601090203' + '11223344' + '08');
    expect(toHex(getTransactionProof(TX_COMPOSITE, 0x0102))).toBe('805A0009020102' + '08');
    expect(toHex(updateTripRecord(new Uint8Array(48))).slice(0, 10)).toBe('80DC02D030');
    expect(() => initPurchase({ amountFen: -1, terminalId: TERMINAL_ID, composite: true })).toThrow(RangeError);
  });
  it('PSAM MAC1 command round-trips', () => {
    const i = { cardRandom: RANDOM, atc: 7, amountFen: 500, type: TX_COMPOSITE, dateTime: DATETIME, keyVersion: 1, algorithm: 0, cardSerial8: SERIAL8 };
    const c = psamMac1(i);
    expect(toHex(c)).toBe('807000001C' + 'A1B2C3D4' + '0007' + '000001F4' + '09' + '20240601090203' + '01' + '00' + hex(SERIAL8) + '08');
    expect(decodePsamMac1(c)).toEqual(i);
  });
  it('answers: INITIALIZE, proofs, MAC2 status, status words classified', () => {
    const a = { balanceFen: 1234, atc: 9, overdraftFen: 0, keyVersion: 1, algorithm: 0, cardRandom: RANDOM };
    expect(parseInitPurchase(Uint8Array.from([...encodeInitPurchaseAnswer(a), 0x90, 0x00]))).toEqual({ ok: true, value: a });
    expect(parseInitPurchase(fromHex('9303'))).toMatchObject({ ok: false, error: 'blocked' });
    expect(parseInitPurchase(fromHex('9401'))).toMatchObject({ ok: false, error: 'insufficient' });
    expect(parseInitPurchase(fromHex('0102039000'))).toMatchObject({ ok: false, error: 'short-answer' });
    expect(parseProof(fromHex('9302'), 'DEBIT')).toMatchObject({ ok: false, error: 'mac' });
    expect(parseProof(fromHex('9406'), 'PROOF')).toMatchObject({ ok: false, error: 'no-proof' });
    expect(parseProof(fromHex('11223344556677889000'), 'DEBIT')).toMatchObject({ ok: true, value: { tac: fromHex('11223344'), mac2: fromHex('55667788') } });
    // GET TRANSACTION PROOF answers the other way round: MAC2 first, then TAC.
    expect(parseTransactionProof(fromHex('55667788112233449000'))).toMatchObject({ ok: true, value: { mac2: fromHex('55667788'), tac: fromHex('11223344') } });
    expect(parseTransactionProof(fromHex('9406'))).toMatchObject({ ok: false, error: 'no-proof' });
    expect(parseTransactionProof(fromHex('5566778811229000'))).toMatchObject({ ok: false, error: 'short-answer' });
    expect(parsePsamMac2(fromHex('9000'))).toEqual({ ok: true, value: true });
    expect(parsePsamMac2(fromHex('9302'))).toMatchObject({ ok: false, error: 'mac' });
    expect(parsePsamMac2(fromHex('6F00'))).toMatchObject({ ok: false, error: 'bad-status' });
  });
  it('the trip record round-trips (whole seconds, Beijing time) and rejects bad bytes', () => {
    const r = { status: 'entered' as const, entryStation: 301, entryLane: 4, entryAtMs: Date.UTC(2024, 5, 1, 1, 2, 3), exitStation: 0, exitLane: 0, exitAtMs: 0, lastChargeFen: 0, month: 202406, monthSpentFen: 12345 };
    const b = encodeTripRecord(r);
    expect(toHex(b.subarray(0, 14))).toBe('022E0001012D04' + '20240601090203');
    expect(parseTripRecord(Uint8Array.from([...b, 0x90, 0x00]))).toEqual({ ok: true, value: r });
    expect(parseTripRecord(fromHex('6A83'))).toMatchObject({ ok: true, value: { status: 'none' } });
    const bad = Uint8Array.from([...b, 0x90, 0x00]);
    bad[3] = 9;
    expect(parseTripRecord(bad)).toMatchObject({ ok: false, error: 'inconsistent' });
    const badTime = Uint8Array.from([...b, 0x90, 0x00]);
    badTime[8] = 0xaa;
    expect(parseTripRecord(badTime)).toMatchObject({ ok: false, error: 'bad-bcd' });
  });
});

describe('the proof of a torn debit (GET TRANSACTION PROOF) against openssl', () => {
  /** One composite purchase whose DEBIT answer is lost; returns what the card proves for it afterwards. */
  function tornDebit(badProof: boolean) {
    const purse = new VirtualPurse(CARD, { balanceFen: 5000, atc: 0x0041, masterPurchaseKey: MASTER_PURCHASE, masterTacKey: MASTER_TAC, badProof });
    const psam = new VirtualPsam({ terminalId: TERMINAL_ID, masterPurchaseKey: MASTER_PURCHASE, terminalSerial: 0x0000abcc });
    const init = parseInitPurchase(purse.answer(initPurchase({ amountFen: 450, terminalId: TERMINAL_ID, composite: true }))!);
    if (!init.ok) throw new Error(init.detail);
    const m1 = psam.respond(psamMac1({ cardRandom: init.value.cardRandom, atc: init.value.atc, amountFen: 450, type: TX_COMPOSITE, dateTime: DATETIME, keyVersion: 1, algorithm: 0, cardSerial8: SERIAL8 }));
    expect(hex(m1.subarray(0, 4))).toBe('0000ABCD');
    expect(hex(purse.answer(updateTripRecord(new Uint8Array(48)))!)).toBe('9000');
    expect(hex(purse.answer(debitForPurchase({ terminalSerial: 0xabcd, dateTime: DATETIME, mac1: m1.subarray(4, 8) }))!).slice(-4)).toBe('9000'); // the answer the gate never got
    return { purse, psam, random: init.value.cardRandom, answer: purse.answer(getTransactionProof(TX_COMPOSITE, init.value.atc))! };
  }
  // Every key and MAC below from openssl alone: DPK, DTK, the session key, MAC2 and TAC.
  const dpk = fromHex(opensslTdes(MASTER_PURCHASE, SERIAL8) + opensslTdes(MASTER_PURCHASE, SERIAL8.map((x) => ~x & 0xff)));
  const dtk = fromHex(opensslTdes(MASTER_TAC, SERIAL8) + opensslTdes(MASTER_TAC, SERIAL8.map((x) => ~x & 0xff)));
  const amount = fromHex('000001C2');

  it('the card answers MAC2 ‖ TAC of that debit, and the PSAM session of its MAC1 verifies the MAC2 (80 72)', () => {
    const { answer, psam, random } = tornDebit(false);
    const sk = fromHex(opensslTdes(dpk, Uint8Array.from([...random, 0x00, 0x41, 0xab, 0xcd])));
    const tacKey = dtk.slice(0, 8).map((b, i) => b ^ dtk[8 + i]);
    const wantTac = opensslMac(tacKey, Uint8Array.from([...amount, TX_COMPOSITE, ...TERMINAL_ID, 0x00, 0x00, 0xab, 0xcd, ...DATETIME]));
    expect(hex(answer)).toBe(opensslMac(sk, amount) + wantTac + '9000');
    const p = parseTransactionProof(answer);
    expect(p.ok && hex(p.value.tac)).toBe(wantTac);
    expect(hex(psam.respond(psamVerifyMac2(p.ok ? p.value.mac2 : new Uint8Array(4))))).toBe('9000');
  });
  it('a bad proof: the TAC is the debit\'s, the MAC2 is not, and the PSAM refuses it (93 02)', () => {
    const { answer, psam, random } = tornDebit(true);
    const sk = fromHex(opensslTdes(dpk, Uint8Array.from([...random, 0x00, 0x41, 0xab, 0xcd])));
    const p = parseTransactionProof(answer);
    expect(p.ok).toBe(true);
    expect(p.ok && hex(p.value.mac2)).not.toBe(opensslMac(sk, amount));
    expect(hex(psam.respond(psamVerifyMac2(p.ok ? p.value.mac2 : new Uint8Array(4))))).toBe('9302');
    expect(psam.counts).toMatchObject({ mac1: 1, mac2Ok: 0, mac2Bad: 1 });
  });
});
