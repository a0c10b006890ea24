// One benchmark run prints every figure beside its peer, with the ratio, so numbers from the same
// machine at the same moment are compared. Sections add rows; run.ts prints a table and JSON.

export interface BenchRow {
  section: string;
  metric: string;
  value: number;
  unit: string;
  /** What the same work costs in the peer the issue names, measured in the same run. */
  peer?: { name: string; value: number };
  /** Optional target text, e.g. "< 20 µs" or ">= 98 %". */
  target?: string;
  note?: string;
}

export class BenchReport {
  readonly rows: BenchRow[] = [];
  row(r: BenchRow): void {
    this.rows.push(r);
    const peer = r.peer ? `   peer ${r.peer.name}: ${fmt(r.peer.value)} ${r.unit}   ratio ${fmt(r.value / r.peer.value)}` : '';
    const target = r.target ? `   target ${r.target}` : '';
    console.log(`[${r.section}] ${r.metric}: ${fmt(r.value)} ${r.unit}${peer}${target}${r.note ? `   (${r.note})` : ''}`);
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
