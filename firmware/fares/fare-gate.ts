// A card tap at a fare gate: read the trip record, price the trip (the signed fare table and its rules,
// the station's degraded modes), then run the composite purchase with the PSAM so the card's balance, its
// counter and the new trip record change together or not at all. A torn tap is settled by the card itself:
// the record is committed with the debit, so the re-tap reads "exited here just now" and proves the debit
// (GET TRANSACTION PROOF) instead of charging again. Every outcome is journaled, durably, before the answer;
// debits carry the card's ATC and TAC for clearing. Exchanges come from the driver: no I/O here.

import type { Exchange } from '../../protocol/card-session.js';
import type { Direction } from '../../protocol/credential.js';
import { toHex } from '../../protocol/apdu.js';
import { priceTrip, stationIndex, type FareTable, type PricedTrip } from '../../protocol/fares.js';
import type { ReasonCode } from '../../protocol/reasons.js';
import { fareModeSet, type FareModeName } from '../../protocol/station-bus.js';
import {
  beijingDateTime,
  beijingMonth,
  cardSerial8,
  debitForPurchase,
  encodeTripRecord,
  getTransactionProof,
  initPurchase,
  parseInitPurchase,
  parseProof,
  parsePsamMac1,
  parseTransactionProof,
  parsePsamMac2,
  parseTripRecord,
  psamMac1,
  psamVerifyMac2,
  readTripRecord,
  TX_COMPOSITE,
  updateTripRecord,
  type TripRecord,
} from '../../protocol/tunion-purse.js';
import type { FareOutcome, Journal, JournalEntry } from '../journal/journal.js';

/** Degraded modes an operator switches per station (GB 50157): each one relaxes one check. */
export interface FareModes {
  /** Entry/exit order not checked: an exit with no entry pays the minimum fare, an entry over an open trip pays nothing extra. */
  waiveOrder: boolean;
  /** Time in the paid area not checked: no over-time surcharge. */
  waiveTime: boolean;
  /** Fare not checked: a balance too low pays what it holds instead of being refused. */
  waiveFare: boolean;
  /** Train failure: exits charge nothing (the trip is closed on the card at 0). */
  trainFailure: boolean;
  /** Emergency release: no card transaction at all; every tap is let through (the flaps are open anyway). */
  emergency: boolean;
}

export const NORMAL_MODES: FareModes = { waiveOrder: false, waiveTime: false, waiveFare: false, trainFailure: false, emergency: false };

/** Each mode's name on the station bus (protocol/station-bus.ts `FARE_MODES`). */
const MODE_NAMES: Record<keyof FareModes, FareModeName> = { waiveOrder: 'waive-order', waiveTime: 'waive-time', waiveFare: 'waive-fare', trainFailure: 'train-failure', emergency: 'emergency-release' };

/** The whole set in force from the names a `fare-mode` command carries (absent names: off). */
function fareModesFromNames(names: readonly FareModeName[]): FareModes {
  const m = { ...NORMAL_MODES };
  for (const k of Object.keys(m) as (keyof FareModes)[]) m[k] = names.includes(MODE_NAMES[k]);
  return m;
}

/** The modes in force as the bus names them, in FARE_MODES order. */
function fareModeNames(m: FareModes): FareModeName[] {
  return fareModeSet((Object.keys(m) as (keyof FareModes)[]).filter((k) => m[k]).map((k) => MODE_NAMES[k]));
}

/**
 * What the station link's `fare-mode` command sets (structurally the link's `FareModeSink`): the modes of
 * every gate given at once (a bidirectional lane's entry and exit gates), read back from the first.
 */
export function fareModeSink(...gates: [FareGate, ...FareGate[]]): { set(names: readonly FareModeName[]): void; current(): FareModeName[] } {
  return {
    set: (names) => {
      for (const g of gates) g.modes = fareModesFromNames(names);
    },
    current: () => fareModeNames(gates[0].modes),
  };
}

export interface FareLaneConfig {
  laneId: string;
  /** The lane's number on the card's trip record (0-255). */
  laneNumber: number;
  station: number;
  direction: Direction;
  /** A re-tap within this of the card's own record at this station is the same trip (torn tap, barrier not passed). */
  retapGraceMs: number;
}

