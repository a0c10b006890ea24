// The riders of a run, made as they arrive rather than all before the first one does, so a day of a
// million riders holds only those in the station. A seed replays the station it always did: one pass at
// the start draws every rider once, keeping nothing of them but a word each for the back office's book
// (registered.ts) and the last few of each story, and counts the numbers it drew; the streams of arrival
// gaps and of tie-breaks then start where they started when every rider was made up front.

import { DEFAULT_MIX, Random, makeRider, type PopulationMix, type Rider, type RiderStory } from './population.js';
import { listingWord, type Listing } from './registered.js';

/** What a station needs of its riders: how many, the next one, and the stream its arrival gaps come from. */
export interface Arrivals {
  readonly count: number;
  /** Draws the gaps between arrivals (exponential, one number each). */
  readonly gaps: Random;
  /** The next rider to arrive, or undefined once all have. */
  next(): Rider | undefined;
}

export interface ArrivalsOptions {
  seed: number;
  count: number;
  mix?: PopulationMix;
  /** Riders are numbered firstSerial + 1, +2, …: the stations of a line each take their own range. */
  firstSerial?: number;
}

/** Riders of each story kept from the end of the run (scenarios that change riders still to come pick them). */
const TAIL = 24;

export class RiderArrivals implements Arrivals {
  readonly count: number;
  readonly firstSerial: number;
  readonly gaps: Random;
  /** Where the station's ties between equally loaded lanes are broken: after the gaps, as ever. */
  readonly tieBreaks: Random;
  /** Every rider's registered credential and registration, for the back office's book. */
  readonly listing: Listing;
  private readonly mix: PopulationMix;
  private readonly riders: Random;
  private made = 0;
  /** The last riders of each story, latest first: the same objects next() hands out when they come. */
  private readonly tails = new Map<RiderStory, Rider[]>();
  private readonly kept = new Map<number, Rider>();

  constructor(o: ArrivalsOptions) {
    if (!Number.isInteger(o.count) || o.count < 0) throw new Error(`riders: a whole number >= 0, got ${o.count}`);
    this.count = o.count;
    this.firstSerial = o.firstSerial ?? 0;
    this.mix = o.mix ?? DEFAULT_MIX;
    const issuers = this.mix.qrIssuers.map(([issuer]) => issuer);
    const words = new Uint32Array(o.count);
    const pass = new Random(o.seed);
    for (let i = 0; i < o.count; i++) {
      const rider = makeRider(pass, this.firstSerial + 1 + i, this.mix);
      words[i] = listingWord(rider, issuers);
      const tail = this.tails.get(rider.story) ?? [];
      tail.unshift(rider);
      if (tail.length > TAIL) tail.pop();
      this.tails.set(rider.story, tail);
    }
    for (const tail of this.tails.values()) for (const r of tail) this.kept.set(r.id, r);
    this.listing = { firstSerial: this.firstSerial, words, issuers };
    this.riders = new Random(o.seed);
    this.gaps = new Random(o.seed).skip(pass.draws);
    this.tieBreaks = new Random(o.seed).skip(pass.draws + o.count);
  }

  next(): Rider | undefined {
    if (this.made >= this.count) return undefined;
    const rider = makeRider(this.riders, this.firstSerial + 1 + this.made++, this.mix);
    return this.kept.get(rider.id) ?? rider;
  }

  /** Riders made so far. */
  get arrived(): number {
    return this.made;
  }

  /** The last riders of a story, latest first (at most 24): a change made to one reaches it wherever it is. */
  last(story: RiderStory): readonly Rider[] {
    return this.tails.get(story) ?? [];
  }
}
