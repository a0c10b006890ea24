// zxing-wasm QR decoding of grey frames, in a worker thread (so decoding never blocks the gate
// machine) or in-process (bench, tests). The .wasm file is read from the installed package and handed
// over as `wasmBinary`: the library's default would fetch it from a CDN, which a gate must never do.
// Given the lane's trust list, the worker also runs a decoded ride code's signature check
// (protocol/ride-code-check.ts, stage 1) before it answers, so the lane's thread is left the clock checks.

import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { RideCodePrecheck, RideCodeTrustShare } from '../protocol/ride-code-check.js';

const require = createRequire(import.meta.url);

/** Where the installed zxing-wasm reader (CommonJS build) and its .wasm live. */
export function zxingReaderFiles(): { readerPath: string; wasmPath: string } {
  return { readerPath: require.resolve('zxing-wasm/reader'), wasmPath: require.resolve('zxing-wasm/reader/zxing_reader.wasm') };
}

/**
 * Reader options as the wasm binding takes them (the package does not export its converter).
 * QR only; LocalAverage binariser copes with glare and uneven light; tryInvert off (phone codes are dark on light).
 */
export const ZXING_QR_OPTIONS = {
  formats: 'QRCode',
  tryHarder: true,
  tryRotate: true,
  tryInvert: false,
  tryDownscale: true,
  tryDenoise: false,
  binarizer: 0, // LocalAverage
  isPure: false,
  downscaleFactor: 3,
  downscaleThreshold: 500,
  minLineCount: 2,
  maxNumberOfSymbols: 1,
  validateOptionalChecksum: false,
  returnErrors: false,
  eanAddOnSymbol: 0,
  textMode: 0, // Plain
  characterSet: 0,
  tryCode39ExtendedMode: false,
};

interface ZxingModule {
  HEAPU8: Uint8Array;
  _malloc(n: number): number;
  _free(p: number): void;
  readBarcodesFromPixmap(ptr: number, w: number, h: number, opts: typeof ZXING_QR_OPTIONS): { size(): number; get(i: number): { isValid: boolean; text: string }; delete?: () => void };
}

/** In-process decoder over the same wasm module and options as the worker. */
export async function createQrDecoder(): Promise<{ decode(grey: Uint8Array, width: number, height: number): string[] }> {
  const { readerPath, wasmPath } = zxingReaderFiles();
  const zx = require(readerPath) as { prepareZXingModule(o: object): Promise<ZxingModule> };
  const wasm = readFileSync(wasmPath);
  const mod = await zx.prepareZXingModule({
    overrides: { wasmBinary: wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength), locateFile: () => wasmPath },
    fireImmediately: true,
  });
  let ptr = 0;
  let cap = 0;
  return {
    decode(grey, width, height) {
      if (grey.length !== width * height) throw new RangeError(`frame is ${grey.length} bytes, expected ${width}x${height}`);
      if (cap < grey.length) {
        if (ptr) mod._free(ptr);
        ptr = mod._malloc(grey.length);
        cap = grey.length;
      }
      mod.HEAPU8.set(grey, ptr);
      const v = mod.readBarcodesFromPixmap(ptr, width, height, ZXING_QR_OPTIONS);
      const out: string[] = [];
      for (let i = 0; i < v.size(); i++) {
        const r = v.get(i);
        if (r.isValid && r.text) out.push(r.text);
      }
      v.delete?.();
      return out;
    },
  };
}

/**
 * The compiled signature check beside this module (dist/protocol/ride-code-check.js), which the worker
 * imports; undefined when this module runs from TypeScript sources (tests under vitest): the worker then
 * only decodes and the lane checks every code itself.
 */
export function rideCodeCheckUrl(): string | undefined {
  const url = new URL('../protocol/ride-code-check.js', import.meta.url);
  return import.meta.url.endsWith('.js') && existsSync(fileURLToPath(url)) ? url.href : undefined;
}

