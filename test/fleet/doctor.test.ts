// `gate doctor` against a box with everything present (a socat pty as the serial port, a private pcscd
// with vpcd readers, a generated video file as the camera, a temp journal directory, a local HTTP back
// office), then with each thing missing in turn: the right check fails with the right advice.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Command } from 'commander';
import { SerialPort } from 'serialport';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { register } from '../../firmware/cli/doctor.js';
import { defaultDoctorEnv, formatDoctor, runDoctor, type CheckResult, type DoctorEnv, type DoctorTargets } from '../../firmware/operations/doctor.js';

function need(cmd: string, args: string[], pkg: string): void {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  if (r.error || r.status !== 0) throw new Error(`this test needs ${cmd}: apt-get install -y ${pkg}`);
}
const VPCD = '/usr/lib/pcsc/drivers/serial/libifdvpcd.so';

let dir: string;
const procs: ChildProcess[] = [];
let backoffice: Server;
let backofficeUrl: string;
let serialPath: string;
let cameraFile: string;
let pcscSocket: string;
let emptyPcscSocket: string;

async function waitFor(path: string, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!existsSync(path)) {
    if (Date.now() > until) throw new Error(`${what} did not appear at ${path}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A private pcscd: its own reader.conf.d and, in its own mount namespace, its own /run/pcscd. */
async function privatePcscd(name: string, readers: boolean): Promise<string> {
  const base = join(dir, name);
  mkdirSync(join(base, 'conf'), { recursive: true });
  mkdirSync(join(base, 'run'), { recursive: true });
  if (readers) {
    const port = 0x9000 + Math.floor(Math.random() * 0x1000);
    writeFileSync(join(base, 'conf/vpcd'), `FRIENDLYNAME "Doctor Test PCD"\nDEVICENAME /dev/null:0x${port.toString(16)}\nLIBPATH ${VPCD}\nCHANNELID 0x${port.toString(16)}\n`);
  }
  // pcscd's socket path is compiled in; libpcsclite clients honour PCSCLITE_CSOCK_NAME. A fresh box has
  // no /run/pcscd until pcscd's own unit first runs: make the mount point (CI went red on exactly that
  // when this file ran before any test that had created it).
  const p = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `mkdir -p /run/pcscd && mount --bind ${join(base, 'run')} /run/pcscd && exec pcscd -f -c ${join(base, 'conf')}`], { stdio: 'ignore' });
  procs.push(p);
  const sock = join(base, 'run/pcscd.comm');
  await waitFor(sock, `private pcscd (${name}) socket; pcscd needs root and unshare (util-linux)`);
  return sock;
}

beforeAll(async () => {
  need('socat', ['-V'], 'socat');
  need('ffmpeg', ['-version'], 'ffmpeg');
  need('pcscd', ['--version'], 'pcscd');
  if (!existsSync(VPCD)) throw new Error('this test needs the vpcd driver: apt-get install -y vsmartcard-vpcd');
  dir = mkdtempSync(join(tmpdir(), 'gate-doctor-'));

  const socat = spawn('socat', [`pty,raw,echo=0,link=${join(dir, 'ttyGATE')}`, `pty,raw,echo=0,link=${join(dir, 'ttyMCU')}`], { stdio: 'ignore' });
  procs.push(socat);
  serialPath = join(dir, 'ttyGATE');
  await waitFor(serialPath, 'socat pty');

  cameraFile = join(dir, 'camera.mkv');
  const ff = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=5', '-t', '1', cameraFile]);
  if (ff.status !== 0) throw new Error(`ffmpeg could not make the camera stand-in: ${ff.stderr}`);

  [pcscSocket, emptyPcscSocket] = await Promise.all([privatePcscd('pcscd-readers', true), privatePcscd('pcscd-empty', false)]);

  backoffice = createServer((req, res) => {
    res.writeHead(req.url === '/down' ? 503 : 200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  });
  await new Promise<void>((r) => backoffice.listen(0, '127.0.0.1', r));
  backofficeUrl = `http://127.0.0.1:${(backoffice.address() as AddressInfo).port}/health`;

  mkdirSync(join(dir, 'journal'));
  writeFileSync(join(dir, 'timesync-synchronized'), '');
  const latency = join(dir, 'sys/bus/usb-serial/devices', basename(realpathSync(serialPath)));
  mkdirSync(latency, { recursive: true });
  writeFileSync(join(latency, 'latency_timer'), '1\n');
}, 30_000);

