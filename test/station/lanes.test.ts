// Real lanes on a real station broker: QR codes accepted once per station, the fire alarm of one lane
// opening every lane, signed commands taken and everything else refused, and the broker killed and
// restarted mid-run.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BusClient } from '../../firmware/station/bus.js';
import { silentLogger } from '../../firmware/config/log.js';
import {
  decodeLaneState,
  decodeOnline,
  decodeResult,
  encodeCommand,
  laneTopic,
  signCommand,
  stationCommandTopic,
  type Command,
  type ResultMessage,
} from '../../protocol/station-bus.js';
import { generateKeyPairSync } from 'node:crypto';
import { startTestStation, type TestStation } from '../support/mosquitto.js';
import { MemoryJournal } from '../../firmware/journal/journal.js';
import { fareModeSink, NORMAL_MODES } from '../../firmware/fares/fare-gate.js';
import { virtualCard } from '../../simulator/virtual-card.js';
import { fareGate, fareTap } from '../fares/support.js';
import { laneFiles, startStationLane, type LaneFiles, type StationLane } from '../support/station-lanes.js';

const S = 'BJ-0202';
let st: TestStation;
let files: LaneFiles;
let lanes: StationLane[] = [];
let view: BusClient;
const results: ResultMessage[] = [];
const retained = new Map<string, Buffer>();

const accounts = Array.from({ length: 40 }, (_, i) => `rider${i}`);

beforeAll(async () => {
  st = await startTestStation(S, ['L01', 'L02', 'L03', 'L04']);
  files = laneFiles(st, accounts);
  // L04 may only switch modes: everything else it is ordered is unauthorised.
  lanes = await Promise.all([startStationLane(files, 'L01'), startStationLane(files, 'L02'), startStationLane(files, 'L03')]);
  view = new BusClient({
    url: st.broker.url,
    ca: st.ca,
    username: st.viewUser,
    password: st.viewPassword,
    clientId: 'view-test',
    keepaliveSeconds: 5,
    sessionExpirySeconds: 0,
    clean: true,
    reconnectMs: 200,
    subscriptions: [`gate/v1/${S}/#`],
    log: silentLogger,
  });
  view.on('message', (t, p) => {
    if (t.endsWith('/result')) {
      const d = decodeResult(p);
      if (d.ok) results.push(d.value);
    } else retained.set(t, p);
  });
  view.start();
  expect(await view.waitConnected(10_000)).toBe(true);
  for (const l of lanes) expect(await l.link.bus.waitConnected(10_000)).toBe(true);
});

afterAll(async () => {
  await Promise.allSettled(lanes.map((l) => l.lane.stop()));
  await view?.end();
  await st?.stop();
  files?.close();
});

const mint = (account: string) => files.apps.app('alipay').mint(account, Date.now(), { validitySeconds: 120 });
const codeIdOf = (text: string) => {
  // The code id is what the decision core remembers; ask the verifier of any lane.
  const v = lanes[0].lane.core as unknown as { rideCodes: { verify(t: string, n: number): { ok: boolean; credential?: { codeId?: string } } } };
  return v.rideCodes.verify(text, Date.now()).credential!.codeId!;
};

function command(c: Partial<Command> & Pick<Command, 'lane' | 'action'>, key = st.supervisor.privateKey) {
  const now = Date.now();
  const full: Command = { id: randomBytes(16).toString('hex'), station: S, args: {}, by: st.supervisor.id, issuedAtMs: now, expiresAtMs: now + 30_000, ...c };
  return { full, signed: signCommand(full, key) };
}
const resultFor = async (id: string) => {
  await vi.waitFor(() => expect(results.some((r) => r.id === id)).toBe(true), { timeout: 5000 });
  return results.find((r) => r.id === id)!;
};

describe('QR codes through the broker', () => {
  it('a code accepted at one lane is refused at every lane of the station', async () => {
    const texts = accounts.slice(0, 5).map(mint);
    for (const t of texts) expect(await lanes[0].show(t)).toEqual({ grant: true, reason: 'ok' });
    await vi.waitFor(() => {
      for (const t of texts) for (const l of lanes) expect(l.link.usedCodes.isUsed(codeIdOf(t), Date.now())).toBe(true);
    }, { timeout: 5000 });
    for (const t of texts) for (const l of lanes) expect(await l.show(t)).toEqual({ grant: false, reason: 'qr-replayed' });
  });
});

