// Config sections of the `file` / `http-sync` list drivers and the `file` journal driver.
import { z } from 'zod';
import { alarmText } from '../../protocol/alarms.js';
import { trustedListKey, type TrustedListKey } from '../../protocol/lists/index.js';
import { ListFileError, loadListFile, type StoredLists } from '../lists/stored-lists.js';
import { ConfigError, parseDriverConfig } from '../config/config.js';
import { loadTlsTrust, transportProblem, type TlsTrust } from '../platform/https-client.js';
import type { IssuerKeysVerifier } from '../lists/issuer-keys.js';
import { FileJournal, JournalUnavailableError } from '../journal/file-journal.js';
import { checkReadableFile, prepareDirectory } from './startup-checks.js';
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
  const fix = 'provision the signed list snapshot there, or point lists.path at it';
  let keys;
  try {
    keys = c.publicKeys ? c.publicKeys.map(trustedListKey) : null;
  } catch (e) {
    throw new ConfigError(`lists.publicKeys: ${(e as Error).message}`);
  }
  await checkReadableFile(c.path, 'lists.path', fix, (m) => new ListFileError('list-file-missing', m));
  let lists: StoredLists;
  try {
    lists = await loadListFile(c.path, keys);
  } catch (e) {
    // Its message names the file and what is wrong with it; say which field and what to do.
    if (e instanceof ListFileError) throw new ListFileError(e.reason, `lists.path: ${e.message}; ${fix} (a snapshot the back office signed, unchanged)`);
    throw e;
  }
  return { current: () => lists };
}

/**
 * TLS for an https back office: the CA file its certificate must chain to (and name the host), and/or the
 * SHA-256 of its leaf's public key (SPKI) or whole certificate (DER), base64 or hex. Without this section an
 * https URL is checked against the system's CA store.
 */
const tlsSchema = z
  .object({
    caFile: z.string().min(1).optional(),
    pinSha256: z.array(z.string().min(1)).min(1).optional(),
  })
  .strict()
  .refine((t) => t.caFile !== undefined || t.pinSha256 !== undefined, 'give caFile, pinSha256 or both');

/** The transport checks and TLS files of one back-office link, at start-up: errors name the field. */
function backOfficeLink(where: { url: string; token: string; tls: string }, url: string, token: string | undefined, tls: z.infer<typeof tlsSchema> | undefined): TlsTrust | undefined {
  const wrongScheme = transportProblem(url, { tls: tls !== undefined });
  if (wrongScheme) throw new ConfigError(`${tls !== undefined ? where.tls : where.url}: ${wrongScheme}`);
  const clearToken = transportProblem(url, { token: token !== undefined });
  if (clearToken) throw new ConfigError(`${where.token}: ${clearToken}`);
  if (!tls) return undefined;
  try {
    return loadTlsTrust(tls);
  } catch (e) {
    throw new ConfigError(`${where.tls}.${(e as Error).message}`);
  }
}

const httpSyncSchema = z.looseObject({
  type: z.literal('http-sync'),
  url: z.url(),
  dir: z.string().min(1),
  publicKeys: z.array(z.string().min(1)).min(1, 'at least one back-office list signing key'),
  pollSeconds: z.number().min(0.05).max(86_400).default(30),
  maxBackoffSeconds: z.number().min(1).max(86_400).default(300),
  timeoutSeconds: z.number().min(1).max(600).default(30),
  /** Bearer token (role `gate`) when the back office asks for one; never in clear to another host (https). */
  token: z.string().min(16).optional(),
  tls: tlsSchema.optional(),
  /** Failed sync rounds in a row before the `list-sync-failing` alarm (a refused certificate: at once). */
  alarmAfterFailures: z.number().int().min(1).max(1000).default(3),
  /** Applied deltas are logged; the whole list file is rewritten once the log holds this many changes. */
  deltaLogMaxChanges: z.number().int().min(0).max(50_000_000).default(500_000),
});

