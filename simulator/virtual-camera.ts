// A virtual gate camera: renders a ride code on a phone screen as the camera under the gate's glass
// would see it (scale, rotation, perspective, blur, glare, low contrast, noise, a thumb over part of
// the code) into grey frames, and writes them as a video file ffmpeg reads (YUV4MPEG2, mono).
// Deterministic: every random choice comes from a seeded RNG and a saved recipe.
// Imports only protocol/ (and zxing-wasm's writer, loaded from the installed package file).

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { seededRandom } from './virtual-phone.js';

const require = createRequire(import.meta.url);

export interface QrMatrix {
  /** Modules per side. */
  size: number;
  /** 1 = dark module, row-major. */
  dark: Uint8Array;
}

type Writer = { writeBarcode(text: string, o: object): Promise<{ error: string; symbol: { data: Uint8ClampedArray; width: number; height: number } }> };
let writer: Promise<Writer> | undefined;

/** The QR module matrix for a text (error correction M, no quiet zone), from zxing-wasm's writer. */
export async function qrMatrix(text: string, ecLevel: 'L' | 'M' | 'Q' | 'H' = 'M'): Promise<QrMatrix> {
  writer ??= (async () => {
    const w = require(require.resolve('zxing-wasm/writer')) as Writer & { prepareZXingModule(o: object): Promise<unknown> };
    const wasmPath = require.resolve('zxing-wasm/writer/zxing_writer.wasm');
    const wasm = readFileSync(wasmPath);
    await w.prepareZXingModule({ overrides: { wasmBinary: wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength), locateFile: () => wasmPath }, fireImmediately: true });
    return w;
  })();
  const w = await writer;
  const r = await w.writeBarcode(text, { format: 'QRCode', ecLevel, scale: 1, withQuietZones: false });
  if (r.error) throw new Error(`QR encode failed: ${r.error}`);
  const { data, width, height } = r.symbol;
  if (width !== height) throw new Error('QR symbol not square');
  const dark = new Uint8Array(width * width);
  for (let i = 0; i < dark.length; i++) dark[i] = data[i] < 128 ? 1 : 0;
  return { size: width, dark };
}

/** How one frame shows the phone. Angles in degrees, sizes in pixels, levels 0-255. */
export interface Scene {
  width: number;
  height: number;
  /** Side of the code (without quiet zone) in the image, at the centre of the code. */
  codePx: number;
  /** Centre of the code in the image. */
  cx: number;
  cy: number;
  /** In-plane rotation, and tilt of the phone about its horizontal and vertical axes. */
  rotation: number;
  tiltX: number;
  tiltY: number;
  /** Screen levels: dark modules and the white screen. */
  black: number;
  white: number;
  /** Surroundings (gate glass, ceiling seen past the phone). */
  background: number;
  /** Gaussian blur sigma (defocus, motion). */
  blur: number;
  /** Glare: a bright blob at (gx, gy) relative to the code centre, in code sides. */
  glare?: { gx: number; gy: number; radius: number; strength: number };
  /** A thumb over the code: from which side (0-3), how deep into the code and how wide (fractions of its side). */
  occlusion?: { side: number; depth: number; width: number; level: number };
  /** Sensor noise standard deviation. */
  noise: number;
  /** RNG seed of this frame's noise. */
  seed: number;
}

