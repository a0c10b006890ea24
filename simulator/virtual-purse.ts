// The e-purse of a virtual T-Union card: balance, offline ATC, diversified purchase and TAC keys, the
// composite purchase (INITIALIZE → UPDATE CAPP DATA CACHE → DEBIT verifying MAC1, answering TAC and MAC2),
// the trip record it commits with the debit, and GET TRANSACTION PROOF for the last debits (MAC2 ‖ TAC, or
// a wrong MAC2 when `badProof`). It really computes the MACs (protocol/tunion-purse.ts), so a wrong PSAM
// key is refused as a real card refuses it.
// Imports only protocol/.

import { randomBytes } from 'node:crypto';
import { fromHex } from '../protocol/apdu.js';
import {
  cardSerial8,
  diversify,
  EMPTY_TRIP,
  encodeInitPurchaseAnswer,
  encodeTransactionProof,
  encodeTripRecord,
  mac1 as computeMac1,
  mac2 as computeMac2,
  purchaseSessionKey,
  SW,
  tac as computeTac,
  TRIP_RECORD_BYTES,
  TRIP_RECORD_ID,
  TX_COMPOSITE,
  TX_PURCHASE,
} from '../protocol/tunion-purse.js';

/** The test issuer's master keys (never a real issuer's): the virtual PSAM holds the purchase key, clearing the TAC key. */
export const TEST_ISSUER_KEYS = {
  purchase: fromHex('5452414E53495450555243484B455931'),
  tac: fromHex('5452414E534954544143204B45593031'),
};

export interface PurseSpec {
  balanceFen: number;
  atc?: number;
  overdraftFen?: number;
  /** The application is blocked: INITIALIZE answers 93 03. */
  blocked?: boolean;
  /** The card computes its MAC2 and TAC with a wrong key (a card that is not what it claims). */
  badMac?: boolean;
  /** GET TRANSACTION PROOF answers a MAC2 that is not the debit's (a card inventing or replaying a proof); the TAC is the debit's. */
  badProof?: boolean;
  masterPurchaseKey?: Uint8Array;
  masterTacKey?: Uint8Array;
  /** The trip record already on the card (48 bytes). */
  tripRecord?: Uint8Array;
}

/** One debit the card made, as the test's ground truth and as GET TRANSACTION PROOF answers it. */
export interface PurseDebit {
  atc: number;
  amountFen: number;
  type: number;
  terminalId: Uint8Array;
  terminalSerial: number;
  dateTime: Uint8Array;
  tac: Uint8Array;
  mac2: Uint8Array;
  balanceAfterFen: number;
}

interface Session {
  amountFen: number;
  type: number;
  terminalId: Uint8Array;
  atc: number;
  random: Uint8Array;
  cached?: Uint8Array;
}

const ok = (data: Uint8Array) => Uint8Array.from([...data, 0x90, 0x00]);
const sw = (w: number) => Uint8Array.from([w >> 8, w & 0xff]);

export class VirtualPurse {
  balanceFen: number;
  atc: number;
  record: Uint8Array;
  /** The last 64 debits (GET TRANSACTION PROOF answers from these). */
  readonly debits: PurseDebit[] = [];
  /** Every debit ever committed, and their sum: the ground truth of what the card paid. */
  debitCount = 0;
  debitedFen = 0;
  private readonly dpk: Uint8Array;
  private readonly dtk: Uint8Array;
  private session?: Session;

  constructor(
    cardNumber: string,
    readonly spec: PurseSpec,
  ) {
    const serial8 = cardSerial8(cardNumber);
    this.balanceFen = spec.balanceFen;
    this.atc = spec.atc ?? 0;
    this.record = spec.tripRecord ? Uint8Array.from(spec.tripRecord) : encodeTripRecord(EMPTY_TRIP);
    this.dpk = diversify(spec.masterPurchaseKey ?? TEST_ISSUER_KEYS.purchase, serial8);
    this.dtk = diversify(spec.masterTacKey ?? TEST_ISSUER_KEYS.tac, serial8);
  }

  /** A new tap or a new SELECT ends any purchase in progress (its cached record is dropped). */
  reset(): void {
    this.session = undefined;
  }

