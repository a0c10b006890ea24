// A gate array: one box (one process) serving several lanes from one config file. Each entry of `lanes` is a
// lane's own part (its `lane` section, its drivers, its timeouts if they differ); lists, journal, policy, the
// `qr` and `station` sections, health, dashboard and log are the box's, shared by every lane. A one-lane
// config (top-level `lane`) keeps working unchanged: `loadGateConfig` tells the two apart.

import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, boxSections, faresSchema, laneTimingAndPolicy, parseLaneConfig, type LaneConfig } from './config.js';

const driverConfig = z.looseObject({ type: z.string().min(1) });
const ms = () => z.number().int().min(0).max(3_600_000).optional();

/** The most lanes one box serves: every lane is a barrier port, readers and a journal; bounded like every input. */
export const MAX_ARRAY_LANES = 32;

/** One lane of an array: what the one-lane config's `lane` section says, plus its own drivers. */
export const arrayLaneSchema = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'lane id: 1-32 of [A-Za-z0-9_-]'),
    station: z.string().min(1).default('SIM'),
    direction: z.enum(['entry', 'exit', 'bidirectional']).default('bidirectional'),
    /** As a one-lane config's `lane.flaps`: each lane of the cabinet has its own flaps (and board). */
    flaps: z.enum(['normally-closed', 'normally-open']).default('normally-closed'),
    drivers: z
      .object({
        /** Required in an array: a lane of a real cabinet never falls back to a simulated barrier by accident. */
        barrier: driverConfig,
        sources: z.array(driverConfig.extend({ side: z.enum(['entry', 'exit']).default('entry') })).max(8).default([]),
      })
      .strict(),
    /** Only what differs from the box's `timeouts` (a wide lane for wheelchairs: a longer passageMs). */
    timeouts: z
      .object({ passageMs: ms(), deniedDisplayMs: ms(), closingMs: ms(), obstructionHoldMs: ms(), decisionMs: ms() })
      .strict()
      .optional(),
    /**
     * The lane's fare gate: the one-lane `fares` section, with its own PSAM slot. `station` defaults to the
     * lane's `station` when that is a number; `laneNumber` to the lane's place in `lanes` (lanes[0]: 1).
     */
    fares: faresSchema.extend({ station: faresSchema.shape.station.optional(), laneNumber: faresSchema.shape.laneNumber.unwrap().optional() }).optional(),
  })
  .strict()
  .superRefine(laneFaresCheck);

export const arrayConfigSchema = z
  .object({
    lanes: z.array(arrayLaneSchema).min(1, 'at least one lane').max(MAX_ARRAY_LANES, `at most ${MAX_ARRAY_LANES} lanes on one box`),
    ...laneTimingAndPolicy,
    // The journal is one directory for the box: each lane keeps its own journal (its own seq) in `<dir>/<lane id>/`.
    ...boxSections,
    lane: z.never({ error: 'a gate array names its lanes in `lanes`: give either `lane` (one lane) or `lanes` (an array), not both' }).optional(),
    drivers: z.never({ error: 'in a gate array each lane has its own drivers: `lanes[i].drivers`' }).optional(),
    fares: z.never({ error: 'in a gate array each lane has its own fare gate: `lanes[i].fares`' }).optional(),
  })
  .loose()
  .superRefine((c, ctx) => {
    // The station bus gives each lane its own identity (its ACL lets it write only its own topics).
    const bus = (c as Record<string, unknown>).station;
    if (c.lanes.length > 1 && typeof bus === 'object' && bus !== null && typeof (bus as Record<string, unknown>).passwordFile === 'string' && !String((bus as Record<string, unknown>).passwordFile).includes(LANE)) {
      ctx.addIssue({ code: 'custom', path: ['station', 'passwordFile'], message: `each lane of a gate array has its own broker identity: write ${LANE} in the path (e.g. /etc/gate/broker/${LANE}.password, as gate broker-config writes one file per lane)` });
    }
    const ids = new Map<string, number>();
    const ports = new Map<string, number>();
    c.lanes.forEach((l, i) => {
      const first = ids.get(l.id);
      if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['lanes', i, 'id'], message: `lane id "${l.id}" is already lanes[${first}]'s: each lane needs its own id (journal, metrics, dashboard)` });
      else ids.set(l.id, i);
      // Two lanes on one serial port would each read half the other's frames.
      const port = l.drivers.barrier.path;
      if (typeof port === 'string' && l.drivers.barrier.type !== 'simulated') {
        const other = ports.get(port);
        if (other !== undefined) ctx.addIssue({ code: 'custom', path: ['lanes', i, 'drivers', 'barrier', 'path'], message: `${port} is already lanes[${other}]'s barrier port: each lane has its own` });
        else ports.set(port, i);
      }
    });
  })
  .superRefine(faresAcrossLanes);

/** Stands for the lane's id in the `station` section's username, passwordFile, cert and key of a gate array. */
export const LANE = '{lane}';

export type ArrayConfig = z.infer<typeof arrayConfigSchema>;
export type ArrayLane = z.infer<typeof arrayLaneSchema>;

/** A zod issue path as a technician reads it in the file: `lanes[3].drivers.barrier.path`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s === '' ? String(p) : `.${String(p)}`;
  return s || '(root)';
}

/** Validate a parsed gate array config; throws ConfigError naming every bad field (`lanes[2].id: …`). */
export function parseArrayConfig(raw: unknown, origin = 'config'): ArrayConfig {
  const r = arrayConfigSchema.safeParse(raw);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => ({ path: fieldPath(i.path), message: i.message }));
  throw new ConfigError(`${origin} is invalid:\n` + issues.map((i) => `  - ${i.path}: ${i.message}`).join('\n'), issues);
}

