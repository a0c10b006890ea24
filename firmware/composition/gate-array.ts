// A gate array: several lanes on one box, in one process, from one config (firmware/config/array-config.ts).
// The box's parts are built once and shared: the list store (a 50 M-entry list is held once, not per lane)
// and its sync, the anti-passback record and, without a station bus, the used QR codes (a code used at
// lane 1 is refused at lane 2). Each lane has its own barrier link, sources and journal: one directory,
// a journal per lane in `<journal.dir>/<lane id>/`, so each lane's seq is its own and the back office's
// (lane, seq) key stays exact. One lane's barrier failing, at start or later, takes that lane out of
// service alone. Lanes with a `fares` section each have their own PSAM and fare gate; the fare table is the
// box's, held once and fed by the one list sync.

import type { RecordOverrides } from '../recording/recorder.js';
import { join } from 'node:path';
import type { InspectionEvent } from 'xstate';
import type { BarrierEvent } from '../../protocol/barrier.js';
import { GateError, isGateError, GateErrorCode } from '../../protocol/errors.js';
import type { BarrierLink, CredentialSource, SourceEvent } from '../../drivers/seams.js';
import { systemClock, type Clock } from '../../drivers/seams.js';
import { laneConfigOf, type ArrayConfig } from '../config/array-config.js';
import { ConfigError, type LaneConfig } from '../config/config.js';
import { silentLogger, type Logger } from '../config/log.js';
import type { ListProvider } from '../lists/list-provider.js';
import type { Psam } from '../fares/fare-gate.js';
import type { FareTableHolder } from '../fares/fare-table-file.js';
import { fareTableFromConfig, openPsam } from './fare-lane.js';
import { MemoryPassback, MemoryUsedCodes } from '../verify/decision-core.js';
import { barrierDrivers, listDrivers, pickDriver, sourceDrivers, type DriverContext } from './registry.js';
import type { BarrierFactory, SourceFactory } from './driver-context.js';
import { startLane, type Lane, type StartStep } from './start-lane.js';
import type { ReloadHook } from './station-link.js';

export interface StartArrayOptions {
  config: ArrayConfig;
  clock?: Clock;
  log?: Logger;
  /** Told before each step that opens something; a lane's steps carry its place in the file (`lanes[2].drivers.barrier`). */
  onStep?: (step: StartStep) => void;
  /** An XState inspector per lane (gate run: driver events into that lane's metrics). */
  inspect?: (laneId: string) => ((e: InspectionEvent) => void) | undefined;
  /** What a signed `reload` command does on this runtime (every lane's station link). */
  onReload?: ReloadHook;
  /** The shared lists, built already (tests); otherwise the config's `lists` driver builds them once. */
  lists?: ListProvider;
  /** Record every lane (`gate run --record`): each into `<dir>/<lane id>/`, over the config's `record` section. */
  record?: RecordOverrides;
  /** A lane's credential sources, built already (tests: an in-process card reader where pcscd has no slot left); otherwise from its config. */
  sources?: (laneId: string) => CredentialSource[] | undefined;
  /** A lane's PSAM, opened already (tests: an in-process PSAM); otherwise its `fares.psam` slot. */
  psam?: (laneId: string) => Psam | undefined;
}

export interface GateArray {
  readonly config: ArrayConfig;
  /** In the config's order. */
  readonly lanes: readonly Lane[];
  /** The one list store every lane decides on. */
  readonly lists: ListProvider;
  /** The one fare table every fare lane prices by (absent: no lane has a `fares` section). */
  readonly fareTable?: FareTableHolder;
  lane(id: string): Lane | undefined;
  /** Stop every lane (bounded by each lane's own stop), then the shared list sync. Idempotent. */
  stop(): Promise<void>;
}

/** Lane i's config as the lane sees it: the box's journal directory narrowed to the lane's own subdirectory. */
export function arrayLaneConfig(array: ArrayConfig, i: number): LaneConfig {
  const c = laneConfigOf(array, i);
  const dir = c.journal.dir;
  return typeof dir === 'string' ? { ...c, journal: { ...c.journal, dir: join(dir, c.lane.id) } } : c;
}

/**
 * Start every lane of the array. Driver names and sections are checked for every lane before the list is
 * loaded (a typo in lanes[15] fails in a second, not after a minute of loading 50 M entries); a config error
 * fails the whole start naming `lanes[i]`. When a step fails, everything opened so far is closed before the
 * error is rethrown: a failed start-up leaves nothing running.
 */
