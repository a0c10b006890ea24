// The seams between the decision core and the locally held lists. The in-memory implementation
// here is for the simulator and tests; the persistent off-heap store implements the same interfaces.

export type BindingStatus = 'green' | 'yellow' | 'red';

/** Registered credentials and their eligibility status, keyed by credentialKey(). */
export interface Allowlist {
  /** The binding status, or undefined when the credential is not registered. Synchronous and fast: it is on the decision path. */
  lookup(key: string): BindingStatus | undefined;
  readonly size: number;
}

/** Lost or blocked credentials. */
export interface Denylist {
  isBlocked(key: string): boolean;
}

/** One consistent version of the lists: readers see the old one or the new one, never a mix. */
export interface ListSnapshot {
  readonly allowlist: Allowlist;
  readonly denylist: Denylist;
  /** Back-office list version (0 = nothing synced yet). */
  readonly version: number;
  /** When the back office published this version (ms since epoch); list age is measured from here. */
  readonly publishedAtMs: number;
}

/** Where the decision core gets the lists it decides on; sync swaps what `current()` returns. */
export interface ListProvider {
  current(): ListSnapshot;
}

export class MemoryAllowlist implements Allowlist {
  private readonly map = new Map<string, BindingStatus>();
  constructor(entries?: Iterable<[string, BindingStatus]>) {
    if (entries) for (const [k, v] of entries) this.map.set(k, v);
  }
  lookup(key: string): BindingStatus | undefined {
    return this.map.get(key);
  }
  set(key: string, status: BindingStatus): void {
    this.map.set(key, status);
  }
  delete(key: string): void {
    this.map.delete(key);
  }
  get size(): number {
    return this.map.size;
  }
}

export class MemoryDenylist implements Denylist {
  private readonly set = new Set<string>();
  constructor(keys?: Iterable<string>) {
    if (keys) for (const k of keys) this.set.add(k);
  }
  isBlocked(key: string): boolean {
    return this.set.has(key);
  }
  block(key: string): void {
    this.set.add(key);
  }
  unblock(key: string): void {
    this.set.delete(key);
  }
}

export class MemoryLists implements ListProvider, ListSnapshot {
  readonly allowlist = new MemoryAllowlist();
  readonly denylist = new MemoryDenylist();
  version = 1;
  publishedAtMs: number;
  constructor(publishedAtMs = Date.now()) {
    this.publishedAtMs = publishedAtMs;
  }
  current(): ListSnapshot {
    return this;
  }
}
