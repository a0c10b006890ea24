// Config → drivers (by name, through the registry) → decision core → a running lane. The composition
// root of one lane; the lane room wires the built parts (assembleLane).
import type { BarrierLink, CredentialSource } from '../../drivers/seams.js';
import { systemClock } from '../../drivers/seams.js';
import { silentLogger } from '../config/log.js';
import type { Journal } from '../journal/journal.js';
import type { ListProvider } from '../lists/list-provider.js';
import { assembleLane, type Lane, type LaneOptions } from '../lane/lane.js';
import { DecisionCore } from '../verify/decision-core.js';
import { barrierDrivers, journalDrivers, listDrivers, pickDriver, sourceDrivers, type DriverContext } from './registry.js';
import { stationLinkFromConfig, type StationLaneOptions } from './station-link.js';
import { recorderFor, type LaneRecorder, type RecordOverrides } from '../recording/recorder.js';
import { faresFromConfig, type FareLane, type FareParts } from './fare-lane.js';

export type { Lane, LaneOptions } from '../lane/lane.js';

/** One start-up step: the config section it reads and what it opens ("lists", "file list snapshot"). */
export interface StartStep {
  field: string;
  what: string;
}

export interface StartLaneOptions extends LaneOptions, StationLaneOptions {
  /** Told before each step that opens something, so a failure or a slow step can be named (gate run). */
  onStep?: (step: StartStep) => void;
  /** Record the lane (`gate run --record`, `gate sim --record`): over the config's `record` section. */
  record?: RecordOverrides;
  /** Fare parts held by someone else: a gate array's one fare table for the box (never stopped by this lane). */
  fareParts?: FareParts;
  /** Where the lane's sections sit in the config file (`lanes[2].` in a gate array), for errors that name them. */
  field?: string;
}

/**
 * Build a lane from config (drivers by name) and overrides, and start it. When a step fails, what the
 * earlier steps opened (list sync, journal, barrier link, sources) is closed before the error is rethrown:
 * a failed start-up leaves nothing running.
 */
