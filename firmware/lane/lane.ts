// One lane's runtime: config → decision core, lists, journal, drivers → a running gate machine.
// Everything with I/O is injected, so the same code runs on an edge box, on a bench and in the simulator.

import { createActor, type InspectionEvent } from 'xstate';
import { EventEmitter } from 'node:events';
import { alarmText, type Alarm } from '../../protocol/alarms.js';
import type { BarrierLink, Clock, CredentialSource } from '../../drivers/seams.js';
import type { LaneConfig } from '../config/config.js';
import type { DecisionCore, PassbackStore, RideCodeVerifier, UsedCodes } from '../verify/decision-core.js';
import type { PolicyStages, ScheduleView } from '../verify/policy-schedule.js';
import { gateMachine, laneMode, stateName, type GateActor, type GateEmitted, type GateEvent, type LaneMode } from './gate-machine.js';
import type { Journal, JournalEntry } from '../journal/journal.js';
import type { ListProvider } from '../lists/list-provider.js';
import type { Logger } from '../config/log.js';

export interface LaneOptions {
  config: LaneConfig;
  clock?: Clock;
  log?: Logger;
  /** Each of these overrides what the config names (tests, the simulator, a bench setup). */
  barrier?: BarrierLink;
  sources?: CredentialSource[];
  lists?: ListProvider;
  journal?: Journal;
  rideCodes?: RideCodeVerifier;
  usedCodes?: UsedCodes;
  /** Station-wide anti-passback record (shared by the lanes of one station). */
  passback?: PassbackStore;
  /** XState inspection (dashboards, transition coverage in tests). */
  inspect?: InspectionObserver;
}

type InspectionObserver = (e: InspectionEvent) => void;

export interface LaneView {
  laneId: string;
  state: string;
  mode: LaneMode;
  flaps: string;
  indicator: string;
  display: string;
  faults: Record<string, string>;
  fireAlarm: boolean;
  listVersion: number;
  listAgeMs: number;
  /** The enforcement schedule in force and each scheduled kind's stage now (absent: none, every kind enforced). */
  schedule?: ScheduleView;
  lastDecision?: { grant: boolean; reason: string; kind: string; ref: string; registerByMs?: number };
}

type LaneEvents = { [K in GateEmitted['type']]: [Extract<GateEmitted, { type: K }>] };

export class Lane {
  readonly events = new EventEmitter<LaneEvents>();
  readonly id: string;
  private stopped = false;
  private ageTimer: unknown;
  /** Extra things to release on stop (the QR station peer socket). */
  readonly cleanups: (() => Promise<void>)[] = [];

  constructor(
    readonly actor: GateActor,
    readonly config: LaneConfig,
    readonly lists: ListProvider,
    readonly journal: Journal,
    readonly sources: CredentialSource[],
    readonly barrier: BarrierLink,
    readonly core: DecisionCore,
    private readonly clock: Clock,
    /** The enforcement schedule the decision core relaxes by (absent: none configured or synced). */
    readonly stages?: PolicyStages,
  ) {
    this.id = config.lane.id;
  }

  on<K extends GateEmitted['type']>(type: K, fn: (e: Extract<GateEmitted, { type: K }>) => void): this {
    this.events.on(type, fn as any);
    return this;
  }

  send(event: GateEvent): void {
    if (!this.stopped) this.actor.send(event);
  }

  view(): LaneView {
    const s = this.actor.getSnapshot();
    const c = s.context;
    const l = this.lists.current();
    return {
      laneId: this.id,
      state: stateName(s),
      mode: laneMode(s),
      flaps: c.flaps,
      indicator: c.indicator,
      display: c.display,
      faults: { ...c.faults },
      fireAlarm: c.fireAlarm,
      listVersion: l.version,
      listAgeMs: this.clock.now() - (this.lists.freshAtMs?.() ?? l.publishedAtMs),
      ...(this.stages?.current() ? { schedule: this.stages.view(this.clock.now()) } : {}),
      lastDecision: c.lastDecision && {
        grant: c.lastDecision.grant, reason: c.lastDecision.reason, kind: c.lastDecision.kind, ref: c.lastDecision.ref,
        ...(c.lastDecision.registerByMs === undefined ? {} : { registerByMs: c.lastDecision.registerByMs }),
      },
    };
  }

  /** Tell the machine when the list crosses the configured age (it then applies the stale-list policy). */
  watchListAge(): void {
    const maxAgeMs = this.config.policy.listMaxAgeSeconds * 1000;
    const every = Math.min(60_000, Math.max(1000, Math.floor(maxAgeMs / 10)));
    let stale: boolean | undefined;
    const check = () => {
      if (this.stopped) return;
      // From the back office's last signed word that the list is the latest (a syncing provider), else its publication.
      const age = this.clock.now() - (this.lists.freshAtMs?.() ?? this.lists.current().publishedAtMs);
      const now = age > maxAgeMs;
      if (now !== stale) {
        stale = now;
        this.send({ type: 'LIST_STATE', stale: now, action: this.config.policy.staleListAction });
      }
      this.ageTimer = this.clock.setTimeout(check, every);
    };
    check();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.ageTimer !== undefined) this.clock.clearTimeout(this.ageTimer);
    this.actor.stop();
    await Promise.allSettled([this.barrier.stop(), ...this.sources.map((s) => s.stop()), ...this.cleanups.map((c) => c())]);
    await this.journal.close();
  }
}

