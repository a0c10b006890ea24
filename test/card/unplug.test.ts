// Reader-side faults: pcscd killed and restarted under a running driver, a configured reader that is
// not there, and a missing native library. Reader faults never show up as card faults.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { INSTALL_HINT, PcscReader, pcscReaderConfigSchema } from '../../drivers/pcsc-reader.js';
import type { SourceEvent } from '../../drivers/seams.js';
import { virtualCard } from '../../simulator/virtual-card.js';
import { startCardStation, type CardStation } from '../support/card-station.js';
import { waitUntil } from '../support/wait.js';

let st: CardStation;
beforeAll(async () => {
  st = await startCardStation();
}, 30_000);
afterAll(async () => {
  await st?.stop();
});

test('pcscd killed: SOURCE_FAULT; restarted: SOURCE_OK and taps read again, without restarting the driver', async () => {
  const card = () => virtualCard().tUnion({ serial: '3104999900000000777', expiry: 20301231 });
  expect((await st.tap(card())).event?.type).toBe('PRESENTED');
  const mark = st.events.length;
  await st.pcscd.kill();
  const fault = await st.waitFor((e) => e.type === 'SOURCE_FAULT' && st.events.indexOf(e) >= mark, 5000);
  expect(fault).toMatchObject({ type: 'SOURCE_FAULT' });
  // Still down a while later: exactly one fault for the outage, no card faults.
  await new Promise((r) => setTimeout(r, 600));
  await st.pcscd.restart();
  await st.waitFor((e) => e.type === 'SOURCE_OK' && st.events.indexOf(e) > mark, 10_000);
  const outage = st.events.slice(mark);
  expect(outage.filter((e) => e.type === 'SOURCE_FAULT')).toHaveLength(1);
  expect(outage.filter((e) => e.type === 'CARD_FAULT')).toHaveLength(0);
  for (let i = 0; i < 50 && st.reader.readerNames.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
  expect((await st.tap(card(), 1)).event).toMatchObject({ type: 'PRESENTED', presented: { credential: { cardNumber: '3104999900000000777' } } });
  expect(st.reader.counters.readerFaults).toBe(1);
}, 40_000);

test('pcscd killed in the middle of a tap: a reader fault, not a card fault', async () => {
  const mark = st.events.length;
  const tap = virtualCard().phone({ serial: '3104999900000000778', expiry: 20301231, answerDelayMs: 300 }).build().tap({ port: st.pcscd.readers[0].port, leaveAfterIdleMs: 10_000 });
  // Evidence that the exchange is under way: the slow phone has been sent a second APDU (it answered the
  // first), and the tap is not over (nothing reported for it yet).
  await waitUntil(() => tap.apduCount >= 2, 5000, () => `the phone got ${tap.apduCount} APDUs`);
  expect(tap.apduCount).toBeGreaterThanOrEqual(2);
  expect(st.events.slice(mark).filter((e) => e.type === 'PRESENTED' || e.type === 'CARD_FAULT')).toHaveLength(0);
  await st.pcscd.kill();
  tap.remove();
  const log = await tap.done;
  expect(log.apdus.length).toBeGreaterThanOrEqual(2);
  await st.waitFor((e) => e.type === 'SOURCE_FAULT' && st.events.indexOf(e) >= mark, 5000);
  await st.pcscd.restart();
  await st.waitFor((e) => e.type === 'SOURCE_OK' && st.events.indexOf(e) > mark, 10_000);
  expect(st.events.slice(mark).filter((e) => e.type === 'CARD_FAULT' && e.reason !== 'tap-again')).toHaveLength(0);
  expect(st.events.slice(mark).filter((e) => e.type === 'PRESENTED')).toHaveLength(0);
}, 40_000);

test('a configured reader that is absent (ACR122U after a reboot) is a clear SOURCE_FAULT, not a hang', async () => {
  const r = new PcscReader(pcscReaderConfigSchema.parse({ reader: 'ACR122U', readerWaitMs: 200, retryMs: 100 }));
  const events: SourceEvent[] = [];
  await r.start((e) => events.push(e));
  await waitUntil(() => events.length > 0, 5000, () => 'no event from the driver');
  await r.stop();
  expect(events).toHaveLength(1);
  expect(events[0]).toMatchObject({ type: 'SOURCE_FAULT' });
  expect(events[0].type === 'SOURCE_FAULT' && events[0].detail).toMatch(/ACR122U.*unplugged and plugged back in/);
});

test('nfc-pcsc or libpcsclite missing: start() rejects saying exactly what to install', async () => {
  const r = new PcscReader(pcscReaderConfigSchema.parse({}), undefined, () => {
    throw new Error(`${INSTALL_HINT} (Cannot find module 'nfc-pcsc')`);
  });
  await expect(r.start(() => {})).rejects.toThrow('apt-get install libpcsclite-dev pcscd, then npm rebuild @pokusew/pcsclite');
  await r.stop();
});

test('a pcscd that takes the connection but does not answer yet (still polling its readers): a fault and a retry, never a blocked event loop', async () => {
  // pcscd answers clients only after every reader's first poll; libpcsclite's context call would block
  // this thread until then. The driver must ask first, without blocking, and not open a context.
  const dir = mkdtempSync(join(tmpdir(), 'silent-pcscd-'));
  const path = join(dir, 'pcscd.comm');
  const questions: Buffer[] = [];
  const silent = createServer((s) => s.on('data', (d) => questions.push(d)));
  await new Promise<void>((r) => silent.listen(path, r));
  let nfcOpened = 0;
  const saved = process.env.PCSCLITE_CSOCK_NAME;
  process.env.PCSCLITE_CSOCK_NAME = path;
  const r = new PcscReader(pcscReaderConfigSchema.parse({ retryMs: 100 }), undefined, () => ({
    NFC: class {
      constructor() {
        nfcOpened++;
        throw new Error('a PC/SC context was opened against a pcscd that had not answered');
      }
    } as never,
  }));
  const events: SourceEvent[] = [];
  let ticks = 0;
  const tick = setInterval(() => ticks++, 10);
  try {
    await r.start((e) => events.push(e));
    await waitUntil(() => events.length > 0 && questions.length >= 2, 5000, () => `events ${events.length}, questions ${questions.length}`);
  } finally {
    clearInterval(tick);
    await r.stop();
    process.env.PCSCLITE_CSOCK_NAME = saved;
    await new Promise((res) => silent.close(res));
    rmSync(dir, { recursive: true, force: true });
  }
  expect(events[0]).toMatchObject({ type: 'SOURCE_FAULT' });
  expect(events[0].type === 'SOURCE_FAULT' && events[0].detail).toMatch(/pcscd is not running \(no answer on .*pcscd\.comm\)/);
  expect(nfcOpened).toBe(0);
  expect(ticks).toBeGreaterThan(20);
  // The question is pcsc-lite's CMD_VERSION: { size 12, command 0x11 } then { 4, 4, 0 }.
  expect(questions[0].toString('hex')).toBe('0c000000' + '11000000' + '04000000' + '04000000' + '00000000');
});