export async function startLane(opts: StartLaneOptions): Promise<Lane> {
  const { config } = opts;
  const clock = opts.clock ?? systemClock;
  const log = opts.log ?? silentLogger;
  const ctx: DriverContext = { laneId: config.lane.id, clock, log, config };
  const step = (field: string, what: string) => opts.onStep?.({ field, what });

  // Resolve every driver name first, so a bad config fails before anything is opened.
  const barrierFactory = opts.barrier ? undefined : pickDriver(barrierDrivers, 'barrier', config.drivers.barrier.type);
  const sourceFactories = opts.sources ? [] : config.drivers.sources.map((s) => pickDriver(sourceDrivers, 'credential source', s.type));
  const listFactory = opts.lists ? undefined : pickDriver(listDrivers, 'lists', config.lists.type);
  const journalFactory = opts.journal ? undefined : pickDriver(journalDrivers, 'journal', config.journal.type);

  // What this call opened (not the overrides it was given), to close again if a later step fails.
  const opened: { lists?: ListProvider; journal?: Journal; barrier?: BarrierLink; sources: CredentialSource[]; recorder?: LaneRecorder; fares?: FareLane } = { sources: [] };
  try {
    step('lists', `${config.lists.type} lists`);
    const lists = opts.lists ?? (opened.lists = await listFactory!(config.lists, ctx));
    step('journal', `${config.journal.type} journal`);
    const journal = opts.journal ?? (opened.journal = await journalFactory!(config.journal, ctx));
    step('drivers.barrier', `${config.drivers.barrier.type} barrier link`);
    const barrier = opts.barrier ?? (opened.barrier = await barrierFactory!(config.drivers.barrier, ctx));
    step('drivers.sources', `credential sources (${config.drivers.sources.map((s) => s.type).join(', ') || 'none'})`);
    const sources = opts.sources ?? (await openSources(config.drivers.sources.map((s, i) => () => sourceFactories[i](s, ctx, i)), opened.sources));

    // The `qr` config section: trust list file, back office keys, skew.
    const qrSection = (config as Record<string, unknown>).qr;
    if (qrSection !== undefined && !opts.rideCodes) step('qr', 'QR trust list');
    const qr = qrSection !== undefined && !opts.rideCodes ? await (await import('../verify/ride-codes.js')).qrFromConfig(qrSection, config.lane.id, clock) : undefined;
    // The `station` section: the station broker carries used code ids among the lanes (firmware/station/).
    if ((config as Record<string, unknown>).station !== undefined) step('station', 'the station broker link');
    const station = await stationLinkFromConfig(config, clock, log, opts);
    // The enforcement schedule: policy.scheduleFile at boot, then what list sync brings (newer only), each
    // verified with the lists' signing keys. Neither: every kind enforced.
    const stages = await scheduleFromConfig(config.policy.scheduleFile, config.lists, lists);
    if (opts.record?.dir !== undefined || config.record?.dir !== undefined) step('record', 'the lane recording');
    const recorder = (opened.recorder = await recorderFor({ config, clock, log, lists, sources, stages }, opts.record));
    const deps = { lists, usedCodes: opts.usedCodes ?? station?.usedCodes, passback: opts.passback, rideCodes: opts.rideCodes ?? qr?.rideCodes, stages };
    const core = recorder ? recorder.core(config.lane.direction, config.policy, deps) : new DecisionCore(config.lane.direction, config.policy, deps);
    const inspect = recorder ? recorder.inspectWith(opts.inspect) : opts.inspect;
    // The `fares` section: the PSAM, the fare table and the card readers' transaction (lists checked first).
    if (config.fares !== undefined) step('fares', 'the fare gate (PSAM, fare table)');
    let running: Lane | undefined;
    const fares = (opened.fares = await faresFromConfig({ config, lists, journal, sources, core, clock, log, lane: () => running, parts: opts.fareParts, field: opts.field }));
    // A fare lane's PSAM runs as one more source: the lane is out of service while it is missing.
    const laneSources = fares?.presence ? [...sources, fares.presence] : sources;
    const lane = assembleLane({ config, clock, log, lists, journal, barrier, sources: laneSources, core, qr, stages, ownsLists: !opts.lists, inspect });
    // A camera whose decode worker can check ride-code signatures gets the trust list held now (and every update).
    qr?.rideCodes.shareWith(sources); // lives as long as the lane and its verifier: nothing to undo
    recorder?.attach(lane);
    running = lane;
    if (fares) lane.cleanups.push(fares.stop);
    // Signed `fare-mode` station commands reach this lane's fare gates (a command config provided wins).
    if (fares && station && !opts.fareModes) station.connectFareModes(fares.modes);
    station?.attach(lane);
    return lane;
  } catch (e) {
    await Promise.allSettled([opened.lists?.stop?.(), opened.journal?.close(), opened.barrier?.stop(), ...opened.sources.map((s) => s.stop()), opened.recorder?.close(), opened.fares?.stop()]);
    throw e;
  }
}

/** Open every source; if one fails, the ones that opened are in `opened` (for closing) and the first error is thrown. */
async function openSources(open: (() => Promise<CredentialSource>)[], opened: CredentialSource[]): Promise<CredentialSource[]> {
  const r = await Promise.allSettled(open.map((f) => f()));
  for (const x of r) if (x.status === 'fulfilled') opened.push(x.value);
  const failed = r.find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (failed) throw failed.reason;
  return opened;
}

/** A refused schedule (a bad file at boot, or later) is the lane's alarm: assembleLane listens. */
async function scheduleFromConfig(file: string | undefined, section: Record<string, unknown>, lists: ListProvider) {
  if (file === undefined && !lists.onPolicySchedule) return undefined;
  const { PolicyStages, policyStagesFromFile } = await import('../verify/policy-schedule.js');
  const { trustedListKey } = await import('../../protocol/lists/index.js');
  const keys = Array.isArray(section.publicKeys) ? section.publicKeys.filter((k): k is string => typeof k === 'string').map(trustedListKey) : [];
  return file === undefined ? new PolicyStages(keys) : policyStagesFromFile(file, keys);
}
