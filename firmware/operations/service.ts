// A lane as a service on a box: its metrics, its health server (/metrics, /healthz, /readyz) and its
// conversation with systemd (READY, STATUS, watchdog, STOPPING). Composition only: the lane runtime
// knows nothing of this file; `gate run` wires it.

import { constants } from 'node:fs';
import { access, statfs } from 'node:fs/promises';
import type { InspectionEvent } from 'xstate';
import type { BarrierLinkCounters } from '../../drivers/seams.js';
import type { LaneConfig } from '../config/config.js';
import { createDashboard, type DashboardAccess } from '../dashboard/dashboard.js';
import { openSupervisorFile } from '../dashboard/supervisors.js';
import { healthConfig, listFreshnessProbe, startHealthServer, type HealthConfig, type HealthServer, type Probe } from './health.js';
import type { Lane } from '../lane/lane.js';
import type { GateEvent } from '../lane/gate-machine.js';
import type { Logger } from '../config/log.js';
import { createMetrics, type BarrierLinkStats, type GateMetrics } from './metrics.js';
import { SystemdNotifier } from '../platform/systemd.js';

/**
 * An XState inspector for startLane({ inspect }) that turns driver events into metrics: reader and
 * camera faults by source and fault class, and the barrier link state (LINK is a fault, not an alarm).
 */
export function laneInspector(metrics: GateMetrics): (e: InspectionEvent) => void {
  return (e) => {
    if (e.type !== '@xstate.event') return;
    // The lane's actor only ever receives GateEvents (and XState's own, which match no case below).
    const ev = e.event as GateEvent;
    if (ev.type === 'SOURCE_FAULT') {
      const source = ev.source ?? 'unknown';
      const fault = faultClass(ev.detail);
      if (/^(camera|qr)/i.test(source)) metrics.cameraFault(source, fault);
      else metrics.readerFault(source, fault);
    } else if (ev.type === 'LINK') {
      metrics.barrierLink(ev.up);
      if (!ev.up) metrics.barrierError('link-down');
    }
  };
}

/** A short, bounded label value from a driver's fault text (label cardinality must stay small). */
function faultClass(detail: string | undefined): string {
  const d = (detail ?? '').toLowerCase();
  if (/unplug|removed|gone|not present|no such/.test(d)) return 'unplugged';
  if (/pcscd|service not available|no service/.test(d)) return 'pcscd';
  if (/timeout|no frame|frozen|stall/.test(d)) return 'no-data';
  if (/exit|crash|killed/.test(d)) return 'process-exited';
  return 'other';
}

/**
 * Decisions and mode changes into metrics; list version/age read at scrape time. `listSync: false` when the
 * lists are shared by several lanes (a gate array): their failed rounds are counted once, for the box.
 */
export function attachLaneMetrics(lane: Lane, metrics: GateMetrics, opts: { listSync?: boolean } = {}): void {
  lane.on('decision', (e) => metrics.decision(e.decision.kind, e.decision.reason, Math.max(0, e.decidedAtMs - e.atMs) / 1000, e.decision.grant));
  lane.on('mode', (e) => metrics.mode(e.to));
  metrics.mode(lane.view().mode);
  metrics.watchLists(() => listFreshness(lane));
  metrics.barrierLink(!Object.hasOwn(lane.view().faults, 'barrier-link'));
  // What the seams expose (each optional): the journal's backlog read at scrape time and every
  // group-commit fsync timed; list sync's failed rounds; each camera decode's time; the barrier link's totals.
  const { journal, lists, barrier } = lane;
  if (journal.stats) metrics.watchJournalBacklog(() => journal.stats?.().backlog ?? 0);
  journal.onFsync?.((ms) => metrics.journalFsync(ms / 1000));
  if (opts.listSync !== false) lists.onSyncFailed?.((kind) => metrics.syncFailure(kind));
  for (const s of lane.sources) s.onDecode?.((r) => metrics.qrDecode(r.decodeMs / 1000, r.texts.length > 0));
  if (barrier.counters) metrics.pullBarrierStats(() => barrierStats(barrier.counters));
}

/** A barrier link's counters (drivers/seams.ts BarrierLinkCounters) as metrics stats; a missing or non-finite count reads 0. */
export function barrierStats(c: Partial<BarrierLinkCounters> | undefined): BarrierLinkStats | undefined {
  if (!c) return undefined;
  const n = (k: keyof BarrierLinkCounters) => {
    const v = c[k];
    return typeof v === 'number' && Number.isFinite(v) ? v : 0;
  };
  return {
    errors: { 'bad-crc': n('badCrc'), 'bad-frame': n('badFrames'), 'command-failed': n('commandFailures'), 'status-resync': n('resyncs') },
    retransmits: n('retransmits'),
    // The parser re-aligning on a frame start after a lost or extra byte.
    resyncs: n('realigns'),
    bytesDiscarded: n('bytesDiscarded'),
  };
}

/** The journal's directory from its config section, when it is on disk. */
function journalDir(config: LaneConfig): string | undefined {
  const j = config.journal;
  const d = j.dir ?? j.directory;
  return typeof d === 'string' ? d : undefined;
}

