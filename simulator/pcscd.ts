// A private pcscd with vsmartcard vpcd readers, for tests, the bench and `gate sim --reader pcsc`.
// Never the machine's own pcscd:
//
// - pcscd 1.9 hard-codes its socket and pid file in /run/pcscd, so it runs in a private mount namespace
//   (`unshare -m`, or `unshare -rm` when not root) with a temporary directory bind-mounted over
//   /run/pcscd. Clients reach it through PCSCLITE_CSOCK_NAME=<dir>/pcscd.comm (libpcsclite reads it).
// - `-c <dir>` points pcscd at our own reader.conf.d with one vpcd entry: vpcd opens two reader slots,
//   listening on TCP ports P and P+1 (see /etc/reader.conf.d/vpcd from the vsmartcard-vpcd package, which
//   uses 0x8C7B = 35963). Only ONE vpcd entry per pcscd: vpcd keeps its slot state in a table indexed by
//   slot number only, so a second entry shares (and fights over) the first one's sockets.
// - pcscd polls card presence every 400 ms (vpcd has no event thread): a tap takes 0-400 ms to be seen
//   and another poll to be seen leaving. Tests that tap a lot use both slots.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { endianness, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PCSCD_VERSION_ANSWER_BYTES, pcscdVersionQuestion } from '../protocol/pcsc-daemon.js';

const running = new Set<string>();

export const VPCD_DRIVER = '/usr/lib/pcsc/drivers/serial/libifdvpcd.so';

export interface VirtualReader {
  /** The PC/SC reader name pcscd gives the slot, e.g. "Gate Reader A 00 00". */
  name: string;
  /** TCP port a virtual card connects to, to be "in the field" of this reader. */
  port: number;
}

export interface PrivatePcscd {
  dir: string;
  /** The value for PCSCLITE_CSOCK_NAME (set it in process.env before the first PC/SC call). */
  socket: string;
  readers: VirtualReader[];
  /** Kill pcscd (a reader-side outage); the readers vanish for every client. */
  kill(): Promise<void>;
  /** Start pcscd again on the same socket and ports. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  readonly log: string;
}

/** Fail loudly (never skip) when the system tools are missing, saying what to install. */
export function requirePcscTools(): void {
  const missing: string[] = [];
  if (spawnSync('pcscd', ['--version']).error) missing.push('pcscd (apt-get install pcscd)');
  if (!existsSync(VPCD_DRIVER)) missing.push(`${VPCD_DRIVER} (apt-get install vsmartcard-vpcd)`);
  if (spawnSync('unshare', ['--version']).error) missing.push('unshare (apt-get install util-linux)');
  if (missing.length) throw new Error(`PC/SC tests need: ${missing.join(', ')}. Also: apt-get install libpcsclite-dev, then npm rebuild @pokusew/pcsclite.`);
}

/** Two consecutive free TCP ports (vpcd listens on P and P+1). */
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const p = await listenFree(0);
    if (p === undefined || p >= 65535) continue;
    if ((await listenFree(p + 1)) !== undefined) return p;
  }
  throw new Error('no pair of free TCP ports for vpcd');
}

function listenFree(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(undefined));
    s.listen(port, '127.0.0.1', () => {
      const a = s.address();
      const p = typeof a === 'object' && a ? a.port : undefined;
      s.close(() => resolve(p));
    });
  });
}

