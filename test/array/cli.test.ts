// `gate run` with a gate array config, from the outside: the built command as a child process. Every lane
// of the box serves from one process (taps on the bench console go to the lane named first), /readyz and
// /metrics cover every lane, a fire alarm on the console opens every lane, SIGTERM stops it; a bad array
// config is one line on stderr naming lanes[i] and the field, exit 2.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withCheckDigit } from '../../simulator/backoffice/validate.js';
import { waitUntil } from '../support/wait.js';
import { freePort } from '../support/free-port.js';

const root = new URL('../..', import.meta.url).pathname;
const gateJs = join(root, 'dist/firmware/cli/gate.js');
let dir: string;
const children: ChildProcess[] = [];

beforeAll(() => {
  if (!existsSync(join(root, 'dist/firmware/cli/run-array.js'))) {
    const b = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, encoding: 'utf8' });
    if (b.status !== 0) throw new Error(`build failed: ${b.stdout}${b.stderr}`);
  }
  dir = mkdtempSync(join(tmpdir(), 'gate-array-cli-'));
});
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});


function gate(name: string, config: unknown, args: string[] = []) {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(config));
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NOTIFY_SOCKET;
  delete env.WATCHDOG_USEC;
  const child = spawn(process.execPath, [gateJs, 'run', '--config', file, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  const out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, out, exited, file };
}

/** Exit code and stderr of a start-up that must fail (bounded: a hang is killed and reported). */
async function failing(name: string, config: unknown): Promise<{ code: number | null; stderr: string }> {
  const g = gate(name, config);
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([g.exited, new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), 15_000)))]);
  clearTimeout(timer);
  if (code === 'hung') {
    g.child.kill('SIGKILL');
    throw new Error(`gate run did not exit; stderr: ${g.out.stderr}`);
  }
  return { code, stderr: g.out.stderr };
}

const lane = (id: string, direction: string, side: string, barrier: Record<string, unknown> = { type: 'simulated' }) => ({ id, direction, drivers: { barrier, sources: [{ type: 'simulated', side }] } });

describe('gate run with a gate array config', () => {
  it('serves every lane from one process: taps by lane, readiness and metrics for every lane, a box-wide fire alarm, SIGTERM', async () => {
    const a = withCheckDigit('310410001230000011');
    const b = withCheckDigit('310410001230000012');
    const port = await freePort();
    const g = gate(
      'array',
      {
        lanes: [lane('L1', 'entry', 'entry'), lane('L2', 'entry', 'entry'), lane('L3', 'exit', 'exit')],
        lists: { type: 'memory', entries: { [`card:${a}`]: 'green', [`card:${b}`]: 'green' } },
        health: { port },
        log: { level: 'warn' },
      },
      ['--stdin'],
    );
    const get = (path: string) => fetch(`http://127.0.0.1:${port}${path}`);
    await waitUntil(
      async () => {
        if (g.child.exitCode !== null) throw new Error(`gate run exited ${g.child.exitCode}: ${g.out.stderr}`);
        return (await get('/readyz').catch(() => undefined))?.status === 200;
      },
      20_000,
      () => `/readyz 200; stderr: ${g.out.stderr}`,
    );
    const ready = (await (await get('/readyz')).json()) as { checks: Record<string, { ok: boolean }> };
    expect(Object.keys(ready.checks).filter((k) => k.endsWith('.barrierLink')).sort()).toEqual(['L1.barrierLink', 'L2.barrierLink', 'L3.barrierLink']);

    const lines = () => g.out.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    g.child.stdin!.write(`L2 entry card ${a}\n`);
    await waitUntil(() => lines().some((l) => l.lane === 'L2'), 10_000, () => `a decision at L2; stdout: ${g.out.stdout}`);
    expect(lines().find((l) => l.lane === 'L2')).toMatchObject({ lane: 'L2', grant: true, reason: 'ok' });
    g.child.stdin!.write(`L3 exit card ${b}\n`);
    await waitUntil(() => lines().some((l) => l.lane === 'L3'), 10_000, () => `a decision at L3; stdout: ${g.out.stdout}`);
    expect(lines().find((l) => l.lane === 'L3')).toMatchObject({ lane: 'L3', grant: true, reason: 'ok' });
    expect(lines().filter((l) => l.lane === 'L1')).toEqual([]);
    g.child.stdin!.write(`L9 entry card ${a}\n`);
    await waitUntil(() => g.out.stderr.includes('no lane "L9" (lanes: L1, L2, L3)'), 10_000, () => `the console's answer; stderr: ${g.out.stderr}`);

    const metrics = await (await get('/metrics')).text();
    for (const id of ['L1', 'L2', 'L3']) expect(metrics).toMatch(new RegExp(`^gate_lane_mode\\{[^}]*lane="${id}"`, 'm'));

    // A fire alarm from the console without a lane id: every lane of the box opens.
    g.child.stdin!.write('fire on\nview\n');
    const views = () => lines().filter((l) => 'mode' in l);
    await waitUntil(() => views().length >= 3, 10_000, () => `three views; stdout: ${g.out.stdout}`);
    expect(views().map((v) => [v.laneId, v.mode])).toEqual([
      ['L1', 'emergency'],
      ['L2', 'emergency'],
      ['L3', 'emergency'],
    ]);

    g.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([g.exited, new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), 15_000)))]);
    clearTimeout(timer);
    expect(code).toBe(0);
  });

  it("gate supervisor -c takes an array config's dashboard.control.supervisors", () => {
    const file = join(dir, 'supervisors.json');
    const config = join(dir, 'array-supervisors.json');
    writeFileSync(config, JSON.stringify({ lanes: [lane('L1', 'entry', 'entry'), lane('L2', 'exit', 'exit')], dashboard: { control: { supervisors: file } } }));
    const add = spawnSync(process.execPath, [gateJs, 'supervisor', 'add', 'wang', '--password-stdin', '-c', config], { input: 'correct horse battery\n', encoding: 'utf8' });
    expect(add.status, add.stderr).toBe(0);
    const list = spawnSync(process.execPath, [gateJs, 'supervisor', 'list', '-c', config], { encoding: 'utf8' });
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout).toContain('wang');
    expect(existsSync(file)).toBe(true);
  });

  it('a bad array config: one line naming lanes[i] and the field, exit 2', async () => {
    const port = (p: string) => ({ type: 'serial', path: p });
    const shared = await failing('shared-port', { lanes: [lane('L1', 'entry', 'entry', port('/dev/ttyUSB0')), lane('L2', 'entry', 'entry', port('/dev/ttyUSB0'))] });
    expect(shared.code).toBe(2);
    expect(shared.stderr.trim().split('\n')).toHaveLength(1);
    expect(shared.stderr).toMatch(/^gate run: .*lanes\[1\]\.drivers\.barrier\.path: \/dev\/ttyUSB0 is already lanes\[0\]'s barrier port.*\(fix that in .*shared-port\.json\)$/m);

    const section = await failing('bad-section', { lanes: [lane('L1', 'entry', 'entry'), lane('L2', 'entry', 'entry'), lane('L3', 'entry', 'entry', { type: 'serial', path: '/dev/ttyUSB2', parity: 'sometimes' })] });
    expect(section.code).toBe(2);
    expect(section.stderr.trim().split('\n')).toHaveLength(1);
    expect(section.stderr).toContain('lanes[2].drivers.barrier.parity');
  });
});
