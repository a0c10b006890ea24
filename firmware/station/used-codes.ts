// Used QR code ids of a whole station, learnt through the station bus. Lookups stay local and synchronous
// (they sit on the decision path); what a peer lane says is bounded before it is kept:
//
// - every id's end is clamped to now + the longest validity a code may claim + twice the clock skew (a
//   forged "until the year 2200" is kept a dozen minutes, like a real one);
// - each peer lane has a quota of ids (insertion order; the oldest goes first), so a lane with valid
//   credentials flooding ids evicts only its own, never what the honest lanes said;
// - at most `maxLanes` peers are believed (the broker's ACL lets only configured lanes publish anyway);
// - pruning walks a bounded number of entries per call, from the oldest.
// The lane's own accepted ids are kept apart (bounded by its own tap rate) and republished when the broker
// lost the lane's session. What is risked while the broker is away: firmware/station/README.md.

import type { UsedCodes } from '../verify/decision-core.js';

export interface BusUsedCodesOptions {
  laneId: string;
  /** The lane's clock (virtual in the simulator). */
  now: () => number;
  /** The longest validity a ride code may claim plus twice the allowed clock skew, ms. */
  clampMs: number;
  /** Ids kept per peer lane (default 4096: a busy lane accepts about 700 codes per 11-minute window). */
  perLaneCap?: number;
  /** Peer lanes believed (default 64). */
  maxLanes?: number;
  /** This lane's own accepted ids kept for republishing (default 16384). */
  ownCap?: number;
  /** Send this lane's accepted ids to the station (the bus publishes them, QoS 1 with message expiry). */
  publish?: (codes: [string, number][]) => void;
}

export interface UsedCodesCounters {
  marked: number;
  received: number;
  ignoredExpired: number;
  clamped: number;
  evicted: number;
  unknownLaneDropped: number;
  pruned: number;
}

/**
 * Ids with their ends, at most `cap`, the oldest inserted evicted first. The insertion order lives in a
 * ring of its own, sized up front: a Map's own order would do, but V8 leaves deleted entries as holes at
 * its front, and finding the oldest live one then walks every hole (4 µs per id in a flood, quadratic in
 * effect). `put` runs the same statements whether or not the ring is full and whether or not an id is
 * clamped: code V8 has optimized on honest peers' ids then meets a flood's first ids without falling back
 * to the interpreter (a deoptimization on a never-run branch cost the flood's first turns milliseconds).
 */
class CappedIds {
  readonly until = new Map<string, number>();
  private readonly ring: (string | undefined)[];
  /** Where the next id goes; with `size === cap`, also where the oldest is. */
  private next = 0;
  private size = 0;
  constructor(private readonly cap: number) {
    this.ring = new Array<string | undefined>(cap).fill(undefined);
  }

  /** Keep the later end; true when an older id had to go to make room. */
  put(id: string, until: number): boolean {
    const u = this.until.get(id);
    if (u !== undefined) {
      if (u < until) this.until.set(id, until);
      return false;
    }
    // An empty slot holds undefined: deleting it is a no-op, so a full ring takes the same path.
    const evicted = this.until.delete(this.ring[this.next] as string);
    this.ring[this.next] = id;
    this.next = this.next + 1 === this.cap ? 0 : this.next + 1;
    this.size = Math.min(this.size + 1, this.cap);
    this.until.set(id, until);
    return evicted;
  }

  alive(id: string, nowMs: number): boolean {
    const u = this.until.get(id);
    if (u === undefined) return false;
    if (u < nowMs) {
      this.until.delete(id);
      return false;
    }
    return true;
  }

  /** Drop expired ids, oldest first, looking at most `budget` slots; returns [looked, dropped]. */
  prune(nowMs: number, budget: number): [number, number] {
    let looked = 0;
    let dropped = 0;
    const oldest = this.size < this.cap ? 0 : this.next;
    for (let i = 0; i < this.size && looked < budget; i++, looked++) {
      const id = this.ring[(oldest + i) % this.cap] as string;
      const u = this.until.get(id);
      if (u === undefined) continue;
      if (u >= nowMs) break;
      this.until.delete(id);
      dropped++;
    }
    return [looked, dropped];
  }
}

