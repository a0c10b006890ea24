// Replace a file so that a crash at any moment leaves either the old or the new content, never a mix.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Write a temporary file, fsync it, rename it over `path`, fsync the directory. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  await replaceFile(path, (fh) => writeFully(fh, bytes));
}

// A write may take fewer bytes than asked; these loop until all are written, in pieces of at most
// 16 MiB. `position` undefined: at the file's current offset (appends).
const PIECE = 1 << 24;

export async function writeFully(fh: FileHandle, b: Uint8Array, position?: number): Promise<void> {
  for (let at = 0; at < b.byteLength; ) at += (await fh.write(b, at, Math.min(b.byteLength - at, PIECE), position === undefined ? null : position + at)).bytesWritten;
}

/** writeFully with blocking calls (the list merge worker's thread). */
export function writeFullySync(fd: number, b: Uint8Array, position?: number): void {
  for (let at = 0; at < b.byteLength; ) at += writeSync(fd, b, at, Math.min(b.byteLength - at, PIECE), position === undefined ? null : position + at);
}

/** Replace `path` with what `write` puts in a new file: temp file, fsync, rename, fsync the directory. */
export async function replaceFile(path: string, write: (fh: FileHandle) => Promise<void>): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w');
  try {
    await write(fh);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fh.close();
  await rename(tmp, path);
  await syncDir(dirname(path));
}

export async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/**
 * replaceFile with blocking calls, for a background thread (the list merge worker): its writes and
 * fsync then run on that thread, not on libuv's pool, whose threads share the lane's cores at normal
 * priority. `write` may await (a producer), but does its own writing with writeSync on `fd`.
 */
export async function replaceFileBlocking(path: string, write: (fd: number) => void | Promise<void>): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    await write(fd);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
  const d = openSync(dirname(path), 'r');
  try {
    fsyncSync(d);
  } finally {
    closeSync(d);
  }
}
