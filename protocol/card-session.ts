// One tap, as a sequence of APDUs: decide from the ATR what was tapped, ask the UID, then read the
// T-Union application (or the old Yikatong record, or the ticket pages). The exchange function is
// passed in, so this stays pure: the PC/SC driver, the bench and the tests drive it over real pcscd.

import type { ReasonCode } from './reasons.js';
import type { Credential } from './credential.js';
import { beijingDate, classifyAtr, isRandomUid, toHex, type CardReadError, type Parsed, type YyyyMmDd } from './apdu.js';
import { joinTicketReads, parseTicket, ticketRead, ticketReads, type Ticket } from './ticket.js';
import {
  APDU,
  oldYikatongRead,
  parseBalance,
  parseFile15,
  parseFile17,
  parseOldYikatong,
  parseSelect,
  tUnionRead,
  type CardRead,
} from './tunion.js';

/** Send one command APDU, resolve with the answer (data + SW). Rejects on a PC/SC error (card gone, reader gone). */
export type Exchange = (command: Uint8Array) => Promise<Uint8Array>;

/** The rider-side refusals a tap can end in (a subset of the seam's CardFaultReason). */
export type CardFaultReason = Extract<ReasonCode, 'tap-again' | 'card-not-supported' | 'card-expired' | 'card-not-yet-valid' | 'card-unreadable'>;

export type TapOutcome =
  | {
      ok: true;
      credential: Credential;
      uid: string;
      /** Card details for the technician's tool (validity, balance, layout); absent for tickets. */
      card?: CardRead;
      ticket?: Ticket;
      apdus: number;
    }
  | { ok: false; reason: CardFaultReason; error: CardReadError; detail: string; uid?: string; apdus: number };

export function faultReason(e: CardReadError): CardFaultReason {
  switch (e) {
    case 'expired':
      return 'card-expired';
    case 'not-yet-valid':
      return 'card-not-yet-valid';
    case 'not-supported':
      return 'card-not-supported';
    case 'no-answer':
      return 'tap-again';
    default:
      return 'card-unreadable';
  }
}

/**
 * Run the exchange of one tap. `nowMs` fixes "today" for validity (Beijing calendar day).
 * Card-side problems come back as `{ ok: false }`; PC/SC errors from `exchange` propagate.
 */
export async function readTap(exchange: Exchange, atr: Uint8Array, nowMs: number): Promise<TapOutcome> {
  const counter = { apdus: 0 };
  try {
    return await exchangeTap(exchange, atr, nowMs, counter);
  } catch (e) {
    if (e instanceof NoAnswer) return { ok: false, reason: 'tap-again', error: 'no-answer', detail: `no answer to APDU ${counter.apdus}: card left the field`, apdus: counter.apdus };
    throw e;
  }
}

class NoAnswer extends Error {}

async function exchangeTap(exchange: Exchange, atr: Uint8Array, nowMs: number, counter: { apdus: number }): Promise<TapOutcome> {
  let apdus = 0;
  const send = async (c: Uint8Array) => {
    counter.apdus = ++apdus;
    const a = await exchange(c);
    if (a.length === 0) throw new NoAnswer();
    return a;
  };
  const refuse = (p: { error: CardReadError; detail: string }, uid?: string): TapOutcome => ({ ok: false, reason: faultReason(p.error), error: p.error, detail: p.detail, uid, apdus });
  const today: YyyyMmDd = beijingDate(nowMs);
  const kind = classifyAtr(atr);
  if (kind === 'storage-other' || kind === 'unknown') return refuse({ error: 'not-supported', detail: `ATR ${toHex(atr)} is not a T-Union card, phone or Type 2 ticket` });

  const uidAnswer = await send(APDU.getUid);
  const uidBytes = uidAnswer.length >= 6 && uidAnswer[uidAnswer.length - 2] === 0x90 && uidAnswer[uidAnswer.length - 1] === 0 ? uidAnswer.subarray(0, uidAnswer.length - 2) : undefined;
  if (!uidBytes || uidBytes.length > 10) return refuse({ error: 'short-answer', detail: `UID: unusable answer ${toHex(uidAnswer)}` });
  const uid = toHex(uidBytes);

  if (kind === 'type2') {
    const answers: Uint8Array[] = [];
    for (const c of ticketReads()) answers.push(await send(c));
    const image = joinTicketReads(answers);
    if (!image.ok) return refuse(image, uid);
    const t = parseTicket(image.value);
    if (!t.ok) return refuse(t, uid);
    const v = ticketRead(t.value, today);
    if (!v.ok) return refuse(v, uid);
    return { ok: true, credential: { kind: 'ticket', ticketNumber: v.value.ticketNumber }, uid, ticket: v.value, apdus };
  }

  // ISO 14443-4: our own SELECT (nfc-pcsc's automatic AID processing is off), then the reads.
  const phone = isRandomUid(uidBytes);
  const sel = parseSelect(await send(APDU.selectTUnion));
  let read: Parsed<CardRead>;
  if (sel.kind === 'error') return refuse(sel, uid);
  if (sel.kind === 'selected') {
    const f15 = parseFile15(await send(APDU.readFile15));
    if (!f15.ok) return refuse(f15, uid);
    const f17 = parseFile17(await send(APDU.readFile17));
    if (!f17.ok) return refuse(f17, uid);
    read = tUnionRead(f15.value, f17.value, balanceOf(await send(APDU.getBalance)), today);
  } else {
    const old = parseOldYikatong(await send(APDU.readOldYikatong));
    if (!old.ok) return refuse(old, uid);
    read = oldYikatongRead(old.value, balanceOf(await send(APDU.getBalance)), today);
  }
  if (!read.ok) return refuse(read, uid);
  const r = read.value;
  const credential: Credential = phone
    ? { kind: 'phone-nfc', cardNumber: r.cardNumber, ...(r.balanceFen !== undefined ? { balanceFen: r.balanceFen } : {}) }
    : { kind: 'card', cardNumber: r.cardNumber, ...(r.cardType !== undefined ? { cardType: r.cardType } : {}), ...(r.balanceFen !== undefined ? { balanceFen: r.balanceFen } : {}) };
  return { ok: true, credential, uid, card: r, apdus };
}

/** The balance is informative at a health-code gate: a card that will not tell it is still admitted on its number. */
function balanceOf(answer: Uint8Array): number | undefined {
  const b = parseBalance(answer);
  return b.ok ? b.value : undefined;
}
