// `gate run` start-up failures, from the outside: the built command as a child process, in a process group
// of its own. Each bad config must end the process (non-zero exit, within a bound), print exactly one line
// on stderr naming the file or field and the fix (no stack trace), and leave nothing running.
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = new URL('../..', import.meta.url).pathname;
const gateJs = join(root, 'dist/firmware/cli/gate.js');
/** How long a failing start-up may take before the test calls it a hang (a bound, not a measured figure). */
const BOUND_MS = 15_000;
let dir: string;

beforeAll(() => {
  if (!existsSync(join(root, 'dist/firmware/operations/service.js'))) {
    const b = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, encoding: 'utf8' });
    if (b.status !== 0) throw new Error(`build failed: ${b.stdout}${b.stderr}`);
  }
  dir = mkdtempSync(join(tmpdir(), 'gate-startup-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** True while any process of the group `pgid` exists. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** Still running when the bound ran out (then killed by the test). */
  hung: boolean;
  /** Processes of its group still there after it exited (then killed by the test). */
  leftRunning: boolean;
}

async function gateRun(name: string, config: unknown, extraEnv: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(config));
  const env: NodeJS.ProcessEnv = { ...process.env, ...extraEnv };
  delete env.NOTIFY_SOCKET;
  delete env.WATCHDOG_USEC;
  const child = spawn(process.execPath, [gateJs, 'run', '--config', file], { env, detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const pgid = child.pid!;
  let timer: NodeJS.Timeout | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const outcome = await Promise.race([exited.then((e) => ({ ...e, hung: false })), new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), BOUND_MS)))]);
  clearTimeout(timer);
  if (outcome === 'hung') {
    process.kill(-pgid, 'SIGKILL');
    const e = await exited;
    return { ...e, stderr, hung: true, leftRunning: true };
  }
  await new Promise<void>((r) => (child.stderr!.readableEnded ? r() : child.stderr!.once('end', () => r())));
  // Whatever it started (a relay, a worker process) must be gone with it: poll the group a bounded number of times.
  let leftRunning = groupAlive(pgid);
  for (let i = 0; i < 50 && leftRunning; i++) {
    await new Promise((r) => setTimeout(r, 20));
    leftRunning = groupAlive(pgid);
  }
  if (leftRunning) process.kill(-pgid, 'SIGKILL');
  return { ...outcome, stderr, leftRunning };
}

function expectOneLineFailure(o: Outcome, mentions: RegExp[]): void {
  expect({ hung: o.hung, leftRunning: o.leftRunning, signal: o.signal }, `stderr: ${o.stderr}`).toEqual({ hung: false, leftRunning: false, signal: null });
  expect(o.code).not.toBe(0);
  expect(o.code).not.toBeNull();
  const lines = o.stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines, o.stderr).toHaveLength(1);
  expect(o.stderr).not.toMatch(/^\s+at /m);
  expect(lines[0]).toMatch(/^gate run: /);
  for (const m of mentions) expect(lines[0]).toMatch(m);
}

