// Fare gates in a gate array: two lanes of one box with `lanes[i].fares`, over a private pcscd and the real
// back office. The entry lane is all real (its card in slot 0 read by the PC/SC driver, its PSAM in slot 1);
// the private pcscd has no third slot, so the exit lane's card reader and PSAM are in-process stand-ins that
// run the hook exactly as the driver does. The fare table comes by the box's one list sync, asked for once
// per sync round however many lanes sell fares, and held once: a newer table reaches every lane's gate.
// Config errors name `lanes[i].fares.<field>`; start-up errors too, and leave nothing running.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { laneConfigOf, parseArrayConfig } from '../../firmware/config/array-config.js';
import { ConfigError } from '../../firmware/config/config.js';
import { startGateArray, type GateArray } from '../../firmware/composition/gate-array.js';
import type { MemoryJournal } from '../../firmware/journal/journal.js';
import type { ListSync } from '../../firmware/lists/list-sync.js';
import type { Lane } from '../../firmware/lane/lane.js';
import { systemClock } from '../../drivers/seams.js';
import { fromHex } from '../../protocol/apdu.js';
import { parseTripRecord } from '../../protocol/tunion-purse.js';
import { GateErrorCode, isGateError } from '../../protocol/errors.js';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { withCheckDigit } from '../../simulator/backoffice/validate.js';
import { virtualCard, type VirtualCard } from '../../simulator/virtual-card.js';
import { VirtualPsam } from '../../simulator/virtual-psam.js';
import { startPcscd, type PrivatePcscd } from '../support/pcscd.js';
import { waitUntil } from '../support/wait.js';
import { TERMINAL_ID } from '../fares/support.js';
import { HookedSource } from '../support/hooked-reader.js';
import { countingProxy } from '../support/counting-proxy.js';
import { tapUntilDecided } from '../support/tap-until-decided.js';

const GATE = 'gate-token-0123456789';
const N = 24;
const EXIT_TERMINAL = fromHex('110100000043');
let pcscd: PrivatePcscd;
let vpsam: VirtualPsam;
let bo: Backoffice;
let proxy: Awaited<ReturnType<typeof countingProxy>>;
let dir: string;
const riders = [1, 2, 3].map((k) => withCheckDigit(`31041000880000001${k}`));
const blocked = withCheckDigit('310410008800000029');


const network = (metresApart: number) => ({ stations: Array.from({ length: N }, (_, i) => ({ id: i + 1, name: `S${i + 1}`, line: 'L1' })), distancesM: Array.from({ length: N * N }, (_, k) => Math.abs(Math.floor(k / N) - (k % N)) * metresApart) });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'array-fares-'));
  bo = new Backoffice({ db: ':memory:', tokens: [{ token: GATE, role: 'gate' }] });
  bo.publishFareTable(network(3100));
  bo.importEntries([...riders.map((r) => [`card:${r}`, 'green'] as [string, 'green']), [`card:${blocked}`, 'blocked']]);
  bo.publish();
  proxy = await countingProxy((await bo.listen(0)).url, '/v1/fare-table');
  pcscd = await startPcscd();
  process.env.PCSCLITE_CSOCK_NAME = pcscd.socket;
  vpsam = new VirtualPsam({ terminalId: TERMINAL_ID });
  await vpsam.insert(pcscd.readers[1].port);
}, 30_000);
afterAll(async () => {
  vpsam?.remove();
  await pcscd?.stop();
  await new Promise((r) => proxy?.server.close(r));
  await bo?.close();
  rmSync(dir, { recursive: true, force: true });
});

function arrayConfig(over: { lists?: Record<string, unknown>; lanes?: (l: Record<string, unknown>[]) => Record<string, unknown>[] } = {}) {
  const lanes: Record<string, unknown>[] = [
    // A lane without fares first: the box's sync keeps the fare table all the same.
    { id: 'Q', station: '2', direction: 'entry', drivers: { barrier: { type: 'simulated' }, sources: [{ type: 'simulated', side: 'entry' }] } },
    // The entry lane's station is a fare-table id: its fare gate takes it (and lane number 2, its place).
    { id: 'IN', station: '2', direction: 'entry', drivers: { barrier: { type: 'simulated' }, sources: [{ type: 'pcsc', side: 'entry', reader: pcscd.readers[0].name, retryMs: 100 }] }, fares: { psam: { reader: pcscd.readers[1].name } } },
    { id: 'OUT', station: 'S10', direction: 'exit', drivers: { barrier: { type: 'simulated' }, sources: [{ type: 'pcsc', side: 'exit', reader: 'In-process reader' }] }, fares: { psam: { reader: 'In-process SAM' }, station: 10 } },
  ];
  return {
    lanes: over.lanes ? over.lanes(lanes) : lanes,
    timeouts: { passageMs: 200 },
    policy: { antiPassbackSeconds: 0 },
    lists: over.lists ?? { type: 'http-sync', url: proxy.url, dir: join(dir, 'lists'), publicKeys: [bo.publicKeyPem], token: GATE, pollSeconds: 86_400 },
  };
}

