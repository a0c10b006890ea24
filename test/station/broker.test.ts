// The station broker for real: mosquitto with TLS (openssl-made CA), the password file and ACL that
// `gate broker-config` writes. Who may connect, who may publish where, and used QR code ids going round.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BusClient } from '../../firmware/station/bus.js';
import { checkPasswordLine, mosquittoPasswordLine, stationAcl } from '../../firmware/station/broker-config.js';
import { LaneStationLink } from '../../firmware/station/lane-link.js';
import { silentLogger } from '../../firmware/config/log.js';
import { systemClock } from '../../drivers/seams.js';
import { encodeCommand, encodeUsed, laneTopic, signCommand, stationCommandTopic } from '../../protocol/station-bus.js';
import { startTestStation, type TestStation } from '../support/mosquitto.js';

let st: TestStation;
const links: LaneStationLink[] = [];
const clients: BusClient[] = [];

beforeAll(async () => {
  st = await startTestStation('BJ-0101', ['L01', 'L02', 'L03']);
});
afterAll(async () => {
  await Promise.allSettled([...links.map((l) => l.stop()), ...clients.map((c) => c.end())]);
  await st?.stop();
});

function link(lane: string, over: Parameters<TestStation['settings']>[1] = {}): LaneStationLink {
  const l = new LaneStationLink({ settings: st.settings(lane, over), clock: systemClock, log: silentLogger });
  links.push(l);
  l.start();
  return l;
}

function rawClient(user: string, password: string, o: { ca?: string; subs?: string[] } = {}): BusClient {
  const c = new BusClient({
    url: st.broker.url,
    ca: o.ca ?? st.ca,
    username: user,
    password,
    clientId: `${user}-${Math.random().toString(16).slice(2, 8)}`,
    keepaliveSeconds: 5,
    sessionExpirySeconds: 0,
    clean: true,
    reconnectMs: 200,
    subscriptions: o.subs ?? [],
    log: silentLogger,
  });
  clients.push(c);
  c.start();
  return c;
}

