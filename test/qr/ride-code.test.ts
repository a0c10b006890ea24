import { describe, expect, it } from 'vitest';
import { QR_ISSUERS } from '../../protocol/credential.js';
import { base45Decode, base45Encode, parseRideCode, RIDE_CODE_PREFIX } from '../../protocol/ride-code.js';
import { signTrustList, verifyTrustList } from '../../protocol/trust-list.js';
import { RideCodes } from '../../firmware/verify/ride-codes.js';
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
