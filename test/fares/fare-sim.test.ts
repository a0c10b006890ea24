// `gate sim --fares`: the network, the back office's signed table over HTTP, fare gates at every station,
// card riders with torn taps and QR riders; the settlement per issuer equals the simulator's own fare of
// every trip; no double charge, no free exit, every card debit the right fare. Then the CLI end to end.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { expect, it } from 'vitest';
import { fareSimFailed, simulateFares } from '../../firmware/composition/fare-sim.js';

it('a seeded network of 4 lines: settlement = ground truth for every issuer, 0 double charges, 0 free exits', async () => {
  const s = await simulateFares({ seed: 5, lines: 4, stationsPerLine: 10, riders: 60, trips: 1500, tearRate: 0.15 });
  expect(s.trips).toBe(1500);
  expect(s.cardTrips).toBeGreaterThan(300);
  expect(s.qrTrips).toBeGreaterThan(300);
  expect(s.tornTaps).toBeGreaterThan(50);
  expect(s).toMatchObject({ doubleCharges: 0, freeExits: 0, wrongFares: 0, wrongRiders: 0 });
  expect(Object.keys(s.issuers).sort()).toEqual(['alipay', 'cmb', 'tunion', 'unionpay', 'yitongxing']);
  for (const [issuer, v] of Object.entries(s.issuers)) {
    expect(v.settledFen, issuer).toBe(v.truthFen);
    expect(v.truthFen).toBeGreaterThan(0);
  }
  expect(fareSimFailed(s)).toBe(false);
  expect(s.files['settlement-tunion.csv']).toMatch(/^issuer,account,/);
}, 120_000);

it('gate sim --fares --json prints the summary, exit 0', () => {
  const cli = new URL('../../dist/firmware/cli/gate.js', import.meta.url).pathname;
  expect(existsSync(cli), 'run npm run build first').toBe(true);
  const out = execFileSync(process.execPath, [cli, 'sim', '--fares', '--seed', '2', '--passengers', '40', '--json'], { encoding: 'utf8', timeout: 60_000 });
  const s = JSON.parse(out.trim().split('\n').at(-1)!);
  expect(s).toMatchObject({ doubleCharges: 0, freeExits: 0, wrongFares: 0 });
  for (const v of Object.values(s.issuers) as { truthFen: number; settledFen: number }[]) expect(v.settledFen).toBe(v.truthFen);
}, 90_000);
