// Checks a storage driver runs before it opens anything, so a path that cannot work fails at start-up in
// one sentence naming the config field, the path and the fix, instead of a raw errno with a stack trace,
// or a hang: Node 20's recursive mkdir loops forever when the kernel answers ENOENT for a parent that
// exists (any path under /proc), so directories are created here one level at a time.

import { constants, type Stats } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/** Builds the error a caller's seam throws (JournalUnavailableError, ListFileError) from the sentence. */
export type StartupFailure = (message: string) => Error;

const errnoText = (e: unknown) => {
  const x = e as NodeJS.ErrnoException;
  return x.code ? `${x.code}` : (x.message ?? String(e));
};

/**
 * Make sure `dir` is a directory this process can write, creating missing levels one at a time.
 * `field` is the config path named in the message (e.g. "journal.dir"); `example` a sensible value.
 */
export async function prepareDirectory(dir: string, field: string, example: string, fail: StartupFailure): Promise<void> {
  const fix = `set ${field} to a directory on a writable disk (e.g. ${example})`;
  const target = resolve(dir);
  // Walk up to the nearest existing ancestor.
  const missing: string[] = [];
  let at = target;
  let st: Stats;
  for (;;) {
    try {
      st = await stat(at);
      break;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw fail(`${field}: cannot look at ${at} (${errnoText(e)}); ${fix}`);
      const up = dirname(at);
      if (up === at) throw fail(`${field}: no part of ${target} exists; ${fix}`);
      missing.unshift(at);
      at = up;
    }
  }
  if (!st.isDirectory()) {
    const what = at === target ? `${target} is not a directory` : `${at} is not a directory, so ${target} cannot be created`;
    throw fail(`${field}: ${what}; ${fix}`);
  }
  for (const level of missing) {
    try {
      await mkdir(level);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && (await stat(level).catch(() => undefined))?.isDirectory()) continue;
      throw fail(`${field}: cannot create directory ${level} (${errnoText(e)}); ${fix}`);
    }
  }
  try {
    await access(target, constants.W_OK | constants.X_OK);
  } catch (e) {
    const who = typeof process.getuid === 'function' ? ` (uid ${process.getuid()})` : '';
    throw fail(`${field}: ${target} is not writable by this user${who} (${errnoText(e)}); give it to the gate's user (chown) or ${fix}`);
  }
}

/** Make sure `path` is a readable regular file (the provisioned list snapshot). */
export async function checkReadableFile(path: string, field: string, fix: string, fail: StartupFailure): Promise<void> {
  const target = resolve(path);
  let st: Stats;
  try {
    st = await stat(target);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const what = code === 'ENOENT' || code === 'ENOTDIR' ? `no file at ${target}` : `cannot look at ${target} (${errnoText(e)})`;
    throw fail(`${field}: ${what}; ${fix}`);
  }
  if (!st.isFile()) throw fail(`${field}: ${target} is not a regular file; ${fix}`);
  try {
    await access(target, constants.R_OK);
  } catch (e) {
    throw fail(`${field}: ${target} is not readable by this user (${errnoText(e)}); ${fix}`);
  }
}