export interface FareDecision {
  grant: boolean;
  reason: ReasonCode;
  outcome: FareOutcome;
  chargeFen: number;
  detail: string;
  /** The journal record's seq (absent when the journal failed). */
  seq?: number;
  tac?: string;
  balanceAfterFen?: number;
}

/** The PSAM the lane holds: one exchange at a time (the caller serialises taps). */
export interface Psam {
  exchange: Exchange;
  /** 6-byte terminal id read at start. */
  terminalId: Uint8Array;
  /**
   * The terminal serial of the PSAM's open purchase session (its last MAC1, not yet closed by a MAC2
   * check). Kept on the PSAM, not on a gate: the gates of a bidirectional lane share one PSAM, and the
   * other side's purchase ends this side's session.
   */
  session?: number;
  /**
   * Told at once, then whenever the PSAM becomes usable (in its slot, terminal id read) or stops being so,
   * with why: the lane is out of service without it (firmware/composition/fare-lane.ts). Absent: always
   * there (an in-process one).
   */
  onPresence?(listener: (present: boolean, detail: string) => void): () => void;
}

class Torn extends Error {}

/** The card's exchange, where a card pulled away (a throw, or no answer) becomes `Torn`. */
function tearable(card: Exchange): (c: Uint8Array) => Promise<Uint8Array> {
  return async (c) => {
    let a: Uint8Array;
    try {
      a = await card(c);
    } catch (e) {
      throw new Torn((e as Error).message);
    }
    if (a.length === 0) throw new Torn('no answer');
    return a;
  };
}

export class FareGate {
  private table?: FareTable;
  private index = new Map<number, number>();
  modes: FareModes = { ...NORMAL_MODES };
  /**
   * Debits this lane has journaled, by `${card}:${atc}` (bounded), and how they ended: a re-tap after a
   * paid one is not a recovery, and a card whose MAC2 failed stays refused on every re-tap.
   */
  private readonly journaled = new Map<string, 'paid' | 'mac2-failed'>();
  /**
   * DEBITs sent whose answer never came (the card pulled away), by `${card}:${atc}` (bounded), with the
   * terminal serial of their MAC1: only that PSAM session can check the MAC2 the card proves on the re-tap.
   */
  private readonly unanswered = new Map<string, number>();
  readonly counts: Record<FareOutcome, number> = { debited: 0, recovered: 0, retap: 0, torn: 0, refused: 0, 'ticket-office': 0, 'mac2-failed': 0, waived: 0 };

  constructor(
    readonly config: FareLaneConfig,
    private readonly psam: Psam,
    private readonly journal: Journal,
  ) {}

  setTable(t: FareTable): void {
    if (this.table && t.seq < this.table.seq) throw new Error(`fare table ${t.seq} is older than ${this.table.seq}`);
    this.table = t;
    this.index = stationIndex(t);
  }

  get tableSeq(): number | undefined {
    return this.table?.seq;
  }

  /**
   * Run the fare transaction of a T-Union card already selected and read (card number known). Never throws
   * for card or PSAM faults: a card pulled away is `tap-again` (journaled as torn), a PSAM that fails is
   * `fare-unavailable`.
   */
  async tap(card: Exchange, cardNumber: string, nowMs: number): Promise<FareDecision> {
    if (this.modes.emergency) return this.finish({ grant: true, reason: 'ok-free-passage', outcome: 'waived', chargeFen: 0, detail: 'emergency release' }, cardNumber, nowMs, {});
    if (!this.table) return this.finish({ grant: false, reason: 'fare-unavailable', outcome: 'refused', chargeFen: 0, detail: 'no fare table' }, cardNumber, nowMs, {});
    const send = tearable(card);
    const ctx: Record<string, unknown> = { tableSeq: this.table.seq };
    try {
      return await this.transact(send, cardNumber, nowMs, ctx);
    } catch (e) {
      if (e instanceof Torn) return this.finish({ grant: false, reason: 'tap-again', outcome: 'torn', chargeFen: 0, detail: `card pulled away: ${e.message}` }, cardNumber, nowMs, ctx);
      if (e instanceof PsamFault) return this.finish({ grant: false, reason: 'fare-unavailable', outcome: 'refused', chargeFen: 0, detail: e.message }, cardNumber, nowMs, ctx);
      throw e;
    }
  }

