// What `gate run` does around a start-up, for one lane and for a gate array alike: a step that takes long
// is said out loud (a hang is never silent), and a failure becomes one line naming what and how to fix it.
import { GateErrorCode, isGateError } from '../../protocol/errors.js';
import type { Logger } from '../config/log.js';
import type { Lane, StartStep } from '../composition/start-lane.js';
import { riderMessage } from '../../protocol/reasons.js';

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

/**
 * A signed `reload` from the station bus: the config file is checked with `load`, then the process stops
 * and systemd brings it back on the new one. `what` names what restarts ("the lane", "the gate array").
 */
export function reloadBy(load: () => unknown, what: string) {
  return async () => {
    try {
      load();
    } catch (e) {
      return { ok: false, detail: (e as Error).message };
    }
    setTimeout(() => process.kill(process.pid, 'SIGTERM'), 500);
    return { ok: true, detail: `config valid; ${what} restarts on it` };
  };
}

/** After start-up: every decision a JSON line on stdout, then a clean stop on SIGTERM/SIGINT (service first). */
export function serveUntilSignalled(lanes: readonly Lane[], stopAll: () => Promise<void>): void {
  for (const lane of lanes) {
    lane.on('decision', (e) => {
      const m = riderMessage(e.decision.reason);
      console.log(JSON.stringify({ lane: lane.id, grant: e.decision.grant, reason: e.decision.reason, kind: e.decision.kind, ref: e.decision.ref, message: `${m.zh} / ${m.en}` }));
    });
  }
  const stop = async () => {
    await stopAll();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

/** Once started: the helper threads lowered, and a warning when node runs without --single-threaded-gc (the unit sets it). */
export function logThreadSetup(log: Logger, helpers: { lowered: number; failed: number }): void {
  log.debug({ event: 'helper-threads', ...helpers }, 'V8 and Node helper threads lowered to nice 19');
  if (!process.execArgv.includes('--single-threaded-gc')) {
    log.warn({ event: 'gc-helpers' }, 'started without node --single-threaded-gc: lookups can pause for milliseconds while the list merges (firmware/deploy/gate.service has the flag)');
  }
}
