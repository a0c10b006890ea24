import { createSocket } from 'node:dgram';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { StationUsedCodes } from '../../firmware/verify/used-codes.js';
import { RideCodes } from '../../firmware/verify/ride-codes.js';
import { DecisionCore } from '../../firmware/verify/decision-core.js';
import { MemoryLists } from '../../firmware/lists/list-provider.js';
import { policySchema } from '../../firmware/config/config.js';
import { verifyTrustList } from '../../protocol/trust-list.js';
import { decodeUsedCodes, encodeUsedCodes } from '../../protocol/used-codes.js';
import { IssuerApps } from '../../simulator/virtual-phone.js';

async function freePorts(n: number): Promise<number[]> {
  const socks = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createSocket>>((res) => { const s = createSocket('udp4'); s.bind(0, '127.0.0.1', () => res(s)); })),
  );
  const ports = socks.map((s) => s.address().port);
  await Promise.all(socks.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

const started: StationUsedCodes[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.stop()));
});

async function lane(id: string, port: number, peers: { id: string; port: number }[]) {
  const u = new StationUsedCodes({ id, bind: { host: '127.0.0.1', port }, peers: peers.map((p) => ({ ...p, host: '127.0.0.1' })), retryMs: 50, helloMs: 50, peerDownMs: 300 });
  await u.start();
  started.push(u);
  return u;
}

const now = () => Date.now();

describe('used code ids shared among lanes (UDP, loopback)', () => {
  it('wire messages round-trip and junk is refused', () => {
    const m = { t: 'used' as const, from: 'L1', boot: 'ab', n: 3, codes: [['alipay:0011223344556677', 5] as [string, number]] };
    expect(decodeUsedCodes(encodeUsedCodes(m))).toEqual({ ok: true, msg: m });
    expect(decodeUsedCodes(Buffer.from('nope')).ok).toBe(false);
    expect(decodeUsedCodes(Buffer.from(JSON.stringify({ v: 1, t: 'used', from: 'L1', boot: 'a', n: 1, codes: [['x', 1]] }))).ok).toBe(false);
  });

  it('a code accepted on lane 1 is refused on lane 1 and on lane 2: 0 replays accepted', async () => {
    const [p1, p2] = await freePorts(2);
    const u1 = await lane('L1', p1, [{ id: 'L2', port: p2 }]);
    const u2 = await lane('L2', p2, [{ id: 'L1', port: p1 }]);
    const apps = new IssuerApps('udp');
    const r = verifyTrustList(apps.trustListDocument(), apps.backOfficeKeys());
    if (!r.ok) throw new Error(r.detail);
    const policy = policySchema.parse({ antiPassbackSeconds: 0, entry: { green: true, yellow: false, red: false, unregistered: true, blocked: false } });
    const c1 = new DecisionCore('bidirectional', policy, { lists: new MemoryLists(), usedCodes: u1, rideCodes: new RideCodes(r.list) });
    const c2 = new DecisionCore('bidirectional', policy, { lists: new MemoryLists(), usedCodes: u2, rideCodes: new RideCodes(r.list) });
    const codes = Array.from({ length: 50 }, (_, i) => apps.app('alipay').mint('rider' + i, now()));
    for (const text of codes) {
      const d = c1.decide({ presented: { kind: 'qr-text', text }, side: 'entry', nowMs: now() });
      expect(d.grant).toBe(true);
      c1.commit(d, now());
    }
    await vi.waitFor(() => expect(u1.peerView()[0].pending).toBe(0), { timeout: 5000 });
    let accepted = 0;
    for (const text of codes) {
      for (const c of [c1, c2]) {
        const d = c.decide({ presented: { kind: 'qr-text', text }, side: 'entry', nowMs: now() });
        if (d.grant) accepted++;
        else expect(d.reason).toBe('qr-replayed');
      }
    }
    expect(accepted).toBe(0);
  });

  it('a peer unreachable at the time learns the code once it comes up; a restarted peer gets a full sync', async () => {
    const [p1, p2] = await freePorts(2);
    const events: string[] = [];
    const u1 = new StationUsedCodes({ id: 'L1', bind: { host: '127.0.0.1', port: p1 }, peers: [{ id: 'L2', host: '127.0.0.1', port: p2 }], retryMs: 50, helloMs: 50, peerDownMs: 300, onPeer: (p, up) => events.push(`${p}:${up}`) });
    await u1.start();
    started.push(u1);
    u1.markUsed('alipay:00112233445566aa', now() + 60_000);
    expect(u1.peerView()).toEqual([{ id: 'L2', up: false, pending: 1 }]);
    const u2 = await lane('L2', p2, [{ id: 'L1', port: p1 }]);
    await vi.waitFor(() => expect(u2.isUsed('alipay:00112233445566aa', now())).toBe(true), { timeout: 5000 });
    await vi.waitFor(() => expect(u1.peerView()[0]).toMatchObject({ up: true, pending: 0 }), { timeout: 5000 });
    // L2 restarts (memory lost, new boot id): L1 resends every code still valid.
    await u2.stop();
    await vi.waitFor(() => expect(u1.peerView()[0].up).toBe(false), { timeout: 5000 });
    u1.markUsed('cmb:00112233445566bb', now() + 60_000);
    const u2b = await lane('L2', p2, [{ id: 'L1', port: p1 }]);
    await vi.waitFor(() => {
      expect(u2b.isUsed('alipay:00112233445566aa', now())).toBe(true);
      expect(u2b.isUsed('cmb:00112233445566bb', now())).toBe(true);
    }, { timeout: 5000 });
    expect(events).toEqual(['L2:true', 'L2:false', 'L2:true']);
  });

  it('datagrams from unknown senders and junk are counted and ignored', async () => {
    // The sender gets a port of its own, never L2's: bound to port 0 it could be given L2's freed port,
    // and then its "wrong port" datagram would rightly be believed (CI saw it once).
    const [p1, p2, p3] = await freePorts(3);
    const u1 = await lane('L1', p1, [{ id: 'L2', port: p2 }]);
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(p3, '127.0.0.1', () => r()));
    const send = (b: Uint8Array) => new Promise<void>((r) => s.send(b, p1, '127.0.0.1', () => r()));
    await send(Buffer.from('garbage'));
    await send(encodeUsedCodes({ t: 'used', from: 'L2', boot: 'x', n: 1, codes: [['alipay:0011223344556677', now() + 60_000]] })); // right id, wrong port
    await vi.waitFor(() => expect(u1.counters.badDatagram + u1.counters.unknownPeer).toBe(2), { timeout: 5000 });
    expect(u1.isUsed('alipay:0011223344556677', now())).toBe(false);
    s.close();
  });
});
