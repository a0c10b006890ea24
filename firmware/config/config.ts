// One lane's configuration: schema, defaults, and errors that name the bad field and why.

import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { GateError, GateErrorCode } from '../../protocol/errors.js';

const ms = (def: number) => z.number().int().min(0).max(3_600_000).default(def);

const statusPolicy = z
  .object({
    green: z.boolean(),
    yellow: z.boolean(),
    red: z.boolean(),
    unregistered: z.boolean(),
    blocked: z.boolean(),
  })
  .strict();

export const timeoutsSchema = z
  .object({
    /** Authorised but nobody walked through: close and log "not passed". */
    passageMs: ms(8000),
    /** How long a refusal message stays on the rider display. */
    deniedDisplayMs: ms(1500),
    /** Flaps must report closed within this after CLOSE, or the lane goes out of service (stuck flap). */
    closingMs: ms(3000),
    /** After an obstruction while closing: hold open this long, then try closing again. */
    obstructionHoldMs: ms(2000),
    /** Longest wait for the decision (journal durable) before the credential is refused as a fault. */
    decisionMs: ms(1000),
    /**
     * Normally open: the board's fast close, from FAST_CLOSE to flaps shut (its mechanics say; the lane
     * budgets it). The lane closes in front of an unauthorised body by (its ETA − fastCloseMs − closeMarginMs).
     */
    fastCloseMs: ms(250),
    /** Normally open: slack for the link and the lane's own scheduling on top of the fast close. */
    closeMarginMs: ms(100),
    /** Normally open: a tap seen before its body broke the lane's beam is kept for the next body this long. */
    tapAheadMs: ms(1500),
  })
  .strict();

export const policySchema = z
  .object({
    entry: statusPolicy
      .default({ green: true, yellow: false, red: false, unregistered: false, blocked: false })
      .refine((p) => p.green, { message: 'entry must admit green: a registered green rider may never be refused' }),
    exit: statusPolicy
      .default({ green: true, yellow: true, red: true, unregistered: true, blocked: false })
      .refine((p) => p.green && p.yellow && p.red, {
        message: 'exit must admit green, yellow and red: a status may never trap a rider inside',
      }),
    /** A second entry with the same credential without an exit inside this window is refused. 0 disables. */
    antiPassbackSeconds: z.number().int().min(0).max(86_400).default(7200),
    /** Lists older than this are "too old"; what then happens is staleListAction. */
    listMaxAgeSeconds: z.number().int().min(60).default(86_400),
    staleListAction: z.enum(['keep-serving', 'refuse', 'out-of-service']).default('keep-serving'),
    /**
     * The back office's signed enforcement schedule (GET /v1/policy-schedule saved to a file; protocol/
     * policy-schedule.md), verified with the lists' publicKeys. Absent: every kind enforced.
     */
    scheduleFile: z.string().min(1).optional(),
  })
  .strict();

const driverConfig = z.looseObject({ type: z.string().min(1) });

/** The lane's HTTP face (`/metrics`, `/healthz`, `/readyz`, `/dashboard/`): firmware/operations/health.ts. */
export const healthSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** 127.0.0.1 keeps it on the box; 0.0.0.0 lets the station's Prometheus scrape it (control stays off unless `dashboard.control` is set). */
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(9464),
    maxLoopDelayMs: z.number().int().min(10).default(1000),
  })
  .strict();

/** A Host header value: a DNS name, an IPv4 address or a bracketed IPv6 address, with an optional port. */
const hostName = z
  .string()
  .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(:\d{1,5})?$/, 'a host name or address as a browser sends it in Host, e.g. "gate-l01.bj0101.metro" or "10.0.0.11:9464"');

/**
 * The dashboard on the health port (firmware/dashboard/). Without `control` it is a read-only page: lanes,
 * decisions by privacy-safe reference, alarms; every action is refused. With `control`, actions need a
 * supervisor's login (names and scrypt hashes in the `supervisors` file, written by `gate supervisor add`).
 */
export const dashboardSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** Host header values it answers to besides loopback (127.0.0.1, localhost, [::1]); anything else is refused (DNS rebinding). */
    allowedHosts: z.array(hostName).max(64).default([]),
    control: z
      .object({
        /** The supervisors file: { "supervisors": { "<name>": { "hash": "scrypt$…" } } }. */
        supervisors: z.string().min(1),
        /** A login lasts this long, then the supervisor logs in again. */
        sessionMinutes: z.number().int().min(1).max(1440).default(240),
        /** Sessions kept at once (every supervisor, every browser); a new login beyond it ends the oldest. */
        maxSessions: z.number().int().min(1).max(256).default(16),
        /** Failed logins from one address within loginWindowSeconds before its further attempts are refused until the window passes. */
        loginFailures: z.number().int().min(1).max(100).default(5),
        loginWindowSeconds: z.number().int().min(10).max(86_400).default(300),
      })
      .strict()
      .optional(),
  })
  .strict();

/**
 * `gate run --record` (firmware/recording/): what crossed the lane's edges, kept for `gate replay`. Recording
 * is on when `dir` is set here or given with --record; the presentations are encrypted with the operator's
 * key (`keyFile`, or --record-key: 64 hex digits, e.g. `openssl rand -hex 32`).
 */
export const recordSchema = z
  .object({
    dir: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    /** A segment is closed and the next opened past this size (at the lane's next quiet moment). */
    segmentMegabytes: z.number().min(0.01).max(1024).default(16),
    /** ... or past this age. */
    segmentMinutes: z.number().min(1).max(1440).default(60),
    /** The lane's oldest segments are removed while its recordings take more than this. */
    keepMegabytes: z.number().min(1).default(1024),
    /** Records reach the disk at least this often (what a power cut may take from the recording; the journal keeps every decision anyway). */
    flushMs: z.number().int().min(10).max(60_000).default(5000),
  })
  .strict();

