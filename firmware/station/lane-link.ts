// A lane on its station bus: the used QR code ids it accepts go out (QoS 1, expiring with the code) and
// its peers' come in (bounded: used-codes.ts); its birth, retained state, alarms and decision counts per
// minute go out; a fire alarm raised on any lane of the station opens this one; signed commands come in
// (commands.ts) and each gets an answer on the lane's `result` topic. The lane never waits for the bus:
// with the broker away it decides on what it has and catches up on reconnect.

import { randomBytes } from 'node:crypto';
import type { Clock } from '../../drivers/seams.js';
import {
  MAX_CODES_PER_MESSAGE,
  decodeAlarm,
  decodeUsed,
  encodeAlarm,
  encodeLaneState,
  encodeOnline,
  encodeResult,
  encodeStats,
  encodeUsed,
  laneSubscriptions,
  laneTopic,
  parseTopic,
  type AlarmMessage,
  type Command,
  type CommandRefusal,
  type FareModeName,
  type LaneStateMessage,
} from '../../protocol/station-bus.js';
import type { Logger } from '../config/log.js';
import type { Lane } from '../lane/lane.js';
import { BusClient, busConnection } from './bus.js';
import { CommandGuard } from './commands.js';
import type { StationSettings } from './config.js';
import { BusUsedCodes } from './used-codes.js';

export type ReloadHook = () => Promise<{ ok: boolean; detail?: string }>;

/**
 * Where a signed `fare-mode` command lands: the lane's fare gate (`fareModeSink` in firmware/fares/ makes
 * one of a FareGate). `set` takes the whole set in force (`[]`: normal); `current` is what the state says.
 * Like the operator mode, the set lives in memory: a restart starts normal.
 */
export interface FareModeSink {
  set(modes: readonly FareModeName[]): void;
  current(): FareModeName[];
}

export interface LaneLinkOptions {
  settings: StationSettings;
  clock: Clock;
  log: Logger;
  /** What `reload` does here (re-read config and policy); absent: refused as not supported. */
  onReload?: ReloadHook;
  /** The lane's fare gate, for `fare-mode`; absent (and not connected later): refused, the lane has none. */
  fareModes?: FareModeSink;
}

/** Alarms raised while the broker is away, kept for when it is back (the newest this many). */
const ALARM_BACKLOG = 100;
/** Results published per second at most (a stream of refused commands must not become a stream of answers). */
const RESULTS_PER_SECOND = 20;
/** Bytes one used code takes in a `used` message (`["issuer:16 hex",13 digits],`), for the flood budget. */
const BYTES_PER_ID = 48;

export class LaneStationLink {
  readonly usedCodes: BusUsedCodes;
  readonly bus: BusClient;
  readonly guard: CommandGuard;
  readonly boot = randomBytes(6).toString('hex');
  readonly counters = { fireRelayed: 0, badMessages: 0, resultsDropped: 0, republished: 0, statePublished: 0, alarmsPublished: 0, alarmsDropped: 0, floodDropped: 0 };
  private lane?: Lane;
  private unsent = new Map<string, number>();
  private alarmBacklog: AlarmMessage[] = [];
  private stats = new Map<string, number>();
  private statsFrom: number;
  private granted = 0;
  private refused = 0;
  private lastStateJson = '';
  private stateScheduled = false;
  private timers: unknown[] = [];
  private resultWindow = { atMs: 0, n: 0 };
  private stopped = false;
  private readonly s: StationSettings;
  private readonly budgets = new Map<string, { tokens: number; atMs: number; dropped: number; saidAtMs: number }>();
  private fareModes?: FareModeSink;