const card = (serial: string) => virtualCard().tUnion({ serial, expiry: 20301231, purse: { balanceFen: 5000 } }).build();
const fareOf = (a: number, b: number) => bo.currentFareTable()!.fares[(a - 1) * N + (b - 1)];
const fareRecords = (l: Lane) => (l.journal as MemoryJournal).records.map((r) => r.entry).filter((e) => e.type === 'fare');

async function startFareArray(config: unknown) {
  const exit = new HookedSource('out', 'exit', systemClock);
  const exitPsam = new VirtualPsam({ terminalId: EXIT_TERMINAL });
  const array = await startGateArray({
    config: parseArrayConfig(config),
    sources: (id) => (id === 'OUT' ? [exit] : undefined),
    psam: (id) => (id === 'OUT' ? { exchange: async (c) => exitPsam.respond(c), terminalId: EXIT_TERMINAL } : undefined),
  });
  return { array, exit };
}

/** Tap the entry lane's real reader (slot 0) and wait for its decision; a tap not seen whole is tapped again. */
async function tapEntry(array: GateArray, c: VirtualCard) {
  const lane = array.lane('IN')!;
  const decisions: { grant: boolean; reason: string }[] = [];
  const on = (e: { decision: { grant: boolean; reason: string } }) => decisions.push({ grant: e.decision.grant, reason: e.decision.reason });
  lane.events.on('decision', on);
  try {
    return await tapUntilDecided(c, pcscd.readers[0].port, decisions);
  } finally {
    lane.events.off('decision', on);
  }
}

