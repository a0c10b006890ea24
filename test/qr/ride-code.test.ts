import { describe, expect, it } from 'vitest';
import { QR_ISSUERS } from '../../protocol/credential.js';
import { base45Decode, base45Encode, parseRideCode, RIDE_CODE_PREFIX } from '../../protocol/ride-code.js';
import { signTrustList, verifyTrustList } from '../../protocol/trust-list.js';
import { RideCodes } from '../../firmware/verify/ride-codes.js';
import { RideCodeKeys, type RideCodeTrustShare } from '../../protocol/ride-code-check.js';
import { forgedCode, IssuerApps, seededRandom, tamperedCode, wrongIssuerCode } from '../../simulator/virtual-phone.js';
import { DecisionCore, MemoryUsedCodes } from '../../firmware/verify/decision-core.js';
import { MemoryLists } from '../../firmware/lists/list-provider.js';
import { policySchema } from '../../firmware/config/config.js';

const T0 = Date.UTC(2022, 4, 20, 8, 0, 0);

function setup(opts: { skewMs?: number } = {}) {
  const apps = new IssuerApps('test');
  const doc = apps.trustListDocument();
  const r = verifyTrustList(doc, apps.backOfficeKeys());
  if (!r.ok) throw new Error(r.detail);
  const verifier = new RideCodes(r.list, { clockSkewMs: opts.skewMs ?? 30_000, maxValiditySeconds: 600 });
  return { apps, verifier };
}

describe('base45 (RFC 9285)', () => {
  it('matches the RFC vectors and round-trips', () => {
    const enc = (s: string) => base45Encode(new TextEncoder().encode(s));
    expect(enc('AB')).toBe('BB8');
    expect(enc('Hello!!')).toBe('%69 VD92EX0');
    expect(enc('ietf!')).toBe('QED8WEX0');
    const rand = seededRandom(5);
    for (let n = 0; n < 200; n++) {
      const b = Uint8Array.from({ length: n % 40 }, () => Math.floor(rand() * 256));
      expect(base45Decode(base45Encode(b))).toEqual(b);
    }
  });
  it('refuses non-canonical and foreign text', () => {
    expect(base45Decode('GGW')).toBeUndefined(); // 65536 + ... > 0xffff
    expect(base45Decode('A')).toBeUndefined();
    expect(base45Decode('aa')).toBeUndefined();
    expect(base45Decode('::')).toBeUndefined(); // 44 + 44*45 > 255
  });
});

describe('ride code format', () => {
  it('round-trips every field and fits a small QR code', () => {
    const { apps } = setup();
    const text = apps.app('alipay').mint('rider_0001', T0, { validitySeconds: 60 });
    expect(text.startsWith(RIDE_CODE_PREFIX)).toBe(true);
    const p = parseRideCode(text);
    expect(p.ok).toBe(true);
    if (!p.ok) return;
    expect(p.code).toMatchObject({ version: 1, issuer: 'alipay', keyId: 1, account: 'rider_0001', issuedAtS: T0 / 1000, validitySeconds: 60 });
    expect(text.length).toBeLessThan(160);
  });
});