  constructor(private readonly o: LaneLinkOptions) {
    const s = (this.s = o.settings);
    this.fareModes = o.fareModes;
    this.statsFrom = Math.floor(o.clock.now());
    this.usedCodes = new BusUsedCodes({ laneId: s.lane, now: () => o.clock.now(), clampMs: s.clampMs, perLaneCap: s.perLaneCap, maxLanes: s.maxLanes, publish: (codes) => this.publishUsed(codes) });
    this.guard = new CommandGuard({ station: s.station, lane: s.lane, supervisors: s.supervisors, maxTtlMs: s.maxTtlMs, rememberMax: s.rememberMax });
    this.bus = new BusClient({
      ...busConnection(s),
      clientId: s.username,
      will: { topic: this.topic('online'), payload: encodeOnline({ online: false, boot: this.boot, atMs: Math.floor(o.clock.now()), cause: 'lost' }), retain: true, qos: 1 },
      subscriptions: laneSubscriptions(s.station, s.lane),
      noLocal: true,
      // At most this many QoS 1 messages in flight to the lane: a flood waits in the broker, not here.
      receiveMaximum: 20,
      log: o.log.child({ part: 'station-bus' }),
    });
    this.bus.on('connect', (present) => this.onConnect(present));
    this.bus.on('message', (t, p) => this.onMessage(t, p));
  }

  /** The lane's clock in whole ms (the simulator's virtual clock has fractions; the wire has integers). */
  private now(): number {
    return Math.floor(this.o.clock.now());
  }

  private topic(leaf: Parameters<typeof laneTopic>[2]): string {
    return laneTopic(this.s.station, this.s.lane, leaf);
  }

  /** Connect (in the background: the lane does not wait) and start the prune tick. */
  start(): void {
    this.bus.start();
    const prune = () => {
      if (this.stopped) return;
      this.usedCodes.prune(this.now());
      this.timers[0] = this.o.clock.setTimeout(prune, 1000);
    };
    prune();
  }

  /** Connect the lane's fare gate when it is built after the link (composition): `fare-mode` then lands there. */
  connectFareModes(sink: FareModeSink): void {
    this.fareModes = sink;
    this.scheduleState();
  }

  /** Tie the link to its running lane: telemetry out, fire alarms and commands in. */
  attach(lane: Lane): void {
    this.lane = lane;
    lane.on('decision', (e) => {
      const r = e.decision.reason;
      this.stats.set(r, (this.stats.get(r) ?? 0) + 1);
      if (e.decision.grant) this.granted++;
      else this.refused++;
    });
    lane.on('alarm', (e) => this.publishAlarm({ alarm: alarmName(e), detail: alarmDetail(e), atMs: Math.floor(e.atMs) }));
    lane.on('mode', () => this.scheduleState());
    const sub = lane.actor.subscribe(() => this.scheduleState());
    lane.cleanups.push(async () => {
      sub.unsubscribe();
      await this.stop();
    });
    const stateTick = () => {
      if (this.stopped) return;
      this.publishState(true);
      this.timers[1] = this.o.clock.setTimeout(stateTick, this.s.stateEveryMs);
    };
    this.timers[1] = this.o.clock.setTimeout(stateTick, this.s.stateEveryMs);
    const statsTick = () => {
      if (this.stopped) return;
      this.publishStats();
      this.timers[2] = this.o.clock.setTimeout(statsTick, this.s.statsEveryMs);
    };
    this.timers[2] = this.o.clock.setTimeout(statsTick, this.s.statsEveryMs);
    this.watchSchedule(lane);
    if (this.bus.connected) this.publishState(true);
  }