/** Readiness: barrier link up, lists fresh per policy, journal writable. */
export function laneProbes(lane: Lane, opts: { now?: () => number; journalDir?: string } = {}): Record<string, Probe> {
  const dir = opts.journalDir ?? journalDir(lane.config);
  return {
    barrierLink: () => {
      const f = lane.view().faults;
      const down = f['barrier-link'];
      if (down) return { ok: false, detail: down };
      return f['barrier-fault'] ? { ok: false, detail: f['barrier-fault'] } : { ok: true, detail: 'barrier board answering' };
    },
    lists: listFreshnessProbe(() => listFreshness(lane), lane.config.policy.listMaxAgeSeconds, opts.now),
    journal: async () => {
      // A journal that knows whether it can write (the file journal: disk full, I/O error) says so first.
      const h = lane.journal.health?.();
      if (h && !h.writable) return { ok: false, detail: `journal ${h.state}: ${h.detail}` };
      if (!dir) return { ok: true, detail: `${lane.config.journal.type} journal (no directory)` };
      await access(dir, constants.W_OK);
      const s = await statfs(dir);
      const free = Number(s.bavail) * Number(s.bsize);
      return free > 16 * 1024 * 1024 ? { ok: true, detail: `${dir} writable, ${Math.floor(free / 1048576)} MB free` } : { ok: false, detail: `${dir} has only ${Math.floor(free / 1024)} kB free` };
    },
  };
}

/** What the service will serve, read from the config and the disk before the lane starts (so a bad supervisors file fails first). */
export interface ServicePlan {
  health: HealthConfig;
  /** Absent: no dashboard on the health port. */
  dashboard?: { access: DashboardAccess; allowedHosts: string[] };
}

/**
 * Read what the lane's service needs: the health section and the dashboard's access (read-only, or
 * supervisors from the file `dashboard.control.supervisors` names). Throws ConfigError naming the field.
 */
export async function planLaneService(config: Pick<LaneConfig, 'health' | 'dashboard'>, opts: { log?: Logger } = {}): Promise<ServicePlan> {
  const health = healthConfig({ health: config.health });
  const d = config.dashboard;
  if (!health.enabled || !d.enabled) return { health };
  if (!d.control) return { health, dashboard: { access: { mode: 'read-only' }, allowedHosts: d.allowedHosts } };
  const c = d.control;
  const directory = await openSupervisorFile(c.supervisors, (m) => opts.log?.error({ event: 'supervisors-file', err: m }, 'supervisors file unreadable'));
  return {
    health,
    dashboard: {
      access: { mode: 'supervisors', directory, sessionMs: c.sessionMinutes * 60_000, maxSessions: c.maxSessions, loginFailures: c.loginFailures, loginWindowMs: c.loginWindowSeconds * 1000 },
      allowedHosts: d.allowedHosts,
    },
  };
}

export interface LaneService {
  metrics: GateMetrics;
  health?: HealthServer;
  notifier: SystemdNotifier;
  stop(): Promise<void>;
}

/**
 * Start the service face of a running lane: health server (if enabled in config), sd_notify READY and
 * the watchdog. Pass the same metrics given to laneInspector() so driver metrics land in one registry.
 */
export async function startLaneService(
  lane: Lane,
  opts: { log: Logger; metrics?: GateMetrics; notifier?: SystemdNotifier; now?: () => number; plan?: ServicePlan },
): Promise<LaneService> {
  const { config } = lane;
  const plan = opts.plan ?? (await planLaneService(config, { log: opts.log }));
  const metrics = opts.metrics ?? createMetrics({ labels: { lane: config.lane.id, station: config.lane.station } });
  attachLaneMetrics(lane, metrics);
  const hc = plan.health;
  let health: HealthServer | undefined;
  let closeDashboard = () => {};
  if (hc.enabled) {
    try {
      health = await startHealthServer({ host: hc.host, port: hc.port, maxLoopDelayMs: hc.maxLoopDelayMs, metrics, ready: laneProbes(lane, { now: opts.now }) });
      // The station dashboard for this lane, on the same server: one port to open on the box. Metrics and
      // health stay open to whoever reaches the port; the dashboard's actions need what plan.dashboard.access says.
      if (plan.dashboard) {
        const dashboard = createDashboard({ lanes: [lane], prefix: '/dashboard', station: config.lane.station, log: opts.log, ...plan.dashboard });
        health.mount((req, res) => dashboard.handle(req, res));
        closeDashboard = () => dashboard.close();
      }
      opts.log.info({ lane: lane.id, event: 'health', url: health.url, dashboard: plan.dashboard ? `${health.url}/dashboard/` : 'off', control: plan.dashboard?.access.mode ?? 'off' }, 'health server listening');
    } catch (e) {
      // Riders come first: a lane without its health endpoint still serves; monitoring sees it missing.
      opts.log.error({ lane: lane.id, event: 'health', err: (e as Error).message, host: hc.host, port: hc.port }, 'health server could not listen (set health.port in the config)');
    }
  }

  const notifier = opts.notifier ?? new SystemdNotifier({ warn: (m) => opts.log.warn({ lane: lane.id, event: 'systemd' }, m) });
  const status = () => {
    const v = lane.view();
    const faults = Object.keys(v.faults);
    return `lane ${v.laneId}: ${v.mode}, list v${v.listVersion}${faults.length ? `, faults: ${faults.join(', ')}` : ''}`;
  };
  const onMode = () => notifier.status(status());
  lane.on('mode', onMode);
  notifier.ready(status());
  // A stopped or crashed machine vetoes the ping: systemd then restarts us.
  notifier.startWatchdog(() => lane.actor.getSnapshot().status === 'active');

  return {
    metrics,
    health,
    notifier,
    async stop() {
      lane.events.off('mode', onMode);
      notifier.stopping(`lane ${lane.id} stopping`);
      closeDashboard();
      await health?.close();
      await notifier.close();
    },
  };
}

/** List age counts from the last verified freshness statement when the lists have one (as the lane's does). */
function listFreshness(lane: Lane): { version: number; publishedAtMs: number } {
  const c = lane.lists.current();
  return { version: c.version, publishedAtMs: lane.lists.freshAtMs?.() ?? c.publishedAtMs };
}