describe('verification', () => {
  it('accepts a valid code from each of the eight issuers', () => {
    const { apps, verifier } = setup();
    for (const issuer of QR_ISSUERS) {
      const r = verifier.verify(apps.app(issuer).mint('acct-' + issuer.slice(0, 4), T0), T0 + 1000);
      expect(r).toMatchObject({ ok: true, credential: { kind: 'qr', issuer, account: 'acct-' + issuer.slice(0, 4) } });
    }
  });

  it('every byte of 1,000 valid codes flipped: 0 accepted', () => {
    const { apps, verifier } = setup();
    const rand = seededRandom(42);
    let tried = 0;
    let accepted = 0;
    const reasons = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const issuer = QR_ISSUERS[i % QR_ISSUERS.length];
      const account = 'r' + Math.floor(rand() * 1e9).toString(36);
      const text = apps.app(issuer).mint(account, T0, { validitySeconds: 60 });
      expect(verifier.verify(text, T0 + 5000).ok).toBe(true);
      const n = base45Decode(text.slice(RIDE_CODE_PREFIX.length))!.length;
      for (let b = 0; b < n; b++) {
        const r = verifier.verify(tamperedCode(text, b, 1 + Math.floor(rand() * 255)), T0 + 5000);
        tried++;
        if (r.ok) accepted++;
        else reasons.set(r.reason, (reasons.get(r.reason) ?? 0) + 1);
      }
    }
    expect(tried).toBeGreaterThan(80_000);
    expect(accepted).toBe(0);
    expect(reasons.get('qr-bad-signature')).toBeGreaterThan(50_000);
  }, 60_000);

  it('text-level damage (each character changed) is refused', () => {
    const { apps, verifier } = setup();
    const text = apps.app('unionpay').mint('abc', T0);
    const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:a';
    for (let i = 0; i < text.length; i++) {
      for (const ch of alphabet) {
        if (ch === text[i]) continue;
        const bad = text.slice(0, i) + ch + text.slice(i + 1);
        expect(verifier.verify(bad, T0 + 1000).ok).toBe(false);
      }
    }
    expect(verifier.verify(text + '0', T0).ok).toBe(false);
    expect(verifier.verify(text.slice(0, -1), T0).ok).toBe(false);
    expect(verifier.verify('', T0)).toMatchObject({ ok: false, reason: 'qr-malformed' });
    expect(verifier.verify('https://example.com', T0)).toMatchObject({ ok: false, reason: 'qr-malformed' });
  });

  it('forged, wrong-issuer, unknown-issuer and unknown-key codes: 0 accepted, each with its reason', () => {
    const apps = new IssuerApps('test');
    const list = verifyTrustList(apps.trustListDocument({ omitIssuers: ['hohhot-metro'] }), apps.backOfficeKeys());
    if (!list.ok) throw new Error(list.detail);
    const v = new RideCodes(list.list);
    for (let i = 0; i < 100; i++) {
      expect(v.verify(forgedCode('alipay', 'x' + i, T0), T0)).toMatchObject({ ok: false, reason: 'qr-bad-signature' });
      expect(v.verify(wrongIssuerCode(apps.app('alipay').mint('x' + i, T0), 'cmb'), T0)).toMatchObject({ ok: false, reason: 'qr-bad-signature' });
      expect(v.verify(apps.app('hohhot-metro').mint('x' + i, T0), T0)).toMatchObject({ ok: false, reason: 'qr-unknown-issuer' });
      expect(v.verify(forgedCode('alipay', 'x' + i, T0, 7), T0)).toMatchObject({ ok: false, reason: 'qr-unknown-key' });
    }
  });

  it('key rotation: old key works until its scheduled end, revoked key stops at once', () => {
    const apps = new IssuerApps('rot');
    const app = apps.app('yitongxing');
    const end = T0 + 3600_000;
    app.keys[0].notAfterMs = end; // key 1 scheduled out at `end`
    app.addKey(2, T0 - 3600_000, T0 + 86_400_000); // overlap: key 2 in service before key 1 ends
    app.addKey(3, T0 - 3600_000, T0 + 86_400_000, true); // revoked
    const r = verifyTrustList(apps.trustListDocument(), apps.backOfficeKeys());
    if (!r.ok) throw new Error(r.detail);
    const v = new RideCodes(r.list, { clockSkewMs: 0, maxValiditySeconds: 600 });
    const atEnd = (ms: number, keyId: number) => v.verify(app.mint('rot', ms, { keyId }), ms);
    expect(atEnd(end - 1000, 1).ok).toBe(true);
    expect(atEnd(end, 1)).toMatchObject({ ok: false, reason: 'qr-key-expired' });
    expect(atEnd(end, 2).ok).toBe(true);
    expect(atEnd(T0 - 7200_000, 2)).toMatchObject({ ok: false, reason: 'qr-key-expired' }); // before key 2 began
    let accepted = 0;
    for (let i = 0; i < 200; i++) if (v.verify(app.mint('rev' + i, T0 + i * 1000, { keyId: 3 }), T0 + i * 1000).ok) accepted++;
    expect(accepted).toBe(0);
    expect(atEnd(T0, 3)).toMatchObject({ ok: false, reason: 'qr-revoked-key' });
    // Revocation published in a newer list: key 2 stops at once for codes already minted.
    const code = app.mint('later', T0, { keyId: 2 });
    expect(v.verify(code, T0 + 1000).ok).toBe(true);
    app.key(2).revoked = true;
    const r2 = verifyTrustList(apps.trustListDocument(), apps.backOfficeKeys());
    if (!r2.ok) throw new Error(r2.detail);
    v.setTrustList(r2.list);
    expect(v.verify(code, T0 + 2000)).toMatchObject({ ok: false, reason: 'qr-revoked-key' });
    expect(() => v.setTrustList(r.list)).toThrow(/older/);
  });

  it('validity window and clock skew edges are exact', () => {
    const skew = 5000;
    const { apps, verifier } = setup({ skewMs: skew });
    const text = apps.app('cmb').mint('edge', T0, { validitySeconds: 30 });
    const end = T0 + 30_000;
    expect(verifier.verify(text, T0 - skew - 1)).toMatchObject({ ok: false, reason: 'qr-not-yet-valid' });
    expect(verifier.verify(text, T0 - skew).ok).toBe(true);
    expect(verifier.verify(text, T0).ok).toBe(true);
    expect(verifier.verify(text, end + skew - 1)).toMatchObject({ ok: true, credential: { validUntilMs: end + skew - 1 } });
    expect(verifier.verify(text, end + skew)).toMatchObject({ ok: false, reason: 'qr-expired' });
    const { verifier: strict } = setup({ skewMs: 0 });
    expect(strict.verify(text, T0 - 1)).toMatchObject({ ok: false, reason: 'qr-not-yet-valid' });
    expect(strict.verify(text, end - 1).ok).toBe(true);
    expect(strict.verify(text, end)).toMatchObject({ ok: false, reason: 'qr-expired' });
    // future-dated by more than the skew, and codes claiming too long a validity
    expect(verifier.verify(apps.app('cmb').mint('f', T0 + 60_000), T0)).toMatchObject({ ok: false, reason: 'qr-not-yet-valid' });
    expect(verifier.verify(apps.app('cmb').mint('f', T0, { validitySeconds: 3600 }), T0)).toMatchObject({ ok: false, reason: 'qr-malformed' });
  });

  it('a replayed code is refused by the decision core on the same lane', () => {
    const { apps, verifier } = setup();
    const lists = new MemoryLists(T0);
    lists.allowlist.set('qr:alipay:rep1', 'green');
    const core = new DecisionCore('bidirectional', policySchema.parse({ antiPassbackSeconds: 0, entry: { green: true, yellow: false, red: false, unregistered: true, blocked: false } }), { lists, usedCodes: new MemoryUsedCodes(), rideCodes: verifier });
    const text = apps.app('alipay').mint('rep1', T0);
    const d1 = core.decide({ presented: { kind: 'qr-text', text }, side: 'entry', nowMs: T0 + 100 });
    expect(d1.grant).toBe(true);
    core.commit(d1, T0 + 100);
    for (let i = 1; i < 50; i++) {
      expect(core.decide({ presented: { kind: 'qr-text', text }, side: 'entry', nowMs: T0 + 100 + i * 1000 })).toMatchObject({ grant: false, reason: 'qr-replayed' });
    }
  });
});

