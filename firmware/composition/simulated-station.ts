// Why this file is long: it is the whole composition behind `gate sim` — one wiring table per seam, the
// station's lanes and the virtual-time loop that waits for real I/O; split, the tables would lose their loop.
// The composition behind `gate sim`: N real lane runtimes (the same firmware a gate runs) wired to a
// simulated station — virtual barrier boards, riders, readers and cameras — on one virtual clock.
// How each wire is played (typed in-process, a real pty, real pcscd, a real camera pipeline, a real back
// office) is picked per seam from the wiring tables below.

import { credentialKey, credentialRef, type Credential, type Direction, type LaneDirection } from '../../protocol/credential.js';
import { VirtualClock } from '../../simulator/virtual-clock.js';
import type { BarrierLink, Clock, CredentialSource } from '../../drivers/seams.js';
import { SimulatedBarrierLink, SimulatedSource } from '../../drivers/simulated.js';
import { DEFAULT_MIX, Random, makeCredential, type PopulationMix, type Registration, type Rider } from '../../simulator/population.js';
import { RiderArrivals } from '../../simulator/arrivals.js';
import { RegisteredCredentials } from '../../simulator/registered.js';
import { Station, type PresentationResult, type RiderPresenter, type StationLane, type StationSummary, type TruthPolicy } from '../../simulator/station.js';
import { VirtualBarrier, DEFAULT_MECHANICS } from '../../simulator/virtual-barrier.js';
import { NormallyOpenFlow, REFERENCE_WALK, type FraudMix } from '../../simulator/lane-mechanics.js';
import type { FlapRegime } from '../../protocol/barrier.js';
import { ConfigError, parseLaneConfig, type LaneConfig } from '../config/config.js';
import { MemoryPassback, MemoryUsedCodes, type RideCodeVerifier } from '../verify/decision-core.js';
import { MemoryJournal, type Journal } from '../journal/journal.js';
import { startLane, type Lane } from './start-lane.js';
import type { ListProvider } from '../lists/list-provider.js';
import { BookLists } from './sim-lists.js';
import { silentLogger, type Logger } from '../config/log.js';
import type { DashboardSim } from '../dashboard/dashboard.js';
import type { SourceWiring, WiringContext } from './sim-wiring.js';
import type { RecordOverrides } from '../recording/recorder.js';

export type { SourceWiring, WiringContext } from './sim-wiring.js';

export interface SimOptions {
  lanes: number;
  passengers: number;
  seed: number;
  /** Mean arrivals per lane per minute; above the mechanics' capacity, queues form. */
  rate: number;
  realtime: boolean;
  /** With realtime: keep the station running after the last rider until station.stop() (dashboard open). */
  untilStopped?: boolean;
  barrier: string;
  reader: string;
  qr: string;
  backoffice: string;
  /**
   * The lanes' `policy` config section, as in lane.json (default: the config's defaults). A scenario that
   * sets it must state the same rule to the judge in `judgeRule`, in the simulator's terms: the judge
   * never reads the lanes' config.
   */
  lanePolicy?: unknown;
  /** The rule the station's judge applies (default: the simulator's STATION_RULE). */
  judgeRule?: TruthPolicy;
  /** Journal records each lane holds in memory (the rest are counted, not kept); default: a share of JOURNAL_RECORDS_HELD. */
  journalKeep?: number;
  /** The lanes' `lane.flaps` (default normally-closed); normally-open riders walk through while the lane decides. */
  flaps?: FlapRegime;
  /** The riders' mix of credentials and stories (default DEFAULT_MIX). */
  mix?: PopulationMix;
  /** Normally open: bodies that do not tap, as a share of riders (default DEFAULT_FRAUD). */
  fraud?: FraudMix;
  /** 'mqtt': the lanes share used QR codes, alarms and telemetry through a real mosquitto (sim-broker.ts). */
  broker?: string;
  /** `--record DIR`: every lane recorded into DIR/<lane>/ for `gate replay` (firmware/recording/). */
  record?: RecordOverrides;
  log?: Logger;
  onResult?: (r: PresentationResult) => void;
  /** Called once the lanes run, before riders arrive (the dashboard attaches here). */
  onReady?: (s: SimulatedStation) => void | Promise<void>;
}

