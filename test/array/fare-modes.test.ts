// Signed `fare-mode` station commands in a gate array: each lane of the box has its own station link (its
// own broker identity), and the composition hands each link its own lane's fare gates. A command to one
// lane changes that lane's fare gates only; a station-wide one reaches every fare lane of the box. Real
// mosquitto, real back office (the fare table by the box's one list sync); the card readers and PSAMs are
// in-process stand-ins (no pcscd here: what is under test is the command's path).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../../drivers/seams.js';
import { parseArrayConfig } from '../../firmware/config/array-config.js';
import { silentLogger } from '../../firmware/config/log.js';
import { startGateArray, type GateArray } from '../../firmware/composition/gate-array.js';
import type { ListSync } from '../../firmware/lists/list-sync.js';
import { BusClient } from '../../firmware/station/bus.js';
import { fromHex } from '../../protocol/apdu.js';
import { decodeLaneState, decodeResult, encodeCommand, laneTopic, rawPublicKeyB64, signCommand, stationCommandTopic, type Command, type ResultMessage } from '../../protocol/station-bus.js';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { withCheckDigit } from '../../simulator/backoffice/validate.js';
import { virtualCard } from '../../simulator/virtual-card.js';
import { VirtualPsam } from '../../simulator/virtual-psam.js';
import { startTestStation, type TestStation } from '../support/mosquitto.js';
import { laneFiles, type LaneFiles } from '../support/station-lanes.js';
import { HookedSource } from '../support/hooked-reader.js';

const S = 'BJ-0303';
const GATE = 'gate-token-0123456789';
const N = 24;
let st: TestStation;
let files: LaneFiles;
let bo: Backoffice;
let dir: string;
let view: BusClient;
let array: GateArray;
const readers = { IN: new HookedSource('in', 'entry', systemClock), OUT: new HookedSource('out', 'exit', systemClock) };
/** Each result with the lane whose topic it came on (gate/v1/<station>/<lane>/result). */
const results: (ResultMessage & { from: string })[] = [];
const retained = new Map<string, Buffer>();
const riders = [1, 2].map((k) => withCheckDigit(`31041000880000005${k}`));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'array-fare-modes-'));
  st = await startTestStation(S, ['IN', 'OUT']);
  files = laneFiles(st, []);
  bo = new Backoffice({ db: ':memory:', tokens: [{ token: GATE, role: 'gate' }] });
  bo.publishFareTable({ stations: Array.from({ length: N }, (_, i) => ({ id: i + 1, name: `S${i + 1}`, line: 'L1' })), distancesM: Array.from({ length: N * N }, (_, k) => Math.abs(Math.floor(k / N) - (k % N)) * 3100) });
  bo.importEntries(riders.map((r) => [`card:${r}`, 'green'] as [string, 'green']));
  bo.publish();
  const url = (await bo.listen(0)).url;
  const lane = (id: 'IN' | 'OUT', direction: 'entry' | 'exit', station: number) => ({
    id,
    station: S,
    direction,
    drivers: { barrier: { type: 'simulated' }, sources: [{ type: 'pcsc', side: direction, reader: `Reader ${id}` }] },
    fares: { psam: { reader: `SAM ${id}` }, station },
  });
  const psams = { IN: fromHex('110100000051'), OUT: fromHex('110100000052') };
  array = await startGateArray({
    config: parseArrayConfig({
      lanes: [lane('IN', 'entry', 2), lane('OUT', 'exit', 10)],
      timeouts: { passageMs: 150 },
      policy: { antiPassbackSeconds: 0 },
      lists: { type: 'http-sync', url, dir: join(dir, 'lists'), publicKeys: [bo.publicKeyPem], token: GATE, pollSeconds: 86_400 },
      log: { level: 'silent' },
      station: {
        broker: st.broker.url,
        ca: join(files.dir, 'ca.pem'),
        // Each lane its own broker identity, as `gate broker-config` writes them.
        passwordFile: join(files.dir, `lane.${S}.{lane}.password`),
        keepaliveSeconds: 2,
        reconnectMs: 200,
        supervisors: { [st.supervisor.id]: { publicKey: rawPublicKeyB64(st.supervisor.publicKey), may: ['fare-mode'] } },
      },
    }),
    log: silentLogger,
    sources: (id) => [readers[id as 'IN' | 'OUT']],
    psam: (id) => {
      const p = new VirtualPsam({ terminalId: psams[id as 'IN' | 'OUT'] });
      return { exchange: async (c) => p.respond(c), terminalId: psams[id as 'IN' | 'OUT'] };
    },
  });
  await (array.lists as ListSync).syncOnce();
  view = new BusClient({ url: st.broker.url, ca: st.ca, username: st.viewUser, password: st.viewPassword, clientId: 'view-array-fares', keepaliveSeconds: 5, sessionExpirySeconds: 0, clean: true, reconnectMs: 200, subscriptions: [`gate/v1/${S}/#`], log: silentLogger });
  view.on('message', (t, p) => {
    if (t.endsWith('/result')) {
      const d = decodeResult(p);
      if (d.ok) results.push({ ...d.value, from: t.split('/')[3] });
    } else retained.set(t, p);
  });
  view.start();
  expect(await view.waitConnected(10_000)).toBe(true);
}, 30_000);