describe('signature checked off the lane (the decode worker), clock checks on it', () => {
  it('a verdict from the list held now gives the same decision as checking here, for good and bad codes alike', () => {
    const apps = new IssuerApps('pre');
    const app = apps.app('alipay');
    app.addKey(2, T0 - 3600_000, T0 + 86_400_000, true); // revoked
    const r = verifyTrustList(apps.trustListDocument(), apps.backOfficeKeys());
    if (!r.ok) throw new Error(r.detail);
    const here = new RideCodes(r.list, { clockSkewMs: 5000, maxValiditySeconds: 600 });
    const pre = new RideCodes(r.list, { clockSkewMs: 5000, maxValiditySeconds: 600 });
    let trust: RideCodeTrustShare | undefined;
    pre.onTrust((t) => (trust = t));
    // What the worker does with the shared list: its own key table, stage 1 only.
    const worker = new RideCodeKeys(trust!.list);
    const good = app.mint('pre_ok', T0, { validitySeconds: 30 });
    const codes = [
      good,
      tamperedCode(good, 40),
      forgedCode('alipay', 'pre_forged', T0),
      forgedCode('alipay', 'pre_k7', T0, 7),
      app.mint('pre_rev', T0, { keyId: 2 }),
      app.mint('pre_long', T0, { validitySeconds: 3600 }),
      'RC1:NOT-BASE45-%%',
      'https://example.com',
    ];
    const reasons = new Set<string>();
    // Each code at instants before, inside and after its window: the clock checks stay on the lane.
    for (const text of codes) {
      for (const at of [T0 - 6000, T0, T0 + 34_999, T0 + 35_000]) {
        const expected = here.verify(text, at);
        const got = pre.verify(text, at, { trustId: trust!.trustId, verdict: worker.checkSignature(text, trust!.maxValiditySeconds) });
        expect(got).toEqual(expected);
        reasons.add(got.ok ? 'ok' : got.reason);
      }
    }
    expect([...reasons].sort()).toEqual(['ok', 'qr-bad-signature', 'qr-expired', 'qr-malformed', 'qr-not-yet-valid', 'qr-revoked-key', 'qr-unknown-key'].sort());
    expect(pre.prechecks).toEqual({ used: codes.length * 4, stale: 0 });
    expect(pre.counters).toEqual(here.counters);
  });

  it('a verdict reached with an older list, or naming no list held, is not taken: the code is checked here', () => {
    const apps = new IssuerApps('stale');
    const app = apps.app('cmb');
    const r1 = verifyTrustList(apps.trustListDocument(), apps.backOfficeKeys());
    if (!r1.ok) throw new Error(r1.detail);
    const v = new RideCodes(r1.list, { clockSkewMs: 0, maxValiditySeconds: 600 });
    const shared: RideCodeTrustShare[] = [];
    const off = v.onTrust((t) => shared.push(t));
    expect(shared).toHaveLength(1); // the list held now, at once
    const code = app.mint('stale_1', T0);
    const okBefore = new RideCodeKeys(shared[0].list).checkSignature(code, 600);
    expect(okBefore.ok).toBe(true);
    // The key is revoked in a newer list: a verdict reached with the old one must not open the gate.
    app.key(1).revoked = true;
    const r2 = verifyTrustList(apps.trustListDocument(), apps.backOfficeKeys());
    if (!r2.ok) throw new Error(r2.detail);
    v.setTrustList(r2.list);
    expect(shared).toHaveLength(2);
    expect(shared[1].trustId).not.toBe(shared[0].trustId);
    expect(shared[1].list.seq).toBe(r2.list.seq);
    expect(v.verify(code, T0 + 1000, { trustId: shared[0].trustId, verdict: okBefore })).toMatchObject({ ok: false, reason: 'qr-revoked-key' });
    // A forged code with an "ok" verdict naming a list this verifier never held.
    const forged = forgedCode('alipay', 'stale_2', T0);
    const fake = { trustId: 12345, verdict: { ok: true as const, code: { issuer: 'alipay' as const, account: 'stale_2', codeIdText: 'alipay:00', issuedAtS: T0 / 1000, validitySeconds: 60 } } };
    expect(v.verify(forged, T0 + 1000, fake)).toMatchObject({ ok: false, reason: 'qr-bad-signature' });
    expect(v.prechecks).toEqual({ used: 0, stale: 2 });
    // The same verdict from the list held now is taken.
    expect(v.verify(code, T0 + 1000, { trustId: shared[1].trustId, verdict: new RideCodeKeys(shared[1].list).checkSignature(code, 600) })).toMatchObject({ ok: false, reason: 'qr-revoked-key' });
    expect(v.prechecks).toEqual({ used: 1, stale: 2 });
    off();
    v.setTrustList(r2.list);
    expect(shared).toHaveLength(2);
  });

  it('shareWith hands the list to the sources that take it, now and at each update', () => {
    const { apps, verifier } = setup();
    const got: number[] = [];
    const camera = { name: 'cam', start: async () => {}, stop: async () => {}, shareRideCodeTrust: (t: RideCodeTrustShare) => void got.push(t.list.seq) };
    const reader = { name: 'reader', start: async () => {}, stop: async () => {} };
    const stop = verifier.shareWith([camera, reader]);
    const r = verifyTrustList(apps.trustListDocument(), apps.backOfficeKeys());
    if (!r.ok) throw new Error(r.detail);
    verifier.setTrustList(r.list);
    expect(got).toEqual([verifier.trustList!.seq - 1, verifier.trustList!.seq]);
    stop();
    verifier.setTrustList(r.list);
    expect(got).toHaveLength(2);
  });
});