  /**
   * The ticket office's fare adjustment (a refused exit: balance too low, no entry on the card): the clerk
   * takes `cashFen` and closes the trip on the card (a 0-fen composite purchase writing the exit), journaled
   * as `ticket-office` with the cash taken; the rider leaves by the office's gate. `cashFen` defaults to
   * the fare the exit would have charged (the clerk's own figure when the rules send it to the office).
   */
  async ticketOffice(card: Exchange, cardNumber: string, nowMs: number, cashFen?: number): Promise<FareDecision> {
    if (this.config.direction !== 'exit' || !this.table) return this.finish({ grant: false, reason: 'fare-unavailable', outcome: 'refused', chargeFen: 0, detail: 'ticket office: an exit lane with a fare table' }, cardNumber, nowMs, {});
    const send = tearable(card);
    const ctx: Record<string, unknown> = { tableSeq: this.table.seq, paid: 'cash' };
    try {
      const rec = parseTripRecord(await send(readTripRecord));
      if (!rec.ok) return this.finish({ grant: false, reason: 'card-unreadable', outcome: 'refused', chargeFen: 0, detail: rec.detail }, cardNumber, nowMs, ctx);
      const r = rec.value;
      const month = beijingMonth(nowMs);
      const spentFen = r.month === month ? r.monthSpentFen : 0;
      const p = this.priceExit(r, nowMs, spentFen);
      const cash = cashFen ?? ('refuse' in p ? this.table.rules.bands[0].fareFen : p.chargeFen);
      const next: TripRecord = { ...r, status: 'exited', exitStation: this.config.station, exitLane: this.config.laneNumber, exitAtMs: nowMs, lastChargeFen: 0, month, monthSpentFen: spentFen + cash };
      const d = await this.purchase(send, cardNumber, 0, next, nowMs, { ...ctx, cashFen: cash }, cash);
      return d;
    } catch (e) {
      if (e instanceof Torn) return this.finish({ grant: false, reason: 'tap-again', outcome: 'torn', chargeFen: 0, detail: `card pulled away: ${e.message}` }, cardNumber, nowMs, ctx);
      if (e instanceof PsamFault) return this.finish({ grant: false, reason: 'fare-unavailable', outcome: 'refused', chargeFen: 0, detail: e.message }, cardNumber, nowMs, ctx);
      throw e;
    }
  }

  private async transact(send: Exchange, cardNumber: string, nowMs: number, ctx: Record<string, unknown>): Promise<FareDecision> {
    const c = this.config;
    const rec = parseTripRecord(await send(readTripRecord));
    if (!rec.ok) return this.finish({ grant: false, reason: 'card-unreadable', outcome: 'refused', chargeFen: 0, detail: rec.detail }, cardNumber, nowMs, ctx);
    const r = rec.value;
    const mine = c.direction === 'exit' ? r.status === 'exited' && r.exitStation === c.station && nowMs - r.exitAtMs <= c.retapGraceMs && nowMs >= r.exitAtMs - 1000
      : r.status === 'entered' && r.entryStation === c.station && nowMs - r.entryAtMs <= c.retapGraceMs && nowMs >= r.entryAtMs - 1000;
    if (mine) return this.retap(send, cardNumber, r, nowMs, ctx);

    const month = beijingMonth(nowMs);
    const spentFen = r.month === month ? r.monthSpentFen : 0;
    let price: PricedTrip;
    let next: TripRecord;
    if (c.direction === 'entry') {
      // An open trip on the card never exited: its rule's fare is charged now (not under waived order).
      const open = r.status === 'entered';
      const fen = open && !this.modes.waiveOrder ? this.table!.rules.entryWithoutExitFareFen : 0;
      price = { baseFen: fen, overTimeFen: 0, percent: 100, chargeFen: fen, rule: open ? 'entry-without-exit' : 'distance' };
      next = { ...r, status: 'entered', entryStation: c.station, entryLane: c.laneNumber, entryAtMs: nowMs, exitStation: 0, exitLane: 0, exitAtMs: 0, lastChargeFen: fen, month, monthSpentFen: spentFen + fen };
    } else {
      const p = this.priceExit(r, nowMs, spentFen);
      if ('refuse' in p) return this.finish({ grant: false, reason: 'fare-ticket-office', outcome: 'refused', chargeFen: 0, detail: p.refuse }, cardNumber, nowMs, ctx);
      price = p;
      next = { ...r, status: 'exited', exitStation: c.station, exitLane: c.laneNumber, exitAtMs: nowMs, lastChargeFen: price.chargeFen, month, monthSpentFen: spentFen + price.chargeFen };
    }
    Object.assign(ctx, { rule: price.rule, baseFen: price.baseFen, overTimeFen: price.overTimeFen, percent: price.percent, entryStation: r.status === 'entered' ? r.entryStation : undefined });
    return this.purchase(send, cardNumber, price.chargeFen, next, nowMs, ctx);
  }

