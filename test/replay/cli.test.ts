// The commands as an engineer runs them (the built `gate`, real processes): a recorded simulator day
// replays to identical decisions, and a policy that admits yellow changes exactly the yellow entries;
// `gate run --record` keeps a real lane's taps (wall clock, stdin bench console) until SIGTERM closes the
// recording, and `gate replay` decides them again; recording without a key is refused at start-up.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentialKey } from '../../protocol/credential.js';
import { ListBuilder, statusByte } from '../../protocol/lists/index.js';
import { waitUntil } from '../support/wait.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const GATE = join(root, 'dist/firmware/cli/gate.js');
const dir = mkdtempSync(join(tmpdir(), 'gate-replay-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeAll(() => {
  if (!existsSync(join(root, 'dist/firmware/cli/replay.js'))) {
    const b = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, encoding: 'utf8' });
    if (b.status !== 0) throw new Error(`build failed: ${b.stdout}${b.stderr}`);
  }
}, 120_000);

/** Run `gate …` to its end (bounded), with its output. */
function gate(args: string[], timeout = 120_000): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [GATE, ...args], { encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const lastJson = (out: string) => JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, any>;

describe('gate sim --record, then gate replay', () => {
  const rec = join(dir, 'sim');
  let sim: Record<string, any>;
  beforeAll(() => {
    const r = gate(['sim', '--passengers', '300', '--seed', '7', '--quiet', '--json', '--record', rec]);
    expect(r.code, r.err).toBe(0);
    sim = lastJson(r.out);
    expect(r.err).toContain(`recording key made at ${join(rec, 'record.key')}`);
  }, 120_000);

  it('replays the simulated day to identical decisions, lane by lane', () => {
    const r = gate(['replay', rec, '--quiet', '--json']);
    expect(r.code, r.err).toBe(0);
    const { summary } = lastJson(r.out);
    expect(summary.decisions).toBe(sim.presentations);
    expect(summary.diverged).toBe(0);
    expect(summary.lanes).toHaveLength(4);
    for (const lane of summary.lanes) expect(lane.asRecorded).toBe(lane.decisions);
  });

  it('prints every decision, and with a policy that admits yellow, exactly the yellow entries differ', () => {
    const all = gate(['replay', rec]);
    expect(all.code, all.err).toBe(0);
    const lines = all.out.split('\n').filter((l) => /^L0\d /.test(l));
    expect(lines).toHaveLength(sim.presentations);
    expect(all.out).toMatch(/all as recorded/);

    const yellow = join(dir, 'yellow.json');
    writeFileSync(yellow, JSON.stringify({ lane: { id: 'ANY' }, policy: { entry: { green: true, yellow: true, red: false, unregistered: false, blocked: false } } }));
    const r = gate(['replay', rec, '--config', yellow, '--differences']);
    expect(r.code, r.err).toBe(0);
    const differing = r.out.split('\n').filter((l) => l.includes(' ≠ other: '));
    const yellowRefusals = sim.byReason['status-yellow'] ?? 0;
    expect(yellowRefusals).toBeGreaterThan(0);
    // Every yellow refusal differs (let in, or refused for anti-passback after an earlier one was let in); nothing else does.
    expect(differing).toHaveLength(yellowRefusals);
    for (const l of differing) expect(l).toMatch(/refuse status-yellow {2}≠ other: (grant ok|refuse passback) — /);
    expect(differing.some((l) => l.includes(`entry policy for yellow: refused → admitted (--config ${yellow})`))).toBe(true);
    expect(r.out).toMatch(new RegExp(`${yellowRefusals} decisions differ under --config`));
  });

  it('refuses a tampered recording with a classified error and exit 1', () => {
    const copy = join(dir, 'sim-tampered');
    cpSync(rec, copy, { recursive: true });
    const laneDir = join(copy, 'L02');
    const [name] = readdirSync(laneDir);
    const f = join(laneDir, name);
    const bytes = readFileSync(f);
    bytes[Math.floor(bytes.length / 2)] ^= 0x01;
    writeFileSync(f, bytes);
    const r = gate(['replay', copy, '--json']);
    expect(r.code).toBe(1);
    expect(r.out.trim().split('\n')).toHaveLength(1);
    expect(lastJson(r.out).refused).toMatchObject({ code: 'recording-damaged', problem: 'tampered', file: f });
    expect(r.err).toMatch(/^gate replay: recording .* was tampered with or damaged \(at byte \d+\)/);
  });
});

describe('gate run --record, then gate replay', () => {
  it('keeps what a running lane took until SIGTERM, and replays it to the same decisions', async () => {
    const lists = join(dir, 'lists.snap');
    const green = '3104100012300000001';
    const yellow = '3104100012300000002';
    const b = new ListBuilder(2);
    b.set(credentialKey({ kind: 'card', cardNumber: green }), statusByte('green', false));
    b.set(credentialKey({ kind: 'card', cardNumber: yellow }), statusByte('yellow', false));
    writeFileSync(lists, b.build({ version: 3, publishedAtMs: Date.now() }));
    const cfg = join(dir, 'lane.json');
    const key = join(dir, 'operator.key');
    writeFileSync(key, randomBytes(32).toString('hex'));
    writeFileSync(
      cfg,
      JSON.stringify({
        lane: { id: 'R1', direction: 'bidirectional' },
        timeouts: { passageMs: 200, deniedDisplayMs: 100 },
        drivers: { barrier: { type: 'simulated' }, sources: [{ type: 'simulated', side: 'entry' }, { type: 'simulated', side: 'exit' }] },
        lists: { type: 'file', path: lists },
        health: { enabled: false },
        log: { level: 'warn' },
        record: { keyFile: key },
      }),
    );
    const rec = join(dir, 'run');
    const run = spawn(process.execPath, [GATE, 'run', '--config', cfg, '--stdin', '--record', rec], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    run.stdout.on('data', (d: Buffer) => (out += d.toString()));
    run.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const decisions = () => out.split('\n').filter((l) => l.startsWith('{"lane":"R1"'));
    const views = () => out.split('\n').filter((l) => l.startsWith('{"laneId":"R1"')).map((l) => JSON.parse(l) as { state: string; mode: string });
    /** Ask the bench console for the lane's view until it shows `state` (each answer is evidence, no sleeping). */
    const until = async (state: string) => {
      for (let asked = views().length; ; ) {
        run.stdin.write('view\n');
        await waitUntil(() => views().length > asked, 15_000, () => `a view (stderr: ${err})`);
        asked = views().length;
        if (views().at(-1)!.state === state) return;
      }
    };
    const taps: [string, string][] = [
      [`entry card ${green}`, 'normal.ready'],
      [`entry card ${yellow}`, 'normal.ready'],
      [`exit card ${green}`, 'normal.ready'],
      ['mode closed', 'closed'],
      [`entry card ${green}`, 'closed'],
      ['mode normal', 'normal.ready'],
      ['entry card 3104100012300000009', 'normal.ready'],
    ];
    let expected = 0;
    await until('normal.ready');
    for (const [t, after] of taps) {
      run.stdin.write(t + '\n');
      if (!t.startsWith('mode')) {
        expected++;
        await waitUntil(() => decisions().length >= expected, 15_000, () => `decision ${expected} (stderr: ${err})`);
      }
      await until(after);
    }
    run.kill('SIGTERM');
    const code = await new Promise((r) => run.on('exit', r));
    expect(code).toBe(0);
    const seen = decisions().map((l) => JSON.parse(l) as { grant: boolean; reason: string });
    expect(seen.map((d) => d.reason)).toEqual(['ok', 'status-yellow', 'ok', 'station-closed', 'not-registered']);

    const r = gate(['replay', rec, '--record-key', key]);
    expect(r.code, r.err).toBe(0);
    const lines = r.out.split('\n').filter((l) => l.startsWith('R1 '));
    expect(lines.map((l) => l.split(' ').slice(-1)[0])).toEqual(seen.map((d) => d.reason));
    expect(r.out).toMatch(/list versions 3/);
    expect(r.out).toMatch(/5 decisions replayed in [\d.]+ s; all as recorded/);
  }, 60_000);

  it('refuses to start recording without the operator key, saying where to give it', () => {
    const cfg = join(dir, 'nokey.json');
    writeFileSync(cfg, JSON.stringify({ lane: { id: 'R2' }, health: { enabled: false }, log: { level: 'silent' } }));
    const r = gate(['run', '--config', cfg, '--record', join(dir, 'nokey')], 30_000);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^gate run: recording needs the operator key: set record.keyFile in the config or give --record-key FILE/);
  });
});
