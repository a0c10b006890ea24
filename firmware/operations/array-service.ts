// A gate array as one service: one health server for the box whose /metrics carries every lane's series
// (each with its `lane` label) and the box's own (process, shared list sync), whose /readyz checks every
// lane, and whose dashboard shows every lane; one conversation with systemd for the whole box.

import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import { createDashboard } from '../dashboard/dashboard.js';
import type { Lane } from '../lane/lane.js';
import type { Logger } from '../config/log.js';
import { SystemdNotifier } from '../platform/systemd.js';
import { startHealthServer, type HealthServer, type MetricsSource, type Probe } from './health.js';
import { createMetrics, type GateMetrics } from './metrics.js';
import { attachLaneMetrics, laneProbes, type ServicePlan } from './service.js';

/**
 * Prometheus text expositions merged into one: each metric family once (its HELP and TYPE from the first
 * text that has it), with the samples of every text under it. Lanes' series stay apart by their `lane` label.
 */
export function mergeExpositions(texts: readonly string[]): string {
  const families = new Map<string, { head: string[]; kinds: Set<string>; samples: string[] }>();
  const loose: string[] = [];
  for (const text of texts) {
    let current: { samples: string[] } | undefined;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const m = /^# (HELP|TYPE) (\S+)/.exec(line);
      if (m) {
        let f = families.get(m[2]);
        if (!f) families.set(m[2], (f = { head: [], kinds: new Set(), samples: [] }));
        if (!f.kinds.has(m[1])) {
          f.kinds.add(m[1]);
          f.head.push(line);
        }
        current = f;
      } else if (!line.startsWith('#')) (current?.samples ?? loose).push(line);
    }
  }
  const out: string[] = [...loose];
  for (const f of families.values()) out.push(...f.head, ...f.samples);
  return out.join('\n') + '\n';
}

/** /metrics of a gate array: every lane's registry and the box's, merged at scrape time. */
export class ArrayMetrics implements MetricsSource {
  /** The box's own series: Node process metrics and the shared list sync's failed rounds (no `lane` label). */
  readonly box = new Registry();
  private readonly syncFailures: Counter<'reason'>;
  constructor(
    readonly lanes: ReadonlyMap<string, GateMetrics>,
    opts: { station: string; prefix?: string },
  ) {
    const p = opts.prefix ?? 'gate_';
    this.box.setDefaultLabels({ station: opts.station });
    collectDefaultMetrics({ register: this.box, prefix: p });
    this.syncFailures = new Counter({ name: `${p}sync_failures_total`, help: 'Failed list syncs or journal uploads, by reason (unreachable, http-status, bad-signature, bad-body, ...)', labelNames: ['reason'] as const, registers: [this.box] });
  }
  syncFailure(reason: string): void {
    this.syncFailures.inc({ reason });
  }
  async text(): Promise<string> {
    const texts = await Promise.all([...[...this.lanes.values()].map((m) => m.text()), this.box.metrics()]);
    return mergeExpositions(texts);
  }
  get contentType(): string {
    return this.box.contentType;
  }
}

/** One GateMetrics per lane, labelled with the lane and station, without process metrics (the box has them once). */
export function createArrayMetrics(lanes: readonly { id: string; station: string }[]): Map<string, GateMetrics> {
  return new Map(lanes.map((l) => [l.id, createMetrics({ labels: { lane: l.id, station: l.station }, processMetrics: false })]));
}

export interface ArrayService {
  metrics: ArrayMetrics;
  health?: HealthServer;
  notifier: SystemdNotifier;
  stop(): Promise<void>;
}

/**
 * Start the service face of a running gate array: metrics of every lane, one health server (if the config
 * enables it) with readiness per lane (`L01.barrierLink`, `L01.journal`, …, and the shared `lists`), the
 * dashboard with every lane, sd_notify READY, STATUS and the watchdog. A health server that cannot listen
 * is logged and skipped: the lanes serve riders regardless.
 */
