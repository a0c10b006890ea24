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

export const laneConfigSchema = z
  .object({
    lane: z
      .object({
        id: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'lane id: 1-32 of [A-Za-z0-9_-]'),
        station: z.string().min(1).default('SIM'),
        direction: z.enum(['entry', 'exit', 'bidirectional']).default('bidirectional'),
      })
      .strict(),
    timeouts: timeoutsSchema.default(() => timeoutsSchema.parse({})),
    policy: policySchema.default(() => policySchema.parse({})),
    drivers: z
      .object({
        barrier: driverConfig.default({ type: 'simulated' }),
        /** Credential sources: card readers, QR cameras, QR scan engines. Each has a side (entry/exit). */
        sources: z.array(driverConfig.extend({ side: z.enum(['entry', 'exit']).default('entry') })).default([]),
      })
      .strict()
      .default({ barrier: { type: 'simulated' }, sources: [] }),
    lists: driverConfig.default({ type: 'memory' }),
    journal: driverConfig.default({ type: 'memory' }),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .default({ level: 'info' }),
  })
  .loose();

export type LaneConfig = z.infer<typeof laneConfigSchema>;
export type Timeouts = z.infer<typeof timeoutsSchema>;
export type Policy = z.infer<typeof policySchema>;
export type StatusPolicy = z.infer<typeof statusPolicy>;

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
