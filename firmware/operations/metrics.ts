// Prometheus metrics for one lane (prom-client). One private Registry per runtime, so tests and the
// simulator can run many lanes in one process without clashing names. The decision path does not go
// through prom-client's label handling (its label children re-validate and re-hash labels on every
// call): decisions and latencies land in plain slots found by two Map lookups, and are turned into
// Prometheus samples only when scraped (FastCounter, FastHistogram below).
//
// Drivers never import firmware/, so driver counters reach here either pushed by the composition root
// (metrics.barrierError(...)) or pulled at scrape time from the counters the seam declares
// (drivers/seams.ts BarrierLink.counters, mapped by operations/service.ts barrierStats() into BarrierLinkStats).

import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { CredentialKind } from '../../protocol/credential.js';
import type { ReasonCode } from '../../protocol/reasons.js';

/** Decision latency buckets in seconds: 0.1 ms to 1 s (the decision timeout). */
export const DECISION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
/** QR decode time buckets in seconds: one frame decode is 1-100 ms on an ARM board. */
export const DECODE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
/** fsync time buckets in seconds: eMMC/SD fsyncs range from 0.1 ms to hundreds of ms. */
export const FSYNC_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export type MetricKind = CredentialKind | 'unknown';

/** Monotonic counters a barrier link driver may expose; pulled at scrape time. */
export interface BarrierLinkStats {
  /** Errors by class, e.g. { 'bad-crc': 3, timeout: 1 }. */
  errors: Record<string, number>;
  retransmits: number;
  resyncs: number;
  bytesDiscarded: number;
}

/** What the list metrics read at scrape time. */
export interface ListState {
  version: number;
  /** When the back office published this version (ms since epoch). */
  publishedAtMs: number;
}

export interface MetricsOptions {
  /** Labels on every series (lane, station). */
  labels?: Record<string, string>;
  /** Also export Node process metrics (RSS, heap, event loop lag, GC): on by default. */
  processMetrics?: boolean;
  /** Wall time for list age; the simulator passes its virtual clock. */
  now?: () => number;
  /** Metric name prefix. */
  prefix?: string;
}

/** Counter children keyed by their label values joined with '\0'. */
class BoundCounter<L extends string> {
  private readonly children = new Map<string, { inc(v?: number): void }>();
  constructor(readonly counter: Counter<L>) {}
  inc(labels: Record<L, string>, key: string, by = 1): void {
    let c = this.children.get(key);
    if (!c) {
      c = this.counter.labels(labels);
      this.children.set(key, c);
    }
    c.inc(by);
  }
}

type Labels = Record<string, string>;

/** A counter whose label sets are slots held by the caller: inc is one add. Rendered at scrape time. */
class FastCounter {
  readonly type = 'counter';
  readonly aggregator = 'sum';
  private readonly slots: { labels: Labels; value: number }[] = [];
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  slot(labels: Labels): { value: number } {
    const s = { labels, value: 0 };
    this.slots.push(s);
    return s;
  }
  get() {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.slots.map((s) => ({ labels: s.labels, value: s.value })) };
  }
  reset(): void {
    for (const s of this.slots) s.value = 0;
  }
}

interface HistogramSlot {
  labels: Labels;
  /** Non-cumulative counts per bucket; the last one is +Inf. */
  counts: Float64Array;
  sum: number;
  count: number;
}