describe('trust list document', () => {
  it('refuses tampered payloads, unknown signers and bad JSON', () => {
    const apps = new IssuerApps('tl');
    const doc = apps.trustListDocument();
    expect(verifyTrustList(doc, apps.backOfficeKeys()).ok).toBe(true);
    const env = JSON.parse(Buffer.from(doc).toString());
    const payload = JSON.parse(Buffer.from(env.payload, 'base64').toString());
    payload.keys[0].revoked = false;
    payload.keys[0].notAfterMs += 1;
    const tampered = { ...env, payload: Buffer.from(JSON.stringify(payload)).toString('base64') };
    expect(verifyTrustList(Buffer.from(JSON.stringify(tampered)), apps.backOfficeKeys())).toMatchObject({ ok: false, error: 'bad-signature' });
    expect(verifyTrustList(Buffer.from(JSON.stringify({ ...env, signer: 'x' })), apps.backOfficeKeys())).toMatchObject({ ok: false, error: 'unknown-signer' });
    expect(verifyTrustList(Buffer.from('{nope'), apps.backOfficeKeys())).toMatchObject({ ok: false, error: 'json' });
    expect(verifyTrustList(Buffer.from('[]'), apps.backOfficeKeys())).toMatchObject({ ok: false, error: 'envelope' });
    // signed but nonsensical payload
    const bad = signTrustList({ version: 1, seq: 1, issuedAtMs: 0, keys: [{ issuer: 'alipay', keyId: 1, publicKey: new Uint8Array(32), notBeforeMs: 5, notAfterMs: 1, revoked: false }] }, apps.backOfficeSigner, apps.backOffice.privateKey);
    expect(verifyTrustList(bad, apps.backOfficeKeys())).toMatchObject({ ok: false, error: 'payload' });
    // a gate installed with another back office key refuses the list
    const other = new IssuerApps('other');
    expect(verifyTrustList(doc, other.backOfficeKeys())).toMatchObject({ ok: false, error: 'bad-signature' });
  });
});
