// A real mosquitto for the station bus tests (the simulator's launcher: TLS from openssl-made certs in a
// temp dir, the password file and ACL `gate broker-config` makes), and the settings a lane needs for it.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { brokerConfig, viewUsername, type StationPlan } from '../../firmware/station/broker-config.js';
import { laneUsername, type StationSettings } from '../../firmware/station/config.js';
import type { TrustedSupervisor } from '../../firmware/station/commands.js';
import type { CommandAction } from '../../protocol/station-bus.js';
import { startBroker, type TestBroker } from '../../simulator/mosquitto.js';

export * from '../../simulator/mosquitto.js';

export interface TestStation {
  broker: TestBroker;
  station: string;
  lanes: string[];
  credentials: Map<string, string>;
  ca: string;
  /** Settings for one lane (override anything). */
  settings(lane: string, over?: Partial<StationSettings>): StationSettings;
  viewUser: string;
  viewPassword: string;
  supervisor: { id: string; privateKey: KeyObject; publicKey: KeyObject };
  supervisors: Map<string, TrustedSupervisor>;
  stop(): Promise<void>;
}

const ALL: CommandAction[] = ['set-mode', 'reset-emergency', 'station-emergency', 'reload', 'fare-mode'];

/** A broker for one station plan (more stations: `extraPlans`), started and ready. */
export async function startTestStation(station: string, lanes: string[], o: { extraPlans?: StationPlan[]; extraConf?: string[]; supervisorMay?: CommandAction[] } = {}): Promise<TestStation> {
  const cfg = brokerConfig([{ station, lanes, backoffice: true }, ...(o.extraPlans ?? [])]);
  const broker = await startBroker({ passwords: cfg.passwd, acl: cfg.acl, extraConf: o.extraConf, clientCerts: ['lane-cert'] });
  const ca = readFileSync(broker.caFile, 'utf8');
  const kp = generateKeyPairSync('ed25519');
  const supervisor = { id: 'sup-wang', privateKey: kp.privateKey, publicKey: kp.publicKey };
  const supervisors = new Map<string, TrustedSupervisor>([[supervisor.id, { publicKey: kp.publicKey, may: new Set(o.supervisorMay ?? ALL) }]]);
  return {
    broker,
    station,
    lanes,
    credentials: cfg.credentials,
    ca,
    viewUser: viewUsername(station),
    viewPassword: cfg.credentials.get(viewUsername(station))!,
    supervisor,
    supervisors,
    settings: (lane, over = {}) => ({
      station,
      lane,
      url: broker.url,
      ca,
      username: laneUsername(station, lane),
      password: cfg.credentials.get(laneUsername(station, lane)) ?? 'no-such-user',
      keepaliveSeconds: 2,
      sessionExpirySeconds: 600,
      reconnectMs: 200,
      perLaneCap: 4096,
      maxLanes: 64,
      stateEveryMs: 60_000,
      statsEveryMs: 60_000,
      supervisors,
      maxTtlMs: 120_000,
      rememberMax: 10_000,
      clampMs: 660_000,
      ...over,
    }),
    stop: () => broker.stop(),
  };
}
