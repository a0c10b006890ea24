// `gate run --config FILE`: one lane's runtime with the drivers its config names (a gate array's: run-array.ts).
import type { Command } from 'commander';
import { loadLaneConfig } from '../config/config.js';
import { startLane, type Lane } from '../composition/start-lane.js';
import { createLogger, type Logger } from '../config/log.js';
import { lowerHelperThreads } from '../platform/thread-priority.js';
import { createMetrics } from '../operations/metrics.js';
import { laneInspector, planLaneService, startLaneService, type LaneService } from '../operations/service.js';
import { benchControl } from './bench-console.js';
import { isArrayConfigFile, runGateArray } from './run-array.js';
import { logThreadSetup, reloadBy, serveUntilSignalled, startupFailure, stepWatch } from './start-up.js';

export { startupFailure } from './start-up.js';

export function register(program: Command): void {
  program
    .command('run')
    .description("run one lane's runtime from a config file (or every lane of a gate array: a config with `lanes`)")
    .requiredOption('-c, --config <file>', 'lane config (JSON)')
    .option('--stdin', 'read bench commands from stdin (taps for simulated readers, modes, fire alarm); "help" lists them', false)
    .option('--record <dir>', 'record what crosses the lane\'s edges into DIR/<lane id>/ for gate replay (over the config\'s record.dir)')
    .option('--record-key <file>', 'the operator key the recording is encrypted with (over record.keyFile; 64 hex digits)')
    .action(async (o) => {
      if (isArrayConfigFile(o.config)) return runGateArray(o);
      let lane: Lane | undefined;
      let service: LaneService | undefined;
      let log: Logger | undefined;
      const watch = stepWatch(() => log);
      try {
        // First, before any driver starts threads of its own: Node's and V8's helper threads yield to the lane's.
        const helpers = lowerHelperThreads();
        const config = loadLaneConfig(o.config);
        log = createLogger(config.log.level, { app: 'gate', lane: config.lane.id, station: config.lane.station });
        // What the service needs from the config and the disk (the supervisors file), before any driver opens.
        watch.at({ field: 'dashboard', what: 'the dashboard settings' });
        const plan = await planLaneService(config, { log });
        const metrics = createMetrics({ labels: { lane: config.lane.id, station: config.lane.station } });
        // A signed `reload` from the station bus: the new config is checked, then the lane restarts on it (systemd brings it back).
        const onReload = reloadBy(() => loadLaneConfig(o.config), 'the lane');
        lane = await startLane({ config, log, inspect: laneInspector(metrics), onStep: (s) => watch.at(s), onReload, record: { dir: o.record, keyFile: o.recordKey } });
        watch.at({ field: 'health', what: 'the health server and dashboard' });
        // Health server, sd_notify READY and the watchdog (no-ops for systemd when not run by it).
        service = await startLaneService(lane, { log, metrics, plan });
        log.info({ event: 'started', drivers: { barrier: config.drivers.barrier.type, sources: config.drivers.sources.map((s) => s.type) } }, 'lane started');
        logThreadSetup(log, helpers);
      } catch (e) {
        watch.done();
        const f = startupFailure(e, o.config, watch.step);
        process.stderr.write(`gate run: ${f.line}\n`);
        // Nothing may keep running: stop what started (bounded), then leave whatever is still pending.
        await Promise.race([Promise.allSettled([service?.stop(), lane?.stop()]), new Promise((r) => setTimeout(r, 3000).unref())]);
        process.exit(f.exitCode);
      }
      watch.done();
      const running = lane;
      const svc = service;
      serveUntilSignalled([running], async () => {
        await svc.stop();
        await running.stop();
      });
      if (o.stdin) benchControl(running);
    });
}
