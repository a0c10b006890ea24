// QR ride codes: decode rate on a degraded 640x480 corpus (zxing-wasm vs jsQR on the same frames),
// frame in → verified decision vs the bare decode, empty-frame cost, frames/s on one core, and
// signature verifications per second. The corpus is drawn from test/qr/corpus-recipe.json (fixed seed),
// rendered once and cached under .tmp/ keyed by the recipe's hash.

import { createHash, verify as cryptoVerify } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { createQrDecoder, startDecodeWorker, type DecodeResult } from '../../drivers/qr-decoder.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { DecisionCore, MemoryUsedCodes } from '../../firmware/verify/decision-core.js';
import { MemoryLists } from '../../firmware/lists/list-provider.js';
import { RideCodes } from '../../firmware/verify/ride-codes.js';
import { QR_ISSUERS } from '../../protocol/credential.js';
import { parseRideCode } from '../../protocol/ride-code.js';
import { ed25519PublicKey, verifyTrustList } from '../../protocol/trust-list.js';
import { corpusScenes, qrMatrix, renderFrame, type CorpusFrame, type CorpusRecipe } from '../../simulator/virtual-camera.js';
import { IssuerApps } from '../../simulator/virtual-phone.js';
import { interleaved, percentile, summary, type BenchReport } from './report.js';

// jsqr is a CommonJS bundle whose typings declare an ES default export; load it as what it is.
const jsQR = createRequire(import.meta.url)('jsqr') as typeof import('jsqr').default;
const S = 'qr';
const T0 = Date.UTC(2022, 4, 20, 8);
/** jsQR takes ~100 ms a frame on a noisy 640x480 image: it runs on every JSQR_EVERY-th frame, and zxing is reported on the same subset. */
const JSQR_EVERY = 8;

function recipePath(): string {
  const candidates = [join(process.cwd(), 'test/qr/corpus-recipe.json'), new URL('../../../test/qr/corpus-recipe.json', import.meta.url).pathname, new URL('../qr/corpus-recipe.json', import.meta.url).pathname];
  const p = candidates.find((c) => existsSync(c));
  if (!p) throw new Error(`corpus recipe not found (looked in ${candidates.join(', ')})`);
  return p;
}

interface Corpus {
  recipe: CorpusRecipe;
  frames: CorpusFrame[];
  texts: string[];
  images: Uint8Array[];
  renderMs?: number;
}

async function corpus(apps: IssuerApps): Promise<Corpus> {
  const raw = readFileSync(recipePath(), 'utf8');
  const recipe = JSON.parse(raw) as CorpusRecipe;
  const frames = corpusScenes(recipe);
  const texts = frames.map((f) => apps.app(QR_ISSUERS[f.index % QR_ISSUERS.length]).mint(`acct_${f.index}`, T0, { validitySeconds: 60 }));
  const size = recipe.width * recipe.height;
  const hash = createHash('sha256').update(raw).update(texts.join('\n')).update('renderer-v1').digest('hex').slice(0, 16);
  const dir = join(process.cwd(), '.tmp');
  const file = join(dir, `qr-corpus-${hash}.gray`);
  if (existsSync(file)) {
    const all = readFileSync(file);
    if (all.length === size * frames.length) {
      return { recipe, frames, texts, images: frames.map((_, i) => new Uint8Array(all.buffer, all.byteOffset + i * size, size)) };
    }
  }
  const t = performance.now();
  const images: Uint8Array[] = [];
  for (const f of frames) images.push(renderFrame(await qrMatrix(texts[f.index]), f.scene));
  const renderMs = performance.now() - t;
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, Buffer.concat(images));
  return { recipe, frames, texts, images, renderMs };
}

/** Frames from each category for the timed sections (QR_BENCH_PER_CATEGORY); every category gives as many. */
const PER_CATEGORY = Number(process.env.QR_BENCH_PER_CATEGORY ?? 30);

/**
 * A stratified sample of the corpus: the same number of frames from every category of the recipe (as many as
 * the smallest category has, at most `perCategory`), evenly spaced through each category and interleaved
 * category by category, so no category is timed only at the start or only at the end.
 */
