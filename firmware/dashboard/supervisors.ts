// Who may act on a lane from the dashboard: supervisors by name, each with a password stored only as a
// salted scrypt hash (node:crypto) in a small JSON file that `gate supervisor add` writes. The runtime
// reads the file again when it changes, so a supervisor added or removed counts at the next login or
// action without a restart.

import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { ConfigError } from '../config/config.js';

/** 1-32 characters, starting with a letter or digit: what is logged and journaled as "who". */
export const SUPERVISOR_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,31}$/;
export const PASSWORD_MIN = 10;
export const PASSWORD_MAX = 256;
/** The supervisors file is small; anything bigger is not one. */
const MAX_FILE_BYTES = 1 << 20;

export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  N: number;
  r: number;
  p: number;
}

/** 2^15 × 8 × 128 bytes = 32 MiB and some tens of ms per check: costly to guess, cheap for one login. */
export const DEFAULT_SCRYPT: ScryptParams = { N: 1 << 15, r: 8, p: 1 };
const KEY_BYTES = 32;
const SALT_BYTES = 16;

function derive(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  const opts: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r + (1 << 20) };
  // The async form runs on libuv's pool: a login never stalls the lane's event loop.
  return new Promise((resolve, reject) => scrypt(password.normalize('NFC'), salt, KEY_BYTES, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

/** `scrypt$N$r$p$<salt base64>$<key base64>`: the parameters travel with the hash, so they can change later. */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, params);
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

const HASH = /^scrypt\$(\d{1,8})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9+/=]{4,64})\$([A-Za-z0-9+/=]{16,128})$/;

/** A stored hash's parts, or why it is not one. */
export function parseHash(encoded: string): { ok: true; params: ScryptParams; salt: Buffer; key: Buffer } | { ok: false; why: string } {
  const m = HASH.exec(encoded);
  if (!m) return { ok: false, why: 'not a "scrypt$N$r$p$salt$key" hash (write it with `gate supervisor add`)' };
  const params = { N: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  if (params.N < 2 || (params.N & (params.N - 1)) !== 0 || params.N > 1 << 20) return { ok: false, why: `N=${params.N} is not a power of two up to 2^20` };
  if (params.r < 1 || params.r > 32 || params.p < 1 || params.p > 16) return { ok: false, why: 'r or p out of range' };
  return { ok: true, params, salt: Buffer.from(m[4], 'base64'), key: Buffer.from(m[5], 'base64') };
}

export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const h = parseHash(encoded);
  if (!h.ok) return false;
  const key = await derive(password, h.salt, h.params);
  return key.length === h.key.length && timingSafeEqual(key, h.key);
}

/** The file's shape: `{ "version": 1, "supervisors": { "<name>": { "hash": "scrypt$…", "added": "<ISO time>" } } }`. */
export interface SupervisorsDocument {
  version: 1;
  supervisors: Record<string, { hash: string; added?: string }>;
}

/** Read a supervisors document; a ConfigError names the file and what is wrong. */
export function parseSupervisors(text: string, file: string): SupervisorsDocument {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`supervisors file ${file} is not valid JSON (${(e as Error).message}); rewrite it with \`gate supervisor add\``);
  }
  const doc = raw as Partial<SupervisorsDocument> | null;
  if (!doc || typeof doc !== 'object' || doc.version !== 1 || !doc.supervisors || typeof doc.supervisors !== 'object' || Array.isArray(doc.supervisors)) {
    throw new ConfigError(`supervisors file ${file} is not a supervisors file (want { "version": 1, "supervisors": { … } }); write it with \`gate supervisor add\``);
  }
  const out: SupervisorsDocument = { version: 1, supervisors: {} };
  for (const [name, entry] of Object.entries(doc.supervisors)) {
    if (!SUPERVISOR_NAME.test(name)) throw new ConfigError(`supervisors file ${file}: "${name.slice(0, 40)}" is not a supervisor name (1-32 of A-Z a-z 0-9 . _ @ -)`);
    const hash = (entry as { hash?: unknown } | null)?.hash;
    const h = typeof hash === 'string' ? parseHash(hash) : { ok: false as const, why: 'no "hash"' };
    if (!h.ok) throw new ConfigError(`supervisors file ${file}: supervisor "${name}": ${h.why}`);
    const added = (entry as { added?: unknown }).added;
    out.supervisors[name] = typeof added === 'string' ? { hash: hash as string, added } : { hash: hash as string };
  }
  return out;
}

export function formatSupervisors(doc: SupervisorsDocument): string {
  const sorted = Object.fromEntries(Object.entries(doc.supervisors).sort(([a], [b]) => a.localeCompare(b)));
  return JSON.stringify({ version: 1, supervisors: sorted }, null, 2) + '\n';
}

/** Where the dashboard looks supervisors up. */
export interface SupervisorDirectory {
  /** The file it reads (for messages). */
  readonly file: string;
  /** True when the name and password match an entry (always takes one scrypt computation, known name or not). */
  verify(name: string, password: string): Promise<boolean>;
  /** Whether the name is (still) a supervisor. */
  has(name: string): Promise<boolean>;
}

/** A hash of a password nobody has, checked for unknown names so that they take as long as known ones. */
let dummyHash: Promise<string> | undefined;

/**
 * The supervisors file, read at start-up (a missing or bad file fails then, naming it) and again whenever
 * its size or modification time changes. A file that turns bad later keeps the last good list and logs.
 */
export async function openSupervisorFile(file: string, onReloadError: (message: string) => void = () => {}): Promise<SupervisorDirectory> {
  let doc: SupervisorsDocument;
  let seen = '';
  const read = async (): Promise<void> => {
    const st = await stat(file);
    const stamp = `${st.size}:${st.mtimeMs}:${st.ino}`;
    if (stamp === seen) return;
    if (!st.isFile() || st.size > MAX_FILE_BYTES) throw new ConfigError(`supervisors file ${file} is not a regular file under ${MAX_FILE_BYTES} bytes`);
    doc = parseSupervisors(await readFile(file, 'utf8'), file);
    seen = stamp;
  };
  try {
    await read();
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new ConfigError(`dashboard.control.supervisors: cannot read ${file} (${code}); create it with \`gate supervisor add <name> --file ${file}\` or fix the path`);
  }
  const fresh = async () => {
    try {
      await read();
    } catch (e) {
      onReloadError(`supervisors file ${file}: ${(e as Error).message}; keeping the last good list`);
    }
    return doc;
  };
  return {
    file,
    async verify(name, password) {
      const d = await fresh();
      const entry = SUPERVISOR_NAME.test(name) && Object.hasOwn(d.supervisors, name) ? d.supervisors[name] : undefined;
      if (!entry) {
        dummyHash ??= hashPassword(randomBytes(18).toString('base64'));
        await verifyPassword(password, await dummyHash);
        return false;
      }
      return verifyPassword(password, entry.hash);
    },
    async has(name) {
      return Object.hasOwn((await fresh()).supervisors, name);
    },
  };
}
