// A real pty pair made by socat, for `gate sim --barrier pty` and for tests that must run the native
// serialport binding and the kernel tty: `a` and `b` are symlinks to the two pty slaves. unplug() kills socat (both links vanish, open
// ports see a disconnect, as when a USB-serial adapter is pulled); replug() makes a new pair under the
// same names.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Fails loudly when socat is missing: these tests never skip silently. */
export function requireSocat(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v socat'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('socat is required for pty barrier wiring, the pty tests and the barrier bench: install it (apt-get install -y socat)');
  }
}

export interface PtyPair {
  /** link to one end (the runtime side, by convention) */
  readonly a: string;
  /** link to the other end (the board side) */
  readonly b: string;
  /** Remove the pair: socat exits, both links disappear, open ports get a disconnect. */
  unplug(): Promise<void>;
  /** Make a new pair under the same link names. */
  replug(): Promise<void>;
  /** Unplug and remove the temporary directory. Idempotent. */
  close(): Promise<void>;
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export async function ptyPair(name = 'pty'): Promise<PtyPair> {
  const socat = requireSocat();
  const dir = mkdtempSync(join(tmpdir(), `gate-${name}-`));
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  let child: ChildProcess | undefined;
  let stderr = '';

  const plug = async () => {
    stderr = '';
    const c = spawn(socat, ['-d', '-d', `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr!.on('data', (d) => (stderr += d));
    child = c;
    let exited: number | null | undefined;
    c.on('exit', (code) => (exited = code));
    await waitFor(() => exited !== undefined || (existsSync(a) && existsSync(b)), 5000, `socat links ${a} ${b}`).catch((e) => {
      throw new Error(`${(e as Error).message}\nsocat said: ${stderr}`);
    });
    if (exited !== undefined) throw new Error(`socat exited with ${exited}: ${stderr}`);
  };
  const unplug = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    await gone;
    // socat removes its links on exit; make sure, so a reopen cannot find a stale one.
    rmSync(a, { force: true });
    rmSync(b, { force: true });
  };
  await plug();
  let closed = false;
  return {
    a,
    b,
    unplug,
    replug: plug,
    async close() {
      if (closed) return;
      closed = true;
      await unplug();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
