// A whole list snapshot (protocol/lists/) in one off-heap buffer, answered through typed-array
// views: lookups are a bucket index then a short binary search, exact for every key. Used for a
// signed snapshot the gate is given (the `file` list driver) and to check a downloaded one; the
// synced lists a gate keeps and updates are segmented (firmware/lists/segmented-lists.ts).

import { open } from 'node:fs/promises';
import { GateError, GateErrorCode } from '../../protocol/errors.js';
import {
  ListBuilder,
  SnapshotView,
  bindingOf,
  isBlockedByte,
  runToEnd as runSync,
  verifySnapshotGen,
  type Checked,
  type SnapshotHeader,
  type TrustedListKey,
} from '../../protocol/lists/index.js';
import type { Allowlist, BindingStatus, Denylist, ListSnapshot } from './list-provider.js';
import { runSliced } from './run-sliced.js';

export { writeFileAtomic } from '../platform/atomic-file.js';

/** One consistent version of the lists, served from snapshot bytes. */
export class StoredLists implements ListSnapshot {
  readonly allowlist: Allowlist;
  readonly denylist: Denylist;
  constructor(readonly view: SnapshotView) {
    this.allowlist = {
      lookup: (key: string): BindingStatus | undefined => bindingOf(view.status(key)),
      // Entries in the file (registered or blocked).
      get size() {
        return view.size;
      },
    };
    this.denylist = { isBlocked: (key: string) => isBlockedByte(view.status(key)) };
  }
  get version(): number {
    return this.view.header.version;
  }
  get publishedAtMs(): number {
    return this.view.header.publishedAtMs;
  }
  /** Status byte (protocol/lists/keys.ts) for callers that want both answers with one lookup. */
  statusByte(key: string): number {
    return this.view.status(key);
  }
  get bytes(): Uint8Array {
    return this.view.bytes;
  }
}

/**
 * A list file that is missing, short, damaged or not signed by a trusted key: a GateError with code
 * GateErrorCode.ListFile; `reason` (also in `context`) says which check failed, e.g. "list-file-short".
 */
export class ListFileError extends GateError {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message, GateErrorCode.ListFile, { reason });
    this.name = 'ListFileError';
  }
}

/** Version 0: nothing synced yet (every credential unregistered). */
export function emptyLists(): StoredLists {
  const bytes = aligned(new ListBuilder(16).build({ version: 0, publishedAtMs: 0 }));
  const h = runSync(verifySnapshotGen(bytes, null));
  if (!h.ok) throw new Error(h.detail);
  return new StoredLists(new SnapshotView(bytes, h.value));
}

/** Copy into a fresh, 8-aligned buffer if needed (typed-array views need aligned columns). */
export function aligned(b: Uint8Array): Uint8Array {
  if (b.byteOffset % 8 === 0) return b;
  const c = new Uint8Array(new ArrayBuffer(b.byteLength));
  c.set(b);
  return c;
}

/**
 * Verify snapshot bytes (signature when `keys` is given; always the checksum and bounds) and serve
 * them. `sliceMs` > 0 checks in slices so a running gate keeps answering lookups meanwhile.
 */
export async function openSnapshot(bytes: Uint8Array, keys: readonly TrustedListKey[] | null, sliceMs = 0): Promise<Checked<StoredLists>> {
  const b = aligned(bytes);
  const h: Checked<SnapshotHeader> = sliceMs > 0 ? await runSliced(verifySnapshotGen(b, keys), sliceMs) : runSync(verifySnapshotGen(b, keys));
  if (!h.ok) return h;
  const view = new SnapshotView(b, h.value);
  const bounds = sliceMs > 0 ? await runSliced(view.checkBoundsGen(), sliceMs) : view.checkBounds();
  if (!bounds.ok) return bounds;
  return { ok: true, value: new StoredLists(view) };
}

/** Read a whole file into one off-heap, 8-aligned buffer (no per-entry objects). */
export async function readWholeFile(path: string): Promise<Uint8Array> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const buf = new Uint8Array(new ArrayBuffer(size));
    let at = 0;
    while (at < size) {
      const { bytesRead } = await fh.read(buf, at, Math.min(size - at, 1 << 28), at);
      if (bytesRead === 0) throw new ListFileError('list-file-short', `${path}: ended at ${at} of ${size} bytes`);
      at += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}

/** Load the gate's own list file at boot (integrity checked; `keys` also checks the back-office signature). */
export async function loadListFile(path: string, keys: readonly TrustedListKey[] | null = null): Promise<StoredLists> {
  const bytes = await readWholeFile(path);
  const r = await openSnapshot(bytes, keys);
  if (!r.ok) throw new ListFileError(`list-file-${r.error}`, `${path}: ${r.detail}`);
  return r.value;
}
