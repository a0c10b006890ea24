// A gate array on real parts: N lanes in one process, each with its barrier board on a socat pty through
// the real serial driver (the byte-level virtual board on the other end), simulated card sources, lists
// synced from the real back office (through a counting proxy, so the test sees how many syncs poll), file
// journals uploading to it, and the array's health server on a real port.
import { countingProxy } from '../support/counting-proxy.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimulatedSource } from '../../drivers/simulated.js';
import { parseArrayConfig } from '../../firmware/config/array-config.js';
import { silentLogger } from '../../firmware/config/log.js';
import { startGateArray, type GateArray } from '../../firmware/composition/gate-array.js';
import type { Lane } from '../../firmware/lane/lane.js';
import { createArrayMetrics, startArrayService, type ArrayService } from '../../firmware/operations/array-service.js';
import { laneInspector, planLaneService } from '../../firmware/operations/service.js';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { withCheckDigit } from '../../simulator/backoffice/validate.js';
import { BarrierBoard } from '../../simulator/barrier-board.js';
import { ptyPair, type PtyPair } from '../support/pty.js';
import { waitUntil } from '../support/wait.js';

export interface ArrayLaneRig {
  id: string;
  /** Absent for a lane whose port is missing at start. */
  pty?: PtyPair;
  board?: BarrierBoard;
  /** The card registered for this lane's rider. */
  card: string;
}

export interface ArrayRig {
  dir: string;
  bo: Backoffice;
  array: GateArray;
  service: ArrayService;
  lanes: ArrayLaneRig[];
  /** GET /v1/lists/deltas requests the back office received. */
  deltasRequests(): number;
  lane(id: string): Lane;
  entry(id: string): SimulatedSource;
  state(id: string): string;
  /** Tap the lane's entry reader with a card number. */
  tap(id: string, card: string): void;
  get(path: string): Promise<Response>;
  close(): Promise<void>;
}

const board = (pty: PtyPair) => new BarrierBoard({ path: pty.b, heartbeatMs: 20, failSafeAfterMs: 2000, eventRetryMs: 15, mechanics: { openMs: 5, closeMs: 5 } });


/**
 * `ports` lanes with a pty and a board each, then `missing` lanes whose barrier port is not there at start.
 * Lane ids L1, L2, …; every lane an entry lane (bidirectional for the last, to show a lane's own direction).
 * `flaps[i]`: lane i's `flaps` (absent: the default, normally closed).
 */
export async function arrayRig(opts: { ports: number; missing?: number; flaps?: readonly ('normally-open' | 'normally-closed')[] }): Promise<ArrayRig> {
  const cleanups: (() => Promise<void> | void)[] = [];
  const close = async () => {
    for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => {});
  };
  try {
    const dir = mkdtempSync(join(tmpdir(), 'gate-array-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const bo = new Backoffice({ db: ':memory:' });
    const { url } = await bo.listen(0);
    cleanups.push(() => bo.close());
    const proxy = await countingProxy(url, '/v1/lists/deltas');
    cleanups.push(() => new Promise<void>((r) => (proxy.server.closeAllConnections(), proxy.server.close(() => r()))));

    const n = opts.ports + (opts.missing ?? 0);
    const lanes: ArrayLaneRig[] = [];
    for (let i = 0; i < n; i++) {
      const id = `L${i + 1}`;
      const card = withCheckDigit(`31041000123000${String(i + 1).padStart(4, '0')}`);
      bo.register({ credentialType: 'yikatong-card', number: card, rider: { name: '张三', phone: '13900139000' }, consent: true });
      if (i < opts.ports) {
        const pty = await ptyPair(`array-${id}`);
        cleanups.push(() => pty.close());
        const b = board(pty);
        await b.start();
        lanes.push({ id, pty, board: b, card });
        cleanups.push(() => lanes[i].board?.stop());
      } else lanes.push({ id, card });
    }
    bo.publish();

    const config = parseArrayConfig({
      lanes: lanes.map((l, i) => ({
        id: l.id,
        direction: i === n - 1 ? 'bidirectional' : 'entry',
        ...(opts.flaps?.[i] ? { flaps: opts.flaps[i] } : {}),
        drivers: {
          barrier: { type: 'serial', path: l.pty?.a ?? join(dir, `no-port-${l.id}`), heartbeatMs: 20, silenceMs: 400, ackTimeoutMs: 15, reopenMs: 30 },
          sources: [{ type: 'simulated', side: 'entry' }],
        },
      })),
      lists: { type: 'http-sync', url: proxy.url, dir: join(dir, 'lists'), publicKeys: [bo.publicKeyPem], pollSeconds: 3600 },
      journal: { type: 'file', dir: join(dir, 'journal'), uploadUrl: url, uploadIntervalMs: 50 },
      health: { port: 0 },
      log: { level: 'silent' },
    });
    // As `gate run` wires them (firmware/cli/run-array.ts): driver events into each lane's metrics.
    const metrics = createArrayMetrics(config.lanes);
    const array = await startGateArray({ config, log: silentLogger, inspect: (id) => laneInspector(metrics.get(id)!) });
    cleanups.push(() => array.stop());
    const service = await startArrayService(array.lanes, { log: silentLogger, lists: array.lists, plan: await planLaneService(config), station: 'SIM', metrics });
    cleanups.push(() => service.stop());

    const lane = (id: string) => {
      const l = array.lane(id);
      if (!l) throw new Error(`no lane ${id}`);
      return l;
    };
    const entry = (id: string) => lane(id).sources.find((s): s is SimulatedSource => s instanceof SimulatedSource && s.side === 'entry')!;
    return {
      dir,
      bo,
      array,
      service,
      lanes,
      deltasRequests: proxy.count,
      lane,
      entry,
      state: (id) => lane(id).view().state,
      tap: (id, card) => entry(id).present({ kind: 'card', cardNumber: card }),
      get: (path) => fetch(service.health!.url + path),
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/** Wait (bounded) for a lane state, saying every lane's state when it does not come. */
export async function waitState(r: ArrayRig, id: string, state: string | RegExp, ms = 10_000): Promise<void> {
  const ok = () => (typeof state === 'string' ? r.state(id) === state : state.test(r.state(id)));
  await waitUntil(ok, ms, () => `${id} to be ${state}; lanes: ${r.array.lanes.map((l) => `${l.id}=${l.view().state}`).join(' ')}`);
}