  /** A new enforcement schedule, and each stage change at its instant on the lane's clock, change the state too. */
  private watchSchedule(lane: Lane): void {
    const stages = lane.stages;
    if (!stages) return;
    const arm = () => {
      if (this.timers[3] !== undefined) this.o.clock.clearTimeout(this.timers[3]);
      const now = this.o.clock.now();
      const at = stages.nextChangeMs(now);
      // Clamped: a timer longer than 2^31 ms fires at once; re-armed when it does.
      this.timers[3] = at === undefined || this.stopped ? undefined : this.o.clock.setTimeout(() => {
        this.scheduleState();
        arm();
      }, Math.min(at - now, 2_000_000_000));
    };
    const off = stages.onChange(() => {
      this.scheduleState();
      arm();
    });
    arm();
    lane.cleanups.push(async () => off());
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) if (t !== undefined) this.o.clock.clearTimeout(t);
    await this.bus.end({ topic: this.topic('online'), payload: encodeOnline({ online: false, boot: this.boot, atMs: this.now(), cause: 'stopped' }) });
  }

  // --- out ---------------------------------------------------------------------------------------

  private publishUsed(codes: [string, number][]): void {
    if (!this.sendUsed(codes)) for (const [id, u] of codes) if (this.unsent.size < 16_384) this.unsent.set(id, u);
  }

  private sendUsed(codes: [string, number][]): boolean {
    const now = this.now();
    const last = Math.max(...codes.map(([, u]) => u));
    return this.bus.publish(this.topic('used'), encodeUsed({ codes }), { qos: 1, expirySeconds: (last - now) / 1000 });
  }

  private publishAlarm(a: AlarmMessage): void {
    if (this.bus.publish(this.topic('alarm'), encodeAlarm(a), { qos: 1, expirySeconds: 3600 })) {
      this.counters.alarmsPublished++;
      return;
    }
    this.alarmBacklog.push(a);
    if (this.alarmBacklog.length > ALARM_BACKLOG) {
      this.alarmBacklog.shift();
      this.counters.alarmsDropped++;
    }
  }

  private scheduleState(): void {
    if (this.stateScheduled || this.stopped) return;
    this.stateScheduled = true;
    setImmediate(() => {
      this.stateScheduled = false;
      if (!this.stopped) this.publishState(false);
    });
  }

  /** The lane's retained state: on change, and every stateEveryMs with a fresh list age. */
  private publishState(force: boolean): void {
    const lane = this.lane;
    if (!lane || !this.bus.connected) return;
    const m = laneState(lane, this.boot, this.now(), this.fareModes?.current());
    // What a supervisor acts on; the machine's fine state and the flaps ride along without triggering.
    const { atMs: _a, listAgeS: _l, state: _s, flaps: _f, ...compare } = m;
    const json = JSON.stringify(compare);
    if (!force && json === this.lastStateJson) return;
    this.lastStateJson = json;
    if (this.bus.publish(this.topic('state'), encodeLaneState(m), { qos: 1, retain: true })) this.counters.statePublished++;
  }

  private publishStats(): void {
    const now = this.now();
    const m = { fromMs: this.statsFrom, toMs: now, granted: this.granted, refused: this.refused, byReason: Object.fromEntries(this.stats) };
    this.statsFrom = now;
    this.stats.clear();
    this.granted = this.refused = 0;
    this.bus.publish(this.topic('stats'), encodeStats(m), { qos: 0 });
  }

  private onConnect(sessionPresent: boolean): void {
    const now = this.now();
    this.bus.publish(this.topic('online'), encodeOnline({ online: true, boot: this.boot, atMs: now }), { qos: 1, retain: true });
    // The broker lost our session (restarted without it, or first contact): peers may have lost theirs
    // too, so say again every code this lane accepted that is still valid. Otherwise only what it
    // accepted while away.
    const again = sessionPresent ? [...this.unsent].filter(([, u]) => u >= now) : this.usedCodes.ownStillValid(now);
    this.unsent.clear();
    for (let i = 0; i < again.length; i += MAX_CODES_PER_MESSAGE) {
      const batch = again.slice(i, i + MAX_CODES_PER_MESSAGE);
      if (!this.sendUsed(batch)) for (const [id, u] of batch) this.unsent.set(id, u);
      else this.counters.republished += batch.length;
    }
    const backlog = this.alarmBacklog;
    this.alarmBacklog = [];
    for (const a of backlog) this.publishAlarm(a);
    this.lastStateJson = '';
    this.publishState(true);
  }

  // --- in ----------------------------------------------------------------------------------------

  private onMessage(topic: string, payload: Buffer): void {
    const t = parseTopic(topic);
    if (!t || t.station !== this.s.station) {
      this.counters.badMessages++;
      return;
    }
    const now = this.now();
    if (t.leaf === 'used') {
      // Taken on arrival: the bus reads at most a millisecond per turn of the event loop (bus.ts), so a
      // flood waits in the socket and the broker, and past its byte budget a peer's messages go unread.
      if (this.withinBudget(t.lane, payload.length, now)) this.takeUsed(t.lane, payload);
    } else if (t.leaf === 'alarm') {
      const d = decodeAlarm(payload);
      if (!d.ok) {
        this.counters.badMessages++;
        return;
      }
      this.onPeerAlarm(t.lane, d.value);
    } else if (t.leaf === 'cmd') {
      this.onCommand(payload, t.lane, now);
    }
  }

  /**
   * A byte budget per peer lane, checked before anything is decoded: a burst of a whole quota, then what a
   * lane could possibly accept (a quota a minute). A real lane accepts about one code a second; past the
   * budget a peer's messages are dropped unread, counted, and said once a minute.
   */
  private withinBudget(lane: string, bytes: number, now: number): boolean {
    const cap = this.s.perLaneCap * BYTES_PER_ID;
    let b = this.budgets.get(lane);
    if (!b) {
      if (this.budgets.size >= this.s.maxLanes) return false;
      this.budgets.set(lane, (b = { tokens: cap, atMs: now, dropped: 0, saidAtMs: 0 }));
    }
    b.tokens = Math.min(cap, b.tokens + ((now - b.atMs) * cap) / 60_000);
    b.atMs = now;
    if (b.tokens >= bytes) {
      b.tokens -= bytes;
      return true;
    }
    b.dropped++;
    this.counters.floodDropped++;
    if (now - b.saidAtMs >= 60_000) {
      b.saidAtMs = now;
      this.o.log.warn({ event: 'used-codes-flood', lane, dropped: b.dropped }, 'a peer lane sends more used codes than a lane can accept: dropped unread');
    }
    return false;
  }

  private takeUsed(lane: string, payload: Buffer): void {
    const d = decodeUsed(payload);
    if (!d.ok) {
      this.counters.badMessages++;
      return;
    }
    this.usedCodes.receive(lane, d.value.codes, this.now());
  }

  /** One fire-alarm input opens every lane of the station: relay a peer's fire alarm (and its all-clear). */
  private onPeerAlarm(from: string, a: AlarmMessage): void {
    const lane = this.lane;
    if (!lane || from === this.s.lane) return;
    const fire = lane.view().fireAlarm;
    if (a.alarm === 'fire-alarm' && !fire) {
      this.counters.fireRelayed++;
      this.o.log.warn({ event: 'fire-alarm-relayed', from }, 'fire alarm from another lane of the station');
      lane.send({ type: 'FIRE_ALARM', active: true });
    } else if (a.alarm === 'fire-alarm-cleared' && fire) {
      this.o.log.info({ event: 'fire-alarm-cleared-relayed', from }, 'fire alarm cleared at another lane of the station');
      lane.send({ type: 'FIRE_ALARM', active: false });
    }
  }

  private onCommand(payload: Buffer, topicLane: string, now: number): void {
    const r = this.guard.check(payload, topicLane, now);
    if (!r.ok) {
      this.o.log.warn({ event: 'command-refused', refusal: r.refusal, by: r.by ?? '?', id: r.id, action: r.action, detail: r.detail }, 'station command refused');
      if (r.id) this.result({ id: r.id, action: r.action ?? '?', by: r.by ?? '?' }, false, r.refusal, r.detail);
      return;
    }
    const c = r.command;
    this.o.log.info({ event: 'command', by: c.by, id: c.id, action: c.action, args: c.args, lane: c.lane }, 'station command taken');
    void this.apply(c)
      .then((res) => this.result(c, res.ok, res.ok ? undefined : 'failed', res.detail))
      .catch((e: Error) => this.result(c, false, 'failed', e.message));
  }

  private async apply(c: Command): Promise<{ ok: boolean; detail?: string }> {
    const lane = this.lane;
    if (!lane) return { ok: false, detail: 'lane not running' };
    switch (c.action) {
      case 'set-mode':
        lane.send({ type: 'SET_MODE', mode: c.args.mode! });
        return { ok: true };
      case 'reset-emergency':
        lane.send({ type: 'RESET_EMERGENCY' });
        return lane.view().mode === 'emergency' ? { ok: false, detail: 'still in emergency: the fire alarm or emergency button input is active' } : { ok: true };
      case 'station-emergency':
        lane.send({ type: 'FIRE_ALARM', active: c.args.active! });
        return { ok: true, detail: c.args.active ? 'emergency: flaps open' : 'emergency input cleared; each lane needs a reset' };
      case 'reload':
        return this.o.onReload ? this.o.onReload() : { ok: false, detail: 'reload is not supported by this runtime' };
      case 'fare-mode': {
        if (!this.fareModes) return { ok: false, detail: 'this lane has no fare gate' };
        this.fareModes.set(c.args.fareModes!);
        this.scheduleState();
        const now = this.fareModes.current();
        return { ok: true, detail: `fare modes: ${now.length ? now.join(', ') : 'normal'}` };
      }
    }
  }

  private result(c: Pick<Command, 'id' | 'by'> & { action: string }, ok: boolean, refusal?: CommandRefusal, detail?: string): void {
    const now = Date.now();
    if (now - this.resultWindow.atMs >= 1000) this.resultWindow = { atMs: now, n: 0 };
    if (++this.resultWindow.n > RESULTS_PER_SECOND) {
      this.counters.resultsDropped++;
      return;
    }
    const mode = this.lane?.view().mode ?? 'unknown';
    this.bus.publish(
      this.topic('result'),
      encodeResult({ id: c.id, action: c.action, by: c.by, ok, ...(refusal ? { refusal } : {}), ...(detail ? { detail: detail.slice(0, 500) } : {}), atMs: this.now(), mode }),
      { qos: 1, expirySeconds: 600 },
    );
  }
}

