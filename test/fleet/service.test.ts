// A lane as a service: its decisions and modes in /metrics, /readyz from the lane's real state, and
// sd_notify READY / STATUS / watchdog / STOPPING to a test-made notify socket, both in-process and
// from the real `gate run` command.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedSource } from '../../drivers/simulated.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { startLane, type Lane } from '../../firmware/composition/start-lane.js';
import { silentLogger } from '../../firmware/config/log.js';
import { createMetrics } from '../../firmware/operations/metrics.js';
import { laneInspector, startLaneService, type LaneService } from '../../firmware/operations/service.js';
import { SystemdNotifier } from '../../firmware/platform/systemd.js';
import { freePort } from '../support/free-port.js';

const root = new URL('../..', import.meta.url).pathname;
let dir: string;
const procs: ChildProcess[] = [];

beforeAll(() => {
  if (spawnSync('socat', ['-V'], { stdio: 'ignore' }).status !== 0) throw new Error('this test needs socat: apt-get install -y socat');
  dir = mkdtempSync(join(tmpdir(), 'gate-service-'));
});
afterAll(() => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

async function receiver(path: string): Promise<{ lines: string[]; stop: () => void }> {
  const p = spawn('socat', ['-u', `UNIX-RECV:${path}`, 'STDOUT'], { stdio: ['ignore', 'pipe', 'ignore'] });
  procs.push(p);
  const lines: string[] = [];
  let buf = '';
  p.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  while (!existsSync(path)) await new Promise((r) => setTimeout(r, 20));
  return { lines, stop: () => p.kill() };
}

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}


const sample = (text: string, prefix: string) => Number(text.split('\n').find((l) => l.startsWith(prefix))?.split(' ').pop());

describe('lane service', () => {
  let lane: Lane;
  let service: LaneService;

  it('counts decisions and modes, reports readiness, and talks to systemd', async () => {
    const journal = join(dir, 'journal');
    mkdirSync(journal);
    const config = parseLaneConfig({
      lane: { id: 'L5', station: 'XZM' },
      drivers: { sources: [{ type: 'simulated', side: 'entry' }] },
      health: { port: 0 },
      journal: { type: 'memory', dir: journal },
    });
    const sock = join(dir, 'notify-inproc.sock');
    const rx = await receiver(sock);
    const metrics = createMetrics({ labels: { lane: 'L5' } });
    lane = await startLane({ config, inspect: laneInspector(metrics) });
    const notifier = new SystemdNotifier({ env: { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '200000' }, unsetEnvironment: false });
    service = await startLaneService(lane, { log: silentLogger, metrics, notifier });
    const url = service.health!.url;

    await until('READY', () => rx.lines.includes('READY=1'));
    expect(rx.lines.find((l) => l.startsWith('STATUS='))).toMatch(/^STATUS=lane L5: /);
    await until('watchdog pings', () => rx.lines.filter((l) => l === 'WATCHDOG=1').length >= 2);

    await until('barrier link up', () => !('barrier-link' in lane.view().faults));
    const ready = await fetch(`${url}/readyz`);
    const body = (await ready.json()) as { ok: boolean; checks: Record<string, { ok: boolean; detail: string }> };
    expect(body.checks.barrierLink).toEqual({ ok: true, detail: 'barrier board answering' });
    expect(body.checks.lists.ok).toBe(true);
    expect(body.checks.journal.detail).toContain(journal);
    expect(ready.status).toBe(200);

    const src = lane.sources[0] as SimulatedSource;
    const decided = new Promise((r) => lane.on('decision', r));
    src.present({ kind: 'card', cardNumber: '3104100000123456789' });
    await decided;
    lane.send({ type: 'SET_MODE', mode: 'maintenance' });
    await until('mode change', () => lane.view().mode === 'maintenance');
    src.fault('reader unplugged');

    const text = await (await fetch(`${url}/metrics`)).text();
    expect(sample(text, 'gate_decisions_total{kind="card",reason="not-registered",grant="false",lane="L5"}')).toBe(1);
    expect(sample(text, 'gate_decision_duration_seconds_count{lane="L5",kind="card"}')).toBe(1);
    // The reader fault came last: the lane is out of service now, maintenance was before.
    expect(sample(text, 'gate_lane_mode{mode="maintenance",lane="L5"}')).toBe(lane.view().mode === 'maintenance' ? 1 : 0);
    expect(sample(text, `gate_lane_mode{mode="${lane.view().mode}",lane="L5"}`)).toBe(1);
    expect(sample(text, 'gate_barrier_link_up{lane="L5"}')).toBe(1);
    expect(sample(text, 'gate_list_version{lane="L5"}')).toBe(1);
    expect(text).toMatch(/^gate_list_age_seconds\{lane="L5"\} [\d.]+$/m);
    expect(text).toMatch(/^gate_reader_faults_total\{source="sim-entry-0",fault="unplugged",lane="L5"\} 1$/m);
    await until('STATUS after mode change', () => rx.lines.some((l) => l.startsWith('STATUS=lane L5: maintenance')));

    await service.stop();
    await lane.stop();
    await until('STOPPING', () => rx.lines.includes('STOPPING=1'));
    rx.stop();
  });

  it('`gate run` under a stand-in systemd: READY, watchdog pings, /readyz, STOPPING on SIGTERM', async () => {
    if (!existsSync(join(root, 'dist/firmware/operations/service.js'))) {
      const b = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, encoding: 'utf8' });
      if (b.status !== 0) throw new Error(`build failed: ${b.stdout}${b.stderr}`);
    }
    const port = await freePort();
    const cfg = join(dir, 'lane.json');
    writeFileSync(cfg, JSON.stringify({ lane: { id: 'L6' }, health: { port }, log: { level: 'warn' } }));
    const sock = join(dir, 'notify-run.sock');
    const rx = await receiver(sock);
    const env: NodeJS.ProcessEnv = { ...process.env, NOTIFY_SOCKET: sock, WATCHDOG_USEC: '200000' };
    delete env.WATCHDOG_PID;
    const gate = spawn(process.execPath, [join(root, 'dist/firmware/cli/gate.js'), 'run', '--config', cfg], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    procs.push(gate);
    let err = '';
    gate.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    await until(`READY from gate run (stderr: ${err})`, () => rx.lines.includes('READY=1'));
    await until('watchdog pings', () => rx.lines.filter((l) => l === 'WATCHDOG=1').length >= 3);
    let ready: Response | undefined;
    await until('/readyz 200', () => {
      fetch(`http://127.0.0.1:${port}/readyz`).then((r) => (ready = r), () => {});
      return ready?.status === 200;
    });
    gate.kill('SIGTERM');
    const code = await new Promise((r) => gate.on('exit', r));
    expect(code).toBe(0);
    await until('STOPPING', () => rx.lines.includes('STOPPING=1'));
    const s = rx.lines.indexOf('STOPPING=1');
    expect(rx.lines.slice(s).includes('WATCHDOG=1')).toBe(false);
    rx.stop();
  });
});

