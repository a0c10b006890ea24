// One error class with codes (protocol/errors.ts): every error the runtime throws on purpose is a
// GateError whose code callers branch on; the named classes callers know stay (thin subclasses).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame, FrameEncodeError } from '../../protocol/barrier-frame.js';
import { GateError, GateErrorCode, isGateError } from '../../protocol/errors.js';
import { ConfigError, loadLaneConfig, parseLaneConfig } from '../../firmware/config/config.js';
import { pickDriver, barrierDrivers } from '../../firmware/composition/registry.js';
import { FileJournal, JournalUnavailableError } from '../../firmware/journal/file-journal.js';
import { ListFileError, loadListFile } from '../../firmware/lists/stored-lists.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'errors-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function caught(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

describe('GateError codes', () => {
  it('config errors: code config, the ConfigError name kept, every bad field in issues and context', () => {
    const missing = caught(() => loadLaneConfig(join(tmp(), 'none.json')));
    expect(isGateError(missing, GateErrorCode.Config)).toBe(true);
    expect(missing).toBeInstanceOf(ConfigError);
    expect(missing).toBeInstanceOf(GateError);
    expect((missing as Error).message).toMatch(/^cannot read config file .*none\.json/);

    const bad = caught(() => parseLaneConfig({ lane: { id: 'L1', direction: 'sideways' }, timeouts: { passageMs: -1 } }));
    expect(isGateError(bad, GateErrorCode.Config)).toBe(true);
    expect(isGateError(bad, GateErrorCode.JournalUnavailable)).toBe(false);
    const paths = (bad as ConfigError).issues.map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['lane.direction', 'timeouts.passageMs']));
    expect((bad as GateError).context.issues).toEqual((bad as ConfigError).issues);

    const unknown = caught(() => pickDriver(barrierDrivers, 'barrier', 'telepathic'));
    expect(isGateError(unknown, GateErrorCode.Config)).toBe(true);
    expect((unknown as Error).message).toBe('unknown barrier driver "telepathic"; known: simulated, serial');
  });

  it('journal unavailable: code journal-unavailable with the reason, for a closed journal', async () => {
    const j = await FileJournal.open({ dir: tmp(), laneId: 'L1' });
    await j.close();
    const err = await j.append({ type: 'mode', laneId: 'L1', atMs: 1, from: 'normal', to: 'closed', cause: 'test' }).catch((e: unknown) => e);
    expect(isGateError(err, GateErrorCode.JournalUnavailable)).toBe(true);
    expect(err).toBeInstanceOf(JournalUnavailableError);
    expect((err as JournalUnavailableError).reason).toBe('closed');
    expect((err as GateError).context).toMatchObject({ reason: 'closed' });
    expect((err as Error).message).toBe('journal is closed');
  });

  it('a damaged list file: code list-file, the ListFileError name and its reason kept', async () => {
    const file = join(tmp(), 'lists.snap');
    writeFileSync(file, Buffer.from('not a list file at all'));
    const err = await loadListFile(file).catch((e: unknown) => e);
    expect(isGateError(err, GateErrorCode.ListFile)).toBe(true);
    expect(err).toBeInstanceOf(ListFileError);
    expect(err).toMatchObject({ name: 'ListFileError', code: 'list-file' });
    expect((err as ListFileError).reason).toMatch(/^list-file-/);
  });

  it('a frame built wrong: code frame-encode', () => {
    const err = caught(() => encodeFrame({ type: 'COMMAND', seq: 300, command: { type: 'CLOSE' } }));
    expect(isGateError(err, GateErrorCode.FrameEncode)).toBe(true);
    expect(err).toBeInstanceOf(FrameEncodeError);
    expect((err as Error).message).toMatch(/must be 0\.\.255, got 300/);
  });
});
