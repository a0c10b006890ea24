// Signed QR ride codes, version 1: a compact binary payload signed with Ed25519, base45-encoded so the
// QR code uses alphanumeric mode (5.5 bits a character, about 30 % denser than byte mode with base64).
// Learned from EU DCC (base45, key id, signer lists), QCAT (ticket id, creation time, validity, key id)
// and UIC DOSIPAS (issuer-signed, versioned). Pure: no I/O; node:crypto only for signature math.
// Byte tables: protocol/README.md, section "QR ride codes".

import { sign, verify, type KeyObject } from 'node:crypto';
import { QR_ISSUERS, type QrIssuer } from './credential.js';

/** Text prefix of every version-1 ride code ("ride code 1"), inside the QR alphanumeric alphabet. */
export const RIDE_CODE_PREFIX = 'RC1:';
export const RIDE_CODE_VERSION = 1;
export const SIGNATURE_BYTES = 64;
/** Fixed header before the account: version, issuer, key id, issued-at, validity, code id, account length. */
export const HEADER_BYTES = 19;
export const MAX_ACCOUNT_BYTES = 64;
export const CODE_ID_BYTES = 8;

/** Issuer codes on the wire (byte 1): 1-based position in QR_ISSUERS. Never renumber; append only. */
export function issuerCode(issuer: QrIssuer): number {
  return QR_ISSUERS.indexOf(issuer) + 1;
}
export function issuerFromCode(code: number): QrIssuer | undefined {
  return code >= 1 && code <= QR_ISSUERS.length ? QR_ISSUERS[code - 1] : undefined;
}

export interface RideCodeFields {
  issuer: QrIssuer;
  /** Issuer key id, 0-65535, as listed in the trust list. */
  keyId: number;
  account: string;
  /** Seconds since the Unix epoch (UTC) when the app minted the code; also the start of its validity. */
  issuedAtS: number;
  /** How long the code is valid, in seconds (1-65535): valid for [issuedAt, issuedAt + validity). */
  validitySeconds: number;
  /** 8 random bytes, unique per code: the replay key. */
  codeId: Uint8Array;
}

export interface ParsedRideCode extends RideCodeFields {
  version: number;
  /** `issuer:hex(codeId)`: the key used by UsedCodes. */
  codeIdText: string;
  /** Bytes covered by the signature (header and account). */
  signed: Uint8Array;
  signature: Uint8Array;
}

export type RideCodeParseError =
  | 'prefix' // not a ride code at all (another QR code)
  | 'base45' // characters outside the alphabet or a non-canonical group
  | 'length' // too short, or length disagrees with the account length byte
  | 'version' // a version this gate does not know
  | 'issuer' // issuer code not in the table
  | 'account'; // account bytes outside [A-Za-z0-9_-]

export type RideCodeParse = { ok: true; code: ParsedRideCode } | { ok: false; error: RideCodeParseError; detail: string };

// ---------------------------------------------------------------------------------------------
// base45 (RFC 9285): the QR alphanumeric alphabet.

const B45 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:';
const B45_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < B45.length; i++) B45_VALUE[B45.charCodeAt(i)] = i;

export function base45Encode(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 1 < bytes.length; i += 2) {
    let n = bytes[i] * 256 + bytes[i + 1];
    const c = n % 45;
    n = (n - c) / 45;
    const d = n % 45;
    const e = (n - d) / 45;
    out += B45[c] + B45[d] + B45[e];
  }
  if (i < bytes.length) {
    const n = bytes[i];
    out += B45[n % 45] + B45[Math.floor(n / 45)];
  }
  return out;
}

