// Decision core throughput with 1 M registered credentials, and what the XState machine costs per
// passage cycle compared with a hand-written switch doing the same work on the same clock.
import { createActor, fromCallback } from 'xstate';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { decide, type DeciderDeps } from '../../firmware/lane/decider.js';
import { DecisionCore } from '../../firmware/verify/decision-core.js';
import { gateMachine, type DecideRequest } from '../../firmware/lane/gate-machine.js';
import { MemoryJournal, type Journal, type JournalEntry } from '../../firmware/journal/journal.js';
import type { ListProvider } from '../../firmware/lists/list-provider.js';
import { openSnapshot } from '../../firmware/lists/stored-lists.js';
import { ListBuilder, statusByte } from '../../protocol/lists/index.js';
import type { BarrierCommand } from '../../protocol/barrier.js';
import { credentialKey, type Credential } from '../../protocol/credential.js';
import type { Clock } from '../../drivers/seams.js';
import { fmt, interleaved, percentile, summary, type BenchReport } from './report.js';

const N = 1_000_000;
const T0 = Date.UTC(2022, 4, 20, 8);

/**
 * 1 M registered credentials in the production list store (off the V8 heap, as on a gate), half cards and
 * half QR accounts, every tenth one yellow.
 */
async function population(): Promise<{ lists: ListProvider; creds: Credential[] }> {
  const b = new ListBuilder(N);
  const creds: Credential[] = [];
  for (let i = 0; i < N; i++) {
    const c: Credential = i % 2 === 0 ? { kind: 'card', cardNumber: `31041000${String(i).padStart(11, '0')}` } : { kind: 'qr', issuer: 'alipay', account: `acct${i}` };
    creds.push(c);
    b.set(credentialKey(c), statusByte(i % 10 === 3 ? 'yellow' : 'green', false));
  }
  const opened = await openSnapshot(b.build({ version: 1, publishedAtMs: T0 }), null);
  if (!opened.ok) throw new Error(`bench list did not open: ${opened.detail}`);
  const stored = opened.value;
  return { lists: { current: () => stored }, creds };
}

/** A clock whose timers never fire: both contenders pay for scheduling and cancelling, nothing else. */
function inertClock(): Clock {
  let id = 0;
  return { now: () => T0, setTimeout: () => ++id, clearTimeout: () => {} };
}

export async function run(r: BenchReport): Promise<void> {
  const { lists, creds } = await population();
  const cfg = parseLaneConfig({ lane: { id: 'B', direction: 'bidirectional' }, policy: { antiPassbackSeconds: 0 } });
  const core = new DecisionCore('bidirectional', cfg.policy, { lists });

  // 1. Decision core alone.
  const M = 1_000_000;
  let sink = 0;
  const t0 = performance.now();
  for (let i = 0; i < M; i++) {
    const c = creds[(i * 7919) % N];
    sink += core.decide({ presented: { kind: 'credential', credential: c }, side: i & 1 ? 'exit' : 'entry', nowMs: T0 }).grant ? 1 : 0;
  }
  const secs = (performance.now() - t0) / 1000;
  const one: number[] = [];
  for (let i = 0; i < 100_000; i++) {
    const c = creds[(i * 104729) % N];
    const s = performance.now();
    core.decide({ presented: { kind: 'credential', credential: c }, side: 'entry', nowMs: T0 });
    one.push((performance.now() - s) * 1000);
  }
  r.row({ section: 'decision', metric: `decision core, ${N / 1e6} M registered (off-heap list store), one core`, value: M / secs, unit: 'decisions/s', note: `sink ${sink}` });
  r.row({ section: 'decision', metric: 'one decision p50', value: percentile(one, 50), unit: 'µs' });
  r.row({ section: 'decision', metric: 'one decision p99', value: percentile(one, 99), unit: 'µs' });

  // 2. A full passage cycle through the XState machine vs a hand-written switch: repeated runs, interleaved
  // with the order alternating (machine, switch; switch, machine; …), medians with their min–max.
  const cycles = 20_000;
  const rounds = Number(process.env.DECISION_BENCH_RUNS ?? 6);
  const runs = await interleaved(rounds, () => machineCycles(core, creds, cycles), () => switchCycles(core, creds, cycles));
  const machine = summary(runs.a);
  const hand = summary(runs.b);
  // The overhead of each round against the switch run beside it (paired), then the median of those.
  const overhead = summary(runs.a.map((m, k) => m - runs.b[k]));
  const ratios = summary(runs.a.map((m, k) => m / runs.b[k]));
  r.row({
    section: 'decision',
    metric: 'passage cycle (tap → decide+journal → OPEN → passed → CLOSE → closed → ready), XState machine',
    value: machine.median,
    spread: machine.spread,
    unit: 'µs/cycle',
    peer: { name: 'hand-written switch', value: hand.median, spread: hand.spread },
    note: `${cycles} cycles a run, ${rounds} runs each, interleaved A B / B A; per-run ratio ${fmt(ratios.median)} [${fmt(ratios.spread.min)}–${fmt(ratios.spread.max)}]`,
  });
  r.row({ section: 'decision', metric: 'machine overhead per passage cycle (machine run − the switch run beside it)', value: overhead.median, spread: overhead.spread, unit: 'µs', target: '< 20 µs' });
}

