// `gate sim`: a whole simulated station on embedded defaults, no config file needed.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { createLogger, type LogLevel } from '../log.js';
import { DEFAULT_SIM, simulateStation, barrierWirings, readerWirings, qrWirings, backofficeWirings } from '../simulated-station.js';
import { formatResult } from '../../simulator/station.js';
import { ConfigError } from '../config.js';

export function intArg(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
}

export function register(program: Command): void {
  program
    .command('sim')
    .description('run a simulated station: riders, lanes, barriers; every decision checked against ground truth')
    .option('--lanes <n>', 'number of lanes', intArg('--lanes', 1, 64), DEFAULT_SIM.lanes)
    .option('--passengers <n>', 'number of riders', intArg('--passengers', 0, 10_000_000), DEFAULT_SIM.passengers)
    .option('--seed <n>', 'random seed (same seed, same station)', intArg('--seed', 0, 2 ** 31), DEFAULT_SIM.seed)
    .option('--rate <n>', 'mean arrivals per lane per minute', intArg('--rate', 1, 10_000), DEFAULT_SIM.rate)
    .option('--realtime', 'pace the simulation to the wall clock (demos)', false)
    .option('--json', 'print the summary as one JSON object on the last line', false)
    .option('--quiet', 'do not print a line per decision', false)
    .addOption(new Option('--barrier <wire>', 'how lanes reach their barrier boards').default(DEFAULT_SIM.barrier))
    .addOption(new Option('--reader <wire>', 'how card taps reach the lanes').default(DEFAULT_SIM.reader))
    .addOption(new Option('--qr <wire>', 'how QR codes reach the lanes').default(DEFAULT_SIM.qr))
    .addOption(new Option('--backoffice <kind>', 'where the lanes\' lists come from').default(DEFAULT_SIM.backoffice))
    .addOption(new Option('--log-level <level>', 'runtime log level (JSON lines on stderr)').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('silent'))
    .action(async (o) => {
      const known = `barrier: ${Object.keys(barrierWirings).join('|')}; reader: ${Object.keys(readerWirings).join('|')}; qr: ${Object.keys(qrWirings).join('|')}; backoffice: ${Object.keys(backofficeWirings).join('|')}`;
      try {
        const quiet = o.quiet || (o.json && o.passengers > 2000);
        const { summary } = await simulateStation({
          lanes: o.lanes,
          passengers: o.passengers,
          seed: o.seed,
          rate: o.rate,
          realtime: o.realtime,
          barrier: o.barrier,
          reader: o.reader,
          qr: o.qr,
          backoffice: o.backoffice,
          log: createLogger(o.logLevel as LogLevel, { app: 'gate-sim' }),
          onResult: quiet ? undefined : (r) => console.log(formatResult(r)),
        });
        if (o.json) {
          console.log(JSON.stringify(summary));
        } else {
          console.log('\n' + summaryText(summary));
        }
        if (summary.falseAccepts > 0 || summary.falseRejects > 0 || summary.unanswered > 0) process.exitCode = 3;
      } catch (e) {
        if (e instanceof ConfigError) {
          console.error(`gate sim: ${e.message}\n(${known})`);
          process.exitCode = 2;
          return;
        }
        throw e;
      }
    });
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
  ].join('\n');
}
