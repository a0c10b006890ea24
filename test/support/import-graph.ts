// The import graph of the source folders, checked against the rules each folder's README states.
// A README states its rule in one line: `May import: \`protocol/\`, \`firmware/config/\``. A file may
// import anything in its own room (the nearest folder above it whose README has such a line), and
// what that line lists (by path prefix). Type-only imports count: they couple rooms as much.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

export const SOURCE_FOLDERS = ['protocol', 'drivers', 'firmware', 'simulator'];
/** Past this many lines a file must say why in its opening comment (`// Why this file is long: …`). */
export const MAX_LINES = 500;

export interface ImportProblems {
  cycles: string[][];
  forbidden: { from: string; to: string; room: string }[];
  /** Folders holding source files with no README rule above them (up to their top folder). */
  unruled: string[];
  long: { file: string; lines: number }[];
  files: number;
}

const posix = (p: string) => p.split(sep).join('/');

function sourceFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) {
        if (n !== 'node_modules' && n !== 'dist') walk(p);
      } else if (/\.(ts|mts)$/.test(n) && !n.endsWith('.d.ts')) out.push(posix(relative(root, p)));
    }
  };
  for (const f of SOURCE_FOLDERS) if (existsSync(join(root, f))) walk(join(root, f));
  return out.sort();
}

/** Relative import specifiers of a source text: static imports and re-exports, bare imports, dynamic import(). */
export function importSpecifiers(src: string): string[] {
  const specs: string[] = [];
  for (const m of src.matchAll(/^\s*(?:import|export)\s[^'"`;]*?\sfrom\s+['"](\.[^'"]+)['"]/gm)) specs.push(m[1]);
  for (const m of src.matchAll(/^\s*import\s+['"](\.[^'"]+)['"]/gm)) specs.push(m[1]);
  for (const m of src.matchAll(/\bimport\(\s*['"](\.[^'"]+)['"]\s*\)/g)) specs.push(m[1]);
  return specs;
}

function resolveSpecifier(root: string, from: string, spec: string): string | undefined {
  const base = resolve(root, dirname(from), spec).replace(/\.js$/, '');
  for (const c of [`${base}.ts`, `${base}.mts`, join(base, 'index.ts')]) if (existsSync(c)) return posix(relative(root, c));
  return undefined;
}

/** The folder rule for a folder: its own README's `May import:` line, else its parent's (up to the top folder). */
function roomOf(root: string, dir: string, cache: Map<string, { room: string; allowed: string[] } | null>): { room: string; allowed: string[] } | null {
  if (cache.has(dir)) return cache.get(dir)!;
  let found: { room: string; allowed: string[] } | null = null;
  const readme = join(root, dir, 'README.md');
  const line = existsSync(readme) ? readFileSync(readme, 'utf8').split('\n').find((l) => /^May import:/.test(l.trim())) : undefined;
  if (line) found = { room: `${dir}/`, allowed: [...line.matchAll(/`([^`]+)`/g)].map((m) => m[1].replace(/\/?$/, '/')) };
  else if (dir.includes('/')) found = roomOf(root, posix(dirname(dir)), cache);
  cache.set(dir, found);
  return found;
}

export function importProblems(root: string): ImportProblems {
  const files = sourceFiles(root);
  const edges = new Map<string, string[]>();
  const problems: ImportProblems = { cycles: [], forbidden: [], unruled: [], long: [], files: files.length };
  const rooms = new Map<string, { room: string; allowed: string[] } | null>();
  for (const f of files) {
    const src = readFileSync(join(root, f), 'utf8');
    const lines = src.split('\n').length;
    if (lines > MAX_LINES && !/^\/\/ Why this file is long:/m.test(src.split('\n').slice(0, 20).join('\n'))) problems.long.push({ file: f, lines });
    const targets = importSpecifiers(src).map((s) => resolveSpecifier(root, f, s)).filter((t): t is string => t !== undefined);
    edges.set(f, targets);
    const rule = roomOf(root, posix(dirname(f)), rooms);
    if (!rule) {
      if (!problems.unruled.includes(posix(dirname(f)))) problems.unruled.push(posix(dirname(f)));
      continue;
    }
    for (const t of targets) {
      if (t.startsWith(rule.room) || rule.allowed.some((a) => t.startsWith(a))) continue;
      problems.forbidden.push({ from: f, to: t, room: rule.room });
    }
  }
  problems.cycles = stronglyConnected(edges).filter((c) => c.length > 1);
  return problems;
}

/** Tarjan's strongly connected components (iterative: deep chains must not overflow the stack). */
function stronglyConnected(edges: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>(), low = new Map<string, number>(), onStack = new Set<string>();
  const stack: string[] = [], out: string[][] = [];
  for (const start of edges.keys()) {
    if (index.has(start)) continue;
    const work: { v: string; i: number }[] = [{ v: start, i: 0 }];
    index.set(start, next); low.set(start, next); next++; stack.push(start); onStack.add(start);
    while (work.length) {
      const top = work[work.length - 1];
      const succ = (edges.get(top.v) ?? []).filter((w) => edges.has(w));
      if (top.i < succ.length) {
        const w = succ[top.i++];
        if (!index.has(w)) {
          index.set(w, next); low.set(w, next); next++; stack.push(w); onStack.add(w);
          work.push({ v: w, i: 0 });
        } else if (onStack.has(w)) low.set(top.v, Math.min(low.get(top.v)!, index.get(w)!));
        continue;
      }
      work.pop();
      if (work.length) low.set(work[work.length - 1].v, Math.min(low.get(work[work.length - 1].v)!, low.get(top.v)!));
      if (low.get(top.v) === index.get(top.v)) {
        const c: string[] = [];
        let w: string;
        do { w = stack.pop()!; onStack.delete(w); c.push(w); } while (w !== top.v);
        out.push(c.reverse());
      }
    }
  }
  return out;
}