export async function startArrayService(
  lanes: readonly Lane[],
  opts: { log: Logger; lists: Pick<Lane['lists'], 'onSyncFailed'>; plan: ServicePlan; station: string; metrics?: Map<string, GateMetrics>; notifier?: SystemdNotifier; now?: () => number },
): Promise<ArrayService> {
  const perLane = opts.metrics ?? createArrayMetrics(lanes.map((l) => ({ id: l.id, station: l.config.lane.station })));
  const metrics = new ArrayMetrics(perLane, { station: opts.station });
  for (const lane of lanes) {
    let m = perLane.get(lane.id);
    if (!m) perLane.set(lane.id, (m = createMetrics({ labels: { lane: lane.id, station: lane.config.lane.station }, processMetrics: false })));
    attachLaneMetrics(lane, m, { listSync: false });
  }
  const offSync = opts.lists.onSyncFailed?.((kind) => metrics.syncFailure(kind));

  const ready: Record<string, Probe> = {};
  for (const lane of lanes) {
    const p = laneProbes(lane, { now: opts.now });
    ready[`${lane.id}.barrierLink`] = p.barrierLink;
    ready[`${lane.id}.journal`] = p.journal;
    // One list, one check: every lane reads the same store and policy age.
    ready.lists ??= p.lists;
  }

  const { plan, log } = opts;
  let health: HealthServer | undefined;
  let closeDashboard = () => {};
  if (plan.health.enabled) {
    const hc = plan.health;
    try {
      health = await startHealthServer({ host: hc.host, port: hc.port, maxLoopDelayMs: hc.maxLoopDelayMs, metrics, ready });
      if (plan.dashboard) {
        const dashboard = createDashboard({ lanes: [...lanes], prefix: '/dashboard', station: opts.station, log, ...plan.dashboard });
        health.mount((req, res) => dashboard.handle(req, res));
        closeDashboard = () => dashboard.close();
      }
      log.info({ event: 'health', lanes: lanes.length, url: health.url, dashboard: plan.dashboard ? `${health.url}/dashboard/` : 'off', control: plan.dashboard?.access.mode ?? 'off' }, 'health server listening');
    } catch (e) {
      log.error({ event: 'health', err: (e as Error).message, host: hc.host, port: hc.port }, 'health server could not listen (set health.port in the config)');
    }
  }

  const notifier = opts.notifier ?? new SystemdNotifier({ warn: (m) => log.warn({ event: 'systemd' }, m) });
  const onMode = () => notifier.status(arrayStatus(lanes));
  for (const lane of lanes) lane.on('mode', onMode);
  notifier.ready(arrayStatus(lanes));
  // A lane whose machine stopped cannot come back by itself: veto the ping, and systemd restarts the box.
  notifier.startWatchdog(() => lanes.every((l) => l.actor.getSnapshot().status === 'active'));

  return {
    metrics,
    health,
    notifier,
    async stop() {
      for (const lane of lanes) lane.events.off('mode', onMode);
      offSync?.();
      notifier.stopping(`gate array (${lanes.length} lanes) stopping`);
      closeDashboard();
      await health?.close();
      await notifier.close();
    },
  };
}

/** One line for systemd's STATUS: lanes by mode, then each lane not serving normally and why. */
export function arrayStatus(lanes: readonly Lane[]): string {
  const byMode = new Map<string, number>();
  const off: string[] = [];
  for (const lane of lanes) {
    const v = lane.view();
    byMode.set(v.mode, (byMode.get(v.mode) ?? 0) + 1);
    if (v.mode !== 'normal') {
      const faults = Object.keys(v.faults);
      off.push(`${v.laneId} ${v.mode}${faults.length ? ` (${faults.join(', ')})` : ''}`);
    }
  }
  const modes = [...byMode].map(([m, n]) => `${n} ${m}`).join(', ');
  return `${lanes.length} lanes: ${modes}${off.length ? `; ${off.slice(0, 8).join('; ')}${off.length > 8 ? `; +${off.length - 8} more` : ''}` : ''}`;
}