describe('telemetry', () => {
  it('each lane is born (retained online) and keeps a retained, privacy-safe state', async () => {
    await vi.waitFor(() => {
      for (const l of lanes) {
        const on = retained.get(laneTopic(S, l.id, 'online'));
        expect(on && decodeOnline(on).ok && (decodeOnline(on) as { value: { online: boolean } }).value.online).toBe(true);
        const s = retained.get(laneTopic(S, l.id, 'state'));
        expect(s && decodeLaneState(s).ok).toBe(true);
      }
    }, { timeout: 5000 });
    const s = decodeLaneState(retained.get(laneTopic(S, 'L01', 'state'))!);
    if (!s.ok) throw new Error(s.why);
    expect(s.value).toMatchObject({ mode: 'normal', link: 'up', listVersion: expect.any(Number), readers: { 'qr-L01': 'ok' }, fireAlarm: false });
    expect(JSON.stringify(s.value)).not.toMatch(/rider\d/);
  });
});

describe('the fire alarm of one lane', () => {
  it('reaches every lane of the station through the bus; a signed reset brings each back', async () => {
    lanes[1].lane.send({ type: 'FIRE_ALARM', active: true });
    await vi.waitFor(() => {
      for (const l of lanes) expect(l.lane.view().mode).toBe('emergency');
    }, { timeout: 5000 });
    expect(lanes[0].link.counters.fireRelayed + lanes[2].link.counters.fireRelayed).toBe(2);
    // The state every supervisor sees says so.
    await vi.waitFor(() => {
      const s = decodeLaneState(retained.get(laneTopic(S, 'L03', 'state'))!);
      expect(s.ok && s.value.mode === 'emergency' && s.value.fireAlarm).toBe(true);
    }, { timeout: 5000 });
    // A reset while the input is still on is refused by the lane, and says why.
    const early = command({ lane: 'L01', action: 'reset-emergency' });
    await view.publishAcked(laneTopic(S, 'L01', 'cmd'), encodeCommand(early.signed));
    expect(await resultFor(early.full.id)).toMatchObject({ ok: false, refusal: 'failed', mode: 'emergency' });
    // The input clears at L02; the all-clear goes round; a station-wide reset is then ordered lane by lane.
    lanes[1].lane.send({ type: 'FIRE_ALARM', active: false });
    await vi.waitFor(() => {
      for (const l of lanes) expect(l.lane.view().fireAlarm).toBe(false);
    }, { timeout: 5000 });
    for (const l of lanes) {
      const c = command({ lane: l.id, action: 'reset-emergency' });
      await view.publishAcked(laneTopic(S, l.id, 'cmd'), encodeCommand(c.signed));
      expect(await resultFor(c.full.id)).toMatchObject({ ok: true, by: 'sup-wang', mode: 'normal' });
    }
  });
});

