// Config sections of the `file` / `http-sync` list drivers and the `file` journal driver.
import { z } from 'zod';
import { alarmText } from '../../protocol/alarms.js';
import { trustedListKey } from '../../protocol/lists/index.js';
import { loadListFile, type StoredLists } from '../lists/stored-lists.js';
import { ConfigError, parseDriverConfig } from '../config/config.js';
import { FileJournal } from '../journal/file-journal.js';
import type { ListProvider } from '../lists/list-provider.js';
import { ListSync } from '../lists/list-sync.js';
import type { DriverContext } from './driver-context.js';

const fileListsSchema = z.looseObject({
  type: z.literal('file'),
  /** Snapshot file (protocol/lists/). */
  path: z.string().min(1),
  /** When given, the file must carry a back-office signature by one of these keys (PEM or base64 SPKI). */
  publicKeys: z.array(z.string().min(1)).optional(),
});

export async function fileListsFromConfig(raw: unknown): Promise<ListProvider> {
  const c = parseDriverConfig(fileListsSchema, raw, 'lists');
  const lists: StoredLists = await loadListFile(c.path, c.publicKeys ? c.publicKeys.map(trustedListKey) : null);
  return { current: () => lists };
}

const httpSyncSchema = z.looseObject({
  type: z.literal('http-sync'),
  url: z.url(),
  dir: z.string().min(1),
  publicKeys: z.array(z.string().min(1)).min(1, 'at least one back-office list signing key'),
  pollSeconds: z.number().min(0.05).max(86_400).default(30),
  maxBackoffSeconds: z.number().min(1).max(86_400).default(300),
  timeoutSeconds: z.number().min(1).max(600).default(30),
  /** Bearer token (role `gate`) when the back office asks for one. */
  token: z.string().min(16).optional(),
  /** Applied deltas are logged; the whole list file is rewritten once the log holds this many changes. */
  deltaLogMaxChanges: z.number().int().min(0).max(50_000_000).default(500_000),
});

export async function httpSyncFromConfig(raw: unknown, ctx: DriverContext): Promise<ListSync> {
  const c = parseDriverConfig(httpSyncSchema, raw, 'lists');
  let keys;
  try {
    keys = c.publicKeys.map(trustedListKey);
  } catch (e) {
    throw new ConfigError(`lists.publicKeys: ${(e as Error).message}`);
  }
  const sync = await ListSync.open({
    url: c.url,
    dir: c.dir,
    trustedKeys: keys,
    pollMs: c.pollSeconds * 1000,
    maxBackoffMs: c.maxBackoffSeconds * 1000,
    timeoutMs: c.timeoutSeconds * 1000,
    token: c.token,
    logMaxChanges: c.deltaLogMaxChanges,
    log: ctx.log,
  });
  sync.onAlarm((a) => ctx.log.error({ ...a, text: alarmText(a) }, 'list sync alarm'));
  sync.start();
  return sync;
}

const fileJournalSchema = z.looseObject({
  type: z.literal('file'),
  dir: z.string().min(1),
  uploadUrl: z.url().optional(),
  /** Bearer token (role `gate`) when the back office asks for one. */
  uploadToken: z.string().min(16).optional(),
  segmentBytes: z.number().int().min(4096).default(4 << 20),
  maxBytes: z.number().int().min(65536).default(1 << 30),
  uploadBatch: z.number().int().min(1).max(10_000).default(500),
  uploadIntervalMs: z.number().int().min(10).default(1000),
});

export async function fileJournalFromConfig(raw: unknown, ctx: DriverContext): Promise<FileJournal> {
  const c = parseDriverConfig(fileJournalSchema, raw, 'journal');
  const j = await FileJournal.open({ ...c, laneId: ctx.laneId, log: ctx.log });
  j.onAlarm((a) => ctx.log.error({ ...a, text: alarmText(a) }, 'journal alarm'));
  return j;
}
