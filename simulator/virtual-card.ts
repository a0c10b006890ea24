// Virtual contactless cards that a real pcscd presents through the vsmartcard vpcd reader driver.
//
// The vpcd wire (vsmartcard): the card connects over TCP to the port vpcd listens on (one port per
// virtual reader slot; connected = card in the field, closed = card removed). Every message in both
// directions is a 2-byte big-endian length, then that many bytes. A 1-byte message from vpcd is a
// control: 0x00 power off, 0x01 power on, 0x02 reset (no answer to these three), 0x04 "send your ATR"
// (answered with the ATR). Any longer message is a command APDU, answered with the response APDU.
// The reader's pseudo-APDUs (FF CA get UID, FF B0 read pages) reach the card the same way, so the card
// answers them as a contactless reader would answer for the tag in its field.
//
// Imports only protocol/.

import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { TYPE2_ATR, iso14443Atr, toHex, type YyyyMmDd } from '../protocol/apdu.js';
import { encodeTicket, TICKET_FIRST_PAGE, type Ticket } from '../protocol/ticket.js';
import { APDU, encodeBalance, encodeFile15, encodeFile17, encodeOldYikatong, sameBytes } from '../protocol/tunion.js';
import { VirtualPurse, type PurseSpec } from './virtual-purse.js';

export const VPCD_DEFAULT_PORT = 0x8c7b; // 35963, as in /etc/reader.conf.d/vpcd

const SW_OK = [0x90, 0x00];
const SW_NOT_FOUND = Uint8Array.from([0x6a, 0x82]);
const SW_INS_NOT_SUPPORTED = Uint8Array.from([0x6d, 0x00]);
const SW_WRONG_P1P2 = Uint8Array.from([0x6b, 0x00]);

export type CardKind = 't-union' | 'old-yikatong' | 'phone' | 'ticket' | 'broken' | 'mifare-classic';

export interface TUnionSpec {
  /** The 19-digit card number (the application serial without its leading nibble). */
  serial: string;
  expiry: YyyyMmDd;
  start?: YyyyMmDd;
  cardType?: number;
  balanceFen?: number;
  city?: string;
  issuer?: string;
  /** An e-purse that really computes MAC2 and TAC (simulator/virtual-purse.ts); its balance replaces balanceFen. */
  purse?: PurseSpec;
}

export interface OldYikatongSpec {
  /** 16-digit BMAC serial; the card number the gate reads is "100" + serial. */
  serial: string;
  expiry: YyyyMmDd;
  start?: YyyyMmDd;
  cardType?: number;
  balanceFen?: number;
}

export interface TicketSpec {
  ticketNumber: string;
  validFrom?: YyyyMmDd;
  validUntil: YyyyMmDd;
  series?: number;
}

/** What one tap saw, for assertions: the APDUs in order and how it ended. */
export interface TapLog {
  uid: string;
  apdus: string[];
  ended: 'removed' | 'torn' | 'refused-by-reader' | 'error';
  detail?: string;
}

export interface TapOptions {
  port: number;
  host?: string;
  /** Leave the field this long after the last APDU answered (a rider lifting the card). Default 150 ms. */
  leaveAfterIdleMs?: number;
  /** Leave anyway after this long in the field. Default 5000 ms. */
  maxHoldMs?: number;
}

/** One card in the field: remove it, or wait until it leaves by itself. */
export interface Tap {
  readonly done: Promise<TapLog>;
  /** Take the card away now (closes the vpcd connection). */
  remove(): void;
  readonly apduCount: number;
}

type Responder = (cmd: Uint8Array) => Uint8Array;

interface Spec {
  kind: CardKind;
  atr: Uint8Array;
  uid: () => Uint8Array;
  answer: (cmd: Uint8Array, state: { selected: boolean }) => Uint8Array;
  purse?: VirtualPurse;
}

export class VirtualCardBuilder {
  private spec?: Spec;
  private tearAfter?: number;
  private delayMs = 0;
  private readonly overrides: { prefix: Uint8Array; answer: Uint8Array | Responder }[] = [];

  /** A T-Union transport card (JT/T 978) with a fixed UID. */
  tUnion(s: TUnionSpec): this {
    this.spec = tUnionSpec('t-union', s, fixedUid(s.serial));
    return this;
  }

