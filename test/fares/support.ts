// Shared by the fare tests and the fare bench: a small network and its signed-then-verified fare table, a
// fare gate over in-process exchanges (a virtual card and a virtual PSAM answering directly), and tearing.

import { generateKeyPairSync } from 'node:crypto';
import { FareGate, type FareLaneConfig, type Psam } from '../../firmware/fares/fare-gate.js';
import type { Journal } from '../../firmware/journal/journal.js';
import { readTap, type Exchange } from '../../protocol/card-session.js';
import { BEIJING_2014_RULES, faresFromDistances, signFareTable, verifyFareTable, type FareTable } from '../../protocol/fares.js';
import { trustedListKey } from '../../protocol/lists/index.js';
import { fromHex } from '../../protocol/apdu.js';
import type { VirtualCard } from '../../simulator/virtual-card.js';
import { VirtualPsam } from '../../simulator/virtual-psam.js';

export const BACK_OFFICE = generateKeyPairSync('ed25519');
export const TRUSTED = [trustedListKey(BACK_OFFICE.publicKey.export({ format: 'pem', type: 'spki' }).toString())];
export const TERMINAL_ID = fromHex('110100000042');

/** Stations 1..n on one line, 3.1 km apart: every band is reached. */
export function lineTable(n = 24, seq = 1): FareTable {
  const d = Array.from({ length: n * n }, (_, k) => Math.abs(Math.floor(k / n) - (k % n)) * 3100);
  const t: FareTable = { seq, issuedAtMs: Date.UTC(2024, 0, 1), rules: BEIJING_2014_RULES, stations: Array.from({ length: n }, (_, i) => ({ id: i + 1, name: `S${i + 1}`, line: 'L1' })), fares: faresFromDistances(BEIJING_2014_RULES, d, n) };
  const v = verifyFareTable(signFareTable(t, BACK_OFFICE.privateKey), TRUSTED);
  if (!v.ok) throw new Error(v.detail);
  return v.table;
}

// One PSAM as the fare gates see it per virtual PSAM: gates given the same one share its purchase session.
const psams = new WeakMap<VirtualPsam, Psam>();
function psamFor(v: VirtualPsam): Psam {
  let p = psams.get(v);
  if (!p) psams.set(v, (p = { exchange: async (c) => v.respond(c), terminalId: TERMINAL_ID }));
  return p;
}

export function fareGate(cfg: Partial<FareLaneConfig> & { station: number; direction: 'entry' | 'exit' }, journal: Journal, psam = new VirtualPsam({ terminalId: TERMINAL_ID }), table = lineTable()) {
  const g = new FareGate({ laneId: `L-${cfg.station}-${cfg.direction}`, laneNumber: 1, retapGraceMs: 10 * 60_000, ...cfg }, psamFor(psam), journal);
  g.setTable(table);
  return { gate: g, psam };
}

/** An exchange with the card in the field; `tear` pulls it after n APDUs (or after the n-th was processed, its answer lost). */
export function cardExchange(card: VirtualCard, tear?: { after: number; answerLost: boolean }): { exchange: Exchange; count: () => number } {
  const state = { selected: false, uid: card.newUid() };
  card.purse?.reset();
  let n = 0;
  let gone = false;
  return {
    exchange: async (c) => {
      if (gone) throw new Error('card gone');
      n++;
      if (tear && !tear.answerLost && n > tear.after) {
        gone = true;
        throw new Error(`card pulled before APDU ${n}`);
      }
      const a = card.respond(c, state);
      if (tear && tear.answerLost && n >= tear.after) {
        gone = true;
        throw new Error(`card pulled after APDU ${n}, answer lost`);
      }
      return a;
    },
    count: () => n,
  };
}

/** One tap as the driver runs it: the read (UID, SELECT, files, balance), then the fare transaction. */
export async function fareTap(gate: FareGate, card: VirtualCard, nowMs: number, tear?: { after: number; answerLost: boolean }) {
  const ex = cardExchange(card, tear);
  let read;
  try {
    read = await readTap(ex.exchange, card.atr, nowMs);
  } catch {
    return { torn: true as const, apdus: ex.count() };
  }
  if (!read.ok || read.credential.kind === 'ticket' || read.credential.kind === 'qr') return { torn: true as const, apdus: ex.count() };
  const d = await gate.tap(ex.exchange, read.credential.cardNumber, nowMs);
  return { torn: false as const, decision: d, apdus: ex.count() };
}
