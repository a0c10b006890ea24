// What the simulated back office has on file for the riders of a run: one 32-bit word per rider instead
// of a map entry per credential, so a day of a million riders costs 4 MB here, not a few hundred. The
// registered credential's key is rebuilt from the rider's serial and its word and compared whole, so a
// lookup is exact. Credentials that are not a rider's (a dashboard tap, a test's own) are kept apart.

import { credentialKey, type QrIssuer } from '../protocol/credential.js';
import type { Registration, Rider } from './population.js';

/** A run's riders as the book holds them: rider `firstSerial + 1 + i` has `words[i]`. */
export interface Listing {
  firstSerial: number;
  words: Uint32Array;
  /** The QR issuers of the riders' mix, in its order (a word names one by its index). */
  issuers: readonly QrIssuer[];
}

// A word: bits 0-2 registration, 3-4 the key's form, 5-7 the QR issuer, 8-21 the credential's random digits.
const REGISTRATIONS: readonly Registration[] = ['unregistered', 'green', 'yellow', 'red', 'blocked'];
const QR = 0, CARD = 1, PHONE_CARD = 2, TICKET = 3;

/** The word for a rider's registered credential; throws when the credential is not one makeCredential makes. */
export function listingWord(rider: Rider, issuers: readonly QrIssuer[]): number {
  const c = rider.credential;
  let form: number, issuer = 0, digits = 0;
  if (c.kind === 'qr') {
    form = QR;
    issuer = issuers.indexOf(c.issuer);
    digits = Number(c.account.slice(-4));
  } else if (c.kind === 'ticket') {
    form = TICKET;
  } else {
    form = c.cardNumber.startsWith('3105') ? PHONE_CARD : CARD;
    digits = Number(c.cardNumber.slice(8, 11));
  }
  const word = REGISTRATIONS.indexOf(rider.registration) | (form << 3) | (issuer << 5) | (digits << 8);
  // The book rebuilds keys from words: a credential made some other way would be looked up wrong.
  if (issuer < 0 || !Number.isInteger(digits) || keyOf(rider.id, word, issuers) !== credentialKey(c)) {
    throw new Error(`rider ${rider.id}: the registration book cannot rebuild ${c.kind} credential keys made this way (simulator/registered.ts follows population.ts makeCredential)`);
  }
  return word;
}

function keyOf(serial: number, word: number, issuers: readonly QrIssuer[]): string {
  const n = String(serial).padStart(8, '0');
  const digits = word >>> 8;
  switch ((word >>> 3) & 3) {
    case QR:
      return `qr:${issuers[(word >>> 5) & 7]}:acct${n}${String(digits).padStart(4, '0')}`;
    case CARD:
      return `card:31041000${String(digits).padStart(3, '0')}${n}`;
    case PHONE_CARD:
      return `card:31051000${String(digits).padStart(3, '0')}${n}`;
    default:
      return `ticket:CT2022${n}`;
  }
}

/** The serial a key of makeCredential's shape carries, or undefined. */
function serialOf(key: string): number | undefined {
  let digits: string;
  if (key.startsWith('qr:')) {
    const account = key.slice(key.indexOf(':', 3) + 1);
    if (!account.startsWith('acct')) return undefined;
    digits = account.slice(4, -4);
  } else if (key.startsWith('card:')) digits = key.slice(5 + 11);
  else if (key.startsWith('ticket:CT2022')) digits = key.slice(13);
  else return undefined;
  return /^\d{8,9}$/.test(digits) ? Number(digits) : undefined;
}

export type Listed = Exclude<Registration, 'unregistered'>;

export class RegisteredCredentials {
  private readonly listings: Listing[] = [];
  private readonly others = new Map<string, Registration>();
  private allowed = 0;

  /** Put a run's riders on file (their serials must not overlap another listing's). */
  add(listing: Listing): void {
    const first = listing.firstSerial, last = first + listing.words.length;
    for (const l of this.listings) if (first < l.firstSerial + l.words.length && l.firstSerial < last) throw new Error(`riders ${first + 1}-${last} overlap riders already on file`);
    this.listings.push(listing);
    for (const w of listing.words) if (allows(w & 7)) this.allowed++;
  }

  /** The registration on file for a list key ('unregistered': none). */
  lookup(key: string): Registration {
    const at = this.find(key);
    if (at) return REGISTRATIONS[at.listing.words[at.i] & 7];
    return this.others.get(key) ?? 'unregistered';
  }

  set(key: string, registration: Registration): void {
    const at = this.find(key);
    const before = this.lookup(key);
    if (at) at.listing.words[at.i] = (at.listing.words[at.i] & ~7) | REGISTRATIONS.indexOf(registration);
    else if (registration === 'unregistered') this.others.delete(key);
    else this.others.set(key, registration);
    this.allowed += Number(allows(REGISTRATIONS.indexOf(registration))) - Number(allows(REGISTRATIONS.indexOf(before)));
  }

  /** Credentials on file as green, yellow or red (blocked ones are on the denylist instead). */
  get allowedCount(): number {
    return this.allowed;
  }

  /** Everything on file, riders in serial order first: what a real back office would be sent. */
  *entries(): Generator<[string, Listed]> {
    for (const l of this.listings) {
      for (let i = 0; i < l.words.length; i++) {
        const reg = REGISTRATIONS[l.words[i] & 7];
        if (reg !== 'unregistered') yield [keyOf(l.firstSerial + 1 + i, l.words[i], l.issuers), reg];
      }
    }
    for (const [k, reg] of this.others) if (reg !== 'unregistered') yield [k, reg];
  }

  private find(key: string): { listing: Listing; i: number } | undefined {
    const serial = serialOf(key);
    if (serial === undefined) return undefined;
    for (const listing of this.listings) {
      const i = serial - listing.firstSerial - 1;
      if (i >= 0 && i < listing.words.length) return keyOf(serial, listing.words[i], listing.issuers) === key ? { listing, i } : undefined;
    }
    return undefined;
  }
}

function allows(code: number): boolean {
  return code >= 1 && code <= 3;
}