  /** Answer a purse command, or undefined when `cmd` is not one. */
  answer(cmd: Uint8Array): Uint8Array | undefined {
    if (cmd[0] === 0x80 && cmd[1] === 0x5c) return ok(Uint8Array.from([(this.balanceFen >>> 24) & 0xff, (this.balanceFen >>> 16) & 0xff, (this.balanceFen >>> 8) & 0xff, this.balanceFen & 0xff]));
    if (cmd[0] === 0x00 && cmd[1] === 0xb2 && cmd[2] === TRIP_RECORD_ID && cmd[3] === ((0x1a << 3) | 4)) return ok(this.record);
    if (cmd[0] === 0x80 && cmd[1] === 0x50) return this.initialize(cmd);
    if (cmd[0] === 0x80 && cmd[1] === 0xdc) return this.update(cmd);
    if (cmd[0] === 0x80 && cmd[1] === 0x54) return this.debit(cmd);
    if (cmd[0] === 0x80 && cmd[1] === 0x5a) return this.proof(cmd);
    return undefined;
  }

  private initialize(cmd: Uint8Array): Uint8Array {
    this.session = undefined;
    if (cmd.length < 16 || cmd[4] !== 0x0b || (cmd[2] !== 0x01 && cmd[2] !== 0x03) || cmd[3] !== 0x02) return sw(0x6a86);
    if (this.spec.blocked) return sw(SW.blocked);
    const amountFen = new DataView(cmd.buffer, cmd.byteOffset).getUint32(6);
    if (amountFen > this.balanceFen + (this.spec.overdraftFen ?? 0)) return sw(SW.insufficient);
    const random = new Uint8Array(randomBytes(4));
    this.session = { amountFen, type: cmd[2] === 0x03 ? TX_COMPOSITE : TX_PURCHASE, terminalId: cmd.slice(10, 16), atc: this.atc, random };
    return ok(encodeInitPurchaseAnswer({ balanceFen: this.balanceFen, atc: this.atc, overdraftFen: this.spec.overdraftFen ?? 0, keyVersion: 1, algorithm: 0, cardRandom: random }));
  }

  private update(cmd: Uint8Array): Uint8Array {
    const s = this.session;
    if (!s || s.type !== TX_COMPOSITE) return sw(SW.conditions);
    if (cmd[2] !== TRIP_RECORD_ID || cmd[4] !== TRIP_RECORD_BYTES || cmd.length < 5 + TRIP_RECORD_BYTES) return sw(0x6a86);
    s.cached = cmd.slice(5, 5 + TRIP_RECORD_BYTES);
    return sw(SW.ok);
  }

  private debit(cmd: Uint8Array): Uint8Array {
    const s = this.session;
    this.session = undefined;
    if (!s) return sw(SW.conditions);
    if (cmd.length < 20 || cmd[4] !== 0x0f) return sw(0x6700);
    const terminalSerial = new DataView(cmd.buffer, cmd.byteOffset).getUint32(5);
    const dateTime = cmd.slice(9, 16);
    const mac1 = cmd.slice(16, 20);
    const sk = purchaseSessionKey(this.dpk, s.random, s.atc, terminalSerial);
    const want = computeMac1(sk, s.amountFen, s.type, s.terminalId, dateTime);
    if (want.some((b, i) => b !== mac1[i])) return sw(SW.macError);
    // Commit: balance, counter and the cached record together.
    this.balanceFen -= s.amountFen;
    this.atc = (this.atc + 1) & 0xffff;
    if (s.cached) this.record = s.cached;
    const macKey = this.spec.badMac ? purchaseSessionKey(this.dpk, s.random, s.atc ^ 0xffff, terminalSerial) : sk;
    const mac2 = computeMac2(macKey, s.amountFen);
    const tacKey = this.spec.badMac ? this.dpk : this.dtk;
    const tac = computeTac(tacKey, s.amountFen, s.type, s.terminalId, terminalSerial, dateTime);
    this.debitCount++;
    this.debitedFen += s.amountFen;
    this.debits.push({ atc: s.atc, amountFen: s.amountFen, type: s.type, terminalId: s.terminalId, terminalSerial, dateTime, tac, mac2, balanceAfterFen: this.balanceFen });
    if (this.debits.length > 64) this.debits.shift();
    return ok(Uint8Array.from([...tac, ...mac2]));
  }

  private proof(cmd: Uint8Array): Uint8Array {
    if (cmd.length < 7 || cmd[4] !== 0x02) return sw(0x6700);
    const atc = (cmd[5] << 8) | cmd[6];
    const d = [...this.debits].reverse().find((x) => x.atc === atc && x.type === cmd[3]);
    if (!d) return sw(SW.noProof);
    const mac2 = this.spec.badProof ? d.mac2.map((b) => b ^ 0x5a) : d.mac2;
    return ok(encodeTransactionProof({ mac2, tac: d.tac }));
  }
}
