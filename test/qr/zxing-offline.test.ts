// zxing-wasm must initialise from the installed package file, never from the network (its default
// locateFile points at a CDN). Checked in-process and in a child process with the network cut off.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createQrDecoder, WORKER_SOURCE, ZXING_QR_OPTIONS, zxingReaderFiles } from '../../drivers/qr-decoder.js';
import { qrMatrix, renderFrame } from '../../simulator/virtual-camera.js';

const dir = mkdtempSync(join(tmpdir(), 'zxing-offline-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function sampleFrame(text: string): Promise<Uint8Array> {
  return renderFrame(await qrMatrix(text), { width: 640, height: 480, codePx: 200, cx: 320, cy: 240, rotation: 10, tiltX: 5, tiltY: 5, black: 20, white: 220, background: 60, blur: 0.5, noise: 2, seed: 3 });
}

// Preloaded into the child (and, through --require, into its worker threads): any network use throws and is logged.
const TRAP = `
const log = (what) => { process.stderr.write('NETWORK-ATTEMPT ' + what + '\\n'); throw new Error('network unavailable: ' + what); };
globalThis.fetch = (u) => log('fetch ' + u);
globalThis.XMLHttpRequest = function () { log('XMLHttpRequest'); };
for (const m of ['http', 'https']) { const mod = require(m); mod.request = () => log(m + '.request'); mod.get = () => log(m + '.get'); }
const net = require('net'); net.connect = net.createConnection = () => log('net.connect');
require('tls').connect = () => log('tls.connect');
const dns = require('dns'); dns.lookup = () => log('dns.lookup');
`;

const CHILD = `
const { Worker } = require('node:worker_threads');
const { readFileSync } = require('node:fs');
const [src, files, opts, frameFile] = [process.env.WORKER_SOURCE_FILE, JSON.parse(process.env.ZX_FILES), JSON.parse(process.env.ZX_OPTS), process.env.FRAME_FILE];
const w = new Worker(readFileSync(src, 'utf8'), { eval: true, workerData: { ...files, options: opts } });
w.on('message', (m) => {
  if (m.t === 'ready') { const f = readFileSync(frameFile); const ab = f.buffer.slice(f.byteOffset, f.byteOffset + f.byteLength); w.postMessage({ frame: ab, w: 640, h: 480, id: 1 }, [ab]); }
  else if (m.t === 'init-error') { console.log(JSON.stringify({ initError: m.message })); process.exit(2); }
  else if (m.t === 'result') { console.log(JSON.stringify({ texts: m.texts })); w.terminate(); }
});
w.on('error', (e) => { console.log(JSON.stringify({ workerError: String(e) })); process.exit(3); });
`;

function netIsolation(): string[] {
  for (const cmd of [['unshare', '-n'], ['unshare', '-rn']]) {
    if (spawnSync(cmd[0], [...cmd.slice(1), 'true']).status === 0) return cmd;
  }
  return []; // no namespaces here: the trap alone still proves no network call is made
}

describe('zxing-wasm with the network unavailable', () => {
  it('initialises and decodes in-process with fetch disabled', async () => {
    const fetchSpy = vi.fn(() => {
      throw new Error('network unavailable');
    });
    const orig = globalThis.fetch;
    globalThis.fetch = fetchSpy as unknown as typeof fetch;
    try {
      const dec = await createQrDecoder();
      expect(dec.decode(await sampleFrame('RC1:OFFLINE-IN-PROCESS'), 640, 480)).toEqual(['RC1:OFFLINE-IN-PROCESS']);
    } finally {
      globalThis.fetch = orig;
    }
    expect(fetchSpy).not.toHaveBeenCalled();
  });

  it('the decoder worker initialises and decodes in a process without network', async () => {
    writeFileSync(join(dir, 'trap.cjs'), TRAP);
    writeFileSync(join(dir, 'child.cjs'), CHILD);
    writeFileSync(join(dir, 'worker.cjs'), WORKER_SOURCE);
    writeFileSync(join(dir, 'frame.gray'), await sampleFrame('RC1:OFFLINE-WORKER'));
    const iso = netIsolation();
    const argv = [...iso, process.execPath, join(dir, 'child.cjs')];
    const r = spawnSync(argv[0], argv.slice(1), {
      encoding: 'utf8',
      timeout: 30_000,
      env: {
        ...process.env,
        NODE_OPTIONS: `--require ${join(dir, 'trap.cjs')}`,
        WORKER_SOURCE_FILE: join(dir, 'worker.cjs'),
        ZX_FILES: JSON.stringify(zxingReaderFiles()),
        ZX_OPTS: JSON.stringify(ZXING_QR_OPTIONS),
        FRAME_FILE: join(dir, 'frame.gray'),
      },
    });
    expect(r.stderr).not.toMatch(/NETWORK-ATTEMPT/);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toEqual({ texts: ['RC1:OFFLINE-WORKER'] });
  }, 40_000);
});
