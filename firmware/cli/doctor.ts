// `gate doctor`: check this box against a lane config; exit 0 only when every check passes.
import { Option, type Command } from 'commander';
import { systemClock } from '../../drivers/seams.js';
import { loadLaneConfig, type LaneConfig } from '../config/config.js';
import { defaultDoctorEnv, formatDoctor, runDoctor, targetsFromConfig, type DoctorEnv } from '../operations/doctor.js';
import { silentLogger } from '../config/log.js';
import { listDrivers, pickDriver } from '../composition/registry.js';

/** The list version in use, read through the config's own list driver. */
function listsFromConfig(config: LaneConfig): DoctorEnv['lists'] {
  return async () => {
    const factory = pickDriver(listDrivers, 'lists', config.lists.type);
    const provider = await factory(config.lists, { laneId: config.lane.id, clock: systemClock, log: silentLogger, config });
    const s = provider.current();
    // A list driver that syncs is stopped, not awaited (a round in flight may wait on an unreachable
    // back office; the command exits anyway, see --no-exit).
    void provider.stop?.().catch(() => {});
    return { version: s.version, publishedAtMs: s.publishedAtMs };
  };
}

export function register(program: Command): void {
  program
    .command('doctor')
    .description('check this box for what the lane config needs (serial port, card readers, camera, ffmpeg, journal, clock, back office, lists) and say how to fix what is wrong')
    .option('-c, --config <file>', 'lane config (JSON)', '/etc/gate/lane.json')
    .option('--json', 'print the results as JSON for tooling')
    .option('--serial <path>', 'check this serial port instead of the one in the config')
    .option('--camera <device>', 'check this camera device instead of the one in the config')
    .option('--journal-dir <dir>', 'check this journal directory instead of the one in the config')
    .option('--backoffice-url <url>', 'check this back office URL instead of the one in the config')
    .option('--min-free-mb <n>', 'free space the journal directory needs', '200')
    // In-process callers (tests) keep their process; the command itself exits even if a list driver left a timer.
    .addOption(new Option('--no-exit', 'do not exit the process when done').hideHelp())
    .action(async (opts: { config: string; json?: boolean; serial?: string; camera?: string; journalDir?: string; backofficeUrl?: string; minFreeMb: string; exit: boolean }) => {
      let config: LaneConfig;
      try {
        config = loadLaneConfig(opts.config);
      } catch (e) {
        const r = { ok: false, checks: [{ name: 'config', ok: false, detail: (e as Error).message, fix: `Write a valid lane config to ${opts.config} (see /opt/gate/lane.sample.json).` }] };
        console.log(opts.json ? JSON.stringify(r, null, 2) : formatDoctor(r));
        process.exitCode = 1;
        return;
      }
      const targets = targetsFromConfig(config);
      if (opts.serial) targets.serial = { path: opts.serial, baudRate: targets.serial?.baudRate };
      if (opts.camera) targets.camera = { device: opts.camera };
      if (opts.journalDir) targets.journalDir = opts.journalDir;
      if (opts.backofficeUrl) targets.backofficeUrl = opts.backofficeUrl;
      const env: DoctorEnv = { ...defaultDoctorEnv(), minFreeBytes: Number(opts.minFreeMb) * 1024 * 1024, lists: listsFromConfig(config) };
      const r = await runDoctor(targets, env);
      console.log(opts.json ? JSON.stringify(r, null, 2) : formatDoctor(r));
      process.exitCode = r.ok ? 0 : 1;
      if (opts.exit) setTimeout(() => process.exit(), 200).unref();
    });
}