function machineCycles(core: DecisionCore, creds: Credential[], cycles: number): number {
  const clock = inertClock();
  const records: JournalEntry[] = [];
  // An instant journal: append is durable at once and its answer arrives synchronously (a thenable), so the
  // machine does the same work as the switch below — decide, record, commit — with no promise tick between.
  const journal: Journal = {
    append: (entry) => {
      records.push(entry);
      return { then: (ok: (n: number) => void) => ok(records.length) } as unknown as Promise<number>;
    },
    close: async () => {},
  };
  const deps: DeciderDeps = { laneId: 'B', core, journal, clock };
  let cmds = 0;
  const m = gateMachine.provide({
    actors: {
      barrier: fromCallback<{ type: 'none' }, any>(() => {}),
      source: fromCallback(() => {}),
    },
  });
  const cfg = parseLaneConfig({ lane: { id: 'B' } });
  const actor = createActor(m, { clock, input: { laneId: 'B', direction: 'bidirectional', timeouts: cfg.timeouts, now: () => T0, barrier: { send: () => void cmds++, start: async () => {}, stop: async () => {} }, sources: [], decider: deps } });
  actor.start();
  actor.send({ type: 'LINK', up: true });
  const once = (i: number) => {
    const c = creds[(i * 2) % creds.length]; // cards, green or yellow
    actor.send({ type: 'PRESENTED', presented: { kind: 'credential', credential: c }, side: 'exit', source: 's', atMs: T0 });
    actor.send({ type: 'PASSED', direction: 'exit' });
    actor.send({ type: 'FLAPS', position: 'closed' });
    records.length = 0;
  };
  for (let i = 0; i < 2000; i++) once(i);
  const t0 = performance.now();
  for (let i = 0; i < cycles; i++) once(i);
  const us = ((performance.now() - t0) * 1000) / cycles;
  // Every cycle must really open and close: OPEN, DISPLAY, INDICATE, CLOSE, DISPLAY, INDICATE.
  if (cmds < 6 * cycles) throw new Error(`machine sent ${cmds} commands for ${cycles} cycles: the cycle did not run`);
  actor.stop();
  return us;
}

/** The same lane logic as a plain switch: what the machine's cost is compared against. */
function switchCycles(core: DecisionCore, creds: Credential[], cycles: number): number {
  const clock = inertClock();
  const journal = new MemoryJournal();
  const deps: DeciderDeps = { laneId: 'B', core, journal, clock };
  let state: 'ready' | 'granted' | 'closing' | 'denied' = 'ready';
  let timer: unknown;
  let cmds = 0;
  let seq = 0;
  const send = (_c: BarrierCommand) => void cmds++;
  const handle = (e: { type: string; credential?: Credential }) => {
    switch (state) {
      case 'ready':
      case 'denied':
        if (e.type === 'PRESENTED') {
          clock.clearTimeout(timer);
          const req: DecideRequest = { type: 'DECIDE', id: ++seq, presented: { kind: 'credential', credential: e.credential! }, side: 'exit', source: 's', atMs: T0 };
          const d = decide(deps, req);
          journal.records.push({ seq: 0, entry: { type: 'decision', laneId: 'B', atMs: T0, direction: d.direction, kind: d.kind, ref: d.ref, grant: d.grant, reason: d.reason, source: 's' } });
          core.commit(d, T0);
          if (d.grant) {
            state = 'granted';
            send({ type: 'OPEN', direction: d.direction, passages: 1 });
            send({ type: 'DISPLAY', textId: 1 });
            send({ type: 'INDICATE', indicator: 'green-arrow', buzzer: 'off' });
            timer = clock.setTimeout(() => {}, 8000);
          } else {
            state = 'denied';
            send({ type: 'DISPLAY', textId: 11 });
            send({ type: 'INDICATE', indicator: 'red-cross', buzzer: 'short' });
            timer = clock.setTimeout(() => {}, 1500);
          }
        }
        break;
      case 'granted':
        if (e.type === 'PASSED') {
          clock.clearTimeout(timer);
          state = 'closing';
          send({ type: 'CLOSE' });
          timer = clock.setTimeout(() => {}, 3000);
        }
        break;
      case 'closing':
        if (e.type === 'FLAPS') {
          clock.clearTimeout(timer);
          state = 'ready';
          send({ type: 'DISPLAY', textId: 0 });
          send({ type: 'INDICATE', indicator: 'green-arrow', buzzer: 'off' });
        }
        break;
    }
  };
  const once = (i: number) => {
    handle({ type: 'PRESENTED', credential: creds[(i * 2) % creds.length] });
    handle({ type: 'PASSED' });
    handle({ type: 'FLAPS' });
    journal.records.length = 0;
  };
  for (let i = 0; i < 2000; i++) once(i);
  const t0 = performance.now();
  for (let i = 0; i < cycles; i++) once(i);
  return ((performance.now() - t0) * 1000) / cycles;
}