export async function httpSyncFromConfig(raw: unknown, ctx: DriverContext): Promise<ListSync> {
  const c = parseDriverConfig(httpSyncSchema, raw, 'lists');
  await prepareDirectory(c.dir, 'lists.dir', '/var/lib/gate/lists', (m) => new ListFileError('list-dir-unusable', m));
  let keys;
  try {
    keys = c.publicKeys.map(trustedListKey);
  } catch (e) {
    throw new ConfigError(`lists.publicKeys: ${(e as Error).message}`);
  }
  const tls = backOfficeLink({ url: 'lists.url', token: 'lists.token', tls: 'lists.tls' }, c.url, c.token, c.tls);
  const sync = await ListSync.open({
    url: c.url,
    dir: c.dir,
    trustedKeys: keys,
    tls,
    issuerKeys: await issuerKeysFromConfig(ctx),
    // The enforcement schedule rides on list sync too; the provisioned file's seq is the floor.
    policySchedule: { provisionedSeq: await provisionedScheduleSeq(ctx, keys) },
    // A fare gate's table too, kept in its fare-table file (never a lower seq).
    fareTable: await syncedFareTable(ctx),
    alarmAfterFailures: c.alarmAfterFailures,
    pollMs: c.pollSeconds * 1000,
    maxBackoffMs: c.maxBackoffSeconds * 1000,
    timeoutMs: c.timeoutSeconds * 1000,
    token: c.token,
    logMaxChanges: c.deltaLogMaxChanges,
    // The lane's clock: polls, backoff and the reported age run on the same time as its stale-list check.
    clock: ctx.clock,
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
  /** Bearer token (role `gate`) when the back office asks for one; never in clear to another host (https). */
  uploadToken: z.string().min(16).optional(),
  uploadTls: tlsSchema.optional(),
  segmentBytes: z.number().int().min(4096).default(4 << 20),
  maxBytes: z.number().int().min(65536).default(1 << 30),
  uploadBatch: z.number().int().min(1).max(10_000).default(500),
  uploadIntervalMs: z.number().int().min(10).default(1000),
});

export async function fileJournalFromConfig(raw: unknown, ctx: DriverContext): Promise<FileJournal> {
  const c = parseDriverConfig(fileJournalSchema, raw, 'journal');
  await prepareDirectory(c.dir, 'journal.dir', '/var/lib/gate/journal', (m) => new JournalUnavailableError('io-error', m, { dir: c.dir, field: 'journal.dir' }));
  let uploadTls: TlsTrust | undefined;
  if (c.uploadUrl !== undefined) uploadTls = backOfficeLink({ url: 'journal.uploadUrl', token: 'journal.uploadToken', tls: 'journal.uploadTls' }, c.uploadUrl, c.uploadToken, c.uploadTls);
  else if (c.uploadTls !== undefined || c.uploadToken !== undefined) throw new ConfigError(`journal.${c.uploadTls !== undefined ? 'uploadTls' : 'uploadToken'}: given without journal.uploadUrl`);
  const j = await FileJournal.open({ ...c, uploadTls, laneId: ctx.laneId, log: ctx.log });
  j.onAlarm((a) => ctx.log.error({ ...a, text: alarmText(a) }, 'journal alarm'));
  return j;
}

/** The seq of the lane's `policy.scheduleFile` (-1: none, or it does not verify: start-lane raises that). */
async function provisionedScheduleSeq(ctx: DriverContext, keys: readonly TrustedListKey[]): Promise<number> {
  const file = ctx.config.policy.scheduleFile;
  if (file === undefined) return -1;
  const { scheduleFileSeq } = await import('../verify/policy-schedule.js');
  return scheduleFileSeq(file, keys);
}

/**
 * The issuer trust list rides on list sync when the lane has a `qr` section: each document fetched is
 * verified with the lane's `qr.backOfficeKeys` before it is written or handed on, and must be newer than the
 * provisioned `qr.trustList` (whose seq is read here) and than the one stored.
 */
async function issuerKeysFromConfig(ctx: DriverContext): Promise<{ verify: IssuerKeysVerifier; provisionedSeq: number } | undefined> {
  const section = (ctx.config as Record<string, unknown>).qr;
  if (section === undefined) return undefined;
  const { backOfficeKeysFrom, loadTrustListFile, qrConfigSchema } = await import('../verify/ride-codes.js');
  const { verifyTrustList } = await import('../../protocol/trust-list.js');
  const qr = parseDriverConfig(qrConfigSchema, section, 'qr');
  const keys = backOfficeKeysFrom(qr.backOfficeKeys);
  let provisionedSeq = -1;
  try {
    provisionedSeq = loadTrustListFile(qr.trustList, keys).seq;
  } catch (e) {
    throw new ConfigError(`qr.trustList: ${(e as Error).message}`);
  }
  const verify: IssuerKeysVerifier = (doc) => {
    const r = verifyTrustList(doc, keys);
    return r.ok ? { ok: true, seq: r.list.seq } : { ok: false, detail: `${r.error}: ${r.detail}` };
  };
  return { verify, provisionedSeq };
}

/** A lane with a `fares` section keeps its fare table in `fares.tablePath` (default `<lists.dir>/fare-table.json`), synced here. */
async function syncedFareTable(ctx: DriverContext): Promise<{ path: string } | undefined> {
  if (ctx.config.fares === undefined) return undefined;
  const { fareTablePath } = await import('./fare-lane.js');
  const path = fareTablePath(ctx.config);
  return path === undefined ? undefined : { path };
}
