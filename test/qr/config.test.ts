import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { qrFromConfig } from '../../firmware/verify/ride-codes.js';
import { pickDriver, sourceDrivers } from '../../firmware/composition/registry.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { silentLogger } from '../../firmware/config/log.js';
import { systemClock } from '../../drivers/seams.js';
import { IssuerApps } from '../../simulator/virtual-phone.js';

const dir = mkdtempSync(join(tmpdir(), 'qr-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('QR config', () => {
  it('loads and verifies the trust list file named in config; used codes are no longer shared over UDP', async () => {
    const apps = new IssuerApps('cfg');
    const file = join(dir, 'trust.json');
    writeFileSync(file, apps.trustListDocument());
    const qr = await qrFromConfig({ trustList: file, backOfficeKeys: apps.backOfficeKeyConfig(), clockSkewSeconds: 5 }, 'L01');
    try {
      const now = Date.now();
      expect(qr.rideCodes.verify(apps.app('alipay').mint('cfg1', now), now).ok).toBe(true);
      expect(qr.rideCodes.policy.clockSkewMs).toBe(5000);
    } finally {
      await qr.stop();
    }
    // The station bus carries them now (the `station` section): the old UDP key is refused by name.
    await expect(qrFromConfig({ trustList: file, backOfficeKeys: apps.backOfficeKeyConfig(), usedCodes: { bind: '127.0.0.1:0', peers: [] } }, 'L01')).rejects.toThrow(/qr is invalid[\s\S]*usedCodes/);
  });

  it('a trust list signed by another back office, or a bad field, fails at start-up naming it', async () => {
    const apps = new IssuerApps('cfg');
    const other = new IssuerApps('other');
    const file = join(dir, 'trust-other.json');
    writeFileSync(file, other.trustListDocument());
    await expect(qrFromConfig({ trustList: file, backOfficeKeys: apps.backOfficeKeyConfig() }, 'L01')).rejects.toThrow(/qr.trustList: .*bad-signature/);
    await expect(qrFromConfig({ trustList: file, backOfficeKeys: { 'bo-1': 'short' } }, 'L01')).rejects.toThrow(/qr\.backOfficeKeys\.bo-1/);
    await expect(qrFromConfig({ trustList: join(dir, 'missing.json'), backOfficeKeys: apps.backOfficeKeyConfig() }, 'L01')).rejects.toThrow(/qr.trustList/);
  });

  it('camera and qr-serial are registered source drivers and validate their sections', async () => {
    const config = parseLaneConfig({ lane: { id: 'L01' } });
    const ctx = { laneId: 'L01', clock: systemClock, log: silentLogger, config };
    const cam = await pickDriver(sourceDrivers, 'credential source', 'camera')({ type: 'camera', side: 'entry', device: '/dev/video7' }, ctx, 0);
    expect(cam.name).toBe('camera:/dev/video7');
    const ser = await pickDriver(sourceDrivers, 'credential source', 'qr-serial')({ type: 'qr-serial', side: 'exit', path: '/dev/ttyUSB3' }, ctx, 1);
    expect(ser.name).toBe('qr-serial:/dev/ttyUSB3');
    await expect(pickDriver(sourceDrivers, 'credential source', 'camera')({ type: 'camera', side: 'entry', width: 7 }, ctx, 0)).rejects.toThrow(/drivers\.sources\[0\]\.width/);
  });
});

describe('a lane built from a config with a qr section', () => {
  it('verifies QR text from a source against the trust list file and refuses the replay', async () => {
    const { startLane } = await import('../../firmware/composition/start-lane.js');
    const { SimulatedSource } = await import('../../drivers/simulated.js');
    const apps = new IssuerApps('lane-cfg');
    const file = join(dir, 'lane-trust.json');
    writeFileSync(file, apps.trustListDocument());
    const config = parseLaneConfig({
      lane: { id: 'Q1', direction: 'entry' },
      timeouts: { passageMs: 200 },
      lists: { type: 'memory', entries: { 'qr:cmb:lane_rider': 'green' } },
      qr: { trustList: file, backOfficeKeys: apps.backOfficeKeyConfig() },
    });
    const source = new SimulatedSource('qr-test', 'entry', systemClock);
    const lane = await startLane({ config, sources: [source] });
    const decisions: { grant: boolean; reason: string }[] = [];
    lane.on('decision', (e) => decisions.push({ grant: e.decision.grant, reason: e.decision.reason }));
    try {
      const { vi } = await import('vitest');
      await vi.waitFor(() => expect(lane.view().mode).toBe('normal'), { timeout: 5000 });
      const text = apps.app('cmb').mint('lane_rider', Date.now());
      source.showQrText(text);
      await vi.waitFor(() => expect(decisions).toHaveLength(1), { timeout: 5000 });
      expect(decisions[0]).toEqual({ grant: true, reason: 'ok' });
      // Nobody walks through: the grant times out and the lane is ready again (the code id stays used).
      await vi.waitFor(() => expect(lane.view().state).toBe('normal.ready'), { timeout: 15_000, interval: 50 });
      source.showQrText(text);
      await vi.waitFor(() => expect(decisions.length).toBeGreaterThanOrEqual(2), { timeout: 15_000 });
      expect(decisions[1]).toEqual({ grant: false, reason: 'qr-replayed' });
    } finally {
      await lane.stop();
    }
  }, 40_000);
});
