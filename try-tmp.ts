import { readFileSync } from 'node:fs';
import { createQrDecoder } from './drivers/qr-decoder.js';
import { corpusScenes, qrMatrix, renderFrame, type CorpusRecipe } from './simulator/virtual-camera.js';
import { IssuerApps } from './simulator/virtual-phone.js';
import jsQR from 'jsqr';
const recipe = JSON.parse(readFileSync('./test/qr/corpus-recipe.json', 'utf8')) as CorpusRecipe;
const apps = new IssuerApps('corpus');
const dec = await createQrDecoder();
const frames = corpusScenes(recipe);
const by = new Map<string, [number, number, number]>();
let tr = 0, td = 0, tj = 0;
for (const f of frames) {
  const text = apps.app('alipay').mint('acct' + f.index, Date.UTC(2022, 4, 20));
  const m = await qrMatrix(text);
  let t = performance.now();
  const g = renderFrame(m, f.scene);
  tr += performance.now() - t; t = performance.now();
  const r = dec.decode(g, 640, 480);
  td += performance.now() - t;
  const ok = r[0] === text;
  const e = by.get(f.category) ?? [0, 0, 0];
  e[0]++; if (ok) e[1]++;
  if (f.index % 4 === 0) {
    const rgba = new Uint8ClampedArray(640*480*4); for (let i=0;i<g.length;i++){rgba[i*4]=rgba[i*4+1]=rgba[i*4+2]=g[i];rgba[i*4+3]=255;}
    t = performance.now();
    const j = jsQR(rgba, 640, 480, { inversionAttempts: 'dontInvert' });
    tj += performance.now() - t;
    if (j?.data === text) e[2]++;
  }
  by.set(f.category, e);
  if (f.index === 5 || f.index === 700) { const fs = await import('node:fs'); fs.writeFileSync(`/tmp/f${f.index}.pgm`, Buffer.concat([Buffer.from('P5 640 480 255\n'), g])); }
}
console.log([...by].map(([k, v]) => `${k}: ${v[1]}/${v[0]} jsqr~${v[2]*4}`).join('\n'));
console.log('render ms', tr / frames.length, 'decode ms', td / frames.length, 'jsqr ms', tj/(frames.length/4), 'modules', (await qrMatrix(apps.app('alipay').mint('acct1', 0))).size);
