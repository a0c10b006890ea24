// The lane config's `station` section → the lane's link to its station broker (firmware/station/). The
// link's used-code store goes to the decision core; once the lane runs, the link is attached to it.
import type { Clock } from '../../drivers/seams.js';
import type { LaneConfig } from '../config/config.js';
import type { Logger } from '../config/log.js';
import { stationSettings } from '../station/config.js';
import { LaneStationLink, type ReloadHook } from '../station/lane-link.js';

export type { ReloadHook } from '../station/lane-link.js';

/** What startLane takes beside LaneOptions for the station bus. */
export interface StationLaneOptions {
  /** A link built already (the simulator builds its lanes' links itself). */
  stationLink?: LaneStationLink;
  /** What a signed `reload` command does on this runtime. */
  onReload?: ReloadHook;
}

/** Build and start the link when the config has a `station` section (connecting in the background). */
export function stationLinkFromConfig(config: LaneConfig, clock: Clock, log: Logger, o: StationLaneOptions = {}): LaneStationLink | undefined {
  if (o.stationLink) return o.stationLink;
  const settings = stationSettings(config);
  if (!settings) return undefined;
  const link = new LaneStationLink({ settings, clock, log: log.child({ part: 'station' }), onReload: o.onReload });
  link.start();
  return link;
}
