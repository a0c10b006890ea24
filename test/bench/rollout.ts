// Riders and rollout: how long from a rider's submit on the registration page's endpoint to the first lane
// admitting the card (the back office's next publish, one list sync, one decision), p50/p99 over a run of
// registrations, beside the same sync with nothing new; and the registration page's weight and its first
// render in headless Chromium at a phone's size (390 × 844). Loopback only.

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

const RIDERS = 200;

export async function run(r: BenchReport): Promise<void> {
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
