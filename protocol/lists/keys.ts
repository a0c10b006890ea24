// List keys and the status byte: which keys a list holds, how a card number becomes its exact 64-bit
// code, how any other key is hashed for placement. Pure. Byte tables: protocol/README.md, "Keys and the
// status byte".

export type ListStatus = 'green' | 'yellow' | 'red';

/** Status byte: bits 0-1 binding status (0 = not registered, 1 green, 2 yellow, 3 red), bit 2 blocked. 0 = no entry. */
export const STATUS_BITS = { green: 1, yellow: 2, red: 3 } as const;
export const BLOCKED_BIT = 4;
const STATUS_NAMES: (ListStatus | undefined)[] = [undefined, 'green', 'yellow', 'red'];

export function statusByte(status: ListStatus | undefined, blocked: boolean): number {
  return (status ? STATUS_BITS[status] : 0) | (blocked ? BLOCKED_BIT : 0);
}
export function bindingOf(b: number): ListStatus | undefined {
  return STATUS_NAMES[b & 3];
}
export function isBlockedByte(b: number): boolean {
  return (b & BLOCKED_BIT) !== 0;
}

/** Status byte that marks a removal inside a change set (never stored in a list). */
export const REMOVED = 8;

export const MAX_KEY_BYTES = 255;

const CARD_PREFIX = 'card:';
const GENERIC_KEY = /^(?:qr:[a-z][a-z0-9-]{0,31}:[A-Za-z0-9_-]{1,64}|ticket:[A-Z0-9]{8,20})$/;
const CARD_KEY = /^card:\d{19}$/;

export type KeyClass = 'card' | 'generic' | 'invalid';
export function classifyKey(key: string): KeyClass {
  if (CARD_KEY.test(key)) return 'card';
  if (GENERIC_KEY.test(key)) return 'generic';
  return 'invalid';
}

// Feistel round keys: a fixed, public permutation of the 64-bit space that spreads card numbers
// (which share long issuer prefixes) evenly over the bucket index while staying exactly invertible.
const K0 = 0x3c6ef372, K1 = 0xa54ff53a, K2 = 0x510e527f, K3 = 0x9b05688c;
function round(x: number, k: number): number {
  x = Math.imul(x ^ k, 0x9e3779b1);
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  return x;
}

/**
 * A 19-digit card number as its first 10 digits `a` (< 1e10) and last 9 `b` (< 1e9), mapped to two
 * u32 (out[0] high, out[1] low): pack (a >> 2, (a & 3) << 30 | b) — injective since b < 2^30 —
 * then a 4-round Feistel permutation (a bijection, whatever the round function).
 */
export function encodeCardParts(a: number, b: number, out: Uint32Array): void {
  let l = Math.floor(a / 4) >>> 0;
  let r = ((a % 4) * 0x40000000 + b) >>> 0;
  let t = (l ^ round(r, K0)) >>> 0; l = r; r = t;
  t = (l ^ round(r, K1)) >>> 0; l = r; r = t;
  t = (l ^ round(r, K2)) >>> 0; l = r; r = t;
  t = (l ^ round(r, K3)) >>> 0; l = r; r = t;
  out[0] = l;
  out[1] = r;
}

/** `card:` + 19 digits → its exact 64-bit code in out; false for anything else. */
export function encodeCardKey(key: string, out: Uint32Array): boolean {
  if (key.length !== 24 || !key.startsWith(CARD_PREFIX)) return false;
  let a = 0;
  for (let i = 5; i < 15; i++) {
    const c = key.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return false;
    a = a * 10 + c;
  }
  let b = 0;
  for (let i = 15; i < 24; i++) {
    const c = key.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return false;
    b = b * 10 + c;
  }
  encodeCardParts(a, b, out);
  return true;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** 64-bit hash of any other key (QR account, ticket): only for placement; equality is decided on the key bytes. */
export function hashKey(key: string, out: Uint32Array): void {
  let h1 = 0x811c9dc5 ^ key.length;
  let h2 = 0x2545f491;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 + c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  out[0] = fmix(h1 ^ Math.imul(h2, 0x27d4eb2f));
  out[1] = fmix(h2 + Math.imul(h1, 0x165667b1));
}

/** Bytes as a one-byte-per-char string (keys are ASCII). */
export function latin1(b: Uint8Array, at: number, len: number): string {
  let s = '';
  for (let i = 0; i < len; i++) s += String.fromCharCode(b[at + i]);
  return s;
}
