// A lane on a file journal and a list sync whose back office is down: /metrics carries the journal's
// fsync times and backlog and the failed sync rounds, next to the decisions.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SimulatedSource } from '../../drivers/simulated.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { FileJournal } from '../../firmware/journal/file-journal.js';
import { startLane } from '../../firmware/composition/start-lane.js';
import { ListSync } from '../../firmware/lists/list-sync.js';
import { silentLogger } from '../../firmware/config/log.js';
import { startLaneService } from '../../firmware/operations/service.js';
import { SystemdNotifier } from '../../firmware/platform/systemd.js';
import { generateKeyPairSync } from 'node:crypto';
import { trustedListKey } from '../../protocol/lists/index.js';
import { waitUntil } from '../support/wait.js';

describe('lane service metrics from the file journal and list sync', () => {
  it('fsync histogram, backlog and sync failures appear in /metrics', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'svc-metrics-'));
    try {
      const pem = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
      // Nothing listens on port 9 (discard): every sync round fails.
      const sync = await ListSync.open({ url: 'http://127.0.0.1:9', dir: join(dir, 'lists'), trustedKeys: [trustedListKey(pem)], pollMs: 3_600_000 });
      const journal = await FileJournal.open({ dir: join(dir, 'journal'), laneId: 'M1', uploadUrl: 'http://127.0.0.1:9', uploadIntervalMs: 3_600_000 });
      const clock = { now: () => Date.now(), setTimeout, clearTimeout };
      const entry = new SimulatedSource('sim-entry', 'entry', clock);
      const lane = await startLane({ config: parseLaneConfig({ lane: { id: 'M1' }, health: { port: 0 } }), sources: [entry], lists: sync, journal });
      const service = await startLaneService(lane, { log: silentLogger, notifier: new SystemdNotifier({ env: {} }) });
      try {
        const decisions: string[] = [];
        lane.on('decision', (e) => decisions.push(e.decision.reason));
        await waitUntil(() => lane.view().state === 'normal.ready', 10_000, () => `lane is ${lane.view().state}`);
        entry.present({ kind: 'card', cardNumber: '3104100012300000001' });
        // The decision is out once its journal record is durable (fsync'd).
        await waitUntil(() => decisions.length > 0, 5000, () => 'no decision');
        expect(decisions).toEqual(['not-registered']);
        await sync.syncOnce();
        const text = await (await fetch(`${service.health!.url}/metrics`)).text();
        const fsyncCount = Number(/gate_journal_fsync_duration_seconds_count\{[^}]*\} (\d+)/.exec(text)?.[1] ?? 0);
        expect(fsyncCount).toBeGreaterThan(0);
        expect(text).toMatch(/gate_journal_backlog_records\{[^}]*\} [1-9]/); // nothing uploaded: the back office is down
        expect(text).toMatch(/gate_sync_failures_total\{[^}]*\} [1-9]/);
        expect(text).toMatch(/gate_decisions_total\{[^}]*reason="not-registered"[^}]*\} 1/);
      } finally {
        await service.stop();
        await lane.stop();
        await sync.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