/** Timeouts and policy: a lane's, and in a gate array the box's defaults for every lane. */
export const laneTimingAndPolicy = {
  timeouts: timeoutsSchema.default(() => timeoutsSchema.parse({})),
  policy: policySchema.default(() => policySchema.parse({})),
};

/** The sections one box has once, whether it serves one lane or a gate array: lists, journal, log, health, dashboard. */
export const boxSections = {
  lists: driverConfig.default({ type: 'memory' }),
  journal: driverConfig.default({ type: 'memory' }),
  log: z
    .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
    .strict()
    .default({ level: 'info' }),
  health: healthSchema.default(() => healthSchema.parse({})),
  dashboard: dashboardSchema.default(() => dashboardSchema.parse({})),
};

/**
 * A fare gate (firmware/fares/): the lane's PC/SC card readers run the fare transaction (trip record, e-purse
 * debit with the PSAM) while the card is in the field, after the lists' check. The fare table is the signed
 * document in `tablePath`: synced there by `http-sync` lists (default `<lists.dir>/fare-table.json`), or
 * provisioned by hand; verified with `lists.publicKeys`.
 */
export const faresSchema = z
  .object({
    /** The PSAM's PC/SC slot (drivers/pcsc-psam.ts): `reader` is a name substring, e.g. "SAM". */
    psam: z.looseObject({ reader: z.string().min(1) }),
    /** The station's id in the fare table (1-65535). */
    station: z.number().int().min(1).max(65_535),
    /** Entry or exit fare transaction; default the lane's own direction (a bidirectional lane: each reader by its side). */
    direction: z.enum(['entry', 'exit']).optional(),
    /** The lane's number written on the card's trip record (0-255). */
    laneNumber: z.number().int().min(0).max(255).default(1),
    /** The fare-table file (signed document, protocol/README.md "Fare table document"). */
    tablePath: z.string().min(1).optional(),
    /** A re-tap within this of the card's own record at this station is the same trip (a torn tap). */
    retapGraceMs: z.number().int().min(0).max(86_400_000).default(600_000),
  })
  .strict();

export const laneConfigSchema = z
  .object({
    lane: z
      .object({
        id: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'lane id: 1-32 of [A-Za-z0-9_-]'),
        station: z.string().min(1).default('SIM'),
        direction: z.enum(['entry', 'exit', 'bidirectional']).default('bidirectional'),
        /**
         * normally-closed: the flaps open for one passage once a decision is durable. normally-open: they rest
         * open, the board reports bodies as they walk, and the lane closes them (fast) in front of a body that
         * may not pass: a refusal, no tap, a second body, a decision not durable in time (firmware/lane/README.md).
         */
        flaps: z.enum(['normally-closed', 'normally-open']).default('normally-closed'),
      })
      .strict(),
    ...laneTimingAndPolicy,
    drivers: z
      .object({
        barrier: driverConfig.default({ type: 'simulated' }),
        /** Credential sources: card readers, QR cameras, QR scan engines. Each has a side (entry/exit). */
        sources: z.array(driverConfig.extend({ side: z.enum(['entry', 'exit']).default('entry') })).default([]),
      })
      .strict()
      .default({ barrier: { type: 'simulated' }, sources: [] }),
    ...boxSections,
    record: recordSchema.optional(),
    fares: faresSchema.optional(),
  })
  .loose();

export type LaneConfig = z.infer<typeof laneConfigSchema>;
export type Timeouts = z.infer<typeof timeoutsSchema>;
export type Policy = z.infer<typeof policySchema>;
export type StatusPolicy = z.infer<typeof statusPolicy>;
export type HealthSettings = z.infer<typeof healthSchema>;
export type DashboardSettings = z.infer<typeof dashboardSchema>;
export type RecordConfig = z.infer<typeof recordSchema>;
export type FaresConfig = z.infer<typeof faresSchema>;

/**
 * A config file or section that cannot be used: a GateError with code GateErrorCode.Config (branch on
 * `isGateError(e, GateErrorCode.Config)`); `issues` lists every bad field with its path and why.
 */
export class ConfigError extends GateError {
  constructor(
    message: string,
    readonly issues: { path: string; message: string }[] = [],
  ) {
    super(message, GateErrorCode.Config, issues.length ? { issues } : {});
    this.name = 'ConfigError';
  }
}

/** Validate a parsed config object; throws ConfigError listing every bad field with its path and why. */
export function parseLaneConfig(raw: unknown, origin = 'config'): LaneConfig {
  const r = laneConfigSchema.safeParse(raw);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => ({ path: i.path.join('.') || '(root)', message: i.message }));
  throw new ConfigError(
    `${origin} is invalid:\n` + issues.map((i) => `  - ${i.path}: ${i.message}`).join('\n'),
    issues,
  );
}

/** Read and validate a JSON config file. */
export function loadLaneConfig(file: string): LaneConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${file}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(e as Error).message}`);
  }
  return parseLaneConfig(raw, `config file ${file}`);
}

/** Validate a driver's own section against its schema, naming the driver and field on failure. */
export function parseDriverConfig<T extends z.ZodType>(schema: T, raw: unknown, where: string): z.infer<T> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => `  - ${where}.${i.path.join('.')}: ${i.message}`);
  throw new ConfigError(`${where} is invalid:\n${lines.join('\n')}`);
}
