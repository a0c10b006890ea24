// A fare gate built from config, as `gate run -c lane.json` builds it: a `fares` section (PSAM slot, station,
// direction) beside a PC/SC card reader and http-sync lists from the real back office, over a private
// pcscd (card in slot 0, virtual PSAM in slot 1). The fare table arrives by list sync into the lane's
// fare-table file; an entry lane writes the entry, an exit lane debits the table fare. A card the lists
// refuse (denylist) is refused with the lists' reason before the card transaction: nothing is written to it
// (balance, ATC, trip record unchanged) and no fare record is journaled; so does a lane that refuses by
// itself (station closed). Start-up errors name the field.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLane, type Lane, type StartLaneOptions } from '../../firmware/composition/start-lane.js';
import type { FareModeSink } from '../../firmware/composition/station-link.js';
import { laneAnswer } from '../../firmware/composition/fare-lane.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import type { MemoryJournal } from '../../firmware/journal/journal.js';
import type { ListSync } from '../../firmware/lists/list-sync.js';
import { isGateError, GateErrorCode } from '../../protocol/errors.js';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { withCheckDigit } from '../../simulator/backoffice/validate.js';
import { virtualCard, type VirtualCard } from '../../simulator/virtual-card.js';
import { VirtualPsam } from '../../simulator/virtual-psam.js';
import { startPcscd, type PrivatePcscd } from '../support/pcscd.js';
import { waitUntil } from '../support/wait.js';
import { TERMINAL_ID } from './support.js';
import { systemClock } from '../../drivers/seams.js';
import { HookedSource } from '../support/hooked-reader.js';
import { tapUntilDecided } from '../support/tap-until-decided.js';

const GATE = 'gate-token-0123456789';
const N = 24;
let pcscd: PrivatePcscd;
let vpsam: VirtualPsam;
let bo: Backoffice;
let url: string;
let dir: string;
const good = withCheckDigit('310410008800000001');
const blocked = withCheckDigit('310410008800000002');
const late = withCheckDigit('310410008800000003');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fare-lane-'));
  bo = new Backoffice({ db: ':memory:', tokens: [{ token: GATE, role: 'gate' }] });
  url = (await bo.listen(0)).url;
  // Stations 1..24 on one line, 3.1 km apart.
  bo.publishFareTable({ stations: Array.from({ length: N }, (_, i) => ({ id: i + 1, name: `S${i + 1}`, line: 'L1' })), distancesM: Array.from({ length: N * N }, (_, k) => Math.abs(Math.floor(k / N) - (k % N)) * 3100) });
  bo.importEntries([[`card:${good}`, 'green'], [`card:${blocked}`, 'blocked'], [`card:${late}`, 'green']]);
  bo.publish();
  pcscd = await startPcscd();
  process.env.PCSCLITE_CSOCK_NAME = pcscd.socket;
  vpsam = new VirtualPsam({ terminalId: TERMINAL_ID });
  await vpsam.insert(pcscd.readers[1].port);
}, 30_000);
afterAll(async () => {
  vpsam?.remove();
  await pcscd?.stop();
  await bo?.close();
  rmSync(dir, { recursive: true, force: true });
});

const fareOf = (a: number, b: number) => bo.currentFareTable()!.fares[(a - 1) * N + (b - 1)];

function laneConfig(id: string, direction: 'entry' | 'exit', station: number, fares: Record<string, unknown> = {}) {
  return {
    lane: { id, direction },
    timeouts: { passageMs: 200 },
    policy: { antiPassbackSeconds: 0 },
    lists: { type: 'http-sync', url, dir: join(dir, id), publicKeys: [bo.publicKeyPem], token: GATE, pollSeconds: 86_400 },
    drivers: { sources: [{ type: 'pcsc', side: direction, reader: pcscd.readers[0].name, retryMs: 100 }] },
    fares: { psam: { reader: pcscd.readers[1].name }, station, ...fares },
  };
}

async function fareLane(id: string, direction: 'entry' | 'exit', station: number, stationLink?: StartLaneOptions['stationLink']) {
  const lane = await startLane({ config: parseLaneConfig(laneConfig(id, direction, station)), stationLink });
  const decisions: { grant: boolean; reason: string }[] = [];
  lane.on('decision', (e) => decisions.push({ grant: e.decision.grant, reason: e.decision.reason }));
  await (lane.lists as ListSync).syncOnce();
  await waitUntil(() => lane.view().mode === 'normal', 10_000, () => `lane ${lane.view().mode}`);
  const tap = (c: VirtualCard) => tapUntilDecided(c, pcscd.readers[0].port, decisions);

  const fareRecords = () => (lane.journal as MemoryJournal).records.map((r) => r.entry).filter((e) => e.type === 'fare');
  return { lane, tap, fareRecords };
}