export class BusUsedCodes implements UsedCodes {
  private readonly own: CappedIds;
  private readonly peers = new Map<string, CappedIds>();
  private readonly perLaneCap: number;
  private readonly maxLanes: number;
  publish?: (codes: [string, number][]) => void;
  readonly counters: UsedCodesCounters = { marked: 0, received: 0, ignoredExpired: 0, clamped: 0, evicted: 0, unknownLaneDropped: 0, pruned: 0 };
  /** Evictions per believed peer lane (a flood shows up here, by lane). */
  readonly evictedBy = new Map<string, number>();

  constructor(private readonly opts: BusUsedCodesOptions) {
    this.perLaneCap = opts.perLaneCap ?? 4096;
    this.maxLanes = opts.maxLanes ?? 64;
    this.own = new CappedIds(opts.ownCap ?? 16_384);
    this.publish = opts.publish;
  }

  isUsed(codeId: string, nowMs: number): boolean {
    if (this.own.alive(codeId, nowMs)) return true;
    for (const m of this.peers.values()) if (m.alive(codeId, nowMs)) return true;
    return false;
  }

  markUsed(codeId: string, untilMs: number): void {
    const now = this.opts.now();
    const until = Math.floor(Math.min(untilMs, now + this.opts.clampMs));
    this.counters.marked++;
    if (this.own.put(codeId, until)) this.counters.evicted++;
    this.publish?.([[codeId, until]]);
  }

  /** Ids a peer lane accepted (from its own topic: the broker vouches for who it is). */
  receive(lane: string, codes: readonly [string, number][], nowMs: number): void {
    if (lane === this.opts.laneId) return;
    let m = this.peers.get(lane);
    if (!m) {
      if (this.peers.size >= this.maxLanes) {
        this.counters.unknownLaneDropped += codes.length;
        return;
      }
      m = new CappedIds(this.perLaneCap);
      this.peers.set(lane, m);
    }
    const limit = Math.floor(nowMs + this.opts.clampMs);
    // Counted without branches of their own (see CappedIds): a flood's forged ends and evictions take the
    // path honest ids took.
    let evicted = 0;
    let expired = 0;
    let clamped = 0;
    for (let i = 0; i < codes.length; i++) {
      const [id, claimed] = codes[i];
      const gone = claimed < nowMs;
      const over = claimed > limit;
      expired += gone ? 1 : 0;
      clamped += over ? 1 : 0;
      if (!gone) evicted += m.put(id, over ? limit : claimed) ? 1 : 0;
    }
    this.counters.received += codes.length;
    this.counters.ignoredExpired += expired;
    this.counters.clamped += clamped;
    this.counters.evicted += evicted;
    // A flood shows up here, by lane (every believed peer has an entry, most of them 0).
    this.evictedBy.set(lane, (this.evictedBy.get(lane) ?? 0) + evicted);
  }

  /** This lane's accepted ids still valid: what it republishes when the broker lost its session. */
  ownStillValid(nowMs: number): [string, number][] {
    const out: [string, number][] = [];
    for (const [id, u] of this.own.until) if (u >= nowMs) out.push([id, u]);
    return out;
  }

  /** Drop expired ids, looking at most `budget` entries (oldest first in each store). */
  prune(nowMs: number, budget = 2000): void {
    for (const m of [this.own, ...this.peers.values()]) {
      if (budget <= 0) return;
      const [looked, dropped] = m.prune(nowMs, budget);
      budget -= looked;
      this.counters.pruned += dropped;
    }
  }

  /** Ids held: own and per peer lane. */
  size(): { own: number; peers: number; lanes: number } {
    let peers = 0;
    for (const m of this.peers.values()) peers += m.until.size;
    return { own: this.own.until.size, peers, lanes: this.peers.size };
  }
}