  /** A phone emulating a T-Union card: a random 08xxxxxx UID on every tap, and slower answers. */
  phone(s: TUnionSpec & { answerDelayMs?: number }): this {
    this.spec = tUnionSpec('phone', s, () => Uint8Array.from([0x08, ...randomBytes(3)]));
    this.delayMs = s.answerDelayMs ?? 8;
    return this;
  }

  /** An older Beijing Yikatong (BMAC) card: no T-Union application, the 32-byte record at SFI 4. */
  oldYikatong(s: OldYikatongSpec): this {
    const record = encodeOldYikatong({ serial: s.serial, start: s.start ?? 20100101, expiry: s.expiry, cardType: s.cardType });
    const uid = fixedUid(s.serial)();
    this.spec = {
      kind: 'old-yikatong',
      atr: iso14443Atr(Uint8Array.from([0x42, 0x4d, 0x41, 0x43])),
      uid: () => uid,
      answer: (cmd) => {
        if (cmd[1] === 0xa4) return SW_NOT_FOUND;
        if (starts(cmd, APDU.readOldYikatong.subarray(0, 4))) return ok(record);
        if (starts(cmd, APDU.getBalance.subarray(0, 4))) return ok(encodeBalance(s.balanceFen ?? 0));
        return SW_INS_NOT_SUPPORTED;
      },
    };
    return this;
  }

  /** A commemorative ticket on a Type 2 tag: answers the reader's page reads FF B0 00 <page> <len>. */
  ticket(s: TicketSpec): this {
    const t: Ticket = { ticketNumber: s.ticketNumber, series: s.series ?? 1, validFrom: s.validFrom ?? 20220101, validUntil: s.validUntil };
    const memory = new Uint8Array(64 * 4); // NTAG213-sized page space; pages 0-3 hold UID/lock/CC
    memory.set(encodeTicket(t), TICKET_FIRST_PAGE * 4);
    memory.set([0xe1, 0x10, 0x12, 0x00], 12); // capability container: NDEF, v1.0, 144 bytes
    const uid = Uint8Array.from([0x04, ...fixedUid(s.ticketNumber)().subarray(0, 3), 0x12, 0x34, 0x56]);
    memory.set(uid.subarray(0, 3), 0);
    this.spec = {
      kind: 'ticket',
      atr: TYPE2_ATR,
      uid: () => uid,
      answer: (cmd) => {
        if (cmd.length === 5 && cmd[0] === 0xff && cmd[1] === 0xb0) {
          const page = (cmd[2] << 8) | cmd[3];
          const len = cmd[4] || 16;
          if (len > 16 || page * 4 + len > memory.length) return SW_WRONG_P1P2;
          return ok(memory.subarray(page * 4, page * 4 + len));
        }
        return Uint8Array.from([0x6a, 0x81]);
      },
    };
    return this;
  }

  /** A MIFARE Classic card (storage card we do not support). */
  mifareClassic(): this {
    const uid = Uint8Array.from([0x5a, 0x11, 0x22, 0x33]);
    this.spec = {
      kind: 'mifare-classic',
      atr: Uint8Array.from([0x3b, 0x8f, 0x80, 0x01, 0x80, 0x4f, 0x0c, 0xa0, 0x00, 0x00, 0x03, 0x06, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x6a]),
      uid: () => uid,
      answer: () => Uint8Array.from([0x6a, 0x81]),
    };
    return this;
  }

  /** An ISO 14443-4 card that answers the UID, then garbage (random bytes of random length) to everything. */
  broken(seed = 7): this {
    const uid = Uint8Array.from([0x66, 0x00, 0x00, seed & 0xff]);
    let x = seed * 2654435761;
    const rnd = () => ((x = (Math.imul(x ^ (x >>> 15), 2246822519) + 0x9e3779b9) | 0) >>> 0) / 2 ** 32;
    this.spec = {
      kind: 'broken',
      atr: iso14443Atr(Uint8Array.from([0x00, 0x00])),
      uid: () => uid,
      answer: () => Uint8Array.from({ length: 1 + Math.floor(rnd() * 40) }, () => Math.floor(rnd() * 256)),
    };
    return this;
  }

