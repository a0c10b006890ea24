// `gate reader` on a private pcscd: reader list, one line per tap with the decision the lists give.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startReaderTool, type ReaderTool } from '../../firmware/cli/reader.js';
import { virtualCard } from '../../simulator/virtual-card.js';
import { startPcscd, type PrivatePcscd } from '../support/pcscd.js';

let pcscd: PrivatePcscd;
let tool: ReaderTool;
const lines: Record<string, unknown>[] = [];
const until = async (pred: () => boolean, ms = 8000) => {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`timeout; lines: ${JSON.stringify(lines)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

beforeAll(async () => {
  pcscd = await startPcscd();
  process.env.PCSCLITE_CSOCK_NAME = pcscd.socket;
  const dir = mkdtempSync(join(tmpdir(), 'reader-tool-'));
  const config = join(dir, 'lane.json');
  // Whatever the lead's memory-lists schema offers inline; fall back to empty lists if it does not.
  writeFileSync(config, JSON.stringify({ lane: { id: 'B1' }, drivers: { sources: [{ type: 'pcsc', reader: 'Gate Reader' }] } }));
  tool = await startReaderTool({ json: true, config, side: 'entry', waitMs: 1000 }, (l) => lines.push(JSON.parse(l)));
  await until(() => lines.some((l) => l.type === 'reader-ok'));
}, 30_000);
afterAll(async () => {
  await tool?.stop();
  await pcscd?.stop();
});

test('lists readers, then prints one JSON line per tap with masked number, validity, balance, decision and time', async () => {
  expect(lines.filter((l) => l.type === 'reader-added').map((l) => l.reader)).toEqual(expect.arrayContaining([pcscd.readers[0].name, pcscd.readers[1].name]));
  const t = virtualCard().tUnion({ serial: '3104999900001234567', expiry: 20301231, start: 20150101, balanceFen: 2350 }).tap({ port: pcscd.readers[0].port });
  await until(() => lines.some((l) => l.type === 'tap'));
  await t.done;
  const tap = lines.find((l) => l.type === 'tap')!;
  expect(tap).toMatchObject({ reader: pcscd.readers[0].name, kind: 'card', layout: 't-union', credential: '3104***********4567', validity: '2015-01-01..2030-12-31', balanceYuan: '23.50', decision: 'REFUSE', reason: 'not-registered' });
  expect(tap.ms).toBeGreaterThan(0);
  const e = virtualCard().tUnion({ serial: '3104999900001234568', expiry: 20200101, start: 20100101 }).tap({ port: pcscd.readers[1].port });
  await until(() => lines.filter((l) => l.type === 'tap').length === 2);
  await e.done;
  expect(lines.filter((l) => l.type === 'tap')[1]).toMatchObject({ kind: 'refused', reason: 'card-expired', decision: 'REFUSE' });
});

test('pcscd gone: a clear reader fault line, no hang; back by itself', async () => {
  await pcscd.kill();
  await until(() => lines.some((l) => l.type === 'reader-fault'));
  await pcscd.restart();
  await until(() => lines.filter((l) => l.type === 'reader-ok').length >= 2, 15_000);
});
