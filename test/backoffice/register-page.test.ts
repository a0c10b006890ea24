// The rider pages end to end in a real headless Chromium at a phone's size (390 × 844): `gate
// backoffice`'s /register for each credential type, every back-office error shown beside its field in
// both languages, the live number checks, the English switch and keyboard use; /link, the one-step QR
// authorisation; and a registered card admitted by a lane's decision core once its list sync has the next
// version. Nothing comes from anywhere but the back office (the page works offline). Screenshots go to
// test-artifacts/. Every wait is bounded; nothing asserts elapsed time.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Backoffice, PAGE_ROUTES } from '../../simulator/backoffice/server.js';
import { withCheckDigit } from '../../simulator/backoffice/validate.js';
import { ListSync } from '../../firmware/lists/list-sync.js';
import { DecisionCore } from '../../firmware/verify/decision-core.js';
import { policySchema } from '../../firmware/config/config.js';
import { trustedListKey } from '../../protocol/lists/index.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const PHONE = { width: 390, height: 844 };

const card = (n: number) => withCheckDigit(`310410007${String(n).padStart(9, '0')}`);
const wrongCheckDigit = (n: number) => {
  const good = card(n);
  return good.slice(0, 18) + String((Number(good[18]) + 1) % 10);
};

describe('rider pages in headless Chromium at 390 × 844', () => {
  let bo: Backoffice;
  let url: string;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];
  const offsite: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`headless Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
    mkdirSync(ARTIFACTS, { recursive: true });
    // Tokens configured: the pages must work without any (no token reaches the browser).
    bo = new Backoffice({ db: ':memory:', tokens: [{ token: 'admin-token-0123456789', role: 'admin' }], limits: { pageSubmitsPerMinute: 1000 } });
    ({ url } = await bo.listen(0));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: PHONE, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      // A 4xx answer to a form post is the back office saying why (shown at the field), not a page error.
      if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) pageErrors.push(m.text());
    });
    await page.route('**/*', (route) => {
      if (route.request().url().startsWith(url)) return route.continue();
      offsite.push(route.request().url());
      return route.abort();
    });
  });

  afterAll(async () => {
    await browser?.close();
    await bo?.close();
  });

  /** Fill the four steps and submit; `skip` leaves a field as it is. */
  async function register(o: { type: string; name?: string; phone?: string; idNumber?: string; number: string; consent?: boolean; shot?: string }) {
    await page.goto(`${url}/register`);
    await page.locator(`input[name=credentialType][value="${o.type}"]`).check();
    await page.locator('section[data-step="0"] [data-next]').click();
    await page.locator('#name').fill(o.name ?? '张三');
    await page.locator('#phone').fill(o.phone ?? '13800138000');
    if (o.idNumber) await page.locator('#idNumber').fill(o.idNumber);
    await page.locator('section[data-step="1"] [data-next]').click();
    await page.locator('#number').pressSequentially(o.number);
    if (o.shot) await page.screenshot({ path: `${ARTIFACTS}${o.shot}-number.png` });
    await page.locator('section[data-step="2"] [data-next]').click();
    if (o.consent !== false) await page.locator('#consent').check();
    await page.locator('#submit').click();
  }
  /** The error shown beside `field` (both languages), once there. */
  async function errorAt(field: string) {
    const e = page.locator(`[data-err-for="${field}"]`);
    await expect.poll(() => e.textContent(), { timeout: 5000 }).not.toBe('');
    await expect(e.isVisible()).resolves.toBe(true);
    return { zh: await e.locator('.zh').textContent(), en: await e.locator('.en').textContent() };
  }

  it('serves a self-contained page, Chinese by default, with a Content-Security-Policy', async () => {
    const r = await fetch(`${url}/register`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('text/html');
    expect(r.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await r.text();
    expect(html).not.toMatch(/(src|href)=["']?(https?:)?\/\//);
    expect(PAGE_ROUTES).toContain('POST /register/submit');
    await page.goto(`${url}/register`);
    expect(await page.locator('html').getAttribute('lang')).toBe('zh-CN');
    expect(await page.locator('#h-type').innerText()).toContain('第一步');
    // Every input has a label.
    const unlabelled = await page.locator('input:not([type=radio]):not([type=checkbox]), select').evaluateAll((els) =>
      els.filter((e: any) => !e.id || !(globalThis as any).document.querySelector(`label[for="${e.id}"]`)).map((e: any) => e.id),
    );
    expect(unlabelled).toEqual([]);
    expect(pageErrors).toEqual([]);
  });

  const complete: [type: string, number: string, key: RegExp][] = [
    ['yikatong-card', card(1), /^card:3104…/],
    ['phone-nfc-card', card(2), /^card:3104…/],
    ['commemorative-ticket', 'BJ2022MAY0001', /^ticket:BJ20…0001$/],
  ];
  for (const [type, number, key] of complete) {
    it(`a complete registration: ${type}, then its status page`, async () => {
      const before = bo.latestVersion();
      await register({ type, number, idNumber: '11010519491231002X', shot: `register-${type}` });
      await expect.poll(() => page.locator('#done').isVisible(), { timeout: 5000 }).toBe(true);
      expect(await page.locator('#done-key').textContent()).toMatch(key);
      expect(await page.locator('#done-status').getAttribute('data-status')).toBe('green');
      expect(await page.locator('#done-when').innerText()).toContain(`名单版本 ${before + 1}`);
      await page.screenshot({ path: `${ARTIFACTS}register-${type}-done.png` });
    });
  }

  it('checks the number live as the rider types: length, check digit, ticket format', async () => {
    await page.goto(`${url}/register`);
    await page.locator('section[data-step="0"] [data-next]').click();
    await page.locator('section[data-step="1"] [data-next]').click();
    const live = page.locator('#number-live');
    await page.locator('#number').pressSequentially('31041000');
    expect(await live.innerText()).toContain('已输入8位');
    await page.locator('#number').fill('');
    await page.locator('#number').pressSequentially(wrongCheckDigit(3));
    expect(await live.innerText()).toContain('校验失败');
    await page.locator('#number').fill('');
    await page.locator('#number').pressSequentially(card(3));
    expect(await live.innerText()).toContain('校验通过');
    await page.screenshot({ path: `${ARTIFACTS}register-live-check.png` });
  });

  const bad: [name: string, o: Parameters<typeof register>[0], field: string, zh: string, en: string][] = [
    ['wrong check digit', { type: 'yikatong-card', number: wrongCheckDigit(4) }, 'number', '卡号校验失败', 'check digit'],
    ['wrong length', { type: 'phone-nfc-card', number: '310410007000' }, 'number', '卡号应为19位数字', '19 digits'],
    ['ticket format', { type: 'commemorative-ticket', number: 'BJ-22' }, 'number', '纪念票号应为8至20位', '8-20 letters'],
    ['no consent', { type: 'yikatong-card', number: card(5), consent: false }, 'consent', '请阅读并同意', 'agree to the terms'],
    ['duplicate', { type: 'yikatong-card', number: card(1) }, 'number', '该号码已登记', 'already registered'],
    ['bad phone', { type: 'yikatong-card', number: card(6), phone: '12345' }, 'rider.phone', '11位手机号', '11-digit'],
  ];
  for (const [name, o, field, zh, en] of bad) {
    it(`shows the back office's error beside its field: ${name}`, async () => {
      await register(o);
      const e = await errorAt(field);
      expect(e.zh).toContain(zh);
      expect(e.en).toContain(en);
      // The step holding the field is shown, and the field is marked invalid and focused.
      expect(await page.locator(`[data-field="${field}"]`).getAttribute('aria-invalid')).toBe('true');
      await page.screenshot({ path: `${ARTIFACTS}register-error-${name.replace(/ /g, '-')}.png` });
    });
  }

  it('shows the back office\'s error for an unknown credential type beside the type', async () => {
    await page.goto(`${url}/register`);
    // A tampered form (the page offers only the three kinds): the back office still says why.
    await page.locator('input[name=credentialType]:checked').evaluate((e: any) => (e.value = 'bus-pass'));
    for (const s of [0, 1]) await page.locator(`section[data-step="${s}"] [data-next]`).click();
    await page.locator('#name').evaluate((e: any) => (e.value = '李四'));
    await page.locator('#phone').evaluate((e: any) => (e.value = '13900139000'));
    await page.locator('#number').fill(card(7));
    await page.locator('section[data-step="2"] [data-next]').click();
    await page.locator('#consent').check();
    await page.locator('#submit').click();
    const e = await errorAt('credentialType');
    expect(e.zh).toContain('请选择凭证类型');
    expect(e.en).toContain('credential type must be one of');
    expect(await page.locator('section[data-step="0"]').isVisible()).toBe(true);
  });

  it('switches to English, and works from the keyboard alone', async () => {
    await page.goto(`${url}/register`);
    await page.locator('#lang').click();
    expect(await page.locator('html').getAttribute('lang')).toBe('en');
    expect(await page.locator('#h-type').innerText()).toContain('Step 1');
    await page.screenshot({ path: `${ARTIFACTS}register-english.png` });
    // Keyboard: the type radios, Next, the fields, Next, the number, Next, the consent box, Submit.
    await page.locator('#type-commemorative-ticket').focus();
    await page.keyboard.press('Space');
    await page.locator('section[data-step="0"] [data-next]').focus();
    await page.keyboard.press('Enter');
    await expect.poll(() => page.evaluate(() => (globalThis as any).document.activeElement?.id)).toBe('h-details');
    await page.keyboard.press('Tab');
    await page.keyboard.type('Wang Wu');
    await page.keyboard.press('Tab');
    await page.keyboard.type('13700137000');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.evaluate(() => (globalThis as any).document.activeElement?.id)).toBe('h-number');
    await page.keyboard.press('Tab');
    await page.keyboard.type('KB2022TICKET01');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.evaluate(() => (globalThis as any).document.activeElement?.id)).toBe('h-terms');
    await page.keyboard.press('Tab'); // the terms (scrollable region)
    await page.keyboard.press('Tab'); // the consent box
    await page.keyboard.press('Space');
    await page.keyboard.press('Tab'); // Back
    await page.keyboard.press('Tab'); // Submit
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#done').isVisible(), { timeout: 5000 }).toBe(true);
    expect(await page.locator('#done-title').innerText()).toBe('Registered');
    expect(await page.locator('#done-when').innerText()).toContain('Gates will know it from list version');
  });

  it('keeps text contrast at WCAG AA (4.5:1) or better', async () => {
    await page.goto(`${url}/register`);
    const worst = await page.evaluate(() => {
      const g = globalThis as any;
      const rgb = (s: string) => (s.match(/\d+(\.\d+)?/g) ?? []).slice(0, 3).map(Number);
      const lum = (c: number[]) => {
        const [r, gg, b] = c.map((v) => {
          const x = v / 255;
          return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
        });
        return 0.2126 * r + 0.7152 * gg + 0.0722 * b;
      };
      const bg = (el: any): number[] => {
        for (let e = el; e; e = e.parentElement) {
          const c = g.getComputedStyle(e).backgroundColor;
          if (c && !c.startsWith('rgba(0, 0, 0, 0)') && c !== 'transparent') return rgb(c);
        }
        return [255, 255, 255];
      };
      let min = 21;
      for (const el of g.document.querySelectorAll('h1,h2,label,button,p,legend,li,span')) {
        if (!el.offsetParent) continue;
        const a = lum(rgb(g.getComputedStyle(el).color));
        const b = lum(bg(el));
        min = Math.min(min, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05));
      }
      return min;
    });
    expect(worst).toBeGreaterThanOrEqual(4.5);
  });

  it('the one-step QR link: an issuer app\'s authorise button, recorded, and carried by the next list', async () => {
    await page.goto(`${url}/link`);
    await page.locator('#issuer').selectOption('alipay');
    await page.locator('#account').fill('acct_2022_0523');
    await page.locator('#authorise').click();
    const e = await errorAt('consent');
    expect(e.en).toContain('agree');
    await page.locator('#consent').check();
    await page.screenshot({ path: `${ARTIFACTS}link-form.png` });
    await page.locator('#authorise').click();
    await expect.poll(() => page.locator('#done').isVisible(), { timeout: 5000 }).toBe(true);
    expect(await page.locator('#done-key').textContent()).toBe('qr:alipay:…0523');
    await page.screenshot({ path: `${ARTIFACTS}link-done.png` });
    // Again: already linked, beside the account.
    await page.goto(`${url}/link`);
    await page.locator('#issuer').selectOption('alipay');
    await page.locator('#account').fill('acct_2022_0523');
    await page.locator('#consent').check();
    await page.locator('#authorise').click();
    expect((await errorAt('account')).zh).toContain('已授权');
    // The next published list carries it.
    const v = bo.publish();
    const dir = mkdtempSync(join(tmpdir(), 'link-sync-'));
    const sync = await ListSync.open({ url, dir, trustedKeys: [trustedListKey(bo.publicKeyPem)], token: 'admin-token-0123456789' });
    try {
      expect((await sync.syncOnce()).kind).toBe('applied');
      expect(sync.current().allowlist.lookup('qr:alipay:acct_2022_0523')).toBe('green');
      expect(sync.status().version).toBe(v);
    } finally {
      await sync.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a card registered on the page opens a lane once the lane has synced the next list', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'register-sync-'));
    const sync = await ListSync.open({ url, dir, trustedKeys: [trustedListKey(bo.publicKeyPem)], token: 'admin-token-0123456789' });
    try {
      bo.publish();
      await sync.syncOnce();
      const core = new DecisionCore('entry', policySchema.parse({}), { lists: sync });
      const number = card(42);
      const tap = () => core.decide({ presented: { kind: 'credential', credential: { kind: 'card', cardNumber: number } }, side: 'entry', nowMs: Date.now() });
      expect(tap()).toMatchObject({ grant: false, reason: 'not-registered' });
      await register({ type: 'yikatong-card', number });
      await expect.poll(() => page.locator('#done').isVisible(), { timeout: 5000 }).toBe(true);
      const promised = Number(await page.locator('.done-version').first().textContent());
      expect(tap().grant).toBe(false); // not before the next list
      expect(bo.publish()).toBe(promised);
      expect((await sync.syncOnce()).kind).toBe('applied');
      expect(tap()).toMatchObject({ grant: true, reason: 'ok' });
    } finally {
      await sync.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('answers 429 beyond the page submissions a client may make in a minute', async () => {
    const b2 = new Backoffice({ db: ':memory:', limits: { pageSubmitsPerMinute: 3 } });
    const { url: u2 } = await b2.listen(0);
    try {
      const codes: number[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await fetch(`${u2}/register/submit`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
        codes.push(r.status);
      }
      expect(codes).toEqual([400, 400, 400, 429, 429]);
    } finally {
      await b2.close();
    }
  });

  it('fetched nothing from anywhere but the back office, and the page raised no errors', () => {
    expect(offsite).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
