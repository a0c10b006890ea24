// The operator's side, through the built `gate` command: `gate broker-config` writes what a real mosquitto
// runs on; `gate run` lanes with a `station` section are born on the bus, and their death is seen when a
// lane process is killed (the broker publishes its will); a signed reload restarts a lane on its config.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { BusClient } from '../../firmware/station/bus.js';
import { silentLogger } from '../../firmware/config/log.js';
import { decodeOnline, decodeResult, encodeCommand, laneTopic, rawPublicKeyB64, signCommand, type OnlineMessage, type ResultMessage } from '../../protocol/station-bus.js';
import { startBroker, type TestBroker } from '../support/mosquitto.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const GATE = join(root, 'dist/firmware/cli/gate.js');
const S = 'BJ-0404';
let dir: string;
let broker: TestBroker;
let observer: BusClient;
const online: { lane: string; msg: OnlineMessage }[] = [];
const results: ResultMessage[] = [];
const children: ChildProcess[] = [];
const sup = generateKeyPairSync('ed25519');

beforeAll(async () => {
  if (!existsSync(GATE)) throw new Error(`${GATE} missing: npm run build first (npm test does)`);
  dir = mkdtempSync(join(tmpdir(), 'station-cli-'));
  const r = spawnSync(process.execPath, [GATE, 'broker-config', '--station', S, '--lanes', '2', '--out', join(dir, 'broker'), '--backoffice'], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout).toContain('lane.BJ-0404.L01, lane.BJ-0404.L02, view.BJ-0404, backoffice.BJ-0404');
  broker = await startBroker({ passwords: readFileSync(join(dir, 'broker/passwd'), 'utf8'), acl: readFileSync(join(dir, 'broker/acl'), 'utf8') });
  const pw = (u: string) => readFileSync(join(dir, 'broker/clients', `${u}.password`), 'utf8').trim();
  observer = new BusClient({ url: broker.url, ca: readFileSync(broker.caFile, 'utf8'), username: `view.${S}`, password: pw(`view.${S}`), clientId: 'observer', keepaliveSeconds: 5, sessionExpirySeconds: 0, clean: true, reconnectMs: 200, subscriptions: [`gate/v1/${S}/+/online`, `gate/v1/${S}/+/result`], log: silentLogger });
  observer.on('message', (t, p) => {
    const lane = t.split('/')[3];
    if (t.endsWith('/online')) {
      const d = decodeOnline(p);
      if (d.ok) online.push({ lane, msg: d.value });
    } else {
      const d = decodeResult(p);
      if (d.ok) results.push(d.value);
    }
  });
  observer.start();
  expect(await observer.waitConnected(10_000)).toBe(true);
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await observer?.end();
  await broker?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function runLane(lane: string): { child: ChildProcess; out: () => string } {
  const config = {
    lane: { id: lane, station: S, direction: 'entry' },
    log: { level: 'warn' },
    health: { enabled: false },
    station: {
      broker: broker.url,
      ca: broker.caFile,
      passwordFile: join(dir, 'broker/clients', `lane.${S}.${lane}.password`),
      keepaliveSeconds: 2,
      reconnectMs: 200,
      supervisors: { 'sup-wang': { publicKey: rawPublicKeyB64(sup.publicKey), may: ['reload', 'set-mode'] } },
    },
  };
  const file = join(dir, `${lane}.json`);
  writeFileSync(file, JSON.stringify(config));
  const child = spawn(process.execPath, [GATE, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (b) => (out += b));
  child.stderr!.on('data', (b) => (out += b));
  return { child, out: () => out };
}

const last = (lane: string) => online.filter((o) => o.lane === lane).at(-1)?.msg;

describe('gate run lanes on a broker that gate broker-config set up', () => {
  it('a lane process is born on the bus, and its death is seen when it is killed', async () => {
    const l1 = runLane('L01');
    await vi.waitFor(() => expect(last('L01')?.online, l1.out()).toBe(true), { timeout: 15_000 });
    const boot = last('L01')!.boot;
    l1.child.kill('SIGKILL');
    await vi.waitFor(() => expect(last('L01')).toMatchObject({ online: false, cause: 'lost', boot }), { timeout: 15_000 });
    // Reborn with a new boot id.
    const again = runLane('L01');
    await vi.waitFor(() => expect(last('L01')?.online, again.out()).toBe(true), { timeout: 15_000 });
    expect(last('L01')!.boot).not.toBe(boot);
    // A clean stop says goodbye itself.
    again.child.kill('SIGTERM');
    await vi.waitFor(() => expect(last('L01')).toMatchObject({ online: false, cause: 'stopped' }), { timeout: 15_000 });
  });

  it('a signed reload is answered, and the lane restarts on its (checked) config', async () => {
    const l2 = runLane('L02');
    await vi.waitFor(() => expect(last('L02')?.online, l2.out()).toBe(true), { timeout: 15_000 });
    const now = Date.now();
    const c = signCommand({ id: randomBytes(16).toString('hex'), station: S, lane: 'L02', action: 'reload', args: {}, by: 'sup-wang', issuedAtMs: now, expiresAtMs: now + 30_000 }, sup.privateKey);
    await observer.publishAcked(laneTopic(S, 'L02', 'cmd'), encodeCommand(c));
    await vi.waitFor(() => expect(results.find((r) => r.id === c.id)).toMatchObject({ ok: true, action: 'reload', by: 'sup-wang' }), { timeout: 10_000 });
    const code = await new Promise<number | null>((r) => (l2.child.exitCode !== null ? r(l2.child.exitCode) : l2.child.once('exit', (x) => r(x))));
    expect(code).toBe(0);
    expect(last('L02')).toMatchObject({ online: false, cause: 'stopped' });
  });
});
