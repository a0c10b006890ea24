// What a driver factory gets and returns: shared by the registry and the storage drivers it loads lazily.
import type { BarrierLink, Clock, CredentialSource } from '../../drivers/seams.js';
import type { LaneConfig } from '../config/config.js';
import type { Logger } from '../config/log.js';
import type { Journal } from '../journal/journal.js';
import type { ListProvider } from '../lists/list-provider.js';

export interface DriverContext {
  laneId: string;
  clock: Clock;
  log: Logger;
  config: LaneConfig;
  /** Where this lane's own sections sit in the config file, e.g. `lanes[2].` in a gate array; absent for a one-lane config. */
  field?: string;
}

export type DriverSection = { type: string; [k: string]: unknown };
export type SourceSection = DriverSection & { side: 'entry' | 'exit' };

export type SourceFactory = (cfg: SourceSection, ctx: DriverContext, index: number) => Promise<CredentialSource>;
export type BarrierFactory = (cfg: DriverSection, ctx: DriverContext) => Promise<BarrierLink>;
export type ListFactory = (cfg: DriverSection, ctx: DriverContext) => Promise<ListProvider>;
export type JournalFactory = (cfg: DriverSection, ctx: DriverContext) => Promise<Journal>;
