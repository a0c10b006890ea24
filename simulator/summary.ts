// The judge's running totals: every answer is folded into counters as it comes, so a run holds the same
// few numbers after a million riders as after ten. Latencies go into a histogram of 1 % wide buckets
// (a percentile is read to within 1 %); wrong answers are kept as a bounded sample for the report.

/** What the tally needs of one judged answer. */
export interface Judged {
  verdict: 'ok' | 'false-accept' | 'false-reject' | 'unanswered' | 'wrong-reason';
  observed: { grant: boolean; reason?: string } | 'unanswered';
  latencyMs: number;
}

/** Wrong answers kept word for word in a run's report; the counts cover them all. */
export const FAILURE_SAMPLE = 20;

export class Tally {
  admitted = 0;
  refused = 0;
  readonly verdicts = { ok: 0, 'false-accept': 0, 'false-reject': 0, unanswered: 0, 'wrong-reason': 0 };
  readonly byReason: Record<string, number> = {};
  readonly latency = new LatencyHistogram();
  /** The first FAILURE_SAMPLE wrong answers, as the formatter put them. */
  readonly failures: string[] = [];

  constructor(private readonly describe: (j: Judged) => string = (j) => j.verdict) {}

  add(j: Judged): void {
    this.verdicts[j.verdict]++;
    if (j.verdict !== 'ok' && this.failures.length < FAILURE_SAMPLE) this.failures.push(this.describe(j));
    if (j.observed === 'unanswered') return;
    this.latency.add(j.latencyMs);
    const key = j.observed.reason ?? (j.observed.grant ? 'ok' : 'unknown');
    this.byReason[key] = (this.byReason[key] ?? 0) + 1;
    if (j.observed.grant) this.admitted++;
    else this.refused++;
  }
}

const MIN_MS = 0.001;
const RATIO = 1.01;
/** 1 µs to beyond 1000 s in 1 % steps; anything longer lands in the last bucket (the max is kept exactly). */
const BUCKETS = Math.ceil(Math.log(1e6 / MIN_MS) / Math.log(RATIO)) + 2;

export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  max = 0;

  add(ms: number): void {
    const i = ms <= MIN_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / MIN_MS) / Math.log(RATIO)));
    this.counts[i]++;
    this.count++;
    if (ms > this.max) this.max = ms;
  }

  /** Fold another histogram in (a line's latency from its stations'). */
  merge(other: LatencyHistogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i] += other.counts[i];
    this.count += other.count;
    this.max = Math.max(this.max, other.max);
  }

  /** The p-th percentile (the ⌈p·n/100⌉-th smallest), as its bucket's upper edge (never above the max); 0 when empty. */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(this.max, MIN_MS * RATIO ** i);
    }
    return this.max;
  }
}
