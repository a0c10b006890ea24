// The station bus: what the lanes of a station, its station view and the back office say to each other
// through the station's MQTT broker. Topic tree, payload codecs and command signatures; pure (no I/O).
// Layout, one table per topic: protocol/README.md, "The station bus (MQTT 5)".

import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

/** Every topic starts with `gate/v1/`; a v2 layout would live beside it, never change v1 in place. */
export const BUS_ROOT = 'gate/v1';
/** The level that addresses the whole station (`gate/v1/<station>/station/cmd`); no lane may be called so. */
export const STATION_LEVEL = 'station';
export const NODE_ID = /^[A-Za-z0-9_-]{1,32}$/;
export const CODE_ID = /^[a-z0-9-]{1,32}:[0-9a-f]{16}$/;

/** What a lane publishes under its own level. */
export const LANE_LEAVES = ['online', 'state', 'used', 'alarm', 'stats', 'result'] as const;
export type LaneLeaf = (typeof LANE_LEAVES)[number] | 'cmd';

export function validNode(id: string): boolean {
  return NODE_ID.test(id) && id !== STATION_LEVEL;
}

export function laneTopic(station: string, lane: string, leaf: LaneLeaf): string {
  return `${BUS_ROOT}/${station}/${lane}/${leaf}`;
}
export function stationCommandTopic(station: string): string {
  return `${BUS_ROOT}/${station}/${STATION_LEVEL}/cmd`;
}

export type ParsedTopic = { station: string; lane: string; leaf: LaneLeaf } | { station: string; lane: typeof STATION_LEVEL; leaf: 'cmd' };

/** Split a topic of this tree; undefined for anything else (other versions, junk, wrong levels). */
export function parseTopic(topic: string): ParsedTopic | undefined {
  const p = topic.split('/');
  if (p.length !== 5 || `${p[0]}/${p[1]}` !== BUS_ROOT || !NODE_ID.test(p[2]) || !NODE_ID.test(p[3])) return undefined;
  const leaf = p[4] as LaneLeaf;
  if (p[3] === STATION_LEVEL) return leaf === 'cmd' ? { station: p[2], lane: STATION_LEVEL, leaf } : undefined;
  if (leaf !== 'cmd' && !(LANE_LEAVES as readonly string[]).includes(leaf)) return undefined;
  return { station: p[2], lane: p[3], leaf };
}

/** What a lane subscribes to: the station's used codes and alarms, its own commands and the station's. */
export function laneSubscriptions(station: string, lane: string): string[] {
  return [`${BUS_ROOT}/${station}/+/used`, `${BUS_ROOT}/${station}/+/alarm`, laneTopic(station, lane, 'cmd'), stationCommandTopic(station)];
}

/** What the station view subscribes to: everything its lanes publish. */
export function viewSubscriptions(station: string): string[] {
  return LANE_LEAVES.map((l) => `${BUS_ROOT}/${station}/+/${l}`);
}

// --- Payloads: UTF-8 JSON objects, `v: 1` -----------------------------------------------------------

export const PAYLOAD_VERSION = 1;
/**
 * No payload of this tree is longer; the broker refuses packets over 8 kB (`max_packet_size 8192`), so a
 * peer cannot make a lane parse big messages (a 20 kB batch cost a lane's event loop tens of ms in a flood).
 */
export const MAX_PAYLOAD = 4096;
/** Code ids per `used` message: one normally, up to this many when a lane republishes what it accepted. */
export const MAX_CODES_PER_MESSAGE = 64;

export type Decoded<T> = { ok: true; value: T } | { ok: false; why: string };

const isUint = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= Number.MAX_SAFE_INTEGER;
const isStr = (s: unknown, max: number): s is string => typeof s === 'string' && s.length <= max;

