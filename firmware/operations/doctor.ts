// `gate doctor`: checks this box against what a lane config needs and says exactly what is wrong and
// how to fix it. Every path, command and timeout is injectable so tests can take each thing away in
// turn. Checks never throw: a check that cannot decide fails and says why.

import { spawn } from 'node:child_process';
import { closeSync, constants, existsSync, fsyncSync, openSync, readFileSync, realpathSync, statSync, statfsSync, unlinkSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { basename, dirname, join } from 'node:path';
import type { LaneConfig } from '../config/config.js';

export interface CheckResult {
  name: string;
  ok: boolean;
  /** What was found. */
  detail: string;
  /** Exact advice when not ok. */
  fix?: string;
  /** True when the config does not use this part, so nothing was checked. */
  skipped?: boolean;
}

/** What the config asks of this box, read from the lane config by targetsFromConfig(). */
export interface DoctorTargets {
  serial?: { path: string; baudRate?: number };
  /** PC/SC readers are needed; optional reader-name substring to look for. */
  readers?: { nameContains?: string };
  camera?: { device: string; format?: string; /** ffmpeg input arguments used instead of the device (recorded video). */ input?: string[] };
  /** The ffmpeg the camera driver runs, when the config names one. */
  ffmpeg?: string;
  journalDir?: string;
  backofficeUrl?: string;
  listMaxAgeSeconds: number;
}

/** The box-specific paths and commands, injectable for tests. */
export interface DoctorEnv {
  /** sysfs mount (for /sys/bus/usb-serial/devices/<tty>/latency_timer). */
  sysfsRoot: string;
  ffmpeg: string;
  timedatectl: string;
  chronyc: string;
  /** Present when systemd-timesyncd has synchronised the clock. */
  timesyncFile: string;
  /** pcscd's socket (libpcsclite honours PCSCLITE_CSOCK_NAME). */
  pcscSocket: string;
  /** How long to wait for PC/SC reader announcements. */
  pcscWaitMs: number;
  /** Journal directory must have at least this much free space. */
  minFreeBytes: number;
  /** FTDI latency timer above this (ms) is reported. */
  maxLatencyTimerMs: number;
  timeoutMs: number;
  now: () => number;
  /** The list version and publish time in use; by default built from the config's list driver. */
  lists?: () => Promise<{ version: number; publishedAtMs: number }>;
}

export function defaultDoctorEnv(env: NodeJS.ProcessEnv = process.env): DoctorEnv {
  return {
    sysfsRoot: '/sys',
    ffmpeg: 'ffmpeg',
    timedatectl: 'timedatectl',
    chronyc: 'chronyc',
    timesyncFile: '/run/systemd/timesync/synchronized',
    pcscSocket: env.PCSCLITE_CSOCK_NAME || '/run/pcscd/pcscd.comm',
    pcscWaitMs: 1500,
    minFreeBytes: 200 * 1024 * 1024,
    maxLatencyTimerMs: 1,
    timeoutMs: 10_000,
    now: Date.now,
  };
}

type Section = Record<string, unknown> | undefined;
const str = (s: Section, ...keys: string[]): string | undefined => {
  for (const k of keys) if (typeof s?.[k] === 'string' && s[k]) return s[k] as string;
  return undefined;
};

/**
 * What the config needs. Driver sections are each driver's own; the doctor reads the field names
 * they use for devices (path/port/device, dir/path, url) and skips what the config does not use.
 */
export function targetsFromConfig(config: LaneConfig): DoctorTargets {
  const raw = config as LaneConfig & Record<string, unknown>;
  const t: DoctorTargets = { listMaxAgeSeconds: config.policy.listMaxAgeSeconds };
  const barrier = config.drivers.barrier as Section;
  if (barrier && barrier.type !== 'simulated') {
    const path = str(barrier, 'path', 'port', 'device');
    if (path) t.serial = { path, baudRate: typeof barrier.baudRate === 'number' ? barrier.baudRate : undefined };
  }
  for (const s of config.drivers.sources as Section[]) {
    const type = String(s?.type ?? '');
    if (/pcsc|reader|nfc|card/i.test(type) && !/sim/i.test(type)) t.readers = { nameContains: str(s, 'reader', 'readerName') };
    if (/camera|v4l2|video/i.test(type) && !/sim/i.test(type)) {
      // drivers/qr-camera.ts: device (default /dev/video0), or `input` ffmpeg arguments replacing V4L2.
      const input = Array.isArray(s?.input) && s.input.every((a) => typeof a === 'string') ? (s.input as string[]) : undefined;
      t.camera = { device: str(s, 'device') ?? '/dev/video0', format: str(s, 'format', 'inputFormat'), input };
      t.ffmpeg = str(s, 'ffmpeg');
    }
  }
  const journal = config.journal as Section;
  if (journal && journal.type !== 'memory') {
    const dir = str(journal, 'dir', 'directory');
    const path = str(journal, 'path', 'file');
    t.journalDir = dir ?? (path ? dirname(path) : undefined);
  }
  const lists = config.lists as Section;
  t.backofficeUrl =
    str(raw.backoffice as Section, 'url', 'healthUrl') ??
    str(raw.sync as Section, 'url', 'baseUrl') ??
    str(lists, 'url', 'baseUrl', 'backofficeUrl') ??
    str(journal, 'uploadUrl');
  return t;
}

/** Run a command; never throws. */
function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string; error?: string }> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let done = false;
    const finish = (r: { code: number | null; error?: string }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ...r, stdout, stderr });
    };
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish({ code: null, error: `no answer within ${timeoutMs} ms` });
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child.on('error', (e: NodeJS.ErrnoException) => finish({ code: null, error: e.code === 'ENOENT' ? `${cmd}: command not found` : e.message }));
    child.on('close', (code) => finish({ code }));
  });
}

