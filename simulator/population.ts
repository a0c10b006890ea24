// Riders of a simulated station: each with a credential from the mission's mix, a registration
// status, a direction, and the ground truth the gate's decisions are judged against.

import { seededRandom } from './random.js';
import { credentialKey, type CardCredential, type Credential, type Direction, type PhoneNfcCredential, type QrIssuer } from '../protocol/credential.js';

/** Seeded PRNG (mulberry32): the same seed gives the same station, rider for rider. */
export class Random {
  readonly next: () => number;
  /** Numbers drawn so far: a stream can be picked up at any point with `new Random(seed).skip(draws)`. */
  draws = 0;
  constructor(seed: number) {
    const next = seededRandom(seed >>> 0 || 0x9e3779b9);
    this.next = () => {
      this.draws++;
      return next();
    };
  }
  /** Draw and drop `n` numbers. */
  skip(n: number): this {
    for (let i = 0; i < n; i++) this.next();
    return this;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  /** Exponential inter-arrival time with the given mean. */
  exp(mean: number): number {
    return -Math.log(1 - this.next()) * mean;
  }
  pick<T>(weights: readonly (readonly [T, number])[]): T {
    const total = weights.reduce((a, [, w]) => a + w, 0);
    let x = this.next() * total;
    for (const [v, w] of weights) {
      x -= w;
      if (x < 0) return v;
    }
    return weights[weights.length - 1][0];
  }
  digits(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += String(this.int(10));
    return s;
  }
}

/** What the back office knows of a credential: its binding status, or that it is blocked. */
export type Registration = 'green' | 'yellow' | 'red' | 'blocked' | 'unregistered';

/** The rider's story, which decides what the gate must do. */
export type RiderStory =
  | 'green'
  | 'unregistered'
  | 'yellow'
  | 'red'
  | 'blocked'
  /** Registered green, enters, then tries to enter again without exiting (anti-passback). */
  | 'enters-twice'
  /** Registered green; the first tap is torn (card pulled away): "tap again", then a good tap. */
  | 'torn-tap'
  /**
   * Not registered: refused at entry, steps aside, registers (the registration reaches the lanes), then
   * taps again and must be admitted (a refused entry consumes nothing, passback included).
   */
  | 'registers-after-refusal';

export type CredentialMixKind = 'qr' | 'card' | 'phone-nfc' | 'ticket';

export interface Rider {
  id: number;
  /**
   * The back office's registration this rider's credentials belong to. A card and the phone that emulates
   * it are one registration: the judge keys everything it remembers (passback) on this, never on a list key.
   */
  registrationId: string;
  /** The credential the rider registered (what the back office lists). */
  credential: Credential;
  /**
   * What the rider shows at the gate, attempt after attempt (attempt n shows `shows[(n - 1) % length]`).
   * Usually just `credential`; a rider whose phone emulates their registered card taps the phone (same
   * application serial, a random UID on every tap) and, on a later attempt, the card itself.
   */
  shows: readonly Credential[];
  registration: Registration;
  story: RiderStory;
  direction: Direction;
  /** Walks through right behind this rider on the same authorisation. */
  tailgater: boolean;
}

export interface PopulationMix {
  credentials: readonly (readonly [CredentialMixKind, number])[];
  qrIssuers: readonly (readonly [QrIssuer, number])[];
  stories: readonly (readonly [RiderStory, number])[];
  exitShare: number;
  tailgateRate: number;
  /**
   * Of the riders drawn as 'phone-nfc': the share whose phone emulates a card they registered and also
   * carry (same card number). The others' phones were issued a card number of their own (3105…).
   */
  phoneEmulatesCardShare: number;
}

export const DEFAULT_MIX: PopulationMix = {
  credentials: [
    ['qr', 55],
    ['card', 25],
    ['phone-nfc', 12],
    ['ticket', 8],
  ],
  qrIssuers: [
    ['yitongxing', 30],
    ['alipay', 25],
    ['unionpay', 10],
    ['cmb', 5],
    ['shanghai-metro', 10],
    ['tianjin-metro', 8],
    ['guangzhou-metro', 7],
    ['hohhot-metro', 5],
  ],
  stories: [
    ['green', 72],
    ['unregistered', 7],
    ['yellow', 4],
    ['red', 2],
    ['blocked', 2],
    ['enters-twice', 6],
    ['torn-tap', 7],
    ['registers-after-refusal', 2],
  ],
  exitShare: 0.35,
  tailgateRate: 0.01,
  phoneEmulatesCardShare: 0.5,
};

const STORY_REGISTRATION: Record<RiderStory, Registration> = {
  green: 'green',
  unregistered: 'unregistered',
  yellow: 'yellow',
  red: 'red',
  blocked: 'blocked',
  'enters-twice': 'green',
  'torn-tap': 'green',
  'registers-after-refusal': 'unregistered',
};

export function makeCredential(rng: Random, kind: CredentialMixKind, mix: PopulationMix, serial: number): Credential {
  const n = String(serial).padStart(8, '0');
  switch (kind) {
    case 'qr':
      return { kind: 'qr', issuer: rng.pick(mix.qrIssuers), account: `acct${n}${rng.digits(4)}` };
    case 'card':
      // Beijing Yikatong T-Union numbers: 19 digits, city code 1000 for Beijing.
      return { kind: 'card', cardNumber: `3104${'1000'}${rng.digits(3)}${n}` };
    case 'phone-nfc':
      return { kind: 'phone-nfc', cardNumber: `3105${'1000'}${rng.digits(3)}${n}` };
    case 'ticket':
      return { kind: 'ticket', ticketNumber: `CT2022${n}` };
  }
}

/** A phone emulating this card over NFC (HCE): the same application serial; the reader sees a new UID every tap. */
export function phoneEmulating(card: CardCredential): PhoneNfcCredential {
  return { kind: 'phone-nfc', cardNumber: card.cardNumber };
}

/** Stories whose rider only ever enters. */
const ENTRY_ONLY: ReadonlySet<RiderStory> = new Set(['enters-twice', 'registers-after-refusal']);

/** Generate riders. Every registration is a rider's own (serials are unique); a phone may emulate its rider's card. */
export function makeRiders(count: number, rng: Random, mix: PopulationMix = DEFAULT_MIX): Rider[] {
  const riders: Rider[] = [];
  for (let i = 0; i < count; i++) riders.push(makeRider(rng, i + 1, mix));
  return riders;
}

/** One rider, numbered `serial` (their registration and credential numbers carry it), drawn from `rng`. */
export function makeRider(rng: Random, serial: number, mix: PopulationMix = DEFAULT_MIX): Rider {
  const story = rng.pick(mix.stories);
  const direction: Direction = ENTRY_ONLY.has(story) ? 'entry' : rng.chance(mix.exitShare) ? 'exit' : 'entry';
  const kind = rng.pick(mix.credentials);
  let credential = makeCredential(rng, kind, mix, serial);
  let shows: Credential[] = [credential];
  if (kind === 'phone-nfc' && rng.chance(mix.phoneEmulatesCardShare)) {
    // The registered credential is the card; the rider taps the phone first, the card on a later attempt.
    const card = makeCredential(rng, 'card', mix, serial) as CardCredential;
    credential = card;
    shows = [phoneEmulating(card), card];
  }
  return {
    id: serial,
    registrationId: `reg-${serial}`,
    credential,
    shows,
    registration: STORY_REGISTRATION[story],
    story,
    direction,
    tailgater: rng.chance(mix.tailgateRate),
  };
}

/** What the rider shows on this attempt (1-based). */
export function shownOn(rider: Rider, attempt: number): Credential {
  return rider.shows[(attempt - 1) % rider.shows.length];
}

/**
 * What the back office publishes for these riders: list key → registration (unregistered riders are absent).
 * Only the registered credential is listed: a phone that emulates a registered card is not listed apart.
 */
export function registrations(riders: readonly Rider[]): Map<string, Exclude<Registration, 'unregistered'>> {
  const m = new Map<string, Exclude<Registration, 'unregistered'>>();
  for (const r of riders) if (r.registration !== 'unregistered') m.set(credentialKey(r.credential), r.registration);
  return m;
}
