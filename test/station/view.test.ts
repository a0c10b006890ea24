// The station view end to end in headless Chromium (Debian `chromium`, playwright-core): a real broker,
// real lanes, the view fed only from the broker; a supervisor logs in, and each action leaves as a
// command signed with their key that the lane answers on its result topic.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { hashSupervisorPassword, startStationView, type StationView } from '../../firmware/station/view.js';
import { startTestStation, type TestStation } from '../support/mosquitto.js';
import { laneFiles, startStationLane, type LaneFiles, type StationLane } from '../support/station-lanes.js';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { MemoryJournal } from '../../firmware/journal/journal.js';
import { fareModeSink, NORMAL_MODES } from '../../firmware/fares/fare-gate.js';
import { fareGate } from '../fares/support.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const S = 'BJ-0505';

let st: TestStation;
let files: LaneFiles;
let lanes: StationLane[];
let view: StationView;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`headless Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  st = await startTestStation(S, ['L01', 'L02', 'L03']);
  files = laneFiles(st, ['viewRider']);
  lanes = await Promise.all(['L01', 'L02', 'L03'].map((l) => startStationLane(files, l)));
  view = await startStationView({
    station: S,
    bus: { url: st.broker.url, ca: st.ca, username: st.viewUser, password: st.viewPassword },
    supervisors: new Map([[st.supervisor.id, { passwordHash: hashSupervisorPassword('correct horse'), key: st.supervisor.privateKey, name: 'Wang (duty)' }]]),
    port: 0,
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('dialog', (d) => void d.accept());
  await page.route('**/*', (route) => (route.request().url().startsWith(view.url) ? route.continue() : route.abort()));
});

afterAll(async () => {
  await browser?.close();
  await view?.close();
  await Promise.allSettled((lanes ?? []).map((l) => l.lane.stop()));
  await st?.stop();
  files?.close();
});

const lane = (id: string) => page.locator(`section.lane[data-lane="${id}"]`);

describe('station view in headless Chromium', () => {
  it('asks for a login, refuses a wrong password, and shows nothing before', async () => {
    await page.goto(view.url);
    expect(await page.locator('#login').isVisible()).toBe(true);
    expect(await page.locator('#lanes').isVisible()).toBe(false);
    // The data is closed too, not just hidden.
    const r = await page.evaluate(async () => (await fetch('api/state')).status);
    expect(r).toBe(401);
    await page.fill('#user', 'sup-wang');
    await page.fill('#password', 'wrong');
    await page.click('#login-go');
    await expect.poll(() => page.locator('#login-error').textContent()).toContain('wrong user or password');
    expect(view.refused['bad-login']).toBe(1);
    // Guessing is slowed: five wrong passwords a minute per user name, then 429.
    const login = (password: string) => fetch(view.url + 'api/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'sup-guess', password }) }).then((r) => r.status);
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push(await login(`guess${i}`));
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429]);
  });

  it('after login, every lane of the station shows up from the broker, online and normal', async () => {
    await page.fill('#password', 'correct horse');
    await page.click('#login-go');
    await expect.poll(() => page.locator('#who').textContent()).toBe('Wang (duty)');
    await expect.poll(() => page.locator('section.lane').count(), { timeout: 10_000 }).toBe(3);
    for (const id of ['L01', 'L02', 'L03']) {
      await expect.poll(() => lane(id).getAttribute('data-mode'), { timeout: 10_000 }).toBe('normal');
      expect(await lane(id).getAttribute('data-online')).toBe('true');
    }
    expect(await lane('L01').locator('.health').textContent()).toContain('barrier up');
    expect(await page.locator('#bus').textContent()).toBe('broker connected');
  });

  it('a mode switch leaves as a signed command and the lane answers it', async () => {
    await lane('L02').locator('select.mode-select').selectOption('maintenance');
    await lane('L02').locator('button.mode-go').click();
    await expect.poll(() => lanes[1].lane.view().mode, { timeout: 10_000 }).toBe('maintenance');
    await expect.poll(() => lane('L02').getAttribute('data-mode'), { timeout: 10_000 }).toBe('maintenance');
    const result = page.locator('#events li[data-kind="result"]', { hasText: 'set-mode by sup-wang: done' });
    await result.first().waitFor();
    expect(lanes[1].link.guard.counters.accepted).toBe(1);
    await lane('L02').locator('select.mode-select').selectOption('normal');
    await lane('L02').locator('button.mode-go').click();
    await expect.poll(() => lane('L02').getAttribute('data-mode'), { timeout: 10_000 }).toBe('normal');
  });

  it('station-wide emergency opens every lane; clearing and resetting brings them back', async () => {
    await page.click('#emergency-on');
    for (const id of ['L01', 'L02', 'L03']) await expect.poll(() => lane(id).getAttribute('data-mode'), { timeout: 10_000 }).toBe('emergency');
    await page.click('#emergency-off');
    await expect.poll(() => lanes.every((l) => !l.lane.view().fireAlarm), { timeout: 10_000 }).toBe(true);
    await page.click('#reset-all');
    for (const id of ['L01', 'L02', 'L03']) await expect.poll(() => lane(id).getAttribute('data-mode'), { timeout: 10_000 }).toBe('normal');
    expect(pageErrors).toEqual([]);
  });

  it('station fare modes: the ticked set leaves as one signed station command; the fare gate takes and shows it, the others say they have none', async () => {
    const { gate } = fareGate({ station: 7, direction: 'exit' }, new MemoryJournal());
    lanes[0].link.connectFareModes(fareModeSink(gate));
    await expect.poll(() => lane('L01').locator('.fares').textContent(), { timeout: 10_000 }).toBe('fares: normal');
    expect(await lane('L02').locator('.fares').textContent()).toBe('');
    for (const m of ['waive-order', 'train-failure']) await page.check(`#fare-modes input[value="${m}"]`);
    await page.click('#fare-modes-go');
    await expect.poll(() => lane('L01').locator('.fares').getAttribute('data-modes'), { timeout: 10_000 }).toBe('waive-order,train-failure');
    expect(gate.modes).toEqual({ ...NORMAL_MODES, waiveOrder: true, trainFailure: true });
    await page.locator('#events li[data-kind="result"]', { hasText: 'fare-mode by sup-wang: refused (failed) — this lane has no fare gate' }).first().waitFor();
    await page.locator('#events li[data-kind="result"]', { hasText: 'fare-mode by sup-wang: done — fare modes: waive-order, train-failure' }).first().waitFor();
    for (const m of ['waive-order', 'train-failure']) await page.uncheck(`#fare-modes input[value="${m}"]`);
    await page.click('#fare-modes-go');
    await expect.poll(() => lane('L01').locator('.fares').textContent(), { timeout: 10_000 }).toBe('fares: normal');
    expect(gate.modes).toEqual(NORMAL_MODES);
    expect(pageErrors).toEqual([]);
  });

  it('a lane that dies shows offline (its will), and comes back when reborn', async () => {
    await lanes[2].link.bus.crash();
    await expect.poll(() => lane('L03').getAttribute('data-online'), { timeout: 15_000 }).toBe('false');
    expect(await lane('L03').locator('.online').textContent()).toBe('offline (lost)');
    await lanes[2].lane.stop();
    lanes[2] = await startStationLane(files, 'L03');
    await expect.poll(() => lane('L03').getAttribute('data-online'), { timeout: 15_000 }).toBe('true');
    await page.screenshot({ path: 'test-artifacts/station-view.png' }).catch(() => {});
    expect(pageErrors).toEqual([]);
  });

  it('shows the enforcement schedule a lane holds: its seq, each kind\'s stage and next change', async () => {
    expect(await lane('L01').locator('.schedule').textContent()).toBe('schedule: none (every kind enforced)');
    // L03 again, now on lists (and the schedule) synced from a back office.
    const bo = new Backoffice({ db: ':memory:' });
    const { url } = await bo.listen(0);
    try {
      const now = Date.now();
      const enforce = Date.UTC(2099, 0, 1, -8); // 2099-01-01 00:00 Beijing time
      bo.publishPolicySchedule({ card: { adviseFromMs: now - 60_000, enforceFromMs: enforce }, qr: { adviseFromMs: 0, enforceFromMs: 0 } });
      await lanes[2].lane.stop();
      lanes[2] = await startStationLane(files, 'L03', { lists: { type: 'http-sync', url, dir: `${files.dir}/L03-lists`, publicKeys: [bo.publicKeyPem], pollSeconds: 1 } });
      await expect.poll(() => lane('L03').locator('.schedule').getAttribute('data-seq'), { timeout: 15_000 }).toBe('1');
      expect(await lane('L03').locator('.schedule').textContent()).toBe('schedule s1: qr enforce · card advise → enforce 2099-01-01 00:00 (other kinds enforced)');
      expect(pageErrors).toEqual([]);
    } finally {
      await lanes[2].lane.stop();
      await bo.close();
    }
  });
});
