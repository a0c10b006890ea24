// An I/O failure of the journal, with the operation and the file it hit (the alarm and the log name them).

import { basename } from 'node:path';

/** Errors that mean "no space": disk full, or the user's quota. */
export const FULL = new Set(['ENOSPC', 'EDQUOT']);

export class JournalIoError extends Error {
  constructor(readonly op: string, readonly file: string, readonly code: string | undefined, cause: Error) {
    super(`${op} ${basename(file)}: ${cause.message}`);
    this.name = 'JournalIoError';
  }
}

/** Run one file operation; a failure becomes a JournalIoError naming `op` and `file` (its errno kept). */
export async function io<T>(op: string, file: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw asIoError(e, op, file);
  }
}

export function asIoError(e: unknown, op: string, file: string): JournalIoError {
  return e instanceof JournalIoError ? e : new JournalIoError(op, file, (e as NodeJS.ErrnoException).code, e as Error);
}
