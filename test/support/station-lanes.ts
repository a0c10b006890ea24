// Real lanes (startLane, simulated barrier and source) on a real station broker: config files with a
// `station` and a `qr` section written to a temp dir, the way `gate run` would read them.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vi } from 'vitest';
import { SimulatedSource } from '../../drivers/simulated.js';
import { systemClock } from '../../drivers/seams.js';
import { parseLaneConfig, type LaneConfig } from '../../firmware/config/config.js';
import { silentLogger } from '../../firmware/config/log.js';
import { startLane, type Lane } from '../../firmware/composition/start-lane.js';
import { stationLinkFromConfig } from '../../firmware/composition/station-link.js';
import type { LaneStationLink } from '../../firmware/station/lane-link.js';
import { rawPublicKeyB64, type CommandAction } from '../../protocol/station-bus.js';
import { IssuerApps } from '../../simulator/virtual-phone.js';
import type { TestStation } from './mosquitto.js';

export interface StationLane {
  id: string;
  lane: Lane;
  link: LaneStationLink;
  source: SimulatedSource;
  config: LaneConfig;
  /** Show QR text and wait for the decision and for the lane to be ready again. */
  show(text: string): Promise<{ grant: boolean; reason: string }>;
}

/** What a test may change in a lane's config: the supervisors' actions, the station section, the lists and the policy. */
export interface LaneOverrides {
  may?: CommandAction[];
  station?: Record<string, unknown>;
  lists?: Record<string, unknown>;
  policy?: Record<string, unknown>;
}

export interface LaneFiles {
  dir: string;
  apps: IssuerApps;
  /** A lane config object (JSON-able) for lane `id`. */
  config(id: string, o?: LaneOverrides): Record<string, unknown>;
  close(): void;
}

export function laneFiles(st: TestStation, accounts: string[]): LaneFiles {
  const dir = mkdtempSync(join(tmpdir(), 'station-lanes-'));
  const apps = new IssuerApps('station-bus', { rngSeed: 1 + Math.floor(Math.random() * 1e9) });
  writeFileSync(join(dir, 'trust.json'), apps.trustListDocument());
  writeFileSync(join(dir, 'ca.pem'), st.ca);
  for (const [u, p] of st.credentials) writeFileSync(join(dir, `${u}.password`), p + '\n', { mode: 0o600 });
  const entries = Object.fromEntries(accounts.map((a) => [`qr:alipay:${a}`, 'green']));
  return {
    dir,
    apps,
    config: (id, o = {}) => ({
      lane: { id, station: st.station, direction: 'entry' },
      timeouts: { passageMs: 150, deniedDisplayMs: 50 },
      policy: { antiPassbackSeconds: 0, ...o.policy },
      lists: o.lists ?? { type: 'memory', entries },
      log: { level: 'silent' },
      qr: { trustList: join(dir, 'trust.json'), backOfficeKeys: apps.backOfficeKeyConfig() },
      station: {
        broker: st.broker.url,
        ca: join(dir, 'ca.pem'),
        passwordFile: join(dir, `lane.${st.station}.${id}.password`),
        keepaliveSeconds: 2,
        reconnectMs: 200,
        supervisors: { [st.supervisor.id]: { publicKey: rawPublicKeyB64(st.supervisor.publicKey), may: o.may ?? ['set-mode', 'reset-emergency', 'station-emergency', 'reload', 'fare-mode'] } },
        ...o.station,
      },
    }),
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export async function startStationLane(files: LaneFiles, id: string, o: LaneOverrides = {}): Promise<StationLane> {
  const config = parseLaneConfig(files.config(id, o));
  const link = (await stationLinkFromConfig(config, systemClock, silentLogger))!;
  const source = new SimulatedSource(`qr-${id}`, 'entry', systemClock);
  const lane = await startLane({ config, sources: [source], stationLink: link });
  const decisions: { grant: boolean; reason: string }[] = [];
  lane.on('decision', (e) => decisions.push({ grant: e.decision.grant, reason: e.decision.reason }));
  await vi.waitFor(() => {
    if (lane.view().mode !== 'normal') throw new Error(`lane ${id} is ${lane.view().mode}`);
  }, { timeout: 5000 });
  return {
    id,
    lane,
    link,
    source,
    config,
    async show(text) {
      const n = decisions.length;
      await vi.waitFor(() => {
        if (lane.view().state !== 'normal.ready') throw new Error(`lane ${id} in ${lane.view().state}`);
      }, { timeout: 10_000, interval: 20 });
      source.showQrText(text);
      await vi.waitFor(() => {
        if (decisions.length <= n) throw new Error('no decision yet');
      }, { timeout: 5000, interval: 10 });
      return decisions[n];
    },
  };
}
