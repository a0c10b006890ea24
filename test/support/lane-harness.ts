// A lane on virtual time with a virtual barrier, simulated entry/exit sources, in-memory lists and
// journal: the one-call setup for machine and decision tests.
import { SimulatedBarrierLink, SimulatedSource } from '../../drivers/simulated.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { MemoryJournal } from '../../firmware/journal/journal.js';
import { startLane, type Lane } from '../../firmware/composition/start-lane.js';
import { MemoryLists, type BindingStatus } from '../../firmware/lists/list-provider.js';
import type { BarrierCommand } from '../../protocol/barrier.js';
import { VirtualClock } from '../../simulator/virtual-clock.js';
import { VirtualBarrier } from '../../simulator/virtual-barrier.js';
import type { RideCodeVerifier } from '../../firmware/verify/decision-core.js';
import type { Journal } from '../../firmware/journal/journal.js';
import type { InspectionEvent } from 'xstate';
import type { RecordOverrides } from '../../firmware/recording/recorder.js';

export interface LaneHarness {
  lane: Lane;
  clock: VirtualClock;
  board: VirtualBarrier;
  entry: SimulatedSource;
  exit: SimulatedSource;
  lists: MemoryLists;
  journal: Journal;
  commands: BarrierCommand[];
  /** Let promise callbacks (journal appends) run. */
  settle(): Promise<void>;
  /** Advance virtual time, settling promises between timers. */
  advance(ms: number): Promise<void>;
  register(key: string, status: BindingStatus): void;
  state(): string;
}

export async function laneHarness(
  overrides: Record<string, unknown> = {},
  opts: { rideCodes?: RideCodeVerifier; journal?: Journal; inspect?: (e: InspectionEvent) => void; record?: RecordOverrides } = {},
): Promise<LaneHarness> {
  const clock = new VirtualClock();
  const config = parseLaneConfig({ lane: { id: 'L1', direction: 'bidirectional' }, ...overrides });
  const board = new VirtualBarrier(clock);
  const commands: BarrierCommand[] = [];
  board.onCommand((c) => commands.push(c));
  const entry = new SimulatedSource('sim-entry', 'entry', clock);
  const exit = new SimulatedSource('sim-exit', 'exit', clock);
  const lists = new MemoryLists(clock.now());
  const journal = opts.journal ?? new MemoryJournal();
  const lane = await startLane({ config, clock, barrier: new SimulatedBarrierLink(board, clock), sources: [entry, exit], lists, journal, rideCodes: opts.rideCodes, inspect: opts.inspect, record: opts.record });
  const settle = async () => {
    for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
  };
  const advance = async (ms: number) => {
    const until = clock.now() + ms;
    await settle();
    while (clock.step(until)) await settle();
    clock.advanceTo(until);
    await settle();
  };
  const h: LaneHarness = {
    lane, clock, board, entry, exit, lists, journal, commands, settle, advance,
    register: (key, status) => lists.allowlist.set(key, status),
    state: () => lane.view().state,
  };
  await advance(0);
  return h;
}
