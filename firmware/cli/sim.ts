// `gate sim`: a whole simulated station on embedded defaults, no config file needed.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { createLogger, type LogLevel } from '../config/log.js';
import { DEFAULT_SIM, MAX_LANES, simulateStation, simulatorControls, barrierWirings, readerWirings, qrWirings, backofficeWirings } from '../composition/simulated-station.js';
import { MAX_STATIONS, simulateLine, type LineSummary } from '../composition/simulated-line.js';
import { startDashboardServer, type DashboardAccess, type DashboardServer } from '../dashboard/dashboard.js';
import { openSupervisorFile } from '../dashboard/supervisors.js';
import { formatResult } from '../../simulator/station.js';
import { GateErrorCode, isGateError } from '../../protocol/errors.js';
import { ConfigError } from '../config/config.js';
import { keyBesideRecording } from '../recording/recorder.js';
import type { RecordingKey } from '../../protocol/recording.js';

export function intArg(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
}

/** Riders for a dashboard run: at the default rate, enough to keep a station busy for hours. */
const DASHBOARD_PASSENGERS = 20_000;

export function register(program: Command): void {
  program
    .command('sim')
    .description('run a simulated station: riders, lanes, barriers; every decision checked against ground truth')
    .option('--lanes <n>', 'number of lanes (of each station, with --stations)', intArg('--lanes', 1, MAX_LANES), DEFAULT_SIM.lanes)
    .option('--stations <n>', 'simulate a line of this many stations on one clock and one back office (riders shared out among them)', intArg('--stations', 1, MAX_STATIONS))
    .option('--passengers <n>', `number of riders (default ${DEFAULT_SIM.passengers}; ${DASHBOARD_PASSENGERS} with --dashboard)`, intArg('--passengers', 0, 10_000_000))
    .option('--seed <n>', 'random seed (same seed, same station)', intArg('--seed', 0, 2 ** 31), DEFAULT_SIM.seed)
    .option('--rate <n>', 'mean arrivals per lane per minute', intArg('--rate', 1, 10_000), DEFAULT_SIM.rate)
    .option('--realtime', 'pace the simulation to the wall clock (demos)', false)
    .option('--json', 'print the summary as one JSON object on the last line', false)
    .option('--fares', 'fares instead of a station: a generated network, the signed fare table, card and QR trips, settlement per issuer held against the fare of every trip (--passengers riders, 10 trips each)', false)
    .option('--fares-out <dir>', 'with --fares: write the per-issuer settlement files there')
    .option('--quiet', 'do not print a line per decision', false)
    .option('--dashboard', 'serve the station dashboard (implies --realtime; runs until Ctrl-C)', false)
    .option('--dashboard-port <n>', 'dashboard port (0: any free port)', intArg('--dashboard-port', 0, 65535), 8080)
    .option('--dashboard-host <host>', 'dashboard address to listen on (without --supervisors: loopback only)', '127.0.0.1')
    .option('--supervisors <file>', 'supervisors file (gate supervisor add): every dashboard action then needs a login; without it, actions need no login and are taken from loopback only')
    .option('--dashboard-allowed-host <name...>', 'Host names the dashboard answers to besides loopback (DNS rebinding is refused)', [])
    .addOption(new Option('--barrier <wire>', 'how lanes reach their barrier boards').default(DEFAULT_SIM.barrier))
    .addOption(new Option('--reader <wire>', 'how card taps reach the lanes').default(DEFAULT_SIM.reader))
    .addOption(new Option('--qr <wire>', 'how QR codes reach the lanes').default(DEFAULT_SIM.qr))
    .addOption(new Option('--backoffice <kind>', 'where the lanes\' lists come from').default(DEFAULT_SIM.backoffice))
    .addOption(new Option('--flaps <regime>', 'how the flaps wait between riders: normally-closed (open per decision) or normally-open (closed only in front of a body that may not pass)').choices(['normally-closed', 'normally-open']).default('normally-closed'))
    .addOption(new Option('--broker <kind>', 'how the lanes share used QR codes: none (in process) or mqtt (a real mosquitto)').default('none'))
    .option('--record <dir>', 'record every lane into DIR/<lane>/ for gate replay')
    .option('--record-key <file>', 'the key the recording is encrypted with (default: DIR/record.key, made if missing)')
    .option('--scenario <name>', 'play a scenario instead of a station of random riders: rollout-2022 (Beijing, May 2022: riders register over days, the advise and enforce dates pass)')
    .option('--from <day>', 'with --scenario: first Beijing day played (YYYY-MM-DD; default 2022-05-01)')
    .option('--to <day>', 'with --scenario: last Beijing day played (YYYY-MM-DD; default 2022-05-31)')
    .option('--poll-seconds <n>', 'with --scenario: how often each lane polls the back office (default 300)', intArg('--poll-seconds', 1, 5400))
    .option('--publish-seconds <n>', 'with --scenario: how often the back office publishes list changes (default 300)', intArg('--publish-seconds', 1, 5400))
    .addOption(new Option('--log-level <level>', 'runtime log level (JSON lines on stderr)').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('silent'))
    .action(async (o) => {
      const known = `barrier: ${Object.keys(barrierWirings).join('|')}; reader: ${Object.keys(readerWirings).join('|')}; qr: ${Object.keys(qrWirings).join('|')}; backoffice: ${Object.keys(backofficeWirings).join('|')}`;
      try {
        if (o.fares) return await runFareSim(o);
        const log = createLogger(o.logLevel as LogLevel, { app: 'gate-sim' });
        if (o.scenario !== undefined) {
          if (o.dashboard || o.realtime || o.broker !== 'none' || o.barrier !== DEFAULT_SIM.barrier || o.reader !== DEFAULT_SIM.reader || o.qr !== DEFAULT_SIM.qr || o.backoffice !== DEFAULT_SIM.backoffice) {
            throw new ConfigError('--scenario plays its own wiring in virtual time: without --dashboard, --realtime, --broker, --barrier, --reader, --qr and --backoffice');
          }
          const { runScenarioCommand } = await import('./sim-scenario.js');
          return await runScenarioCommand({ scenario: o.scenario, lanes: o.lanes, passengers: o.passengers, seed: o.seed, from: o.from, to: o.to, pollSeconds: o.pollSeconds, publishSeconds: o.publishSeconds, json: o.json, log });
        }
        if (o.from !== undefined || o.to !== undefined || o.pollSeconds !== undefined || o.publishSeconds !== undefined) throw new ConfigError('--from, --to, --poll-seconds and --publish-seconds go with --scenario');
        const dashboard = o.dashboard === true;
        const passengers: number = o.passengers ?? (dashboard ? DASHBOARD_PASSENGERS : DEFAULT_SIM.passengers);
        const quiet = o.quiet || (o.json && passengers > 2000);
        if (o.stations !== undefined) {
          if (dashboard || o.realtime) throw new ConfigError('--stations runs on virtual time only (no --realtime, no --dashboard)');
          const { summary } = await simulateLine({
            stations: o.stations,
            lanes: o.lanes,
            passengers,
            seed: o.seed,
            rate: o.rate,
            barrier: o.barrier,
            reader: o.reader,
            qr: o.qr,
            backoffice: o.backoffice,
            broker: o.broker,
            log,
            onResult: quiet ? undefined : (r) => console.log(formatResult(r)),
          });
          console.log(o.json ? JSON.stringify(summary) : '\n' + lineText(summary));
          if (summary.falseAccepts > 0 || summary.falseRejects > 0 || summary.unanswered > 0) process.exitCode = 3;
          return;
        }
        let server: DashboardServer | undefined;
        let stopStation: (() => void) | undefined;
        const onSigint = () => {
          console.error('\ngate sim: stopping (Ctrl-C again to force)');
          process.off('SIGINT', onSigint);
          stopStation?.();
        };
        const { summary } = await simulateStation({
          lanes: o.lanes,
          passengers,
          seed: o.seed,
          rate: o.rate,
          realtime: o.realtime || dashboard,
          untilStopped: dashboard,
          onReady: dashboard
            ? async (sim) => {
                stopStation = () => sim.station.stop();
                process.on('SIGINT', onSigint);
                const access: DashboardAccess = o.supervisors ? { mode: 'supervisors', directory: await openSupervisorFile(o.supervisors) } : { mode: 'loopback-demo' };
                server = await startDashboardServer({ lanes: sim.lanes, sim: simulatorControls(sim, o.seed), port: o.dashboardPort, host: o.dashboardHost, allowedHosts: o.dashboardAllowedHost, access, laneNow: () => sim.clock.now(), station: 'SIM', log: log.child({ part: 'dashboard' }) }).catch((e: NodeJS.ErrnoException) => {
                  if (isGateError(e)) throw e;
                  throw new ConfigError(`dashboard cannot listen on ${o.dashboardHost}:${o.dashboardPort}: ${e.code ?? e.message}; pick another with --dashboard-port (0: any free port)`);
                });
                console.log(`Station dashboard: ${server.url}  (Ctrl-C to stop)`);
                if (access.mode === 'loopback-demo') console.log('(demo mode: actions need no login and are taken from this machine only)');
              }
            : undefined,
          barrier: o.barrier,
          reader: o.reader,
          qr: o.qr,
          backoffice: o.backoffice,
          broker: o.broker,
          record: o.record === undefined ? undefined : await recordingFor(o.record, o.recordKey),
          flaps: o.flaps,
          log,
          onResult: quiet ? undefined : (r) => console.log(formatResult(r)),
        }).finally(async () => {
          process.off('SIGINT', onSigint);
          await server?.close();
        });
        if (o.json) {
          console.log(JSON.stringify(summary));
        } else {
          console.log('\n' + summaryText(summary));
        }
        // With a dashboard, the supervisor's modes, alarms and manual taps overrule the judge's ground truth.
        if (dashboard) console.log('(dashboard run: operator actions make the verdicts above informative only)');
        else if (summary.falseAccepts > 0 || summary.falseRejects > 0 || summary.unanswered > 0) process.exitCode = 3;
      } catch (e) {
        if (isGateError(e, GateErrorCode.Config)) {
          console.error(`gate sim: ${e.message}\n(${known})`);
          process.exitCode = 2;
          return;
        }
        if (isGateError(e)) {
          console.error(`gate sim: ${e.message}`);
          process.exitCode = 1;
          return;
        }
        throw e;
      }
    });
}