/** Everything a lane is made of, already built (by the composition root, a test or a bench). */
export interface LaneParts {
  config: LaneConfig;
  clock: Clock;
  log: Logger;
  lists: ListProvider;
  journal: Journal;
  barrier: BarrierLink;
  sources: CredentialSource[];
  core: DecisionCore;
  /** The QR section's trust list and station peers, when the config has one. */
  qr?: { stop(): Promise<void>; updateTrustList(bytes: Uint8Array): { ok: true; seq: number } | { ok: false; detail: string } };
  /** The enforcement schedule (the same object the decision core holds): synced documents go to it. */
  stages?: PolicyStages;
  /** True when the lane built its lists (a sync it started stops with it). */
  ownsLists: boolean;
  inspect?: InspectionObserver;
}

/** Wire built parts into a running lane: the machine, its journaled alarms, modes and passages, the list-age watchdog. */
export function assembleLane(parts: LaneParts): Lane {
  const { config, clock, log, lists, journal, barrier, sources, core, qr } = parts;
  const actor = createActor(gateMachine, {
    clock,
    inspect: parts.inspect,
    input: {
      laneId: config.lane.id,
      direction: config.lane.direction,
      flaps: config.lane.flaps,
      timeouts: config.timeouts,
      now: () => clock.now(),
      barrier,
      sources,
      decider: {
        laneId: config.lane.id,
        core,
        journal,
        clock,
        onJournalError: (err, d) => log.error({ lane: config.lane.id, err: err.message, reason: d.reason, ref: d.ref }, 'journal append failed'),
      },
    },
  });
  const lane = new Lane(actor, config, lists, journal, sources, barrier, core, clock, parts.stages);
  if (qr) lane.cleanups.push(qr.stop);

  // Alarms, mode changes and passages go to the journal too (not on the decision path: fire and forget).
  const record = (entry: JournalEntry) => {
    journal.append(entry).catch((err: Error) => log.error({ lane: lane.id, err: err.message, entry: entry.type }, 'journal append failed'));
  };
  const laneId = config.lane.id;
  const report = (e: GateEmitted) => {
    switch (e.type) {
      case 'decision':
        log.info(
          { lane: laneId, event: 'decision', kind: e.decision.kind, ref: e.decision.ref, grant: e.decision.grant, reason: e.decision.reason, direction: e.decision.direction, latencyMs: e.decidedAtMs - e.atMs, source: e.source },
          'decision',
        );
        break;
      case 'alarm': {
        // The journal keeps its record shape (name + one line of detail); the log gets every field.
        const detail = alarmText(e.alarm);
        record({ type: 'alarm', laneId, atMs: e.atMs, alarm: e.alarm.alarm, detail });
        log.warn({ ...e.alarm, lane: laneId, event: 'alarm', text: detail }, 'alarm');
        break;
      }
      case 'mode':
        record({ type: 'mode', laneId, atMs: e.atMs, from: e.from, to: e.to, cause: e.cause });
        log.info({ lane: laneId, event: 'mode', from: e.from, to: e.to, cause: e.cause }, 'mode change');
        break;
      case 'passage':
        record({ type: 'passage', laneId, atMs: e.atMs, direction: e.direction, outcome: e.outcome });
        break;
      case 'ignored':
        log.info({ lane: laneId, event: 'ignored', reason: e.reason, source: e.source }, 'presentation ignored');
        break;
    }
    lane.events.emit(e.type, e as never);
  };
  actor.on('*', report);

  // Lists and journal raise their own alarms (rejected update, sync failing, disk full): they are the
  // lane's alarms too — journaled, logged, counted and shown like the barrier's.
  const raise = (alarm: Alarm) => report({ type: 'alarm', alarm, atMs: clock.now() });
  const unlisten = [lists.onAlarm?.(raise), journal.onAlarm?.(raise)];
  lane.cleanups.push(async () => unlisten.forEach((off) => off?.()));
  // What the journal's recovery found at open (damaged segments, records lost), now that the lane listens.
  journal.raiseRecoveryAlarms?.();
  // A list sync the registry started stops with the lane.
  const stopSync = lists.stop;
  if (parts.ownsLists && stopSync) lane.cleanups.push(() => stopSync.call(lists));
  // The issuer trust list rides on list sync: each new document is verified, then replaces the old one.
  if (qr && lists.onIssuerKeys) {
    const off = lists.onIssuerKeys((bytes) => {
      const r = qr.updateTrustList(bytes);
      if (r.ok) log.info({ lane: laneId, event: 'trust-list', seq: r.seq }, 'issuer trust list updated');
      else raise({ alarm: 'trust-list-rejected', detail: r.detail });
    });
    lane.cleanups.push(async () => off());
  }
  // The enforcement schedule: a refused document (the boot file, or one the lane's own check refuses) is an
  // alarm; each newer one list sync hands on (verified, newer, on disk) replaces the one in force.
  const stages = parts.stages;
  if (stages) {
    const offAlarm = stages.listen(raise);
    const offDocs = lists.onPolicySchedule?.((doc) => {
      const r = stages.update(doc);
      if (r.ok) log.info({ lane: laneId, event: 'policy-schedule', seq: r.seq }, 'enforcement schedule updated');
    });
    lane.cleanups.push(async () => {
      offAlarm();
      offDocs?.();
    });
  }
  actor.start();
  lane.watchListAge();
  return lane;
}
