// The seams between the decision core and the locally held lists. The in-memory implementation
// here is for the simulator and tests; the persistent off-heap store implements the same interfaces.

import type { Alarm } from '../../protocol/alarms.js';

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

/** The alarms a list provider raises (protocol/alarms.ts), each naming its file or the failing round (or the trust list it refused). */
export type ListAlarm = Extract<Alarm, { alarm: 'list-rejected' | 'list-write-failed' | 'list-sync-failing' | 'trust-list-rejected' | 'schedule-rejected' | 'fare-table-rejected' }>;

/** What a syncing list provider reports about itself, read at scrape time. */
export interface ListStats {
  /** Sync rounds failed in a row (0 after a good one). */
  consecutiveFailures: number;
  polls: number;
  deltasApplied: number;
  snapshotsApplied: number;
  /** Updates refused (bad signature, checksum, order, ...). */
  rejected: number;
  httpFailures: number;
}

/**
 * Where the decision core gets the lists it decides on; sync swaps what `current()` returns. The
 * optional members are what a provider that syncs (firmware/lists/list-sync.ts) adds; a fixed list
 * (memory, a provisioned file) has none of them.
 */
export interface ListProvider {
  /** The version in use: synchronous, never throws, never blocks (it is on the decision path). */
  current(): ListSnapshot;
  /**
   * Listen to the provider's alarms (an update refused, a list file not written, sync failing round
   * after round). Listeners run synchronously when the provider notices; none after stop() resolves.
   * Returns a function that removes the listener (idempotent).
   */
  onAlarm?(listener: (alarm: ListAlarm) => void): () => void;
  /**
   * Listen to failed sync rounds: 'failed' (unreachable, HTTP error, write failed) or 'rejected' (an
   * update refused). Returns a function that removes the listener.
   */
  onSyncFailed?(listener: (kind: 'failed' | 'rejected') => void): () => void;
  /**
   * Listen to issuer trust-list documents: the one held (stored, verified, newer than the provisioned one)
   * at once, then each new one fetched with the lists, each verified against the lane's back-office keys
   * and newer than the last before it is stored and handed on (the listener may check again). Returns a
   * function that removes the listener.
   */
  onIssuerKeys?(listener: (document: Uint8Array) => void): () => void;
  /**
   * Listen to enforcement schedule documents (protocol/policy-schedule.ts), as onIssuerKeys: the one held
   * (stored, verified, newer than the provisioned `policy.scheduleFile`) at once, then each new one
   * fetched with the lists, verified against the list keys and newer than the last. Returns a function
   * that removes the listener.
   */
  onPolicySchedule?(listener: (document: Uint8Array) => void): () => void;
  /**
   * Listen to fare table documents (protocol/fares.ts), as onPolicySchedule: the one held in the fare-table
   * file (verified) at once, then each new one fetched with the lists, verified against the list keys and
   * not lower than the last. Absent or never called back: the lane's fares are not synced.
   */
  onFareTable?(listener: (document: Uint8Array) => void): () => void;
  /**
   * When the lists in use were last known to be the latest (ms since epoch): a syncing provider's last
   * verified freshness statement naming the version it holds, or the version's own publication when that
   * is later. Absent: list age counts from `current().publishedAtMs`.
   */
  freshAtMs?(): number;
  /** Sync totals; cheap, never throws. */
  stats?(): ListStats;
  /** Stop syncing and wait for a round in flight. Idempotent; current() keeps answering afterwards. */
  stop?(): Promise<void>;
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
