// The list and journal drivers as a lane config names them (registry → list-drivers.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../firmware/lists/stored-lists.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { startLane } from '../../firmware/composition/start-lane.js';
import { journalDrivers, listDrivers } from '../../firmware/composition/registry.js';
import { silentLogger } from '../../firmware/config/log.js';
import { systemClock } from '../../drivers/seams.js';
import { ListBuilder, signList } from '../../protocol/lists/index.js';
import { Backoffice } from '../../simulator/backoffice/server.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('list and journal drivers from config', () => {
  it('file, http-sync and the file journal start from a lane config; bad sections name the field', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'drivers-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const bo = new Backoffice({ db: ':memory:' });
    const { url } = await bo.listen(0);
    cleanups.push(() => bo.close());
    const config = parseLaneConfig({ lane: { id: 'L9' } });
    const ctx = { laneId: 'L9', clock: systemClock, log: silentLogger, config };

    const b = new ListBuilder();
    b.set('card:3104100012345678903', 1);
    const file = join(dir, 'provisioned.snap');
    await writeFileAtomic(file, b.build({ version: 4, publishedAtMs: 1 }));
    const fileLists = await listDrivers.file({ type: 'file', path: file }, ctx);
    expect(fileLists.current().version).toBe(4);
    expect(fileLists.current().allowlist.lookup('card:3104100012345678903')).toBe('green');
    // Demanding a signature: this provisioned file has none.
    await expect(listDrivers.file({ type: 'file', path: file, publicKeys: [bo.publicKeyPem] }, ctx)).rejects.toThrow(/unknown key/);
    await writeFileAtomic(file, signList(b.build({ version: 4, publishedAtMs: 1 }), bo['key']));
    expect((await listDrivers.file({ type: 'file', path: file, publicKeys: [bo.publicKeyPem] }, ctx)).current().version).toBe(4);

    await expect(listDrivers['http-sync']({ type: 'http-sync', url, dir: join(dir, 'l') }, ctx)).rejects.toThrow(/lists\.publicKeys/);
    await expect(listDrivers['http-sync']({ type: 'http-sync', url: 'not a url', dir: join(dir, 'l'), publicKeys: [bo.publicKeyPem] }, ctx)).rejects.toThrow(/lists\.url/);
    await expect(journalDrivers.file({ type: 'file' }, ctx)).rejects.toThrow(/journal\.dir/);

    const lane = await startLane({
      config: parseLaneConfig({
        lane: { id: 'L9' },
        lists: { type: 'http-sync', url, dir: join(dir, 'lists'), publicKeys: [bo.publicKeyPem], pollSeconds: 0.05 },
        journal: { type: 'file', dir: join(dir, 'journal'), uploadUrl: url },
      }),
    });
    cleanups.push(() => lane.stop());
    expect(lane.view().state).toBeDefined();
  });

});
