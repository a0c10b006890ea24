// Riders of a simulated station: each with a credential from the mission's mix, a registration
// status, a direction, and the ground truth the gate's decisions are judged against.

import { seededRandom } from './random.js';
import { credentialKey, type Credential, type Direction, type QrIssuer } from '../protocol/credential.js';

/** Seeded PRNG (mulberry32): the same seed gives the same station, rider for rider. */
export class Random {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = seededRandom(seed >>> 0 || 0x9e3779b9);
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
  | 'torn-tap';

export type CredentialMixKind = 'qr' | 'card' | 'phone-nfc' | 'ticket';

export interface Rider {
  id: number;
  credential: Credential;
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
  ],
  exitShare: 0.35,
  tailgateRate: 0.01,
};

const STORY_REGISTRATION: Record<RiderStory, Registration> = {
  green: 'green',
  unregistered: 'unregistered',
  yellow: 'yellow',
  red: 'red',
  blocked: 'blocked',
  'enters-twice': 'green',
  'torn-tap': 'green',
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

/** Generate riders. Every rider has a credential of their own (serials are unique). */
export function makeRiders(count: number, rng: Random, mix: PopulationMix = DEFAULT_MIX): Rider[] {
  const riders: Rider[] = [];
  for (let i = 0; i < count; i++) {
    const story = rng.pick(mix.stories);
    const direction: Direction = story === 'enters-twice' ? 'entry' : rng.chance(mix.exitShare) ? 'exit' : 'entry';
    riders.push({
      id: i + 1,
      credential: makeCredential(rng, rng.pick(mix.credentials), mix, i + 1),
      registration: STORY_REGISTRATION[story],
      story,
      direction,
      tailgater: rng.chance(mix.tailgateRate),
    });
  }
  return riders;
}

/** What the back office publishes for these riders: list key → registration (unregistered riders are absent). */
export function registrations(riders: readonly Rider[]): Map<string, Exclude<Registration, 'unregistered'>> {
  const m = new Map<string, Exclude<Registration, 'unregistered'>>();
  for (const r of riders) if (r.registration !== 'unregistered') m.set(credentialKey(r.credential), r.registration);
  return m;
}
