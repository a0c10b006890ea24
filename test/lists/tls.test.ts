// The back-office link over real TLS on loopback, with certificates openssl makes for this run: list sync
// (deltas, the snapshot on the merge worker, the trust list) and journal upload trust the configured CA
// or pinned key and nothing else; a wrong CA, a wrong pin or a wrong host name is refused before a byte of
// the request (the bearer token) is sent, with a list-sync-failing alarm naming the TLS error; a token over
// plain http:// to another host is refused when the config is read; `gate backoffice --tls-cert/--tls-key`.
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { journalDrivers, listDrivers } from '../../firmware/composition/registry.js';
import { silentLogger } from '../../firmware/config/log.js';
import { FileJournal } from '../../firmware/journal/file-journal.js';
import { ListMerger } from '../../firmware/lists/merger.js';
import { ListSync } from '../../firmware/lists/list-sync.js';
import { loadTlsTrust, parsePin, type TlsTrust } from '../../firmware/platform/https-client.js';
import { systemClock } from '../../drivers/seams.js';
import { trustedListKey } from '../../protocol/lists/index.js';
import { Backoffice, type AccessToken } from '../../simulator/backoffice/server.js';
import { withCheckDigit } from '../../simulator/backoffice/validate.js';
import { makePki, type TestPki } from '../support/certs.js';
import { waitUntil } from '../support/wait.js';

const WORKER = new URL('../../dist/firmware/lists/merge-worker.js', import.meta.url);
if (!existsSync(fileURLToPath(WORKER))) throw new Error('dist/firmware/lists/merge-worker.js is missing: run `npm run build` first (npm test does)');

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'tls-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
};

const TOKENS: AccessToken[] = [
  { token: 'gate-token-0123456789', role: 'gate' },
  { token: 'admin-token-0123456789', role: 'admin' },
];
const GATE = TOKENS[0].token;
const card = (i: number) => withCheckDigit(`310420${String(i).padStart(12, '0')}`);

let pki: TestPki;
/** A second PKI whose server certificate names another host (bo.example.net), not 127.0.0.1. */
let elsewhere: TestPki;
beforeAll(() => {
  pki = makePki();
  elsewhere = makePki({ dns: ['bo.example.net'], ip: [] });
});
afterAll(() => {
  pki?.remove();
  elsewhere?.remove();
});

async function tlsBackoffice(cert = pki.cert, key = pki.key) {
  const bo = new Backoffice({ db: ':memory:', tokens: TOKENS, tls: { cert, key } });
  const { url } = await bo.listen(0);
  cleanups.push(() => bo.close());
  bo.importEntries([[`card:${card(1)}`, 'green']]);
  bo.publish();
  return { bo, url };
}

async function syncOver(url: string, bo: Backoffice, tls: TlsTrust | undefined, merger?: ListMerger) {
  const sync = await ListSync.open({ url, dir: tmp(), trustedKeys: [trustedListKey(bo.publicKeyPem)], token: GATE, tls, merger });
  cleanups.push(() => sync.stop());
  const alarms: string[] = [];
  sync.onAlarm((a) => alarms.push(`${a.alarm}: ${a.detail}`));
  return { sync, alarms };
}