const card = (serial: string) => virtualCard().tUnion({ serial, expiry: 20301231, purse: { balanceFen: 5000 } }).build();

describe('a fare gate from config over pcscd', () => {
  it('entry then exit debit the synced table fare; a denylisted card is refused before anything is written to it', async () => {
    const rider = card(good);
    const thief = card(blocked);
    const closing = card(late);
    const untouched = { balance: thief.purse!.balanceFen, atc: thief.purse!.atc, record: Uint8Array.from(thief.purse!.record) };

    let l: { lane: Lane; tap: (c: VirtualCard) => Promise<{ grant: boolean; reason: string } | undefined>; fareRecords: () => unknown[] } = await fareLane('F-IN', 'entry', 2);
    try {
      // The table came by list sync and sits in the lane's fare-table file.
      expect(readFileSync(join(dir, 'F-IN', 'fare-table.json'))).toEqual(bo.fareTable());
      expect(await l.tap(rider)).toEqual({ grant: true, reason: 'ok' });
      expect(l.fareRecords()).toEqual([expect.objectContaining({ outcome: 'debited', chargeFen: 0, station: 2, key: `card:${good}` })]);
      expect(await l.tap(thief)).toEqual({ grant: false, reason: 'blocked' });
      expect(thief.purse!.debitCount).toBe(0);
      expect({ balance: thief.purse!.balanceFen, atc: thief.purse!.atc, record: thief.purse!.record }).toEqual(untouched);
      expect(l.fareRecords()).toHaveLength(1);
      // The lane's own refusal comes first too: a closed station writes nothing to a registered card.
      const before = Uint8Array.from(closing.purse!.record);
      l.lane.send({ type: 'SET_MODE', mode: 'closed' });
      await waitUntil(() => l.lane.view().mode === 'closed', 5000, () => l.lane.view().mode);
      expect(await l.tap(closing)).toEqual({ grant: false, reason: 'station-closed' });
      expect({ debits: closing.purse!.debitCount, record: closing.purse!.record }).toEqual({ debits: 0, record: before });
      l.lane.send({ type: 'SET_MODE', mode: 'normal' });
      await waitUntil(() => l.lane.view().mode === 'normal', 5000, () => l.lane.view().mode);
      expect(await l.tap(closing)).toEqual({ grant: true, reason: 'ok' });
      expect(closing.purse!.record).not.toEqual(before);
      expect(l.fareRecords()).toHaveLength(2);
    } finally {
      await l.lane.stop();
    }

    // The station link (its signed `fare-mode` command is tested over mosquitto in test/station/lanes.test.ts)
    // is handed the lane's fare modes: what it sets, the exit's fare gate applies.
    let fareModes: FareModeSink | undefined;
    const link = { usedCodes: undefined, connectFareModes: (s: FareModeSink) => (fareModes = s), attach: () => {} };
    l = await fareLane('F-OUT', 'exit', 10, link as unknown as StartLaneOptions['stationLink']);
    try {
      expect(await l.tap(rider)).toEqual({ grant: true, reason: 'ok' });
      expect(rider.purse!.balanceFen).toBe(5000 - fareOf(2, 10));
      expect(fareModes?.current()).toEqual([]);
      fareModes!.set(['train-failure']);
      expect(fareModes!.current()).toEqual(['train-failure']);
      expect((await l.tap(closing))?.grant).toBe(true);
      expect(closing.purse!.balanceFen).toBe(5000);
      expect(l.fareRecords().at(-1)).toEqual(expect.objectContaining({ outcome: 'debited', chargeFen: 0, station: 10 }));
      fareModes!.set([]);
      expect(fareOf(2, 10)).toBeGreaterThan(0);
      expect(l.fareRecords()[0]).toEqual(expect.objectContaining({ outcome: 'debited', chargeFen: fareOf(2, 10), station: 10 }));
      expect(await l.tap(thief)).toEqual({ grant: false, reason: 'blocked' });
      expect({ balance: thief.purse!.balanceFen, atc: thief.purse!.atc, record: thief.purse!.record }).toEqual(untouched);
    } finally {
      await l.lane.stop();
    }
  }, 90_000);

  it('the PSAM taken out while the lane runs: out of service naming it (nothing written to a card), back in service once it is put back', async () => {
    // Failed before: the lane stayed in service and refused tap after tap as fare-unavailable ("use another lane").
    const rider = card(good);
    const l = await fareLane('F-SAM', 'entry', 4);
    const alarms: string[] = [];
    l.lane.on('alarm', (e) => alarms.push(`${e.alarm.alarm}: ${'detail' in e.alarm ? e.alarm.detail : ''}`));
    try {
      const slot = `source:psam:${pcscd.readers[1].name}`;
      expect(l.lane.view().faults[slot]).toBeUndefined();
      vpsam.remove();
      await waitUntil(() => l.lane.view().mode === 'outOfService', 10_000, () => l.lane.view().mode);
      expect(l.lane.view().faults[slot]).toMatch(/^PSAM taken out of ".*": no fare can be charged$/);
      expect(alarms).toContainEqual(expect.stringMatching(/^reader-fault: PSAM taken out of/));
      const before = { balance: rider.purse!.balanceFen, atc: rider.purse!.atc, record: Uint8Array.from(rider.purse!.record) };
      expect(await l.tap(rider)).toEqual({ grant: false, reason: 'out-of-service' });
      expect({ balance: rider.purse!.balanceFen, atc: rider.purse!.atc, record: rider.purse!.record }).toEqual(before);
      await vpsam.insert(pcscd.readers[1].port);
      await waitUntil(() => l.lane.view().mode === 'normal', 10_000, () => `${l.lane.view().mode} ${JSON.stringify(l.lane.view().faults)}`);
      expect(l.lane.view().faults[slot]).toBeUndefined();
      expect(await l.tap(rider)).toEqual({ grant: true, reason: 'ok' });
      expect(l.fareRecords().at(-1)).toEqual(expect.objectContaining({ outcome: 'debited', station: 4 }));
    } finally {
      await l.lane.stop();
      // Back in its slot for the next test, whatever happened here.
      if (l.lane.view().faults[`source:psam:${pcscd.readers[1].name}`]) await vpsam.insert(pcscd.readers[1].port).catch(() => {});
    }
  }, 60_000);

  it('start-up errors name the fares field and leave nothing running', async () => {
    const fails = async (cfg: unknown) => {
      const e = await startLane({ config: parseLaneConfig(cfg) }).then(
        async (lane) => {
          await lane.stop();
          return undefined;
        },
        (err: unknown) => err,
      );
      if (!(e instanceof Error)) throw new Error('start-up did not fail');
      return e;
    };
    const base = laneConfig('F-BAD', 'exit', 3);
    const wrongSide = await fails({ ...base, drivers: { sources: [{ type: 'pcsc', side: 'entry', reader: pcscd.readers[0].name }] } });
    expect(isGateError(wrongSide, GateErrorCode.Config) && wrongSide.message).toMatch(/^drivers\.sources\[0\]\.side: "entry" on a fare gate for exit/);
    const clash = await fails({ ...base, fares: { ...base.fares, direction: 'entry' } });
    expect(clash.message).toMatch(/^fares\.direction: "entry" on an exit lane/);
    const noReader = await fails({ ...base, drivers: { sources: [] } });
    expect(noReader.message).toMatch(/^fares: .*add one to drivers\.sources/);
    const noTable = await fails({ ...base, lists: { type: 'memory' } });
    expect(noTable.message).toMatch(/lists\.publicKeys/);
    const noPsam = await fails({ ...base, fares: { ...base.fares, psam: { reader: 'No Such SAM', readyWaitMs: 300 } } });
    expect(noPsam.message).toMatch(/^fares\.psam\.reader: no PSAM answered in a reader matching "No Such SAM"/);
    expect(() => parseLaneConfig({ ...base, fares: { ...base.fares, station: 0 } })).toThrow(/fares\.station/);

    // Lists from a provisioned snapshot file: the fare table must be provisioned too, and verify.
    const snapshot = join(dir, 'lists.snap');
    writeFileSync(snapshot, Buffer.from(await (await fetch(`${url}/v1/lists/snapshot`, { headers: { authorization: `Bearer ${GATE}` } })).arrayBuffer()));
    const fileLists = { type: 'file', path: snapshot, publicKeys: [bo.publicKeyPem] };
    const noPath = await fails({ ...base, lists: fileLists });
    expect(noPath.message).toMatch(/^fares\.tablePath: give the signed fare table file/);
    const tablePath = join(dir, 'provisioned-fare-table.json');
    const missing = await fails({ ...base, lists: fileLists, fares: { ...base.fares, tablePath } });
    expect(missing.message).toMatch(/fares\.tablePath/);
    expect(missing.message).toContain(tablePath);
    const env = JSON.parse(bo.fareTable()!.toString('utf8')) as { signature: string };
    writeFileSync(tablePath, JSON.stringify({ ...env, signature: Buffer.alloc(64).toString('base64') }));
    const tampered = await fails({ ...base, lists: fileLists, fares: { ...base.fares, tablePath } });
    expect(tampered.message).toBe(`fares.tablePath: ${tablePath} is refused (back office signature does not verify); provision the back office's signed fare table there (GET /v1/fare-table), or sync the lists with http-sync`);
    writeFileSync(tablePath, bo.fareTable()!);
    const provisioned = await startLane({ config: parseLaneConfig({ ...base, lists: fileLists, fares: { ...base.fares, tablePath } }) });
    await provisioned.stop();
    // The last failure closed what it opened: a lane from the same config starts and takes taps.
    const again = await fareLane('F-BAD', 'exit', 3);
    await again.lane.stop();
  }, 60_000);

  it('a bidirectional lane runs each reader\'s fare transaction by its side, one PSAM between them', async () => {
    // Two card readers need two card slots: in-process stand-ins run the hook as the PC/SC driver does.
    const entry = new HookedSource('in', 'entry', systemClock);
    const exit = new HookedSource('out', 'exit', systemClock);
    const cfg = laneConfig('F-BI', 'entry', 7);
    const lane = await startLane({ config: parseLaneConfig({ ...cfg, lane: { id: 'F-BI', direction: 'bidirectional' } }), sources: [entry, exit] });
    try {
      await (lane.lists as ListSync).syncOnce();
      const rider = card(late);
      const thief = card(blocked);
      expect(await entry.tapCard(rider)).toMatchObject({ grant: true, reason: 'ok' });
      // While that passage is under way a tap on the other side is refused as busy, and nothing is written.
      const debits = rider.purse!.debitCount;
      expect(await exit.tapCard(rider)).toMatchObject({ grant: false, reason: 'lane-busy' });
      expect(rider.purse!.debitCount).toBe(debits);
      await waitUntil(() => lane.view().state === 'normal.ready', 5000, () => lane.view().state);
      const x = await exit.tapCard(rider);
      expect(x).toMatchObject({ grant: true, reason: 'ok' });
      const fares = (lane.journal as MemoryJournal).records.map((r) => r.entry).filter((e) => e.type === 'fare');
      expect(fares.map((e) => [e.direction, e.outcome, e.station])).toEqual([['entry', 'debited', 7], ['exit', 'debited', 7]]);
      expect(rider.purse!.debitCount).toBe(2);
      expect(rider.purse!.balanceFen).toBe(5000 - (fares[1] as { chargeFen: number }).chargeFen);
      const before = Uint8Array.from(thief.purse!.record);
      await waitUntil(() => lane.view().state === 'normal.ready', 5000, () => lane.view().state);
      expect(await exit.tapCard(thief)).toMatchObject({ grant: false, reason: 'blocked' });
      expect({ debits: thief.purse!.debitCount, record: thief.purse!.record }).toEqual({ debits: 0, record: before });
    } finally {
      await lane.stop();
    }
  }, 30_000);
});

describe('what the lane would do with a tap now, asked before anything is written to the card', () => {
  const lane = (mode: string, state: string, listRefuse = false) => ({ view: () => ({ mode, state }), actor: { getSnapshot: () => ({ context: { listRefuse } }) } }) as unknown as Lane;
  it('a passage under way refuses as busy; the lane\'s own refusals come first; free passage skips the lists', () => {
    expect(laneAnswer(lane('normal', 'normal.ready'))).toBeUndefined();
    expect(laneAnswer(lane('normal', 'normal.verifying'))).toEqual({ refuse: 'lane-busy' });
    expect(laneAnswer(lane('normal', 'normal.granted'))).toEqual({ refuse: 'lane-busy' });
    expect(laneAnswer(lane('normal', 'normal.ready', true))).toEqual({ refuse: 'list-too-old' });
    expect(laneAnswer(lane('closed', 'closed'))).toEqual({ refuse: 'station-closed' });
    expect(laneAnswer(lane('outOfService', 'outOfService'))).toEqual({ refuse: 'out-of-service' });
    expect(laneAnswer(lane('freePassage', 'freePassage'))).toEqual({ free: true });
    expect(laneAnswer(undefined)).toBeUndefined();
  });
});
