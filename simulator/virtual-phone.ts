// Virtual issuer apps and the phones that show their codes: keys (deterministic from a seed, so a
// corpus is reproducible), valid codes, and every kind of bad code a gate must refuse.
// Imports only protocol/.

import { seededRandom } from './random.js';
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { QR_ISSUERS, type QrIssuer } from '../protocol/credential.js';
import { base45Decode, base45Encode, mintRideCode, RIDE_CODE_PREFIX, type RideCodeFields } from '../protocol/ride-code.js';
import { ed25519Raw, signTrustList, type IssuerKey, type TrustList } from '../protocol/trust-list.js';

const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');

/** An Ed25519 key pair derived from a label (SHA-256 of it is the seed): same label, same key. */
export function seededKeyPair(label: string): { privateKey: KeyObject; publicKey: KeyObject } {
  const seed = createHash('sha256').update(label).digest();
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' });
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

/** Re-exported: issuer apps and their users share the simulator's one seeded RNG. */
export { seededRandom };

export interface AppKey {
  keyId: number;
  privateKey: KeyObject;
  publicKey: KeyObject;
  notBeforeMs: number;
  notAfterMs: number;
  revoked: boolean;
}

/** One issuer app (Alipay, Yitongxing, ...) with its signing keys. */
export class IssuerApp {
  readonly keys: AppKey[] = [];
  constructor(
    readonly issuer: QrIssuer,
    private readonly rand: () => number,
    private readonly seed: string,
  ) {}

  addKey(keyId: number, notBeforeMs: number, notAfterMs: number, revoked = false): AppKey {
    const { privateKey, publicKey } = seededKeyPair(`${this.seed}/${this.issuer}/${keyId}`);
    const k = { keyId, privateKey, publicKey, notBeforeMs, notAfterMs, revoked };
    this.keys.push(k);
    return k;
  }

  key(keyId: number): AppKey {
    const k = this.keys.find((x) => x.keyId === keyId);
    if (!k) throw new Error(`${this.issuer} has no key ${keyId}`);
    return k;
  }

  codeId(): Uint8Array {
    const b = new Uint8Array(8);
    for (let i = 0; i < 8; i++) b[i] = Math.floor(this.rand() * 256);
    return b;
  }

  /** A code as the app shows it: signed with `keyId` (default: the first key not revoked). */
  mint(account: string, issuedAtMs: number, opts: { keyId?: number; validitySeconds?: number; codeId?: Uint8Array } = {}): string {
    const k = opts.keyId !== undefined ? this.key(opts.keyId) : (this.keys.find((x) => !x.revoked) ?? this.keys[0]);
    const f: RideCodeFields = {
      issuer: this.issuer,
      keyId: k.keyId,
      account,
      issuedAtS: Math.floor(issuedAtMs / 1000),
      validitySeconds: opts.validitySeconds ?? 60,
      codeId: opts.codeId ?? this.codeId(),
    };
    return mintRideCode(f, k.privateKey);
  }
}

/** All eight issuer apps, each with key 1 valid for a long window, plus the trust list a back office would publish. */
export class IssuerApps {
  readonly apps = new Map<QrIssuer, IssuerApp>();
  readonly rand: () => number;
  readonly backOffice: { privateKey: KeyObject; publicKey: KeyObject };
  readonly backOfficeSigner = 'bo-1';
  private seq = 1;

  constructor(
    readonly seed = 'sim',
    opts: { fromMs?: number; toMs?: number; rngSeed?: number } = {},
  ) {
    this.rand = seededRandom(opts.rngSeed ?? 1);
    this.backOffice = seededKeyPair(`${seed}/back-office/${this.backOfficeSigner}`);
    const from = opts.fromMs ?? Date.UTC(2022, 0, 1);
    const to = opts.toMs ?? Date.UTC(2030, 0, 1);
    for (const issuer of QR_ISSUERS) {
      const app = new IssuerApp(issuer, this.rand, seed);
      app.addKey(1, from, to);
      this.apps.set(issuer, app);
    }
  }

  app(issuer: QrIssuer): IssuerApp {
    return this.apps.get(issuer)!;
  }

  /** The trust list listing every key of every app (optionally leaving some issuers out). */
  trustList(opts: { issuedAtMs?: number; omitIssuers?: QrIssuer[] } = {}): TrustList {
    const keys: IssuerKey[] = [];
    for (const app of this.apps.values()) {
      if (opts.omitIssuers?.includes(app.issuer)) continue;
      for (const k of app.keys) {
        keys.push({ issuer: app.issuer, keyId: k.keyId, publicKey: ed25519Raw(k.publicKey), notBeforeMs: k.notBeforeMs, notAfterMs: k.notAfterMs, revoked: k.revoked });
      }
    }
    return { version: 1, seq: this.seq++, issuedAtMs: opts.issuedAtMs ?? Date.UTC(2022, 4, 1), keys };
  }

  /** The signed document bytes (what the back office sync delivers, and what `gate` loads from a file). */
  trustListDocument(opts: { issuedAtMs?: number; omitIssuers?: QrIssuer[] } = {}): Uint8Array {
    return signTrustList(this.trustList(opts), this.backOfficeSigner, this.backOffice.privateKey);
  }

  backOfficeKeys(): Map<string, KeyObject> {
    return new Map([[this.backOfficeSigner, this.backOffice.publicKey]]);
  }

  /** Raw base64 back office public key, as a gate config lists it. */
  backOfficeKeyConfig(): Record<string, string> {
    return { [this.backOfficeSigner]: Buffer.from(ed25519Raw(this.backOffice.publicKey)).toString('base64') };
  }
}

// --- Bad codes --------------------------------------------------------------------------------

/** Signed by a key the issuer never published (an attacker's app). */
export function forgedCode(issuer: QrIssuer, account: string, issuedAtMs: number, keyId = 1): string {
  const attacker = new IssuerApp(issuer, seededRandom(99), 'attacker');
  attacker.addKey(keyId, 0, Number.MAX_SAFE_INTEGER);
  return attacker.mint(account, issuedAtMs, { keyId });
}

/** A valid code with one payload byte changed (e.g. the account or the time), signature left as is. */
export function tamperedCode(text: string, byteIndex: number, xor = 0x01): string {
  const b = base45Decode(text.slice(RIDE_CODE_PREFIX.length));
  if (!b) throw new Error('not a ride code');
  b[byteIndex % b.length] ^= xor || 1;
  return RIDE_CODE_PREFIX + base45Encode(b);
}

/** Rewrite the issuer byte, leaving the signature: the code claims another issuer. */
export function wrongIssuerCode(text: string, issuer: QrIssuer): string {
  const b = base45Decode(text.slice(RIDE_CODE_PREFIX.length))!;
  b[1] = QR_ISSUERS.indexOf(issuer) + 1;
  return RIDE_CODE_PREFIX + base45Encode(b);
}