function parseJson(b: Uint8Array): Decoded<Record<string, unknown>> {
  if (b.byteLength > MAX_PAYLOAD) return { ok: false, why: 'too long' };
  let o: unknown;
  try {
    o = JSON.parse(Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8'));
  } catch {
    return { ok: false, why: 'not JSON' };
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return { ok: false, why: 'not an object' };
  const r = o as Record<string, unknown>;
  if (r.v !== PAYLOAD_VERSION) return { ok: false, why: 'version' };
  return { ok: true, value: r };
}

const enc = (o: object): Uint8Array => new Uint8Array(Buffer.from(JSON.stringify({ v: PAYLOAD_VERSION, ...o }), 'utf8'));

/** `used`: code ids this lane accepted, each with the last instant (ms since the epoch) it could be valid. */
export interface UsedMessage {
  codes: [string, number][];
}
export const encodeUsed = (m: UsedMessage): Uint8Array => enc(m);
export function decodeUsed(b: Uint8Array): Decoded<UsedMessage> {
  const j = parseJson(b);
  if (!j.ok) return j;
  const c = j.value.codes;
  if (!Array.isArray(c) || c.length === 0 || c.length > MAX_CODES_PER_MESSAGE) return { ok: false, why: 'codes' };
  const codes: [string, number][] = [];
  for (const e of c) {
    if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || !CODE_ID.test(e[0]) || !isUint(e[1])) return { ok: false, why: 'code entry' };
    codes.push([e[0], e[1]]);
  }
  return { ok: true, value: { codes } };
}

/** `online` (retained): birth when the lane connects, death as its will (or said on a clean stop). */
export interface OnlineMessage {
  online: boolean;
  /** Random per process start: a death naming an older boot than the birth seen is stale. */
  boot: string;
  atMs: number;
  /** Death only: `lost` (the broker published the will) or `stopped` (said by the lane). */
  cause?: 'lost' | 'stopped';
}
export const encodeOnline = (m: OnlineMessage): Uint8Array => enc(m);
export function decodeOnline(b: Uint8Array): Decoded<OnlineMessage> {
  const j = parseJson(b);
  if (!j.ok) return j;
  const o = j.value;
  if (typeof o.online !== 'boolean' || !isStr(o.boot, 32) || !isUint(o.atMs)) return { ok: false, why: 'fields' };
  if (o.cause !== undefined && o.cause !== 'lost' && o.cause !== 'stopped') return { ok: false, why: 'cause' };
  return { ok: true, value: { online: o.online, boot: o.boot, atMs: o.atMs, ...(o.cause ? { cause: o.cause } : {}) } };
}

/** `state` (retained): what a supervisor needs to see of a lane. No credential numbers, no refs. */
export interface LaneStateMessage {
  boot: string;
  atMs: number;
  mode: string;
  state: string;
  flaps: string;
  direction: string;
  listVersion: number;
  listAgeS: number;
  /** Barrier link: `up` or `down`. */
  link: 'up' | 'down';
  /** Each credential source's health: `ok` or its fault. */
  readers: Record<string, string>;
  /** Conditions that keep the lane from normal service (faults, emergency), by name with a short detail. */
  open: Record<string, string>;
  fireAlarm: boolean;
  /**
   * The enforcement schedule in force (absent: none, every kind enforced): its seq and, per scheduled
   * credential kind, the stage now and the next change (`nextAtMs`, `next`; absent once enforced).
   */
  schedule?: { seq: number; kinds: Record<string, { stage: string; nextAtMs?: number; next?: string }> };
  /** A lane with a fare gate: the degraded modes in force (`[]`: normal). Absent: no fare gate. */
  fareModes?: FareModeName[];
}
export const encodeLaneState = (m: LaneStateMessage): Uint8Array => enc(m);
export function decodeLaneState(b: Uint8Array): Decoded<LaneStateMessage> {
  const j = parseJson(b);
  if (!j.ok) return j;
  const o = j.value;
  const strRec = (r: unknown) => typeof r === 'object' && r !== null && !Array.isArray(r) && Object.keys(r).length <= 32 && Object.values(r).every((v) => isStr(v, 200));
  if (!isStr(o.boot, 32) || !isUint(o.atMs) || !isStr(o.mode, 32) || !isStr(o.state, 64) || !isStr(o.flaps, 32) || !isStr(o.direction, 32)) return { ok: false, why: 'fields' };
  if (!isUint(o.listVersion) || !isUint(o.listAgeS) || (o.link !== 'up' && o.link !== 'down') || !strRec(o.readers) || !strRec(o.open) || typeof o.fireAlarm !== 'boolean') return { ok: false, why: 'fields' };
  if (o.schedule !== undefined && !isSchedule(o.schedule)) return { ok: false, why: 'schedule' };
  if (o.fareModes !== undefined && !isFareModeSet(o.fareModes)) return { ok: false, why: 'fareModes' };
  const { v: _v, ...rest } = o;
  return { ok: true, value: rest as unknown as LaneStateMessage };
}

const STAGES: readonly unknown[] = ['not-enforced', 'advise', 'enforce'];
function isSchedule(s: unknown): boolean {
  const o = s as { seq?: unknown; kinds?: unknown };
  if (typeof s !== 'object' || s === null || !isUint(o.seq) || typeof o.kinds !== 'object' || o.kinds === null || Array.isArray(o.kinds)) return false;
  const kinds = Object.entries(o.kinds);
  return kinds.length <= 8 && kinds.every(([k, v]) => {
    const x = v as { stage?: unknown; nextAtMs?: unknown; next?: unknown };
    return NODE_ID.test(k) && typeof v === 'object' && v !== null && STAGES.includes(x.stage) && (x.nextAtMs === undefined || isUint(x.nextAtMs)) && (x.next === undefined || STAGES.includes(x.next));
  });
}

/** `alarm`: one alarm as it is raised (QoS 1). The fire alarm of one lane opens every lane of the station. */
export interface AlarmMessage {
  alarm: string;
  detail?: string;
  atMs: number;
}
export const encodeAlarm = (m: AlarmMessage): Uint8Array => enc(m);
export function decodeAlarm(b: Uint8Array): Decoded<AlarmMessage> {
  const j = parseJson(b);
  if (!j.ok) return j;
  const o = j.value;
  if (!isStr(o.alarm, 64) || !NODE_ID.test(o.alarm) || !isUint(o.atMs) || (o.detail !== undefined && !isStr(o.detail, 500))) return { ok: false, why: 'fields' };
  return { ok: true, value: { alarm: o.alarm, atMs: o.atMs, ...(o.detail !== undefined ? { detail: o.detail } : {}) } };
}

/** `stats`: decisions in one minute [fromMs, toMs), counted by reason code. */
export interface StatsMessage {
  fromMs: number;
  toMs: number;
  granted: number;
  refused: number;
  byReason: Record<string, number>;
}
export const encodeStats = (m: StatsMessage): Uint8Array => enc(m);
export function decodeStats(b: Uint8Array): Decoded<StatsMessage> {
  const j = parseJson(b);
  if (!j.ok) return j;
  const o = j.value;
  const br = o.byReason;
  if (!isUint(o.fromMs) || !isUint(o.toMs) || !isUint(o.granted) || !isUint(o.refused)) return { ok: false, why: 'fields' };
  if (typeof br !== 'object' || br === null || Array.isArray(br) || !Object.entries(br).every(([k, v]) => NODE_ID.test(k) && isUint(v))) return { ok: false, why: 'byReason' };
  return { ok: true, value: { fromMs: o.fromMs, toMs: o.toMs, granted: o.granted, refused: o.refused, byReason: br as Record<string, number> } };
}

// --- Commands: signed by a supervisor, expiring, answered on `result` --------------------------------

export const COMMAND_ACTIONS = ['set-mode', 'reset-emergency', 'station-emergency', 'reload', 'fare-mode'] as const;
export type CommandAction = (typeof COMMAND_ACTIONS)[number];
export const COMMAND_MODES = ['normal', 'free', 'maintenance', 'closed'] as const;
/**
 * The fare gate's degraded modes (GB 50157), as `fare-mode` names them: each relaxes one check. A command
 * carries the whole set in force (none: normal), in this order, so one set has one signed form.
 */
export const FARE_MODES = ['waive-order', 'waive-time', 'waive-fare', 'train-failure', 'emergency-release'] as const;
export type FareModeName = (typeof FARE_MODES)[number];

/** The names in FARE_MODES order, each once: the only form a command or a state carries. */
export function isFareModeSet(v: unknown): v is FareModeName[] {
  if (!Array.isArray(v) || v.length > FARE_MODES.length) return false;
  let last = -1;
  for (const m of v) {
    const i = (FARE_MODES as readonly unknown[]).indexOf(m);
    if (i <= last) return false;
    last = i;
  }
  return true;
}

/** Any list of names → the canonical set (unknown names dropped). */
export function fareModeSet(names: readonly string[]): FareModeName[] {
  return FARE_MODES.filter((m) => names.includes(m));
}

export interface Command {
  /** 16-32 hex digits, fresh per command: the replay key. */
  id: string;
  station: string;
  /** A lane id, or `station` for every lane of the station (only on the station topic). */
  lane: string;
  action: CommandAction;
  /** set-mode: `{ mode }`; station-emergency: `{ active }`; fare-mode: `{ fareModes }`; others: `{}`. */
  args: { mode?: (typeof COMMAND_MODES)[number]; active?: boolean; fareModes?: FareModeName[] };
  /** The supervisor who issued it (key id in the lanes' config). */
  by: string;
  issuedAtMs: number;
  expiresAtMs: number;
}
export interface SignedCommand extends Command {
  /** Base64 Ed25519 signature over commandSignedBytes(). */
  sig: string;
}

/** The exact bytes a supervisor signs: a domain tag and the fields in a fixed order. */
export function commandSignedBytes(c: Command): Uint8Array {
  // fare-mode's set is a third element, present only there: every earlier command signs as it did.
  const args: unknown[] = [c.args.mode ?? null, c.args.active ?? null];
  if (c.args.fareModes !== undefined) args.push(c.args.fareModes);
  return new Uint8Array(Buffer.from(`gate-command-v1\n${JSON.stringify([c.id, c.station, c.lane, c.action, args, c.by, c.issuedAtMs, c.expiresAtMs])}`, 'utf8'));
}

export function signCommand(c: Command, privateKey: KeyObject): SignedCommand {
  return { ...c, sig: sign(null, commandSignedBytes(c), privateKey).toString('base64') };
}

export function commandSignatureOk(c: SignedCommand, publicKey: KeyObject): boolean {
  try {
    return verify(null, commandSignedBytes(c), publicKey, Buffer.from(c.sig, 'base64'));
  } catch {
    return false;
  }
}

export const encodeCommand = (c: SignedCommand | Command): Uint8Array => enc(c);

/** Shape only; the signature, expiry, replay and authority are the lane's to check (firmware/station/commands.ts). */
export function decodeCommand(b: Uint8Array): Decoded<Command & { sig?: string }> {
  const j = parseJson(b);
  if (!j.ok) return j;
  const o = j.value;
  if (!isStr(o.id, 32) || !/^[0-9a-f]{16,32}$/.test(o.id)) return { ok: false, why: 'id' };
  if (!isStr(o.station, 32) || !NODE_ID.test(o.station) || !isStr(o.lane, 32) || !NODE_ID.test(o.lane)) return { ok: false, why: 'station/lane' };
  if (!(COMMAND_ACTIONS as readonly unknown[]).includes(o.action)) return { ok: false, why: 'action' };
  if (!isStr(o.by, 32) || !NODE_ID.test(o.by)) return { ok: false, why: 'by' };
  if (!isUint(o.issuedAtMs) || !isUint(o.expiresAtMs)) return { ok: false, why: 'times' };
  if (o.sig !== undefined && !(isStr(o.sig, 100) && /^[A-Za-z0-9+/]{86}==$/.test(o.sig))) return { ok: false, why: 'sig' };
  const a = o.args;
  if (typeof a !== 'object' || a === null || Array.isArray(a)) return { ok: false, why: 'args' };
  const args = a as Record<string, unknown>;
  const action = o.action as CommandAction;
  let clean: Command['args'];
  if (action === 'set-mode') {
    if (!(COMMAND_MODES as readonly unknown[]).includes(args.mode) || Object.keys(args).length !== 1) return { ok: false, why: 'args' };
    clean = { mode: args.mode as Command['args']['mode'] };
  } else if (action === 'fare-mode') {
    if (!isFareModeSet(args.fareModes) || Object.keys(args).length !== 1) return { ok: false, why: 'args' };
    clean = { fareModes: [...args.fareModes] };
  } else if (action === 'station-emergency') {
    if (typeof args.active !== 'boolean' || Object.keys(args).length !== 1) return { ok: false, why: 'args' };
    clean = { active: args.active };
  } else {
    if (Object.keys(args).length !== 0) return { ok: false, why: 'args' };
    clean = {};
  }
  const c: Command & { sig?: string } = { id: o.id, station: o.station, lane: o.lane, action, args: clean, by: o.by, issuedAtMs: o.issuedAtMs, expiresAtMs: o.expiresAtMs };
  if (o.sig !== undefined) c.sig = o.sig as string;
  return { ok: true, value: c };
}

/** Why a lane refused a command (counted and logged with who). */
export const COMMAND_REFUSALS = ['malformed', 'unsigned', 'unknown-supervisor', 'bad-signature', 'wrong-station', 'wrong-lane', 'expired', 'not-yet-valid', 'too-long-lived', 'replayed', 'replay-store-full', 'unauthorised', 'failed'] as const;
export type CommandRefusal = (typeof COMMAND_REFUSALS)[number];

/** `result`: the lane's answer to one command. */
export interface ResultMessage {
  id: string;
  action: string;
  by: string;
  ok: boolean;
  refusal?: CommandRefusal;
  detail?: string;
  atMs: number;
  /** The lane's mode after the command. */
  mode: string;
}
export const encodeResult = (m: ResultMessage): Uint8Array => enc(m);
export function decodeResult(b: Uint8Array): Decoded<ResultMessage> {
  const j = parseJson(b);
  if (!j.ok) return j;
  const o = j.value;
  if (!isStr(o.id, 32) || !isStr(o.action, 32) || !isStr(o.by, 32) || typeof o.ok !== 'boolean' || !isUint(o.atMs) || !isStr(o.mode, 32)) return { ok: false, why: 'fields' };
  if (o.refusal !== undefined && !(COMMAND_REFUSALS as readonly unknown[]).includes(o.refusal)) return { ok: false, why: 'refusal' };
  if (o.detail !== undefined && !isStr(o.detail, 500)) return { ok: false, why: 'detail' };
  const { v: _v, ...rest } = o;
  return { ok: true, value: rest as unknown as ResultMessage };
}

// --- Supervisor keys -----------------------------------------------------------------------------

/** Raw 32-byte Ed25519 public key (base64, as in lane configs) → KeyObject. */
export function supervisorPublicKey(b64: string): KeyObject {
  const raw = Buffer.from(b64, 'base64');
  if (raw.length !== 32) throw new Error('an Ed25519 public key is 32 bytes');
  return createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]), format: 'der', type: 'spki' });
}

/** PEM or raw-32-byte-base64 Ed25519 private key → KeyObject. */
export function supervisorPrivateKey(text: string): KeyObject {
  const t = text.trim();
  if (t.startsWith('-----')) return createPrivateKey(t);
  const raw = Buffer.from(t, 'base64');
  if (raw.length !== 32) throw new Error('an Ed25519 private key is 32 bytes (or PEM)');
  return createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), raw]), format: 'der', type: 'pkcs8' });
}

/** The raw 32-byte public key of a KeyObject, base64 (for lane configs). */
export function rawPublicKeyB64(k: KeyObject): string {
  const der = (k.type === 'private' ? createPublicKey(k) : k).export({ format: 'der', type: 'spki' });
  return Buffer.from(der.subarray(der.length - 32)).toString('base64');
}
