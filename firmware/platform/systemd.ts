// sd_notify for a `Type=notify` service: READY=1, STATUS=..., WATCHDOG=1 and STOPPING=1, sent as
// datagrams to the AF_UNIX socket systemd names in $NOTIFY_SOCKET (a path, or "@name" for the abstract
// namespace).
//
// Node has no AF_UNIX datagram sockets, and we take no native addon for it. The messages go through
// one long-lived relay child (socat, else python3) that reads our stdin pipe and sends each chunk as one
// datagram. Why a long-lived relay and not `systemd-notify` per message: systemd attributes a
// notification to a unit by the sender's PID; a short-lived sender has often exited before systemd
// looks it up and the message is dropped (a known systemd-notify race before systemd 254, and Debian
// 12 ships 252). The relay lives as long as we do, inside our cgroup, so the unit needs
// NotifyAccess=all (it accepts messages from any process of the service, not only the main PID).
// Writes under PIPE_BUF (4 KiB) to a pipe are atomic, so a message is never split across datagrams;
// two messages merged into one datagram are still valid (sd_notify variables are newline-separated).
//
// The watchdog ping is a timer on the main event loop: if the loop is blocked, no ping is written,
// systemd sees the watchdog expire and restarts the service. The relay has no timer of its own.
//
// This file imports only node builtins so tests can run it in a child process after a plain transpile.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { Socket } from 'node:net';

export interface NotifyTarget {
  /** 'path' for a filesystem socket, 'abstract' for the abstract namespace ("@name" in $NOTIFY_SOCKET). */
  kind: 'path' | 'abstract';
  /** The path, or the abstract name without the leading '@'. */
  address: string;
}

/** Where $NOTIFY_SOCKET points, or undefined when not started by systemd with Type=notify. */
export function notifyTarget(env: NodeJS.ProcessEnv = process.env): NotifyTarget | undefined {
  const s = env.NOTIFY_SOCKET;
  if (!s) return undefined;
  if (s.startsWith('@')) return { kind: 'abstract', address: s.slice(1) };
  if (s.startsWith('/')) return { kind: 'path', address: s };
  // systemd also allows vsock:CID:PORT (VMs); a gate box never uses it.
  throw new Error(`NOTIFY_SOCKET="${s}" is neither a path nor an abstract socket (@name); vsock is not supported`);
}

/**
 * The watchdog ping period in ms (half of WATCHDOG_USEC, as systemd advises), or undefined when no
 * watchdog is configured for this process (WATCHDOG_PID names another process).
 */