/** A histogram whose label sets are slots held by the caller: observe is a short scan and three adds. */
class FastHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly slots: HistogramSlot[] = [];
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
  ) {}
  slot(labels: Labels): HistogramSlot {
    const s = { labels, counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 };
    this.slots.push(s);
    return s;
  }
  observe(s: HistogramSlot, v: number): void {
    const b = this.buckets;
    let i = 0;
    while (i < b.length && v > b[i]) i++;
    s.counts[i]++;
    s.sum += v;
    s.count++;
  }
  get() {
    const values: { labels: Labels; sharedLabels: Labels; value: number; metricName: string }[] = [];
    for (const s of this.slots) {
      let acc = 0;
      this.buckets.forEach((le, i) => {
        acc += s.counts[i];
        values.push({ labels: { le: String(le) }, sharedLabels: s.labels, value: acc, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf' }, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
  reset(): void {
    for (const s of this.slots) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}

export class GateMetrics {
  readonly registry = new Registry();
  private readonly now: () => number;

  private readonly decisions: FastCounter;
  private readonly decisionSeconds: FastHistogram;
  /** kind → reason → [refused slot, granted slot]; kind → latency slot. */
  private readonly decisionSlots = new Map<string, Map<string, [{ value: number } | undefined, { value: number } | undefined]>>();
  private readonly latencySlots = new Map<string, HistogramSlot>();

  private readonly barrierErrors: Counter<'error'>;
  private readonly barrierErrorsBound: BoundCounter<'error'>;
  private readonly barrierRetransmits: Counter;
  private readonly barrierResyncs: Counter;
  private readonly barrierBytesDiscarded: Counter;
  private readonly barrierUp: Gauge;

  private readonly readerFaults: Counter<'source' | 'fault'>;
  private readonly readerFaultsBound: BoundCounter<'source' | 'fault'>;
  private readonly cameraFaults: Counter<'source' | 'fault'>;
  private readonly cameraFaultsBound: BoundCounter<'source' | 'fault'>;
  private readonly qrDecodeSeconds: FastHistogram;
  private readonly qrDecodeSlots: Record<'found' | 'none', HistogramSlot>;

  private readonly listVersion: Gauge;
  private readonly listAge: Gauge;
  private listState: (() => ListState | undefined) | undefined;

  private readonly journalBacklog: Gauge;
  private journalBacklogFn: (() => number) | undefined;
  private readonly fsyncSeconds: FastHistogram;
  private readonly fsyncSlot: HistogramSlot;
  private readonly syncFailures: Counter<'reason'>;
  private readonly syncFailuresBound: BoundCounter<'reason'>;
  private readonly laneMode: Gauge<'mode'>;
  private currentMode: string | undefined;
  private readonly badInput: Counter<'where' | 'error'>;
  private readonly badInputBound: BoundCounter<'where' | 'error'>;

  private barrierStats: (() => BarrierLinkStats | undefined) | undefined;
  /** Last pulled driver totals, so a scrape adds only the difference (and a driver restart is a reset). */
  private lastBarrier: BarrierLinkStats = { errors: {}, retransmits: 0, resyncs: 0, bytesDiscarded: 0 };

  constructor(opts: MetricsOptions = {}) {
    const p = opts.prefix ?? 'gate_';
    const registers = [this.registry];
    this.now = opts.now ?? Date.now;
    if (opts.labels) this.registry.setDefaultLabels(opts.labels);
    // Pull the driver's counters before any barrier counter is read.
    const self = this;

    this.decisions = new FastCounter(`${p}decisions_total`, 'Decisions by credential kind, reason code and whether the gate opened');
    this.decisionSeconds = new FastHistogram(
      `${p}decision_duration_seconds`,
      'Time from credential presented to decision made (journal record durable), by credential kind',
      DECISION_BUCKETS,
    );
    // FastCounter/FastHistogram have the members prom-client's registry reads (name, help, type,
    // aggregator, get, reset), not its class's private ones: the cast is that structural match.
    this.registry.registerMetric(this.decisions as never);
    this.registry.registerMetric(this.decisionSeconds as never);

    this.barrierErrors = new Counter({
      name: `${p}barrier_link_errors_total`,
      help: 'Barrier link errors by class (bad-crc, timeout, framing, nak, ...)',
      labelNames: ['error'] as const,
      registers,
      collect() {
        self.pullBarrier();
      },
    });
    this.barrierErrorsBound = new BoundCounter(this.barrierErrors);
    this.barrierRetransmits = new Counter({
      name: `${p}barrier_link_retransmits_total`,
      help: 'Barrier commands sent again after no acknowledgement',
      registers,
      collect() {
        self.pullBarrier();
      },
    });
    this.barrierResyncs = new Counter({
      name: `${p}barrier_link_resyncs_total`,
      help: 'Times the barrier frame parser lost and regained frame sync',
      registers,
      collect() {
        self.pullBarrier();
      },
    });
    this.barrierBytesDiscarded = new Counter({
      name: `${p}barrier_link_bytes_discarded_total`,
      help: 'Bytes skipped by the barrier frame parser while resyncing',
      registers,
      collect() {
        self.pullBarrier();
      },
    });
    this.barrierUp = new Gauge({ name: `${p}barrier_link_up`, help: '1 when the barrier board answers, else 0', registers });

    this.readerFaults = new Counter({
      name: `${p}reader_faults_total`,
      help: 'Card reader faults (reader unplugged, pcscd gone, ...) by source and fault class',
      labelNames: ['source', 'fault'] as const,
      registers,
    });
    this.readerFaultsBound = new BoundCounter(this.readerFaults);
    this.cameraFaults = new Counter({
      name: `${p}camera_faults_total`,
      help: 'QR camera faults (device gone, no frames, ffmpeg exited, ...) by source and fault class',
      labelNames: ['source', 'fault'] as const,
      registers,
    });
    this.cameraFaultsBound = new BoundCounter(this.cameraFaults);
    this.qrDecodeSeconds = new FastHistogram(`${p}qr_decode_duration_seconds`, 'Time to decode one camera frame, by whether a code was found', DECODE_BUCKETS);
    this.registry.registerMetric(this.qrDecodeSeconds as never);
    this.qrDecodeSlots = { found: this.qrDecodeSeconds.slot({ result: 'found' }), none: this.qrDecodeSeconds.slot({ result: 'none' }) };

    this.listVersion = new Gauge({
      name: `${p}list_version`,
      help: 'Version of the allowlist/denylist snapshot in use (0 = nothing synced)',
      registers,
      collect() {
        const s = self.listState?.();
        if (s) this.set(s.version);
      },
    });
    this.listAge = new Gauge({
      name: `${p}list_age_seconds`,
      help: 'Seconds since the back office published the list snapshot in use, computed at scrape time',
      registers,
      collect() {
        const s = self.listState?.();
        if (s) this.set(Math.max(0, (self.now() - s.publishedAtMs) / 1000));
      },
    });

    this.journalBacklog = new Gauge({
      name: `${p}journal_backlog_records`,
      help: 'Journal records durable on the box but not yet acknowledged by the back office',
      registers,
      collect() {
        if (self.journalBacklogFn) this.set(self.journalBacklogFn());
      },
    });
    this.fsyncSeconds = new FastHistogram(`${p}journal_fsync_duration_seconds`, 'Time of one journal fsync (one group commit)', FSYNC_BUCKETS);
    this.registry.registerMetric(this.fsyncSeconds as never);
    this.fsyncSlot = this.fsyncSeconds.slot({});
    this.syncFailures = new Counter({
      name: `${p}sync_failures_total`,
      help: 'Failed list syncs or journal uploads, by reason (unreachable, http-status, bad-signature, bad-body, ...)',
      labelNames: ['reason'] as const,
      registers,
    });
    this.syncFailuresBound = new BoundCounter(this.syncFailures);
    this.laneMode = new Gauge({
      name: `${p}lane_mode`,
      help: 'Lane mode: 1 for the current mode, 0 for modes the lane was in before',
      labelNames: ['mode'] as const,
      registers,
    });
    this.badInput = new Counter({
      name: `${p}bad_input_total`,
      help: 'Rejected input (frames, APDU answers, QR payloads, list files, HTTP bodies) by where and error class',
      labelNames: ['where', 'error'] as const,
      registers,
    });
    this.badInputBound = new BoundCounter(this.badInput);

    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: p });
  }

  /** One decision: credential kind, reason code and latency in seconds. Hot path: three Map lookups, four adds. */
  decision(kind: MetricKind, reason: ReasonCode, seconds: number, grant = reason === 'ok'): void {
    // A clock step can make a latency negative or NaN: count the decision, file the time as 0.
    if (!(seconds >= 0)) seconds = 0;
    let byReason = this.decisionSlots.get(kind);
    if (!byReason) this.decisionSlots.set(kind, (byReason = new Map()));
    let pair = byReason.get(reason);
    if (!pair) byReason.set(reason, (pair = [undefined, undefined]));
    const g = grant ? 1 : 0;
    const slot = pair[g] ?? (pair[g] = this.decisions.slot({ kind, reason, grant: grant ? 'true' : 'false' }));
    slot.value++;
    let h = this.latencySlots.get(kind);
    if (!h) this.latencySlots.set(kind, (h = this.decisionSeconds.slot({ kind })));
    this.decisionSeconds.observe(h, seconds);
  }

  barrierError(error: string, by = 1): void {
    this.barrierErrorsBound.inc({ error }, error, by);
  }
  barrierRetransmit(by = 1): void {
    this.barrierRetransmits.inc(by);
  }
  barrierResync(bytesDiscarded = 0): void {
    this.barrierResyncs.inc();
    if (bytesDiscarded > 0) this.barrierBytesDiscarded.inc(bytesDiscarded);
  }
  barrierLink(up: boolean): void {
    this.barrierUp.set(up ? 1 : 0);
  }
  /** Read a driver's monotonic link counters at every scrape (adds the difference since the last one). */
  pullBarrierStats(fn: () => BarrierLinkStats | undefined): void {
    this.barrierStats = fn;
  }

  readerFault(source: string, fault: string): void {
    this.readerFaultsBound.inc({ source, fault }, `${source}\0${fault}`);
  }
  cameraFault(source: string, fault: string): void {
    this.cameraFaultsBound.inc({ source, fault }, `${source}\0${fault}`);
  }
  qrDecode(seconds: number, found: boolean): void {
    this.qrDecodeSeconds.observe(this.qrDecodeSlots[found ? 'found' : 'none'], seconds);
  }

  /** Where list version and age come from; read at scrape time, so the age is always current. */
  watchLists(fn: () => ListState | undefined): void {
    this.listState = fn;
  }
  /** Where the journal backlog comes from; read at scrape time. */
  watchJournalBacklog(fn: () => number): void {
    this.journalBacklogFn = fn;
  }
  journalFsync(seconds: number): void {
    this.fsyncSeconds.observe(this.fsyncSlot, seconds);
  }
  syncFailure(reason: string): void {
    this.syncFailuresBound.inc({ reason }, reason);
  }
  inputRejected(where: string, error: string): void {
    this.badInputBound.inc({ where, error }, `${where}\0${error}`);
  }

  /** The lane entered `mode`: its series becomes 1, the previous one 0. */
  mode(mode: string): void {
    if (this.currentMode === mode) return;
    if (this.currentMode !== undefined) this.laneMode.labels(this.currentMode).set(0);
    this.laneMode.labels(mode).set(1);
    this.currentMode = mode;
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
  get contentType(): string {
    return this.registry.contentType;
  }

  private pullBarrier(): void {
    const s = this.barrierStats?.();
    if (!s) return;
    const last = this.lastBarrier;
    const delta = (now: number, before: number) => (now >= before ? now - before : now);
    for (const [error, n] of Object.entries(s.errors)) {
      const d = delta(n, last.errors[error] ?? 0);
      if (d > 0) this.barrierError(error, d);
    }
    const r = delta(s.retransmits, last.retransmits);
    if (r > 0) this.barrierRetransmits.inc(r);
    const y = delta(s.resyncs, last.resyncs);
    if (y > 0) this.barrierResyncs.inc(y);
    const b = delta(s.bytesDiscarded, last.bytesDiscarded);
    if (b > 0) this.barrierBytesDiscarded.inc(b);
    this.lastBarrier = { errors: { ...s.errors }, retransmits: s.retransmits, resyncs: s.resyncs, bytesDiscarded: s.bytesDiscarded };
  }
}

export function createMetrics(opts?: MetricsOptions): GateMetrics {
  return new GateMetrics(opts);
}