/** The lane's state as the bus carries it: privacy-safe (no credential, no reference). */
export function laneState(lane: Lane, boot: string, nowMs: number, fareModes?: FareModeName[]): LaneStateMessage {
  const v = lane.view();
  const cut = (s: string) => s.slice(0, 200);
  const readers: Record<string, string> = {};
  for (const s of lane.sources) readers[s.name] = cut(v.faults[`source:${s.name}`] ?? 'ok');
  const open: Record<string, string> = {};
  for (const [k, d] of Object.entries(v.faults)) open[k.slice(0, 64)] = cut(d);
  if (v.mode === 'emergency') open.emergency = v.fireAlarm ? 'fire alarm' : 'emergency (latched until reset)';
  return {
    boot,
    atMs: nowMs,
    mode: v.mode,
    state: v.state.slice(0, 64),
    flaps: v.flaps,
    direction: lane.config.lane.direction,
    listVersion: v.listVersion,
    listAgeS: Math.max(0, Math.floor(v.listAgeMs / 1000)),
    link: Object.hasOwn(v.faults, 'barrier-link') ? 'down' : 'up',
    readers,
    open,
    fireAlarm: v.fireAlarm,
    ...(v.schedule ? { schedule: { seq: v.schedule.seq, kinds: busStages(v.schedule) } } : {}),
    ...(fareModes ? { fareModes } : {}),
  };
}

/** Each scheduled kind's stage and next change, as the state payload carries them. */
function busStages(s: NonNullable<ReturnType<Lane['view']>['schedule']>): NonNullable<LaneStateMessage['schedule']>['kinds'] {
  const kinds: NonNullable<LaneStateMessage['schedule']>['kinds'] = {};
  for (const [kind, k] of Object.entries(s.kinds)) if (k) kinds[kind] = { stage: k.stage, ...(k.next ? { nextAtMs: k.next.atMs, next: k.next.stage } : {}) };
  return kinds;
}

/** The alarm's name whether the lane emits it as a string or as a typed alarm object. */
function alarmName(e: { alarm: unknown }): string {
  const a = e.alarm as string | { alarm: string };
  return (typeof a === 'string' ? a : a.alarm).slice(0, 64);
}
function alarmDetail(e: { alarm: unknown; detail?: unknown }): string | undefined {
  return typeof e.detail === 'string' ? e.detail.slice(0, 500) : undefined;
}
