// A lane as a service on a box: its metrics, its health server (/metrics, /healthz, /readyz) and its
// conversation with systemd (READY, STATUS, watchdog, STOPPING). Composition only: the lane runtime
// knows nothing of this file; `gate run` wires it.

import { constants } from 'node:fs';
import { access, statfs } from 'node:fs/promises';
import type { InspectionEvent } from 'xstate';
import type { LaneConfig } from '../config/config.js';
import { createDashboard } from '../dashboard/dashboard.js';
import { healthConfig, listFreshnessProbe, startHealthServer, type HealthServer, type Probe } from './health.js';
import type { Lane } from '../lane/lane.js';
import type { Logger } from '../config/log.js';
import { createMetrics, type BarrierLinkStats, type GateMetrics } from './metrics.js';
import { SystemdNotifier } from '../platform/systemd.js';

/**
 * An XState inspector for startLane({ inspect }) that turns driver events into metrics: reader and
 * camera faults by source (the machine's alarm does not carry the source), and the barrier link state.
 */
export function laneInspector(metrics: GateMetrics): (e: InspectionEvent) => void {
  return (e) => {
    if (e.type !== '@xstate.event') return;
    const ev = e.event as { type: string; source?: string; detail?: string; up?: boolean };
    if (ev.type === 'SOURCE_FAULT') {
      const source = ev.source ?? 'unknown';
      const fault = faultClass(ev.detail);
      if (/^(camera|qr)/i.test(source)) metrics.cameraFault(source, fault);
      else metrics.readerFault(source, fault);
    } else if (ev.type === 'LINK') {
      metrics.barrierLink(ev.up === true);
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

/** Decisions and mode changes into metrics; list version/age read at scrape time. */
export function attachLaneMetrics(lane: Lane, metrics: GateMetrics): void {
  lane.on('decision', (e) => metrics.decision(e.decision.kind, e.decision.reason, Math.max(0, e.decidedAtMs - e.atMs) / 1000, e.decision.grant));
  lane.on('mode', (e) => metrics.mode(e.to));
  metrics.mode(lane.view().mode);
  metrics.watchLists(() => lane.lists.current());
  metrics.barrierLink(!Object.hasOwn(lane.view().faults, 'barrier-link'));
  // File journal: backlog read at scrape time, every group-commit fsync timed. List sync: failed rounds.
  const journal = lane.journal as unknown as { backlog?: number; on?: (e: string, f: (...a: any[]) => void) => void };
  if (typeof journal.backlog === 'number') metrics.watchJournalBacklog(() => journal.backlog ?? 0);
  journal.on?.('fsync', (ms: number) => metrics.journalFsync(ms / 1000));
  (lane.lists as unknown as { on?: (e: string, f: (kind: string) => void) => void }).on?.('sync-failed', (kind) => metrics.syncFailure(kind));
  // QR cameras report each decode's time (unless something else, e.g. the simulator, listens already).
  for (const s of lane.sources as unknown as { onDecoded?: (r: { texts: string[]; decodeMs: number }) => void }[]) {
    if ('onDecoded' in s && s.onDecoded === undefined) s.onDecoded = (r) => metrics.qrDecode(r.decodeMs / 1000, r.texts.length > 0);
  }
  // The serial barrier driver keeps monotonic `counters`; read them at every scrape.
  if ('counters' in lane.barrier) metrics.pullBarrierStats(() => barrierStats((lane.barrier as { counters?: unknown }).counters));
}

/** The serial barrier driver's counters (drivers/serial-barrier.ts BarrierLinkCounters) as metrics stats. */
export function barrierStats(c: unknown): BarrierLinkStats | undefined {
  if (!c || typeof c !== 'object') return undefined;
  const n = (k: string) => {
    const v = (c as Record<string, unknown>)[k];
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
  const j = config.journal as { type: string; dir?: unknown; directory?: unknown };
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
    lists: listFreshnessProbe(() => lane.lists.current(), lane.config.policy.listMaxAgeSeconds, opts.now),
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
  opts: { log: Logger; metrics?: GateMetrics; notifier?: SystemdNotifier; now?: () => number },
): Promise<LaneService> {
  const { config } = lane;
  const metrics = opts.metrics ?? createMetrics({ labels: { lane: config.lane.id, station: config.lane.station } });
  attachLaneMetrics(lane, metrics);
  const hc = healthConfig(config as { health?: unknown });
  let health: HealthServer | undefined;
  let closeDashboard = () => {};
  if (hc.enabled) {
    try {
      health = await startHealthServer({ host: hc.host, port: hc.port, maxLoopDelayMs: hc.maxLoopDelayMs, metrics, ready: laneProbes(lane, { now: opts.now }) });
      // The station dashboard for this lane, on the same server: one port to open on the box.
      const dashboard = createDashboard({ lanes: [lane], prefix: '/dashboard', station: config.lane.station, log: opts.log });
      health.mount((req, res) => dashboard.handle(req, res));
      closeDashboard = () => dashboard.close();
      opts.log.info({ lane: lane.id, event: 'health', url: health.url, dashboard: `${health.url}/dashboard/` }, 'health server listening');
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