describe('signed commands', () => {
  it('a signed set-mode is taken and acknowledged; station-wide emergency reaches every lane', async () => {
    const c = command({ lane: 'L02', action: 'set-mode', args: { mode: 'maintenance' } });
    await view.publishAcked(laneTopic(S, 'L02', 'cmd'), encodeCommand(c.signed));
    expect(await resultFor(c.full.id)).toMatchObject({ ok: true, action: 'set-mode', by: 'sup-wang', mode: 'maintenance' });
    expect(lanes[1].lane.view().mode).toBe('maintenance');
    const back = command({ lane: 'L02', action: 'set-mode', args: { mode: 'normal' } });
    await view.publishAcked(laneTopic(S, 'L02', 'cmd'), encodeCommand(back.signed));
    expect(await resultFor(back.full.id)).toMatchObject({ ok: true, mode: 'normal' });

    const on = command({ lane: 'station', action: 'station-emergency', args: { active: true } });
    await view.publishAcked(stationCommandTopic(S), encodeCommand(on.signed));
    await vi.waitFor(() => expect(results.filter((r) => r.id === on.full.id && r.ok)).toHaveLength(3), { timeout: 5000 });
    for (const l of lanes) expect(l.lane.view().mode).toBe('emergency');
    const off = command({ lane: 'station', action: 'station-emergency', args: { active: false } });
    await view.publishAcked(stationCommandTopic(S), encodeCommand(off.signed));
    await vi.waitFor(() => expect(results.filter((r) => r.id === off.full.id && r.ok)).toHaveLength(3), { timeout: 5000 });
    for (const l of lanes) {
      const r = command({ lane: l.id, action: 'reset-emergency' });
      await view.publishAcked(laneTopic(S, l.id, 'cmd'), encodeCommand(r.signed));
      expect(await resultFor(r.full.id)).toMatchObject({ ok: true, mode: 'normal' });
    }
  });

  it('forged, replayed, expired, unsigned, unauthorised and misaddressed commands are refused, counted and answered', async () => {
    const lane = lanes[2];
    const before = { ...lane.link.guard.counters };
    const t = laneTopic(S, 'L03', 'cmd');
    const send = (payload: Uint8Array, topic = t) => view.publishAcked(topic, payload);
    // Forged: signed by a key that is not the supervisor's.
    const forged = command({ lane: 'L03', action: 'set-mode', args: { mode: 'closed' } }, generateKeyPairSync('ed25519').privateKey);
    await send(encodeCommand(forged.signed));
    expect(await resultFor(forged.full.id)).toMatchObject({ ok: false, refusal: 'bad-signature', by: 'sup-wang' });
    // Tampered after signing.
    const good = command({ lane: 'L03', action: 'set-mode', args: { mode: 'normal' } });
    const tampered = { ...good.signed, id: randomBytes(16).toString('hex'), args: { mode: 'closed' as const } };
    await send(encodeCommand(tampered));
    expect(await resultFor(tampered.id)).toMatchObject({ ok: false, refusal: 'bad-signature' });
    // Taken once, then replayed.
    await send(encodeCommand(good.signed));
    await vi.waitFor(() => expect(results.filter((r) => r.id === good.full.id)).toHaveLength(1), { timeout: 5000 });
    await send(encodeCommand(good.signed));
    await vi.waitFor(() => expect(results.filter((r) => r.id === good.full.id)).toHaveLength(2), { timeout: 5000 });
    expect(results.filter((r) => r.id === good.full.id).map((r) => r.refusal ?? 'ok')).toEqual(['ok', 'replayed']);
    // Expired, and one that claims to live too long.
    const expired = command({ lane: 'L03', action: 'set-mode', args: { mode: 'closed' }, issuedAtMs: Date.now() - 60_000, expiresAtMs: Date.now() - 30_000 });
    await send(encodeCommand(expired.signed));
    expect(await resultFor(expired.full.id)).toMatchObject({ ok: false, refusal: 'expired' });
    const forever = command({ lane: 'L03', action: 'set-mode', args: { mode: 'closed' }, expiresAtMs: Date.now() + 86_400_000 });
    await send(encodeCommand(forever.signed));
    expect(await resultFor(forever.full.id)).toMatchObject({ ok: false, refusal: 'too-long-lived' });
    // Unsigned.
    const unsigned = command({ lane: 'L03', action: 'set-mode', args: { mode: 'closed' } });
    await send(encodeCommand(unsigned.full));
    expect(await resultFor(unsigned.full.id)).toMatchObject({ ok: false, refusal: 'unsigned' });
    // Someone the lane does not know.
    const stranger = command({ lane: 'L03', action: 'set-mode', args: { mode: 'closed' }, by: 'sup-li' });
    await send(encodeCommand(stranger.signed));
    expect(await resultFor(stranger.full.id)).toMatchObject({ ok: false, refusal: 'unknown-supervisor', by: 'sup-li' });
    // For another lane, sent on this lane's topic; and a lane command sent station-wide.
    const other = command({ lane: 'L01', action: 'set-mode', args: { mode: 'closed' } });
    await send(encodeCommand(other.signed));
    expect(await resultFor(other.full.id)).toMatchObject({ ok: false, refusal: 'wrong-lane' });
    const wide = command({ lane: 'L03', action: 'set-mode', args: { mode: 'closed' } });
    await send(encodeCommand(wide.signed), stationCommandTopic(S));
    await vi.waitFor(() => expect(results.filter((r) => r.id === wide.full.id && r.refusal === 'wrong-lane')).toHaveLength(3), { timeout: 5000 });
    // Junk.
    await send(new Uint8Array(Buffer.from('{"v":1,"id":"zz"}')));
    await vi.waitFor(() => expect(lane.link.guard.counters.malformed).toBe(before.malformed + 1), { timeout: 5000 });
    expect(lane.lane.view().mode).toBe('normal');
    const c = lane.link.guard.counters;
    expect({ badSig: c['bad-signature'] - before['bad-signature'], replayed: c.replayed - before.replayed, expired: c.expired - before.expired, long: c['too-long-lived'] - before['too-long-lived'], unsigned: c.unsigned - before.unsigned, unknown: c['unknown-supervisor'] - before['unknown-supervisor'], wrongLane: c['wrong-lane'] - before['wrong-lane'] }).toEqual({
      badSig: 2, replayed: 1, expired: 1, long: 1, unsigned: 1, unknown: 1, wrongLane: 2,
    });
  });

  it('a supervisor the lane trusts only for modes may not order anything else', async () => {
    const l4 = await startStationLane(files, 'L04', { may: ['set-mode'] });
    lanes.push(l4);
    expect(await l4.link.bus.waitConnected(10_000)).toBe(true);
    const c = command({ lane: 'L04', action: 'reload' });
    await view.publishAcked(laneTopic(S, 'L04', 'cmd'), encodeCommand(c.signed));
    expect(await resultFor(c.full.id)).toMatchObject({ ok: false, refusal: 'unauthorised', by: 'sup-wang' });
    const m = command({ lane: 'L04', action: 'set-mode', args: { mode: 'free' } });
    await view.publishAcked(laneTopic(S, 'L04', 'cmd'), encodeCommand(m.signed));
    expect(await resultFor(m.full.id)).toMatchObject({ ok: true, mode: 'freePassage' });
    await l4.lane.stop();
    lanes.pop();
  });
});

