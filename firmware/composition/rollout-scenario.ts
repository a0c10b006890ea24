// `gate sim --scenario rollout-2022`: the scenario (simulator/scenarios/) against N real lanes on its
// virtual clock. Each lane is built from config as `gate run` builds one: lists and the enforcement
// schedule synced from the scenario's back office over HTTP (`http-sync`, its own list directory, its own
// poll timer, started a poll interval apart from the others), the installed schedule as its
// `policy.scheduleFile`, typed barrier boards, card readers and signed QR codes. Virtual time moves on only
// once every lane's sync round has finished.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Direction } from '../../protocol/credential.js';
import type { CredentialSource } from '../../drivers/seams.js';
import { SimulatedBarrierLink, SimulatedSource } from '../../drivers/simulated.js';
import { DEFAULT_ROLLOUT, RolloutRun, type RolloutLane, type RolloutOptions, type RolloutSummary } from '../../simulator/scenarios/rollout-run.js';
import type { RiderPresenter } from '../../simulator/station.js';
import { DEFAULT_MECHANICS, VirtualBarrier } from '../../simulator/virtual-barrier.js';
import { VirtualClock } from '../../simulator/virtual-clock.js';
import { Random } from '../../simulator/population.js';
import { ConfigError, parseLaneConfig } from '../config/config.js';
import { silentLogger, type Logger } from '../config/log.js';
import { MemoryJournal } from '../journal/journal.js';
import type { ListSync } from '../lists/list-sync.js';
import { MemoryPassback, MemoryUsedCodes } from '../verify/decision-core.js';
import { signedQrWiring, simIssuers } from './sim-qr-camera.js';
import { laneDirection } from './simulated-station.js';
import { startLane, type Lane } from './start-lane.js';

/** The scenarios `gate sim --scenario` knows. */
export const SCENARIOS = ['rollout-2022'] as const;

export interface RolloutSimOptions extends Partial<RolloutOptions> {
  lanes?: number;
  log?: Logger;
}

export interface RolloutSimSummary extends RolloutSummary {
  lanes: { id: string; direction: string; scheduleSeq?: number; listVersion: number; alarms: Record<string, number> }[];
  /** What the lanes' journals hold: decisions, and advise grants among them (each with its reason). */
  journal: { decisions: number; adviseRegister: number };
}

export async function runRolloutScenario(opts: RolloutSimOptions = {}): Promise<RolloutSimSummary> {
  const n = opts.lanes ?? 4;
  if (!Number.isInteger(n) || n < 1 || n > 16) throw new ConfigError(`--lanes must be 1-16 for a scenario, got ${n}`);
  const o: RolloutOptions = { ...DEFAULT_ROLLOUT, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  if (!Number.isInteger(o.riders) || o.riders < 0 || o.riders > 100_000) throw new ConfigError(`--passengers must be 0-100000 for a scenario, got ${o.riders}`);
  const log = opts.log ?? silentLogger;
  const clock = new VirtualClock(o.fromMs);
  const dir = await mkdtemp(join(tmpdir(), 'gate-rollout-'));
  const scenario = await RolloutRun.open(clock, o);
  const lanes: Lane[] = [];
  const journals: MemoryJournal[] = [];
  const alarms: Record<string, number>[] = [];
  const syncs: ListSync[] = [];
  // Virtual time waits for every lane's sync round (real HTTP) before it moves on.
  const settle = async () => {
    const deadline = performance.now() + 60_000;
    for (;;) {
      for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
      if (syncs.every((s) => s.idle)) return;
      if (performance.now() > deadline) throw new Error('a lane\'s list sync round did not finish within 60 s');
    }
  };
  try {
    const scheduleFile = join(dir, 'schedule.json');
    await writeFile(scheduleFile, scenario.installed);
    const usedCodes = new MemoryUsedCodes();
    const { rideCodes } = simIssuers();
    const rolloutLanes: RolloutLane[] = [];
    let passback: MemoryPassback | undefined;
    const phase = new Random(o.seed ^ 0x70a11);
    for (let i = 0; i < n; i++) {
      // Lanes poll out of step, as gates started at different times do: lane i starts at a seeded point of
      // the i-th n-th of the first poll interval.
      const startAt = o.fromMs + Math.floor((o.pollEveryMs * (i + phase.next())) / n);
      while (clock.step(startAt)) await settle();
      clock.advanceTo(startAt);
      const id = `L${String(i + 1).padStart(2, '0')}`;
      const direction = laneDirection(i, n);
      const config = parseLaneConfig({
        lane: { id, station: 'SIM', direction },
        lists: { type: 'http-sync', url: scenario.url, dir: join(dir, id), publicKeys: [scenario.bo.publicKeyPem], pollSeconds: o.pollEveryMs / 1000 },
        policy: { scheduleFile },
      });
      passback ??= new MemoryPassback(config.policy.antiPassbackSeconds * 1000);
      const board = new VirtualBarrier(clock, DEFAULT_MECHANICS);
      const sources: CredentialSource[] = [];
      const presenters: Partial<Record<Direction, RiderPresenter>> = {};
      for (const side of direction === 'bidirectional' ? (['entry', 'exit'] as const) : [direction]) {
        const reader = new SimulatedSource(`sim-reader-${side}`, side, clock);
        const qr = await signedQrWiring(side, { laneIndex: i, laneId: id, direction, clock, log, seed: o.seed, hold: () => {} });
        sources.push(reader, qr.source);
        presenters[side] = {
          present: (c) => (c.kind === 'qr' ? qr.presenter.present(c) : reader.present(c)),
          cardFault: (r, d) => (r === 'qr-malformed' ? qr.presenter.cardFault(r, d) : reader.cardFault(r, d)),
        };
      }
      const journal = new MemoryJournal();
      const lane = await startLane({ config, clock, log: log.child({ lane: id }), barrier: new SimulatedBarrierLink(board, clock), sources, journal, passback, usedCodes, rideCodes });
      lanes.push(lane);
      journals.push(journal);
      const sync = lane.lists as ListSync;
      syncs.push(sync);
      const counts: Record<string, number> = {};
      alarms.push(counts);
      lane.on('alarm', (e) => void (counts[e.alarm.alarm] = (counts[e.alarm.alarm] ?? 0) + 1));
      rolloutLanes.push({
        id,
        direction,
        board,
        entry: presenters.entry,
        exit: presenters.exit,
        admits: (c, nowMs) => {
          const d = lane.core.decide({ presented: { kind: 'credential', credential: c }, side: 'entry', nowMs });
          return d.grant && d.reason === 'ok';
        },
        onListVersion: (fn) => {
          sync.on('version', fn);
          return () => void sync.off('version', fn);
        },
      });
      await settle();
    }
    scenario.attach(rolloutLanes);
    const summary = await scenario.run(settle);
    const decisions = journals.flatMap((j) => j.records.map((r) => r.entry).filter((e) => e.type === 'decision'));
    return {
      ...summary,
      lanes: lanes.map((l, i) => ({ id: l.id, direction: l.config.lane.direction, scheduleSeq: l.view().schedule?.seq, listVersion: l.view().listVersion, alarms: alarms[i] })),
      journal: { decisions: decisions.length, adviseRegister: decisions.filter((e) => e.type === 'decision' && e.reason === 'advise-register').length },
    };
  } finally {
    await Promise.allSettled(lanes.map((l) => l.stop()));
    await scenario.close();
    await rm(dir, { recursive: true, force: true });
  }
}