/** Render a scene with a code into a grey frame (row-major, width*height bytes). Empty matrix = no phone. */
export function renderFrame(m: QrMatrix | undefined, s: Scene): Uint8Array {
  const { width: W, height: H } = s;
  const img = new Float32Array(W * H);
  const rand = seededRandom(s.seed);
  // Background: a soft vertical gradient, like light through the gate glass.
  for (let y = 0; y < H; y++) {
    const v = s.background * (0.8 + 0.4 * (y / H));
    img.fill(v, y * W, (y + 1) * W);
  }
  // Blur only where there is detail (the phone); the background gradient is smooth already.
  const box = m ? drawPhone(img, m, s) : undefined;
  if (box && s.blur >= 0.2) {
    const r = Math.ceil(3 * s.blur) + 1;
    gaussianBlur(img, W, H, s.blur, Math.max(0, box[0] - r), Math.max(0, box[1] - r), Math.min(W, box[2] + r), Math.min(H, box[3] + r));
  }
  if (s.glare) {
    const mod = s.codePx;
    const gx = s.cx + s.glare.gx * mod, gy = s.cy + s.glare.gy * mod;
    const r2 = (s.glare.radius * s.glare.radius) * 2;
    const x0 = Math.max(0, Math.floor(gx - 3 * s.glare.radius)), x1 = Math.min(W, Math.ceil(gx + 3 * s.glare.radius));
    const y0 = Math.max(0, Math.floor(gy - 3 * s.glare.radius)), y1 = Math.min(H, Math.ceil(gy + 3 * s.glare.radius));
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) {
      const d2 = (x - gx) ** 2 + (y - gy) ** 2;
      img[y * W + x] += s.glare.strength * Math.exp(-d2 / r2);
    }
  }
  const out = new Uint8Array(W * H);
  const noise = s.noise;
  const table = normalTable();
  for (let i = 0; i < out.length; i += 2) {
    // One draw gives two 16-bit indices into a table of standard normal values.
    const r = (rand() * 4294967296) >>> 0;
    let v = img[i] + noise * table[r & 0xffff];
    out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
    if (i + 1 < out.length) {
      v = img[i + 1] + noise * table[r >>> 16];
      out[i + 1] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return out;
}

let normals: Float32Array | undefined;
/** 65536 standard normal quantiles: indexing it with uniform bits samples N(0,1). */
function normalTable(): Float32Array {
  if (normals) return normals;
  normals = new Float32Array(65536);
  for (let i = 0; i < 65536; i++) normals[i] = inverseNormal((i + 0.5) / 65536);
  return normals;
}
function inverseNormal(p: number): number {
  // Acklam's rational approximation (|error| < 1.2e-9).
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const q = Math.min(p, 1 - p);
  let x: number;
  if (q < 0.02425) {
    const t = Math.sqrt(-2 * Math.log(q));
    x = (((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5]) / ((((d[0] * t + d[1]) * t + d[2]) * t + d[3]) * t + 1);
    return p < 0.5 ? x : -x;
  }
  const t = p - 0.5, r = t * t;
  return ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * t) / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

/** Draws the phone; returns its bounding box [x0, y0, x1, y1] in the image. */
function drawPhone(img: Float32Array, m: QrMatrix, s: Scene): [number, number, number, number] {
  const { width: W, height: H } = s;
  const N = m.size;
  const px = s.codePx / N; // pixels per module at the centre
  const f = 600; // focal length in pixels: a ~56° wide lens at 640 px
  const rad = Math.PI / 180;
  const [cr, sr] = [Math.cos(s.rotation * rad), Math.sin(s.rotation * rad)];
  const [ca, sa] = [Math.cos(s.tiltX * rad), Math.sin(s.tiltX * rad)];
  const [cb, sb] = [Math.cos(s.tiltY * rad), Math.sin(s.tiltY * rad)];
  // R = Ry(b) Rx(a) Rz(r); only its first two columns matter for a plane.
  const rz = [[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]];
  const rx = [[1, 0, 0], [0, ca, -sa], [0, sa, ca]];
  const ry = [[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]];
  const R = mul3(ry, mul3(rx, rz));
  // plane (u,v in modules, origin at code centre) → camera: X = px*(R1 u + R2 v) + (0,0,f)
  const Hm = [
    [f * px * R[0][0] + s.cx * px * R[2][0], f * px * R[0][1] + s.cx * px * R[2][1], s.cx * f],
    [f * px * R[1][0] + s.cy * px * R[2][0], f * px * R[1][1] + s.cy * px * R[2][1], s.cy * f],
    [px * R[2][0], px * R[2][1], f],
  ];
  const Hi = inv3(Hm);
  // Phone screen in module units around the code: quiet zone and app chrome around it.
  const half = N / 2;
  const sx0 = -half - 5, sx1 = half + 5, sy0 = -half - 10, sy1 = half + 16;
  // Bounding box of the phone (body a little larger than its screen) in the image.
  const body = 2;
  const corners = [[sx0 - body, sy0 - body], [sx1 + body, sy0 - body], [sx1 + body, sy1 + body], [sx0 - body, sy1 + body]].map(([u, v]) => apply(Hm, u, v));
  const bx0 = Math.max(0, Math.floor(Math.min(...corners.map((c) => c[0]))));
  const bx1 = Math.min(W, Math.ceil(Math.max(...corners.map((c) => c[0]))));
  const by0 = Math.max(0, Math.floor(Math.min(...corners.map((c) => c[1]))));
  const by1 = Math.min(H, Math.ceil(Math.max(...corners.map((c) => c[1]))));
  const occ = s.occlusion;
  const sub = [0.25, 0.75];
  for (let y = by0; y < by1; y++) {
    for (let x = bx0; x < bx1; x++) {
      let acc = 0;
      let covered = 0;
      for (const oy of sub) for (const ox of sub) {
        const X = x + ox, Y = y + oy;
        const w = Hi[2][0] * X + Hi[2][1] * Y + Hi[2][2];
        const u = (Hi[0][0] * X + Hi[0][1] * Y + Hi[0][2]) / w;
        const v = (Hi[1][0] * X + Hi[1][1] * Y + Hi[1][2]) / w;
        if (u < sx0 - body || u >= sx1 + body || v < sy0 - body || v >= sy1 + body) continue;
        covered++;
        let val: number;
        if (u < sx0 || u >= sx1 || v < sy0 || v >= sy1) val = 25; // phone body
        else {
          const i = Math.floor(u + half), j = Math.floor(v + half);
          val = i >= 0 && i < N && j >= 0 && j < N && m.dark[j * N + i] ? s.black : s.white;
        }
        if (occ && inThumb(u / N, v / N, occ)) val = occ.level;
        acc += val;
      }
      if (covered) {
        const k = y * W + x;
        img[k] = (img[k] * (4 - covered) + acc) / 4;
      }
    }
  }
  return [bx0, by0, bx1, by1];
}

/** The thumb: an ellipse entering the code from one side, in code-side units (code spans -0.5..0.5). */
function inThumb(u: number, v: number, o: { side: number; depth: number; width: number }): boolean {
  // rotate so the thumb always comes from the bottom (v = +0.5)
  let a = u, b = v;
  for (let k = 0; k < o.side; k++) [a, b] = [-b, a];
  const cy = 0.5 + 0.5 - o.depth; // ellipse centre below the edge; reaches `depth` into the code
  const ry = 0.5, rx = o.width / 2;
  return ((a / rx) ** 2 + ((b - cy) / ry) ** 2) <= 1;
}

function mul3(a: number[][], b: number[][]): number[][] {
  return a.map((r) => [0, 1, 2].map((j) => r[0] * b[0][j] + r[1] * b[1][j] + r[2] * b[2][j]));
}
function apply(h: number[][], u: number, v: number): [number, number] {
  const w = h[2][0] * u + h[2][1] * v + h[2][2];
  return [(h[0][0] * u + h[0][1] * v + h[0][2]) / w, (h[1][0] * u + h[1][1] * v + h[1][2]) / w];
}
function inv3(m: number[][]): number[][] {
  const [[a, b, c], [d, e, f], [g, h, i]] = m;
  const A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
  const det = a * A + b * B + c * C;
  return [
    [A / det, -(b * i - c * h) / det, (b * f - c * e) / det],
    [B / det, (a * i - c * g) / det, -(a * f - c * d) / det],
    [C / det, -(a * h - b * g) / det, (a * e - b * d) / det],
  ];
}

function gaussianBlur(img: Float32Array, W: number, H: number, sigma: number, x0: number, y0: number, x1: number, y1: number): void {
  // Separable Gaussian, kernel to 3 sigma, edges clamped.
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float32Array(2 * r + 1);
  let sum = 0;
  for (let i = -r; i <= r; i++) sum += k[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  const tmp = new Float32Array(img.length);
  for (let y = y0; y < y1; y++) {
    const o = y * W;
    for (let x = x0; x < x1; x++) {
      let acc = 0;
      for (let i = -r; i <= r; i++) {
        const xx = x + i < x0 ? x0 : x + i >= x1 ? x1 - 1 : x + i;
        acc += k[i + r] * img[o + xx];
      }
      tmp[o + x] = acc;
    }
  }
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      let acc = 0;
      for (let i = -r; i <= r; i++) {
        const yy = y + i < y0 ? y0 : y + i >= y1 ? y1 - 1 : y + i;
        acc += k[i + r] * tmp[yy * W + x];
      }
      img[y * W + x] = acc;
    }
  }
}

// --- Corpus recipe ------------------------------------------------------------------------------

/** A degradation category with the parameter ranges it draws from. `realistic: false` marks stress frames beyond what a phone shows. */
export interface RecipeCategory {
  name: string;
  realistic: boolean;
  count: number;
  codePx: [number, number];
  rotation: [number, number];
  tilt: [number, number];
  blur: [number, number];
  noise: [number, number];
  /** [black, white] ranges. */
  black: [number, number];
  white: [number, number];
  glare?: { strength: [number, number]; radius: [number, number] };
  occlusion?: { depth: [number, number]; width: [number, number] };
}

export interface CorpusRecipe {
  seed: number;
  width: number;
  height: number;
  categories: RecipeCategory[];
}

export interface CorpusFrame {
  index: number;
  category: string;
  realistic: boolean;
  scene: Scene;
}

/** Draw every frame's scene from the recipe, deterministically. */
export function corpusScenes(recipe: CorpusRecipe): CorpusFrame[] {
  const rand = seededRandom(recipe.seed);
  const pick = ([a, b]: [number, number]) => a + (b - a) * rand();
  const out: CorpusFrame[] = [];
  for (const c of recipe.categories) {
    for (let i = 0; i < c.count; i++) {
      const codePx = pick(c.codePx);
      const margin = codePx * 0.7;
      const scene: Scene = {
        width: recipe.width,
        height: recipe.height,
        codePx,
        cx: recipe.width / 2 + (rand() - 0.5) * Math.max(0, recipe.width - 2 * margin),
        cy: recipe.height / 2 + (rand() - 0.5) * Math.max(0, recipe.height - 2 * margin),
        rotation: pick(c.rotation),
        tiltX: pick(c.tilt) * (rand() < 0.5 ? -1 : 1),
        tiltY: pick(c.tilt) * (rand() < 0.5 ? -1 : 1),
        black: pick(c.black),
        white: pick(c.white),
        background: 40 + 80 * rand(),
        blur: pick(c.blur),
        noise: pick(c.noise),
        seed: Math.floor(rand() * 2 ** 31),
      };
      if (c.glare) scene.glare = { gx: (rand() - 0.5) * 0.8, gy: (rand() - 0.5) * 0.8, radius: pick(c.glare.radius), strength: pick(c.glare.strength) };
      if (c.occlusion) scene.occlusion = { side: Math.floor(rand() * 4), depth: pick(c.occlusion.depth), width: pick(c.occlusion.width), level: 140 + 60 * rand() };
      out.push({ index: out.length, category: c.name, realistic: c.realistic, scene });
    }
  }
  return out;
}

// --- Video files --------------------------------------------------------------------------------

/** YUV4MPEG2 header for mono (grey) frames: ffmpeg reads it as pix_fmt gray. */
export function y4mHeader(width: number, height: number, fps = 30): Uint8Array {
  return new Uint8Array(Buffer.from(`YUV4MPEG2 W${width} H${height} F${fps}:1 Ip A1:1 Cmono\n`, 'latin1'));
}
const FRAME_TAG = Buffer.from('FRAME\n', 'latin1');
/** One y4m frame (tag + grey plane). */
export function y4mFrame(grey: Uint8Array): Uint8Array {
  const b = new Uint8Array(FRAME_TAG.length + grey.length);
  b.set(FRAME_TAG, 0);
  b.set(grey, FRAME_TAG.length);
  return b;
}
/** A whole y4m video in memory. */
export function y4mVideo(width: number, height: number, frames: Uint8Array[], fps = 30): Uint8Array {
  const parts = [y4mHeader(width, height, fps), ...frames.map(y4mFrame)];
  return new Uint8Array(Buffer.concat(parts));
}
