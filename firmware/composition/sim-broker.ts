// `gate sim --broker mqtt`: the simulated station's lanes share used QR code ids, alarms and telemetry
// through a real mosquitto on loopback (TLS, per-lane passwords and the ACL `gate broker-config` writes),
// each lane with its own station link, as on a real station. 'none' (default): one in-process store.
import { readFileSync } from 'node:fs';
import type { Clock } from '../../drivers/seams.js';
import type { Logger } from '../config/log.js';
import { ConfigError } from '../config/config.js';
import { brokerConfig } from '../station/broker-config.js';
import { laneUsername } from '../station/config.js';
import { LaneStationLink } from '../station/lane-link.js';

export interface SimBroker {
  /** One link per lane id, started and connected. */
  links: Map<string, LaneStationLink>;
  url: string;
  pid?: number;
  /** True once every used code a lane published has reached every other lane. */
  quiet(): boolean;
  close(): Promise<void>;
}

export const brokerWirings = ['none', 'mqtt'] as const;

export async function startSimBroker(o: { station: string; lanes: string[]; clock: Clock; log: Logger }): Promise<SimBroker> {
  const { startBroker } = await import('../../simulator/mosquitto.js');
  const cfg = brokerConfig([{ station: o.station, lanes: o.lanes }], { iterations: 101 });
  // No mosquitto on this box is a setup problem the user can fix: say so as a config error, not a crash.
  const broker = await startBroker({ passwords: cfg.passwd, acl: cfg.acl }).catch((e: Error) => {
    throw new ConfigError(`--broker mqtt: ${e.message}`);
  });
  const ca = readFileSync(broker.caFile, 'utf8');
  const links = new Map<string, LaneStationLink>();
  for (const lane of o.lanes) {
    const u = laneUsername(o.station, lane);
    const link = new LaneStationLink({
      settings: {
        station: o.station,
        lane,
        url: broker.url,
        ca,
        username: u,
        password: cfg.credentials.get(u)!,
        keepaliveSeconds: 10,
        sessionExpirySeconds: 600,
        reconnectMs: 500,
        perLaneCap: 4096,
        maxLanes: 64,
        stateEveryMs: 60_000,
        statsEveryMs: 60_000,
        supervisors: new Map(),
        maxTtlMs: 120_000,
        rememberMax: 10_000,
        clampMs: 660_000,
      },
      clock: o.clock,
      log: o.log.child({ lane, part: 'station' }),
    });
    link.start();
    links.set(lane, link);
  }
  for (const [lane, l] of links) if (!(await l.bus.waitConnected(10_000))) throw new Error(`lane ${lane} could not reach the simulated broker: ${l.bus.lastError ?? 'timeout'}\n${broker.log}`);
  const all = [...links.values()];
  return {
    links,
    url: broker.url,
    pid: broker.pid,
    quiet: () => {
      let marked = 0;
      let received = 0;
      for (const l of all) {
        marked += l.usedCodes.counters.marked;
        received += l.usedCodes.counters.received;
      }
      return received >= marked * (all.length - 1);
    },
    close: async () => {
      await Promise.allSettled(all.map((l) => l.stop()));
      await broker.stop();
    },
  };
}
