// A private mosquitto broker on loopback, for tests, the bench and `gate sim --broker mqtt`: a TLS listener
// with certificates made by openssl in a temp dir (a CA, the broker's certificate for 127.0.0.1 and
// localhost, and optionally client certificates), the password file and ACL the caller hands in (made by
// `gate broker-config`), persistence in the same dir. It can be killed (-9) and restarted on the same port,
// the way a station computer losing power looks to the lanes.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export interface BrokerFiles {
  /** mosquitto password file text (`user:$7$…` lines). */
  passwords: string;
  /** mosquitto ACL file text. */
  acl: string;
}

export interface BrokerOptions extends BrokerFiles {
  /** 0 (default): a free port on 127.0.0.1. */
  port?: number;
  /** Extra mosquitto.conf lines (limits, logging). */
  extraConf?: string[];
  /** Client certificates to issue from the same CA, by common name. */
  clientCerts?: string[];
  /** Keep the dir on stop (debugging). */
  keep?: boolean;
}

export interface TestBroker {
  url: string;
  port: number;
  dir: string;
  /** The CA that signed the broker's certificate (PEM file path). */
  caFile: string;
  /** A second CA that signed nothing the broker uses (a lane configured with it must refuse the broker). */
  otherCaFile: string;
  /** Client certificate and key files by common name. */
  clientCert(cn: string): { cert: string; key: string };
  /** mosquitto's process id (CPU and RSS in the bench). */
  readonly pid: number | undefined;
  /** Everything mosquitto wrote to stderr/stdout so far. */
  readonly log: string;
  /** kill -9: no goodbye to anyone, wills fire only when it comes back... and sessions only what autosave kept. */
  kill(): Promise<void>;
  /** Start it again on the same port with the same files and persistence. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Brokers this process started: killed if it exits without stopping them (a test or a sim cut short). */
const alive = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of alive) c.kill('SIGKILL');
});

/** Fail loudly (never skip) when mosquitto or openssl is missing, saying what to install. */
export function requireBrokerTools(): void {
  const missing: string[] = [];
  if (spawnSync('mosquitto', ['-h']).error) missing.push('mosquitto (apt-get install mosquitto)');
  if (spawnSync('openssl', ['version']).error) missing.push('openssl (apt-get install openssl)');
  if (missing.length) throw new Error(`the station bus tests need a real MQTT broker: ${missing.join(', ')}`);
}

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

/** A CA and certificates under it, made by openssl (EC P-256, short-lived). */
function makeCa(dir: string, name: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.pem`]);
}

function issue(dir: string, ca: string, cn: string, ext: string): void {
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${cn}.key`, '-out', `${cn}.csr`]);
  writeFileSync(join(dir, `${cn}.ext`), ext);
  openssl(dir, ['x509', '-req', '-in', `${cn}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '2', '-extfile', `${cn}.ext`, '-out', `${cn}.pem`]);
}

export async function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, log: () => string, capMs = 10_000): Promise<void> {
  const until = Date.now() + capMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited (${child.exitCode}): ${log()}`);
    const ok = await new Promise<boolean>((r) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => (c.destroy(), r(true)));
      c.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`mosquitto did not listen on ${port} within ${capMs} ms: ${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Start a private mosquitto with TLS, passwords and ACL on 127.0.0.1. */
export async function startBroker(opts: BrokerOptions): Promise<TestBroker> {
  requireBrokerTools();
  const dir = mkdtempSync(join(tmpdir(), 'gate-broker-'));
  makeCa(dir, 'ca');
  makeCa(dir, 'other-ca');
  issue(dir, 'ca', 'broker', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  for (const cn of opts.clientCerts ?? []) issue(dir, 'ca', cn, 'extendedKeyUsage=clientAuth\n');
  writeFileSync(join(dir, 'passwd'), opts.passwords, { mode: 0o600 });
  writeFileSync(join(dir, 'acl'), opts.acl, { mode: 0o600 });
  const port = opts.port || (await freeTcpPort());
  // Run as whoever we are: as root, mosquitto would otherwise drop to the `mosquitto` user and lose its files.
  const conf = [
    `user ${userInfo().username}`,
    'per_listener_settings false',
    'allow_anonymous false',
    `password_file ${join(dir, 'passwd')}`,
    `acl_file ${join(dir, 'acl')}`,
    'persistence true',
    `persistence_location ${dir}/`,
    'autosave_interval 1',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'max_queued_messages 10000',
    // As `gate broker-config` writes it: no message of the station bus is bigger.
    'max_packet_size 8192',
    // Small messages go out at once (no Nagle wait for the ACK of the previous one).
    'set_tcp_nodelay true',
    `listener ${port} 127.0.0.1`,
    `cafile ${join(dir, 'ca.pem')}`,
    `certfile ${join(dir, 'broker.pem')}`,
    `keyfile ${join(dir, 'broker.key')}`,
    'require_certificate false',
    ...(opts.extraConf ?? []),
  ];
  writeFileSync(join(dir, 'mosquitto.conf'), conf.join('\n') + '\n');
  let child: ChildProcess | undefined;
  let log = '';
  const launch = async () => {
    const c = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    alive.add(c);
    c.once('exit', () => alive.delete(c));
    const keep = (b: Buffer) => {
      log += b.toString();
      if (log.length > 200_000) log = log.slice(-100_000);
    };
    c.stdout!.on('data', keep);
    c.stderr!.on('data', keep);
    c.once('error', (e) => (log += `spawn error: ${e.message}\n`));
    await waitForPort(port, c, () => log);
  };
  const kill = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((r) => {
      c.once('exit', () => r());
      c.kill('SIGKILL');
    });
  };
  await launch();
  return {
    url: `mqtts://127.0.0.1:${port}`,
    port,
    dir,
    caFile: join(dir, 'ca.pem'),
    otherCaFile: join(dir, 'other-ca.pem'),
    clientCert: (cn) => ({ cert: join(dir, `${cn}.pem`), key: join(dir, `${cn}.key`) }),
    get pid() {
      return child?.pid;
    },
    get log() {
      return log;
    },
    kill,
    restart: async () => {
      await kill();
      await launch();
    },
    stop: async () => {
      const c = child;
      child = undefined;
      if (c && c.exitCode === null) {
        await new Promise<void>((r) => {
          const t = setTimeout(() => c.kill('SIGKILL'), 3000);
          c.once('exit', () => (clearTimeout(t), r()));
          c.kill('SIGTERM');
        });
      }
      if (!opts.keep) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** PEM text of a file (lane configs name files; tests sometimes want the text). */
export const readPem = (file: string): string => readFileSync(file, 'utf8');