/** What a config file holds: one lane (top-level `lane`) or a gate array (top-level `lanes`). */
export type GateConfig = { kind: 'lane'; config: LaneConfig } | { kind: 'array'; config: ArrayConfig };

/** Whether a parsed config object is a gate array (it has `lanes`). */
export function isArrayConfig(raw: unknown): boolean {
  return typeof raw === 'object' && raw !== null && !Array.isArray(raw) && Object.hasOwn(raw, 'lanes');
}

/** Validate either kind of config. */
export function parseGateConfig(raw: unknown, origin = 'config'): GateConfig {
  return isArrayConfig(raw) ? { kind: 'array', config: parseArrayConfig(raw, origin) } : { kind: 'lane', config: parseLaneConfig(raw, origin) };
}

/** Read and validate a JSON config file of either kind. */
export function loadGateConfig(file: string): GateConfig {
  return parseGateConfig(readConfigJson(file), `config file ${file}`);
}

/** The JSON of a config file; ConfigError when it cannot be read or is not JSON. */
export function readConfigJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Lane i's config as a one-lane config: its own `lane`, drivers and timeouts, the box's sections for the
 * rest, `{lane}` in the station bus's username, passwordFile, cert and key replaced by the lane's id.
 * `journal` is left as the box's: where each lane's journal lives is the composition root's choice.
 */
export function laneConfigOf(array: ArrayConfig, i: number): LaneConfig {
  const { lanes, lane: _lane, drivers: _drivers, ...shared } = array;
  const l = lanes[i];
  const timeouts = { ...array.timeouts };
  for (const [k, v] of Object.entries(l.timeouts ?? {})) if (v !== undefined) timeouts[k as keyof typeof timeouts] = v;
  const laneShared: Record<string, unknown> = { ...shared };
  const bus = laneShared.station;
  if (typeof bus === 'object' && bus !== null) {
    const b: Record<string, unknown> = { ...bus };
    for (const k of ['username', 'passwordFile', 'cert', 'key']) if (typeof b[k] === 'string') b[k] = (b[k] as string).replaceAll(LANE, l.id);
    laneShared.station = b;
  }
  // The lane's fare gate: the station the lane names, its place in the array as its lane number, unless given.
  if (l.fares) laneShared.fares = { ...l.fares, station: l.fares.station ?? fareStationOf(l.station), laneNumber: l.fares.laneNumber ?? i + 1 };
  return parseLaneConfig({ ...laneShared, lane: { id: l.id, station: l.station, direction: l.direction, flaps: l.flaps }, drivers: l.drivers, timeouts }, `lanes[${i}]`);
}

/** The lane's `station` as a fare-table station id (1-65535), when it is one. */
function fareStationOf(station: string): number | undefined {
  const n = /^[0-9]{1,5}$/.test(station) ? Number(station) : NaN;
  return n >= 1 && n <= 65_535 ? n : undefined;
}

type LaneFields = { station: string; direction: string; fares?: { station?: number; direction?: string } };

/** A lane's `fares` against the lane's own fields, named where they sit (`lanes[2].fares.station`). */
function laneFaresCheck(l: LaneFields, ctx: z.RefinementCtx): void {
  const f = l.fares;
  if (!f) return;
  if (f.station === undefined && fareStationOf(l.station) === undefined) ctx.addIssue({ code: 'custom', path: ['fares', 'station'], message: `give the station's id in the fare table (1-65535): the lane's station "${l.station}" is not one` });
  if (f.direction !== undefined && l.direction !== 'bidirectional' && f.direction !== l.direction) ctx.addIssue({ code: 'custom', path: ['fares', 'direction'], message: `"${f.direction}" on an ${l.direction} lane (its direction); make them agree` });
}

/**
 * What the fare gates of one box share and what they may not: one fare table (held once, fed by the one
 * list sync, so one `tablePath`), and never a PSAM slot (each lane has its own PSAM: firmware/fares/README.md).
 */
function faresAcrossLanes(c: { lanes: { fares?: { psam: { reader: string }; tablePath?: string } }[] }, ctx: z.RefinementCtx): void {
  let table: { path: string | undefined; i: number } | undefined;
  const slots: { reader: string; i: number }[] = [];
  c.lanes.forEach((l, i) => {
    if (!l.fares) return;
    const path = l.fares.tablePath;
    if (table === undefined) table = { path, i };
    else if (path !== table.path) ctx.addIssue({ code: 'custom', path: ['lanes', i, 'fares', 'tablePath'], message: `the box holds one fare table: lanes[${table.i}].fares.tablePath is ${table.path === undefined ? 'not given (the synced <lists.dir>/fare-table.json)' : `"${table.path}"`}; give every lane the same (or none)` });
    // A reader name is a substring of the slot's name: one contained in another may pick the other's slot.
    const reader = l.fares.psam.reader.toLowerCase();
    const other = slots.find((s) => s.reader.includes(reader) || reader.includes(s.reader));
    if (other) ctx.addIssue({ code: 'custom', path: ['lanes', i, 'fares', 'psam', 'reader'], message: `"${l.fares.psam.reader}" may be lanes[${other.i}]'s PSAM slot ("${c.lanes[other.i].fares!.psam.reader}"): each lane has its own PSAM; name each slot so that no name contains another` });
    else slots.push({ reader, i });
  });
}