describe('list sync and journal upload over TLS', () => {
  it('with the right CA: snapshot (on the merge worker), deltas and journal upload all work', async () => {
    const { bo, url } = await tlsBackoffice();
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:/);
    const merger = new ListMerger(WORKER);
    cleanups.push(() => merger.close());
    const trust = loadTlsTrust({ caFile: pki.caFile });
    const { sync, alarms } = await syncOver(url, bo, trust, merger);
    expect(await sync.syncOnce()).toMatchObject({ kind: 'applied', via: 'snapshot' });
    expect(merger.counters).toMatchObject({ fileJobsInThread: 0, workerFailures: 0 });
    expect(sync.current().allowlist.lookup(`card:${card(1)}`)).toBe('green');
    bo.importEntries([[`card:${card(2)}`, 'red']]);
    bo.publish();
    expect(await sync.syncOnce()).toMatchObject({ kind: 'applied', via: 'deltas' });
    expect(await sync.syncOnce()).toMatchObject({ kind: 'up-to-date' });
    expect(sync.current().allowlist.lookup(`card:${card(2)}`)).toBe('red');
    expect(alarms).toEqual([]);

    const j = await FileJournal.open({ dir: tmp(), laneId: 'T1', uploadUrl: url, uploadToken: GATE, uploadTls: trust, uploadIntervalMs: 1_000_000 });
    cleanups.push(() => j.close());
    await j.append({ type: 'decision', laneId: 'T1', atMs: 1, direction: 'entry', kind: 'card', ref: 'card:…0001#ab', grant: true, reason: 'ok', source: 'test' });
    expect(await j.uploadNow()).toBe(true);
    expect(bo.db.prepare("SELECT COUNT(*) AS n FROM transactions WHERE lane_id = 'T1'").get()).toEqual({ n: 1 });
  });

  it('with a pin (public key or whole certificate), even of a self-signed back office and with no CA', async () => {
    const { bo, url } = await tlsBackoffice(pki.cert, pki.key);
    const { sync } = await syncOver(url, bo, loadTlsTrust({ pinSha256: [pki.spkiPin] }));
    expect(await sync.syncOnce()).toMatchObject({ kind: 'applied' });
    const self = await tlsBackoffice(readPem(pki.selfCertFile), readPem(pki.selfKeyFile));
    const der = spawnSync('openssl', ['x509', '-in', pki.selfCertFile, '-noout', '-fingerprint', '-sha256'], { encoding: 'utf8' }).stdout.trim().split('=')[1];
    for (const pin of [pki.selfSpkiPin, der]) {
      const { sync: s } = await syncOver(self.url, self.bo, loadTlsTrust({ pinSha256: [pin] }));
      expect(await s.syncOnce(), pin).toMatchObject({ kind: 'applied' });
    }
    // The same self-signed back office, checked against a CA instead: refused.
    const { sync: s } = await syncOver(self.url, self.bo, loadTlsTrust({ caFile: pki.caFile }));
    expect(await s.syncOnce()).toMatchObject({ kind: 'failed', detail: expect.stringMatching(/DEPTH_ZERO_SELF_SIGNED_CERT/) });
  });

  it('a wrong CA, a wrong pin or a wrong host name: refused before the request is sent, with a list-sync-failing alarm naming the TLS error', async () => {
    const { bo, url } = await tlsBackoffice();
    const far = await tlsBackoffice(elsewhere.cert, elsewhere.key);
    const cases: [string, string, Backoffice, TlsTrust | undefined, RegExp][] = [
      ['another CA', url, bo, loadTlsTrust({ caFile: pki.otherCaFile }), /TLS certificate refused \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\): 127\.0\.0\.1's certificate does not chain to the configured CA \(.*other-ca\.pem\)/],
      ['the system store', url, bo, undefined, /TLS certificate refused \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\).*system's CA store/],
      ['a wrong pin', url, bo, loadTlsTrust({ pinSha256: [pki.selfSpkiPin] }), /TLS certificate refused \(PIN_MISMATCH\): 127\.0\.0\.1's certificate \(public key SHA-256 .*\) matches no pinned key/],
      ['a wrong host name', far.url, far.bo, loadTlsTrust({ caFile: elsewhere.caFile }), /TLS certificate refused \(ERR_TLS_CERT_ALTNAME_INVALID\): .*IP: 127\.0\.0\.1 is not in the cert's list/],
    ];
    for (const [name, to, office, trust, why] of cases) {
      const before = office.counters.requests;
      const { sync, alarms } = await syncOver(to, office, trust);
      const r = await sync.syncOnce();
      expect(r, name).toMatchObject({ kind: 'failed' });
      expect((r as { detail: string }).detail, name).toMatch(why);
      // At once, not after the usual three failed rounds; and not again on the next round.
      expect(alarms, name).toHaveLength(1);
      expect(alarms[0], name).toMatch(/^list-sync-failing: 1 sync rounds failed: GET \/v1\/lists\/deltas\?since=0&max=100&nonce=[0-9a-f]{32}&freshness=2: TLS certificate refused/);
      expect(alarms[0], name).toMatch(why);
      await sync.syncOnce();
      expect(alarms, name).toHaveLength(1);
      expect(sync.status().counters.tlsFailures, name).toBe(2);
      // Nothing reached the back office: the token never left the gate.
      expect(office.counters.requests, name).toBe(before);
      expect(sync.current().version, name).toBe(0);
    }
    // The journal too: nothing uploaded, the records kept.
    const j = await FileJournal.open({ dir: tmp(), laneId: 'T2', uploadUrl: url, uploadToken: GATE, uploadTls: loadTlsTrust({ caFile: pki.otherCaFile }), uploadIntervalMs: 1_000_000 });
    cleanups.push(() => j.close());
    await j.append({ type: 'decision', laneId: 'T2', atMs: 1, direction: 'entry', kind: 'card', ref: 'card:…0002#ab', grant: true, reason: 'ok', source: 'test' });
    const before = bo.counters.requests;
    expect(await j.uploadNow()).toBe(false);
    expect(j.backlog).toBe(1);
    expect(bo.counters.requests).toBe(before);
  });
});

describe('config of the back-office link', () => {
  const ctx = () => ({ laneId: 'C1', clock: systemClock, log: silentLogger, config: parseLaneConfig({ lane: { id: 'C1' } }) });
  const key = () => generatePem();

  it('refuses a token over plain http:// to another host, TLS settings on http://, and unreadable CA files or bad pins, naming the field', async () => {
    // Failed on the old code: every one of these configs was taken (the token then travelled in clear).
    const dir = tmp();
    const lists = (o: Record<string, unknown>) => listDrivers['http-sync']({ type: 'http-sync', dir: join(dir, 'l'), publicKeys: [key()], pollSeconds: 3600, ...o }, ctx());
    await expect(lists({ url: 'http://10.20.0.5:8080', token: GATE })).rejects.toThrow(
      /lists\.token: refusing to send the bearer token in clear over http:\/\/ to 10\.20\.0\.5: use https:\/\//,
    );
    await expect(lists({ url: 'http://bo.metro.example:8080', token: GATE })).rejects.toThrow(/lists\.token: refusing .* to bo\.metro\.example/);
    await expect(lists({ url: 'http://127.0.0.1:9', tls: { caFile: pki.caFile } })).rejects.toThrow(/lists\.tls: TLS settings are given but http:\/\/127\.0\.0\.1:9 is http:\/\/: use https:\/\//);
    await expect(lists({ url: 'https://127.0.0.1:9', tls: { caFile: join(dir, 'missing.pem') } })).rejects.toThrow(/lists\.tls\.caFile .*missing\.pem: ENOENT/);
    writeFileSync(join(dir, 'not.pem'), 'hello');
    await expect(lists({ url: 'https://127.0.0.1:9', tls: { caFile: join(dir, 'not.pem') } })).rejects.toThrow(/lists\.tls\.caFile .*not\.pem: not a PEM certificate/);
    await expect(lists({ url: 'https://127.0.0.1:9', tls: { pinSha256: ['abc'] } })).rejects.toThrow(/lists\.tls\.pinSha256\[0\]: not a SHA-256 pin/);
    await expect(lists({ url: 'https://127.0.0.1:9', tls: {} })).rejects.toThrow(/lists\.tls: give caFile, pinSha256 or both/);
    const journal = (o: Record<string, unknown>) => journalDrivers.file({ type: 'file', dir: join(dir, 'j'), ...o }, ctx());
    await expect(journal({ uploadUrl: 'http://10.20.0.5:8080', uploadToken: GATE })).rejects.toThrow(/journal\.uploadToken: refusing to send the bearer token in clear over http:\/\/ to 10\.20\.0\.5/);
    await expect(journal({ uploadUrl: 'http://127.0.0.1:9', uploadTls: { pinSha256: [pki.spkiPin] } })).rejects.toThrow(/journal\.uploadTls: TLS settings are given/);
    await expect(journal({ uploadTls: { pinSha256: [pki.spkiPin] } })).rejects.toThrow(/journal\.uploadTls: given without journal\.uploadUrl/);
    // Allowed: a token to this box over http, and https with either setting.
    for (const o of [{ url: 'http://127.0.0.1:9', token: GATE }, { url: 'http://localhost:9', token: GATE }, { url: 'https://10.20.0.5:8443', token: GATE, tls: { caFile: pki.caFile, pinSha256: [pki.spkiPin] } }]) {
      const l = await lists({ ...o, dir: join(tmp(), 'l') });
      await l.stop?.();
    }
    const j = await journal({ uploadUrl: 'https://10.20.0.5:8443', uploadToken: GATE, uploadTls: { caFile: pki.caFile }, dir: join(tmp(), 'j') });
    await j.close();
  });

  it('reads pins as base64, hex or openssl fingerprints', () => {
    const b = Buffer.alloc(32, 7);
    for (const s of [b.toString('base64'), `sha256/${b.toString('base64')}`, b.toString('hex'), [...b].map((x) => x.toString(16).padStart(2, '0').toUpperCase()).join(':')]) {
      expect(Buffer.from(parsePin(s)).equals(b), s).toBe(true);
    }
    expect(() => parsePin(Buffer.alloc(31).toString('base64'))).toThrow(/not a SHA-256 pin/);
  });
});

describe('gate backoffice --tls-cert/--tls-key', () => {
  const gate = resolve(import.meta.dirname, '../../dist/firmware/cli/gate.js');

  it('serves https that a gate with the CA syncs from; half a pair or a non-PEM file exits 2', async () => {
    const dir = tmp();
    const child = spawn(process.execPath, [gate, 'backoffice', '--port', '0', '--db', join(dir, 'bo.db'), '--tls-cert', pki.certFile, '--tls-key', pki.keyFile, '--publish-ms', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(() => void child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    await waitUntil(() => /listening on https:\/\/127\.0\.0\.1:\d+/.test(out) && out.includes('-----END PUBLIC KEY-----'), 20_000, () => out);
    const url = /listening on (https:\/\/127\.0\.0\.1:\d+)/.exec(out)![1];
    expect(out).toMatch(/, TLS,/);
    const pem = out.slice(out.indexOf('-----BEGIN PUBLIC KEY-----'), out.indexOf('-----END PUBLIC KEY-----') + '-----END PUBLIC KEY-----'.length);
    const sync = await ListSync.open({ url, dir: join(dir, 'gate'), trustedKeys: [trustedListKey(pem)], tls: loadTlsTrust({ caFile: pki.caFile }) });
    cleanups.push(() => sync.stop());
    expect(await sync.syncOnce()).toMatchObject({ kind: 'applied', via: 'snapshot' });

    const half = spawnSync(process.execPath, [gate, 'backoffice', '--db', join(dir, 'b2.db'), '--tls-cert', pki.certFile], { encoding: 'utf8', timeout: 20_000 });
    expect(half.status).toBe(2);
    expect(half.stderr).toMatch(/--tls-cert and --tls-key go together/);
    writeFileSync(join(dir, 'key.txt'), 'not a key');
    const bad = spawnSync(process.execPath, [gate, 'backoffice', '--db', join(dir, 'b3.db'), '--tls-cert', pki.certFile, '--tls-key', join(dir, 'key.txt')], { encoding: 'utf8', timeout: 20_000 });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/key\.txt: not a PEM private key/);
  });
});

const readPem = (file: string) => readFileSync(file, 'utf8');
const generatePem = () => generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }).toString();