describe('fare modes (GB 50157) by signed command', () => {
  it('a signed fare-mode is taken, acknowledged and shown in the state, and the fare gate then works by it; forged and unsigned ones change nothing; a lane without a fare gate says so', async () => {
    const j = new MemoryJournal();
    const exit = fareGate({ station: 20, direction: 'exit' }, j).gate;
    const entry = fareGate({ station: 1, direction: 'entry' }, j).gate;
    lanes[0].link.connectFareModes(fareModeSink(exit));
    const stateOf = (id: string) => {
      const d = decodeLaneState(retained.get(laneTopic(S, id, 'state'))!);
      return d.ok ? d.value : undefined;
    };
    await vi.waitFor(() => expect(stateOf('L01')?.fareModes).toEqual([]), { timeout: 5000 });
    expect(stateOf('L02')).not.toHaveProperty('fareModes');
    const t = laneTopic(S, 'L01', 'cmd');
    const before = { ...lanes[0].link.guard.counters };

    // Forged, tampered after signing, unsigned: refused, answered, the gate untouched.
    const forged = command({ lane: 'L01', action: 'fare-mode', args: { fareModes: ['train-failure'] } }, generateKeyPairSync('ed25519').privateKey);
    await view.publishAcked(t, encodeCommand(forged.signed));
    expect(await resultFor(forged.full.id)).toMatchObject({ ok: false, refusal: 'bad-signature', action: 'fare-mode' });
    const signed = command({ lane: 'L01', action: 'fare-mode', args: { fareModes: ['waive-time'] } });
    const tampered = { ...signed.signed, id: randomBytes(16).toString('hex'), args: { fareModes: ['emergency-release' as const] } };
    await view.publishAcked(t, encodeCommand(tampered));
    expect(await resultFor(tampered.id)).toMatchObject({ ok: false, refusal: 'bad-signature' });
    const unsigned = command({ lane: 'L01', action: 'fare-mode', args: { fareModes: ['emergency-release'] } });
    await view.publishAcked(t, encodeCommand(unsigned.full));
    expect(await resultFor(unsigned.full.id)).toMatchObject({ ok: false, refusal: 'unsigned' });
    expect(exit.modes).toEqual(NORMAL_MODES);
    const c = lanes[0].link.guard.counters;
    expect([c['bad-signature'] - before['bad-signature'], c.unsigned - before.unsigned]).toEqual([2, 1]);

    // Station-wide train failure: the lane with a fare gate takes it, the others say they have none.
    const tf = command({ lane: 'station', action: 'fare-mode', args: { fareModes: ['train-failure'] } });
    await view.publishAcked(stationCommandTopic(S), encodeCommand(tf.signed));
    await vi.waitFor(() => expect(results.filter((r) => r.id === tf.full.id)).toHaveLength(3), { timeout: 5000 });
    const answers = results.filter((r) => r.id === tf.full.id);
    expect(answers.filter((r) => r.ok)).toEqual([expect.objectContaining({ detail: 'fare modes: train-failure', by: 'sup-wang' })]);
    expect(answers.filter((r) => !r.ok)).toEqual([0, 1].map(() => expect.objectContaining({ refusal: 'failed', detail: 'this lane has no fare gate' })));
    expect(exit.modes).toEqual({ ...NORMAL_MODES, trainFailure: true });
    await vi.waitFor(() => expect(stateOf('L01')?.fareModes).toEqual(['train-failure']), { timeout: 5000 });
    // ... and the fare gate charges nothing at the exit, the trip closed on the card.
    const rider = virtualCard().tUnion({ serial: '3104100099000000001', expiry: 20301231, purse: { balanceFen: 1000 } }).build();
    const t0 = Date.UTC(2024, 5, 3, 1);
    await fareTap(entry, rider, t0);
    expect(await fareTap(exit, rider, t0 + 3_600_000)).toMatchObject({ decision: { grant: true, chargeFen: 0, reason: 'ok-fare-waived', outcome: 'debited' } });
    expect(rider.purse!.balanceFen).toBe(1000);

    // The same signed command again is a replay; a lane command puts the set back to normal.
    await view.publishAcked(stationCommandTopic(S), encodeCommand(tf.signed));
    await vi.waitFor(() => expect(results.filter((r) => r.id === tf.full.id && r.refusal === 'replayed')).toHaveLength(3), { timeout: 5000 });
    const normal = command({ lane: 'L01', action: 'fare-mode', args: { fareModes: [] } });
    await view.publishAcked(t, encodeCommand(normal.signed));
    expect(await resultFor(normal.full.id)).toMatchObject({ ok: true, detail: 'fare modes: normal' });
    expect(exit.modes).toEqual(NORMAL_MODES);
    await vi.waitFor(() => expect(stateOf('L01')?.fareModes).toEqual([]), { timeout: 5000 });
  });
});