const skipped = (name: string, detail: string): CheckResult => ({ name, ok: true, skipped: true, detail });
const errno = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

// ---------------------------------------------------------------------------------------------------

export async function checkSerialPort(t: DoctorTargets): Promise<CheckResult> {
  const name = 'serial-port';
  if (!t.serial) return skipped(name, 'barrier link is simulated in this config');
  const { path } = t.serial;
  const where = 'drivers.barrier.path';
  let real: string;
  try {
    real = realpathSync(path);
    if (!statSync(real).isCharacterDevice()) {
      return { name, ok: false, detail: `${path} is not a character device`, fix: `Point ${where} at the barrier board's serial device (see ls -l /dev/serial/by-id/).` };
    }
  } catch {
    return {
      name,
      ok: false,
      detail: `${path} does not exist`,
      fix: `Check the barrier board's cable and USB adapter; list ports with "ls -l /dev/serial/by-id/ /dev/ttyS* /dev/ttyUSB*" and set ${where} (a /dev/serial/by-id/ path survives re-plugging).`,
    };
  }
  // Open it the way the barrier driver does (serialport takes an exclusive lock), so a port held by a
  // running gate service or a terminal program is reported as such.
  try {
    const { SerialPort } = await import('serialport');
    const port = new SerialPort({ path: real, baudRate: t.serial.baudRate ?? 115200, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((e) => (e ? reject(e) : resolve())));
    await new Promise<void>((resolve) => port.close(() => resolve()));
    return { name, ok: true, detail: `${path}${real !== path ? ` (${real})` : ''} opened and closed` };
  } catch (e) {
    const msg = (e as Error).message;
    if (/Cannot find module|bindings|\.node/i.test(msg) && !/Permission|lock/i.test(msg)) {
      return { name, ok: false, detail: `serialport native addon not loadable: ${msg}`, fix: 'Install the bundle built for this CPU (gate pack on an arm64 box), or on the box: npm rebuild @serialport/bindings-cpp.' };
    }
    if (/Permission denied|EACCES/i.test(msg)) {
      return { name, ok: false, detail: `${path}: permission denied`, fix: `Add the service user to the port's group: usermod -aG dialout gate (the unit already has SupplementaryGroups=dialout); check with ls -l ${real}.` };
    }
    if (/lock|Resource temporarily unavailable|busy/i.test(msg)) {
      return { name, ok: false, detail: `${path} is in use by another process: ${msg}`, fix: `Stop what holds it (systemctl stop gate; fuser -v ${real}) and run gate doctor again.` };
    }
    return { name, ok: false, detail: `${path} could not be opened: ${msg}`, fix: `Check the device with "stty -F ${real}" and dmesg for USB-serial errors.` };
  }
}

export function checkLatencyTimer(t: DoctorTargets, env: DoctorEnv): CheckResult {
  const name = 'serial-latency-timer';
  if (!t.serial) return skipped(name, 'barrier link is simulated in this config');
  let tty: string;
  try {
    tty = basename(realpathSync(t.serial.path));
  } catch {
    return skipped(name, `${t.serial.path} is missing (see serial-port)`);
  }
  const file = join(env.sysfsRoot, 'bus/usb-serial/devices', tty, 'latency_timer');
  if (!existsSync(file)) return skipped(name, `${tty} is not a USB-serial adapter with a latency timer`);
  let ms: number;
  try {
    ms = Number(readFileSync(file, 'utf8').trim());
  } catch (e) {
    return { name, ok: false, detail: `cannot read ${file}: ${errno(e)}`, fix: 'Run gate doctor as root or as the gate user.' };
  }
  if (ms <= env.maxLatencyTimerMs) return { name, ok: true, detail: `${tty} latency timer ${ms} ms` };
  return {
    name,
    ok: false,
    detail: `${tty} latency timer is ${ms} ms: barrier frames arrive up to ${ms} ms late`,
    fix: `Now: echo 1 > ${file}. For good: install deploy/99-gate-serial.rules to /etc/udev/rules.d/ (install.sh does), then udevadm control --reload && udevadm trigger.`,
  };
}

function socketAnswers(path: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = connect(path);
    const t = setTimeout(() => {
      s.destroy();
      resolve(`no answer within ${timeoutMs} ms`);
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve(undefined);
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve(e.code ?? e.message);
    });
  });
}

