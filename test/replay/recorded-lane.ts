// One lane on virtual time that records itself (gate run --record's path through startLane): a virtual
// barrier, simulated entry/exit readers, in-memory lists, and a journal whose durability the test controls.
import { mkdtempSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SimulatedSource } from '../../drivers/simulated.js';
import type { LaneConfig } from '../../firmware/config/config.js';
import { ControlledJournal } from '../support/controlled-journal.js';
import type { Lane } from '../../firmware/composition/start-lane.js';
import type { MemoryLists, BindingStatus } from '../../firmware/lists/list-provider.js';
import type { RecordOverrides } from '../../firmware/recording/recorder.js';
import { recordingKey, type RecordingKey } from '../../protocol/recording.js';
import { credentialKey, type Credential } from '../../protocol/credential.js';
import type { VirtualClock } from '../../simulator/virtual-clock.js';
import type { VirtualBarrier } from '../../simulator/virtual-barrier.js';
import { laneHarness } from '../support/lane-harness.js';


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
  const journal = new ControlledJournal();
  const h = await laneHarness(opts.config, { journal, record: { dir, key, ...opts.record } });
  const register = (c: Credential, status: BindingStatus | 'blocked') => {
    if (status === 'blocked') h.lists.denylist.block(credentialKey(c));
    else h.lists.allowlist.set(credentialKey(c), status);
  };
  await h.advance(10);
  const { lane, clock, board, entry, exit, lists, advance } = h;
  return { lane, config: lane.config, clock, board, entry, exit, lists, journal, dir, key, advance, register };
}