  private priceExit(r: TripRecord, nowMs: number, spentFen: number): PricedTrip | { refuse: string } {
    const t = this.table!;
    if (this.modes.trainFailure) return { baseFen: 0, overTimeFen: 0, percent: 100, chargeFen: 0, rule: 'distance' };
    const entry = r.status === 'entered' ? { station: r.entryStation, atMs: r.entryAtMs } : undefined;
    if (!entry && this.modes.waiveOrder) {
      const f = t.rules.bands[0].fareFen;
      return { baseFen: f, overTimeFen: 0, percent: 100, chargeFen: f, rule: 'exit-without-entry' };
    }
    const p = priceTrip(t, this.index, { entry, exit: { station: this.config.station, atMs: nowMs }, spentFen });
    if (!p.ok) return { refuse: p.detail };
    if (this.modes.waiveTime && p.trip.overTimeFen > 0) {
      const again = priceTrip(t, this.index, { entry: entry && { ...entry, atMs: nowMs }, exit: { station: this.config.station, atMs: nowMs }, spentFen });
      if (again.ok) return again.trip;
    }
    return p.trip;
  }

  /**
   * The card's record says this lane's station already took this trip: prove the debit, never charge again.
   * The card's proof (GET TRANSACTION PROOF: MAC2 and TAC of that debit) counts only once the PSAM session
   * that computed the debit's MAC1 verifies its MAC2 (80 72); no such session here (another lane, another
   * card's purchase since, a restart), the ticket office settles it with the TAC journaled for clearing.
   */
  private async retap(send: Exchange, cardNumber: string, r: TripRecord, nowMs: number, ctx: Record<string, unknown>): Promise<FareDecision> {
    const init = parseInitPurchase(await send(initPurchase({ amountFen: 0, terminalId: this.psam.terminalId, composite: true })));
    if (!init.ok) return this.refusal(init.error, init.detail, cardNumber, nowMs, ctx);
    const atc = (init.value.atc - 1) & 0xffff;
    const key = `${cardNumber}:${atc}`;
    const settled = this.journaled.get(key);
    if (settled === 'mac2-failed') return this.finish({ grant: false, reason: 'card-invalid', outcome: 'refused', chargeFen: 0, detail: `the card's MAC2 for ATC ${atc} failed at this lane` }, cardNumber, nowMs, { ...ctx, atc });
    if (settled === 'paid') {
      // This lane journaled that transaction and answered. An entry is not let in twice; an exit lets the
      // rider out without a charge (exits never trap a rider: the flaps may have closed before they passed).
      const exit = this.config.direction === 'exit';
      return this.finish({ grant: exit, reason: exit ? 'ok' : 'passback', outcome: 'retap', chargeFen: 0, detail: `trip already settled at this lane (ATC ${atc})` }, cardNumber, nowMs, { ...ctx, atc });
    }
    const proof = parseTransactionProof(await send(getTransactionProof(TX_COMPOSITE, atc)));
    if (!proof.ok) return this.finish({ grant: false, reason: 'card-unreadable', outcome: 'refused', chargeFen: 0, detail: proof.detail }, cardNumber, nowMs, { ...ctx, atc });
    const tac = toHex(proof.value.tac);
    const proven = { ...ctx, atc, tac, terminalId: toHex(this.psam.terminalId), balanceAfterFen: init.value.balanceFen };
    const serial = this.unanswered.get(key);
    if (serial === undefined || serial !== this.psam.session) {
      return this.finish(
        { grant: false, reason: 'fare-ticket-office', outcome: 'refused', chargeFen: 0, detail: `torn debit (ATC ${atc}) cannot be checked at this lane: no PSAM session of its MAC1`, tac },
        cardNumber,
        nowMs,
        { ...proven, proof: 'unchecked', claimedFen: r.lastChargeFen },
      );
    }
    this.unanswered.delete(key);
    this.psam.session = undefined;
    const v = parsePsamMac2(await this.psamSend(psamVerifyMac2(proof.value.mac2)));
    if (!v.ok) {
      if (v.error !== 'mac') throw new PsamFault(`PSAM MAC2: ${v.detail}`);
      // The proof's MAC2 is not the debit's: not the card it claims, or a proof made up. Never a free exit,
      // never a second debit; clearing judges the TAC.
      this.remember(key, 'mac2-failed');
      return this.finish({ grant: false, reason: 'card-invalid', outcome: 'mac2-failed', chargeFen: r.lastChargeFen, detail: `proof of ATC ${atc}: MAC2 refused by the PSAM: ${v.detail}`, tac }, cardNumber, nowMs, { ...proven, proof: 'mac2-failed' });
    }
    this.remember(key, 'paid');
    return this.finish(
      { grant: true, reason: 'ok', outcome: 'recovered', chargeFen: r.lastChargeFen, detail: `torn debit proven on the re-tap (ATC ${atc}, MAC2 verified)`, tac, balanceAfterFen: init.value.balanceFen },
      cardNumber,
      nowMs,
      { ...proven, proof: 'verified' },
    );
  }