export const DEFAULT_SIM: SimOptions = {
  lanes: 4,
  passengers: 400,
  seed: 1,
  rate: 30,
  realtime: false,
  barrier: 'typed',
  reader: 'simulated',
  qr: 'signed',
  backoffice: 'memory',
};


/** Normally open: one in a hundred riders' turn goes to someone walking in without a tap, and as many the wrong way (one-way lanes). */
export const DEFAULT_FRAUD: FraudMix = { noTap: 0.01, wrongWay: 0.01 };

export interface BarrierWiring {
  link: BarrierLink;
  close(): Promise<void>;
  /** For wires with real I/O: true once nothing is in flight, so virtual time may move on. */
  quiet?(): boolean;
}
export interface StationWiring {
  lists: ListProvider;
  /** Publish the riders' registrations (and later changes) wherever the lanes' lists come from: one station's riders, or a line's. */
  publish(riders: readonly RiderArrivals[]): Promise<void>;
  /** Publish these credentials' registrations now; resolves once the lanes' lists carry them. */
  register(entries: Map<string, Exclude<Registration, 'unregistered'>>): Promise<void>;
  /** Verifies QR text when QR riders show signed codes. */
  rideCodes?: RideCodeVerifier;
  /** False while a change is on its way to the lanes (virtual time waits for it). */
  quiet?: () => boolean;
  close(): Promise<void>;
}

/**
 * Barrier wire per lane: 'typed' is the in-process typed wire; 'pty' puts each lane's board on its own
 * real pty pair (socat) behind the real serial driver, bytes, CRC and all, still on virtual time.
 */
export const barrierWirings: Record<string, (board: VirtualBarrier, ctx: WiringContext) => Promise<BarrierWiring>> = {
  typed: async (board, ctx) => ({ link: new SimulatedBarrierLink(board, ctx.clock), close: async () => {} }),
  pty: async (board, ctx) => {
    const [{ ptyPair }, { BarrierBoard }, { SerialBarrierLink }] = await Promise.all([
      import('../../simulator/pty-pair.js'),
      import('../../simulator/barrier-board.js'),
      import('../../drivers/serial-barrier.js'),
    ]);
    // No socat on this box is a setup problem the user can fix: say so as a config error, not a crash.
    const pty = await ptyPair(`sim-${ctx.laneId}`).catch((e: Error) => {
      throw new ConfigError(`--barrier pty: ${e.message}`);
    });
    const wire = new BarrierBoard({ path: pty.b, barrier: board, timers: ctx.clock, heartbeatMs: 250, failSafeAfterMs: 2000 });
    await wire.start();
    const link = new SerialBarrierLink(
      { type: 'serial', path: pty.a, heartbeatMs: 250, silenceMs: 1000 },
      { clock: ctx.clock, log: ctx.log.child({ driver: 'barrier:serial', path: pty.a }) },
    );
    return {
      link,
      // Virtual time waits for real bytes: every frame sent has been read and every command and event answered.
      quiet: () =>
        link.state === 'up' &&
        link.idle &&
        wire.idle &&
        link.counters.framesOut === wire.reader.counters.frames &&
        wire.framesOut === link.counters.framesIn,
      close: async () => {
        await link.stop();
        await wire.stop();
        await pty.close();
      },
    };
  },
};

/** Card-reader wire per lane side: 'simulated' hands credentials over in process; 'pcsc' taps virtual cards on pcscd. */
export const readerWirings: Record<string, (side: Direction, ctx: WiringContext) => Promise<SourceWiring>> = {
  simulated: async (side, ctx) => simulatedSourceWiring(`sim-reader-${side}`, side, ctx.clock),
  pcsc: async (side, ctx) => (await import('./sim-pcsc.js')).pcscWiring(side, ctx),
};

