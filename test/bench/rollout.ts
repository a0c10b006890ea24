// Riders and rollout: how long from a rider's submit on the registration page's endpoint to the first lane
// admitting the card (the back office's next publish, one list sync, one decision), p50/p99 over a run of
// registrations, beside the same sync with nothing new; and the registration page's weight and its first
// render in headless Chromium at a phone's size (390 × 844). Then `gate sim --scenario rollout-2022`'s
// figure: in the simulator (virtual time; lanes polling, the back office publishing on a cadence), from a
// rider's submit to the first lane whose decision core admits them, p50/p99, beside the bound the cadence
// sets (one publish interval + one poll interval). Loopback only.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { policySchema } from '../../firmware/config/config.js';
import { ListSync } from '../../firmware/lists/list-sync.js';
import { DecisionCore } from '../../firmware/verify/decision-core.js';
import { trustedListKey } from '../../protocol/lists/index.js';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { withCheckDigit } from '../../simulator/backoffice/validate.js';
import { percentile, type BenchReport } from './report.js';
import { runRolloutScenario } from '../../firmware/composition/rollout-scenario.js';
import { bj } from '../../simulator/scenarios/rollout-2022.js';

const RIDERS = 200;

export async function run(r: BenchReport): Promise<void> {
  await pageAndSubmit(r);
  await scenarioLatency(r);
}

/** The scenario's sync latency in virtual time: two cadences, over days when many riders register. */
async function scenarioLatency(r: BenchReport): Promise<void> {
  const runs = [
    { fromMs: bj(5, 19), toMs: bj(5, 21), publishEveryMs: 300_000, pollEveryMs: 300_000 },
    { fromMs: bj(5, 23), toMs: bj(5, 24), publishEveryMs: 60_000, pollEveryMs: 60_000 },
  ];
  for (const o of runs) {
    const t0 = performance.now();
    const s = await runRolloutScenario({ lanes: 4, riders: 400, seed: 1, ...o });
    if (s.falseAccepts + s.falseRejects + s.wrongReasons + s.unanswered > 0) throw new Error(`rollout scenario disagreed with ground truth: ${JSON.stringify(s.mismatches.slice(0, 3))}`);
    const bound = (o.publishEveryMs + o.pollEveryMs) / 1000;
    const cadence = `publish every ${o.publishEveryMs / 1000} s, poll every ${o.pollEveryMs / 1000} s`;
    const note = `gate sim --scenario rollout-2022, ${s.from} → ${s.to}, 4 lanes, 400 riders, ${s.syncLatencyS.n} registrations; ${((performance.now() - t0) / 1000).toFixed(0)} s wall`;
    r.row({ section: 'rollout', metric: `scenario: submit → first admitting lane, p50 (${cadence})`, value: s.syncLatencyS.p50, unit: 's (virtual)', peer: { name: 'publish + poll interval', value: bound }, note });
    r.row({ section: 'rollout', metric: `scenario: submit → first admitting lane, p99 (${cadence})`, value: s.syncLatencyS.p99, unit: 's (virtual)', peer: { name: 'publish + poll interval', value: bound } });
  }
}

async function pageAndSubmit(r: BenchReport): Promise<void> {
  const bo = new Backoffice({ db: ':memory:', limits: { pageSubmitsPerMinute: 1_000_000 } });
  const { url } = await bo.listen(0);
  const dir = mkdtempSync(join(tmpdir(), 'bench-rollout-'));
  const sync = await ListSync.open({ url, dir, trustedKeys: [trustedListKey(bo.publicKeyPem)] });
  try {
    await sync.syncOnce();
    const core = new DecisionCore('entry', policySchema.parse({ antiPassbackSeconds: 0 }), { lists: sync });
    const toAdmit: number[] = [];
    const idle: number[] = [];
    for (let i = 0; i < RIDERS; i++) {
      const number = withCheckDigit(`3104100088${String(i).padStart(8, '0')}`);
      const t0 = performance.now();
      const res = await fetch(`${url}/register/submit`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ credentialType: 'yikatong-card', rider: { name: '骑手', phone: '13800138000' }, number, consent: true }),
      });
      if (res.status !== 201) throw new Error(`register ${number}: ${res.status}`);
      bo.publish();
      await sync.syncOnce();
      const d = core.decide({ presented: { kind: 'credential', credential: { kind: 'card', cardNumber: number } }, side: 'entry', nowMs: Date.now() });
      if (!d.grant) throw new Error(`lane refused ${number} after the sync: ${d.reason}`);
      toAdmit.push(performance.now() - t0);
      const t1 = performance.now();
      await sync.syncOnce();
      idle.push(performance.now() - t1);
    }
    r.row({ section: 'rollout', metric: 'submit → first lane admits, p50', value: percentile(toAdmit, 50), unit: 'ms', peer: { name: 'a sync with nothing new, p50', value: percentile(idle, 50) }, note: `${RIDERS} riders; publish on each submit` });
    r.row({ section: 'rollout', metric: 'submit → first lane admits, p99', value: percentile(toAdmit, 99), unit: 'ms', peer: { name: 'a sync with nothing new, p99', value: percentile(idle, 99) } });

    const html = await (await fetch(`${url}/register`)).arrayBuffer();
    const link = await (await fetch(`${url}/link`)).arrayBuffer();
    r.row({ section: 'rollout', metric: '/register page weight (everything it loads)', value: html.byteLength / 1024, unit: 'KB', peer: { name: '/link page', value: link.byteLength / 1024 } });

    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    try {
      const fcp: number[] = [];
      for (let i = 0; i < 10; i++) {
        const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
        await page.goto(`${url}/register`, { waitUntil: 'load' });
        const v = await page.evaluate(() => {
          const g = globalThis as any;
          const e = g.performance.getEntriesByName('first-contentful-paint')[0] ?? g.performance.getEntriesByType('paint')[0];
          return e ? e.startTime : NaN;
        });
        fcp.push(v);
        await page.close();
      }
      r.row({ section: 'rollout', metric: '/register first contentful paint in Chromium (390 × 844), median of 10', value: percentile(fcp, 50), unit: 'ms' });
    } finally {
      await browser.close();
    }
  } finally {
    await sync.stop();
    await bo.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