function stratified(frames: CorpusFrame[], perCategory: number): { sample: CorpusFrame[]; perCategory: number; categories: number } {
  const byCat = new Map<string, CorpusFrame[]>();
  for (const f of frames) {
    const fs = byCat.get(f.category);
    if (fs) fs.push(f);
    else byCat.set(f.category, [f]);
  }
  const k = Math.min(perCategory, ...[...byCat.values()].map((fs) => fs.length));
  const picks = [...byCat.values()].map((fs) => Array.from({ length: k }, (_, i) => fs[Math.floor((i * fs.length) / k)]));
  const sample: CorpusFrame[] = [];
  for (let i = 0; i < k; i++) for (const p of picks) sample.push(p[i]);
  return { sample, perCategory: k, categories: byCat.size };
}

function toRgba(grey: Uint8Array): Uint8ClampedArray {
  const out = new Uint8ClampedArray(grey.length * 4);
  for (let i = 0, j = 0; i < grey.length; i++, j += 4) {
    out[j] = out[j + 1] = out[j + 2] = grey[i];
    out[j + 3] = 255;
  }
  return out;
}

export async function run(r: BenchReport): Promise<void> {
  const apps = new IssuerApps('bench-corpus');
  const c = await corpus(apps);
  const { width: W, height: H } = c.recipe;
  r.row({ section: S, metric: 'corpus frames (640x480, fixed seed)', value: c.frames.length, unit: 'frames', note: c.renderMs !== undefined ? `rendered in ${(c.renderMs / 1000).toFixed(1)} s, cached in .tmp/` : 'from .tmp/ cache' });

  const zx = await createQrDecoder();
  // Warm up the wasm module (first calls compile and grow memory).
  for (let i = 0; i < 10; i++) zx.decode(c.images[i], W, H);

  // 1. zxing-wasm on every frame, per degradation.
  const ok = new Uint8Array(c.frames.length);
  const zxMs = new Float64Array(c.frames.length);
  for (const f of c.frames) {
    const t = performance.now();
    const out = zx.decode(c.images[f.index], W, H);
    zxMs[f.index] = performance.now() - t;
    ok[f.index] = out[0] === c.texts[f.index] ? 1 : 0;
  }
  const cats = [...new Set(c.frames.map((f) => f.category))];
  for (const cat of cats) {
    const fs = c.frames.filter((f) => f.category === cat);
    const rate = (100 * fs.filter((f) => ok[f.index]).length) / fs.length;
    r.row({ section: S, metric: `zxing decode rate: ${cat}${fs[0].realistic ? '' : ' (beyond realistic)'}`, value: rate, unit: '%', note: `${fs.length} frames` });
  }
  const real = c.frames.filter((f) => f.realistic);
  const realRate = (100 * real.filter((f) => ok[f.index]).length) / real.length;
  r.row({ section: S, metric: 'zxing decode rate: all realistic frames', value: realRate, unit: '%', target: '>= 98 %', note: `${real.length} frames` });

  // 2. jsQR on the same subset of frames.
  const subset = c.frames.filter((f) => f.index % JSQR_EVERY === 0);
  let jsOk = 0, jsMs = 0, zxSubOk = 0, zxSubMs = 0, jsRealOk = 0, zxRealOk = 0, realN = 0;
  for (const f of subset) {
    const rgba = toRgba(c.images[f.index]);
    const t = performance.now();
    const j = jsQR(rgba, W, H, { inversionAttempts: 'dontInvert' });
    jsMs += performance.now() - t;
    const jOk = j?.data === c.texts[f.index];
    if (jOk) jsOk++;
    if (ok[f.index]) zxSubOk++;
    zxSubMs += zxMs[f.index];
    if (f.realistic) {
      realN++;
      if (jOk) jsRealOk++;
      if (ok[f.index]) zxRealOk++;
    }
  }
  r.row({ section: S, metric: `decode rate, realistic frames (every ${JSQR_EVERY}th)`, value: (100 * zxRealOk) / realN, unit: '%', peer: { name: 'jsQR', value: (100 * jsRealOk) / realN }, note: `${realN} frames` });
  r.row({ section: S, metric: `decode rate, all frames incl. beyond-realistic (every ${JSQR_EVERY}th)`, value: (100 * zxSubOk) / subset.length, unit: '%', peer: { name: 'jsQR', value: (100 * jsOk) / subset.length }, note: `${subset.length} frames` });
  r.row({ section: S, metric: 'mean decode time per frame (same frames)', value: zxSubMs / subset.length, unit: 'ms', peer: { name: 'jsQR', value: jsMs / subset.length } });

  // 3. Frame in → verified decision (decode worker + RideCodes + DecisionCore) vs bare in-process decode of
  // the same frame. Two contenders, interleaved: the decode worker checks each code's signature with the
  // lane's trust list and the lane's thread takes its verdict (the runtime's path), or the worker only
  // decodes and the lane's thread checks the signature itself (the path before).
  const tl = verifyTrustList(apps.trustListDocument(), apps.backOfficeKeys());
  if (!tl.ok) throw new Error(tl.detail);
  const rideCodes = new RideCodes(tl.list, { clockSkewMs: 30_000, maxValiditySeconds: 600 });
  const lists = new MemoryLists(T0);
  for (const f of c.frames) lists.allowlist.set(`qr:${QR_ISSUERS[f.index % QR_ISSUERS.length]}:acct_${f.index}`, 'green');
  const cfg = parseLaneConfig({ lane: { id: 'B', direction: 'bidirectional' }, policy: { antiPassbackSeconds: 0 } });
  const core = new DecisionCore('bidirectional', cfg.policy, { lists, usedCodes: new MemoryUsedCodes(), rideCodes });
  // The same number of frames from every category (beyond-realistic ones too: a frame whose code is not
  // read still pays for the copy, the hop and the decode, and ends in a refusal).
  const strata = stratified(c.frames, PER_CATEGORY);
  const sample = strata.sample;
  const strataNote = `${strata.perCategory} frames from each of the ${strata.categories} categories`;
  let resolveResult: ((m: DecodeResult) => void) | undefined;
  const onResult = (m: DecodeResult) => resolveResult?.(m);
  const checking = await startDecodeWorker(onResult, () => {});
  const decoding = await startDecodeWorker(onResult, () => {}, '');
  if (!checking.checks) throw new Error(`the decode worker cannot check signatures (${checking.checkError ?? 'no compiled protocol/ride-code-check.js beside it'}): run the bench from dist/`);
  rideCodes.shareWith([{ name: 'bench', start: async () => {}, stop: async () => {}, shareRideCodeTrust: (t) => checking.shareTrust(t) }]);
  interface QrRun {
    /** Per frame whose code was read: the lane thread's time after the result arrives (verify what is left + decide), and the bare decode of that frame. */
    lane: number[];
    bareRead: number[];
    /** Every frame: copy → decision, bare decode, and the worker's own time (decode + check). */
    full: number[];
    bare: number[];
    inWorker: number[];
    read: number;
    granted: number;
  }
  const qrRun = async (worker: typeof checking): Promise<QrRun> => {
    const out: QrRun = { lane: [], bareRead: [], full: [], bare: [], inWorker: [], read: 0, granted: 0 };
    for (const f of sample) {
      const img = c.images[f.index];
      // bare decode, in-process
      let t = performance.now();
      zx.decode(img, W, H);
      const b = performance.now() - t;
      // full path: copy out of the camera buffer, hand to the worker (decode, and check when it can), decide on this thread
      t = performance.now();
      const buf = img.slice().buffer;
      const res = await new Promise<DecodeResult>((resolve) => {
        resolveResult = resolve;
        worker.post(buf, W, H, f.index);
      });
      const tv = performance.now();
      const text = res.texts[0] ?? '';
      const d = core.decide({ presented: res.precheck ? { kind: 'qr-text', text, precheck: res.precheck } : { kind: 'qr-text', text }, side: 'entry', nowMs: T0 + 1000 });
      const end = performance.now();
      out.bare.push(b);
      out.full.push(end - t);
      out.inWorker.push(res.ms + res.checkMs);
      if (text === c.texts[f.index]) {
        out.read++;
        out.lane.push(end - tv);
        out.bareRead.push(b);
      }
      if (d.grant) out.granted++;
    }
    if (out.granted !== out.read) throw new Error(`${out.granted} decisions granted for ${out.read} codes read`);
    return out;
  };
  const rounds = Number(process.env.QR_BENCH_RUNS ?? 6);
  let runs: { a: QrRun[]; b: QrRun[] };
  const used0 = rideCodes.prechecks.used;
  try {
    await qrRun(checking); // warm-up: both paths compiled before either is timed
    await qrRun(decoding);
    runs = await interleaved(rounds, () => qrRun(checking), () => qrRun(decoding));
  } finally {
    await checking.stop();
    await decoding.stop();
  }
  if (rideCodes.prechecks.used - used0 === 0 || rideCodes.prechecks.stale > 0) throw new Error(`worker verdicts: ${JSON.stringify(rideCodes.prechecks)}`);
  const p50s = (rs: QrRun[], f: (r: QrRun) => number[]) => summary(rs.map((r) => percentile(f(r), 50)));
  const ratio = (rs: QrRun[]) => summary(rs.map((r) => (100 * percentile(r.lane, 50)) / percentile(r.bareRead, 50)));
  const after = { lane: p50s(runs.a, (r) => r.lane), bare: p50s(runs.a, (r) => r.bareRead), pct: ratio(runs.a), full: p50s(runs.a, (r) => r.full), full99: summary(runs.a.map((r) => percentile(r.full, 99))), inWorker: p50s(runs.a, (r) => r.inWorker) };
  const before = { lane: p50s(runs.b, (r) => r.lane), bare: p50s(runs.b, (r) => r.bareRead), pct: ratio(runs.b), full: p50s(runs.b, (r) => r.full), full99: summary(runs.b.map((r) => percentile(r.full, 99))), inWorker: p50s(runs.b, (r) => r.inWorker) };
  const bareAll = p50s([...runs.a, ...runs.b], (r) => r.bare);
  const read = runs.a[0].read;
  const rng = (s: { median: number; spread: { min: number; max: number } }) => `${s.median.toFixed(1)} % [${s.spread.min.toFixed(1)}–${s.spread.max.toFixed(1)}]`;
  const runsNote = `${rounds} runs each, interleaved A B / B A`;
  r.row({ section: S, metric: "verify + decide on the lane's thread after decode p50 (the decode worker checked the signature; window, replay, lists left)", value: after.lane.median, spread: after.lane.spread, unit: 'ms', peer: { name: 'bare zxing-wasm decode, same frames', value: after.bare.median, spread: after.bare.spread }, target: 'ratio < 0.10', note: `adds ${rng(after.pct)} to the decode; lane checking the signature itself (before): ${before.lane.median.toFixed(3)} ms [${before.lane.spread.min.toFixed(3)}–${before.lane.spread.max.toFixed(3)}], adds ${rng(before.pct)}; the ${read} sampled frames whose code was read (${strataNote}); ${runsNote}` });
  r.row({ section: S, metric: 'frame in → decision p50 (copy, worker hop, decode + signature check in the worker, decide), every category', value: after.full.median, spread: after.full.spread, unit: 'ms', peer: { name: 'worker decodes only, lane checks the signature', value: before.full.median, spread: before.full.spread }, note: `bare decode of the same frames p50 ${bareAll.median.toFixed(2)} ms; ${strataNote}; ${read} of ${sample.length} codes read and granted, the rest refused; ${runsNote}; the signature check moved off the lane's thread, not out of the path` });
  r.row({ section: S, metric: 'frame in → decision p99, every category', value: after.full99.median, spread: after.full99.spread, unit: 'ms', peer: { name: 'worker decodes only, lane checks the signature', value: before.full99.median, spread: before.full99.spread }, note: strataNote });
  r.row({ section: S, metric: 'time inside the decode worker p50 (decode + signature check), every category', value: after.inWorker.median, spread: after.inWorker.spread, unit: 'ms', peer: { name: 'decode only', value: before.inWorker.median, spread: before.inWorker.spread }, note: `${strataNote}; a code held in view is checked once (the worker keeps the last verdict)` });

  // 4. Empty frames (the common case: nobody at the gate) at two resolutions.
  for (const [w, h] of [[640, 480], [1280, 720]] as const) {
    const empty = renderFrame(undefined, { width: w, height: h, codePx: 0, cx: 0, cy: 0, rotation: 0, tiltX: 0, tiltY: 0, black: 0, white: 0, background: 80, blur: 0, noise: 3, seed: 1 });
    for (let i = 0; i < 5; i++) zx.decode(empty, w, h);
    const n = 60;
    const ts: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      zx.decode(empty, w, h);
      ts.push(performance.now() - t);
    }
    const mean = ts.reduce((a, b) => a + b, 0) / n;
    r.row({ section: S, metric: `empty-frame decode ${w}x${h} (mean; p99 ${percentile(ts, 99).toFixed(2)} ms)`, value: mean, unit: 'ms', note: `${(1000 / mean).toFixed(0)} frames/s on one core` });
  }

  // 5. Frames per second one core sustains on the corpus mix (every frame holds a code: the busy case),
  // on the same number of frames from every category.
  {
    const t = performance.now();
    const each = new Map<string, { n: number; ms: number }>();
    for (const f of sample) {
      const t1 = performance.now();
      zx.decode(c.images[f.index], W, H);
      const e = each.get(f.category) ?? { n: 0, ms: 0 };
      e.n++;
      e.ms += performance.now() - t1;
      each.set(f.category, e);
    }
    const s = (performance.now() - t) / 1000;
    const rate = ([, e]: [string, { n: number; ms: number }]) => (1000 * e.n) / e.ms;
    const byRate = [...each].sort((a, b) => rate(a) - rate(b));
    const realCats = new Set(real.map((f) => f.category));
    const realTotals = [...each].filter(([cat]) => realCats.has(cat)).reduce((a, [, e]) => ({ n: a.n + e.n, ms: a.ms + e.ms }), { n: 0, ms: 0 });
    r.row({ section: S, metric: 'frames/s one core sustains, 640x480 frames with a code, every category', value: sample.length / s, unit: 'frames/s', target: '>= 30 (camera rate)', note: `${strataNote}; realistic categories alone ${((1000 * realTotals.n) / realTotals.ms).toFixed(0)} frames/s; slowest ${byRate.slice(0, 3).map((x) => `${x[0]} ${rate(x).toFixed(0)}`).join(', ')} frames/s` });
  }

  // 6. Signature verifications per second: RideCodes.verify (parse + cached key + Ed25519 + window) vs
  // importing the issuer key for every code (what caching the KeyObject saves).
  {
    const codes = Array.from({ length: 4000 }, (_, i) => apps.app(QR_ISSUERS[i % 8]).mint(`v${i}`, T0));
    let t = performance.now();
    let okN = 0;
    for (const code of codes) if (rideCodes.verify(code, T0 + 1000).ok) okN++;
    const cached = codes.length / ((performance.now() - t) / 1000);
    if (okN !== codes.length) throw new Error('verification failed in bench');
    const keys = new Map(tl.list.keys.map((k) => [`${k.issuer}/${k.keyId}`, k.publicKey]));
    t = performance.now();
    for (const code of codes.slice(0, 2000)) {
      const p = parseRideCode(code);
      if (!p.ok) throw new Error('parse');
      const key = ed25519PublicKey(keys.get(`${p.code.issuer}/${p.code.keyId}`)!);
      if (!cryptoVerify(null, p.code.signed, key, p.code.signature)) throw new Error('sig');
    }
    const uncached = 2000 / ((performance.now() - t) / 1000);
    r.row({ section: S, metric: 'ride code verifications per second (one core)', value: cached, unit: '/s', peer: { name: 'key imported per code', value: uncached } });
  }
}