/** Start a private pcscd with one vpcd entry (two readers). */
export async function startPcscd(opts: { namePrefix?: string } = {}): Promise<PrivatePcscd> {
  requirePcscTools();
  const pairs = 1;
  const dir = mkdtempSync(join(tmpdir(), 'pcscd-'));
  const confDir = join(dir, 'reader.conf.d');
  // libpcsclite reads PCSCLITE_CSOCK_NAME once per process and keeps it: every pcscd this process
  // starts (one after another, e.g. test files sharing a worker) must use the same socket path.
  const runDir = join(tmpdir(), `pcscd-run-${process.pid}`);
  if (running.has(runDir)) throw new Error('startPcscd: one private pcscd per process at a time (libpcsclite keeps one socket path)');
  mkdirSync(confDir);
  mkdirSync(runDir, { recursive: true });
  running.add(runDir);
  const readers: VirtualReader[] = [];
  const letters = 'ABCDEFGHIJKLMNOP';
  for (let i = 0; i < pairs; i++) {
    const port = await freePortPair();
    const friendly = `${opts.namePrefix ?? 'Gate Reader'} ${letters[i]}`;
    writeFileSync(
      join(confDir, `vpcd-${i}`),
      `FRIENDLYNAME "${friendly}"\nDEVICENAME   /dev/null:0x${port.toString(16)}\nLIBPATH      ${VPCD_DRIVER}\nCHANNELID    0x${port.toString(16)}\n`,
    );
    // pcscd names a slot "<friendly name> <reader index> <slot>"; the index counts entries in load order.
    readers.push({ name: `${friendly} 00 00`, port }, { name: `${friendly} 00 01`, port: port + 1 });
  }
  const socket = join(runDir, 'pcscd.comm');
  let child: ChildProcess | undefined;
  let log = '';

  const launch = async () => {
    rmSync(socket, { force: true });
    const ns = process.getuid?.() === 0 ? ['-m', '--propagation', 'private'] : ['-r', '-m', '--propagation', 'private'];
    // pcscd runs as a child of this shell, which kills it when told to (TERM) or when our process dies
    // (a killed test runner must not leave a pcscd behind).
    const script =
      `mount --bind "${runDir}" /run/pcscd 2>/dev/null || { mkdir -p /run/pcscd && mount --bind "${runDir}" /run/pcscd; } || exit 97\n` +
      `pcscd -f -i -c "${confDir}" & p=$!\n` +
      `trap 'kill $p 2>/dev/null; wait $p; exit 0' TERM INT\n` +
      `while kill -0 ${process.pid} 2>/dev/null && kill -0 $p 2>/dev/null; do sleep 0.3; done\n` +
      `kill $p 2>/dev/null; wait $p\n`;
    const c = spawn('unshare', [...ns, 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    const ready = new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer) => {
        log += d.toString();
        if (log.includes('daemon ready')) resolve();
      };
      c.stdout!.on('data', onData);
      c.stderr!.on('data', onData);
      c.once('exit', (code) => reject(new Error(`pcscd exited (${code}) before it was ready:\n${log.slice(-2000)}`)));
      setTimeout(() => reject(new Error(`pcscd not ready after 10 s:\n${log.slice(-2000)}`)), 10_000).unref();
    });
    await ready;
    // "daemon ready" is printed before pcscd has polled each reader once and accepts clients; a virtual
    // card put in a slot before then, and a PC/SC context opened in this process, would wait on each other.
    const until = Date.now() + 10_000;
    while (!(await answersVersion(socket))) {
      if (Date.now() > until) throw new Error(`pcscd does not answer on ${socket} after 10 s:\n${log.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const kill = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
  };

  await launch();
  return {
    dir,
    socket,
    readers,
    kill,
    restart: async () => {
      await kill();
      await launch();
    },
    stop: async () => {
      await kill();
      running.delete(runDir);
      rmSync(dir, { recursive: true, force: true });
      rmSync(runDir, { recursive: true, force: true });
    },
    get log() {
      return log;
    },
  };
}

/** True when pcscd answers the version question (protocol/pcsc-daemon.ts) within half a second. */
function answersVersion(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(socket);
    let got = 0;
    const done = (up: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve(up);
    };
    const t = setTimeout(() => done(false), 500);
    s.once('connect', () => s.write(pcscdVersionQuestion(endianness() === 'LE')));
    s.on('data', (d: Buffer) => (got += d.length) >= PCSCD_VERSION_ANSWER_BYTES && done(true));
    s.once('error', () => done(false));
    s.once('close', () => done(false));
  });
}