afterAll(async () => {
  await array?.stop();
  await view?.end();
  await st?.stop();
  await bo?.close();
  files?.close();
  rmSync(dir, { recursive: true, force: true });
});

function command(c: Pick<Command, 'lane' | 'action' | 'args'>) {
  const now = Date.now();
  const full: Command = { id: randomBytes(16).toString('hex'), station: S, by: st.supervisor.id, issuedAtMs: now, expiresAtMs: now + 30_000, ...c };
  return { full, signed: signCommand(full, st.supervisor.privateKey) };
}
const stateOf = (id: string) => {
  const raw = retained.get(laneTopic(S, id, 'state'));
  const d = raw && decodeLaneState(raw);
  return d && d.ok ? d.value : undefined;
};
const card = (serial: string) => virtualCard().tUnion({ serial, expiry: 20301231, purse: { balanceFen: 5000 } }).build();
const fareOf = (a: number, b: number) => bo.currentFareTable()!.fares[(a - 1) * N + (b - 1)];
const ready = (id: string) => vi.waitFor(() => expect(array.lane(id)!.view().state).toBe('normal.ready'), { timeout: 5000 });

describe('signed fare-mode commands in a gate array', () => {
  it("a command to one lane reaches that lane's fare gates only; a station-wide one every fare lane of the box", async () => {
    await vi.waitFor(() => expect([stateOf('IN')?.fareModes, stateOf('OUT')?.fareModes]).toEqual([[], []]), { timeout: 10_000 });

    // Train failure at the exit lane only.
    const tf = command({ lane: 'OUT', action: 'fare-mode', args: { fareModes: ['train-failure'] } });
    await view.publishAcked(laneTopic(S, 'OUT', 'cmd'), encodeCommand(tf.signed));
    await vi.waitFor(() => expect(results.find((r) => r.id === tf.full.id)).toMatchObject({ ok: true, from: 'OUT', detail: 'fare modes: train-failure' }), { timeout: 5000 });
    await vi.waitFor(() => expect([stateOf('IN')?.fareModes, stateOf('OUT')?.fareModes]).toEqual([[], ['train-failure']]), { timeout: 5000 });
    const first = card(riders[0]);
    expect(await readers.IN.tapCard(first)).toMatchObject({ grant: true, reason: 'ok' });
    expect(await readers.OUT.tapCard(first)).toMatchObject({ grant: true, reason: 'ok-fare-waived' });
    expect(first.purse!.balanceFen).toBe(5000);

    // Back to normal, station-wide: every fare lane of the box answers and takes it.
    const normal = command({ lane: 'station', action: 'fare-mode', args: { fareModes: [] } });
    await view.publishAcked(stationCommandTopic(S), encodeCommand(normal.signed));
    await vi.waitFor(() => expect(results.filter((r) => r.id === normal.full.id && r.ok).map((r) => r.from).sort()).toEqual(['IN', 'OUT']), { timeout: 5000 });
    await vi.waitFor(() => expect(stateOf('OUT')?.fareModes).toEqual([]), { timeout: 5000 });
    const second = card(riders[1]);
    await ready('IN');
    expect(await readers.IN.tapCard(second)).toMatchObject({ grant: true, reason: 'ok' });
    await ready('OUT');
    expect(fareOf(2, 10)).toBeGreaterThan(0);
    expect(await readers.OUT.tapCard(second)).toMatchObject({ grant: true, reason: 'ok' });
    expect(second.purse!.balanceFen).toBe(5000 - fareOf(2, 10));
  }, 30_000);
});