describe('fare gates in a gate array', () => {
  it('the entry lane writes the entry, the exit lane debits the synced table fare; one fare table for the box, asked once per sync', async () => {
    const { array, exit } = await startFareArray(arrayConfig());
    try {
      const sync = array.lists as ListSync;
      const gets = proxy.count();
      await sync.syncOnce();
      // Two lanes sell fares; the box's one sync asks for the table once and keeps it in one file.
      expect(proxy.count() - gets).toBe(1);
      expect(readFileSync(join(dir, 'lists', 'fare-table.json'))).toEqual(bo.fareTable());
      expect(array.fareTable?.current()?.seq).toBe(bo.currentFareTable()!.seq);
      await waitUntil(() => array.lanes.every((l) => l.view().mode === 'normal'), 10_000, () => array.lanes.map((l) => l.view().mode).join());
      const [inside, out] = [array.lane('IN')!, array.lane('OUT')!];

      const rider = card(riders[0]);
      expect(await tapEntry(array, rider)).toEqual({ grant: true, reason: 'ok' });
      expect(fareRecords(inside)).toEqual([expect.objectContaining({ direction: 'entry', outcome: 'debited', chargeFen: 0, station: 2, key: `card:${riders[0]}` })]);
      expect(fareOf(2, 10)).toBeGreaterThan(0);
      expect(await exit.tapCard(rider)).toMatchObject({ grant: true, reason: 'ok' });
      expect(rider.purse!.balanceFen).toBe(5000 - fareOf(2, 10));
      expect(fareRecords(out)).toEqual([expect.objectContaining({ direction: 'exit', outcome: 'debited', chargeFen: fareOf(2, 10), station: 10, detail: expect.objectContaining({ entryStation: 2, terminalId: '110100000043' }) })]);
      // Each lane journals its own fares; the card's trip record carries each lane's number (its place in `lanes`).
      expect(fareRecords(inside)).toHaveLength(1);
      const trip = parseTripRecord(Uint8Array.from([...rider.purse!.record, 0x90, 0x00]));
      expect(trip.ok && [trip.value.entryStation, trip.value.entryLane, trip.value.exitStation, trip.value.exitLane]).toEqual([2, 2, 10, 3]);

      // The exit lane checks the box's lists before the card is written.
      const thief = card(blocked);
      const untouched = { debits: thief.purse!.debitCount, record: Uint8Array.from(thief.purse!.record) };
      await waitUntil(() => out.view().state === 'normal.ready', 5000, () => out.view().state);
      expect(await exit.tapCard(thief)).toMatchObject({ grant: false, reason: 'blocked' });
      expect({ debits: thief.purse!.debitCount, record: thief.purse!.record }).toEqual(untouched);

      // A newer table (fares doubled: stations twice as far apart) comes by the next sync, asked once again,
      // and every lane's gate prices by it.
      const old = fareOf(2, 10);
      bo.publishFareTable(network(6200));
      expect(fareOf(2, 10)).toBeGreaterThan(old);
      const before = proxy.count();
      await sync.syncOnce();
      expect(proxy.count() - before).toBe(1);
      expect(array.fareTable?.current()?.seq).toBe(bo.currentFareTable()!.seq);
      const second = card(riders[1]);
      await waitUntil(() => inside.view().state === 'normal.ready', 5000, () => inside.view().state);
      expect(await tapEntry(array, second)).toEqual({ grant: true, reason: 'ok' });
      await waitUntil(() => out.view().state === 'normal.ready', 5000, () => out.view().state);
      expect(await exit.tapCard(second)).toMatchObject({ grant: true, reason: 'ok' });
      expect(second.purse!.balanceFen).toBe(5000 - fareOf(2, 10));
      expect(fareRecords(out).at(-1)).toEqual(expect.objectContaining({ outcome: 'debited', chargeFen: fareOf(2, 10) }));
    } finally {
      await array.stop();
    }
  }, 60_000);

  it('a lane whose PSAM does not answer is out of service alone, saying so; the other lanes serve', async () => {
    const { array } = await startFareArray(arrayConfig({ lanes: ([q, a, b]) => [q, { ...a, fares: { psam: { reader: 'No Such SAM', readyWaitMs: 300 } } }, b] }));
    try {
      const inLane = array.lane('IN')!;
      await waitUntil(() => inLane.view().mode === 'outOfService', 5000, () => inLane.view().mode);
      expect(JSON.stringify(inLane.view())).toMatch(/lanes\[1\]\.fares\.psam\.reader: no PSAM answered in a reader matching \\"No Such SAM\\"/);
      // Nothing was written to a card at the lane without its PSAM: its reader is not even read.
      const rider = card(riders[2]);
      const before = Uint8Array.from(rider.purse!.record);
      const t = rider.tap({ port: pcscd.readers[0].port, leaveAfterIdleMs: 1000 });
      await new Promise((r) => setTimeout(r, 1200));
      t.remove();
      await t.done;
      expect({ debits: rider.purse!.debitCount, record: rider.purse!.record }).toEqual({ debits: 0, record: before });
      // The exit lane has its PSAM: it still debits (the rider's card says "entered at 2" from a lane that sold it).
      const q = array.lane('Q')!;
      expect(q.view().mode).toBe('normal');
      const out = array.lane('OUT')!;
      await (array.lists as ListSync).syncOnce();
      await waitUntil(() => out.view().mode === 'normal', 5000, () => out.view().mode);
      expect(array.fareTable?.current()).toBeDefined();
    } finally {
      await array.stop();
    }
  }, 30_000);

  it('start-up errors name lanes[i].fares.<field> and leave nothing running', async () => {
    const fails = async (config: unknown) => {
      const e = await startFareArray(config).then(
        async ({ array }) => {
          await array.stop();
          return undefined;
        },
        (err: unknown) => err,
      );
      if (!(e instanceof Error)) throw new Error('start-up did not fail');
      return e;
    };
    const wrongSide = await fails(arrayConfig({ lanes: ([q, a, b]) => [q, { ...a, drivers: { barrier: { type: 'simulated' }, sources: [{ type: 'pcsc', side: 'exit', reader: pcscd.readers[0].name }] } }, b] }));
    expect(isGateError(wrongSide, GateErrorCode.Config) && wrongSide.message).toMatch(/^lanes\[1\]\.drivers\.sources\[0\]\.side: "exit" on a fare gate for entry \(lanes\[1\]\.fares\.direction, lanes\[1\]\.direction\)/);
    const noTable = await fails(arrayConfig({ lists: { type: 'memory' } }));
    expect(noTable.message).toMatch(/lists\.publicKeys/);
    // The first fare lane names the box's one table.
    const snapshot = join(dir, 'lists.snap');
    writeFileSync(snapshot, Buffer.from(await (await fetch(`${proxy.url}/v1/lists/snapshot`, { headers: { authorization: `Bearer ${GATE}` } })).arrayBuffer()));
    const unsynced = await fails(arrayConfig({ lists: { type: 'file', path: snapshot, publicKeys: [bo.publicKeyPem] } }));
    expect(unsynced.message).toMatch(/^lanes\[1\]\.fares\.tablePath: give the signed fare table file/);
    // What failed closed what it opened: the same box starts, its real PSAM slot free again.
    const { array } = await startFareArray(arrayConfig());
    await array.stop();
  }, 60_000);
});

