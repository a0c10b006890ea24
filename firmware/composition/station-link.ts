// The lane config's `station` section → the lane's link to its station broker (firmware/station/). The
// link's used-code store goes to the decision core; once the lane runs, the link is attached to it. MQTT.js
// is loaded only when a config has the section.
import type { Clock } from '../../drivers/seams.js';
import type { LaneConfig } from '../config/config.js';
import type { Logger } from '../config/log.js';
import type { FareModeSink, LaneStationLink, ReloadHook } from '../station/lane-link.js';

export type { FareModeSink, ReloadHook } from '../station/lane-link.js';

/** What startLane takes beside LaneOptions for the station bus. */
export interface StationLaneOptions {
  /** A link built already (the simulator builds its lanes' links itself). */
  stationLink?: LaneStationLink;
  /** What a signed `reload` command does on this runtime. */
  onReload?: ReloadHook;
  /** The lane's fare gate for signed `fare-mode` commands (`fareModeSink(...gates)`, firmware/fares/); startLane connects its fare gates itself. */
  fareModes?: FareModeSink;
}

/** Build and start the link when the config has a `station` section (connecting in the background). */
export async function stationLinkFromConfig(config: LaneConfig, clock: Clock, log: Logger, o: StationLaneOptions = {}): Promise<LaneStationLink | undefined> {
  if (o.stationLink) return o.stationLink;
  if ((config as Record<string, unknown>).station === undefined) return undefined;
  const [{ stationSettings }, { LaneStationLink }] = await Promise.all([import('../station/config.js'), import('../station/lane-link.js')]);
  const settings = stationSettings(config)!;
  const link = new LaneStationLink({ settings, clock, log: log.child({ part: 'station' }), onReload: o.onReload, fareModes: o.fareModes });
  link.start();
  return link;
}