/** --record DIR [--record-key FILE]: the key given, or DIR/record.key (made if missing; simulated riders only). */
async function recordingFor(dir: string, keyFile: string | undefined): Promise<{ dir: string; keyFile?: string; key?: RecordingKey }> {
  if (keyFile !== undefined) return { dir, keyFile };
  const k = await keyBesideRecording(dir);
  if (k.made) console.error(`gate sim: recording key made at ${k.file} (simulated riders; gate replay ${dir} finds it there)`);
  return { dir, key: k.key };
}

function lineText(s: LineSummary): string {
  const stations = s.byStation.map((x) => `  ${x.station}: ${x.lanes} lanes, ${x.passengers} riders, admitted ${x.admitted}, refused ${x.refused}, false accepts ${x.falseAccepts}, false rejects ${x.falseRejects}, unanswered ${x.unanswered}`);
  return [`Line of ${s.stations} stations`, ...stations, '', summaryText(s).replace(/^Station of/, 'In all:')].join('\n');
}

function summaryText(s: Awaited<ReturnType<typeof simulateStation>>['summary']): string {
  const reasons = Object.entries(s.byReason)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  return [
    `Station of ${s.lanes} lanes, ${s.passengers} riders, ${s.presentations} presentations in ${s.virtualSeconds} s of station time (${s.wallSeconds} s wall)`,
    `admitted ${s.admitted}, refused ${s.refused}: ${reasons}`,
    `false accepts ${s.falseAccepts}, false rejects ${s.falseRejects}, unanswered ${s.unanswered}, wrong reasons ${s.wrongReasons}`,
    `throughput ${s.throughputPerLanePerMin} riders per lane per minute; decision latency p50 ${s.decisionLatencyMs.p50} ms, p99 ${s.decisionLatencyMs.p99} ms`,
    `alarms: tailgating ${s.tailgates}, intrusions ${s.intrusions}`,
    ...(s.failureSample ? [`first wrong answers (of ${s.falseAccepts + s.falseRejects + s.unanswered + s.wrongReasons}):`, ...s.failureSample.map((l) => `  ${l}`)] : []),
    ...(s.flaps ? [flapsText(s.flaps)] : []),
  ].join('\n');
}

