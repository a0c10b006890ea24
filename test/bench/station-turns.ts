// What a process's longest event-loop turns were spent on, from a V8 CPU profile (`node --cpu-prof
// --cpu-prof-interval 100`): a turn is a run of samples with no `(idle)` sample between them. Prints the
// longest turns, each with its self time by function (and GC), so a stall can be named rather than guessed.
// Used on the station bench's lane child: `STATION_CHILD_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof
// --cpu-prof-interval 100" STATION_BENCH_PARTS=rogue node dist/test/bench/run.js --only station`, then
// `node dist/test/bench/station-turns.js /tmp/prof/*.cpuprofile [turns=8] [frames=12] [gaps.json]`. With
// the lane child's STATION_CHILD_GAPS file (the gaps over 3 ms between its 2 ms ticks, in the profile's
// clock), the longest of those gaps are broken down instead: exactly what the stall figure measured.
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [file, turnsArg, framesArg, gapsFile] = process.argv.slice(2);
if (!file) throw new Error('usage: station-turns <file.cpuprofile> [turns] [frames]');
const prof = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const name = (n: ProfileNode) => {
  const f = n.callFrame;
  const where = f.url ? ` ${f.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, '')}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'}${where}`;
};
/** The outermost JS frame under the root: which callback the turn ran (timer, socket read, immediate). */
const entry = (id: number): string => {
  let cur = id;
  let outer = id;
  while (parent.has(cur)) {
    const p = parent.get(cur)!;
    if (!parent.has(p)) break;
    outer = p;
    cur = p;
  }
  return name(byId.get(outer === id ? cur : outer)!);
};

// Sample i lasts until sample i+1.
const t: number[] = [];
let acc = prof.startTime;
for (const d of prof.timeDeltas) t.push((acc += d));
type Turn = { start: number; end: number; first: number; last: number; label?: string };
const turns: Turn[] = [];
let open: Turn | undefined;
for (let i = 0; i < prof.samples.length - 1; i++) {
  const idle = byId.get(prof.samples[i])!.callFrame.functionName === '(idle)';
  if (idle) {
    if (open) turns.push(open);
    open = undefined;
  } else if (!open) open = { start: t[i], end: t[i + 1], first: i, last: i };
  else {
    open.end = t[i + 1];
    open.last = i;
  }
}
if (open) turns.push(open);
turns.sort((a, b) => b.end - b.start - (a.end - a.start));
if (gapsFile) {
  // Replace the idle-separated turns by the measured gaps, longest own CPU first.
  const gaps = (JSON.parse(readFileSync(gapsFile, 'utf8')) as { startUs: number; endUs: number; wallMs: number; cpuMs: number; processCpuMs: number }[]).sort((a, b) => b.cpuMs - a.cpuMs);
  console.log(`${gaps.length} gaps over 3 ms between the 2 ms ticks; own CPU in the longest: ${gaps.slice(0, 10).map((g) => g.cpuMs.toFixed(1)).join(', ')} ms`);
  turns.length = 0;
  for (const g of gaps) {
    const first = t.findIndex((x) => x >= g.startUs);
    let last = first;
    while (last + 1 < t.length - 1 && t[last + 1] < g.endUs) last++;
    if (first >= 0) turns.push({ start: g.startUs, end: g.endUs, first, last, label: `gap of ${g.wallMs.toFixed(2)} ms wall, ${g.cpuMs.toFixed(2)} ms loop thread CPU (process ${g.processCpuMs.toFixed(2)})` });
  }
}
const busy = turns.reduce((a, x) => a + x.end - x.start, 0);
console.log(`${turns.length} turns, ${(busy / 1000).toFixed(0)} ms busy of ${((t[t.length - 1] - prof.startTime) / 1000).toFixed(0)} ms profiled`);
const hist = [1, 2, 5, 10, 20].map((ms) => `> ${ms} ms: ${turns.filter((x) => x.end - x.start > ms * 1000).length}`);
console.log(`turns ${hist.join(', ')}`);
for (const turn of turns.slice(0, Number(turnsArg ?? 8))) {
  const self = new Map<string, number>();
  const hits = new Map<string, number>();
  const entries = new Map<string, number>();
  for (let i = turn.first; i <= turn.last; i++) {
    const d = t[i + 1] - t[i];
    const n = byId.get(prof.samples[i])!;
    self.set(name(n), (self.get(name(n)) ?? 0) + d);
    hits.set(name(n), (hits.get(name(n)) ?? 0) + 1);
    const e = entry(n.id);
    entries.set(e, (entries.get(e) ?? 0) + d);
  }
  console.log(`\n${turn.label ?? `turn of ${((turn.end - turn.start) / 1000).toFixed(2)} ms`} at +${((turn.start - prof.startTime) / 1e6).toFixed(2)} s; entered through: ${[...entries].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, v]) => `${k} ${(v / 1000).toFixed(2)}`).join('; ')}`);
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(framesArg ?? 12))) console.log(`  ${(v / 1000).toFixed(2).padStart(6)} ms ${String(hits.get(k)).padStart(4)} samples  ${k}`);
}