afterAll(async () => {
  for (const p of procs) if (p.exitCode === null) p.kill();
  await new Promise<void>((r) => (backoffice ? backoffice.close(() => r()) : r()));
  // Give pcscd time to leave its namespace before the directories go.
  await new Promise((r) => setTimeout(r, 200));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function box(): { t: DoctorTargets; env: DoctorEnv } {
  return {
    t: {
      serial: { path: serialPath },
      readers: {},
      camera: { device: cameraFile },
      journalDir: join(dir, 'journal'),
      backofficeUrl,
      listMaxAgeSeconds: 3600,
    },
    env: {
      ...defaultDoctorEnv({}),
      sysfsRoot: join(dir, 'sys'),
      timedatectl: join(dir, 'no-such-timedatectl'),
      chronyc: join(dir, 'no-such-chronyc'),
      timesyncFile: join(dir, 'timesync-synchronized'),
      pcscSocket,
      pcscWaitMs: 300,
      minFreeBytes: 1024 * 1024,
      timeoutMs: 5000,
      lists: async () => ({ version: 7, publishedAtMs: Date.now() - 60_000 }),
    },
  };
}

/** Run the doctor and return the failing checks (all others must pass). */
async function failing(t: DoctorTargets, env: DoctorEnv): Promise<CheckResult[]> {
  const r = await runDoctor(t, env);
  const bad = r.checks.filter((c) => !c.ok);
  expect(r.ok).toBe(bad.length === 0);
  return bad;
}
const names = (cs: CheckResult[]) => cs.map((c) => c.name);

describe("gate doctor", { timeout: 60_000 }, () => {
  it('passes every check on a box with everything present', async () => {
    const { t, env } = box();
    const r = await runDoctor(t, env);
    expect(r.checks.filter((c) => !c.ok), formatDoctor(r)).toEqual([]);
    expect(r.ok).toBe(true);
    expect(names(r.checks)).toEqual(['serial-port', 'serial-latency-timer', 'pcscd', 'card-readers', 'ffmpeg', 'camera', 'journal-dir', 'clock', 'backoffice', 'lists']);
    expect(r.checks.filter((c) => c.skipped)).toEqual([]);
    const by = Object.fromEntries(r.checks.map((c) => [c.name, c]));
    expect(by['card-readers'].detail).toContain('Doctor Test PCD');
    expect(by['serial-latency-timer'].detail).toContain('1 ms');
    expect(by.camera.detail).toContain('delivered a frame');
    expect(by.clock.detail).toContain('synchronised');
  });

  it('serial port held by another process (the running service)', async () => {
    const { t, env } = box();
    const holder = new SerialPort({ path: realpathSync(serialPath), baudRate: 115200, autoOpen: false });
    await new Promise<void>((res, rej) => holder.open((e) => (e ? rej(e) : res())));
    try {
      const bad = await failing(t, env);
      expect(names(bad)).toEqual(['serial-port']);
      expect(bad[0].detail).toContain('in use');
      expect(bad[0].fix).toContain('systemctl stop gate');
    } finally {
      await new Promise<void>((res) => holder.close(() => res()));
    }
  });

  it('serial port missing', async () => {
    const { t, env } = box();
    t.serial = { path: join(dir, 'ttyUSB9') };
    const [bad, ...rest] = await failing(t, env);
    expect(rest).toEqual([]);
    expect(bad.name).toBe('serial-port');
    expect(bad.detail).toContain('does not exist');
    expect(bad.fix).toContain('/dev/serial/by-id/');
  });

  it('serial port is not a device', async () => {
    const { t, env } = box();
    t.serial = { path: cameraFile };
    const bad = await failing(t, env);
    expect(names(bad)).toEqual(['serial-port']);
    expect(bad[0].detail).toContain('not a character device');
  });

  it('FTDI latency timer left at 16 ms', async () => {
    const { t, env } = box();
    const sys = join(dir, 'sys16');
    const d = join(sys, 'bus/usb-serial/devices', basename(realpathSync(serialPath)));
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'latency_timer'), '16\n');
    env.sysfsRoot = sys;
    const bad = await failing(t, env);
    expect(names(bad)).toEqual(['serial-latency-timer']);
    expect(bad[0].detail).toContain('16 ms');
    expect(bad[0].fix).toContain(`echo 1 > ${join(d, 'latency_timer')}`);
    expect(bad[0].fix).toContain('99-gate-serial.rules');
  });

  it('pcscd not running', async () => {
    const { t, env } = box();
    env.pcscSocket = join(dir, 'no-pcscd/pcscd.comm');
    const bad = await failing(t, env);
    expect(names(bad)).toEqual(['pcscd', 'card-readers']);
    expect(bad[0].fix).toBe('apt-get install -y pcscd && systemctl enable --now pcscd.socket');
  });

  it('pcscd running but no reader plugged in', async () => {
    const { t, env } = box();
    env.pcscSocket = emptyPcscSocket;
    const bad = await failing(t, env);
    expect(names(bad)).toEqual(['card-readers']);
    expect(bad[0].detail).toBe('pcscd sees no reader');
    expect(bad[0].fix).toContain('Plug in the card reader');
  });

  it('the configured reader is not among those pcscd sees', async () => {
    const { t, env } = box();
    t.readers = { nameContains: 'ACS ACR1252' };
    const bad = await failing(t, env);
    expect(names(bad)).toEqual(['card-readers']);
    expect(bad[0].detail).toContain('Doctor Test PCD');
  });

  it('ffmpeg missing', async () => {
    const { t, env } = box();
    env.ffmpeg = join(dir, 'no-such-ffmpeg');
    const bad = await failing(t, env);
    expect(names(bad)).toEqual(['ffmpeg', 'camera']);
    expect(bad[0].fix).toBe('apt-get install -y ffmpeg');
    expect(bad[1].detail).toContain('ffmpeg is missing');
  });

  it('camera device missing', async () => {
    const { t, env } = box();
    t.camera = { device: join(dir, 'video7') };
    const bad = await failing(t, env);
    expect(names(bad)).toEqual(['camera']);
    expect(bad[0].fix).toContain('v4l2-ctl --list-devices');
  });

  it('camera present but delivering no frames', async () => {
    const { t, env } = box();
    const dead = join(dir, 'dead-camera.mkv');
    writeFileSync(dead, Buffer.alloc(4096, 0));
    t.camera = { device: dead };
    const bad = await failing(t, env);
    expect(names(bad)).toEqual(['camera']);
    expect(bad[0].detail).toContain('delivered no frame');
    expect(bad[0].fix).toContain('-list_formats all');
  });

  it('journal directory missing, or short of space', async () => {
    const { t, env } = box();
    t.journalDir = join(dir, 'no-journal');
    let bad = await failing(t, env);
    expect(names(bad)).toEqual(['journal-dir']);
    expect(bad[0].fix).toBe(`mkdir -p ${t.journalDir} && chown gate:gate ${t.journalDir} && chmod 750 ${t.journalDir} (install.sh does this).`);

    const b = box();
    b.env.minFreeBytes = Number.MAX_SAFE_INTEGER;
    bad = await failing(b.t, b.env);
    expect(names(bad)).toEqual(['journal-dir']);
    expect(bad[0].detail).toMatch(/writable but only \d+ MB free/);
  });

  it('clock not synchronised, and clock state unknown', async () => {
    const { t, env } = box();
    const fake = join(dir, 'timedatectl-no');
    writeFileSync(fake, '#!/bin/sh\necho no\n');
    chmodSync(fake, 0o755);
    env.timedatectl = fake;
    let bad = await failing(t, env);
    expect(names(bad)).toEqual(['clock']);
    expect(bad[0].detail).toContain('NTPSynchronized=no');
    expect(bad[0].fix).toContain('timedatectl set-ntp true');

    const b = box();
    b.env.timesyncFile = join(dir, 'no-timesync');
    bad = await failing(b.t, b.env);
    expect(names(bad)).toEqual(['clock']);
    expect(bad[0].detail).toMatch(/^UNKNOWN: cannot tell whether the clock is synchronised/);
  });

  it('back office unreachable, or refusing', async () => {
    const { t, env } = box();
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    t.backofficeUrl = `http://127.0.0.1:${port}/health`;
    let bad = await failing(t, env);
    expect(names(bad)).toEqual(['backoffice']);
    expect(bad[0].detail).toContain('ECONNREFUSED');
    expect(bad[0].fix).toContain('Nothing answers');

    const b = box();
    b.t.backofficeUrl = backofficeUrl.replace('/health', '/down');
    bad = await failing(b.t, b.env);
    expect(names(bad)).toEqual(['backoffice']);
    expect(bad[0].detail).toContain('HTTP 503');
  });

  it('lists stale, or never synced', async () => {
    const { t, env } = box();
    env.lists = async () => ({ version: 7, publishedAtMs: Date.now() - 7200_000 });
    let bad = await failing(t, env);
    expect(names(bad)).toEqual(['lists']);
    expect(bad[0].detail).toMatch(/version 7 is 720\d s old, over the 3600 s limit/);

    env.lists = async () => ({ version: 0, publishedAtMs: 0 });
    bad = await failing(t, env);
    expect(names(bad)).toEqual(['lists']);
    expect(bad[0].detail).toContain('no list synced yet');
  });

  it('gate doctor --json reads the lane config and exits 0 only when all pass', async () => {
    const journal = join(dir, 'journal');
    const config = {
      lane: { id: 'L3' },
      drivers: {
        barrier: { type: 'serial', path: serialPath },
        sources: [
          { type: 'pcsc', side: 'entry' },
          { type: 'camera', side: 'entry', device: cameraFile },
        ],
      },
      journal: { type: 'file', dir: journal },
      backoffice: { url: backofficeUrl },
    };
    const file = join(dir, 'lane.json');
    writeFileSync(file, JSON.stringify(config));
    const out: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((s: string) => void out.push(s));
    const saved = { ...process.env };
    try {
      process.env.PCSCLITE_CSOCK_NAME = pcscSocket;
      const cli = async (...args: string[]) => {
        out.length = 0;
        process.exitCode = undefined;
        const program = new Command().exitOverride();
        register(program);
        await program.parseAsync(['node', 'gate', 'doctor', '--config', file, '--json', '--no-exit', '--min-free-mb', '1', ...args]);
        return { code: process.exitCode, json: JSON.parse(out.join('\n')) };
      };
      // This machine's clock state is whatever CI has; the clock check is covered above.
      const ok = await cli();
      const notClock = ok.json.checks.filter((c: CheckResult) => c.name !== 'clock');
      expect(notClock.filter((c: CheckResult) => !c.ok)).toEqual([]);
      expect(notClock.map((c: CheckResult) => c.name)).toContain('lists');
      const clock = ok.json.checks.find((c: CheckResult) => c.name === 'clock');
      expect(ok.code).toBe(clock.ok ? 0 : 1);

      const bad = await cli('--serial', join(dir, 'ttyUSB9'));
      expect(bad.code).toBe(1);
      expect(bad.json.ok).toBe(false);
      expect(bad.json.checks.find((c: CheckResult) => c.name === 'serial-port').ok).toBe(false);

      const noConfig = await cli('--config', join(dir, 'missing.json'));
      expect(noConfig.code).toBe(1);
      expect(noConfig.json.checks[0]).toMatchObject({ name: 'config', ok: false });
    } finally {
      process.env = saved;
      process.exitCode = undefined;
      log.mockRestore();
    }
  });
});
