// The issuer trust list rides on list sync: a newer signed document published by the back office reaches
// the lane's QR verifier (a code from a newly trusted issuer key is refused before, accepted after), and a
// document signed by the wrong key is refused with an alarm before it is written or handed on, while the
// old list keeps working.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedBarrierLink, SimulatedSource } from '../../drivers/simulated.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import type { Decision } from '../../firmware/verify/decision-core.js';
import { startLane } from '../../firmware/composition/start-lane.js';
import type { ListSync } from '../../firmware/lists/list-sync.js';
import { VirtualBarrier } from '../../simulator/virtual-barrier.js';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { IssuerApps } from '../../simulator/virtual-phone.js';
import { waitUntil } from '../support/wait.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('issuer trust list through list sync', () => {
  it('reaches the QR verifier; a wrongly signed one raises an alarm and changes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trust-sync-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const apps = new IssuerApps('trust-sync');
    const first = join(dir, 'trust.json');
    writeFileSync(first, apps.trustListDocument({ omitIssuers: ['hohhot-metro'] }));
    const bo = new Backoffice({ db: ':memory:', trustListSigners: apps.backOfficeKeys() });
    const { url } = await bo.listen(0);
    cleanups.push(() => bo.close());
    expect((await fetch(`${url}/v1/qr-links`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ issuer: 'hohhot-metro', account: 'hh0001' }) })).status).toBeLessThan(300);
    bo.publish();

    const clock = { now: () => Date.now(), setTimeout, clearTimeout };
    const entry = new SimulatedSource('sim-entry', 'entry', clock);
    const config = parseLaneConfig({
      lane: { id: 'T1', direction: 'entry' },
      lists: { type: 'http-sync', url, dir: join(dir, 'lists'), publicKeys: [bo.publicKeyPem], pollSeconds: 3600 },
      qr: { trustList: first, backOfficeKeys: apps.backOfficeKeyConfig() },
    });
    const lane = await startLane({ config, barrier: new SimulatedBarrierLink(new VirtualBarrier(clock), clock), sources: [entry] });
    cleanups.push(() => lane.stop());
    const sync = lane.lists as ListSync;
    await sync.syncOnce();
    const decisions: Decision[] = [];
    const alarms: string[] = [];
    let documents = 0;
    lane.on('decision', (e) => decisions.push(e.decision));
    lane.on('alarm', (e) => alarms.push(e.alarm.alarm));
    // Registered after the lane's own listener: when this one has run, the lane has taken the document (or refused it).
    sync.on('issuer-keys', () => documents++);
    const show = async (text: string) => {
      // The lane is ready for the next rider (a refusal stays on the display a while).
      await waitUntil(() => lane.view().state === 'normal.ready', 10_000, () => `lane is ${lane.view().state}`);
      const n = decisions.length;
      entry.showQrText(text);
      await waitUntil(() => decisions.length > n, 5000, () => 'no decision for the code');
      return decisions[n];
    };
    const code = () => apps.app('hohhot-metro').mint('hh0001', Date.now(), { validitySeconds: 60 });

    expect((await show(code())).reason).toBe('qr-unknown-issuer');

    // A document signed by someone else: the back office refuses it; served anyway (a back office
    // compromised or misconfigured), the gate refuses it too, with an alarm, and keeps its old list.
    const impostor = new IssuerApps('impostor');
    const octet = { 'content-type': 'application/octet-stream' };
    expect((await fetch(`${url}/v1/issuer-keys`, { method: 'PUT', headers: octet, body: Buffer.from(impostor.trustListDocument()) })).status).toBe(400);
    bo.setIssuerKeys(impostor.trustListDocument());
    await sync.syncOnce();
    await waitUntil(() => alarms.includes('trust-list-rejected'), 5000, () => `alarms: ${alarms.join(', ')}`);
    expect(documents).toBe(0);
    expect(existsSync(sync.issuerKeysPath)).toBe(false);
    expect((await show(code())).reason).toBe('qr-unknown-issuer');

    // The back office's real, newer list: hohhot-metro's key is trusted from now on.
    expect((await fetch(`${url}/v1/issuer-keys`, { method: 'PUT', headers: octet, body: Buffer.from(apps.trustListDocument()) })).status).toBe(200);
    await sync.syncOnce();
    await waitUntil(() => documents === 1, 5000, () => `${documents} trust-list documents reached the lane`);
    expect(alarms.filter((a) => a === 'trust-list-rejected')).toHaveLength(1);
    expect(await show(code())).toMatchObject({ grant: true, reason: 'ok' });
  });
});
