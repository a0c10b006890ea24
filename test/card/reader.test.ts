// The PC/SC driver over a real private pcscd with vpcd readers and virtual cards.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { virtualCard } from '../../simulator/virtual-card.js';
import { startCardStation, type CardStation } from '../support/card-station.js';
import { waitUntil } from '../support/wait.js';

let st: CardStation;
beforeAll(async () => {
  st = await startCardStation();
}, 30_000);
afterAll(async () => {
  await st?.stop();
});

describe('pcsc reader over pcscd + vpcd', () => {
  test('reads a T-Union card, a phone, an old Yikatong card and a ticket', async () => {
    const card = await st.tap(virtualCard().tUnion({ serial: '3104999900001234567', expiry: 20301231, balanceFen: 2350, cardType: 2 }));
    expect(card.event).toMatchObject({ type: 'PRESENTED', presented: { credential: { kind: 'card', cardNumber: '3104999900001234567', cardType: 2, balanceFen: 2350 } } });
    const phone = await st.tap(virtualCard().phone({ serial: '3104999900007654321', expiry: 20301231 }), 1);
    expect(phone.event).toMatchObject({ type: 'PRESENTED', presented: { credential: { kind: 'phone-nfc', cardNumber: '3104999900007654321' } } });
    expect(phone.log.uid.startsWith('08')).toBe(true);
    const old = await st.tap(virtualCard().oldYikatong({ serial: '1234567890123456', expiry: 20301231 }));
    expect(old.event).toMatchObject({ type: 'PRESENTED', presented: { credential: { kind: 'card', cardNumber: '1001234567890123456' } } });
    const ticket = await st.tap(virtualCard().ticket({ ticketNumber: 'BJ2022OLYMPIC0001', validUntil: 20301231 }), 1);
    expect(ticket.event).toMatchObject({ type: 'PRESENTED', presented: { credential: { kind: 'ticket', ticketNumber: 'BJ2022OLYMPIC0001' } } });
    expect(ticket.log.apdus).toEqual(['FFCA000000', 'FFB0000410', 'FFB0000810', 'FFB0000C10']);
  });
});

const exp = 20301231;

/** The driver's own record for a slot: every card that arrived there has also left (white-box: the driver has no public "card left" event). */
function cardLeft(slot: number): boolean {
  const readers = (st.reader as unknown as { readers: Map<string, { tap: number; left: number }> }).readers;
  const r = readers.get(st.pcscd.readers[slot].name);
  if (!r) throw new Error(`the driver has no reader ${st.pcscd.readers[slot].name}; it has ${[...readers.keys()].join(', ')}`);
  return r.left === r.tap;
}

describe('classified refusals, no crash', () => {
  const cases: [string, () => ReturnType<typeof virtualCard>, string][] = [
    ['garbage answers', () => virtualCard().broken(3), 'card-unreadable|card-not-supported'],
    ['bad status word on file 0x15', () => virtualCard().tUnion({ serial: '3104999900000000011', expiry: exp }).withAnswer('00B09500', '6A82'), 'card-unreadable'],
    ['bad status word on SELECT', () => virtualCard().tUnion({ serial: '3104999900000000012', expiry: exp }).withAnswer('00A40400', '6F00'), 'card-unreadable'],
    ['wrong length of file 0x15', () => virtualCard().tUnion({ serial: '3104999900000000013', expiry: exp }).withAnswer('00B09500', '0000100000000000000131049999000000009000'), 'card-unreadable'],
    ['no status word', () => virtualCard().tUnion({ serial: '3104999900000000014', expiry: exp }).withAnswer('00B09700', '01'), 'card-unreadable'],
    ['bad BCD in the serial', () => virtualCard().tUnion({ serial: '3104999900000000015', expiry: exp }).withAnswer('00B09500', '000010000000000000010AB104999900000000152015010120301231010000' + '9000'), 'card-unreadable'],
    ['expired', () => virtualCard().tUnion({ serial: '3104999900000000016', expiry: 20200101, start: 20150101 }), 'card-expired'],
    ['not yet valid', () => virtualCard().tUnion({ serial: '3104999900000000017', expiry: 20991231, start: 20990101 }), 'card-not-yet-valid'],
    ['expired phone', () => virtualCard().phone({ serial: '3104999900000000018', expiry: 20200101, start: 20150101 }), 'card-expired'],
    ['expired ticket', () => virtualCard().ticket({ ticketNumber: 'EXPIRED00001', validFrom: 20200101, validUntil: 20200102 }), 'card-expired'],
    ['corrupted ticket page', () => virtualCard().ticket({ ticketNumber: 'CORRUPT00001', validUntil: exp }).withAnswer('FFB00008', '00'.repeat(16) + '9000'), 'card-unreadable'],
    ['MIFARE Classic', () => virtualCard().mifareClassic(), 'card-not-supported'],
    ['not a transport card', () => virtualCard().tUnion({ serial: '3104999900000000019', expiry: exp }).withAnswer('00A40400', '6A82').withAnswer('00B08400', '6A82'), 'card-not-supported'],
  ];
  for (const [name, make, reasons] of cases) {
    test(name, async () => {
      const r = await st.tap(make(), name.length % 2);
      expect(r.event?.type).toBe('CARD_FAULT');
      expect(r.event?.type === 'CARD_FAULT' && r.event.reason).toMatch(new RegExp(`^(${reasons})$`));
    });
  }
  test('the driver counted each refusal by reason', () => {
    expect(st.reader.counters.cardFaults['card-expired']).toBeGreaterThanOrEqual(3);
    expect(st.reader.counters.readerFaults).toBe(0);
  });
});

describe('tearing: card pulled away after each APDU position', () => {
  const kinds = [
    ['t-union', () => virtualCard().tUnion({ serial: '3104999900000000101', expiry: exp, balanceFen: 100 }), 5],
    ['old yikatong', () => virtualCard().oldYikatong({ serial: '0000000000000102', expiry: exp }), 4],
    ['ticket', () => virtualCard().ticket({ ticketNumber: 'TEARTICKET0103', validUntil: exp }), 4],
  ] as const;
  for (const [name, make, apdus] of kinds) {
    test(`${name}: exactly one "tap again" per torn tap, right credential on the re-tap`, async () => {
      for (let n = 0; n < apdus; n++) {
        const before = st.events.length;
        const torn = await st.tap(make().withTearing(n), n % 2, { timeoutMs: 3000 });
        expect(torn.log.ended).toBe('torn');
        // A torn tap is answered: one "please tap again" (a rider is never left without an answer).
        expect(torn.event, `torn after ${n} APDUs: ${JSON.stringify(torn.report)}`).toMatchObject({ type: 'CARD_FAULT', reason: 'tap-again' });
        // The re-tap comes once the driver has seen the torn card leave the field (pcscd noticed it was gone).
        await waitUntil(() => cardLeft(n % 2), 5000, () => `the driver still sees the torn card on slot ${n % 2}`);
        const again = await st.tap(make(), n % 2);
        expect(again.event?.type).toBe('PRESENTED');
        // Nothing else between them: no late second event for the torn tap (the re-tap on the same slot was read after it).
        const tapEvents = st.events.slice(before).filter((e) => e.type === 'PRESENTED' || e.type === 'CARD_FAULT');
        expect(tapEvents).toEqual([torn.event, again.event]);
      }
    }, 60_000);
  }
});
