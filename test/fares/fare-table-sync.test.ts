// The fare table reaches a lane by list sync, against the real back office over HTTP: none published (404)
// is no failure; a published table is verified with the list keys, written to the lane's fare-table file and
// handed on; unchanged (ETag → 304) changes nothing; a newer one replaces it; a table signed by another key,
// or a lower seq, is refused with `fare-table-rejected` and the table held stays, in the file and in use;
// after a restart the file is the floor (the held table handed at once, a lower seq still refused).

import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FareTableHolder } from '../../firmware/fares/fare-table-file.js';
import { HeldFareTable } from '../../firmware/lists/held-fare-table.js';
import type { ListAlarm } from '../../firmware/lists/list-provider.js';
import { ListSync } from '../../firmware/lists/list-sync.js';
import { signFareTable, verifyFareTable } from '../../protocol/fares.js';
import { trustedListKey } from '../../protocol/lists/index.js';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { generateNetwork } from '../../simulator/network.js';

const GATE = 'gate-token-0123456789';
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function backOffice() {
  const bo = new Backoffice({ db: ':memory:', tokens: [{ token: GATE, role: 'gate' }] });
  const { url } = await bo.listen(0);
  cleanups.push(() => bo.close());
  /** Serve these bytes as the fare table (a tampered or rolled-back back office). */
  const serve = (doc: Uint8Array) => bo.db.prepare('INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)').run('fare-table', Buffer.from(doc));
  return { bo, url, serve };
}

async function lane(url: string, bo: Backoffice, dir: string) {
  const keys = [trustedListKey(bo.publicKeyPem)];
  const path = join(dir, 'fare-table.json');
  const sync = await ListSync.open({ url, dir, trustedKeys: keys, token: GATE, fareTable: { path }, pollMs: 86_400_000 });
  const alarms: ListAlarm[] = [];
  sync.onAlarm((a) => alarms.push(a));
  // What a fare gate holds: the composition feeds the holder from sync (firmware/composition/fare-lane.ts).
  const holder = new FareTableHolder(keys);
  const handed: number[] = [];
  sync.onFareTable((doc) => {
    const r = holder.update(doc);
    if (r.ok) handed.push(r.seq);
  });
  await sync.bootCheck;
  return { sync, alarms, holder, handed, path };
}

function tmp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fare-sync-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const net = generateNetwork({ seed: 7, lines: 2, stationsPerLine: 6 });