describe('gate run: every start-up failure is one line, a non-zero exit, and nothing left running', () => {
  it('a missing list file names lists.path, the file, and what to do', async () => {
    const path = join(dir, 'no-such-lists.snap');
    const o = await gateRun('missing-lists', { lane: { id: 'L1' }, lists: { type: 'file', path }, health: { port: 0 }, log: { level: 'warn' } });
    expectOneLineFailure(o, [/lists\.path/, new RegExp(path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), /provision|point lists\.path/]);
  });

  it('a journal directory under a plain file names journal.dir, the file in the way, and what to do', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'not a directory\n');
    const o = await gateRun('journal-under-file', { lane: { id: 'L1' }, journal: { type: 'file', dir: join(file, 'journal') }, health: { port: 0 }, log: { level: 'warn' } });
    expectOneLineFailure(o, [/journal\.dir/, /a-file/, /not a directory/, /set journal\.dir/]);
  });

  it('health.port 70000 is refused before the lane starts: the field, the config file, the fix', async () => {
    const o = await gateRun('bad-port', { lane: { id: 'L1' }, health: { port: 70000 }, log: { level: 'info' } });
    expectOneLineFailure(o, [/health\.port/, /bad-port\.json/, /65535/, /fix/]);
  });

  it('a fare gate whose PSAM cannot be reached names fares.psam.reader and what to do', async () => {
    const key = generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }).toString();
    const config = {
      lane: { id: 'F1', direction: 'exit' },
      lists: { type: 'http-sync', url: 'http://127.0.0.1:9', dir: join(dir, 'fare-lists'), publicKeys: [key], pollSeconds: 86_400 },
      drivers: { sources: [{ type: 'pcsc', side: 'exit' }] },
      fares: { psam: { reader: 'SAM', readyWaitMs: 300 }, station: 3 },
      health: { port: 0 },
      // The list sync's first poll (nobody at that address) warns meanwhile: not what this test reads.
      log: { level: 'error' },
    };
    const o = await gateRun('fare-no-psam', config, { PCSCLITE_CSOCK_NAME: join(dir, 'no-pcscd.comm') });
    expectOneLineFailure(o, [/fares\.psam\.reader/, /pcscd is not running/, /put the PSAM in a PC\/SC slot whose name contains "SAM"/]);
    expect(o.code).toBe(1);
    // A card reader on the other side than the fare transaction: an invalid config, exit 2.
    const side = await gateRun('fare-reader-side', { ...config, drivers: { sources: [{ type: 'pcsc', side: 'entry' }] } });
    expectOneLineFailure(side, [/drivers\.sources\[0\]\.side/, /fare gate for exit/, /fare-reader-side\.json/]);
    expect(side.code).toBe(2);
  });

  it('a journal directory under /proc fails at once instead of hanging', async () => {
    const o = await gateRun('journal-in-proc', { lane: { id: 'L1' }, journal: { type: 'file', dir: '/proc/gate-journal-test/journal' }, health: { port: 0 }, log: { level: 'warn' } });
    expectOneLineFailure(o, [/journal\.dir/, /\/proc\/gate-journal-test/, /set journal\.dir/]);
  });
});

describe('start-up failures in-process', () => {
  it('startLane closes what it opened when a later step fails', async () => {
    const { listDrivers, journalDrivers } = await import('../../firmware/composition/registry.js');
    const { MemoryLists } = await import('../../firmware/lists/list-provider.js');
    const { MemoryJournal } = await import('../../firmware/journal/journal.js');
    const { startLane } = await import('../../firmware/composition/start-lane.js');
    const { parseLaneConfig } = await import('../../firmware/config/config.js');
    const closed: string[] = [];
    listDrivers['test-probe'] = async () => Object.assign(new MemoryLists(0), { stop: async () => void closed.push('lists') });
    journalDrivers['test-probe'] = async () => Object.assign(new MemoryJournal(), { close: async () => void closed.push('journal') });
    const steps: string[] = [];
    try {
      const config = parseLaneConfig({ lane: { id: 'L1' }, lists: { type: 'test-probe' }, journal: { type: 'test-probe' }, qr: { trustList: join(dir, 'no-trust-list.json') } });
      const err = await startLane({ config, onStep: (s) => steps.push(s.field) }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'config' });
      expect(steps).toEqual(['lists', 'journal', 'drivers.barrier', 'drivers.sources', 'qr']);
      expect(closed.sort()).toEqual(['journal', 'lists']);
    } finally {
      delete listDrivers['test-probe'];
      delete journalDrivers['test-probe'];
    }
  });

  it('an unexpected error is still one line, naming the step, its config field and the file', async () => {
    const { startupFailure } = await import('../../firmware/cli/run.js');
    const e = new Error('Error: No such file or directory, cannot open /dev/ttyUSB7\n    at SerialPort.open (x.js:1:1)');
    const f = startupFailure(e, '/etc/gate/lane.json', { field: 'drivers.barrier', what: 'serial barrier link' });
    expect(f.exitCode).toBe(1);
    expect(f.line.split('\n')).toHaveLength(1);
    expect(f.line).toBe('start-up failed while opening serial barrier link (drivers.barrier): Error: No such file or directory, cannot open /dev/ttyUSB7; at SerialPort.open (x.js:1:1); check drivers.barrier in /etc/gate/lane.json');
  });
});
