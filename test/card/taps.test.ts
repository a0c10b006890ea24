// Many taps of mixed virtual cards on both vpcd readers at once, through real pcscd: every credential
// read exactly right, every decision (DecisionCore with in-memory lists) right, one event per tap.
// pcscd polls vpcd every 400 ms, so a tap costs ~0.5 s per reader: CARD_TAPS (default 80, to keep the card suite near 2 minutes on 2 cores) sets the
// count; CARD_TAPS=1000 runs the full thousand (about 7.5 minutes).
import { afterAll, beforeAll, expect, test } from 'vitest';
import { DecisionCore } from '../../firmware/verify/decision-core.js';
import { policySchema } from '../../firmware/config/config.js';
import { MemoryLists } from '../../firmware/lists/list-provider.js';
import { credentialKey, type Credential } from '../../protocol/credential.js';
import { virtualCard, type VirtualCardBuilder } from '../../simulator/virtual-card.js';
import { startCardStation, type CardStation } from '../support/card-station.js';

const TAPS = Number(process.env.CARD_TAPS ?? 80);
let st: CardStation;
beforeAll(async () => {
  st = await startCardStation();
}, 30_000);
afterAll(async () => {
  await st?.stop();
});

type Truth = { card: VirtualCardBuilder; expect: { credential: Credential } | { fault: string } };

function rider(i: number): Truth {
  let x = (i + 1) * 2654435761;
  const rnd = () => ((x = (Math.imul(x ^ (x >>> 13), 0x5bd1e995) + 12345) | 0) >>> 0) / 2 ** 32;
  const digits = (n: number) => Array.from({ length: n }, () => Math.floor(rnd() * 10)).join('');
  const r = rnd();
  if (r < 0.4) {
    const serial = '31' + digits(17);
    const balanceFen = Math.floor(rnd() * 100000);
    const cardType = 1 + Math.floor(rnd() * 5);
    return { card: virtualCard().tUnion({ serial, expiry: 20301231, balanceFen, cardType }), expect: { credential: { kind: 'card', cardNumber: serial, cardType, balanceFen } } };
  }
  if (r < 0.65) {
    const serial = '31' + digits(17);
    const balanceFen = Math.floor(rnd() * 100000);
    return { card: virtualCard().phone({ serial, expiry: 20301231, balanceFen, answerDelayMs: 2 + Math.floor(rnd() * 10) }), expect: { credential: { kind: 'phone-nfc', cardNumber: serial, balanceFen } } };
  }
  if (r < 0.75) {
    const serial = '9' + digits(15);
    return { card: virtualCard().oldYikatong({ serial, expiry: 20301231, balanceFen: 500 }), expect: { credential: { kind: 'card', cardNumber: '100' + serial, cardType: 1, balanceFen: 500 } } };
  }
  if (r < 0.9) {
    const ticketNumber = 'BJ' + digits(6 + Math.floor(rnd() * 12));
    return { card: virtualCard().ticket({ ticketNumber, validUntil: 20301231 }), expect: { credential: { kind: 'ticket', ticketNumber } } };
  }
  if (r < 0.95) return { card: virtualCard().tUnion({ serial: '31' + digits(17), start: 20100101, expiry: 20200101 }), expect: { fault: 'card-expired' } };
  return { card: virtualCard().broken(i), expect: { fault: 'card-unreadable|card-not-supported' } };
}

test(`${TAPS} taps of mixed virtual cards: every credential and decision right`, async () => {
  const lists = new MemoryLists();
  const core = new DecisionCore('bidirectional', policySchema.parse({ antiPassbackSeconds: 0 }), { lists });
  const truths = Array.from({ length: TAPS }, (_, i) => rider(i));
  // Ground truth for decisions: a third registered green, a third yellow, the rest unregistered.
  truths.forEach((t, i) => {
    if ('credential' in t.expect && i % 3 !== 2) lists.allowlist.set(credentialKey(t.expect.credential), i % 3 === 0 ? 'green' : 'yellow');
  });
  const eventsBefore = st.events.length;
  const reportsBefore = st.reports.length;
  let wrong = 0;
  const lane = async (slot: number) => {
    for (let i = slot; i < TAPS; i += 2) {
      const t = truths[i];
      const r = await st.tap(t.card, slot);
      const e = r.event;
      if ('credential' in t.expect) {
        const want = t.expect.credential;
        if (e?.type !== 'PRESENTED' || e.presented.kind !== 'credential') {
          wrong++;
          console.log(`tap ${i}: wanted ${JSON.stringify(want)}, got ${JSON.stringify(r.report?.outcome ?? 'nothing')}`);
          continue;
        }
        expect(e.presented.credential).toEqual(want);
        const d = core.decide({ presented: e.presented, side: 'entry', nowMs: Date.now() });
        expect(d.reason).toBe(i % 3 === 0 ? 'ok' : i % 3 === 1 ? 'status-yellow' : 'not-registered');
      } else {
        expect(e?.type).toBe('CARD_FAULT');
        expect(e?.type === 'CARD_FAULT' && e.reason).toMatch(new RegExp(`^(${t.expect.fault})$`));
      }
    }
  };
  await Promise.all([lane(0), lane(1)]);
  expect(wrong).toBe(0);
  // One report and one event per tap, nothing else.
  expect(st.reports.length - reportsBefore).toBe(TAPS);
  expect(st.events.slice(eventsBefore).filter((e) => e.type === 'PRESENTED' || e.type === 'CARD_FAULT')).toHaveLength(TAPS);
  expect(st.events.slice(eventsBefore).filter((e) => e.type === 'SOURCE_FAULT')).toHaveLength(0);
}, 600_000);
