// `gate barrier`: a technician's bench tool for a barrier board on a serial line (or the virtual one);
// `gate barrier-sim`: the virtual board on a given pty or serial device, driven from stdin.
//
//   terminal 1: socat -d -d pty,raw,echo=0,link=/tmp/gate pty,raw,echo=0,link=/tmp/board
//   terminal 2: gate barrier-sim --port /tmp/board
//   terminal 3: gate barrier --port /tmp/gate open --direction entry --passages 1

import { createInterface } from 'node:readline';
import { InvalidArgumentError, type Command } from 'commander';
import type { BarrierCommand, BarrierEvent, BarrierMode } from '../../protocol/barrier.js';
import { describeFrame, sessionHex } from '../../protocol/barrier-frame.js';

const MODES: BarrierMode[] = ['normal', 'free', 'emergency', 'locked'];

interface LinkOptions {
  port: string;
  baud: string;
  timeout: string;
  trace?: boolean;
}

function positiveInt(v: string, what: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${what} must be a positive integer, got "${v}"`);
  return n;
}

const arg =
  <T>(check: (v: string) => T) =>
  (v: string): T =>
    check(v);
const intOption = (what: string) => arg((v) => (positiveInt(v, what), v));
const oneOf = <T extends string>(what: string, values: readonly T[]) =>
  arg((v): T => {
    if (!values.includes(v as T)) throw new InvalidArgumentError(`${what} must be one of ${values.join(', ')}, got "${v}"`);
    return v as T;
  });

/** Open the link, wait for the status resync, run `body`, close. Exit code 2 if the board never answers. */
async function withLink(
  o: LinkOptions,
  body: (link: import('../../drivers/serial-barrier.js').SerialBarrierLink, events: BarrierEvent[]) => Promise<number>,
  onEvent?: (e: BarrierEvent) => void,
): Promise<void> {
  const { SerialBarrierLink } = await import('../../drivers/serial-barrier.js');
  const link = new SerialBarrierLink(
    { type: 'serial', path: o.port, baudRate: positiveInt(o.baud, '--baud') },
    { trace: o.trace ? (dir, f) => console.log(`${dir === 'in' ? '<-' : '->'} ${describeFrame(f)}`) : undefined },
  );
  const events: BarrierEvent[] = [];
  let lastDown = '';
  await link.start((e) => {
    events.push(e);
    if (e.type === 'LINK' && !e.up) lastDown = e.detail ?? '';
    onEvent?.(e);
  });
  const until = Date.now() + positiveInt(o.timeout, '--timeout');
  while (link.state !== 'up' && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  if (link.state !== 'up') {
    console.error(`no answer from a barrier board on ${o.port} (${lastDown || 'no status reply'})`);
    await link.stop();
    process.exitCode = 2;
    return;
  }
  try {
    process.exitCode = await body(link, events);
  } finally {
    await link.stop();
  }
}

async function runCommand(o: LinkOptions, cmd: BarrierCommand): Promise<void> {
  await withLink(o, async (link) => {
    const r = await link.request(cmd);
    if (r.ok && r.ackLost) console.log(`${cmd.type}: executed (every ack lost after ${r.attempts} attempts; the board says it executed it)`);
    else if (r.ok) console.log(`${cmd.type}: acknowledged${r.attempts > 1 ? ` after ${r.attempts} attempts` : ''}`);
    else console.error(`${cmd.type}: FAILED${r.executed === false ? ' (not executed)' : ''}: ${r.detail}`);
    return r.ok ? 0 : 1;
  });
}

export function register(program: Command): void {
  const barrier = program
    .command('barrier')
    .description('talk to a barrier board on a serial line: open, close, mode, status, monitor')
    .requiredOption('--port <path>', 'serial device, e.g. /dev/ttyUSB0 or a pty link')
    .option('--baud <n>', 'baud rate', intOption('--baud'), '115200')
    .option('--timeout <ms>', 'how long to wait for the board to answer', intOption('--timeout'), '3000')
    .option('--trace', 'print every frame in and out');
  const opts = (c: Command) => c.parent!.opts() as LinkOptions;

  barrier
    .command('open')
    .description('open the flaps for authorised passengers (passages 0 = safety reopen)')
    .option('--direction <d>', 'entry or exit', oneOf('--direction', ['entry', 'exit'] as const), 'entry')
    .option(
      '--passages <n>',
      'number of passengers (0 = safety reopen)',
      arg((v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0 || n > 255) throw new InvalidArgumentError(`--passages must be 0..255, got "${v}"`);
        return n;
      }),
      1,
    )
    .action(async (o: { direction: 'entry' | 'exit'; passages: number }, c: Command) => {
      await runCommand(opts(c), { type: 'OPEN', direction: o.direction, passages: o.passages });
    });
  barrier
    .command('close')
    .description('close the flaps')
    .action(async (_o: unknown, c: Command) => runCommand(opts(c), { type: 'CLOSE' }));
  barrier
    .command('mode')
    .description(`set the mode: ${MODES.join(', ')}`)
    .argument('<mode>', MODES.join(' | '), oneOf('mode', MODES))
    .action(async (mode: BarrierMode, _o: unknown, c: Command) => {
      await runCommand(opts(c), { type: 'SET_MODE', mode });
    });
  barrier
    .command('status')
    .description("print the board's status, this link's session id and whether the board speaks sessions")
    .action(async (_o: unknown, c: Command) =>
      withLink(opts(c), async (link, events) => {
        // The link's own resync already asked for status: its answer is the first STATUS.
        const s = events.find((e) => e.type === 'STATUS');
        console.log(JSON.stringify({ ...s, session: sessionHex(link.session), boardSessions: link.boardSupportsSessions ?? null }));
        return 0;
      }),
    );
  barrier
    .command('monitor')
    .description('print every event (and with --trace every frame) until Ctrl-C')
    .action(async (_o: unknown, c: Command) =>
      withLink(
        opts(c),
        async (link) => {
          console.error('monitoring; Ctrl-C to stop');
          await new Promise<void>((r) => process.once('SIGINT', () => r()));
          console.log(JSON.stringify({ counters: link.counters }));
          return 0;
        },
        (e) => console.log(`${new Date().toISOString()} ${JSON.stringify(e)}`),
      ),
    );

  program
    .command('barrier-sim')
    .description('run a virtual barrier board on a pty or serial device; switches from stdin (type "help")')
    .requiredOption('--port <path>', 'device or pty link the board listens on')
    .option('--baud <n>', 'baud rate', intOption('--baud'), '115200')
    .option('--fail-safe <state>', 'safe state after heartbeat silence: open or locked', oneOf('--fail-safe', ['open', 'locked'] as const), 'open')
    .option('--fail-safe-after <ms>', 'heartbeat silence before the fail-safe', intOption('--fail-safe-after'), '1000')
    .option('--seed <n>', 'seed of the byte-fault generator', intOption('--seed'), '1')
    .option('--no-sessions', 'play a board built before sessions (answers SESSION with NACK unsupported)')
    .option('--trace', 'print every frame in and out')
    .action(async (o: { port: string; baud: string; failSafe: 'open' | 'locked'; failSafeAfter: string; seed: string; sessions: boolean; trace?: boolean }) => {
      const { BarrierBoard } = await import('../../simulator/barrier-board.js');
      const board = new BarrierBoard({
        path: o.port,
        baudRate: positiveInt(o.baud, '--baud'),
        failSafeAfterMs: positiveInt(o.failSafeAfter, '--fail-safe-after'),
        seed: positiveInt(o.seed, '--seed'),
        sessions: o.sessions,
        mechanics: { failSafe: o.failSafe },
        trace: o.trace ? (dir, f) => console.log(`${dir === 'in' ? '<-' : '->'} ${describeFrame(f)}`) : undefined,
      });
      board.barrier.onCommand((c) => console.log(`command ${JSON.stringify(c)}`));
      await board.start();
      console.error(`virtual barrier board on ${o.port}; type "help" for switches`);
      const help =
        'walk entry|exit [tailgate] · fire on|off · stuck on|off · sensor on|off · emergency on|off · power mains|battery|low-battery · ' +
        'silent on|off · drop|corrupt|duplicate|delay in|out RATE · drop-answers|drop-commands all|SESSION|OPEN|CLOSE|SET_MODE|INDICATE|DISPLAY|DISPLAY_DATE|STATUS_REQUEST|off · ' +
        'obstruct on|off · state · quit';
      const rl = createInterface({ input: process.stdin });
      for await (const line of rl) {
        const [w, a, b] = line.trim().split(/\s+/);
        const on = a === 'on';
        try {
          switch (w) {
            case '':
              break;
            case 'help':
              console.log(help);
              break;
            case 'walk':
              board.barrier.walkThrough(a === 'exit' ? 'exit' : 'entry', { tailgater: b === 'tailgate' });
              break;
            case 'fire':
              board.setFireAlarm(on);
              break;
            case 'stuck':
              board.setStuckFlap(on);
              break;
            case 'sensor':
              board.setSensorFault(on);
              break;
            case 'emergency':
              board.emergencyButton(on);
              break;
            case 'power':
              if (a !== 'mains' && a !== 'battery' && a !== 'low-battery') throw new Error('power mains|battery|low-battery');
              board.power(a);
              break;
            case 'silent':
              board.faults.silent = on;
              break;
            case 'obstruct':
              board.barrier.obstructed = on;
              break;
            case 'drop':
            case 'corrupt':
            case 'duplicate':
            case 'delay': {
              if (a !== 'in' && a !== 'out') throw new Error(`${w} in|out RATE`);
              const rate = Number(b);
              if (!(rate >= 0 && rate <= 1)) throw new Error('RATE is 0..1');
              board.setLineFaults(a, { [w]: rate });
              break;
            }
            case 'drop-answers':
            case 'drop-commands': {
              const kinds = ['all', 'SESSION', 'OPEN', 'CLOSE', 'SET_MODE', 'INDICATE', 'DISPLAY', 'DISPLAY_DATE', 'STATUS_REQUEST'] as const;
              if (a !== 'off' && !kinds.includes(a as (typeof kinds)[number])) throw new Error(`${w} ${kinds.join('|')}|off`);
              board.faults[w === 'drop-answers' ? 'dropAnswers' : 'dropCommands'] = a === 'off' ? undefined : (a as (typeof kinds)[number]);
              break;
            }
            case 'state': {
              const v = board.barrier;
              const session = board.session;
              console.log(
                JSON.stringify({
                  flaps: v.flaps,
                  mode: v.mode,
                  fireAlarm: v.fireAlarm,
                  faultCode: v.faultCode,
                  session: { id: sessionHex(session.id), lastExecuted: session.lastExecuted ?? null },
                  counts: v.counts,
                  board: board.counts,
                  line: board.lineCounts,
                }),
              );
              break;
            }
            case 'quit':
              rl.close();
              break;
            default:
              console.log(`unknown "${w}"; ${help}`);
          }
        } catch (e) {
          console.log((e as Error).message);
        }
      }
      await board.stop();
    });
}
