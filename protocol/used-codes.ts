// Datagrams the lanes of one station exchange so a QR code id accepted at one lane is refused at the
// others (QCAT shares used ticket ids among a station's gates the same way). One JSON object per UDP
// datagram, UTF-8. Pure: no I/O. Layout: protocol/README.md, "QR ride codes" → "Used code ids among lanes".

export const USED_CODES_WIRE_VERSION = 1;
/** Keep datagrams well under a typical 1500-byte MTU. */
export const MAX_CODES_PER_DATAGRAM = 20;
const MAX_DATAGRAM = 4096;
const CODE_ID = /^[a-z0-9-]{1,32}:[0-9a-f]{16}$/;
const NODE = /^[A-Za-z0-9_-]{1,32}$/;

export type UsedCodesMessage =
  /** Code ids this lane accepted, each with the last instant it could be valid (ms). */
  | { t: 'used'; from: string; boot: string; n: number; codes: [string, number][] }
  /** Receipt of the `used` datagram numbered `n`. */
  | { t: 'ack'; from: string; n: number }
  /** Liveness, every few hundred ms; a changed `boot` means the peer restarted and lost its memory. */
  | { t: 'hello'; from: string; boot: string };

export type UsedCodesDecode = { ok: true; msg: UsedCodesMessage } | { ok: false; why: string };

export function encodeUsedCodes(m: UsedCodesMessage): Uint8Array {
  return new Uint8Array(Buffer.from(JSON.stringify({ v: USED_CODES_WIRE_VERSION, ...m }), 'utf8'));
}

const isUint = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= Number.MAX_SAFE_INTEGER;

export function decodeUsedCodes(b: Uint8Array): UsedCodesDecode {
  if (b.length > MAX_DATAGRAM) return { ok: false, why: 'too long' };
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8'));
  } catch {
    return { ok: false, why: 'not JSON' };
  }
  if (typeof o !== 'object' || o === null || o.v !== USED_CODES_WIRE_VERSION) return { ok: false, why: 'version' };
  if (typeof o.from !== 'string' || !NODE.test(o.from)) return { ok: false, why: 'from' };
  switch (o.t) {
    case 'ack':
      return isUint(o.n) ? { ok: true, msg: { t: 'ack', from: o.from, n: o.n } } : { ok: false, why: 'n' };
    case 'hello':
      return typeof o.boot === 'string' && o.boot.length <= 32 ? { ok: true, msg: { t: 'hello', from: o.from, boot: o.boot } } : { ok: false, why: 'boot' };
    case 'used': {
      if (!isUint(o.n) || typeof o.boot !== 'string' || o.boot.length > 32) return { ok: false, why: 'n/boot' };
      if (!Array.isArray(o.codes) || o.codes.length > MAX_CODES_PER_DATAGRAM) return { ok: false, why: 'codes' };
      const codes: [string, number][] = [];
      for (const c of o.codes) {
        if (!Array.isArray(c) || c.length !== 2 || typeof c[0] !== 'string' || !CODE_ID.test(c[0]) || !isUint(c[1])) return { ok: false, why: 'code entry' };
        codes.push([c[0], c[1]]);
      }
      return { ok: true, msg: { t: 'used', from: o.from, boot: o.boot, n: o.n, codes } };
    }
    default:
      return { ok: false, why: 'type' };
  }
}
