// Why this file is long: it is one wire format, and each frame type's encoding and decoding sit side by side
// (with the resyncing reader that decodes them), so a frame's two halves are read, and changed, together.
// Byte frames of the serial link between the runtime and the barrier controller board.
// Pure: no I/O, no timers. Byte tables: protocol/README.md, section "Barrier link frames".
//
// Every frame is FRAME_LENGTH bytes: start, version, seq, type, 6 payload bytes, CRC-16 (big-endian).
// Fixed length lets @serialport/parser-byte-length slice the stream; FrameReader re-aligns it after a
// dropped, inserted or corrupted byte by scanning for the next start byte whose frame has a valid CRC.

import { GateError, GateErrorCode } from './errors.js';
import { bcdDate, dateToBcd } from './apdu.js';
import type { BarrierCommand, BarrierEvent, BarrierMode, BodyExit, Buzzer, FlapPosition, FlapRegime, Indicator } from './barrier.js';
import type { Direction } from './credential.js';

export const FRAME_LENGTH = 12;
export const FRAME_START = 0xa5;
export const FRAME_VERSION = 0x01;
export const PAYLOAD_LENGTH = 6;

/** Events a board sends over the wire (LINK and COMMAND_FAILED are made by the driver, never sent). */
export type BoardEvent = Exclude<BarrierEvent, { type: 'LINK' } | { type: 'COMMAND_FAILED' }>;

export type NackReason = 'bad-payload' | 'unsupported' | 'refused' | 'busy';

/**
 * Command types a board reports as its last executed command in SESSION_ACK: the ones that act
 * (STATUS_REQUEST and SESSION only report, so they are never "the last executed command").
 */
export type ActingCommandType = Exclude<BarrierCommand['type'], 'STATUS_REQUEST'>;

/** One decoded frame. `seq` of ACK/NACK/EVENT_ACK/SESSION_ACK is the seq of the frame they answer. */
export type LinkFrame =
  /** runtime → board, sequenced, answered by ACK or NACK */
  | { type: 'COMMAND'; seq: number; command: BarrierCommand }
  /**
   * runtime → board, sequenced like a command, answered by SESSION_ACK (or NACK `unsupported` from a board
   * without sessions). `session`: 1..0xFFFFFFFF, random per runtime start.
   */
  | { type: 'SESSION'; seq: number; session: number }
  /**
   * board → runtime: answers SESSION `seq`. `session`: the session the board now serves (the one asked for);
   * `fresh`: this SESSION started it (the board served another session, or none, and forgot its memory);
   * `last`: the last acting command the board executed in this session before this SESSION (absent: none).
   */
  | { type: 'SESSION_ACK'; seq: number; session: number; fresh: boolean; last?: { seq: number; command: ActingCommandType } }
  /** board → runtime, sequenced, answered by EVENT_ACK */
  | { type: 'EVENT'; seq: number; event: BoardEvent }
  /** board → runtime: command `seq` (of frame type `of`) accepted */
  | { type: 'ACK'; seq: number; of: number }
  /** board → runtime: command `seq` refused */
  | { type: 'NACK'; seq: number; of: number; reason: NackReason }
  /** runtime → board: event `seq` (of frame type `of`) received */
  | { type: 'EVENT_ACK'; seq: number; of: number }
  /** either way, unacknowledged; seq is a free-running counter */
  | { type: 'HEARTBEAT'; seq: number; from: 'runtime' | 'board' };

