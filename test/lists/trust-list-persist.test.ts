// The issuer trust list a gate holds survives what the back-office link and a reboot throw at it: a
// document is written to the list directory only once it verifies against the lane's qr.backOfficeKeys and
// is newer than the one held, so a garbage answer never overwrites the stored list, a reboot serves the
// stored (newer) list rather than the provisioned one, and an older genuine list is refused across the
// reboot. A real lane, configured as on a box (http-sync lists, a qr section), against the real back office.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedBarrierLink, SimulatedSource } from '../../drivers/simulated.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { startLane, type Lane } from '../../firmware/composition/start-lane.js';
import type { ListSync } from '../../firmware/lists/list-sync.js';
import type { Decision } from '../../firmware/verify/decision-core.js';
import { signTrustList } from '../../protocol/trust-list.js';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { VirtualBarrier } from '../../simulator/virtual-barrier.js';
import { IssuerApps } from '../../simulator/virtual-phone.js';
import { waitUntil } from '../support/wait.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The link to the back office, forwarding everything but the trust list, which it answers itself when told to. */
async function backOfficeLink(target: string) {
  const state = { url: '', issuerKeys: undefined as Uint8Array | undefined };
  const server = createServer(async (req, res) => {
    if (req.url === '/v1/issuer-keys' && state.issuerKeys) {
      const etag = `"${createHash('sha256').update(state.issuerKeys).digest('hex').slice(0, 32)}"`;
      if (req.headers['if-none-match'] === etag) return void res.writeHead(304, { etag }).end();
      return void res.writeHead(200, { etag, 'content-type': 'application/octet-stream' }).end(state.issuerKeys);
    }
    const r = await fetch(target + req.url, { headers: req.headers['if-none-match'] ? { 'if-none-match': String(req.headers['if-none-match']) } : {} });
    const body = Buffer.from(await r.arrayBuffer());
    const headers: Record<string, string> = {};
    for (const k of ['content-type', 'etag', 'list-freshness']) if (r.headers.get(k)) headers[k] = r.headers.get(k)!;
    res.writeHead(r.status, headers).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

describe('the stored issuer trust list', () => {
  it('is not overwritten by a document that does not verify, outlives a reboot, and refuses an older list after it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trust-persist-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const apps = new IssuerApps('trust-persist');
    /** A genuine document of this seq; alipay's key 1 revoked or not. */
    const doc = (seq: number, alipayRevoked: boolean) => {
      const l = apps.trustList();
      l.seq = seq;
      for (const k of l.keys) if (k.issuer === 'alipay') k.revoked = alipayRevoked;
      return signTrustList(l, apps.backOfficeSigner, apps.backOffice.privateKey);
    };
    const provisioned = join(dir, 'provisioned-trust-list.json');
    writeFileSync(provisioned, doc(1, false));
    const doc42 = doc(42, true);

    const bo = new Backoffice({ db: ':memory:', trustListSigners: apps.backOfficeKeys() });
    const { url } = await bo.listen(0);
    cleanups.push(() => bo.close());
    expect(bo.putIssuerKeys(doc42)).toMatchObject({ ok: true, seq: 42 });
    expect((await fetch(`${url}/v1/qr-links`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ issuer: 'alipay', account: 'ap0001' }) })).status).toBe(201);
    bo.publish();
    const link = await backOfficeLink(url);

    const config = (trustList: string) =>
      parseLaneConfig({
        lane: { id: 'P1', direction: 'entry' },
        lists: { type: 'http-sync', url: link.url, dir: join(dir, 'lists'), publicKeys: [bo.publicKeyPem], pollSeconds: 3600 },
        qr: { trustList, backOfficeKeys: apps.backOfficeKeyConfig() },
      });
    const clock = { now: () => Date.now(), setTimeout, clearTimeout };
    const boot = async (trustList = provisioned) => {
      const entry = new SimulatedSource('sim-entry', 'entry', clock);
      const lane: Lane = await startLane({ config: config(trustList), barrier: new SimulatedBarrierLink(new VirtualBarrier(clock), clock), sources: [entry] });
      cleanups.push(() => lane.stop());
      const decisions: Decision[] = [];
      const alarms: string[] = [];
      lane.on('decision', (e) => decisions.push(e.decision));
      lane.on('alarm', (e) => alarms.push(`${e.alarm.alarm}: ${'detail' in e.alarm ? e.alarm.detail : ''}`));
      const show = async (text: string) => {
        await waitUntil(() => lane.view().state === 'normal.ready', 10_000, () => `lane is ${lane.view().state}`);
        const n = decisions.length;
        entry.showQrText(text);
        await waitUntil(() => decisions.length > n, 5000, () => 'no decision for the code');
        return decisions[n];
      };
      return { lane, sync: lane.lists as ListSync, alarms, show };
    };
    const code = () => apps.app('alipay').mint('ap0001', Date.now(), { keyId: 1, validitySeconds: 60 });
    const stored = join(dir, 'lists', 'issuer-keys.bin');

    // Seq 42 revokes alipay's key 1: synced, stored, in force.
    const a = await boot();
    await a.sync.syncOnce();
    expect(readFileSync(stored).equals(Buffer.from(doc42))).toBe(true);
    expect((await a.show(code())).reason).toBe('qr-revoked-key');

    // Garbage where the trust list should be (a path, or a store, gone wrong).
    // Failed on the old code: the file was written before anyone verified it ("not a trust list" on disk).
    link.issuerKeys = new TextEncoder().encode('not a trust list');
    await a.sync.syncOnce();
    await waitUntil(() => a.alarms.some((x) => x.startsWith('trust-list-rejected')), 5000, () => a.alarms.join('; '));
    expect(a.alarms.find((x) => x.startsWith('trust-list-rejected'))).toMatch(/issuer trust list refused: json/);
    expect(readFileSync(stored).equals(Buffer.from(doc42))).toBe(true);
    expect((await a.show(code())).reason).toBe('qr-revoked-key');
    await a.lane.stop();

    // Reboot with the back office now serving an older, genuine list (seq 5) that does not revoke the key.
    // Failed on the old code: after a reboot the lane served the provisioned list (seq 1) and took seq 5,
    // the key un-revoked; the seq floor had lived in memory only.
    link.issuerKeys = doc(5, false);
    const b = await boot();
    expect(b.sync.trustListSeq).toBe(42);
    expect((await b.show(code())).reason).toBe('qr-revoked-key');
    await b.sync.syncOnce();
    await waitUntil(() => b.sync.counters.issuerKeysRefused === 1, 5000, () => `${b.sync.counters.issuerKeysRefused} refused`);
    expect(b.sync.trustListSeq).toBe(42);
    expect(readFileSync(stored).equals(Buffer.from(doc42))).toBe(true);
    expect((await b.show(code())).reason).toBe('qr-revoked-key');
    await b.lane.stop();

    // A provisioned list newer than the stored one wins (and the stored one is not offered to the lane).
    const newer = join(dir, 'provisioned-50.json');
    writeFileSync(newer, doc(50, false));
    link.issuerKeys = doc(50, false);
    const c = await boot(newer);
    expect(c.sync.trustListSeq).toBe(50);
    expect(await c.show(code())).toMatchObject({ grant: true, reason: 'ok' });
    expect(c.alarms.filter((x) => x.startsWith('trust-list-rejected'))).toEqual([]);
    expect(existsSync(stored)).toBe(true);
  });
});
