// sd_notify against a test-made notify socket standing in for systemd: a socat receiver on a unix
// datagram socket (filesystem path and abstract namespace). The notifier runs in a child process
// that blocks its own event loop on purpose; the watchdog pings must stop while it is blocked.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SystemdNotifier, notifyTarget, relayCommand, watchdogPeriodMs } from '../../firmware/platform/systemd.js';

function need(cmd: string, args: string[], pkg: string): void {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`this test needs ${cmd}: apt-get install -y ${pkg}`);
}

let dir: string;
const children: ChildProcess[] = [];
beforeAll(() => {
  need('socat', ['-V'], 'socat');
  dir = mkdtempSync(join(tmpdir(), 'gate-notify-'));
  // The child runs the real module, transpiled as-is (it imports only node builtins).
  const src = readFileSync(new URL('../../firmware/platform/systemd.ts', import.meta.url), 'utf8');
  const js = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
  writeFileSync(join(dir, 'systemd.mjs'), js.outputText);
  writeFileSync(
    join(dir, 'lane.mjs'),
    `import { SystemdNotifier } from './systemd.mjs';
const n = new SystemdNotifier({ relays: [process.argv[2]] });
n.ready('lane L1 serving');
n.startWatchdog();
setTimeout(() => {
  n.status('blocking');
  const until = Date.now() + Number(process.argv[3]);
  while (Date.now() < until) {} // a hung event loop
  n.status('unblocked');
  setTimeout(() => { n.stopping('bye'); n.close().then(() => process.exit(0)); }, 500);
}, 500);
`,
  );
});
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** A stand-in for systemd's notify socket; collects received lines. */
async function receiver(address: string): Promise<{ lines: string[]; stop: () => void }> {
  const spec = address.startsWith('@') ? `ABSTRACT-RECV:${address.slice(1)}` : `UNIX-RECV:${address}`;
  const p = spawn('socat', ['-u', spec, 'STDOUT'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(p);
  const lines: string[] = [];
  let buf = '';
  p.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  // socat creates the socket right away; give it a moment to bind.
  await new Promise((r) => setTimeout(r, 200));
  return { lines, stop: () => p.kill() };
}

async function runLane(notifySocket: string, relay: string, blockMs: number): Promise<void> {
  const env: NodeJS.ProcessEnv = { ...process.env, NOTIFY_SOCKET: notifySocket, WATCHDOG_USEC: '100000' };
  delete env.WATCHDOG_PID;
  const c = spawn(process.execPath, [join(dir, 'lane.mjs'), relay, String(blockMs)], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  children.push(c);
  const code = await new Promise<number | null>((r) => c.on('exit', r));
  expect(code).toBe(0);
}

/** Wait until the receiver has printed the last message (socat's output may lag on a loaded machine). */
async function settled(lines: string[]): Promise<void> {
  const end = Date.now() + 10_000;
  while (!lines.includes('STATUS=bye') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
}

function checkSequence(lines: string[]): void {
  expect(lines[0]).toBe('READY=1');
  expect(lines[1]).toBe('STATUS=lane L1 serving');
  const b = lines.indexOf('STATUS=blocking');
  const u = lines.indexOf('STATUS=unblocked');
  expect(b).toBeGreaterThan(1);
  expect(u).toBeGreaterThan(b);
  const pingsBefore = lines.slice(0, b).filter((l) => l === 'WATCHDOG=1').length;
  const pingsDuring = lines.slice(b + 1, u).filter((l) => l === 'WATCHDOG=1').length;
  const pingsAfter = lines.slice(u + 1).filter((l) => l === 'WATCHDOG=1').length;
  // Pings every 50 ms (half of WATCHDOG_USEC) for 500 ms before the block...
  expect(pingsBefore).toBeGreaterThanOrEqual(3);
  // ...none while the loop is blocked, though the relay process itself was free to run...
  expect(pingsDuring).toBe(0);
  // ...and they resume once it runs again, until STOPPING.
  expect(pingsAfter).toBeGreaterThanOrEqual(2);
  const s = lines.indexOf('STOPPING=1');
  expect(s).toBeGreaterThan(u);
  expect(lines.slice(s).filter((l) => l === 'WATCHDOG=1')).toEqual([]);
  expect(lines[s + 1]).toBe('STATUS=bye');
}

describe('sd_notify', () => {
  it('sends READY and watchdog pings to a filesystem notify socket; pings stop while the loop is blocked', async () => {
    const path = join(dir, 'notify.sock');
    const r = await receiver(path);
    await runLane(path, 'socat', 1000);
    await settled(r.lines);
    r.stop();
    checkSequence(r.lines);
  });

  it('works with an abstract namespace notify socket (@name)', async () => {
    const name = `@gate-test-${process.pid}-${Date.now()}`;
    const r = await receiver(name);
    await runLane(name, 'socat', 400);
    await settled(r.lines);
    r.stop();
    checkSequence(r.lines);
  });

  it('works with the python3 relay when socat is missing', async () => {
    need('python3', ['--version'], 'python3');
    const path = join(dir, 'notify-py.sock');
    const r = await receiver(path);
    await runLane(path, 'python3', 400);
    await settled(r.lines);
    r.stop();
    checkSequence(r.lines);
  });

  it('reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID like libsystemd', () => {
    expect(notifyTarget({})).toBeUndefined();
    expect(notifyTarget({ NOTIFY_SOCKET: '/run/systemd/notify' })).toEqual({ kind: 'path', address: '/run/systemd/notify' });
    expect(notifyTarget({ NOTIFY_SOCKET: '@x/y' })).toEqual({ kind: 'abstract', address: 'x/y' });
    expect(() => notifyTarget({ NOTIFY_SOCKET: 'vsock:2:9' })).toThrow(/vsock/);
    expect(watchdogPeriodMs({ WATCHDOG_USEC: '20000000' }, 7)).toBe(10_000);
    expect(watchdogPeriodMs({ WATCHDOG_USEC: '20000000', WATCHDOG_PID: '8' }, 7)).toBeUndefined();
    expect(watchdogPeriodMs({ WATCHDOG_USEC: '20000000', WATCHDOG_PID: '7' }, 7)).toBe(10_000);
    expect(watchdogPeriodMs({ WATCHDOG_USEC: 'x' }, 7)).toBeUndefined();
    expect(relayCommand('socat', { kind: 'path', address: '/run/a,b:c' }).args[2]).toBe('UNIX-SENDTO:/run/a\\,b\\:c');
  });

  it('is a silent no-op without NOTIFY_SOCKET, and leaves the environment clean for children', () => {
    const env: NodeJS.ProcessEnv = { WATCHDOG_USEC: '1000000' };
    const n = new SystemdNotifier({ env, unsetEnvironment: true });
    expect(n.active).toBe(false);
    n.ready('x');
    expect(n.startWatchdog()).toBe(false);
    expect(env.WATCHDOG_USEC).toBeUndefined();
  });
});