describe('lane service with the real serial barrier driver on a pty', () => {
  it('exports the driver counters and link state, and readiness follows the link', async () => {
    const { ptyPair } = await import('../support/pty.js');
    const { BarrierBoard } = await import('../../simulator/barrier-board.js');
    const { SerialBarrierLink } = await import('../../drivers/serial-barrier.js');
    const pty = await ptyPair('fleet');
    const board = new BarrierBoard({ path: pty.b, heartbeatMs: 20, failSafeAfterMs: 2000, eventRetryMs: 15, mechanics: { openMs: 10, closeMs: 10 } });
    await board.start();
    const link = new SerialBarrierLink({ type: 'serial', path: pty.a, heartbeatMs: 20, silenceMs: 150, ackTimeoutMs: 15, reopenMs: 30 });
    const config = parseLaneConfig({ lane: { id: 'S1' }, health: { port: 0 } });
    const metrics = createMetrics({ labels: { lane: 'S1' }, processMetrics: false });
    const lane = await startLane({ config, barrier: link, sources: [], inspect: laneInspector(metrics) });
    const service = await startLaneService(lane, { log: silentLogger, metrics, notifier: new SystemdNotifier({ env: {}, unsetEnvironment: false }) });
    try {
      const url = service.health!.url;
      await until('link up', () => !('barrier-link' in lane.view().faults));
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
      // Damage the line for a while: CRC errors and parser re-alignments are counted by the driver.
      board.setLineFaults('out', { corrupt: 0.3 });
      await new Promise((r) => setTimeout(r, 400));
      board.setLineFaults('out', { corrupt: 0 });
      let text = await (await fetch(`${url}/metrics`)).text();
      expect(sample(text, 'gate_barrier_link_errors_total{error="bad-crc",lane="S1"}')).toBeGreaterThan(0);
      expect(text).toMatch(/^gate_barrier_link_bytes_discarded_total\{lane="S1"\} \d+$/m);
      expect(text).toMatch(/^gate_barrier_link_retransmits_total\{lane="S1"\} \d+$/m);
      // A hung board: the link goes down, readiness says so.
      board.faults.silent = true;
      await until('link down', () => 'barrier-link' in lane.view().faults);
      const r = await fetch(`${url}/readyz`);
      expect(r.status).toBe(503);
      const body = (await r.json()) as { checks: Record<string, { ok: boolean }> };
      expect(body.checks.barrierLink.ok).toBe(false);
      text = await (await fetch(`${url}/metrics`)).text();
      expect(sample(text, 'gate_barrier_link_up{lane="S1"}')).toBe(0);
      expect(sample(text, 'gate_barrier_link_errors_total{error="link-down",lane="S1"}')).toBeGreaterThanOrEqual(1);
    } finally {
      await service.stop();
      await lane.stop();
      board.stop();
      await pty.close();
    }
  });
});