describe('mosquitto password file', () => {
  it('our $7$ lines and mosquitto_passwd lines are the same format', () => {
    const salt = Buffer.from('000102030405060708090a0b', 'hex');
    const line = mosquittoPasswordLine('lane.S.L1', 'secret', { iterations: 101, salt });
    expect(line).toMatch(/^lane\.S\.L1:\$7\$101\$AAECAwQFBgcICQoL\$[A-Za-z0-9+/]{86}==$/);
    expect(checkPasswordLine(line, 'lane.S.L1', 'secret')).toBe(true);
    expect(checkPasswordLine(line, 'lane.S.L1', 'Secret')).toBe(false);
    const dir = mkdtempSync(join(tmpdir(), 'pw-'));
    try {
      const f = join(dir, 'pw');
      writeFileSync(f, '');
      const r = spawnSync('mosquitto_passwd', ['-b', f, 'alice', 'hunter2'], { encoding: 'utf8' });
      if (r.error) throw new Error('mosquitto_passwd missing: apt-get install mosquitto');
      expect(checkPasswordLine(readFileSync(f, 'utf8'), 'alice', 'hunter2')).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the ACL gives each lane its own leaves only', () => {
    const acl = stationAcl({ station: 'S', lanes: ['L1'] });
    expect(acl).toContain('user lane.S.L1\ntopic write gate/v1/S/L1/online\n');
    expect(acl).not.toMatch(/topic write gate\/v1\/S\/L1\/cmd/);
    expect(acl).toContain('topic read gate/v1/S/station/cmd');
    expect(() => stationAcl({ station: 'S', lanes: ['station'] })).toThrow(/not "station"/);
  });
});

describe('who may connect', () => {
  it('a lane with its own password over TLS connects', async () => {
    const c = rawClient('lane.BJ-0101.L01', st.credentials.get('lane.BJ-0101.L01')!);
    expect(await c.waitConnected(10_000)).toBe(true);
    await c.end();
  });

  it('a wrong password is refused', async () => {
    const c = rawClient('lane.BJ-0101.L01', 'not-the-password');
    await vi.waitFor(() => expect(c.counters.refusedConnect).toBeGreaterThan(0), { timeout: 10_000 });
    expect(c.connected).toBe(false);
    expect(c.lastError).toMatch(/refused by broker \(13[45]\)/);
    await c.end();
  });

  it('an unknown user is refused', async () => {
    const c = rawClient('lane.BJ-0101.L99', 'whatever');
    await vi.waitFor(() => expect(c.counters.refusedConnect).toBeGreaterThan(0), { timeout: 10_000 });
    expect(c.connected).toBe(false);
    await c.end();
  });

  it('a broker whose certificate is not from the configured CA is refused by the lane', async () => {
    const c = rawClient('lane.BJ-0101.L01', st.credentials.get('lane.BJ-0101.L01')!, { ca: readFileSync(st.broker.otherCaFile, 'utf8') });
    await vi.waitFor(() => expect(c.counters.tlsErrors).toBeGreaterThan(0), { timeout: 10_000 });
    expect(c.counters.connects).toBe(0);
    expect(c.lastError).toMatch(/certificate/i);
    await c.end();
  });
});

describe('ACL: a lane writes only its own topics', () => {
  it("lane A cannot publish lane B's used codes, state or commands; lane B never sees them", async () => {
    const b = link('L02');
    expect(await b.bus.waitConnected(10_000)).toBe(true);
    // An observer with the back office's read-everything account sees what the broker lets through.
    const seen: string[] = [];
    const obs = rawClient('backoffice.BJ-0101', st.credentials.get('backoffice.BJ-0101')!, { subs: ['gate/v1/BJ-0101/#'] });
    obs.on('message', (t) => seen.push(t));
    expect(await obs.waitConnected(10_000)).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    const a = rawClient('lane.BJ-0101.L01', st.credentials.get('lane.BJ-0101.L01')!);
    expect(await a.waitConnected(10_000)).toBe(true);
    const forged = encodeUsed({ codes: [['alipay:00112233445566ff', Date.now() + 60_000]] });
    const refusals: unknown[] = [];
    for (const [topic, payload] of [
      [laneTopic('BJ-0101', 'L02', 'used'), forged],
      [laneTopic('BJ-0101', 'L02', 'state'), forged],
      [laneTopic('BJ-0101', 'L02', 'cmd'), encodeCommand(signCommand({ id: '00112233445566778899aabbccddeeff', station: 'BJ-0101', lane: 'L02', action: 'set-mode', args: { mode: 'closed' }, by: 'sup-wang', issuedAtMs: Date.now(), expiresAtMs: Date.now() + 30_000 }, st.supervisor.privateKey))],
      [stationCommandTopic('BJ-0101'), forged],
      [laneTopic('BJ-0101', 'L01', 'cmd'), forged],
      ['gate/v1/OTHER/L01/used', forged],
    ] as const) {
      await a.publishAcked(topic, payload).catch((e) => refusals.push(e));
    }
    // Its own topic goes through (the control: the observer does see messages).
    await a.publishAcked(laneTopic('BJ-0101', 'L01', 'used'), encodeUsed({ codes: [['alipay:0011223344556600', Date.now() + 60_000]] }));
    await vi.waitFor(() => expect(seen).toContain('gate/v1/BJ-0101/L01/used'), { timeout: 5000 });
    expect(seen.filter((t) => t !== 'gate/v1/BJ-0101/L01/used' && !t.endsWith('/online') && !t.endsWith('/state'))).toEqual([]);
    expect(seen.filter((t) => t.startsWith('gate/v1/BJ-0101/L02/') && !t.endsWith('/online'))).toEqual([]);
    expect(b.usedCodes.isUsed('alipay:00112233445566ff', Date.now())).toBe(false);
    // ... while what A may say reaches B.
    await vi.waitFor(() => expect(b.usedCodes.isUsed('alipay:0011223344556600', Date.now())).toBe(true), { timeout: 5000 });
    // mosquitto 2 answers a refused QoS 1 publish with PUBACK "not authorised" (0x87) to MQTT 5 clients.
    expect(refusals.length).toBe(6);
    expect(refusals.every((e) => (e as { reasonCode?: number }).reasonCode === 0x87)).toBe(true);
  });

  it("a lane reads nothing that is not its business: other lanes' commands and state", async () => {
    // mosquitto 2.0 grants the subscription and checks `read` on every message it would deliver.
    const got: string[] = [];
    const a = rawClient('lane.BJ-0101.L03', st.credentials.get('lane.BJ-0101.L03')!);
    a.on('message', (t) => got.push(t));
    expect(await a.waitConnected(10_000)).toBe(true);
    await a.client.subscribeAsync({ 'gate/v1/BJ-0101/#': { qos: 1 } });
    const view = rawClient(st.viewUser, st.viewPassword);
    expect(await view.waitConnected(10_000)).toBe(true);
    await view.publishAcked(laneTopic('BJ-0101', 'L02', 'cmd'), encodeUsed({ codes: [['alipay:0011223344556601', Date.now() + 60_000]] }));
    await view.publishAcked(laneTopic('BJ-0101', 'L03', 'cmd'), encodeUsed({ codes: [['alipay:0011223344556602', Date.now() + 60_000]] }));
    await vi.waitFor(() => expect(got).toContain('gate/v1/BJ-0101/L03/cmd'), { timeout: 5000 });
    expect(got.filter((t) => !/\/(used|alarm)$/.test(t) && t !== 'gate/v1/BJ-0101/L03/cmd')).toEqual([]);
  });
});

describe('used QR code ids through the broker', () => {
  it('a code accepted at one lane is known at every other lane of the station', async () => {
    const l1 = link('L01');
    const l3 = link('L03');
    const l2 = links.find((l) => l.usedCodes && (l as unknown as { s: { lane: string } }).s.lane === 'L02') ?? link('L02');
    for (const l of [l1, l2, l3]) expect(await l.bus.waitConnected(10_000)).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    const ids = Array.from({ length: 50 }, (_, i) => `alipay:${(0xabc000 + i).toString(16).padStart(16, '0')}`);
    for (const id of ids) l1.usedCodes.markUsed(id, Date.now() + 60_000);
    await vi.waitFor(() => {
      for (const id of ids) for (const l of [l2, l3]) expect(l.usedCodes.isUsed(id, Date.now())).toBe(true);
    }, { timeout: 10_000 });
    // The message expiry a lane sets is the code's own end (MQTT 5); its own copy never comes back (no local).
    expect(l1.usedCodes.size().peers).toBe(0);
  });
});

describe('client certificates, when the broker asks for them', () => {
  let strict: TestStation;
  beforeAll(async () => {
    strict = await startTestStation('BJ-0606', ['L01'], { extraConf: ['require_certificate true'] });
  });
  afterAll(async () => {
    await strict?.stop();
  });

  it('a lane without one is refused; with one from the station CA (and its password) it connects', async () => {
    const plain = new LaneStationLink({ settings: strict.settings('L01'), clock: systemClock, log: silentLogger });
    plain.start();
    await vi.waitFor(() => expect(plain.bus.counters.tlsErrors + plain.bus.counters.downs).toBeGreaterThan(0), { timeout: 10_000 });
    expect(plain.bus.connected).toBe(false);
    await plain.stop();
    const { cert, key } = strict.broker.clientCert('lane-cert');
    const withCert = new LaneStationLink({ settings: strict.settings('L01', { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') }), clock: systemClock, log: silentLogger });
    withCert.start();
    try {
      expect(await withCert.bus.waitConnected(10_000)).toBe(true);
    } finally {
      await withCert.stop();
    }
  });
});
