// Structured JSON logs (pino): one line per event, level from config. Never log a full card number or
// account id: use credentialRef() from protocol/credential.ts.

import { pino, type Logger } from 'pino';

export type { Logger };

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** A JSON logger writing to stderr (stdout stays free for command output such as `gate sim` lines). */
export function createLogger(level: LogLevel = 'info', bindings: Record<string, unknown> = {}, destination = 2): Logger {
  return pino({ level, base: { ...bindings }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: destination, sync: false }));
}

export const silentLogger: Logger = pino({ level: 'silent' });
