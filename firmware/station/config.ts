// The lane config's top-level `station` section: which broker, how the lane proves who it is, which
// supervisors it takes commands from, and the bounds on what peers may make it hold. Example:
// { "broker": "mqtts://10.0.0.2:8883", "ca": "/etc/gate/station-ca.pem", "username": "lane.BJ-0101.L01",
//   "passwordFile": "/etc/gate/broker-password",
//   "supervisors": { "sup-wang": { "publicKey": "<base64 raw Ed25519>", "may": ["set-mode", "reset-emergency"] } } }

import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { COMMAND_ACTIONS, NODE_ID, STATION_LEVEL, supervisorPublicKey } from '../../protocol/station-bus.js';
import { ConfigError, parseDriverConfig, type LaneConfig } from '../config/config.js';
import type { BusConnection } from './bus.js';
import type { TrustedSupervisor } from './commands.js';

export const stationConfigSchema = z
  .object({
    /** Defaults to `lane.station`; when given it must say the same. */
    id: z.string().regex(NODE_ID).optional(),
    broker: z.string().regex(/^mqtts?:\/\/[^/\s]+$/, 'mqtts://host:port (mqtt:// only for a bench without TLS)'),
    /** PEM file of the CA that signed the broker's certificate. */
    ca: z.string().min(1).optional(),
    /** Default `lane.<station>.<lane>` (what `gate broker-config` generates). */
    username: z.string().min(1).max(100).optional(),
    /** A file holding the lane's broker password (first line). */
    passwordFile: z.string().min(1),
    /** Client certificate and key (PEM files), when the broker asks for one. */
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    keepaliveSeconds: z.number().int().min(1).max(600).default(10),
    /** How long the broker keeps the lane's session (and queues its QoS 1 messages) while it is away. */
    sessionExpirySeconds: z.number().int().min(0).max(7 * 86_400).default(3600),
    reconnectMs: z.number().int().min(50).max(60_000).default(1000),
    usedCodes: z
      .object({
        perLaneCap: z.number().int().min(16).max(1_000_000).default(4096),
        maxLanes: z.number().int().min(1).max(1024).default(64),
      })
      .strict()
      .default({ perLaneCap: 4096, maxLanes: 64 }),
    telemetry: z
      .object({
        /** The retained state is republished this often (and on every change). */
        stateEverySeconds: z.number().int().min(1).max(3600).default(60),
        statsEverySeconds: z.number().int().min(1).max(3600).default(60),
      })
      .strict()
      .default({ stateEverySeconds: 60, statsEverySeconds: 60 }),
    supervisors: z
      .record(
        z.string().regex(NODE_ID),
        z.object({ publicKey: z.string().regex(/^[A-Za-z0-9+/]{43}=$/, '32-byte Ed25519 public key, base64'), may: z.array(z.enum(COMMAND_ACTIONS)).min(1) }).strict(),
      )
      .default({}),
    commands: z
      .object({ maxTtlSeconds: z.number().int().min(1).max(3600).default(120), rememberMax: z.number().int().min(10).max(1_000_000).default(10_000) })
      .strict()
      .default({ maxTtlSeconds: 120, rememberMax: 10_000 }),
  })
  .strict();

export type StationConfig = z.infer<typeof stationConfigSchema>;

/** Everything the station link needs, files read and keys imported; throws ConfigError naming the field. */
export interface StationSettings extends BusConnection {
  station: string;
  lane: string;
  perLaneCap: number;
  maxLanes: number;
  stateEveryMs: number;
  statsEveryMs: number;
  supervisors: Map<string, TrustedSupervisor>;
  maxTtlMs: number;
  rememberMax: number;
  /** From the `qr` section: the longest a code may live plus twice the skew (what peers' ids are clamped to). */
  clampMs: number;
}

export function laneUsername(station: string, lane: string): string {
  return `lane.${station}.${lane}`;
}

const readText = (file: string, field: string): string => {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`station.${field}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
};

export function stationSettings(config: LaneConfig): StationSettings | undefined {
  const raw = (config as Record<string, unknown>).station;
  if (raw === undefined) return undefined;
  const c = parseDriverConfig(stationConfigSchema, raw, 'station');
  const station = c.id ?? config.lane.station;
  if (c.id !== undefined && c.id !== config.lane.station) throw new ConfigError(`station.id "${c.id}" differs from lane.station "${config.lane.station}"`);
  if (!NODE_ID.test(station)) throw new ConfigError(`lane.station "${station}" cannot name a station on the bus: 1-32 of [A-Za-z0-9_-]`);
  if (config.lane.id === STATION_LEVEL) throw new ConfigError(`lane.id "${STATION_LEVEL}" is reserved on the station bus`);
  if (c.broker.startsWith('mqtts://') && !c.ca) throw new ConfigError('station.ca: a TLS broker needs the CA file that signed its certificate');
  if ((c.cert === undefined) !== (c.key === undefined)) throw new ConfigError('station.cert and station.key go together');
  const supervisors = new Map<string, TrustedSupervisor>();
  for (const [id, s] of Object.entries(c.supervisors)) {
    try {
      supervisors.set(id, { publicKey: supervisorPublicKey(s.publicKey), may: new Set(s.may) });
    } catch (e) {
      throw new ConfigError(`station.supervisors.${id}.publicKey: ${(e as Error).message}`);
    }
  }
  const qr = (config as Record<string, unknown>).qr as { maxValiditySeconds?: number; clockSkewSeconds?: number } | undefined;
  const maxValidityS = typeof qr?.maxValiditySeconds === 'number' ? qr.maxValiditySeconds : 600;
  const skewS = typeof qr?.clockSkewSeconds === 'number' ? qr.clockSkewSeconds : 30;
  const password = readText(c.passwordFile, 'passwordFile').split('\n')[0].trim();
  if (!password) throw new ConfigError(`station.passwordFile: ${c.passwordFile} is empty`);
  return {
    station,
    lane: config.lane.id,
    url: c.broker,
    ca: c.ca ? readText(c.ca, 'ca') : undefined,
    cert: c.cert ? readText(c.cert, 'cert') : undefined,
    key: c.key ? readText(c.key, 'key') : undefined,
    username: c.username ?? laneUsername(station, config.lane.id),
    password,
    keepaliveSeconds: c.keepaliveSeconds,
    sessionExpirySeconds: c.sessionExpirySeconds,
    reconnectMs: c.reconnectMs,
    perLaneCap: c.usedCodes.perLaneCap,
    maxLanes: c.usedCodes.maxLanes,
    stateEveryMs: c.telemetry.stateEverySeconds * 1000,
    statsEveryMs: c.telemetry.statsEverySeconds * 1000,
    supervisors,
    maxTtlMs: c.commands.maxTtlSeconds * 1000,
    rememberMax: c.commands.rememberMax,
    clampMs: (maxValidityS + 2 * skewS) * 1000,
  };
}
