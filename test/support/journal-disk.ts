// The parent side of test/support/journal-disk-child.ts: start the journaling child on a file system
// that can really fill up, and talk to it one command at a time.
//  - 'tmpfs': a 256 KiB tmpfs in a private mount namespace (ENOSPC at write and when a new file's first
//    block is needed; tmpfs has no writeback, so fsync never fails there).
//  - 'ext4-on-tmpfs': ext4 (no jbd2 journal) on a loop device whose backing file sits on a 1 MiB tmpfs:
//    writes land in the page cache and fdatasync fails with ENOSPC when the tmpfs behind it is full.
//  - 'fd-limit': no mount namespace, a low open-file limit (EMFILE when the child holds the rest).
// Needs root (or unprivileged user namespaces) for the mounts, util-linux (`unshare`), e2fsprogs
// (`mkfs.ext4`) for ext4, and a free loop device. A missing tool fails the test and says what to install.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const root = resolve(import.meta.dirname, '../..');
export const diskChildJs = join(root, 'dist/test/support/journal-disk-child.js');

/** Compile the child (incremental), as npm test does, so it matches the sources. */
export function buildChild(): void {
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { encoding: 'utf8' });
  if (tsc.status !== 0 || !existsSync(diskChildJs)) throw new Error(`build failed:\n${tsc.stdout}${tsc.stderr}`);
}

/** Fail (never skip) with what to install when a tool is missing. */
export function requireTool(cmd: string, args: string[], pkg: string): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error(`\`${cmd}\` not found: the journal disk tests need it. Install ${pkg} (Debian: apt-get install -y ${pkg}).`);
  }
}

export type DiskKind = 'tmpfs' | 'ext4-on-tmpfs' | 'fd-limit';

export interface DiskChild {
  /** Send one command; resolves with its result (throws if the child reports a failure or dies). */
  send<T = any>(cmd: string): Promise<T>;
  /** Close the journal and wait for the child to exit (its mount namespace goes with it). */
  close(): Promise<void>;
}

// sh -c SCRIPT sh <mnt> <node> <child.js> <url> <lane> <options>: mount, then run the child on it.
const SCRIPTS: Record<Exclude<DiskKind, 'fd-limit'>, string> = {
  tmpfs: `set -e
mount -t tmpfs -o size=256k tmpfs "$1"
mkdir "$1/journal"
exec "$2" "$3" "$1/journal" "$1" "$4" "$5" "$6"`,
  'ext4-on-tmpfs': `set -e
mount -t tmpfs -o size=1m tmpfs "$1"
truncate -s 16M "$1/img"
mkfs.ext4 -q -F -b 4096 -O ^has_journal -E nodiscard "$1/img"
mkdir "$1/fs"
mount -o loop "$1/img" "$1/fs"
mkdir "$1/fs/journal"
exec "$2" "$3" "$1/fs/journal" "$1" "$4" "$5" "$6"`,
};

export async function startDiskChild(kind: DiskKind, o: { url: string; laneId: string; options?: object }): Promise<DiskChild> {
  const mnt = mkdtempSync(join(tmpdir(), `journal-${kind}-`));
  const tail = [o.url, o.laneId, JSON.stringify(o.options ?? {})];
  let p: ChildProcessWithoutNullStreams;
  if (kind === 'fd-limit') {
    // The child's own descriptors (stdio, libuv, the health server) fit well under 1024 (module loading opens many files at once at start).
    p = spawn('sh', ['-c', 'ulimit -n 1024 && exec "$@"', 'sh', process.execPath, diskChildJs, mnt, mnt, ...tail]);
  } else {
    requireTool('unshare', ['--version'], 'util-linux');
    if (kind === 'ext4-on-tmpfs') requireTool('mkfs.ext4', ['-V'], 'e2fsprogs');
    p = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', SCRIPTS[kind], 'sh', mnt, process.execPath, diskChildJs, ...tail]);
  }
  let stderr = '';
  p.stderr.setEncoding('utf8');
  p.stderr.on('data', (d: string) => (stderr += d));
  const lines = createInterface({ input: p.stdout });
  const waiting: { resolve: (v: any) => void; reject: (e: Error) => void }[] = [];
  let exited: Error | undefined;
  lines.on('line', (line) => {
    const w = waiting.shift();
    if (!w) return;
    const m = JSON.parse(line) as { ready?: boolean; result?: unknown; failed?: string };
    if (m.failed) w.reject(new Error(`child: ${m.failed}`));
    else w.resolve(m.ready ? m : m.result);
  });
  const exit = new Promise<void>((res) =>
    p.on('close', (code) => {
      exited = new Error(
        `journal child (${kind}) exited with ${code}: ${stderr.slice(-2000)}` +
          (kind === 'fd-limit' ? '' : '\n(it needs root or user namespaces for `unshare -m` and `mount`, and for ext4 a free loop device)'),
      );
      for (const w of waiting.splice(0)) w.reject(exited);
      rmSync(mnt, { recursive: true, force: true });
      res();
    }),
  );
  const next = () =>
    new Promise<any>((resolve, reject) => {
      if (exited) return reject(exited);
      waiting.push({ resolve, reject });
    });
  await next(); // { ready }
  return {
    async send(cmd) {
      const r = next();
      p.stdin.write(`${cmd}\n`);
      return r;
    },
    async close() {
      if (!exited) {
        const r = next().catch(() => {});
        p.stdin.write('close\n');
        await r;
      }
      await exit;
    },
  };
}
