// A virtual PSAM (the operator's purchase security module) that sits in a vpcd reader slot for as long as
// it runs, holding the test issuer's master purchase key: it reads its terminal id, computes MAC1 with a
// fresh terminal serial (INIT SAM FOR PURCHASE, 80 70) and verifies the card's MAC2 (80 72) under the
// session key of its last MAC1. The vpcd wire is the one simulator/virtual-card.ts describes.
// Imports only protocol/.

import { connect, type Socket } from 'node:net';
import { iso14443Atr } from '../protocol/apdu.js';
import { decodePsamMac1, diversify, mac1 as computeMac1, mac2 as computeMac2, purchaseSessionKey, SW } from '../protocol/tunion-purse.js';
import { TEST_ISSUER_KEYS } from './virtual-purse.js';

export interface PsamSpec {
  /** 6-byte terminal id (file 0x16). */
  terminalId: Uint8Array;
  /** The issuer master purchase key; a different one plays the "wrong PSAM key". */
  masterPurchaseKey?: Uint8Array;
  terminalSerial?: number;
}

const ok = (data: Uint8Array) => Uint8Array.from([...data, 0x90, 0x00]);
const sw = (w: number) => Uint8Array.from([w >> 8, w & 0xff]);

export class VirtualPsam {
  terminalSerial: number;
  readonly atr = iso14443Atr(Uint8Array.from([0x50, 0x53, 0x41, 0x4d])); // "PSAM"
  /** MAC1s computed and MAC2s verified/refused: what the tests and the bench count. */
  readonly counts = { mac1: 0, mac2Ok: 0, mac2Bad: 0 };
  private last?: { sessionKey: Uint8Array; amountFen: number };
  private sock?: Socket;

  constructor(readonly spec: PsamSpec) {
    this.terminalSerial = spec.terminalSerial ?? 0;
  }

  /** Answer one command APDU (direct use without vpcd, and the vpcd loop). */
  respond(cmd: Uint8Array): Uint8Array {
    if (cmd[0] === 0x00 && cmd[1] === 0xa4) return sw(SW.ok);
    if (cmd[0] === 0x00 && cmd[1] === 0xb0 && cmd[2] === 0x96) return ok(this.spec.terminalId);
    if (cmd[0] === 0x80 && cmd[1] === 0x70) {
      const i = decodePsamMac1(cmd);
      if (!i) return sw(0x6700);
      const dpk = diversify(this.spec.masterPurchaseKey ?? TEST_ISSUER_KEYS.purchase, i.cardSerial8);
      this.terminalSerial = (this.terminalSerial + 1) >>> 0;
      const sk = purchaseSessionKey(dpk, i.cardRandom, i.atc, this.terminalSerial);
      this.last = { sessionKey: sk, amountFen: i.amountFen };
      this.counts.mac1++;
      const s = this.terminalSerial;
      return ok(Uint8Array.from([(s >>> 24) & 0xff, (s >>> 16) & 0xff, (s >>> 8) & 0xff, s & 0xff, ...computeMac1(sk, i.amountFen, i.type, this.spec.terminalId, i.dateTime)]));
    }
    if (cmd[0] === 0x80 && cmd[1] === 0x72) {
      if (cmd.length < 9 || !this.last) return sw(SW.conditions);
      const want = computeMac2(this.last.sessionKey, this.last.amountFen);
      this.last = undefined;
      if (want.some((b, i) => b !== cmd[5 + i])) {
        this.counts.mac2Bad++;
        return sw(SW.macError);
      }
      this.counts.mac2Ok++;
      return sw(SW.ok);
    }
    return sw(0x6d00);
  }

  /** Insert the PSAM into the vpcd slot listening on `port`; resolves once connected. */
  insert(port: number, host = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) => {
      const sock = connect({ port, host });
      this.sock = sock;
      sock.setNoDelay(true);
      let buf: Buffer = Buffer.alloc(0);
      const send = (b: Uint8Array) => {
        const f = Buffer.alloc(2 + b.length);
        f.writeUInt16BE(b.length, 0);
        f.set(b, 2);
        sock.write(f);
      };
      sock.on('data', (d: Buffer) => {
        buf = buf.length ? Buffer.concat([buf, d]) : d;
        while (buf.length >= 2) {
          const len = buf.readUInt16BE(0);
          if (buf.length < 2 + len) break;
          const msg = Uint8Array.from(buf.subarray(2, 2 + len));
          buf = buf.subarray(2 + len);
          if (msg.length === 1) {
            if (msg[0] === 0x04) send(this.atr);
            continue;
          }
          send(this.respond(msg));
        }
      });
      sock.once('connect', () => resolve());
      sock.once('error', (e) => reject(e));
    });
  }

  /** Take the PSAM out of its slot. */
  remove(): void {
    this.sock?.destroy();
    this.sock = undefined;
  }
}