function flapsText(f: NonNullable<Awaited<ReturnType<typeof simulateStation>>['summary']['flaps']>): string {
  const stories = Object.entries(f.byStory)
    .filter(([, v]) => v.atFlaps > 0)
    .map(([k, v]) => `${k} ${v.stopped}/${v.atFlaps}`)
    .join(', ');
  return [
    `normally open: ${f.unauthorisedAtFlaps} bodies reached the flaps unauthorised, ${f.stopped} met them shut (${stories || 'none'}), ${f.intruded} crossed`,
    `decision margin before the flaps: grants p1 ${f.grantMarginMs.p1} ms, p50 ${f.grantMarginMs.p50} ms; stops p1 ${f.stopMarginMs.p1} ms, p50 ${f.stopMarginMs.p50} ms; ${f.admittedAfterWaiting} riders admitted after waiting at shut flaps`,
  ].join('\n');
}

async function runFareSim(o: { seed: number; passengers?: number; json: boolean; faresOut?: string }): Promise<void> {
  const riders = o.passengers ?? 200;
  // Loaded only here: the fare simulation brings the back office (Fastify), which an edge box's bundle leaves out.
  const { fareSimFailed, fareSummaryText, simulateFares } = await import('../composition/fare-sim.js');
  const s = await simulateFares({ seed: o.seed, lines: 5, stationsPerLine: 12, riders, trips: riders * 10 });
  if (o.faresOut) {
    try {
      mkdirSync(o.faresOut);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new ConfigError(`--fares-out ${o.faresOut}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (its parent directory must exist)`);
    }
    for (const [name, text] of Object.entries(s.files)) writeFileSync(join(o.faresOut, name), text);
  }
  console.log(o.json ? JSON.stringify({ ...s, files: Object.keys(s.files) }) : fareSummaryText(s));
  if (fareSimFailed(s)) process.exitCode = 3;
}
