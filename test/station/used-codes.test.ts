// The station's used-code store holds what peers say only within bounds: ends clamped, a quota per peer
// lane, a cap on peer lanes; and a flood from a lane with valid credentials through the real broker evicts
// only that lane's own ids.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BusUsedCodes } from '../../firmware/station/used-codes.js';
import { BusClient } from '../../firmware/station/bus.js';
import { LaneStationLink } from '../../firmware/station/lane-link.js';
import { silentLogger } from '../../firmware/config/log.js';
import { systemClock } from '../../drivers/seams.js';
import { MAX_CODES_PER_MESSAGE, decodeUsed, encodeUsed, laneTopic } from '../../protocol/station-bus.js';
import { startTestStation, type TestStation } from '../support/mosquitto.js';

const id = (n: number, issuer = 'alipay') => `${issuer}:${n.toString(16).padStart(16, '0')}`;

describe('BusUsedCodes bounds', () => {
  let now = 1_000_000;
  const store = (o: Partial<ConstructorParameters<typeof BusUsedCodes>[0]> = {}) => new BusUsedCodes({ laneId: 'L01', now: () => now, clampMs: 660_000, perLaneCap: 100, maxLanes: 3, ...o });

  it('clamps a forged far end to now + max validity + skew', () => {
    const s = store();
    s.receive('L02', [[id(1), Number.MAX_SAFE_INTEGER]], now);
    expect(s.isUsed(id(1), now + 659_000)).toBe(true);
    expect(s.isUsed(id(1), now + 661_000)).toBe(false);
    expect(s.counters.clamped).toBe(1);
  });

  it('ignores ids already expired and its own echo', () => {
    const s = store();
    s.receive('L02', [[id(2), now - 1]], now);
    s.receive('L01', [[id(3), now + 1000]], now);
    expect(s.isUsed(id(2), now)).toBe(false);
    expect(s.isUsed(id(3), now)).toBe(false);
    expect(s.counters.ignoredExpired).toBe(1);
  });

  it("a flooding lane fills only its own quota: the other lanes' ids stay", () => {
    const s = store();
    s.receive('L02', [[id(7), now + 60_000]], now);
    for (let i = 0; i < 10_000; i++) s.receive('L03', [[id(100 + i), now + 60_000]], now);
    expect(s.size()).toEqual({ own: 0, peers: 101, lanes: 2 });
    expect(s.isUsed(id(7), now)).toBe(true);
    expect(s.evictedBy.get('L03')).toBe(9_900);
    // More peer lanes than the cap are not believed.
    s.receive('L04', [[id(8), now + 60_000]], now);
    s.receive('L05', [[id(9), now + 60_000]], now);
    expect(s.isUsed(id(8), now)).toBe(true);
    expect(s.isUsed(id(9), now)).toBe(false);
    expect(s.counters.unknownLaneDropped).toBe(1);
  });

  it('marks its own ids clamped and publishes them; prunes in bounded steps', () => {
    const sent: [string, number][][] = [];
    const s = store({ publish: (c) => sent.push(c) });
    s.markUsed(id(11), Number.MAX_SAFE_INTEGER);
    expect(sent).toEqual([[[id(11), now + 660_000]]]);
    for (let i = 0; i < 50; i++) s.receive('L02', [[id(200 + i), now + 1000]], now);
    now += 2000;
    s.prune(now, 10);
    expect(s.size().peers).toBe(40); // ten looked at, ten expired ids dropped
    s.prune(now, 1000);
    expect(s.size().peers).toBe(0);
    expect(s.ownStillValid(now)).toEqual([[id(11), now - 2000 + 660_000]]);
  });
});

describe('a rogue lane with valid credentials floods used-code ids through the broker', () => {
  let st: TestStation;
  let honest: LaneStationLink;
  let victim: LaneStationLink;
  let rogue: BusClient;
  beforeAll(async () => {
    st = await startTestStation('BJ-0303', ['L01', 'L02', 'L03']);
    victim = new LaneStationLink({ settings: st.settings('L01', { perLaneCap: 2000 }), clock: systemClock, log: silentLogger });
    honest = new LaneStationLink({ settings: st.settings('L02'), clock: systemClock, log: silentLogger });
    rogue = new BusClient({ url: st.broker.url, ca: st.ca, username: 'lane.BJ-0303.L03', password: st.credentials.get('lane.BJ-0303.L03')!, clientId: 'lane.BJ-0303.L03', keepaliveSeconds: 5, sessionExpirySeconds: 0, clean: true, reconnectMs: 200, subscriptions: [], log: silentLogger });
    for (const c of [victim, honest]) c.start();
    rogue.start();
    for (const c of [victim.bus, honest.bus, rogue]) expect(await c.waitConnected(10_000)).toBe(true);
  });
  afterAll(async () => {
    await Promise.allSettled([victim?.stop(), honest?.stop(), rogue?.end()]);
    await st?.stop();
  });

  it('the victim holds at most its quota of the rogue ids, keeps the honest lane ids (also those said during the flood), clamps every end, and stops reading the flood', async () => {
    const good = id(0xfeed);
    honest.usedCodes.markUsed(good, Date.now() + 60_000);
    await vi.waitFor(() => expect(victim.usedCodes.isUsed(good, Date.now())).toBe(true), { timeout: 5000 });
    const total = 100_000;
    const topic = laneTopic('BJ-0303', 'L03', 'used');
    // The honest lane keeps accepting codes while the flood goes on: each must reach the victim.
    const during: string[] = [];
    const inflight: Promise<void>[] = [];
    for (let sent = 0; sent < total; sent += MAX_CODES_PER_MESSAGE) {
      const codes: [string, number][] = [];
      for (let i = 0; i < MAX_CODES_PER_MESSAGE; i++) codes.push([id(0x100000 + sent + i, 'cmb'), Number.MAX_SAFE_INTEGER]);
      inflight.push(rogue.publishAcked(topic, encodeUsed({ codes })));
      if (inflight.length >= 20) await Promise.all(inflight.splice(0));
      if ((sent / MAX_CODES_PER_MESSAGE) % 100 === 0) {
        during.push(id(0xbeef00 + during.length));
        honest.usedCodes.markUsed(during[during.length - 1], Date.now() + 60_000);
      }
    }
    await Promise.all(inflight);
    const messages = Math.ceil(total / MAX_CODES_PER_MESSAGE);
    // Every message is either read (within the lane's byte budget: a quota's worth, then a quota a minute) or dropped unread.
    await vi.waitFor(() => expect(victim.usedCodes.counters.received / MAX_CODES_PER_MESSAGE + victim.counters.floodDropped).toBeGreaterThanOrEqual(messages), { timeout: 30_000 });
    expect(victim.counters.floodDropped).toBeGreaterThan(messages / 2);
    expect(victim.usedCodes.size().peers).toBeLessThanOrEqual(2000 + during.length + 1);
    expect(victim.usedCodes.isUsed(good, Date.now())).toBe(true);
    await vi.waitFor(() => expect(during.filter((c) => !victim.usedCodes.isUsed(c, Date.now()))).toEqual([]), { timeout: 10_000 });
    expect(during.length).toBe(Math.ceil(messages / 100));
    expect(victim.usedCodes.counters.clamped).toBe(victim.usedCodes.counters.received - 1 - during.length);
    expect(decodeUsed(encodeUsed({ codes: [[good, 1]] })).ok).toBe(true);
  });
});
