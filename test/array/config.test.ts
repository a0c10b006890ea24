// The gate array's config: one file, `lanes[]` with each lane's own part, the rest the box's; errors name
// the lane's field as it is written in the file (`lanes[2].drivers.barrier.path`); a one-lane config is
// read as before. At start-up every lane's driver sections are checked before the list is loaded; a lane
// whose barrier cannot be built is out of service alone; a lane whose journal cannot open stops the start,
// naming the lane.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GateErrorCode, isGateError } from '../../protocol/errors.js';
import { laneConfigOf, parseArrayConfig, parseGateConfig } from '../../firmware/config/array-config.js';
import { ConfigError, parseLaneConfig } from '../../firmware/config/config.js';
import { arrayLaneConfig, startGateArray, type GateArray } from '../../firmware/composition/gate-array.js';
import { barrierDrivers } from '../../firmware/composition/registry.js';
import { waitUntil } from '../support/wait.js';

const lane = (id: string, barrier: Record<string, unknown> = { type: 'simulated' }, extra: Record<string, unknown> = {}) => ({ id, direction: 'entry', drivers: { barrier, sources: [{ type: 'simulated', side: 'entry' }] }, ...extra });

function issuesOf(f: () => unknown): { path: string; message: string }[] {
  try {
    f();
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
  throw new Error('no ConfigError');
}

async function startError(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('started');
}

const running: GateArray[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const a of running.splice(0)) await a.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  delete barrierDrivers.broken;
});

describe('gate array config', () => {
  it('a one-lane config is read exactly as before', () => {
    const raw = { lane: { id: 'L01', direction: 'exit' }, policy: { antiPassbackSeconds: 60 } };
    expect(parseGateConfig(raw)).toEqual({ kind: 'lane', config: parseLaneConfig(raw) });
  });

  it("each lane's config: its own id, direction, drivers and timeouts it changes; the box's lists, policy and the rest", () => {
    const a = parseArrayConfig({
      lanes: [lane('L1'), lane('L2', { type: 'simulated' }, { direction: 'exit', timeouts: { passageMs: 15000 } })],
      timeouts: { passageMs: 6000, closingMs: 2000 },
      policy: { antiPassbackSeconds: 60 },
      journal: { type: 'file', dir: '/var/lib/gate/journal' },
      qr: { anything: 'kept for the qr section' },
    });
    const l2 = laneConfigOf(a, 1);
    expect(l2.lane).toEqual({ id: 'L2', station: 'SIM', direction: 'exit', flaps: 'normally-closed' });
    expect(l2.timeouts).toMatchObject({ passageMs: 15000, closingMs: 2000 });
    expect(laneConfigOf(a, 0).timeouts).toMatchObject({ passageMs: 6000, closingMs: 2000 });
    expect(l2.policy.antiPassbackSeconds).toBe(60);
    expect((l2 as Record<string, unknown>).qr).toEqual({ anything: 'kept for the qr section' });
    expect(l2).not.toHaveProperty('lanes');
    // One journal directory for the box, a journal per lane in it.
    expect(arrayLaneConfig(a, 1).journal).toEqual({ type: 'file', dir: join('/var/lib/gate/journal', 'L2') });
  });

  it('errors name the field as written in the file: lanes[i]…', () => {
    expect(issuesOf(() => parseArrayConfig({ lanes: [lane('L1'), lane('L2'), lane('L1')] }))).toEqual([{ path: 'lanes[2].id', message: expect.stringContaining('already lanes[0]') }]);
    const port = (p: string) => ({ type: 'serial', path: p });
    expect(issuesOf(() => parseArrayConfig({ lanes: [lane('L1', port('/dev/ttyUSB0')), lane('L2', port('/dev/ttyUSB0'))] }))).toEqual([
      { path: 'lanes[1].drivers.barrier.path', message: expect.stringContaining("already lanes[0]'s barrier port") },
    ]);
    expect(issuesOf(() => parseArrayConfig({ lanes: [{ id: 'L1', drivers: { sources: [] } }] })).map((i) => i.path)).toEqual(['lanes[0].drivers.barrier']);
    expect(issuesOf(() => parseArrayConfig({ lanes: [lane('L1'), { ...lane('L 2'), direction: 'sideways' }] })).map((i) => i.path)).toEqual(['lanes[1].id', 'lanes[1].direction']);
    expect(issuesOf(() => parseGateConfig({ lane: { id: 'L1' }, lanes: [lane('L1')] })).map((i) => i.path)).toEqual(['lane']);
    expect(issuesOf(() => parseGateConfig({ lanes: [lane('L1')], drivers: {} })).map((i) => i.path)).toEqual(['drivers']);
    expect(issuesOf(() => parseGateConfig({ lanes: [] }))).toEqual([{ path: 'lanes', message: 'at least one lane' }]);
    expect(issuesOf(() => parseGateConfig({ lanes: Array.from({ length: 33 }, (_, i) => lane(`L${i}`)) }))).toEqual([{ path: 'lanes', message: 'at most 32 lanes on one box' }]);
    expect(() => parseArrayConfig({ lanes: [lane('L1')], health: { port: 70000 } })).toThrow(/health\.port/);
    const bus = { broker: 'mqtts://10.0.0.2:8883', passwordFile: '/etc/gate/broker-password' };
    expect(issuesOf(() => parseArrayConfig({ lanes: [lane('L1'), lane('L2')], station: bus }))).toEqual([{ path: 'station.passwordFile', message: expect.stringContaining('write {lane} in the path') }]);
  });

  it("the station bus: each lane its own broker identity, {lane} replaced by the lane's id", () => {
    const a = parseArrayConfig({ lanes: [lane('L1'), lane('L2')], station: { broker: 'mqtts://10.0.0.2:8883', passwordFile: '/etc/gate/broker/{lane}.password', cert: '/etc/gate/broker/{lane}.crt' } });
    expect((laneConfigOf(a, 1) as Record<string, unknown>).station).toEqual({ broker: 'mqtts://10.0.0.2:8883', passwordFile: '/etc/gate/broker/L2.password', cert: '/etc/gate/broker/L2.crt' });
    expect(((laneConfigOf(a, 0) as Record<string, unknown>).station as { passwordFile: string }).passwordFile).toBe('/etc/gate/broker/L1.password');
  });
});