// The worker body, as CommonJS source: it runs unchanged whether this module was loaded from
// TypeScript (tests) or from the compiled dist/ (production), with no loader in the worker.
// Messages in: a frame { frame, w, h, id }, or { t: 'trust', trust } (a RideCodeTrustShare).
export const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { readFileSync } = require('node:fs');
const { performance } = require('node:perf_hooks');
let mod, ptr = 0, cap = 0;
const opts = workerData.options;
// The signature check (stage 1) and the trust list it runs with; the last verdict, for a code held in view.
let check, keys, trustId = 0, maxValidity = 0, last;
const imported = new Map();
(async () => {
  try {
    const zx = require(workerData.readerPath);
    const wasm = readFileSync(workerData.wasmPath);
    mod = await zx.prepareZXingModule({
      overrides: { wasmBinary: wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength), locateFile: () => workerData.wasmPath },
      fireImmediately: true,
    });
  } catch (e) {
    parentPort.postMessage({ t: 'init-error', message: String((e && e.stack) || e) });
    return;
  }
  let checkError;
  if (workerData.checkUrl) {
    try { check = await import(workerData.checkUrl); } catch (e) { checkError = String((e && e.message) || e); }
  }
  parentPort.postMessage({ t: 'ready', checks: check !== undefined, checkError });
})();
parentPort.on('message', (m) => {
  if (m.t === 'trust') {
    keys = undefined;
    last = undefined;
    if (!check) return;
    try { keys = new check.RideCodeKeys(m.trust.list, imported); trustId = m.trust.trustId; maxValidity = m.trust.maxValiditySeconds; } catch { keys = undefined; }
    return;
  }
  const t0 = performance.now();
  let texts = [];
  let error;
  try {
    const data = new Uint8Array(m.frame);
    if (data.length !== m.w * m.h) throw new Error('frame size ' + data.length + ' != ' + m.w + 'x' + m.h);
    if (cap < data.length) { if (ptr) mod._free(ptr); ptr = mod._malloc(data.length); cap = data.length; }
    mod.HEAPU8.set(data, ptr);
    const v = mod.readBarcodesFromPixmap(ptr, m.w, m.h, opts);
    for (let i = 0; i < v.size(); i++) { const r = v.get(i); if (r.isValid && r.text) texts.push(r.text); }
    if (v.delete) v.delete();
  } catch (e) {
    error = String((e && e.message) || e);
  }
  const t1 = performance.now();
  let precheck;
  if (keys && texts.length) {
    if (!last || last.text !== texts[0] || last.trustId !== trustId) {
      let verdict;
      try { verdict = keys.checkSignature(texts[0], maxValidity); } catch (e) { verdict = undefined; }
      last = verdict && { text: texts[0], trustId, precheck: { trustId, verdict } };
    }
    precheck = last && last.precheck;
  }
  const t2 = performance.now();
  parentPort.postMessage({ t: 'result', id: m.id, texts, error, ms: t1 - t0, checkMs: t2 - t1, precheck, frame: m.frame }, [m.frame]);
});
`;

export interface DecodeResult {
  id: number;
  texts: string[];
  error?: string;
  /** Time spent in zxing-wasm for this frame (ms), measured in the worker. */
  ms: number;
  /** The signature check of texts[0] with the shared trust list (absent: no list shared, or no check module). */
  precheck?: RideCodePrecheck;
  /** Time the worker spent on that check (ms; 0 when the code's verdict was the last one's). */
  checkMs: number;
  /** The frame's buffer, handed back for reuse. */
  frame: ArrayBuffer;
}

export interface DecodeWorker {
  /** Post one frame (the buffer is transferred); its result comes back once, with the buffer. */
  post(frame: ArrayBuffer, w: number, h: number, id: number): void;
  /** Check each decoded code's signature with this list from the next frame on (no-op unless `checks`). */
  shareTrust(trust: RideCodeTrustShare): void;
  /** The worker loaded the signature check (false from TypeScript sources: see rideCodeCheckUrl). */
  readonly checks: boolean;
  /** Why it could not, when a check module was named but failed to load. */
  readonly checkError?: string;
  stop(): Promise<void>;
}

/**
 * A decoder worker: post one frame at a time (the buffer is transferred, not copied) and get the
 * result back with the buffer. Resolves once zxing-wasm is initialised; rejects if it cannot be
 * (a broken install: retrying will not fix it). `checkUrl`: the signature check module to load
 * (default: the compiled one beside this module, if any).
 */
export async function startDecodeWorker(onResult: (r: DecodeResult) => void, onExit: (why: string) => void, checkUrl = rideCodeCheckUrl()): Promise<DecodeWorker> {
  const files = zxingReaderFiles();
  const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { ...files, options: ZXING_QR_OPTIONS, checkUrl } });
  let stopping = false;
  let checkError: string | undefined;
  const checks = await new Promise<boolean>((resolve, reject) => {
    const onMsg = (m: { t: string; message?: string; checks?: boolean; checkError?: string }) => {
      if (m.t === 'ready') {
        w.off('message', onMsg);
        checkError = m.checkError;
        resolve(m.checks === true);
      } else if (m.t === 'init-error') {
        w.off('message', onMsg);
        void w.terminate();
        reject(new Error(`zxing-wasm failed to initialise from ${files.wasmPath}: ${m.message}`));
      }
    };
    w.on('message', onMsg);
    w.once('error', reject);
  });
  w.on('message', (m: DecodeResult & { t: string }) => {
    if (m.t === 'result') onResult(m);
  });
  w.on('error', (e) => {
    if (!stopping) onExit(`decoder worker error: ${e.message}`);
  });
  w.on('exit', (code) => {
    if (!stopping) onExit(`decoder worker exited (${code})`);
  });
  return {
    checks,
    checkError,
    post(frame, width, height, id) {
      w.postMessage({ frame, w: width, h: height, id }, [frame]);
    },
    shareTrust(trust) {
      if (checks) w.postMessage({ t: 'trust', trust });
    },
    async stop() {
      stopping = true;
      await w.terminate();
    },
  };
}
