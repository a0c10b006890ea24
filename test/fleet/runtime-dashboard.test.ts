// The runtime serves the station dashboard on its health port: page, live state, and a confirmed mode
// switch by a logged-in supervisor that reaches the lane.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SimulatedSource } from '../../drivers/simulated.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { startLane } from '../../firmware/composition/start-lane.js';
import { silentLogger } from '../../firmware/config/log.js';
import { startLaneService } from '../../firmware/operations/service.js';
import { SystemdNotifier } from '../../firmware/platform/systemd.js';
import { formatSupervisors, hashPassword } from '../../firmware/dashboard/supervisors.js';

describe('runtime dashboard', () => {
  it('gate run serves /dashboard/ beside /metrics, and a supervisor\'s confirmed mode switch reaches the lane', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runtime-dashboard-'));
    const supervisors = join(dir, 'supervisors.json');
    writeFileSync(supervisors, formatSupervisors({ version: 1, supervisors: { 'wang.li': { hash: await hashPassword('wang.li password', { N: 1024, r: 8, p: 1 }) } } }));
    const config = parseLaneConfig({ lane: { id: 'R1', station: 'BJ-T' }, health: { port: 0 }, dashboard: { control: { supervisors } } });
    const entry = new SimulatedSource('sim-entry', 'entry', { now: Date.now, setTimeout, clearTimeout });
    const lane = await startLane({ config, sources: [entry] });
    const service = await startLaneService(lane, { log: silentLogger, notifier: new SystemdNotifier({ env: {} }) });
    try {
      const base = service.health!.url;
      const page = await fetch(`${base}/dashboard/`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('Station dashboard');
      const state = (await (await fetch(`${base}/dashboard/api/state`)).json()) as { lanes: { laneId: string }[] };
      expect(state.lanes.map((l) => l.laneId)).toEqual(['R1']);
      const login = await fetch(`${base}/dashboard/api/login`, { method: 'POST', headers: { 'content-type': 'application/json', origin: base }, body: JSON.stringify({ name: 'wang.li', password: 'wang.li password' }) });
      expect(login.status).toBe(200);
      const cookie = login.headers.get('set-cookie')!.split(';')[0];
      const { csrf } = (await login.json()) as { csrf: string };
      const post = (body: unknown) =>
        fetch(`${base}/dashboard/api/lanes/R1/mode`, { method: 'POST', headers: { 'content-type': 'application/json', origin: base, cookie, 'x-csrf-token': csrf }, body: JSON.stringify(body) });
      expect((await post({ mode: 'maintenance' })).status).toBe(400); // no confirmation
      expect(lane.view().mode).not.toBe('maintenance');
      expect((await post({ mode: 'maintenance', confirmed: true })).status).toBe(200);
      expect(lane.view().mode).toBe('maintenance');
      expect((await fetch(`${base}/metrics`)).status).toBe(200);
    } finally {
      await service.stop();
      await lane.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
