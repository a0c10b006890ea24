// The schedule a gate holds, fetched over sync: which answers keep the held one quietly, which fail the
// round, and which documents are taken or refused (unit test of held-schedule.ts; the end-to-end path
// through a real back office is test/gate/schedule-sync.test.ts).
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { HeldSchedule } from '../../firmware/lists/held-schedule.js';
import { trustedListKey } from '../../protocol/lists/index.js';
import { signPolicySchedule } from '../../protocol/policy-schedule.js';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const TRUSTED = [trustedListKey(publicKey.export({ format: 'pem', type: 'spki' }).toString())];
const dir = mkdtempSync(join(tmpdir(), 'held-schedule-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const doc = (seq: number) => signPolicySchedule({ seq, issuedAtMs: 1_650_000_000_000 + seq, kinds: { card: { adviseFromMs: 1, enforceFromMs: 2 } } }, privateKey);
const answer = (status: number, body: Uint8Array = new Uint8Array(0)) => async () => ({ status, body, headers: {} });

it('404, 405 and 501 (none published, or a back office that does not serve it) keep the held one; other errors fail the round', async () => {
  const { held } = await HeldSchedule.open(join(dir, 'a.json'), TRUSTED);
  for (const status of [304, 404, 405, 501]) expect(await held.fetch(answer(status)), `HTTP ${status}`).toEqual({ kind: 'unchanged' });
  for (const status of [400, 401, 403, 500, 502, 503]) expect(await held.fetch(answer(status)), `HTTP ${status}`).toEqual({ kind: 'http', status });
  expect(held.seq).toBe(-1);
});

it('a newer signed document is written and taken; an older, a tampered or a foreign one is refused and the held one kept', async () => {
  const path = join(dir, 'b.json');
  const { held } = await HeldSchedule.open(path, TRUSTED);
  expect(await held.fetch(answer(200, doc(5)))).toMatchObject({ kind: 'taken', seq: 5, written: true });
  expect(readFileSync(path)).toEqual(Buffer.from(doc(5)));
  expect(await held.fetch(answer(200, doc(5)))).toEqual({ kind: 'same' });
  expect(await held.fetch(answer(200, doc(4)))).toMatchObject({ kind: 'refused', alarm: { alarm: 'schedule-rejected', error: 'older' } });
  const tampered = Buffer.from(doc(6));
  tampered[tampered.length - 10] ^= 1;
  expect(await held.fetch(answer(200, tampered))).toMatchObject({ kind: 'refused', alarm: { alarm: 'schedule-rejected' } });
  const other = generateKeyPairSync('ed25519').privateKey;
  expect(await held.fetch(answer(200, signPolicySchedule({ seq: 7, issuedAtMs: 1, kinds: {} }, other)))).toMatchObject({ kind: 'refused' });
  expect(held.seq).toBe(5);
  expect(readFileSync(path)).toEqual(Buffer.from(doc(5)));
  // After a reboot the file is the floor.
  const again = await HeldSchedule.open(path, TRUSTED);
  expect(again.held.seq).toBe(5);
  expect(await again.held.offer(doc(4))).toMatchObject({ kind: 'refused' });
});
