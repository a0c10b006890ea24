// ListSync's options, events, status and round outcomes (list-sync.ts).

import type { TrustedListKey } from '../../protocol/lists/index.js';
import type { Clock } from '../../drivers/seams.js';
import type { TlsTrust } from '../platform/https-client.js';
import type { Logger } from '../config/log.js';
import type { IssuerKeysVerifier } from './issuer-keys.js';
import type { ListMerger } from './merger.js';
import type { ListAlarm, ListSnapshot } from './list-provider.js';

export interface ListSyncOptions {
  /** Back-office base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  /** Where the gate keeps its list file (lists.snap) and the issuer trust list (issuer-keys.bin). */
  dir: string;
  /** Back-office list signing keys the gate trusts. */
  trustedKeys: readonly TrustedListKey[];
  /** Bearer token for the back office (role `gate`), when it asks for one. */
  token?: string;
  /** For an https URL: the CA file's PEM and/or pinned certificate hashes (default: the system's CA store). */
  tls?: TlsTrust;
  /**
   * The issuer trust list: fetched only when given. Each document is verified with `verify` (the lane's
   * back-office keys) before it is written or handed on; `provisionedSeq` is the seq of the trust list the
   * gate was provisioned with (nothing older or equal is taken).
   */
  issuerKeys?: { verify: IssuerKeysVerifier; provisionedSeq?: number };
  /**
   * The enforcement schedule (GET /v1/policy-schedule): fetched only when given. Each document is verified
   * with `trustedKeys` (the back office signs it with its list key) and must be newer than the one held
   * and than `provisionedSeq`, the seq of the lane's `policy.scheduleFile` (-1: none), before it is written
   * (`policy-schedule.json`) and handed on; a bad or older one raises `schedule-rejected`.
   */
  policySchedule?: { provisionedSeq?: number };
  /**
   * The fare table (GET /v1/fare-table): fetched only when given. Each document is verified with
   * `trustedKeys` and must not be lower than the one held in `path` (the lane's fare-table file) before it
   * is written there and handed on; a bad or older one raises `fare-table-rejected`, the file untouched.
   * A back office without the path (404, 405) fails nothing.
   */
  fareTable?: { path: string };
  /** Failed rounds in a row before `list-sync-failing` (then every 20); a refused TLS certificate alarms at once. */
  alarmAfterFailures?: number;
  pollMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Per request (headers and whole body). */
  timeoutMs?: number;
  /** For the snapshot download (hundreds of MB at metro scale). */
  snapshotTimeoutMs?: number;
  /** Deltas fetched per request before applying. */
  maxDeltas?: number;
  /** Largest response accepted (a snapshot of 50 M entries is about 500 MB). */
  maxResponseBytes?: number;
  /** Longest uninterrupted slice of apply work on the event loop. */
  sliceMs?: number;
  /** Where deltas are merged: the default (a worker thread when compiled), or a given merger (tests). */
  merger?: ListMerger;
  /**
   * Applied deltas are appended to a log beside the list file, which is rewritten only once the log
   * holds this many changes or bytes (the list file of a 50 M list is 620 MB: flash wears out).
   */
  logMaxChanges?: number;
  logMaxBytes?: number;
  clock?: Clock;
  log?: Logger;
}

export type SyncAlarm = ListAlarm['alarm'];

/** ListSync's events, typed. */
export interface ListSyncEvents {
  alarm: [alarm: ListAlarm];
  'sync-failed': [kind: 'failed' | 'rejected'];
  /** A new version is served. */
  version: [snapshot: ListSnapshot];
  /** A new issuer trust-list document (verified against the lane's back-office keys, newer, and on disk). */
  'issuer-keys': [document: Uint8Array];
  /** A new enforcement schedule document (verified against the list keys, newer, and on disk). */
  'policy-schedule': [document: Uint8Array];
  /** A new fare table document (verified against the list keys, not lower, and in the fare-table file). */
  'fare-table': [document: Uint8Array];
}

export interface SyncStatus {
  version: number;
  publishedAtMs: number;
  /** When the version in use was last known to be the latest: the last verified freshness statement that named it, or its publication. */
  freshAtMs: number;
  /** ms since freshAtMs (Infinity before the first sync). */
  ageMs: number;
  lastSuccessAtMs: number | undefined;
  consecutiveFailures: number;
  counters: SyncCounters;
}

export type SyncOutcome =
  | { kind: 'up-to-date'; version: number }
  | { kind: 'applied'; via: 'deltas' | 'snapshot'; from: number; to: number }
  | { kind: 'rejected'; error: string; detail: string }
  | { kind: 'failed'; detail: string };

/** What ListSync counts (ListSync.counters, SyncStatus.counters). */
export interface SyncCounters {
  polls: number;
  deltasApplied: number;
  snapshotsApplied: number;
  /** List updates refused (signature, checksum, order…). */
  rejected: number;
  httpFailures: number;
  /** Rounds whose back office certificate was refused. */
  tlsFailures: number;
  /** Answers without a good freshness statement (missing, unsigned, malformed, replayed, older). */
  freshnessRefused: number;
  issuerKeyUpdates: number;
  /** Trust-list documents refused (signature, or not newer than the one held). */
  issuerKeysRefused: number;
  listFileWrites: number;
  deltaLogAppends: number;
  deltasReplayed: number;
  /** Enforcement schedules taken, and refused (signature, payload, or not newer than the one held). */
  scheduleUpdates: number;
  schedulesRefused: number;
  /** Fare tables taken, and refused (signature, payload, or lower than the one held). */
  fareTableUpdates: number;
  fareTablesRefused: number;
}