describe('lanes[i].fares in the config', () => {
  const lane = (id: string, extra: Record<string, unknown> = {}) => ({ id, direction: 'exit', drivers: { barrier: { type: 'simulated' }, sources: [{ type: 'pcsc', side: 'exit', reader: `R-${id}` }] }, ...extra });
  const box = (...lanes: unknown[]) => ({ lanes, lists: { type: 'http-sync', url: 'http://bo.invalid', dir: '/var/lib/gate/lists', publicKeys: ['k'] } });
  const issuesOf = (raw: unknown) => {
    try {
      parseArrayConfig(raw);
    } catch (e) {
      if (e instanceof ConfigError) return e.issues;
      throw e;
    }
    throw new Error('no ConfigError');
  };

  it('station from the lane when it is a fare-table id, lane number from its place; the rest as the one-lane section', () => {
    const a = parseArrayConfig(box(lane('A', { station: '7', fares: { psam: { reader: 'SAM A' } } }), lane('B'), lane('C', { station: 'S7', fares: { psam: { reader: 'SAM C' }, station: 12, laneNumber: 9, retapGraceMs: 1000 } })));
    expect(laneConfigOf(a, 0).fares).toEqual({ psam: { reader: 'SAM A' }, station: 7, laneNumber: 1, retapGraceMs: 600_000 });
    expect(laneConfigOf(a, 1).fares).toBeUndefined();
    expect(laneConfigOf(a, 2).fares).toEqual({ psam: { reader: 'SAM C' }, station: 12, laneNumber: 9, retapGraceMs: 1000 });
  });

  it('a bad field is named where it sits in the file', () => {
    const paths = (raw: unknown) => issuesOf(raw).map((i) => i.path);
    expect(issuesOf(box(lane('A', { station: 'SIM', fares: { psam: { reader: 'SAM A' } } })))).toEqual([{ path: 'lanes[0].fares.station', message: expect.stringContaining('the lane\'s station "SIM" is not one') }]);
    expect(paths(box(lane('A'), lane('B', { fares: { psam: { reader: 'SAM B' }, station: 0 } })))).toEqual(['lanes[1].fares.station']);
    expect(paths(box(lane('A', { fares: { psam: { reader: 'SAM A' }, station: 3, laneNumber: 256 } })))).toEqual(['lanes[0].fares.laneNumber']);
    expect(paths(box(lane('A', { fares: { psam: {}, station: 3 } })))).toEqual(['lanes[0].fares.psam.reader']);
    expect(paths(box(lane('A', { fares: { psam: { reader: 'SAM A' }, station: 3, direction: 'entry' } })))).toEqual(['lanes[0].fares.direction']);
    expect(issuesOf(box(lane('A', { fares: { psam: { reader: 'SAM A' }, station: 3, stations: 4 } })))).toEqual([expect.objectContaining({ path: 'lanes[0].fares', message: expect.stringContaining('stations') })]);
    // Each lane its own PSAM: a slot name another contains may pick the other's slot.
    expect(issuesOf(box(lane('A', { fares: { psam: { reader: 'Gate SAM 1' }, station: 3 } }), lane('B', { fares: { psam: { reader: 'gate sam' }, station: 3 } })))).toEqual([
      { path: 'lanes[1].fares.psam.reader', message: expect.stringContaining('each lane has its own PSAM') },
    ]);
    // One fare table per box.
    expect(issuesOf(box(lane('A', { fares: { psam: { reader: 'SAM A' }, station: 3 } }), lane('B', { fares: { psam: { reader: 'SAM B' }, station: 3, tablePath: '/etc/gate/fares.json' } })))).toEqual([
      { path: 'lanes[1].fares.tablePath', message: expect.stringContaining('the box holds one fare table') },
    ]);
    // The box has no `fares` of its own.
    expect(paths({ ...box(lane('A')), fares: { psam: { reader: 'SAM' }, station: 3 } })).toEqual(['fares']);
  });
});