  private async purchase(send: Exchange, cardNumber: string, wantFen: number, next: TripRecord, nowMs: number, ctx: Record<string, unknown>, cashFen?: number): Promise<FareDecision> {
    let amount = wantFen;
    let init = parseInitPurchase(await send(initPurchase({ amountFen: amount, terminalId: this.psam.terminalId, composite: true })));
    if (!init.ok && init.error === 'insufficient' && this.modes.waiveFare) {
      // Fare not checked: take what the card holds (read by a zero INITIALIZE).
      const zero = parseInitPurchase(await send(initPurchase({ amountFen: 0, terminalId: this.psam.terminalId, composite: true })));
      if (!zero.ok) return this.refusal(zero.error, zero.detail, cardNumber, nowMs, ctx);
      amount = Math.max(0, Math.min(wantFen, zero.value.balanceFen));
      next = { ...next, lastChargeFen: amount, monthSpentFen: next.monthSpentFen - wantFen + amount };
      init = amount === 0 ? zero : parseInitPurchase(await send(initPurchase({ amountFen: amount, terminalId: this.psam.terminalId, composite: true })));
    }
    if (!init.ok) return this.refusal(init.error, init.detail, cardNumber, nowMs, ctx);
    const { atc, cardRandom, keyVersion, algorithm } = init.value;
    Object.assign(ctx, { atc, balanceBeforeFen: init.value.balanceFen, terminalId: toHex(this.psam.terminalId) });
    const dateTime = beijingDateTime(nowMs);
    const m1 = parsePsamMac1(await this.psamSend(psamMac1({ cardRandom, atc, amountFen: amount, type: TX_COMPOSITE, dateTime, keyVersion, algorithm, cardSerial8: cardSerial8(cardNumber) })));
    if (!m1.ok) throw new PsamFault(`PSAM MAC1: ${m1.detail}`);
    ctx.terminalSerial = m1.value.terminalSerial;
    this.psam.session = m1.value.terminalSerial;
    const up = await send(updateTripRecord(encodeTripRecord(next)));
    if (up.length !== 2 || up[0] !== 0x90 || up[1] !== 0) return this.finish({ grant: false, reason: 'card-unreadable', outcome: 'refused', chargeFen: 0, detail: `UPDATE CAPP DATA CACHE: ${toHex(up)}` }, cardNumber, nowMs, ctx);
    const key = `${cardNumber}:${atc}`;
    // Kept until the card answers: if it never does, the re-tap's proof is checked under this MAC1's session.
    this.unanswered.set(key, m1.value.terminalSerial);
    if (this.unanswered.size > 1000) this.unanswered.delete(this.unanswered.keys().next().value as string);
    const debit = parseProof(await send(debitForPurchase({ terminalSerial: m1.value.terminalSerial, dateTime, mac1: m1.value.mac1 })), 'DEBIT FOR PURCHASE');
    this.unanswered.delete(key);
    if (!debit.ok) {
      // 93 02 here: the card did not accept our MAC1 — the PSAM holds the wrong key. Nothing was debited.
      if (debit.error === 'mac') return this.finish({ grant: false, reason: 'fare-unavailable', outcome: 'refused', chargeFen: 0, detail: `card refused MAC1 (wrong PSAM key?): ${debit.detail}` }, cardNumber, nowMs, ctx);
      return this.refusal(debit.error, debit.detail, cardNumber, nowMs, ctx);
    }
    const tac = toHex(debit.value.tac);
    const balanceAfterFen = init.value.balanceFen - amount;
    Object.assign(ctx, { tac, balanceAfterFen });
    this.remember(key, 'paid');
    this.psam.session = undefined;
    const v = parsePsamMac2(await this.psamSend(psamVerifyMac2(debit.value.mac2)));
    if (!v.ok) {
      // The card debited itself but its MAC2 is wrong: not the card it claims to be. Clearing judges the TAC.
      this.remember(key, 'mac2-failed');
      return this.finish({ grant: false, reason: 'card-invalid', outcome: 'mac2-failed', chargeFen: amount, detail: `MAC2 refused by the PSAM: ${v.detail}`, tac }, cardNumber, nowMs, ctx);
    }
    if (cashFen !== undefined) return this.finish({ grant: true, reason: 'ok', outcome: 'ticket-office', chargeFen: cashFen, detail: `fare ${cashFen} fen paid in cash at the ticket office`, tac, balanceAfterFen }, cardNumber, nowMs, ctx);
    const waived = this.modes.trainFailure || (this.modes.waiveFare && amount < wantFen);
    if (amount < wantFen) ctx.waivedFen = wantFen - amount;
    return this.finish({ grant: true, reason: waived && amount === 0 ? 'ok-fare-waived' : 'ok', outcome: 'debited', chargeFen: amount, detail: `charged ${amount} fen`, tac, balanceAfterFen }, cardNumber, nowMs, ctx);
  }

