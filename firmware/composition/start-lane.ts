// Config → drivers (by name, through the registry) → decision core → a running lane. The composition
// root of one lane; the lane room wires the built parts (assembleLane).
import { systemClock } from '../../drivers/seams.js';
import { silentLogger } from '../config/log.js';
import { assembleLane, type Lane, type LaneOptions } from '../lane/lane.js';
import { DecisionCore } from '../verify/decision-core.js';
import { barrierDrivers, journalDrivers, listDrivers, pickDriver, sourceDrivers, type DriverContext } from './registry.js';

export type { Lane, LaneOptions } from '../lane/lane.js';

/** Build a lane from config (drivers by name) and overrides, and start it. */
export async function startLane(opts: LaneOptions): Promise<Lane> {
  const { config } = opts;
  const clock = opts.clock ?? systemClock;
  const log = opts.log ?? silentLogger;
  const ctx: DriverContext = { laneId: config.lane.id, clock, log, config };

  // Resolve every driver name first, so a bad config fails before anything is opened.
  const barrierFactory = opts.barrier ? undefined : pickDriver(barrierDrivers, 'barrier', config.drivers.barrier.type);
  const sourceFactories = opts.sources ? [] : config.drivers.sources.map((s) => pickDriver(sourceDrivers, 'credential source', s.type));
  const listFactory = opts.lists ? undefined : pickDriver(listDrivers, 'lists', config.lists.type);
  const journalFactory = opts.journal ? undefined : pickDriver(journalDrivers, 'journal', config.journal.type);

  const lists = opts.lists ?? (await listFactory!(config.lists, ctx));
  const journal = opts.journal ?? (await journalFactory!(config.journal, ctx));
  const barrier = opts.barrier ?? (await barrierFactory!(config.drivers.barrier, ctx));
  const sources = opts.sources ?? (await Promise.all(config.drivers.sources.map((s, i) => sourceFactories[i](s, ctx, i))));

  // The `qr` config section: trust list file, back office keys, skew, station peers sharing used code ids.
  const qrSection = (config as Record<string, unknown>).qr;
  const qr = qrSection !== undefined && !opts.rideCodes ? await (await import('../verify/ride-codes.js')).qrFromConfig(qrSection, config.lane.id, clock) : undefined;
  // The enforcement schedule, from policy.scheduleFile, verified with the lists' signing keys.
  const stages = config.policy.scheduleFile === undefined ? undefined : await scheduleFromConfig(config.policy.scheduleFile, config.lists, log);
  const core = new DecisionCore(config.lane.direction, config.policy, {
    lists,
    usedCodes: opts.usedCodes ?? qr?.usedCodes,
    passback: opts.passback,
    rideCodes: opts.rideCodes ?? qr?.rideCodes,
    stages,
  });
  return assembleLane({ config, clock, log, lists, journal, barrier, sources, core, qr, ownsLists: !opts.lists, inspect: opts.inspect });
}

async function scheduleFromConfig(file: string, lists: Record<string, unknown>, log: NonNullable<LaneOptions['log']>) {
  const { policyStagesFromFile } = await import('../verify/policy-schedule.js');
  const { alarmText } = await import('../../protocol/alarms.js');
  const { trustedListKey } = await import('../../protocol/lists/index.js');
  const keys = Array.isArray(lists.publicKeys) ? lists.publicKeys.filter((k): k is string => typeof k === 'string').map(trustedListKey) : [];
  return policyStagesFromFile(file, keys, (a) => log.error({ alarm: a.alarm, detail: alarmText(a) }, 'enforcement schedule refused: every kind enforced'));
}
