// The lane dashboard shows the enforcement schedule the lane holds, in headless Chromium: the schedule's
// seq, each scheduled kind's stage and its next change in Beijing time, following the lane's (virtual)
// clock across the advise and enforce dates; an advise grant shows "register by <day>" on the rider display.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { SimulatedBarrierLink, SimulatedSource } from '../../drivers/simulated.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { startLane, type Lane } from '../../firmware/composition/start-lane.js';
import { startDashboardServer, type DashboardServer } from '../../firmware/dashboard/dashboard.js';
import type { ListSync } from '../../firmware/lists/list-sync.js';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { withCheckDigit } from '../../simulator/backoffice/validate.js';
import { VirtualBarrier } from '../../simulator/virtual-barrier.js';
import { VirtualClock } from '../../simulator/virtual-clock.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const BJ = (d: number, h = 0) => Date.UTC(2022, 4, d, h - 8);
const A = BJ(19);
const B = BJ(26);

let clock: VirtualClock;
let bo: Backoffice;
let lane: Lane;
let board: VirtualBarrier;
let entry: SimulatedSource;
let server: DashboardServer;
let browser: Browser;
let page: Page;
let dir: string;
const pageErrors: string[] = [];

async function advanceTo(t: number): Promise<void> {
  const turn = async () => {
    for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
  };
  while (clock.step(t)) await turn();
  clock.advanceTo(t);
  await turn();
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`headless Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  dir = mkdtempSync(join(tmpdir(), 'dashboard-schedule-'));
  clock = new VirtualClock(BJ(18, 12));
  bo = new Backoffice({ db: ':memory:', now: () => clock.now() });
  const { url } = await bo.listen(0);
  bo.publishPolicySchedule({ card: { adviseFromMs: A, enforceFromMs: B } });
  board = new VirtualBarrier(clock);
  entry = new SimulatedSource('sim-entry', 'entry', clock);
  const config = parseLaneConfig({
    lane: { id: 'L01', direction: 'entry' },
    lists: { type: 'http-sync', url, dir: join(dir, 'lists'), publicKeys: [bo.publicKeyPem], pollSeconds: 86_400 },
    policy: { antiPassbackSeconds: 0 },
  });
  lane = await startLane({ config, clock, barrier: new SimulatedBarrierLink(board, clock), sources: [entry] });
  await (lane.lists as ListSync).syncOnce();
  await advanceTo(clock.now() + 10);
  server = await startDashboardServer({ lanes: [lane], port: 0, station: 'TEST', laneNow: () => clock.now(), access: { mode: 'read-only' } });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.route('**/*', (route) => (route.request().url().startsWith(server.url) ? route.continue() : route.abort()));
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await lane?.stop();
  await bo?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const card = () => page.locator('section.lane[data-lane="L01"] .schedule .stage[data-kind="card"]');

describe('lane dashboard: the enforcement schedule', () => {
  it('shows the seq, each kind\'s stage and next change, and follows the lane\'s clock across the dates', async () => {
    await page.goto(server.url);
    const schedule = page.locator('section.lane[data-lane="L01"] .schedule');
    await expect.poll(() => schedule.getAttribute('data-seq')).toBe('1');
    expect(await card().getAttribute('data-stage')).toBe('not-enforced');
    expect(await card().textContent()).toBe('card 未检查 not enforced → advise 2022-05-19 00:00');

    // Advise: an unregistered card passes and the display asks to register by the day before enforcement.
    await advanceTo(A + 3600_000);
    await expect.poll(() => card().getAttribute('data-stage')).toBe('advise');
    expect(await card().textContent()).toBe('card 提示登记 advise → enforce 2022-05-26 00:00');
    entry.present({ kind: 'card', cardNumber: withCheckDigit('310410007700000001') });
    await expect.poll(() => lane.view().display).toBe('advise-register');
    const display = page.locator('section.lane[data-lane="L01"] .display');
    await expect.poll(() => display.locator('.zh').textContent()).toBe('请于5月25日前完成乘车码升级或卡片登记');
    expect(await display.locator('.en').textContent()).toBe('Please register by 2022-05-25');
    expect(board.display).toEqual({ textId: 4, day: '2022-05-25' });

    // Enforce, from B on the lane's clock: no next change.
    board.walkThrough('entry');
    await advanceTo(B);
    await expect.poll(() => card().getAttribute('data-stage')).toBe('enforce');
    expect(await card().textContent()).toBe('card 检查 enforce');
    expect(await schedule.textContent()).toContain('(other kinds enforced)');
    expect(pageErrors).toEqual([]);
  });
});
