// Remote commands a lane takes from its station bus: each one signed by a supervisor the lane's config
// trusts for that action, addressed to this station and lane, inside its short life, and never twice.
// Everything else is refused with a reason, counted, and logged with who (as claimed) and why.

import type { KeyObject } from 'node:crypto';
import {
  COMMAND_REFUSALS,
  STATION_LEVEL,
  commandSignatureOk,
  decodeCommand,
  type Command,
  type CommandAction,
  type CommandRefusal,
} from '../../protocol/station-bus.js';

export interface TrustedSupervisor {
  publicKey: KeyObject;
  /** The actions this supervisor may order. */
  may: ReadonlySet<CommandAction>;
}

export interface CommandGuardOptions {
  station: string;
  lane: string;
  supervisors: ReadonlyMap<string, TrustedSupervisor>;
  /** Longest life a command may have from issue to expiry (default 120 s). */
  maxTtlMs?: number;
  /** Clock skew allowed for a command issued "in the future" (default 30 s). */
  skewMs?: number;
  /** Command ids remembered (until each expires) to refuse replays (default 10,000). */
  rememberMax?: number;
}

export type CommandCheck = { ok: true; command: Command } | { ok: false; refusal: CommandRefusal; detail: string; id?: string; by?: string; action?: string };

export class CommandGuard {
  private readonly seen = new Map<string, number>();
  readonly counters: Record<CommandRefusal | 'accepted', number>;

  constructor(private readonly opts: CommandGuardOptions) {
    this.counters = Object.fromEntries([...COMMAND_REFUSALS, 'accepted'].map((k) => [k, 0])) as Record<CommandRefusal | 'accepted', number>;
  }

  /** Check one command payload that arrived on `topicLane`'s command topic (a lane id or `station`). */
  check(payload: Uint8Array, topicLane: string, nowMs: number): CommandCheck {
    const r = this.checkInner(payload, topicLane, nowMs);
    this.counters[r.ok ? 'accepted' : r.refusal]++;
    return r;
  }

  private checkInner(payload: Uint8Array, topicLane: string, nowMs: number): CommandCheck {
    const d = decodeCommand(payload);
    if (!d.ok) return { ok: false, refusal: 'malformed', detail: d.why };
    const c = d.value;
    const who = { id: c.id, by: c.by, action: c.action };
    if (c.station !== this.opts.station) return { ok: false, refusal: 'wrong-station', detail: `for station ${c.station}`, ...who };
    // A command names its target, and the target must be the topic it came on: no lane command replayed station-wide.
    if (c.lane !== topicLane || (c.lane !== this.opts.lane && c.lane !== STATION_LEVEL)) return { ok: false, refusal: 'wrong-lane', detail: `for ${c.lane} on ${topicLane}'s topic`, ...who };
    if (c.sig === undefined) return { ok: false, refusal: 'unsigned', detail: 'no signature', ...who };
    const sup = this.opts.supervisors.get(c.by);
    if (!sup) return { ok: false, refusal: 'unknown-supervisor', detail: `${c.by} is not a supervisor this lane trusts`, ...who };
    if (!commandSignatureOk({ ...c, sig: c.sig }, sup.publicKey)) return { ok: false, refusal: 'bad-signature', detail: `signature does not verify with ${c.by}'s key`, ...who };
    const skew = this.opts.skewMs ?? 30_000;
    if (nowMs > c.expiresAtMs) return { ok: false, refusal: 'expired', detail: `expired ${nowMs - c.expiresAtMs} ms ago`, ...who };
    if (c.issuedAtMs > nowMs + skew) return { ok: false, refusal: 'not-yet-valid', detail: `issued ${c.issuedAtMs - nowMs} ms in the future`, ...who };
    const maxTtl = this.opts.maxTtlMs ?? 120_000;
    if (c.expiresAtMs - c.issuedAtMs > maxTtl || c.expiresAtMs < c.issuedAtMs) return { ok: false, refusal: 'too-long-lived', detail: `lives ${c.expiresAtMs - c.issuedAtMs} ms, at most ${maxTtl}`, ...who };
    if (this.seen.has(c.id)) return { ok: false, refusal: 'replayed', detail: `command ${c.id} was already taken`, ...who };
    if (!sup.may.has(c.action)) return { ok: false, refusal: 'unauthorised', detail: `${c.by} may not ${c.action}`, ...who };
    const max = this.opts.rememberMax ?? 10_000;
    if (this.seen.size >= max) {
      for (const [id, until] of this.seen) if (until < nowMs) this.seen.delete(id);
      // Still full: every remembered command is live; taking another could let one of them be replayed.
      if (this.seen.size >= max) return { ok: false, refusal: 'replay-store-full', detail: `${max} live commands remembered`, ...who };
    }
    this.seen.set(c.id, c.expiresAtMs);
    return { ok: true, command: c };
  }

  /** Remembered command ids (for tests and metrics). */
  get remembered(): number {
    return this.seen.size;
  }
}
