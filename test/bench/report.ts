// One benchmark run prints every figure beside its peer, with the ratio, so numbers from the same
// machine at the same moment are compared. Sections add rows; run.ts prints a table and JSON.

export interface BenchRow {
  section: string;
  metric: string;
  value: number;
  unit: string;
  /** Where `value` is the median of repeated runs: their spread (min and max). */
  spread?: Spread;
  /** What the same work costs in the peer the issue names, measured in the same run. */
  peer?: { name: string; value: number; spread?: Spread };
  /** Optional target text, e.g. "< 20 µs" or ">= 98 %". */
  target?: string;
  note?: string;
}

/** The range of repeated runs around a median. */
export interface Spread {
  min: number;
  max: number;
  runs: number;
}

export class BenchReport {
  readonly rows: BenchRow[] = [];
  row(r: BenchRow): void {
    this.rows.push(r);
    const range = (s?: Spread) => (s ? ` [${fmt(s.min)}–${fmt(s.max)}, median of ${s.runs}]` : '');
    const peer = r.peer ? `   peer ${r.peer.name}: ${fmt(r.peer.value)} ${r.unit}${range(r.peer.spread)}   ratio ${fmt(r.value / r.peer.value)}` : '';
    const target = r.target ? `   target ${r.target}` : '';
    console.log(`[${r.section}] ${r.metric}: ${fmt(r.value)} ${r.unit}${range(r.spread)}${peer}${target}${r.note ? `   (${r.note})` : ''}`);
  }
}

export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const a = Math.abs(n);
  if (a >= 1000) return n.toFixed(0);
  if (a >= 10) return n.toFixed(1);
  if (a >= 0.01) return n.toFixed(3);
  return n.toPrecision(3);
}

/** Percentile of an unsorted sample (copies and sorts). */
export function percentile(samples: ArrayLike<number>, p: number): number {
  const a = Float64Array.from(samples).sort();
  if (a.length === 0) return NaN;
  const i = Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1));
  return a[i];
}

/** Median of repeated runs and their min–max. */
export function summary(xs: readonly number[]): { median: number; spread: Spread } {
  const a = Float64Array.from(xs).sort();
  const mid = a.length >> 1;
  const median = a.length % 2 ? a[mid] : (a[mid - 1] + a[mid]) / 2;
  return { median, spread: { min: a[0], max: a[a.length - 1], runs: a.length } };
}

/**
 * Two contenders measured `rounds` times, interleaved with the order alternating (A B, B A, A B, …), so
 * a load change on a shared machine hits both alike. Returns each run's result, in round order.
 */
export async function interleaved<A, B>(rounds: number, a: () => A | Promise<A>, b: () => B | Promise<B>): Promise<{ a: A[]; b: B[] }> {
  const out = { a: [] as A[], b: [] as B[] };
  for (let k = 0; k < rounds; k++) {
    if (k % 2 === 0) {
      out.a.push(await a());
      out.b.push(await b());
    } else {
      out.b.push(await b());
      out.a.push(await a());
    }
  }
  return out;
}

/** True when `p` settles within `ms`; false when the wait ran out (the bench counts those). */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const out = await Promise.race([p.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))]);
  clearTimeout(timer);
  return out;
}
