// Structured JSON logs (pino): one line per event, level from config. Never log a full card number or
// account id: use credentialRef() from protocol/credential.ts.

import { pino, type Logger } from 'pino';

export type { Logger };

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Fields that hold a full card number, account id, list key or ticket number, a back-office token, or a supervisor's password, session cookie or CSRF token: never written out. */
export const SECRET_FIELDS = ['cardNumber', 'account', 'key', 'ticketNumber', 'token', 'uploadToken', 'authorization', 'password', 'cookie', 'csrf'] as const;

/**
 * pino redaction paths for SECRET_FIELDS at the top level and up to three objects deep (an event
 * object logged as { decision: { credential: { cardNumber } } }). A second net: code logs credentialRef().
 */
export const REDACT_PATHS = SECRET_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`, `*.*.*.${f}`]);

export const REDACTED = '[redacted]';

/** A JSON logger writing to stderr (stdout stays free for command output such as `gate sim` lines). */
export function createLogger(
  level: LogLevel = 'info',
  bindings: Record<string, unknown> = {},
  destination: number | NodeJS.WritableStream = 2,
): Logger {
  const stream = typeof destination === 'number' ? pino.destination({ fd: destination, sync: false }) : destination;
  return pino(
    { level, base: { ...bindings }, timestamp: pino.stdTimeFunctions.isoTime, redact: { paths: REDACT_PATHS, censor: REDACTED } },
    stream,
  );
}

export const silentLogger: Logger = pino({ level: 'silent' });