/** Lists PC/SC readers in a child process: the addon can block or crash when pcscd misbehaves. */
const PCSC_PROBE = `
const pcsclite = require(process.argv[1])();
const readers = [];
pcsclite.on('reader', (r) => { readers.push(r.name); r.on('error', () => {}); });
pcsclite.on('error', (e) => { console.log(JSON.stringify({ error: e.message })); process.exit(0); });
setTimeout(() => { console.log(JSON.stringify({ readers })); process.exit(0); }, Number(process.argv[2]));
`;

export async function checkPcsc(t: DoctorTargets, env: DoctorEnv): Promise<CheckResult[]> {
  if (!t.readers) return [skipped('pcscd', 'no card reader in this config'), skipped('card-readers', 'no card reader in this config')];
  const sock = env.pcscSocket;
  const down = await (existsSync(sock) ? socketAnswers(sock, 2000) : Promise.resolve('no socket'));
  if (down) {
    return [
      {
        name: 'pcscd',
        ok: false,
        detail: `pcscd is not running (${sock}: ${down})`,
        fix: 'apt-get install -y pcscd && systemctl enable --now pcscd.socket',
      },
      { name: 'card-readers', ok: false, detail: 'not checked: pcscd is not running', fix: 'Fix pcscd first.' },
    ];
  }
  const pcscd: CheckResult = { name: 'pcscd', ok: true, detail: `pcscd answers on ${sock}` };
  let addon: string;
  try {
    addon = createRequire(import.meta.url).resolve('@pokusew/pcsclite');
  } catch {
    return [
      pcscd,
      {
        name: 'card-readers',
        ok: false,
        detail: 'the PC/SC addon @pokusew/pcsclite is not installed',
        fix: 'Install the bundle built for this CPU, or on the box: apt-get install -y libpcsclite-dev build-essential python3 && npm rebuild @pokusew/pcsclite.',
      },
    ];
  }
  const r = await runNodeScript(PCSC_PROBE, [addon, String(env.pcscWaitMs)], { PCSCLITE_CSOCK_NAME: sock }, env.pcscWaitMs + 5000);
  let answer: { readers?: string[]; error?: string } = {};
  try {
    answer = JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
  } catch {
    answer = { error: r.error ?? (r.stderr.trim().split('\n').pop() || `probe exited with ${r.code}`) };
  }
  if (answer.error) {
    const fix = /Cannot find module|\.node|invalid ELF|NODE_MODULE_VERSION/.test(answer.error)
      ? 'The PC/SC addon was built for another CPU or Node version: npm rebuild @pokusew/pcsclite on this box (needs libpcsclite-dev build-essential python3).'
      : 'Check pcscd: systemctl status pcscd; journalctl -u pcscd; pcsc_scan (apt-get install pcsc-tools).';
    return [pcscd, { name: 'card-readers', ok: false, detail: `PC/SC error: ${answer.error}`, fix }];
  }
  const readers = answer.readers ?? [];
  const want = t.readers.nameContains;
  const match = want ? readers.filter((n) => n.toLowerCase().includes(want.toLowerCase())) : readers;
  if (match.length > 0) return [pcscd, { name: 'card-readers', ok: true, detail: `readers: ${match.join('; ')}` }];
  return [
    pcscd,
    {
      name: 'card-readers',
      ok: false,
      detail: readers.length === 0 ? 'pcscd sees no reader' : `no reader matching "${want}"; pcscd sees: ${readers.join('; ')}`,
      fix:
        readers.length === 0
          ? 'Plug in the card reader (lsusb should list it); if it is listed, install its driver (apt-get install -y libccid) and restart pcscd; pcsc_scan shows what pcscd sees.'
          : 'Set the reader name in the card reader source of the config to one of the names above.',
    },
  ];
}