  /** Drop the connection (card pulled away) when the (n+1)-th APDU arrives: n APDUs are answered, the next is not. */
  withTearing(afterApdu: number): this {
    this.tearAfter = afterApdu;
    return this;
  }

  /** Answer every APDU after this delay (phones are slower than cards). */
  withAnswerDelay(ms: number): this {
    this.delayMs = ms;
    return this;
  }

  /** Replace the answer to commands starting with `prefix` (hex or bytes): bad status words, wrong lengths, bad BCD. */
  withAnswer(prefix: string | Uint8Array, answer: string | Uint8Array | Responder): this {
    this.overrides.push({
      prefix: typeof prefix === 'string' ? Uint8Array.from(Buffer.from(prefix.replace(/\s+/g, ''), 'hex')) : prefix,
      answer: typeof answer === 'string' ? Uint8Array.from(Buffer.from(answer.replace(/\s+/g, ''), 'hex')) : answer,
    });
    return this;
  }

  build(): VirtualCard {
    if (!this.spec) throw new Error('virtualCard(): pick a kind first (tUnion, oldYikatong, phone, ticket, broken)');
    return new VirtualCard(this.spec, this.tearAfter, this.delayMs, [...this.overrides]);
  }

  /** Shorthand for build().tap(options). */
  tap(o: TapOptions): Tap {
    return this.build().tap(o);
  }
}

export function virtualCard(): VirtualCardBuilder {
  return new VirtualCardBuilder();
}

export class VirtualCard {
  constructor(
    private readonly spec: Spec,
    private readonly tearAfter: number | undefined,
    private readonly delayMs: number,
    private readonly overrides: { prefix: Uint8Array; answer: Uint8Array | Responder }[],
  ) {}

  get kind(): CardKind {
    return this.spec.kind;
  }

  get atr(): Uint8Array {
    return this.spec.atr;
  }

  /** The e-purse, when the card has one: balance, ATC, the debits it committed. */
  get purse(): VirtualPurse | undefined {
    return this.spec.purse;
  }

  private tearOnce?: { afterApdu: number; answerLost: boolean };

  /**
   * Pull the card away during the next tap only: after `afterApdu` APDUs answered (the next one never
   * reaches the card), or with `answerLost`, after the card processed APDU number `afterApdu` but before
   * its answer left (the torn debit that did happen).
   */
  tearNextTap(afterApdu: number, answerLost = false): this {
    this.tearOnce = { afterApdu, answerLost };
    return this;
  }

  /** Answer one command APDU exactly as the card would (no tearing, no delay): for direct use without vpcd. */
  respond(cmd: Uint8Array, state: { selected: boolean; uid: Uint8Array }): Uint8Array {
    for (const o of this.overrides) if (starts(cmd, o.prefix)) return typeof o.answer === 'function' ? o.answer(cmd) : o.answer;
    if (starts(cmd, APDU.getUid.subarray(0, 4))) return ok(state.uid);
    return this.spec.answer(cmd, state);
  }

  newUid(): Uint8Array {
    return this.spec.uid();
  }