  private async psamSend(c: Uint8Array): Promise<Uint8Array> {
    try {
      const a = await this.psam.exchange(c);
      if (a.length < 2) throw new Error('no answer');
      return a;
    } catch (e) {
      throw new PsamFault(`PSAM: ${(e as Error).message}`);
    }
  }

  private refusal(error: string, detail: string, cardNumber: string, nowMs: number, ctx: Record<string, unknown>): Promise<FareDecision> {
    const reason: ReasonCode = error === 'blocked' ? 'blocked' : error === 'insufficient' ? 'insufficient-balance' : 'card-unreadable';
    return this.finish({ grant: false, reason, outcome: 'refused', chargeFen: 0, detail }, cardNumber, nowMs, ctx);
  }

  private remember(key: string, how: 'paid' | 'mac2-failed'): void {
    this.journaled.delete(key);
    this.journaled.set(key, how);
    if (this.journaled.size > 10_000) this.journaled.delete(this.journaled.keys().next().value as string);
  }

  /** Journal, durably, then answer. An exit is answered even when the journal fails: exits never trap a rider. */
  private async finish(d: FareDecision, cardNumber: string, nowMs: number, ctx: Record<string, unknown>): Promise<FareDecision> {
    this.counts[d.outcome]++;
    const entry: JournalEntry = {
      type: 'fare',
      laneId: this.config.laneId,
      atMs: nowMs,
      direction: this.config.direction,
      key: `card:${cardNumber}`,
      outcome: d.outcome,
      reason: d.reason,
      station: this.config.station,
      chargeFen: d.chargeFen,
      detail: { ...ctx, modes: activeModes(this.modes), text: d.detail },
    };
    try {
      d.seq = await this.journal.append(entry);
    } catch (e) {
      if (this.config.direction === 'entry') return { ...d, grant: false, reason: 'journal-unavailable', detail: `${d.detail}; journal: ${(e as Error).message}` };
    }
    return d;
  }
}


class PsamFault extends Error {}

function activeModes(m: FareModes): string[] {
  return (Object.keys(m) as (keyof FareModes)[]).filter((k) => m[k]);
}
