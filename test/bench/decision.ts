// Decision core throughput with 1 M registered credentials, and what the XState machine costs per
// passage cycle compared with a hand-written switch doing the same work on the same clock.
import { createActor, fromCallback } from 'xstate';
import { parseLaneConfig } from '../../firmware/config.js';
import { decide, type DeciderDeps } from '../../firmware/decider.js';
import { DecisionCore, type Decision } from '../../firmware/decision.js';
import { gateMachine, type BarrierBatch, type DecideRequest } from '../../firmware/gate-machine.js';
import { MemoryJournal } from '../../firmware/journal.js';
import { MemoryLists } from '../../firmware/lists.js';
import type { BarrierCommand } from '../../protocol/barrier.js';
import type { Credential } from '../../protocol/credential.js';
import type { Clock } from '../../drivers/seams.js';
import { percentile, type BenchReport } from './report.js';

const N = 1_000_000;
const T0 = Date.UTC(2022, 4, 20, 8);

function population(): { lists: MemoryLists; creds: Credential[] } {
  const lists = new MemoryLists(T0);
  const creds: Credential[] = [];
  for (let i = 0; i < N; i++) {
    const c: Credential = i % 2 === 0 ? { kind: 'card', cardNumber: `31041000${String(i).padStart(11, '0')}` } : { kind: 'qr', issuer: 'alipay', account: `acct${i}` };
    creds.push(c);
    lists.allowlist.set(i % 2 === 0 ? `card:${(c as { cardNumber: string }).cardNumber}` : `qr:alipay:acct${i}`, i % 10 === 3 ? 'yellow' : 'green');
  }
  return { lists, creds };
}

/** A clock whose timers never fire: both contenders pay for scheduling and cancelling, nothing else. */
function inertClock(): Clock {
  let id = 0;
  return { now: () => T0, setTimeout: () => ++id, clearTimeout: () => {} };
}

export async function run(r: BenchReport): Promise<void> {
  const { lists, creds } = population();
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
  r.row({ section: 'decision', metric: `decision core, ${N / 1e6} M registered, one core`, value: M / secs, unit: 'decisions/s', note: `sink ${sink}` });
  r.row({ section: 'decision', metric: 'one decision p50', value: percentile(one, 50), unit: 'µs' });
  r.row({ section: 'decision', metric: 'one decision p99', value: percentile(one, 99), unit: 'µs' });

  // 2. A full passage cycle through the XState machine vs a hand-written switch.
  const cycles = 50_000;
  const machineUs = machineCycles(core, creds, cycles);
  const switchUs = switchCycles(core, creds, cycles);
  r.row({
    section: 'decision',
    metric: 'passage cycle (tap → decide+journal → OPEN → passed → CLOSE → closed → ready), XState machine',
    value: machineUs,
    unit: 'µs/cycle',
    peer: { name: 'hand-written switch', value: switchUs },
  });
  r.row({ section: 'decision', metric: 'machine overhead per passage cycle', value: machineUs - switchUs, unit: 'µs', target: '< 20 µs' });
}

function machineCycles(core: DecisionCore, creds: Credential[], cycles: number): number {
  const clock = inertClock();
  const journal = new MemoryJournal();
  const deps: DeciderDeps = { laneId: 'B', core, journal, clock };
  let cmds = 0;
  const m = gateMachine.provide({
    actors: {
      barrier: fromCallback<BarrierCommand | BarrierBatch, any>(() => {}),
      decider: fromCallback<DecideRequest, DeciderDeps>(({ sendBack, receive, input }) => {
        receive((req) => {
          const d: Decision = decide(input, req);
          journal.records.push({ seq: 0, entry: { type: 'decision', laneId: 'B', atMs: T0, direction: d.direction, kind: d.kind, ref: d.ref, grant: d.grant, reason: d.reason, source: req.source } });
          input.core.commit(d, T0);
          sendBack({ type: 'DECIDED', id: req.id, decision: d, source: req.source, atMs: req.atMs });
        });
      }),
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
    journal.records.length = 0;
  };
  for (let i = 0; i < 2000; i++) once(i);
  const t0 = performance.now();
  for (let i = 0; i < cycles; i++) once(i);
  const us = ((performance.now() - t0) * 1000) / cycles;
  if (actor.getSnapshot().value && cmds === 0) throw new Error('machine sent no commands');
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