export async function startGateArray(opts: StartArrayOptions): Promise<GateArray> {
  const { config } = opts;
  const clock = opts.clock ?? systemClock;
  const log = opts.log ?? silentLogger;
  const step = (field: string, what: string) => opts.onStep?.({ field, what });
  const laneConfigs = config.lanes.map((_, i) => arrayLaneConfig(config, i));
  const ctxs: DriverContext[] = laneConfigs.map((c, i) => ({ laneId: c.lane.id, clock, log: log.child({ lane: c.lane.id }), config: c, field: `lanes[${i}].` }));

  // Every name first: nothing has been opened yet.
  const barrierFactories = laneConfigs.map((c, i) => named(`lanes[${i}].drivers.barrier.type`, () => pickDriver(barrierDrivers, 'barrier', c.drivers.barrier.type)));
  const sourceFactories = laneConfigs.map((c, i) => c.drivers.sources.map((s, k) => named(`lanes[${i}].drivers.sources[${k}].type`, () => pickDriver(sourceDrivers, 'credential source', s.type))));
  const listFactory = opts.lists ? undefined : named('lists.type', () => pickDriver(listDrivers, 'lists', config.lists.type));

  const built: { barrier: BarrierLink; sources: CredentialSource[] }[] = [];
  const lanes: Lane[] = [];
  let lists: ListProvider | undefined;
  let fares: { table: FareTableHolder; stop(): void } | undefined;
  // The PSAMs this box opened for its fare lanes (one per lane): released when the box stops.
  const ownPsams: { stop(): Promise<void> }[] = [];
  try {
    // Each lane's barrier link and sources: built (their sections checked) but not started — the lane starts them.
    for (let i = 0; i < laneConfigs.length; i++) {
      const c = laneConfigs[i];
      step(`lanes[${i}].drivers`, `lane ${c.lane.id}'s barrier link and credential sources`);
      const barrier = await buildBarrier(barrierFactories[i], c, ctxs[i]);
      const given = opts.sources?.(c.lane.id);
      const sources: CredentialSource[] = given ?? [];
      built.push({ barrier, sources });
      if (!given) for (let k = 0; k < c.drivers.sources.length; k++) sources.push(await buildSource(sourceFactories[i][k], c, k, ctxs[i]));
    }

    step('lists', `${config.lists.type} lists (once, for ${laneConfigs.length} lanes)`);
    // The sync keeps the fare table when a lane sells fares: it reads that lane's `fares` (one tablePath for all, array-config.ts).
    const fareAt = laneConfigs.findIndex((c) => c.fares !== undefined);
    lists = opts.lists ?? (await listFactory!(config.lists, { ...ctxs[Math.max(fareAt, 0)], laneId: 'array', log, field: undefined }));
    if (fareAt >= 0) {
      step(`lanes[${fareAt}].fares`, 'the fare table (once, for every fare lane)');
      fares = await fareTableFromConfig(laneConfigs[fareAt], lists, log, `lanes[${fareAt}].`);
    }

    // Station-wide records, one per box: a rider who entered at lane 1 is refused a second entry at lane 2.
    const passback = new MemoryPassback(config.policy.antiPassbackSeconds * 1000);
    // With a `station` section the broker carries used codes among every lane of the station (this box's too).
    const usedCodes = (config as Record<string, unknown>).station === undefined ? new MemoryUsedCodes() : undefined;

    for (let i = 0; i < laneConfigs.length; i++) {
      let c = laneConfigs[i];
      const at = `lanes[${i}]`;
      let psam = opts.psam?.(c.lane.id);
      if (c.fares && !psam) {
        step(`${at}.fares.psam`, `lane ${c.lane.id}: its PSAM`);
        const opened = await lanePsam(c, built[i].sources, at, ctxs[i].log);
        if (opened) ownPsams.push((psam = opened));
        else c = { ...c, fares: undefined };
      }
      try {
        const lane = await startLane({
          config: c,
          clock,
          log: ctxs[i].log,
          lists,
          barrier: built[i].barrier,
          sources: built[i].sources,
          passback,
          usedCodes,
          inspect: opts.inspect?.(c.lane.id),
          onReload: opts.onReload,
          record: opts.record,
          fareParts: fares && { table: fares.table, psam },
          field: `${at}.`,
          onStep: (s) => step(`${at}.${s.field}`, `lane ${c.lane.id}: ${s.what}`),
        });
        lanes.push(lane);
      } catch (e) {
        throw inLane(e, at, c.lane.id);
      }
    }
  } catch (e) {
    // The lanes started stop their own drivers and journals; the links and sources not yet handed to a lane are stopped here.
    await Promise.allSettled([...lanes.map((l) => l.stop()), ...built.slice(lanes.length).flatMap((b) => [b.barrier.stop(), ...b.sources.map((s) => s.stop())])]);
    fares?.stop();
    await Promise.allSettled(ownPsams.map((p) => p.stop()));
    if (!opts.lists) await lists?.stop?.();
    throw e;
  }

  const shared = lists;
  let stopping: Promise<void> | undefined;
  return {
    config,
    lanes,
    lists: shared,
    fareTable: fares?.table,
    lane: (id) => lanes.find((l) => l.id === id),
    stop() {
      stopping ??= (async () => {
        await Promise.allSettled(lanes.map((l) => l.stop()));
        fares?.stop();
        await Promise.allSettled(ownPsams.map((p) => p.stop()));
        if (!opts.lists) await shared.stop?.();
      })();
      return stopping;
    },
  };
}