describe('fare table over list sync', () => {
  it('taken verified and newer, kept in the fare-table file; bad signature and lower seq refused, the held table kept, also after a restart', async () => {
    const { bo, url, serve } = await backOffice();
    const dir = tmp();
    const l = await lane(url, bo, dir);
    try {
      // None published: 404, the round is no failure, nothing held.
      expect((await l.sync.syncOnce()).kind).not.toBe('failed');
      expect(l.sync.counters).toMatchObject({ fareTableUpdates: 0, fareTablesRefused: 0, httpFailures: 0 });
      expect(l.holder.current()).toBeUndefined();

      const first = bo.publishFareTable(net);
      expect((await l.sync.syncOnce()).kind).not.toBe('failed');
      expect(l.sync.counters.fareTableUpdates).toBe(1);
      expect(l.handed).toEqual([1]);
      expect(readFileSync(l.path)).toEqual(Buffer.from(first));
      // Unchanged: 304 on the ETag, nothing handed again.
      const served = await fetch(`${url}/v1/fare-table`, { headers: { authorization: `Bearer ${GATE}` } });
      const etag = served.headers.get('etag')!;
      expect((await fetch(`${url}/v1/fare-table`, { headers: { authorization: `Bearer ${GATE}`, 'if-none-match': etag } })).status).toBe(304);
      expect((await l.sync.syncOnce()).kind).not.toBe('failed');
      expect(l.sync.counters.fareTableUpdates).toBe(1);

      const second = bo.publishFareTable(net);
      await l.sync.syncOnce();
      expect(l.handed).toEqual([1, 2]);
      expect(l.holder.current()?.seq).toBe(2);
      expect(readFileSync(l.path)).toEqual(Buffer.from(second));

      // Signed by a key the lane does not trust (a newer seq, so only the signature refuses it).
      const held = verifyFareTable(second, [trustedListKey(bo.publicKeyPem)]);
      if (!held.ok) throw new Error(held.detail);
      const foreign = signFareTable({ ...held.table, seq: 9 }, generateKeyPairSync('ed25519').privateKey);
      serve(foreign);
      expect((await l.sync.syncOnce()).kind).not.toBe('failed');
      expect(l.alarms.at(-1)).toMatchObject({ alarm: 'fare-table-rejected', error: 'unknown-key' });
      expect(l.alarms.at(-1)).toMatchObject({ detail: expect.stringContaining('the fare table held (seq 2) stays') });
      // The trusted key's id with a signature that does not verify (a byte of it changed).
      const env = JSON.parse(Buffer.from(second).toString('utf8')) as { signature: string };
      const sig = Buffer.from(env.signature, 'base64');
      sig[0] ^= 1;
      serve(Buffer.from(JSON.stringify({ ...env, signature: sig.toString('base64') })));
      expect((await l.sync.syncOnce()).kind).not.toBe('failed');
      expect(l.alarms.at(-1)).toMatchObject({ alarm: 'fare-table-rejected', error: 'bad-signature' });
      expect(l.sync.counters.fareTablesRefused).toBe(2);
      expect(l.holder.current()?.seq).toBe(2);
      expect(readFileSync(l.path)).toEqual(Buffer.from(second));

      // Rolled back to seq 1: refused as older.
      serve(first);
      await l.sync.syncOnce();
      expect(l.alarms.at(-1)).toMatchObject({ alarm: 'fare-table-rejected', error: 'older', seq: 1 });
      expect(l.handed).toEqual([1, 2]);
      expect(readFileSync(l.path)).toEqual(Buffer.from(second));
    } finally {
      await l.sync.stop();
    }

    // Restart: the file is the floor; the held table is handed at once; seq 1 is still refused.
    const again = await lane(url, bo, dir);
    try {
      expect(again.handed).toEqual([2]);
      await again.sync.syncOnce();
      expect(again.alarms.at(-1)).toMatchObject({ alarm: 'fare-table-rejected', error: 'older', seq: 1 });
      expect(again.holder.current()?.seq).toBe(2);
      expect(again.sync.counters.fareTablesRefused).toBe(1);
    } finally {
      await again.sync.stop();
    }
  }, 30_000);

  it('a back office without the path (405, 501) or with none published (404) fails nothing; another status fails the round', async () => {
    const dir = tmp();
    const keys = [trustedListKey(generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }).toString())];
    const { held } = await HeldFareTable.open(join(dir, 'fare-table.json'), keys);
    const answer = (status: number) => async () => ({ status, body: new Uint8Array(0), headers: {} });
    expect(await held.fetch(answer(404))).toEqual({ kind: 'unchanged' });
    expect(await held.fetch(answer(405))).toEqual({ kind: 'unchanged' });
    expect(await held.fetch(answer(501))).toEqual({ kind: 'unchanged' });
    expect(await held.fetch(answer(500))).toEqual({ kind: 'http', status: 500 });
    expect(held.seq).toBe(-1);
  });

  it('a damaged fare-table file at boot is ignored with an alarm, and sync brings a good one', async () => {
    const { bo, url } = await backOffice();
    const dir = tmp();
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(dir, 'fare-table.json'), '{"not":"a table"}');
    const l = await lane(url, bo, dir);
    try {
      expect(l.alarms).toEqual([expect.objectContaining({ alarm: 'fare-table-rejected' })]);
      expect(l.handed).toEqual([]);
      bo.publishFareTable(net);
      await l.sync.syncOnce();
      expect(l.handed).toEqual([1]);
    } finally {
      await l.sync.stop();
    }
  }, 30_000);
});