function runNodeScript(script: string, args: string[], extraEnv: Record<string, string>, timeoutMs: number) {
  return new Promise<{ code: number | null; stdout: string; stderr: string; error?: string }>((resolve) => {
    const child = spawn(process.execPath, ['-e', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...extraEnv } });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ code: null, stdout, stderr, error: `PC/SC probe did not answer within ${timeoutMs} ms` });
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export async function checkFfmpeg(env: DoctorEnv): Promise<CheckResult> {
  const r = await run(env.ffmpeg, ['-hide_banner', '-version'], env.timeoutMs);
  if (r.code === 0) return { name: 'ffmpeg', ok: true, detail: r.stdout.split('\n')[0] };
  return { name: 'ffmpeg', ok: false, detail: r.error ?? `ffmpeg -version exited with ${r.code}`, fix: 'apt-get install -y ffmpeg' };
}

export async function checkCamera(t: DoctorTargets, env: DoctorEnv, ffmpegOk: boolean): Promise<CheckResult> {
  const name = 'camera';
  if (!t.camera) return skipped(name, 'no QR camera in this config');
  const { device, input } = t.camera;
  if (!input && !existsSync(device)) {
    return {
      name,
      ok: false,
      detail: `${device} does not exist`,
      fix: `Check the camera cable; list cameras with "v4l2-ctl --list-devices" (apt-get install v4l-utils) and set the camera source's device in the config (a /dev/v4l/by-id/ path survives re-plugging).`,
    };
  }
  if (!ffmpegOk) return { name, ok: false, detail: `${device} exists; frames not checked: ffmpeg is missing`, fix: 'apt-get install -y ffmpeg' };
  const format = t.camera.format ?? (device.startsWith('/dev/') ? 'v4l2' : undefined);
  const source = input ?? [...(format ? ['-f', format] : []), '-i', device];
  const args = ['-hide_banner', '-nostdin', '-loglevel', 'error', ...source, '-frames:v', '1', '-f', 'null', '-'];
  const r = await run(env.ffmpeg, args, env.timeoutMs);
  if (r.code === 0) return { name, ok: true, detail: `${device} delivered a frame` };
  const said = (r.error ?? r.stderr.trim().split('\n').slice(-2).join(' ')) || `exit ${r.code}`;
  const fix = /Permission denied/i.test(said)
    ? `Add the service user to the video group: usermod -aG video gate (the unit already has SupplementaryGroups=video).`
    : /busy/i.test(said)
      ? `Another program holds the camera: fuser -v ${device}; stop it (systemctl stop gate) and try again.`
      : `The camera is present but delivered no frame: check its USB power and cable, try "ffmpeg -f v4l2 -list_formats all -i ${device}", and set a supported format in the config.`;
  return { name, ok: false, detail: `${device} delivered no frame: ${said}`, fix };
}

