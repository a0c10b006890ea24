import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadLaneConfig, parseLaneConfig } from '../../firmware/config/config.js';
import { startLane } from '../../firmware/composition/start-lane.js';

describe('lane config', () => {
  it('embedded defaults fill everything but the lane id', () => {
    const c = parseLaneConfig({ lane: { id: 'L1' } });
    expect(c.timeouts.passageMs).toBe(8000);
    expect(c.policy.exit).toMatchObject({ green: true, yellow: true, red: true });
    expect(c.drivers.barrier.type).toBe('simulated');
  });

  it('names every bad field and why', () => {
    try {
      parseLaneConfig({ lane: { id: 'bad id', direction: 'up' }, timeouts: { passageMs: 'soon' }, policy: { exit: { green: true, yellow: false, red: true, unregistered: true, blocked: false } } });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const paths = (e as ConfigError).issues.map((i) => i.path);
      expect(paths).toEqual(expect.arrayContaining(['lane.id', 'lane.direction', 'timeouts.passageMs', 'policy.exit']));
      expect((e as Error).message).toMatch(/trap a rider inside/);
    }
  });

  it('rejects unknown fields in strict sections (typos do not pass silently)', () => {
    expect(() => parseLaneConfig({ lane: { id: 'L1' }, timeouts: { pasageMs: 1 } })).toThrow(/pasageMs/);
  });

  it('a file that is missing, not JSON, or not an object gets a ConfigError', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatecfg-'));
    expect(() => loadLaneConfig(join(dir, 'none.json'))).toThrow(ConfigError);
    writeFileSync(join(dir, 'broken.json'), '{ "lane": ');
    expect(() => loadLaneConfig(join(dir, 'broken.json'))).toThrow(/not valid JSON/);
    writeFileSync(join(dir, 'array.json'), '[]');
    expect(() => loadLaneConfig(join(dir, 'array.json'))).toThrow(ConfigError);
  });

  it('unknown driver names fail at start-up listing the known ones', async () => {
    for (const [section, value, seam] of [
      ['barrier', { type: 'rs999' }, 'barrier'],
      ['sources', [{ type: 'telepathy', side: 'entry' }], 'credential source'],
    ] as const) {
      const cfg = parseLaneConfig({ lane: { id: 'L1' }, drivers: { [section]: value } });
      await expect(startLane({ config: cfg })).rejects.toThrow(new RegExp(`unknown ${seam} driver .*known: .*simulated`));
    }
    await expect(startLane({ config: parseLaneConfig({ lane: { id: 'L1' }, lists: { type: 'cloud' } }) })).rejects.toThrow(/unknown lists driver "cloud"; known: memory/);
    await expect(startLane({ config: parseLaneConfig({ lane: { id: 'L1' }, journal: { type: 'paper' } }) })).rejects.toThrow(/unknown journal driver/);
  });
});
