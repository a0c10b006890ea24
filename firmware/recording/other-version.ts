// What `gate replay --config FILE --lists FILE` compares the recording with: another lane config's policy,
// direction and enforcement schedule, and another signed list snapshot. Timeouts stay the recording's: the
// lane's events are the recorded ones, so only what decides a presentation can be put beside them.

import { trustedListKey, type TrustedListKey } from '../../protocol/lists/index.js';
import { loadLaneConfig, ConfigError, type LaneConfig } from '../config/config.js';
import { ListFileError, loadListFile } from '../lists/stored-lists.js';
import { GateError } from '../../protocol/errors.js';
import { policyStagesFromFile } from '../verify/policy-schedule.js';
import type { OtherVersion } from './replay-core.js';

export interface OtherVersionFiles {
  config?: string;
  lists?: string;
}

/** The other version, with notes for the report (what was taken from where, what could not be checked). */
export async function otherVersionFrom(files: OtherVersionFiles): Promise<{ other: OtherVersion; notes: string[] } | undefined> {
  if (files.config === undefined && files.lists === undefined) return undefined;
  const notes: string[] = [];
  const label = [files.config && `--config ${files.config}`, files.lists && `--lists ${files.lists}`].filter(Boolean).join(' ');
  const other: OtherVersion = { label };
  let config: LaneConfig | undefined;
  let keys: TrustedListKey[] | null = null;
  if (files.config !== undefined) {
    config = loadLaneConfig(files.config);
    other.policy = config.policy;
    other.lane = { id: config.lane.id, direction: config.lane.direction };
    const publicKeys = (config.lists as { publicKeys?: unknown }).publicKeys;
    if (Array.isArray(publicKeys)) {
      try {
        keys = publicKeys.filter((k): k is string => typeof k === 'string').map(trustedListKey);
      } catch (e) {
        throw new ConfigError(`${files.config}: lists.publicKeys: ${(e as Error).message}`);
      }
    }
    if (config.policy.scheduleFile !== undefined) {
      let refused: string | undefined;
      other.stages = policyStagesFromFile(config.policy.scheduleFile, keys ?? [], (a) => (refused = 'detail' in a ? String(a.detail) : a.alarm));
      other.stagesLabel = `${files.config}'s schedule ${config.policy.scheduleFile}`;
      if (refused !== undefined) notes.push(`the enforcement schedule ${config.policy.scheduleFile} was refused (${refused}): every kind enforced under ${files.config}`);
    } else other.stages = null;
    notes.push(`under ${files.config}: its policy and enforcement schedule, and lane ${config.lane.id}'s direction for lane ${config.lane.id}'s recording; the recording's timeouts and events`);
  }
  if (files.lists !== undefined) {
    let lists: Awaited<ReturnType<typeof loadListFile>>;
    try {
      lists = await loadListFile(files.lists, keys);
    } catch (e) {
      if (e instanceof ListFileError) throw new ListFileError(e.reason, `--lists ${e.message}`);
      if (e instanceof GateError) throw e;
      throw new ConfigError(`--lists ${files.lists}: cannot read it: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    other.lists = { current: () => lists };
    other.listsLabel = files.lists;
    notes.push(keys ? `${files.lists}: signature checked with ${files.config}'s lists.publicKeys` : `${files.lists}: signature not checked (give --config with lists.publicKeys to check it)`);
  }
  return { other, notes };
}