describe('the broker killed and restarted mid-run', () => {
  it('lanes keep deciding; once it is back they catch up, and no code is accepted twice outside the window', async () => {
    const [a, b] = lanes;
    // Before: propagated.
    const before = mint(accounts[10]);
    expect(await a.show(before)).toMatchObject({ grant: true });
    await vi.waitFor(() => expect(b.link.usedCodes.isUsed(codeIdOf(before), Date.now())).toBe(true), { timeout: 5000 });

    await st.broker.kill();
    const killedAt = performance.now();
    await vi.waitFor(() => expect(lanes.every((l) => !l.link.bus.connected)).toBe(true), { timeout: 10_000 });
    // Away: both lanes keep deciding on what they have.
    const during = accounts.slice(11, 17).map(mint);
    for (const t of during) expect(await a.show(t)).toEqual({ grant: true, reason: 'ok' });
    expect(await b.show(before)).toEqual({ grant: false, reason: 'qr-replayed' });
    // The documented window: a code used at A while the broker is away is accepted once more at B.
    const inWindow = during[0];
    expect(await b.show(inWindow)).toEqual({ grant: true, reason: 'ok' });

    await st.broker.restart();
    await vi.waitFor(() => expect(lanes.every((l) => l.link.bus.connected)).toBe(true), { timeout: 15_000 });
    // Caught up: every code either lane accepted is known at every lane.
    await vi.waitFor(() => {
      for (const t of [before, ...during]) for (const l of lanes) expect(l.link.usedCodes.isUsed(codeIdOf(t), Date.now())).toBe(true);
    }, { timeout: 10_000 });
    const windowMs = performance.now() - killedAt;
    // From now on, no lane accepts any of them again.
    for (const t of [before, ...during]) for (const l of lanes) expect(await l.show(t)).toEqual({ grant: false, reason: 'qr-replayed' });
    console.log(`broker outage: double-use window closed ${Math.round(windowMs)} ms after the kill (outage + reconnect + catch-up); republished ${lanes.map((l) => l.link.counters.republished).join('/')}`);
  });
});
