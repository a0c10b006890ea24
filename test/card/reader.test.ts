// The PC/SC driver over a real private pcscd with vpcd readers and virtual cards.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { virtualCard } from '../../simulator/virtual-card.js';
import { startCardStation, type CardStation } from '../support/card-station.js';

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
