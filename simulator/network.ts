// A generated metro network: lines of stations with the distance between neighbours, lines crossing at
// shared transfer stations, and the shortest track distance between every pair of stations (what a
// distance fare is charged on). Seeded: a run replays from its seed. The back office builds its fare table
// from it (protocol/fares.ts faresFromDistances).

import type { FareStation } from '../protocol/fares.js';
import { seededRandom } from './random.js';

export interface Network {
  stations: FareStation[];
  /** n×n shortest distances in metres, row-major, in `stations` order. */
  distancesM: Float64Array;
  lines: { name: string; stations: number[] }[];
}

export function generateNetwork(o: { seed: number; lines: number; stationsPerLine: number; minGapM?: number; maxGapM?: number }): Network {
  if (o.lines < 1 || o.stationsPerLine < 2 || o.lines * o.stationsPerLine > 1000) throw new RangeError('1..1000 stations, at least 2 a line');
  const rnd = seededRandom(o.seed);
  const minGap = o.minGapM ?? 900;
  const maxGap = o.maxGapM ?? 3500;
  const stations: FareStation[] = [];
  const lines: Network['lines'] = [];
  const edges: [number, number, number][] = [];
  for (let l = 0; l < o.lines; l++) {
    const name = `Line ${l + 1}`;
    const ids: number[] = [];
    // From the second line on, the line passes through a station of an earlier line: the transfer.
    const crossAt = l > 0 ? Math.floor(rnd() * o.stationsPerLine) : -1;
    const transfer = l > 0 ? lines[Math.floor(rnd() * l)].stations[Math.floor(rnd() * o.stationsPerLine)] : 0;
    for (let s = 0; s < o.stationsPerLine; s++) {
      if (s === crossAt && !ids.includes(transfer)) {
        ids.push(transfer);
        continue;
      }
      const id = stations.length + 1;
      stations.push({ id, name: `L${l + 1}-S${s + 1}`, line: name });
      ids.push(id);
    }
    for (let s = 1; s < ids.length; s++) edges.push([ids[s - 1], ids[s], Math.round(minGap + rnd() * (maxGap - minGap))]);
    lines.push({ name, stations: ids });
  }
  const n = stations.length;
  const d = new Float64Array(n * n).fill(Infinity);
  for (let i = 0; i < n; i++) d[i * n + i] = 0;
  for (const [a, b, m] of edges) {
    d[(a - 1) * n + (b - 1)] = Math.min(d[(a - 1) * n + (b - 1)], m);
    d[(b - 1) * n + (a - 1)] = Math.min(d[(b - 1) * n + (a - 1)], m);
  }
  // Floyd–Warshall: n ≤ 1,000.
  for (let k = 0; k < n; k++)
    for (let i = 0; i < n; i++) {
      const ik = d[i * n + k];
      if (ik === Infinity) continue;
      for (let j = 0; j < n; j++) if (ik + d[k * n + j] < d[i * n + j]) d[i * n + j] = ik + d[k * n + j];
    }
  return { stations, distancesM: d, lines };
}