/** Run `f`; a ConfigError it throws is said again with the field it is about. */
function named<T>(field: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (isGateError(e, GateErrorCode.Config)) throw new ConfigError(`${field}: ${e.message}`);
    throw e;
  }
}

/** A lane's failure at start-up, naming the lane (unless it names its field there already): the whole box stops. */
function inLane(e: unknown, at: string, id: string): unknown {
  const head = e instanceof Error && e.message.startsWith(`${at}.`) ? '' : `${at} (lane ${id}): `;
  if (e instanceof ConfigError) return new ConfigError(`${head}${e.message}`, e.issues);
  if (e instanceof GateError) return new GateError(`${head}${e.message}`, e.code, { ...e.context, lane: id });
  if (e instanceof Error) return new Error(`${head}${e.message}`, { cause: e });
  return e;
}

/**
 * A fare lane's PSAM. A section the driver refuses is a config error (the whole start fails, naming it); a
 * PSAM that does not answer (missing, pcscd down) takes this lane out of service alone, as a missing barrier
 * does: its card readers are put aside for stand-ins that report the fault (SOURCE_FAULT), the lane runs
 * without fares, and the other lanes serve. Undefined then.
 */
async function lanePsam(c: LaneConfig, sources: CredentialSource[], at: string, log: Logger): Promise<(Psam & { stop(): Promise<void> }) | undefined> {
  try {
    return await openPsam(c.fares!.psam, `${at}.`);
  } catch (e) {
    if (isGateError(e, GateErrorCode.Config)) throw e;
    const detail = (e as Error).message;
    log.error({ lane: c.lane.id, event: 'psam-unavailable', err: detail }, `lane ${c.lane.id} out of service: ${detail}`);
    for (let k = 0; k < sources.length; k++) {
      const s = sources[k] as CredentialSource & { setTransaction?: unknown };
      if (typeof s.setTransaction !== 'function') continue;
      await s.stop();
      sources[k] = new UnavailableSource(s.name, `card reader unused: no PSAM for its fares (${detail})`);
    }
    return undefined;
  }
}

/**
 * The lane's barrier link. A section the driver refuses is a config error (the whole start fails, naming
 * it); any other failure to build the link leaves this lane out of service behind a link that reports itself
 * down, while the other lanes serve.
 */
async function buildBarrier(factory: BarrierFactory, c: LaneConfig, ctx: DriverContext): Promise<BarrierLink> {
  try {
    return await factory(c.drivers.barrier, ctx);
  } catch (e) {
    if (isGateError(e, GateErrorCode.Config)) throw e;
    const detail = `${ctx.field}drivers.barrier (${c.drivers.barrier.type}) could not be built: ${(e as Error).message}`;
    ctx.log.error({ lane: c.lane.id, event: 'barrier-unavailable', err: (e as Error).message }, `lane ${c.lane.id} out of service: ${detail}`);
    return new UnavailableBarrier(detail);
  }
}

async function buildSource(factory: SourceFactory, c: LaneConfig, k: number, ctx: DriverContext): Promise<CredentialSource> {
  const section = c.drivers.sources[k];
  try {
    return await factory(section, ctx, k);
  } catch (e) {
    if (isGateError(e, GateErrorCode.Config)) throw e;
    const detail = `${ctx.field}drivers.sources[${k}] (${section.type}) could not be built: ${(e as Error).message}`;
    ctx.log.error({ lane: c.lane.id, event: 'source-unavailable', err: (e as Error).message }, `lane ${c.lane.id} out of service: ${detail}`);
    return new UnavailableSource(`${section.type}-${section.side}-${k}`, detail);
  }
}

/** Stands in for a barrier link that could not be built: reports the link down, forever; commands go nowhere. */
export class UnavailableBarrier implements BarrierLink {
  constructor(readonly detail: string) {}
  async start(emit: (e: BarrierEvent) => void): Promise<void> {
    emit({ type: 'LINK', up: false, detail: this.detail });
  }
  send(): void {}
  async stop(): Promise<void> {}
}

/** Stands in for a credential source that could not be built: reports the source failed. */
export class UnavailableSource implements CredentialSource {
  constructor(
    readonly name: string,
    readonly detail: string,
  ) {}
  async start(emit: (e: SourceEvent) => void): Promise<void> {
    emit({ type: 'SOURCE_FAULT', source: this.name, detail: this.detail });
  }
  async stop(): Promise<void> {}
}