describe('gate array start-up', () => {
  it("every lane's driver sections are checked before the list is loaded, naming lanes[i]", async () => {
    // The list file does not exist: had it been opened first, the error would be about it.
    const lists = { type: 'file', path: '/nonexistent/lists.snap' };
    const bad = await startError(startGateArray({ config: parseArrayConfig({ lanes: [lane('L1'), lane('L2'), lane('L3', { type: 'serial', path: '/dev/ttyUSB9', baudRate: 'fast' })], lists }) }));
    expect(isGateError(bad, GateErrorCode.Config)).toBe(true);
    expect(bad.message).toContain('lanes[2].drivers.barrier.baudRate');
    const unknown = await startError(startGateArray({ config: parseArrayConfig({ lanes: [lane('L1'), lane('L2', { type: 'rs485-magic' })], lists }) }));
    expect(unknown.message).toMatch(/^lanes\[1\]\.drivers\.barrier\.type: unknown barrier driver "rs485-magic"; known: simulated, serial/);
    const source = await startError(startGateArray({ config: parseArrayConfig({ lanes: [lane('L1'), { ...lane('L2'), drivers: { barrier: { type: 'simulated' }, sources: [{ type: 'simulated' }, { type: 'qr-serial', side: 'exit' }] } }], lists }) }));
    expect(source.message).toContain('lanes[1].drivers.sources[1]');
  });

  it('a barrier link that cannot be built leaves its lane out of service alone', async () => {
    // A driver whose factory fails for a reason other than its config (a native addon that will not load).
    barrierDrivers.broken = async () => {
      throw new Error('the serial binding could not be loaded');
    };
    const a = await startGateArray({ config: parseArrayConfig({ lanes: [lane('L1'), lane('L2', { type: 'broken' }), lane('L3')] }) });
    running.push(a);
    await waitUntil(() => a.lane('L1')!.view().state === 'normal.ready' && a.lane('L3')!.view().state === 'normal.ready', 5000, () => 'L1 and L3 in service');
    expect(a.lane('L2')!.view()).toMatchObject({ state: 'outOfService', faults: { 'barrier-link': expect.stringContaining('lanes[1].drivers.barrier (broken) could not be built: the serial binding could not be loaded') } });
  });

  it("a lane whose journal cannot open stops the whole start, naming the lane", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gate-array-config-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'journal'));
    writeFileSync(join(dir, 'journal', 'L2'), 'a file where L2 journal directory should be');
    const e = await startError(startGateArray({ config: parseArrayConfig({ lanes: [lane('L1'), lane('L2'), lane('L3')], journal: { type: 'file', dir: join(dir, 'journal') } }) }));
    expect(isGateError(e, GateErrorCode.JournalUnavailable)).toBe(true);
    expect(e.message).toMatch(/^lanes\[1\] \(lane L2\): /);
    expect(e.message).toContain('journal.dir');
  });
});
