// `gate run --config FILE` when FILE is a gate array (top-level `lanes`): every lane of the box in this
// process, sharing one list store, one journal directory and one health server (composition/gate-array.ts,
// operations/array-service.ts). Start-up as for one lane: step by step, one line on failure, nothing left running.
import { isArrayConfig, loadGateConfig, readConfigJson, type ArrayConfig } from '../config/array-config.js';
import { ConfigError } from '../config/config.js';
import { createLogger, type Logger } from '../config/log.js';
import { startGateArray, type GateArray } from '../composition/gate-array.js';
import { lowerHelperThreads } from '../platform/thread-priority.js';
import { createArrayMetrics, startArrayService, type ArrayService } from '../operations/array-service.js';
import { laneInspector, planLaneService } from '../operations/service.js';
import { arrayBenchControl } from './bench-console.js';
import { logThreadSetup, reloadBy, serveUntilSignalled, startupFailure, stepWatch } from './start-up.js';

/** Whether the file is a gate array config; a file that cannot be read or parsed is left to the one-lane path to report. */
export function isArrayConfigFile(file: string): boolean {
  try {
    return isArrayConfig(readConfigJson(file));
  } catch {
    return false;
  }
}

/** Load a gate array config; ConfigError when the file holds one lane's config instead. */
function loadArrayConfig(file: string): ArrayConfig {
  const c = loadGateConfig(file);
  if (c.kind !== 'array') throw new ConfigError(`config file ${file} is a one-lane config, not a gate array`);
  return c.config;
}

/** `gate run` for a gate array. Returns once every lane serves (or exits the process on a failed start). */
export async function runGateArray(o: { config: string; stdin?: boolean; record?: string; recordKey?: string }): Promise<void> {
  let array: GateArray | undefined;
  let service: ArrayService | undefined;
  let log: Logger | undefined;
  const watch = stepWatch(() => log);
  try {
    // First, before any driver starts threads of its own: Node's and V8's helper threads yield to the lanes'.
    const helpers = lowerHelperThreads();
    const config = loadArrayConfig(o.config);
    const station = config.lanes[0].station;
    log = createLogger(config.log.level, { app: 'gate', station, lanes: config.lanes.length });
    watch.at({ field: 'dashboard', what: 'the dashboard settings' });
    const plan = await planLaneService(config, { log });
    const metrics = createArrayMetrics(config.lanes);
    // A signed `reload` from the station bus: the new config is checked, then the box restarts on it (systemd brings it back).
    const onReload = reloadBy(() => loadArrayConfig(o.config), 'the gate array');
    array = await startGateArray({ config, log, onStep: (s) => watch.at(s), inspect: (id) => laneInspector(metrics.get(id)!), onReload, record: { dir: o.record, keyFile: o.recordKey } });
    watch.at({ field: 'health', what: 'the health server and dashboard' });
    service = await startArrayService(array.lanes, { log, lists: array.lists, plan, station, metrics });
    log.info({ event: 'started', lanes: array.lanes.map((l) => ({ lane: l.id, direction: l.config.lane.direction, barrier: l.config.drivers.barrier.type, sources: l.config.drivers.sources.map((s) => s.type) })) }, `gate array started: ${array.lanes.length} lanes`);
    logThreadSetup(log, helpers);
  } catch (e) {
    watch.done();
    const f = startupFailure(e, o.config, watch.step);
    process.stderr.write(`gate run: ${f.line}\n`);
    await Promise.race([Promise.allSettled([service?.stop(), array?.stop()]), new Promise((r) => setTimeout(r, 3000).unref())]);
    process.exit(f.exitCode);
  }
  watch.done();
  const running = array;
  const svc = service;
  serveUntilSignalled(running.lanes, async () => {
    await svc.stop();
    await running.stop();
  });
  if (o.stdin) arrayBenchControl(running.lanes);
}