export function checkJournalDir(t: DoctorTargets, env: DoctorEnv): CheckResult {
  const name = 'journal-dir';
  if (!t.journalDir) return skipped(name, 'journal is in memory in this config');
  const dir = t.journalDir;
  if (!existsSync(dir)) {
    return { name, ok: false, detail: `${dir} does not exist`, fix: `mkdir -p ${dir} && chown gate:gate ${dir} && chmod 750 ${dir} (install.sh does this).` };
  }
  const probe = join(dir, `.doctor-${process.pid}`);
  try {
    const fd = openSync(probe, constants.O_CREAT | constants.O_WRONLY | constants.O_TRUNC, 0o600);
    try {
      writeSync(fd, 'gate doctor write test\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
      unlinkSync(probe);
    }
  } catch (e) {
    const code = errno(e);
    const fix =
      code === 'EROFS'
        ? `${dir} is on a read-only file system: keep it under /var/lib/gate (the unit's ReadWritePaths) on a writable partition.`
        : code === 'ENOSPC'
          ? `The disk is full: free space on the partition of ${dir}.`
          : `chown -R gate:gate ${dir} && chmod 750 ${dir}`;
    return { name, ok: false, detail: `${dir} is not writable: ${code}`, fix };
  }
  const fs = statfsSync(dir);
  const free = Number(fs.bavail) * Number(fs.bsize);
  const mb = (n: number) => `${Math.floor(n / (1024 * 1024))} MB`;
  if (free < env.minFreeBytes) {
    return {
      name,
      ok: false,
      detail: `${dir} is writable but only ${mb(free)} free (need ${mb(env.minFreeBytes)})`,
      fix: `Free space on the partition of ${dir} (journalctl --vacuum-size=100M; check that the journal uploads: backlog in /metrics).`,
    };
  }
  return { name, ok: true, detail: `${dir} writable (fsync ok), ${mb(free)} free` };
}

export async function checkClock(env: DoctorEnv): Promise<CheckResult> {
  const name = 'clock';
  const fix =
    'Enable time sync: apt-get install -y systemd-timesyncd && timedatectl set-ntp true (set the station NTP server in /etc/systemd/timesyncd.conf), or use chrony.';
  const t = await run(env.timedatectl, ['show', '-p', 'NTPSynchronized', '--value'], env.timeoutMs);
  const v = t.stdout.trim();
  if (t.code === 0 && v === 'yes') return { name, ok: true, detail: 'synchronised (timedatectl: NTPSynchronized=yes)' };
  if (t.code === 0 && v === 'no') return { name, ok: false, detail: 'not synchronised (timedatectl: NTPSynchronized=no)', fix };
  if (existsSync(env.timesyncFile)) return { name, ok: true, detail: `synchronised (${env.timesyncFile} present)` };
  const c = await run(env.chronyc, ['-n', 'tracking'], env.timeoutMs);
  if (c.code === 0) {
    const leap = /Leap status\s*:\s*(.+)/.exec(c.stdout)?.[1]?.trim();
    if (leap === 'Normal') return { name, ok: true, detail: 'synchronised (chronyc: leap status Normal)' };
    return { name, ok: false, detail: `not synchronised (chronyc: leap status ${leap ?? 'unknown'})`, fix: 'Check chrony sources: chronyc sources -v.' };
  }
  const why = t.error ?? (t.stderr.trim() || `exit ${t.code}`);
  return {
    name,
    ok: false,
    detail: `UNKNOWN: cannot tell whether the clock is synchronised (timedatectl: ${why}; no ${env.timesyncFile}; chronyc: ${c.error ?? `exit ${c.code}`})`,
    fix,
  };
}

export async function checkBackoffice(t: DoctorTargets, env: DoctorEnv): Promise<CheckResult> {
  const name = 'backoffice';
  if (!t.backofficeUrl) return skipped(name, 'no back office URL in this config');
  const url = t.backofficeUrl;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(env.timeoutMs), redirect: 'manual' });
    await res.body?.cancel();
    if (res.status < 400) return { name, ok: true, detail: `${url} answered HTTP ${res.status}` };
    return { name, ok: false, detail: `${url} answered HTTP ${res.status}`, fix: 'The back office is reachable but refused: check the URL path and the box credentials in the config.' };
  } catch (e) {
    const cause = (e as { cause?: NodeJS.ErrnoException }).cause;
    const code = cause?.code ?? (e as Error).name;
    const fix =
      code === 'ENOTFOUND' || code === 'EAI_AGAIN'
        ? `The name does not resolve: check /etc/resolv.conf, or use the back office's IP address in the config.`
        : code === 'TimeoutError'
          ? `No answer within ${env.timeoutMs} ms: check the station network, firewall and route to the back office.`
          : `Nothing answers at ${url}: check the network cable, firewall and the back office URL in the config (curl -v ${url}).`;
    return { name, ok: false, detail: `${url} unreachable: ${code}${cause?.message ? ` (${cause.message})` : ''}`, fix };
  }
}