/** QR wire per lane side: 'simulated' hands verified codes over in process; 'camera' renders frames for the real decoder. */
export const qrWirings: Record<string, (side: Direction, ctx: WiringContext) => Promise<SourceWiring>> = {
  simulated: async (side, ctx) => simulatedSourceWiring(`sim-qr-${side}`, side, ctx.clock),
  signed: async (side, ctx) => (await import('./sim-qr-camera.js')).signedQrWiring(side, ctx),
  camera: async (side, ctx) => (await import('./sim-qr-camera.js')).cameraQrWiring(side, ctx),
};

/** Where the lanes' lists come from: 'memory' loads them directly; the back office adds 'http'. */
export const backofficeWirings: Record<string, (ctx: { clock: Clock; log: Logger; seed: number }) => Promise<StationWiring>> = {
  memory: async ({ clock }) => {
    // The lanes read the back office's book itself: one word per rider, not a map entry per credential.
    const book = new RegisteredCredentials();
    return {
      lists: new BookLists(book, clock.now()),
      publish: async (populations) => {
        for (const p of populations) book.add(p.listing);
      },
      register: async (entries) => {
        for (const [key, reg] of entries) book.set(key, reg);
      },
      close: async () => {},
    };
  },
  /**
   * The real back office (HTTP + SQLite) and each gate's real sync client: registrations are imported
   * into the back office, published as a signed version, and reach the lanes over HTTP (snapshot, then
   * deltas for every later publish). One sync client serves every lane, as one station controller would.
   */
  http: async ({ clock, log }) => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { Backoffice } = await import('../../simulator/backoffice/server.js');
    const { ListSync } = await import('../lists/list-sync.js');
    const { trustedListKey } = await import('../../protocol/lists/index.js');
    const dir = await mkdtemp(join(tmpdir(), 'gate-sim-lists-'));
    const bo = new Backoffice({ db: ':memory:', now: () => clock.now() });
    const { url } = await bo.listen(0);
    const sync = await ListSync.open({ url, dir, trustedKeys: [trustedListKey(bo.publicKeyPem)], log: log.child({ part: 'list-sync' }) });
    const post = async (path: string, body: unknown) => {
      const r = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: r.status, body: (await r.json()) as Record<string, unknown> };
    };
    let busy = false;
    let stopped = false;
    let round = 0;
    // One change at a time reaches the back office and the sync client (live changes, riders registering).
    let chain: Promise<unknown> = Promise.resolve();
    const serially = <T>(work: () => Promise<T>): Promise<T> => {
      const next = chain.then(work);
      chain = next.catch(() => {});
      return next;
    };
    const publishAndSync = async (what: string) => {
      bo.publish();
      const r = await sync.syncOnce();
      if (r.kind !== 'applied' && r.kind !== 'up-to-date') throw new Error(`${what}: list sync from the back office failed: ${r.kind} ${'detail' in r ? r.detail : ''}`);
    };
    /**
     * While the station runs: a few riders register (QR account links, ticket registrations, card
     * imports) and a few statuses change, over the back office's HTTP API; the change is published and
     * synced, and only then becomes the riders' ground truth. Virtual time waits (quiet() is false).
     */
    const liveChanges = async (populations: readonly RiderArrivals[]) => {
      round++;
      const changed: [Rider, Rider['registration']][] = [];
      // Riders from the end of the list arrive last: the change lands before they reach a gate. They are
      // the very objects the station will be handed when they come, so the change is their ground truth.
      const last = (story: Rider['story']) => populations.flatMap((p) => p.last(story));
      const newcomers = last('unregistered').filter((r) => r.registration === 'unregistered').slice(0, 2);
      for (const r of newcomers) {
        const c = r.credential;
        if (c.kind === 'qr') {
          if ((await post('/v1/qr-links', { issuer: c.issuer, account: c.account, status: 'green' })).status === 201) changed.push([r, 'green']);
        } else if (c.kind === 'ticket') {
          const res = await post('/v1/registrations', { credentialType: 'commemorative-ticket', number: c.ticketNumber, rider: { name: `rider ${r.id}`, phone: '13800000000' }, consent: true });
          if (res.status === 201) changed.push([r, 'green']);
        } else {
          bo.importEntries([[credentialKey(c), 'green']]);
          changed.push([r, 'green']);
        }
      }
      const flips = last('green').filter((r) => r.registration === 'green').slice(0, 2);
      for (const r of flips) {
        if ((await post('/v1/status', { key: credentialKey(r.credential), status: 'red' })).status === 200) changed.push([r, 'red']);
      }
      await post('/v1/lists/publish', {});
      const res = await sync.syncOnce();
      if (res.kind !== 'applied' && res.kind !== 'up-to-date') throw new Error(`mid-run sync failed: ${res.kind}`);
      for (const [r, reg] of changed) r.registration = reg;
      log.info({ round, changed: changed.length, version: sync.status().version }, 'back office changes reached the lanes');
    };
    return {
      lists: sync,
      register: (entries) =>
        serially(async () => {
          bo.importEntries(entries);
          await publishAndSync('registration');
        }),
      publish: async (populations) => {
        const book = new RegisteredCredentials();
        for (const p of populations) book.add(p.listing);
        bo.importEntries(book.entries());
        await publishAndSync('first publish');
        const every = 60_000;
        const tick = () => {
          if (stopped || round >= 10) return;
          busy = true;
          serially(() => liveChanges(populations))
            .catch((e: Error) => log.error({ err: e.message }, 'mid-run back office change failed'))
            .finally(() => {
              busy = false;
              if (!stopped) clock.setTimeout(tick, every);
            });
        };
        clock.setTimeout(tick, every);
      },
      quiet: () => !busy,
      close: async () => {
        stopped = true;
        await sync.stop();
        await bo.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
};

function simulatedSourceWiring(name: string, side: Direction, clock: Clock): SourceWiring {
  const source = new SimulatedSource(name, side, clock);
  return { source, presenter: { present: (c) => source.present(c), cardFault: (r, d) => source.cardFault(r, d) }, close: async () => {} };
}

function pick<T>(table: Record<string, T>, what: string, name: string): T {
  const v = Object.hasOwn(table, name) ? table[name] : undefined;
  if (!v) throw new ConfigError(`unknown ${what} "${name}"; known: ${Object.keys(table).join(', ')}`);
  return v;
}

/** entry, entry, exit, bidirectional, ...: a station needs both directions whatever N is. */
export function laneDirection(i: number, n: number): LaneDirection {
  if (n === 1) return 'bidirectional';
  if (n === 2) return i === 0 ? 'entry' : 'exit';
  return (['entry', 'entry', 'exit', 'bidirectional'] as const)[i % 4];
}

export interface SimulatedStation {
  lanes: Lane[];
  boards: VirtualBarrier[];
  clock: VirtualClock;
  station: Station;
  journals: MemoryJournal[];
  /** Present a credential at a lane side now (dashboard, tests). */
  present(laneIndex: number, side: Direction, c: Credential): void;
  /** Publish one credential's registration to wherever the lanes' lists come from ('unregistered': nothing published). */
  register(c: Credential, registration: Registration): Promise<void>;
  fireAlarm(active: boolean): void;
  /** Let the wires finish what the last step started (real I/O on pty wiring; one event-loop turn otherwise). */
  settle(): Promise<void>;
}

/** Lanes one simulated station may have (a line has many stations: simulated-line.ts). */
export const MAX_LANES = 1024;
/** Journal records a simulated station holds in memory, shared out among its lanes (the rest are counted, not kept). */
export const JOURNAL_RECORDS_HELD = 8192;

/** What the stations of a line share (simulated-line.ts): one clock and one back office; each has its own riders. */
export interface LineShare {
  clock: VirtualClock;
  backoffice: StationWiring;
  riders: RiderArrivals;
  /** The station's name in its lanes' config and logs. */
  station: string;
  /** Journal records each lane holds. */
  journalKeep: number;
}

/** A station whose lanes run, before its riders come: run() it (or drive its clock), then close() it. */
export interface OpenStation {
  sim: SimulatedStation;
  /** Nothing held: no real I/O in flight, no real-time work, no registration on its way. */
  quiet(): boolean;
  close(): Promise<void>;
}

export async function simulateStation(opts: Partial<SimOptions> = {}): Promise<{ summary: StationSummary; sim: SimulatedStation }> {
  const open = await openStation(opts);
  try {
    const summary = await open.sim.station.run();
    return { summary, sim: open.sim };
  } finally {
    await open.close();
  }
}

/** Build a station's lanes and wires and start them (alone, or as one station of a line sharing `line`). */
export async function openStation(opts: Partial<SimOptions> = {}, line?: LineShare): Promise<OpenStation> {
  const o: SimOptions = { ...DEFAULT_SIM, ...opts };
  if (!Number.isInteger(o.lanes) || o.lanes < 1 || o.lanes > MAX_LANES) throw new ConfigError(`--lanes must be 1-${MAX_LANES}, got ${o.lanes}`);
  if (!Number.isInteger(o.passengers) || o.passengers < 0) throw new ConfigError(`--passengers must be a whole number >= 0, got ${o.passengers}`);
  if (!(o.rate > 0)) throw new ConfigError(`--rate must be > 0 arrivals per lane per minute, got ${o.rate}`);
  const log = o.log ?? silentLogger;
  const barrierWiring = pick(barrierWirings, 'barrier wiring (--barrier)', o.barrier);
  const readerWiring = pick(readerWirings, 'reader wiring (--reader)', o.reader);
  const qrWiring = pick(qrWirings, 'QR wiring (--qr)', o.qr);
  const backofficeWiring = pick(backofficeWirings, 'back office (--backoffice)', o.backoffice);

  const stationId = line?.station ?? 'SIM';
  const clock = line?.clock ?? new VirtualClock();
  // Riders are made as they arrive; the station breaks ties between lanes on the stream after theirs.
  const riders = line?.riders ?? new RiderArrivals({ seed: o.seed, count: o.passengers, mix: o.mix ?? DEFAULT_MIX });
  const rng = riders.tieBreaks;
  const backoffice = line?.backoffice ?? (await backofficeWiring({ clock, log, seed: o.seed }));
  if (!line) await backoffice.publish([riders]);
  const journalKeep = line?.journalKeep ?? o.journalKeep ?? Math.max(64, Math.floor(JOURNAL_RECORDS_HELD / o.lanes));

  const usedCodes = new MemoryUsedCodes();
  // A line's back office is the line's to close.
  const closers: (() => Promise<void>)[] = line ? [] : [backoffice.close];
  // --broker mqtt: each lane on its own link to a real station broker instead of one shared store.
  if (o.broker !== undefined && o.broker !== 'none' && o.broker !== 'mqtt') throw new ConfigError(`unknown broker (--broker) "${o.broker}"; known: none, mqtt`);
  const simBroker = o.broker === 'mqtt' ? await (await import('./sim-broker.js')).startSimBroker({ station: stationId, lanes: Array.from({ length: o.lanes }, (_, i) => `L${String(i + 1).padStart(2, '0')}`), clock, log }) : undefined;
  if (simBroker) closers.push(simBroker.close);
  const lanes: Lane[] = [];
  const boards: VirtualBarrier[] = [];
  const journals: MemoryJournal[] = [];
  const stationLanes: StationLane[] = [];
  const quietChecks: (() => boolean)[] = [];
  if (backoffice.quiet) quietChecks.push(backoffice.quiet);
  if (o.lanePolicy !== undefined && o.judgeRule === undefined) {
    throw new ConfigError('a scenario that sets the lanes\' policy must state the same rule to the judge (judgeRule): the judge never reads the lanes\' config');
  }
  const laneConfig = (id: string, direction: LaneDirection): LaneConfig =>
    parseLaneConfig({ lane: { id, station: stationId, direction, flaps: o.flaps ?? 'normally-closed' }, ...(o.lanePolicy !== undefined ? { policy: o.lanePolicy } : {}) });
  const passback = new MemoryPassback(laneConfig('X', 'bidirectional').policy.antiPassbackSeconds * 1000);
  if (simBroker) quietChecks.push(simBroker.quiet);

  // Real-time work the wirings started (decodes, pty round trips): the virtual clock waits for it.
  const inflight = new Set<Promise<unknown>>();
  const hold = (work: Promise<unknown>): void => {
    const p = work.catch((e) => log.error({ err: e }, 'simulated wiring failed')).finally(() => inflight.delete(p));
    inflight.add(p);
  };
  const idle = async (): Promise<boolean> => {
    if (inflight.size === 0) return false;
    while (inflight.size > 0) await Promise.allSettled([...inflight]);
    return true;
  };

  for (let i = 0; i < o.lanes; i++) {
    let laneRideCodes: RideCodeVerifier | undefined;
    const laneId = `L${String(i + 1).padStart(2, '0')}`;
    const direction = laneDirection(i, o.lanes);
    const config = laneConfig(laneId, direction);
    const ctx: WiringContext = { laneIndex: i, laneId, direction, clock, log, seed: o.seed, hold, realtime: o.realtime };
    const board = new VirtualBarrier(clock, DEFAULT_MECHANICS);
    const b = await barrierWiring(board, ctx);
    closers.push(b.close);
    if (b.quiet) quietChecks.push(() => b.quiet!());
    const sides: Direction[] = direction === 'bidirectional' ? ['entry', 'exit'] : [direction];
    const sources: CredentialSource[] = [];
    const presenters: Partial<Record<Direction, RiderPresenter>> = {};
    for (const side of sides) {
      const reader = await readerWiring(side, ctx);
      const qr = o.qr === o.reader && o.qr === 'simulated' ? reader : await qrWiring(side, ctx);
      laneRideCodes ??= qr.rideCodes;
      closers.push(reader.close);
      sources.push(reader.source);
      if (qr !== reader) {
        closers.push(qr.close);
        sources.push(qr.source);
      }
      presenters[side] = {
        present: (c) => (c.kind === 'qr' ? qr : reader).presenter.present(c),
        cardFault: (r, d) => (r === 'qr-malformed' ? qr : reader).presenter.cardFault(r, d),
      };
    }
    const journal = new MemoryJournal({ keep: journalKeep });
    const lane = await startLane({
      config,
      clock,
      log: log.child(line ? { station: stationId, lane: laneId } : { lane: laneId }),
      barrier: b.link,
      sources,
      lists: backoffice.lists,
      journal: journal as Journal,
      usedCodes: simBroker ? undefined : usedCodes,
      stationLink: simBroker?.links.get(laneId),
      passback,
      rideCodes: backoffice.rideCodes ?? laneRideCodes,
      record: o.record,
    });
    lanes.push(lane);
    boards.push(board);
    journals.push(journal);
    const flow = o.flaps === 'normally-open' ? new NormallyOpenFlow(clock, board, direction, (o.seed * 131 + i) >>> 0, REFERENCE_WALK, o.fraud ?? DEFAULT_FRAUD) : undefined;
    stationLanes.push({ id: laneId, direction, board, entry: presenters.entry, exit: presenters.exit, ...(flow ? { flow } : {}) });
  }

  // One fire-alarm input opens every lane of the station.
  for (const lane of lanes) {
    lane.on('alarm', (e) => {
      if (e.alarm.alarm === 'fire-alarm') for (const other of lanes) if (other !== lane && !other.view().fireAlarm) other.send({ type: 'FIRE_ALARM', active: true });
    });
  }

  const baseSettle = quietChecks.length === 0 ? undefined : () => settleWires(quietChecks);
  // Real-time work held by wirings (camera decodes) also has to finish before virtual time moves on.
  const settle = async (): Promise<void> => {
    if (baseSettle) await baseSettle();
    else await new Promise<void>((r) => setImmediate(r));
    if (await idle()) {
      if (baseSettle) await baseSettle();
      else await new Promise<void>((r) => setImmediate(r));
    }
  };
  // The judge's rule is the simulator's own statement (or the scenario's), never the lanes' parsed config.
  const station = new Station({
    clock,
    rng,
    lanes: stationLanes,
    riders,
    policy: o.judgeRule,
    register: (r) => backoffice.register(new Map([[credentialKey(r.credential), 'green']])),
    arrivalsPerLanePerMin: o.rate,
    realtime: o.realtime,
    untilStopped: o.untilStopped,
    onResult: o.onResult,
    settle,
  });
  const sim: SimulatedStation = {
    lanes,
    boards,
    clock,
    station,
    journals,
    present: (i, side, c) => {
      const sl = stationLanes[i];
      (side === 'entry' ? sl.entry : sl.exit)?.present(c);
    },
    fireAlarm: (active) => boards[0].setFireAlarm(active),
    register: (c, registration) => (registration === 'unregistered' ? Promise.resolve() : backoffice.register(new Map([[credentialKey(c), registration]]))),
    settle,
  };
  // Let every lane bring its link up before riders arrive.
  clock.advanceBy(1);
  await new Promise<void>((r) => setImmediate(r));
  if (baseSettle) await settleWires(quietChecks, 10_000);
  await idle();
  await o.onReady?.(sim);
  return {
    sim,
    quiet: () => inflight.size === 0 && !station.holding && quietChecks.every((q) => q()),
    close: async () => {
      await Promise.allSettled(lanes.map((l) => l.stop()));
      await Promise.allSettled(closers.map((c) => c()));
    },
  };
}


/**
 * Wait (in real time) until every wire with real I/O is quiet, at most `capMs`: a lost byte must not
 * stall the simulation, it only lets virtual time move on (and the link's own timers handle it).
 */
async function settleWires(quiet: (() => boolean)[], capMs = 1000): Promise<void> {
  const until = performance.now() + capMs;
  do await new Promise<void>((r) => setImmediate(r));
  while (!quiet.every((q) => q()) && performance.now() < until);
}

/**
 * What the station dashboard may make happen in a simulated station: taps of chosen credentials (registered
 * as the chosen story first), walking through, tailgating, the fire alarm, barrier faults, obstructions.
 */
export function simulatorControls(sim: SimulatedStation, seed = 1): DashboardSim {
  const rng = new Random(seed ^ 0x5eed);
  // Above any rider serial (riders are numbered 1..passengers ≤ 10 M), so manual credentials are new ones.
  let serial = 90_000_000;
  const walkAfterMs = 1500;
  return {
    async tap(req) {
      const lane = sim.lanes[req.laneIndex];
      let c = req.credential ?? makeCredential(rng, req.kind, DEFAULT_MIX, serial++);
      if (c.kind === 'qr' && req.issuer && !req.credential) c = { ...c, issuer: req.issuer };
      if (req.story !== 'as-listed') await sim.register(c, req.story);
      const ref = credentialRef(c);
      if (req.walk) {
        // Walk through once this credential is admitted here; give up after a while (no decision, lane moved on).
        let timer: number | undefined;
        const onDecision = (e: { decision: { ref: string; grant: boolean; direction: Direction } }) => {
          if (e.decision.ref !== ref) return;
          lane.events.off('decision', onDecision);
          if (timer !== undefined) sim.clock.clearTimeout(timer);
          if (e.decision.grant) sim.clock.setTimeout(() => sim.boards[req.laneIndex].walkThrough(e.decision.direction, { tailgater: req.tailgater }), walkAfterMs);
        };
        lane.events.on('decision', onDecision);
        timer = sim.clock.setTimeout(() => lane.events.off('decision', onDecision), 30_000);
      }
      sim.present(req.laneIndex, req.side, c);
      return { ref };
    },
    fireAlarm(active) {
      sim.fireAlarm(active);
      // The input is wired to one board; the lanes it fanned out to hear the all-clear from the station too.
      if (!active) for (const l of sim.lanes) if (l.view().fireAlarm) l.send({ type: 'FIRE_ALARM', active: false });
    },
    barrierFault(i, code) {
      sim.boards[i].setFault(code);
    },
    obstruct(i, active) {
      sim.boards[i].obstructed = active;
    },
  };
}