/** Frame type codes (byte 3). Runtime → board below 0x80, board → runtime from 0x80. */
export const TYPE = {
  OPEN: 0x01,
  CLOSE: 0x02,
  SET_MODE: 0x03,
  INDICATE: 0x04,
  DISPLAY: 0x05,
  STATUS_REQUEST: 0x06,
  HEARTBEAT_RUNTIME: 0x07,
  EVENT_ACK: 0x08,
  SESSION: 0x09,
  DISPLAY_DATE: 0x0d,
  SET_FLAP_REGIME: 0x0a,
  FAST_CLOSE: 0x0b,
  AUTHORISE: 0x0c,
  PASSED: 0x81,
  TAILGATE: 0x82,
  INTRUSION: 0x83,
  OBSTRUCTION: 0x84,
  FAULT: 0x85,
  FIRE_ALARM: 0x86,
  EMERGENCY_BUTTON: 0x87,
  POWER: 0x88,
  FLAPS: 0x89,
  STATUS: 0x8a,
  ACK: 0x8b,
  NACK: 0x8c,
  HEARTBEAT_BOARD: 0x8d,
  SESSION_ACK: 0x8e,
  BODY_ENTERED: 0x90,
  BODY_AT_FLAPS: 0x91,
  BODY_LEFT: 0x92,
} as const;

const DIRECTIONS: readonly Direction[] = ['entry', 'exit']; // wire 1, 2
const MODES: readonly BarrierMode[] = ['normal', 'free', 'emergency', 'locked']; // wire 0..3
const INDICATORS: readonly Indicator[] = ['off', 'green-arrow', 'red-cross'];
const BUZZERS: readonly Buzzer[] = ['off', 'short', 'long', 'alarm'];
const FLAPS: readonly FlapPosition[] = ['closed', 'opening', 'open', 'closing', 'unknown'];
const POWER: readonly ('mains' | 'battery' | 'low-battery')[] = ['mains', 'battery', 'low-battery'];
const NACKS: readonly NackReason[] = ['bad-payload', 'unsupported', 'refused', 'busy']; // wire 1..4
const REGIMES: readonly FlapRegime[] = ['normally-closed', 'normally-open']; // wire 0, 1
const BODY_EXITS: readonly BodyExit[] = ['passed', 'intruded', 'turned-back']; // wire 1..3
/** Acting command types by wire code (SESSION_ACK byte 5 bits 0-6): 0x01..0x05, 0x0A..0x0D. */
const ACTING = new Map<number, ActingCommandType>(
  (['OPEN', 'CLOSE', 'SET_MODE', 'INDICATE', 'DISPLAY', 'DISPLAY_DATE', 'SET_FLAP_REGIME', 'FAST_CLOSE', 'AUTHORISE'] as const).map((t) => [TYPE[t], t]),
);

/** CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0 ("123456789" → 0x29B1). */
export function crc16(buf: Uint8Array, start = 0, end = buf.length): number {
  let crc = 0xffff;
  for (let i = start; i < end; i++) {
    crc ^= buf[i] << 8;
    for (let b = 0; b < 8; b++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

// Table-driven variant for the reader's hot path (same result as crc16).
const CRC_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let b = 0; b < 8; b++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

function crcFast(buf: Uint8Array, start: number, end: number): number {
  let crc = 0xffff;
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ CRC_TABLE[((crc >> 8) ^ buf[i]) & 0xff];
  return crc;
}

/** The frame type code a frame is sent with. */
export function typeCode(f: LinkFrame): number {
  switch (f.type) {
    case 'COMMAND':
      return TYPE[f.command.type];
    case 'EVENT':
      return TYPE[f.event.type];
    case 'ACK':
      return TYPE.ACK;
    case 'NACK':
      return TYPE.NACK;
    case 'EVENT_ACK':
      return TYPE.EVENT_ACK;
    case 'SESSION':
      return TYPE.SESSION;
    case 'SESSION_ACK':
      return TYPE.SESSION_ACK;
    case 'HEARTBEAT':
      return f.from === 'runtime' ? TYPE.HEARTBEAT_RUNTIME : TYPE.HEARTBEAT_BOARD;
  }
}

/**
 * Thrown only for a frame the caller built wrong (a programming error), never for received bytes.
 * A GateError with code GateErrorCode.FrameEncode (`isGateError(e, GateErrorCode.FrameEncode)`).
 */
export class FrameEncodeError extends GateError {
  constructor(message: string) {
    super(message, GateErrorCode.FrameEncode);
    this.name = 'FrameEncodeError';
  }
}

function u8(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new FrameEncodeError(`${what} must be 0..255, got ${v}`);
  return v;
}
function u16(p: Uint8Array, at: number, v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new FrameEncodeError(`${what} must be 0..65535, got ${v}`);
  p[at] = v >> 8;
  p[at + 1] = v & 0xff;
}
function u32(p: Uint8Array, at: number, v: number, what: string, min = 0): void {
  if (!Number.isInteger(v) || v < min || v > 0xffffffff) throw new FrameEncodeError(`${what} must be ${min}..4294967295, got ${v}`);
  p[at] = v >>> 24;
  p[at + 1] = (v >>> 16) & 0xff;
  p[at + 2] = (v >>> 8) & 0xff;
  p[at + 3] = v & 0xff;
}
/** A calendar day YYYY-MM-DD ↔ 4 BCD bytes YYYY MM DD, as T-Union cards store dates (apdu.ts): a real day from 1990. */
function bcdDay(p: Uint8Array, at: number, day: string): void {
  const n = /^\d{4}-\d{2}-\d{2}$/.test(day) ? Number(day.replaceAll('-', '')) : 0;
  const bytes = dateToBcd(n);
  if (bcdDate(bytes) !== n) throw new FrameEncodeError(`day must be a calendar day YYYY-MM-DD from 1990, got ${JSON.stringify(day)}`);
  p.set(bytes, at);
}
function dayFromBcd(b: Uint8Array): string | undefined {
  const d = bcdDate(b);
  return d === undefined ? undefined : `${String(d).slice(0, 4)}-${String(d).slice(4, 6)}-${String(d).slice(6, 8)}`;
}

function body(v: number): number {
  if (!Number.isInteger(v) || v < 1 || v > 0xff) throw new FrameEncodeError(`body must be 1..255, got ${v}`);
  return v;
}
function idx<T>(table: readonly T[], v: T, what: string, base = 0): number {
  const i = table.indexOf(v);
  if (i < 0) throw new FrameEncodeError(`unknown ${what} ${String(v)}`);
  return i + base;
}

/** Encode one frame into FRAME_LENGTH bytes. */
export function encodeFrame(f: LinkFrame): Uint8Array {
  const out = new Uint8Array(FRAME_LENGTH);
  out[0] = FRAME_START;
  out[1] = FRAME_VERSION;
  out[2] = u8(f.seq, 'seq');
  out[3] = typeCode(f);
  const p = out.subarray(4, 4 + PAYLOAD_LENGTH);
  switch (f.type) {
    case 'COMMAND': {
      const c = f.command;
      switch (c.type) {
        case 'OPEN':
          p[0] = idx(DIRECTIONS, c.direction, 'direction', 1);
          p[1] = u8(c.passages, 'passages');
          break;
        case 'SET_MODE':
          p[0] = idx(MODES, c.mode, 'mode');
          break;
        case 'INDICATE':
          p[0] = idx(INDICATORS, c.indicator, 'indicator');
          p[1] = idx(BUZZERS, c.buzzer, 'buzzer');
          break;
        case 'DISPLAY':
          u16(p, 0, c.textId, 'textId');
          break;
        case 'DISPLAY_DATE':
          u16(p, 0, c.textId, 'textId');
          bcdDay(p, 2, c.day);
          break;
        case 'SET_FLAP_REGIME':
          p[0] = idx(REGIMES, c.regime, 'flap regime');
          break;
        case 'AUTHORISE':
          p[0] = idx(DIRECTIONS, c.direction, 'direction', 1);
          p[1] = body(c.body);
          break;
        case 'CLOSE':
        case 'STATUS_REQUEST':
        case 'FAST_CLOSE':
          break;
      }
      break;
    }
    case 'EVENT': {
      const e = f.event;
      switch (e.type) {
        case 'PASSED':
        case 'INTRUSION':
          p[0] = idx(DIRECTIONS, e.direction, 'direction', 1);
          break;
        case 'FAULT':
          u16(p, 0, e.code, 'fault code');
          break;
        case 'FIRE_ALARM':
        case 'EMERGENCY_BUTTON':
          p[0] = e.active ? 1 : 0;
          break;
        case 'POWER':
          p[0] = idx(POWER, e.state, 'power state');
          break;
        case 'FLAPS':
          p[0] = idx(FLAPS, e.position, 'flap position');
          break;
        case 'STATUS':
          p[0] = idx(FLAPS, e.flaps, 'flap position');
          p[1] = idx(MODES, e.mode, 'mode');
          u16(p, 2, e.faultCode, 'fault code');
          p[4] = e.fireAlarm ? 1 : 0;
          break;
        case 'BODY_ENTERED':
          p[0] = idx(DIRECTIONS, e.direction, 'direction', 1);
          p[1] = body(e.body);
          u16(p, 2, e.etaMs, 'etaMs');
          break;
        case 'BODY_AT_FLAPS':
          p[0] = idx(DIRECTIONS, e.direction, 'direction', 1);
          p[1] = body(e.body);
          break;
        case 'BODY_LEFT':
          p[0] = idx(DIRECTIONS, e.direction, 'direction', 1);
          p[1] = body(e.body);
          p[2] = idx(BODY_EXITS, e.way, 'body exit', 1);
          break;
        case 'TAILGATE':
        case 'OBSTRUCTION':
          break;
      }
      break;
    }
    case 'ACK':
    case 'EVENT_ACK':
      p[0] = u8(f.of, 'acknowledged type');
      break;
    case 'NACK':
      p[0] = u8(f.of, 'acknowledged type');
      p[1] = idx(NACKS, f.reason, 'nack reason', 1);
      break;
    case 'SESSION':
      u32(p, 0, f.session, 'session', 1);
      break;
    case 'SESSION_ACK':
      u32(p, 0, f.session, 'session', 1);
      if (f.last) {
        if (f.fresh) throw new FrameEncodeError('a fresh session has no last executed command');
        p[4] = u8(f.last.seq, 'last executed seq');
        if (p[4] === 0) throw new FrameEncodeError('last executed seq must be 1..255');
        if (!ACTING.has(TYPE[f.last.command])) throw new FrameEncodeError(`unknown acting command type ${String(f.last.command)}`);
        p[5] = TYPE[f.last.command];
      }
      if (f.fresh) p[5] |= 0x80;
      break;
    case 'HEARTBEAT':
      break;
  }
  const crc = crcFast(out, 0, FRAME_LENGTH - 2);
  out[FRAME_LENGTH - 2] = crc >> 8;
  out[FRAME_LENGTH - 1] = crc & 0xff;
  return out;
}

/** What one FRAME_LENGTH slice decodes to. Never thrown: every outcome is a value the caller counts. */
export type DecodeResult =
  | { kind: 'frame'; frame: LinkFrame }
  | { kind: 'bad-length'; length: number }
  | { kind: 'bad-start'; byte: number }
  | { kind: 'bad-crc'; expected: number; got: number }
  /** CRC valid but a version this code does not speak: the frame is skipped whole. */
  | { kind: 'bad-version'; version: number }
  | { kind: 'unknown-type'; code: number; seq: number }
  /** CRC valid, type known, but a payload field out of range (for example mode 9). */
  | { kind: 'bad-payload'; code: number; seq: number; detail: string };

function pick<T>(table: readonly T[], v: number, base = 0): T | undefined {
  return v - base >= 0 && v - base < table.length ? table[v - base] : undefined;
}

function u32At(buf: Uint8Array, at: number): number {
  return ((buf[at] << 24) | (buf[at + 1] << 16) | (buf[at + 2] << 8) | buf[at + 3]) >>> 0;
}

/** Decode one slice of exactly FRAME_LENGTH bytes (at `offset` in `buf`). */
export function decodeFrame(buf: Uint8Array, offset = 0): DecodeResult {
  if (buf.length - offset < FRAME_LENGTH) return { kind: 'bad-length', length: buf.length - offset };
  if (buf[offset] !== FRAME_START) return { kind: 'bad-start', byte: buf[offset] };
  const got = (buf[offset + FRAME_LENGTH - 2] << 8) | buf[offset + FRAME_LENGTH - 1];
  const expected = crcFast(buf, offset, offset + FRAME_LENGTH - 2);
  if (got !== expected) return { kind: 'bad-crc', expected, got };
  if (buf[offset + 1] !== FRAME_VERSION) return { kind: 'bad-version', version: buf[offset + 1] };
  const seq = buf[offset + 2];
  const code = buf[offset + 3];
  const p = (i: number) => buf[offset + 4 + i];
  const bad = (detail: string): DecodeResult => ({ kind: 'bad-payload', code, seq, detail });
  const cmd = (command: BarrierCommand): DecodeResult => ({ kind: 'frame', frame: { type: 'COMMAND', seq, command } });
  const ev = (event: BoardEvent): DecodeResult => ({ kind: 'frame', frame: { type: 'EVENT', seq, event } });
  const flag = (v: number) => (v === 0 ? false : v === 1 ? true : undefined);
  switch (code) {
    case TYPE.OPEN: {
      const direction = pick(DIRECTIONS, p(0), 1);
      return direction ? cmd({ type: 'OPEN', direction, passages: p(1) }) : bad(`direction ${p(0)}`);
    }
    case TYPE.CLOSE:
      return cmd({ type: 'CLOSE' });
    case TYPE.SET_MODE: {
      const mode = pick(MODES, p(0));
      return mode ? cmd({ type: 'SET_MODE', mode }) : bad(`mode ${p(0)}`);
    }
    case TYPE.INDICATE: {
      const indicator = pick(INDICATORS, p(0));
      const buzzer = pick(BUZZERS, p(1));
      return indicator && buzzer ? cmd({ type: 'INDICATE', indicator, buzzer }) : bad(`indicator ${p(0)} buzzer ${p(1)}`);
    }
    case TYPE.DISPLAY:
      return cmd({ type: 'DISPLAY', textId: (p(0) << 8) | p(1) });
    case TYPE.DISPLAY_DATE: {
      const day = dayFromBcd(buf.subarray(offset + 6, offset + 10));
      return day ? cmd({ type: 'DISPLAY_DATE', textId: (p(0) << 8) | p(1), day }) : bad(`day ${hex(buf.subarray(offset + 6, offset + 10))}`);
    }
    case TYPE.STATUS_REQUEST:
      return cmd({ type: 'STATUS_REQUEST' });
    case TYPE.SET_FLAP_REGIME: {
      const regime = pick(REGIMES, p(0));
      return regime ? cmd({ type: 'SET_FLAP_REGIME', regime }) : bad(`flap regime ${p(0)}`);
    }
    case TYPE.FAST_CLOSE:
      return cmd({ type: 'FAST_CLOSE' });
    case TYPE.AUTHORISE: {
      const direction = pick(DIRECTIONS, p(0), 1);
      return direction && p(1) !== 0 ? cmd({ type: 'AUTHORISE', direction, body: p(1) }) : bad(`direction ${p(0)} body ${p(1)}`);
    }
    case TYPE.HEARTBEAT_RUNTIME:
      return { kind: 'frame', frame: { type: 'HEARTBEAT', seq, from: 'runtime' } };
    case TYPE.EVENT_ACK:
      return { kind: 'frame', frame: { type: 'EVENT_ACK', seq, of: p(0) } };
    case TYPE.PASSED:
    case TYPE.INTRUSION: {
      const direction = pick(DIRECTIONS, p(0), 1);
      if (!direction) return bad(`direction ${p(0)}`);
      return ev(code === TYPE.PASSED ? { type: 'PASSED', direction } : { type: 'INTRUSION', direction });
    }
    case TYPE.TAILGATE:
      return ev({ type: 'TAILGATE' });
    case TYPE.OBSTRUCTION:
      return ev({ type: 'OBSTRUCTION' });
    case TYPE.FAULT:
      return ev({ type: 'FAULT', code: (p(0) << 8) | p(1) });
    case TYPE.FIRE_ALARM:
    case TYPE.EMERGENCY_BUTTON: {
      const active = flag(p(0));
      if (active === undefined) return bad(`active ${p(0)}`);
      return ev(code === TYPE.FIRE_ALARM ? { type: 'FIRE_ALARM', active } : { type: 'EMERGENCY_BUTTON', active });
    }
    case TYPE.POWER: {
      const state = pick(POWER, p(0));
      return state ? ev({ type: 'POWER', state }) : bad(`power ${p(0)}`);
    }
    case TYPE.FLAPS: {
      const position = pick(FLAPS, p(0));
      return position ? ev({ type: 'FLAPS', position }) : bad(`flaps ${p(0)}`);
    }
    case TYPE.STATUS: {
      const flaps = pick(FLAPS, p(0));
      const mode = pick(MODES, p(1));
      const fireAlarm = flag(p(4) & 0x01);
      if (!flaps || !mode || fireAlarm === undefined) return bad(`status flaps ${p(0)} mode ${p(1)}`);
      return ev({ type: 'STATUS', flaps, mode, faultCode: (p(2) << 8) | p(3), fireAlarm });
    }
    case TYPE.BODY_ENTERED:
    case TYPE.BODY_AT_FLAPS:
    case TYPE.BODY_LEFT: {
      const direction = pick(DIRECTIONS, p(0), 1);
      if (!direction || p(1) === 0) return bad(`direction ${p(0)} body ${p(1)}`);
      if (code === TYPE.BODY_ENTERED) return ev({ type: 'BODY_ENTERED', direction, body: p(1), etaMs: (p(2) << 8) | p(3) });
      if (code === TYPE.BODY_AT_FLAPS) return ev({ type: 'BODY_AT_FLAPS', direction, body: p(1) });
      const way = pick(BODY_EXITS, p(2), 1);
      return way ? ev({ type: 'BODY_LEFT', direction, body: p(1), way }) : bad(`body exit ${p(2)}`);
    }
    case TYPE.ACK:
      return { kind: 'frame', frame: { type: 'ACK', seq, of: p(0) } };
    case TYPE.NACK: {
      const reason = pick(NACKS, p(1), 1);
      return reason ? { kind: 'frame', frame: { type: 'NACK', seq, of: p(0), reason } } : bad(`nack reason ${p(1)}`);
    }
    case TYPE.HEARTBEAT_BOARD:
      return { kind: 'frame', frame: { type: 'HEARTBEAT', seq, from: 'board' } };
    case TYPE.SESSION: {
      const session = u32At(buf, offset + 4);
      return session === 0 ? bad('session 0') : { kind: 'frame', frame: { type: 'SESSION', seq, session } };
    }
    case TYPE.SESSION_ACK: {
      const session = u32At(buf, offset + 4);
      const lastSeq = p(4);
      const fresh = (p(5) & 0x80) !== 0;
      const lastType = p(5) & 0x7f;
      if (session === 0) return bad('session 0');
      if (lastSeq === 0 && lastType === 0) return { kind: 'frame', frame: { type: 'SESSION_ACK', seq, session, fresh } };
      const command = lastSeq === 0 || fresh ? undefined : ACTING.get(lastType);
      if (!command) return bad(`last executed seq ${lastSeq} type ${lastType}${fresh ? ' in a fresh session' : ''}`);
      return { kind: 'frame', frame: { type: 'SESSION_ACK', seq, session, fresh, last: { seq: lastSeq, command } } };
    }
    default:
      return { kind: 'unknown-type', code, seq };
  }
}

/** Counts a reader keeps; a driver's metrics read them. */
export interface ReaderCounters {
  /** bytes thrown away while looking for a frame (junk, or the start byte of a bad frame) */
  bytesDiscarded: number;
  badCrc: number;
  /** CRC-valid frames that could not be used: bad version, unknown type, bad payload */
  badFrames: number;
  frames: number;
}

/**
 * Turns a byte stream cut into arbitrary chunks into results. Resync rule: bytes before a start byte
 * are discarded; a start byte whose FRAME_LENGTH slice fails its CRC is discarded alone (one byte) and
 * the scan resumes at the next byte, so a damaged frame never swallows the good frame after it.
 * Only a slice that starts with the start byte and carries a valid CRC can become a frame.
 */
export class FrameReader {
  readonly counters: ReaderCounters = { bytesDiscarded: 0, badCrc: 0, badFrames: 0, frames: 0 };
  private buf = new Uint8Array(FRAME_LENGTH * 4);
  private len = 0;

  /** Bytes held: the start of a frame still waiting for its remaining bytes (always < FRAME_LENGTH). */
  get pending(): number {
    return this.len;
  }

  /** Take the held bytes out (the slicer re-aligns on them) and forget them. */
  takePending(): Uint8Array {
    const out = this.buf.slice(0, this.len);
    this.len = 0;
    return out;
  }

  /** Feed bytes; returns every result they completed, in order. Bad results are counted as well as returned. */
  push(chunk: Uint8Array): DecodeResult[] {
    const out: DecodeResult[] = [];
    // Fast path: aligned, exactly one frame (what an aligned ByteLengthParser hands over).
    if (this.len === 0 && chunk.length === FRAME_LENGTH && chunk[0] === FRAME_START) {
      const r = decodeFrame(chunk, 0);
      if (r.kind !== 'bad-crc') {
        this.count(r);
        out.push(r);
        return out;
      }
    }
    if (this.len + chunk.length > this.buf.length) {
      const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.len + chunk.length));
      bigger.set(this.buf.subarray(0, this.len));
      this.buf = bigger;
    }
    this.buf.set(chunk, this.len);
    this.len += chunk.length;
    let at = 0;
    while (this.len - at > 0) {
      if (this.buf[at] !== FRAME_START) {
        this.counters.bytesDiscarded++;
        at++;
        continue;
      }
      if (this.len - at < FRAME_LENGTH) break;
      const r = decodeFrame(this.buf, at);
      if (r.kind === 'bad-crc') {
        this.counters.badCrc++;
        this.counters.bytesDiscarded++;
        out.push(r);
        at++;
        continue;
      }
      this.count(r);
      out.push(r);
      at += FRAME_LENGTH;
    }
    this.buf.copyWithin(0, at, this.len);
    this.len -= at;
    if (this.buf.length > FRAME_LENGTH * 4 && this.len < FRAME_LENGTH) this.buf = this.buf.slice(0, FRAME_LENGTH * 4);
    return out;
  }

  private count(r: DecodeResult): void {
    if (r.kind === 'frame') this.counters.frames++;
    else this.counters.badFrames++;
  }
}

/** Readable one-line form of a frame, for traces and the bench tool. */
export function describeFrame(f: LinkFrame): string {
  switch (f.type) {
    case 'COMMAND':
      return `#${f.seq} ${JSON.stringify(f.command)}`;
    case 'EVENT':
      return `#${f.seq} ${JSON.stringify(f.event)}`;
    case 'ACK':
    case 'EVENT_ACK':
      return `${f.type} #${f.seq} of 0x${f.of.toString(16)}`;
    case 'NACK':
      return `NACK #${f.seq} of 0x${f.of.toString(16)} ${f.reason}`;
    case 'HEARTBEAT':
      return `HEARTBEAT ${f.from} #${f.seq}`;
    case 'SESSION':
      return `SESSION #${f.seq} ${sessionHex(f.session)}`;
    case 'SESSION_ACK':
      return `SESSION_ACK #${f.seq} ${sessionHex(f.session)}${f.fresh ? ' fresh' : ''} last ${f.last ? `#${f.last.seq} ${f.last.command}` : 'none'}`;
  }
}

/** A session id as 8 hex digits (how traces and logs show it). */
export function sessionHex(session: number): string {
  return session.toString(16).padStart(8, '0');
}

/** Hex with spaces, for golden vectors and traces. */
export function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}
