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

export class BusUsedCodes implements UsedCodes {
  private readonly own = new Map<string, number>();
  private readonly peers = new Map<string, Map<string, number>>();
  private readonly perLaneCap: number;
  private readonly maxLanes: number;
  private readonly ownCap: number;
  publish?: (codes: [string, number][]) => void;
  readonly counters: UsedCodesCounters = { marked: 0, received: 0, ignoredExpired: 0, clamped: 0, evicted: 0, unknownLaneDropped: 0, pruned: 0 };
  /** Evictions per peer lane (a flood shows up here, by lane). */
  readonly evictedBy = new Map<string, number>();

  constructor(private readonly opts: BusUsedCodesOptions) {
    this.perLaneCap = opts.perLaneCap ?? 4096;
    this.maxLanes = opts.maxLanes ?? 64;
    this.ownCap = opts.ownCap ?? 16_384;
    this.publish = opts.publish;
  }

  isUsed(codeId: string, nowMs: number): boolean {
    if (this.alive(this.own, codeId, nowMs)) return true;
    for (const m of this.peers.values()) if (this.alive(m, codeId, nowMs)) return true;
    return false;
  }

  markUsed(codeId: string, untilMs: number): void {
    const now = this.opts.now();
    const until = Math.floor(Math.min(untilMs, now + this.opts.clampMs));
    this.counters.marked++;
    this.put(this.own, codeId, until, this.ownCap);
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
      m = new Map();
      this.peers.set(lane, m);
    }
    const limit = Math.floor(nowMs + this.opts.clampMs);
    for (const [id, claimed] of codes) {
      this.counters.received++;
      if (claimed < nowMs) {
        this.counters.ignoredExpired++;
        continue;
      }
      let until = claimed;
      if (until > limit) {
        until = limit;
        this.counters.clamped++;
      }
      if (this.put(m, id, until, this.perLaneCap)) this.evictedBy.set(lane, (this.evictedBy.get(lane) ?? 0) + 1);
    }
  }

  /** This lane's accepted ids still valid: what it republishes when the broker lost its session. */
  ownStillValid(nowMs: number): [string, number][] {
    const out: [string, number][] = [];
    for (const [id, u] of this.own) if (u >= nowMs) out.push([id, u]);
    return out;
  }

  /** Drop expired ids, looking at most `budget` entries (oldest first in each map). */
  prune(nowMs: number, budget = 2000): void {
    for (const m of [this.own, ...this.peers.values()]) {
      for (const [id, u] of m) {
        if (budget-- <= 0) return;
        if (u >= nowMs) break;
        m.delete(id);
        this.counters.pruned++;
      }
    }
  }

  /** Ids held: own and per peer lane. */
  size(): { own: number; peers: number; lanes: number } {
    let peers = 0;
    for (const m of this.peers.values()) peers += m.size;
    return { own: this.own.size, peers, lanes: this.peers.size };
  }

  private alive(m: Map<string, number>, id: string, nowMs: number): boolean {
    const u = m.get(id);
    if (u === undefined) return false;
    if (u < nowMs) {
      m.delete(id);
      return false;
    }
    return true;
  }

  /** Keep the later end; over the cap, evict the oldest entry. True when something was evicted. */
  private put(m: Map<string, number>, id: string, until: number, cap: number): boolean {
    const u = m.get(id);
    if (u !== undefined) {
      if (u < until) m.set(id, until);
      return false;
    }
    let evicted = false;
    if (m.size >= cap) {
      const oldest = m.keys().next().value as string;
      m.delete(oldest);
      this.counters.evicted++;
      evicted = true;
    }
    m.set(id, until);
    return evicted;
  }
}
