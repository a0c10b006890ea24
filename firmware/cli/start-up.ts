// What `gate run` does around a start-up, for one lane and for a gate array alike: a step that takes long
// is said out loud (a hang is never silent), and a failure becomes one line naming what and how to fix it.
import { GateErrorCode, isGateError } from '../../protocol/errors.js';
import type { Logger } from '../config/log.js';
import type { StartStep } from '../composition/start-lane.js';

/** A start-up step still running after this long is logged (again every period). */
export const SLOW_STEP_MS = 15_000;

/**
 * Follows the start-up steps; logs `start-up-slow` while one runs past SLOW_STEP_MS. It is not cut short:
 * a 50 M-entry list legitimately takes a while on a small board.
 */
export function stepWatch(log: () => Logger | undefined): { at(s: StartStep): void; readonly step: StartStep; done(): void } {
  let step: StartStep = { field: '--config', what: 'the config file' };
  let since = Date.now();
  const slow = setInterval(() => log()?.warn({ event: 'start-up-slow', field: step.field, what: step.what, seconds: Math.round((Date.now() - since) / 1000) }, `start-up: still opening ${step.what} (${step.field})`), SLOW_STEP_MS);
  slow.unref();
  return {
    at(s) {
      step = s;
      since = Date.now();
    },
    get step() {
      return step;
    },
    done: () => clearInterval(slow),
  };
}

/**
 * One line for a failed start-up, naming what and how to fix it, and the exit code: 2 when the config
 * itself is invalid, 1 when something it names cannot be used (a file, a directory, a device) or an
 * unexpected error happened while opening `step`.
 */
export function startupFailure(e: unknown, configFile: string, step: StartStep): { line: string; exitCode: number } {
  const flat = (s: string) =>
    s
      .split('\n')
      .map((l) => l.trim().replace(/^- /, ''))
      .filter((l) => l !== '')
      .join('; ')
      .replace(/:;/g, ':');
  if (isGateError(e, GateErrorCode.Config)) {
    const fix = /^cannot read config file/.test(e.message) ? 'check the --config path' : `fix that in ${configFile}`;
    return { line: `${flat(e.message)} (${fix})`, exitCode: 2 };
  }
  if (isGateError(e)) return { line: flat(e.message), exitCode: 1 };
  const message = e instanceof Error ? e.message : String(e);
  return { line: `start-up failed while opening ${step.what} (${step.field}): ${flat(message)}; check ${step.field} in ${configFile}`, exitCode: 1 };
}