export function watchdogPeriodMs(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!env.WATCHDOG_USEC || !Number.isFinite(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return Math.max(1, Math.floor(usec / 2000));
}

export type RelayKind = 'socat' | 'python3';

/** The relay command line for a target. */
export function relayCommand(kind: RelayKind, t: NotifyTarget): { cmd: string; args: string[] } {
  if (kind === 'socat') {
    // socat address options are separated by ',' and ':': escape them so an odd path stays one address.
    const addr = t.address.replace(/[\\,:!]/g, (c) => `\\${c}`);
    return { cmd: 'socat', args: ['-u', 'STDIN', `${t.kind === 'abstract' ? 'ABSTRACT-SENDTO' : 'UNIX-SENDTO'}:${addr}`] };
  }
  const py = [
    'import socket,sys',
    's=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)',
    'a=sys.argv[1]',
    "a='\\0'+a[1:] if a.startswith('@') else a",
    'r=sys.stdin.buffer',
    "for l in iter(r.readline,b''):\n s.sendto(l,a)",
  ].join('\n');
  return { cmd: 'python3', args: ['-u', '-c', py, t.kind === 'abstract' ? `@${t.address}` : t.address] };
}

function hasCommand(cmd: string): boolean {
  const r = spawnSync(cmd, [cmd === 'socat' ? '-V' : '--version'], { stdio: 'ignore' });
  return r.status === 0;
}

export interface NotifierOptions {
  env?: NodeJS.ProcessEnv;
  /** Relay programs to try, in order. */
  relays?: RelayKind[];
  /** Where relay failures are reported (a relay that dies is restarted on the next message). */
  warn?: (msg: string) => void;
  /**
   * Remove NOTIFY_SOCKET and WATCHDOG_* from process.env so child processes (ffmpeg, ...) do not
   * believe they are the service. On by default when env is process.env.
   */
  unsetEnvironment?: boolean;
}

/**
 * Talks to systemd. When not run under systemd (no NOTIFY_SOCKET), every method is a no-op, so the
 * runtime calls it unconditionally.
 */
export class SystemdNotifier {
  readonly target: NotifyTarget | undefined;
  readonly watchdogMs: number | undefined;
  private relay: ChildProcess | undefined;
  private relayKind: RelayKind | undefined;
  private lastSpawnMs = 0;
  private watchdogTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly warn: (msg: string) => void;

  constructor(opts: NotifierOptions = {}) {
    const env = opts.env ?? process.env;
    this.target = notifyTarget(env);
    this.watchdogMs = watchdogPeriodMs(env);
    this.warn = opts.warn ?? ((m) => process.emitWarning(m, 'SystemdNotifier'));
    if (this.target) {
      this.relayKind = (opts.relays ?? ['socat', 'python3']).find(hasCommand);
      if (!this.relayKind) {
        throw new Error(
          'started by systemd with Type=notify, but neither socat nor python3 is installed to relay sd_notify ' +
            'messages: apt-get install socat',
        );
      }
    }
    if (opts.unsetEnvironment ?? env === process.env) {
      delete env.NOTIFY_SOCKET;
      delete env.WATCHDOG_USEC;
      delete env.WATCHDOG_PID;
    }
  }

  /** True when systemd is listening. */
  get active(): boolean {
    return this.target !== undefined;
  }
  /** Which relay program carries the messages. */
  get relayProgram(): RelayKind | undefined {
    return this.relayKind;
  }

  /** Send raw sd_notify variables, e.g. { READY: '1', STATUS: 'serving' }. */
  notify(vars: Record<string, string | number>): void {
    if (!this.target || this.closed) return;
    // One variable per line; a newline inside a value would start a new variable, so flatten it.
    const text = Object.entries(vars)
      .map(([k, v]) => `${k}=${String(v).replace(/\n/g, ' ')}\n`)
      .join('');
    const relay = this.ensureRelay();
    relay?.stdin?.write(text);
  }

  /** Start-up finished: systemd marks the unit active and starts dependants. */
  ready(status?: string): void {
    this.notify(status ? { READY: 1, STATUS: status } : { READY: 1 });
  }
  /** A one-line status shown by `systemctl status`. */
  status(text: string): void {
    this.notify({ STATUS: text });
  }
  /** Ask for more start-up or shutdown time (loading a large list can take a while on a small board). */
  extendTimeout(ms: number): void {
    this.notify({ EXTEND_TIMEOUT_USEC: Math.round(ms * 1000) });
  }
  /** Shutting down (stops the watchdog first so a slow shutdown is not reported as a hang). */
  stopping(status?: string): void {
    this.stopWatchdog();
    this.notify(status ? { STOPPING: 1, STATUS: status } : { STOPPING: 1 });
  }
  watchdogPing(): void {
    this.notify({ WATCHDOG: 1 });
  }

  /**
   * Ping the watchdog every half WATCHDOG_USEC from this (the main) event loop. `healthy` may veto a
   * ping (for example when the lane's machine stopped reacting): a vetoed ping lets systemd restart us.
   * Returns false when no watchdog is configured.
   */
  startWatchdog(healthy: () => boolean = () => true): boolean {
    if (!this.target || this.watchdogMs === undefined || this.watchdogTimer) return this.watchdogTimer !== undefined;
    this.watchdogPing();
    this.watchdogTimer = setInterval(() => {
      if (healthy()) this.watchdogPing();
    }, this.watchdogMs);
    // The watchdog alone must not keep a finished process alive.
    this.watchdogTimer.unref();
    return true;
  }
  stopWatchdog(): void {
    clearInterval(this.watchdogTimer);
    this.watchdogTimer = undefined;
  }

  /** Flush pending messages and end the relay. */
  close(): Promise<void> {
    this.stopWatchdog();
    this.closed = true;
    const relay = this.relay;
    this.relay = undefined;
    if (!relay || relay.exitCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      // A relay slow to start on a loaded box still gets time to send STOPPING (TimeoutStopSec is 20 s).
      const t = setTimeout(() => relay.kill('SIGKILL'), 5000);
      relay.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      relay.stdin?.end();
    });
  }

  private ensureRelay(): ChildProcess | undefined {
    if (this.relay && this.relay.exitCode === null && this.relay.signalCode === null) return this.relay;
    // A relay that keeps dying (socket gone while systemd re-executes) is retried at most once a second.
    const now = Date.now();
    if (now - this.lastSpawnMs < 1000) return undefined;
    this.lastSpawnMs = now;
    const { cmd, args } = relayCommand(this.relayKind!, this.target!);
    const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-500)));
    child.stdin?.on('error', () => {}); // EPIPE after the relay died: reported by 'exit' below.
    child.on('error', (e) => this.warn(`sd_notify relay ${cmd} failed to start: ${e.message}`));
    child.on('exit', (code, signal) => {
      if (this.relay === child) this.relay = undefined;
      if (!this.closed) this.warn(`sd_notify relay ${cmd} exited (${signal ?? code}): ${err.trim() || 'no message'}`);
    });
    child.unref();
    // Piped stdio are sockets (net.Socket); their handles would keep the loop alive too.
    if (child.stdin instanceof Socket) child.stdin.unref();
    if (child.stderr instanceof Socket) child.stderr.unref();
    this.relay = child;
    return child;
  }
}