/** Strict decode: rejects foreign characters, a dangling single character and values out of range, so each byte string has exactly one text. */
export function base45Decode(text: string): Uint8Array | undefined {
  const rem = text.length % 3;
  if (rem === 1) return undefined;
  const out = new Uint8Array(((text.length - rem) / 3) * 2 + (rem === 2 ? 1 : 0));
  let o = 0;
  let i = 0;
  const val = (k: number): number => {
    const ch = text.charCodeAt(k);
    return ch < 128 ? B45_VALUE[ch] : -1;
  };
  for (; i + 2 < text.length; i += 3) {
    const c = val(i), d = val(i + 1), e = val(i + 2);
    if (c < 0 || d < 0 || e < 0) return undefined;
    const n = c + d * 45 + e * 2025;
    if (n > 0xffff) return undefined;
    out[o++] = n >> 8;
    out[o++] = n & 0xff;
  }
  if (rem === 2) {
    const c = val(i), d = val(i + 1);
    if (c < 0 || d < 0) return undefined;
    const n = c + d * 45;
    if (n > 0xff) return undefined;
    out[o++] = n;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

const ACCOUNT_BYTE = new Uint8Array(256);
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-') ACCOUNT_BYTE[ch.charCodeAt(0)] = 1;

/** The signed bytes of a code (header + account). Throws on fields an issuer must never produce. */
export function encodeRideCodeBody(f: RideCodeFields): Uint8Array {
  const code = issuerCode(f.issuer);
  if (code < 1) throw new RangeError(`unknown issuer ${f.issuer}`);
  if (!Number.isInteger(f.keyId) || f.keyId < 0 || f.keyId > 0xffff) throw new RangeError('keyId must be 0-65535');
  if (!Number.isInteger(f.issuedAtS) || f.issuedAtS < 0 || f.issuedAtS > 0xffffffff) throw new RangeError('issuedAtS must be a uint32');
  if (!Number.isInteger(f.validitySeconds) || f.validitySeconds < 1 || f.validitySeconds > 0xffff) throw new RangeError('validitySeconds must be 1-65535');
  if (f.codeId.length !== CODE_ID_BYTES) throw new RangeError(`codeId must be ${CODE_ID_BYTES} bytes`);
  const acc = Buffer.from(f.account, 'latin1');
  if (acc.length < 1 || acc.length > MAX_ACCOUNT_BYTES || acc.some((b) => !ACCOUNT_BYTE[b]) || acc.toString('latin1') !== f.account) {
    throw new RangeError('account must be 1-64 of [A-Za-z0-9_-]');
  }
  const b = new Uint8Array(HEADER_BYTES + acc.length);
  const v = new DataView(b.buffer);
  b[0] = RIDE_CODE_VERSION;
  b[1] = code;
  v.setUint16(2, f.keyId);
  v.setUint32(4, f.issuedAtS);
  v.setUint16(8, f.validitySeconds);
  b.set(f.codeId, 10);
  b[18] = acc.length;
  b.set(acc, HEADER_BYTES);
  return b;
}

/** Join signed bytes and signature into the QR text. */
export function rideCodeText(body: Uint8Array, signature: Uint8Array): string {
  const all = new Uint8Array(body.length + signature.length);
  all.set(body, 0);
  all.set(signature, body.length);
  return RIDE_CODE_PREFIX + base45Encode(all);
}

/** Mint a code as an issuer app does: sign with the issuer's Ed25519 private key. */
export function mintRideCode(f: RideCodeFields, privateKey: KeyObject): string {
  const body = encodeRideCodeBody(f);
  return rideCodeText(body, sign(null, body, privateKey));
}

/** Parse the QR text; no signature or time check (the verifier does those against the trust list). */
export function parseRideCode(text: string): RideCodeParse {
  if (!text.startsWith(RIDE_CODE_PREFIX)) return { ok: false, error: 'prefix', detail: 'not a ride code (prefix)' };
  const maxChars = Math.ceil(((HEADER_BYTES + MAX_ACCOUNT_BYTES + SIGNATURE_BYTES) * 3) / 2) + RIDE_CODE_PREFIX.length;
  if (text.length > maxChars) return { ok: false, error: 'length', detail: `text longer than ${maxChars}` };
  const bytes = base45Decode(text.slice(RIDE_CODE_PREFIX.length));
  if (!bytes) return { ok: false, error: 'base45', detail: 'invalid base45' };
  if (bytes.length < HEADER_BYTES + 1 + SIGNATURE_BYTES) return { ok: false, error: 'length', detail: `${bytes.length} bytes is too short` };
  if (bytes[0] !== RIDE_CODE_VERSION) return { ok: false, error: 'version', detail: `version ${bytes[0]}` };
  const issuer = issuerFromCode(bytes[1]);
  if (!issuer) return { ok: false, error: 'issuer', detail: `issuer code ${bytes[1]}` };
  const accLen = bytes[18];
  if (accLen < 1 || accLen > MAX_ACCOUNT_BYTES || bytes.length !== HEADER_BYTES + accLen + SIGNATURE_BYTES) {
    return { ok: false, error: 'length', detail: `account length ${accLen} disagrees with ${bytes.length} bytes` };
  }
  let account = '';
  for (let i = HEADER_BYTES; i < HEADER_BYTES + accLen; i++) {
    if (!ACCOUNT_BYTE[bytes[i]]) return { ok: false, error: 'account', detail: 'account byte outside [A-Za-z0-9_-]' };
    account += String.fromCharCode(bytes[i]);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const validitySeconds = v.getUint16(8);
  if (validitySeconds === 0) return { ok: false, error: 'length', detail: 'validity 0' };
  const codeId = bytes.subarray(10, 18);
  return {
    ok: true,
    code: {
      version: bytes[0],
      issuer,
      keyId: v.getUint16(2),
      issuedAtS: v.getUint32(4),
      validitySeconds,
      codeId,
      codeIdText: `${issuer}:${Buffer.from(codeId).toString('hex')}`,
      account,
      signed: bytes.subarray(0, HEADER_BYTES + accLen),
      signature: bytes.subarray(HEADER_BYTES + accLen),
    },
  };
}

/** Ed25519 check of a parsed code's signature. */
export function rideCodeSignatureOk(code: ParsedRideCode, publicKey: KeyObject): boolean {
  try {
    return verify(null, code.signed, publicKey, code.signature);
  } catch {
    return false;
  }
}
