// The serial QR scan engine driver over a real pty pair (socat): the test plays the scan module.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { QrSerialScanner, qrSerialConfigSchema } from '../../drivers/qr-serial-scanner.js';
import type { SourceEvent } from '../../drivers/seams.js';
import { RideCodes } from '../../firmware/verify/ride-codes.js';
import { verifyTrustList } from '../../protocol/trust-list.js';
import { IssuerApps } from '../../simulator/virtual-phone.js';

beforeAll(() => {
  const r = spawnSync('socat', ['-V']);
  if (r.error || r.status !== 0) throw new Error('socat is required for the serial scanner tests: apt-get install -y socat');
});

/** A pty pair: `gate` is opened by the driver, `module` is where the test writes as the scan engine. */
async function ptyPair(): Promise<{ gate: string; module: string; socat: ChildProcess; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'qr-serial-'));
  const gate = join(dir, 'gate'), module = join(dir, 'module');
  const socat = spawn('socat', [`pty,raw,echo=0,link=${gate}`, `pty,raw,echo=0,link=${module}`], { stdio: 'ignore' });
  await vi.waitFor(() => expect(existsSync(gate) && existsSync(module)).toBe(true), { timeout: 5000, interval: 20 });
  return { gate, module, socat, dir };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('serial QR scan engine over a pty', () => {
  it('reports each scanned code once while it stays in view; the gate verifies it; junk is classified', async () => {
    const { gate, module, socat, dir } = await ptyPair();
    cleanups.push(() => { socat.kill(); rmSync(dir, { recursive: true, force: true }); });
    const scanner = new QrSerialScanner(qrSerialConfigSchema.parse({ type: 'qr-serial', path: gate, sameCodeHoldMs: 2000, maxLineBytes: 400 }));
    const events: SourceEvent[] = [];
    await scanner.start((e) => events.push(e));
    cleanups.push(() => scanner.stop());
    const fd = openSync(module, 'w');
    cleanups.push(() => closeSync(fd));

    const apps = new IssuerApps('serial');
    const a = apps.app('guangzhou-metro').mint('serial_a', Date.now());
    const b = apps.app('tianjin-metro').mint('serial_b', Date.now());
    // The engine repeats a code while it is in view, with CRLF, CR or LF terminators, split anywhere.
    writeSync(fd, a + '\r\n' + a.slice(0, 10));
    writeSync(fd, a.slice(10) + '\r' + a + '\n');
    writeSync(fd, 'X'.repeat(1000) + '\r\n'); // noise: over-long line
    writeSync(fd, Buffer.from([0x52, 0x43, 0x01, 0xff, 0x0d])); // non-printable bytes
    writeSync(fd, b + '\r\n');
    await vi.waitFor(() => expect(events.length).toBe(3), { timeout: 5000, interval: 20 });
    expect(events.map((e) => e.type)).toEqual(['PRESENTED', 'CARD_FAULT', 'PRESENTED']);
    expect(scanner.stats).toMatchObject({ presented: 2, repeats: 2, overlong: 1, badText: 1 });
    const verifier = (() => {
      const r = verifyTrustList(apps.trustListDocument(), apps.backOfficeKeys());
      if (!r.ok) throw new Error(r.detail);
      return new RideCodes(r.list);
    })();
    const texts = events.flatMap((e) => (e.type === 'PRESENTED' && e.presented.kind === 'qr-text' ? [e.presented.text] : []));
    expect(texts).toEqual([a, b]);
    expect(texts.map((t) => verifier.verify(t, Date.now()))).toMatchObject([
      { ok: true, credential: { issuer: 'guangzhou-metro', account: 'serial_a' } },
      { ok: true, credential: { issuer: 'tianjin-metro', account: 'serial_b' } },
    ]);
    expect(events[0]).toMatchObject({ source: `qr-serial:${gate}`, side: 'entry' });
  });

  it('an unplugged scan engine is a fault; it reopens by itself when the port is back', async () => {
    const pair = await ptyPair();
    const scanner = new QrSerialScanner(qrSerialConfigSchema.parse({ type: 'qr-serial', path: pair.gate, reopenMinMs: 50, reopenMaxMs: 200, presenceCheckMs: 50 }));
    const events: SourceEvent[] = [];
    await scanner.start((e) => events.push(e));
    cleanups.push(() => scanner.stop());
    pair.socat.kill(); // the USB-serial adapter is pulled: the pty disappears
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain('SOURCE_FAULT'), { timeout: 5000, interval: 20 });
    rmSync(pair.dir, { recursive: true, force: true });
    // Plugged back in at the same path.
    const dir = pair.dir;
    const gate = pair.gate, module = pair.module;
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir, { recursive: true });
    const socat = spawn('socat', [`pty,raw,echo=0,link=${gate}`, `pty,raw,echo=0,link=${module}`], { stdio: 'ignore' });
    cleanups.push(() => { socat.kill(); rmSync(dir, { recursive: true, force: true }); });
    await vi.waitFor(() => expect(events.map((e) => e.type)).toEqual(['SOURCE_FAULT', 'SOURCE_OK']), { timeout: 5000, interval: 20 });
    const fd = openSync(module, 'w');
    cleanups.push(() => closeSync(fd));
    writeSync(fd, 'RC1:HELLO\r\n');
    await vi.waitFor(() => expect(events.map((e) => e.type)).toEqual(['SOURCE_FAULT', 'SOURCE_OK', 'PRESENTED']), { timeout: 5000, interval: 20 });
  });

  it('a port that does not exist at start is a fault, retried (never a throw)', async () => {
    const scanner = new QrSerialScanner(qrSerialConfigSchema.parse({ type: 'qr-serial', path: '/dev/nonexistent-qr-scanner', reopenMinMs: 20, reopenMaxMs: 50 }));
    const events: SourceEvent[] = [];
    await scanner.start((e) => events.push(e));
    cleanups.push(() => scanner.stop());
    await vi.waitFor(() => expect(scanner.stats.reopens).toBeGreaterThanOrEqual(3), { timeout: 5000, interval: 20 });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'SOURCE_FAULT', detail: expect.stringMatching(/cannot open/) });
  });
});