  /** Put the card in the field of the vpcd reader listening on `port`. */
  tap(o: TapOptions): Tap {
    const tear = this.tearOnce;
    this.tearOnce = undefined;
    this.spec.purse?.reset();
    const uid = this.spec.uid();
    const log: TapLog = { uid: toHex(uid), apdus: [], ended: 'removed' };
    const state = { selected: false, uid };
    const sock: Socket = connect({ port: o.port, host: o.host ?? '127.0.0.1' });
    sock.setNoDelay(true);
    let count = 0;
    let idle: ReturnType<typeof setTimeout> | undefined;
    let finished = false;
    let resolveDone!: (l: TapLog) => void;
    const done = new Promise<TapLog>((r) => (resolveDone = r));
    const leaveAfterIdleMs = o.leaveAfterIdleMs ?? 150;
    const end = (how: TapLog['ended'], detail?: string) => {
      if (finished) return;
      finished = true;
      clearTimeout(idle);
      clearTimeout(maxHold);
      log.ended = how;
      if (detail) log.detail = detail;
      sock.destroy();
      resolveDone(log);
    };
    const maxHold = setTimeout(() => end('removed', 'max hold time'), o.maxHoldMs ?? 5000);
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(() => end('removed'), leaveAfterIdleMs);
    };
    const send = (b: Uint8Array) => {
      if (finished) return;
      const frame = Buffer.alloc(2 + b.length);
      frame.writeUInt16BE(b.length, 0);
      frame.set(b, 2);
      sock.write(frame);
    };
    let buf: Buffer = Buffer.alloc(0);
    let chain = Promise.resolve();
    sock.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = Uint8Array.from(buf.subarray(2, 2 + len));
        buf = buf.subarray(2 + len);
        chain = chain.then(() => this.handle(msg, state, log, send, () => ++count, end, armIdle, tear));
      }
    });
    sock.on('error', (e) => end(finished ? log.ended : 'error', e.message));
    sock.on('close', () => end(count > 0 ? 'removed' : 'refused-by-reader'));
    return {
      done,
      remove: () => end('removed'),
      get apduCount() {
        return count;
      },
    };
  }

  private async handle(
    msg: Uint8Array,
    state: { selected: boolean; uid: Uint8Array },
    log: TapLog,
    send: (b: Uint8Array) => void,
    next: () => number,
    end: (how: TapLog['ended'], detail?: string) => void,
    armIdle: () => void,
    tear?: { afterApdu: number; answerLost: boolean },
  ): Promise<void> {
    if (msg.length === 1) {
      // 0x00 power off, 0x01 power on, 0x02 reset: no answer. 0x04: the ATR.
      if (msg[0] === 0x04) send(this.spec.atr);
      else if (msg[0] === 0x02 || msg[0] === 0x00) {
        state.selected = false;
        this.spec.purse?.reset();
      }
      return;
    }
    const n = next();
    if ((this.tearAfter !== undefined && n > this.tearAfter) || (tear && !tear.answerLost && n > tear.afterApdu)) {
      end('torn', `pulled away at APDU ${n}`);
      return;
    }
    log.apdus.push(toHex(msg));
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const answer = this.respond(msg, state);
    if (tear?.answerLost && n >= tear.afterApdu) {
      end('torn', `pulled away after APDU ${n} was processed, before its answer`);
      return;
    }
    send(answer);
    armIdle();
  }
}

function tUnionSpec(kind: 't-union' | 'phone', s: TUnionSpec, uid: () => Uint8Array): Spec {
  const f15 = encodeFile15({ cardNumber: s.serial, start: s.start ?? 20150101, expiry: s.expiry, cardType: s.cardType ?? 1, city: s.city, issuer: s.issuer });
  const f17 = encodeFile17(s.cardType ?? 1);
  const purse = s.purse ? new VirtualPurse(s.serial, s.purse) : undefined;
  return {
    kind,
    purse,
    atr: iso14443Atr(kind === 'phone' ? Uint8Array.from([]) : Uint8Array.from([0x54, 0x55, 0x4e, 0x49])),
    uid,
    answer: (cmd, st) => {
      if (sameBytes(cmd, APDU.selectTUnion) || starts(cmd, APDU.selectTUnion.subarray(0, 13))) {
        st.selected = true;
        purse?.reset();
        return Uint8Array.from(SW_OK);
      }
      if (cmd[1] === 0xa4) {
        st.selected = false;
        return SW_NOT_FOUND;
      }
      if (!st.selected) return Uint8Array.from([0x69, 0x85]); // conditions of use not satisfied
      if (starts(cmd, APDU.readFile15.subarray(0, 4))) return ok(f15);
      if (starts(cmd, APDU.readFile17.subarray(0, 4))) return ok(f17);
      const p = purse?.answer(cmd);
      if (p) return p;
      if (starts(cmd, APDU.getBalance.subarray(0, 4))) return ok(encodeBalance(s.balanceFen ?? 0));
      return SW_INS_NOT_SUPPORTED;
    },
  };
}

/** A stable 4-byte UID (not 0x08-led: that marks random UIDs) derived from the card's number. */
function fixedUid(seed: string): () => Uint8Array {
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 0x01000193);
  const b = Uint8Array.from([0x80 | ((h >>> 24) & 0x7f), (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff]);
  return () => b;
}

function ok(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + 2);
  out.set(data, 0);
  out.set(SW_OK, data.length);
  return out;
}

function starts(cmd: Uint8Array, prefix: Uint8Array): boolean {
  if (cmd.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (cmd[i] !== prefix[i]) return false;
  return true;
}