export async function checkLists(t: DoctorTargets, env: DoctorEnv): Promise<CheckResult> {
  const name = 'lists';
  if (!env.lists) return skipped(name, 'no list store to read');
  try {
    const s = await env.lists();
    if (s.version === 0) return { name, ok: false, detail: 'no list synced yet (version 0)', fix: 'Make the back office reachable (see backoffice) and let the lane sync; the journal of the service shows sync failures (journalctl -u gate).' };
    const age = Math.round((env.now() - s.publishedAtMs) / 1000);
    if (age <= t.listMaxAgeSeconds) return { name, ok: true, detail: `version ${s.version}, ${age} s old (limit ${t.listMaxAgeSeconds} s)` };
    return {
      name,
      ok: false,
      detail: `version ${s.version} is ${age} s old, over the ${t.listMaxAgeSeconds} s limit (policy.listMaxAgeSeconds)`,
      fix: 'The lane is not syncing: check backoffice above and sync failures (gate_sync_failures_total on /metrics, journalctl -u gate).',
    };
  } catch (e) {
    return { name, ok: false, detail: `cannot read the list store: ${(e as Error).message}`, fix: 'Check the lists section of the config and that /var/lib/gate/lists is readable by the gate user.' };
  }
}

/** Every check, in the order a technician would fix things. */
export async function runDoctor(t: DoctorTargets, env: DoctorEnv): Promise<{ ok: boolean; checks: CheckResult[] }> {
  if (t.ffmpeg) env = { ...env, ffmpeg: t.ffmpeg };
  const [serial, pcsc, ffmpeg, clock, backoffice] = await Promise.all([
    checkSerialPort(t),
    checkPcsc(t, env),
    checkFfmpeg(env),
    checkClock(env),
    checkBackoffice(t, env),
  ]);
  const checks: CheckResult[] = [
    serial,
    checkLatencyTimer(t, env),
    ...pcsc,
    // ffmpeg matters only for a camera; its absence is still reported, it costs nothing.
    ffmpeg,
    await checkCamera(t, env, ffmpeg.ok),
    checkJournalDir(t, env),
    clock,
    backoffice,
    await checkLists(t, env),
  ];
  // Tools print multi-line errors; one line per check reads better and greps well.
  for (const c of checks) c.detail = c.detail.replace(/\s*\n\s*/g, ' ');
  return { ok: checks.every((c) => c.ok), checks };
}

/** The human report: one line per check, advice under each failure. */
export function formatDoctor(r: { ok: boolean; checks: CheckResult[] }): string {
  const w = Math.max(...r.checks.map((c) => c.name.length));
  const lines = r.checks.map((c) => {
    const mark = c.skipped ? '-' : c.ok ? 'ok' : 'FAIL';
    const head = `${mark.padEnd(4)} ${c.name.padEnd(w)}  ${c.detail}`;
    return c.ok ? head : `${head}\n     ${' '.repeat(w)}  fix: ${c.fix ?? '(none known)'}`;
  });
  const failed = r.checks.filter((c) => !c.ok).length;
  lines.push(r.ok ? 'all checks passed' : `${failed} check${failed === 1 ? '' : 's'} failed`);
  return lines.join('\n');
}
