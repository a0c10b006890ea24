// One lane on virtual time that records itself (gate run --record's path through startLane): a virtual
// barrier, simulated entry/exit readers, in-memory lists, and a journal whose durability the test controls.
import { mkdtempSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimulatedBarrierLink, SimulatedSource } from '../../drivers/simulated.js';
import { parseLaneConfig, type LaneConfig } from '../../firmware/config/config.js';
import type { Journal, JournalEntry } from '../../firmware/journal/journal.js';
import { startLane, type Lane } from '../../firmware/composition/start-lane.js';
import { MemoryLists, type BindingStatus } from '../../firmware/lists/list-provider.js';
import type { RecordOverrides } from '../../firmware/recording/recorder.js';
import { recordingKey, type RecordingKey } from '../../protocol/recording.js';
import type { Credential } from '../../protocol/credential.js';
import { VirtualClock } from '../../simulator/virtual-clock.js';
import { VirtualBarrier } from '../../simulator/virtual-barrier.js';

/** A journal whose durability the test sets: at once, held until released, or failing. Every decision asked is kept. */
export class ControlledJournal implements Journal {
  mode: 'instant' | 'hold' | 'fail' = 'instant';
  readonly asked: Extract<JournalEntry, { type: 'decision' }>[] = [];
  private held: (() => void)[] = [];
  private seq = 0;
  append(entry: JournalEntry): Promise<number> {
    if (entry.type === 'decision') this.asked.push(entry);
    if (this.mode === 'fail') return Promise.reject(new Error('ENOSPC: no space left on device'));
    const seq = ++this.seq;
    if (this.mode === 'hold') return new Promise((r) => this.held.push(() => r(seq)));
    return Promise.resolve(seq);
  }
  release(): void {
    const h = this.held;
    this.held = [];
    h.forEach((f) => f());
  }
  async close(): Promise<void> {}
}

export interface RecordedLane {
  lane: Lane;
  config: LaneConfig;
  clock: VirtualClock;
  board: VirtualBarrier;
  entry: SimulatedSource;
  exit: SimulatedSource;
  lists: MemoryLists;
  journal: ControlledJournal;
  dir: string;
  key: RecordingKey;
  advance(ms: number): Promise<void>;
  register(c: Credential, status: BindingStatus | 'blocked'): void;
}

export const card = (n: number): Credential => ({ kind: 'card', cardNumber: `31041000123${String(n).padStart(8, '0')}` });

export async function recordedLane(opts: { config?: Record<string, unknown>; record?: RecordOverrides; dir?: string } = {}): Promise<RecordedLane> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'gate-rec-'));
  const key = opts.record?.key ?? recordingKey(randomBytes(32));
  const clock = new VirtualClock();
  const config = parseLaneConfig({ lane: { id: 'L1', direction: 'bidirectional' }, ...opts.config });
  const board = new VirtualBarrier(clock);
  const entry = new SimulatedSource('reader-entry', 'entry', clock);
  const exit = new SimulatedSource('reader-exit', 'exit', clock);
  const lists = new MemoryLists(clock.now());
  const journal = new ControlledJournal();
  const lane = await startLane({ config, clock, barrier: new SimulatedBarrierLink(board, clock), sources: [entry, exit], lists, journal, record: { dir, key, ...opts.record } });
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
  const { credentialKey } = await import('../../protocol/credential.js');
  const register = (c: Credential, status: BindingStatus | 'blocked') => {
    if (status === 'blocked') lists.denylist.block(credentialKey(c));
    else lists.allowlist.set(credentialKey(c), status);
  };
  await advance(10);
  return { lane, config, clock, board, entry, exit, lists, journal, dir, key, advance, register };
}
