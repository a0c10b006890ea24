// Golden byte vectors for every frame type, both directions, and a property-based fuzz of the reader.
// CRCs here were cross-checked with Python's binascii.crc_hqx(data, 0xFFFF) (CRC-16/CCITT-FALSE), and the
// fuzz checks every accepted frame's received bytes with a CRC of the test's own, written from the spec.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  crc16,
  decodeFrame,
  encodeFrame,
  FRAME_LENGTH,
  FrameReader,
  hex,
  type DecodeResult,
  type LinkFrame,
  TYPE,
} from '../../protocol/barrier-frame.js';

const GOLDEN: [string, LinkFrame, string][] = [
  // runtime → board
  ['OPEN entry 1', { type: 'COMMAND', seq: 1, command: { type: 'OPEN', direction: 'entry', passages: 1 } }, 'a5 01 01 01 01 01 00 00 00 00 05 10'],
  ['OPEN exit 0 (safety reopen)', { type: 'COMMAND', seq: 2, command: { type: 'OPEN', direction: 'exit', passages: 0 } }, 'a5 01 02 01 02 00 00 00 00 00 a9 d4'],
  ['CLOSE', { type: 'COMMAND', seq: 3, command: { type: 'CLOSE' } }, 'a5 01 03 02 00 00 00 00 00 00 bd c5'],
  ['SET_MODE emergency', { type: 'COMMAND', seq: 4, command: { type: 'SET_MODE', mode: 'emergency' } }, 'a5 01 04 03 02 00 00 00 00 00 49 fc'],
  ['INDICATE red-cross long', { type: 'COMMAND', seq: 5, command: { type: 'INDICATE', indicator: 'red-cross', buzzer: 'long' } }, 'a5 01 05 04 02 02 00 00 00 00 53 e8'],
  ['DISPLAY 12', { type: 'COMMAND', seq: 6, command: { type: 'DISPLAY', textId: 12 } }, 'a5 01 06 05 00 0c 00 00 00 00 67 14'],
  // advise-register (text id 4) with its day: "please register by 2022-05-25" (protocol/README.md, DISPLAY_DATE)
  ['DISPLAY_DATE 4 2022-05-25', { type: 'COMMAND', seq: 7, command: { type: 'DISPLAY_DATE', textId: 4, day: '2022-05-25' } }, 'a5 01 07 0d 00 04 20 22 05 25 e5 9d'],
  ['STATUS_REQUEST', { type: 'COMMAND', seq: 7, command: { type: 'STATUS_REQUEST' } }, 'a5 01 07 06 00 00 00 00 00 00 73 6e'],
  ['HEARTBEAT runtime', { type: 'HEARTBEAT', seq: 8, from: 'runtime' }, 'a5 01 08 07 00 00 00 00 00 00 12 cd'],
  ['EVENT_ACK of PASSED', { type: 'EVENT_ACK', seq: 9, of: 0x81 }, 'a5 01 09 08 81 00 00 00 00 00 4e 77'],
  // sessions (protocol/README.md "Sessions"), session id 0x1234ABCD
  ['SESSION #1', { type: 'SESSION', seq: 1, session: 0x1234abcd }, 'a5 01 01 09 12 34 ab cd 00 00 fd af'],
  ['SESSION #6 (asking after every ack of OPEN #5 was lost)', { type: 'SESSION', seq: 6, session: 0x1234abcd }, 'a5 01 06 09 12 34 ab cd 00 00 3a b7'],
  // board → runtime
  ['PASSED entry', { type: 'EVENT', seq: 1, event: { type: 'PASSED', direction: 'entry' } }, 'a5 01 01 81 01 00 00 00 00 00 04 b8'],
  ['TAILGATE', { type: 'EVENT', seq: 2, event: { type: 'TAILGATE' } }, 'a5 01 02 82 00 00 00 00 00 00 51 ef'],
  ['INTRUSION exit', { type: 'EVENT', seq: 3, event: { type: 'INTRUSION', direction: 'exit' } }, 'a5 01 03 83 02 00 00 00 00 00 25 1d'],
  ['OBSTRUCTION', { type: 'EVENT', seq: 4, event: { type: 'OBSTRUCTION' } }, 'a5 01 04 84 00 00 00 00 00 00 70 01'],
  ['FAULT 0x0201', { type: 'EVENT', seq: 5, event: { type: 'FAULT', code: 0x0201 } }, 'a5 01 05 85 02 01 00 00 00 00 ae a2'],
  ['FIRE_ALARM on', { type: 'EVENT', seq: 6, event: { type: 'FIRE_ALARM', active: true } }, 'a5 01 06 86 01 00 00 00 00 00 da e4'],
  ['EMERGENCY_BUTTON off', { type: 'EVENT', seq: 7, event: { type: 'EMERGENCY_BUTTON', active: false } }, 'a5 01 07 87 00 00 00 00 00 00 60 f6'],
  ['POWER battery', { type: 'EVENT', seq: 8, event: { type: 'POWER', state: 'battery' } }, 'a5 01 08 88 01 00 00 00 00 00 76 7d'],
  ['FLAPS open', { type: 'EVENT', seq: 9, event: { type: 'FLAPS', position: 'open' } }, 'a5 01 09 89 02 00 00 00 00 00 47 2f'],
  ['STATUS closed normal fire', { type: 'EVENT', seq: 10, event: { type: 'STATUS', flaps: 'closed', mode: 'normal', faultCode: 0, fireAlarm: true } }, 'a5 01 0a 8a 00 00 00 00 01 00 ef a9'],
  ['ACK of OPEN', { type: 'ACK', seq: 1, of: 0x01 }, 'a5 01 01 8b 01 00 00 00 00 00 f7 f6'],
  ['NACK refused', { type: 'NACK', seq: 2, of: 0x01, reason: 'refused' }, 'a5 01 02 8c 01 03 00 00 00 00 c8 15'],
  ['HEARTBEAT board', { type: 'HEARTBEAT', seq: 11, from: 'board' }, 'a5 01 0b 8d 00 00 00 00 00 00 82 0f'],
  ['SESSION_ACK #1 fresh', { type: 'SESSION_ACK', seq: 1, session: 0x1234abcd, fresh: true }, 'a5 01 01 8e 12 34 ab cd 00 80 de 9a'],
  ['SESSION_ACK #6 last OPEN #5', { type: 'SESSION_ACK', seq: 6, session: 0x1234abcd, fresh: false, last: { seq: 5, command: 'OPEN' } }, 'a5 01 06 8e 12 34 ab cd 05 01 67 de'],
  ['SESSION_ACK #2 no last', { type: 'SESSION_ACK', seq: 2, session: 0xffffffff, fresh: false }, 'a5 01 02 8e ff ff ff ff 00 00 89 54'],
  ['SESSION_ACK #3 last DISPLAY #255', { type: 'SESSION_ACK', seq: 3, session: 1, fresh: false, last: { seq: 255, command: 'DISPLAY' } }, 'a5 01 03 8e 00 00 00 01 ff 05 20 3d'],
  ['SESSION_ACK #4 last DISPLAY_DATE #7', { type: 'SESSION_ACK', seq: 4, session: 1, fresh: false, last: { seq: 7, command: 'DISPLAY_DATE' } }, 'a5 01 04 8e 00 00 00 01 07 0d fc 45'],
  ['NACK of SESSION, unsupported (a board without sessions)', { type: 'NACK', seq: 1, of: 0x09, reason: 'unsupported' }, 'a5 01 01 8c 09 02 00 00 00 00 a7 73'],
  ['NACK of DISPLAY_DATE, unsupported (a board built before it)', { type: 'NACK', seq: 7, of: 0x0d, reason: 'unsupported' }, 'a5 01 07 8c 0d 02 00 00 00 00 21 19'],
  // normally-open flaps (protocol/README.md "Normally-open flaps")
  ['SET_FLAP_REGIME normally-open', { type: 'COMMAND', seq: 1, command: { type: 'SET_FLAP_REGIME', regime: 'normally-open' } }, 'a5 01 01 0a 01 00 00 00 00 00 e4 6e'],
  ['FAST_CLOSE', { type: 'COMMAND', seq: 2, command: { type: 'FAST_CLOSE' } }, 'a5 01 02 0b 00 00 00 00 00 00 d1 da'],
  ['AUTHORISE entry body 7', { type: 'COMMAND', seq: 3, command: { type: 'AUTHORISE', direction: 'entry', body: 7 } }, 'a5 01 03 0c 01 07 00 00 00 00 ad 39'],
  ['BODY_ENTERED entry body 7, at the flaps in 692 ms', { type: 'EVENT', seq: 1, event: { type: 'BODY_ENTERED', direction: 'entry', body: 7, etaMs: 692 } }, 'a5 01 01 90 01 07 02 b4 00 00 23 21'],
  ['BODY_AT_FLAPS entry body 7', { type: 'EVENT', seq: 2, event: { type: 'BODY_AT_FLAPS', direction: 'entry', body: 7 } }, 'a5 01 02 91 01 07 00 00 00 00 9c 62'],
  ['BODY_LEFT entry body 7 passed', { type: 'EVENT', seq: 3, event: { type: 'BODY_LEFT', direction: 'entry', body: 7, way: 'passed' } }, 'a5 01 03 92 01 07 01 00 00 00 75 87'],
  ['BODY_LEFT exit body 8 turned back', { type: 'EVENT', seq: 4, event: { type: 'BODY_LEFT', direction: 'exit', body: 8, way: 'turned-back' } }, 'a5 01 04 92 02 08 03 00 00 00 f4 ee'],
  ['BODY_LEFT entry body 9 intruded', { type: 'EVENT', seq: 5, event: { type: 'BODY_LEFT', direction: 'entry', body: 9, way: 'intruded' } }, 'a5 01 05 92 01 09 02 00 00 00 a1 38'],
  ['SESSION_ACK #7 last FAST_CLOSE #6', { type: 'SESSION_ACK', seq: 7, session: 0x1234abcd, fresh: false, last: { seq: 6, command: 'FAST_CLOSE' } }, 'a5 01 07 8e 12 34 ab cd 06 0b d4 14'],
  ['NACK of SET_FLAP_REGIME, unsupported (a board without normally-open flaps)', { type: 'NACK', seq: 1, of: 0x0a, reason: 'unsupported' }, 'a5 01 01 8c 0a 02 00 00 00 00 69 93'],
];

const bytes = (h: string) => Uint8Array.from(h.split(' ').map((x) => parseInt(x, 16)));

describe('barrier frames: golden vectors', () => {
  it('CRC-16/CCITT-FALSE check value', () => {
    expect(crc16(new TextEncoder().encode('123456789'))).toBe(0x29b1);
  });
  for (const [name, frame, h] of GOLDEN) {
    it(`${name}: encode → bytes → decode`, () => {
      expect(hex(encodeFrame(frame))).toBe(h);
      expect(decodeFrame(bytes(h))).toEqual({ kind: 'frame', frame });
    });
  }
  it('covers every frame type code', () => {
    const codes = new Set(GOLDEN.map(([, , h]) => parseInt(h.split(' ')[3], 16)));
    expect([...codes].sort((a, b) => a - b)).toEqual(Object.values(TYPE).sort((a, b) => a - b));
  });
  it('covers every command and event type', () => {
    const cmds = new Set(GOLDEN.flatMap(([, f]) => (f.type === 'COMMAND' ? [f.command.type] : [])));
    const evs = new Set(GOLDEN.flatMap(([, f]) => (f.type === 'EVENT' ? [f.event.type] : [])));
    expect([...cmds].sort()).toEqual(['AUTHORISE', 'CLOSE', 'DISPLAY', 'DISPLAY_DATE', 'FAST_CLOSE', 'INDICATE', 'OPEN', 'SET_FLAP_REGIME', 'SET_MODE', 'STATUS_REQUEST']);
    expect([...evs].sort()).toEqual(['BODY_AT_FLAPS', 'BODY_ENTERED', 'BODY_LEFT', 'EMERGENCY_BUTTON', 'FAULT', 'FIRE_ALARM', 'FLAPS', 'INTRUSION', 'OBSTRUCTION', 'PASSED', 'POWER', 'STATUS', 'TAILGATE']);
  });
  it('classifies bad slices as values', () => {
    const ok = bytes(GOLDEN[0][2]);
    expect(decodeFrame(ok.subarray(0, 5)).kind).toBe('bad-length');
    expect(decodeFrame(Uint8Array.of(0, ...ok.subarray(1))).kind).toBe('bad-start');
    const flipped = ok.slice();
    flipped[5] ^= 0x04;
    expect(decodeFrame(flipped).kind).toBe('bad-crc');
    const withCrc = (b: Uint8Array) => {
      const c = crc16(b, 0, FRAME_LENGTH - 2);
      b[10] = c >> 8;
      b[11] = c & 0xff;
      return b;
    };
    expect(decodeFrame(withCrc(Uint8Array.of(0xa5, 2, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0)))).toEqual({ kind: 'bad-version', version: 2 });
    expect(decodeFrame(withCrc(Uint8Array.of(0xa5, 1, 1, 0x44, 0, 0, 0, 0, 0, 0, 0, 0))).kind).toBe('unknown-type');
    expect(decodeFrame(withCrc(Uint8Array.of(0xa5, 1, 1, 0x03, 9, 0, 0, 0, 0, 0, 0, 0))).kind).toBe('bad-payload');
    expect(decodeFrame(withCrc(Uint8Array.of(0xa5, 1, 1, 0x01, 3, 1, 0, 0, 0, 0, 0, 0))).kind).toBe('bad-payload');
    // Sessions: id 0 is no session; a last executed seq needs an acting type (0x01..0x05) and the other way
    // round; a fresh session has no last command.
    expect(decodeFrame(withCrc(Uint8Array.of(0xa5, 1, 1, 0x09, 0, 0, 0, 0, 0, 0, 0, 0))).kind).toBe('bad-payload');
    expect(decodeFrame(withCrc(Uint8Array.of(0xa5, 1, 1, 0x8e, 0, 0, 0, 0, 0, 0x80, 0, 0))).kind).toBe('bad-payload');
    expect(decodeFrame(withCrc(Uint8Array.of(0xa5, 1, 1, 0x8e, 0, 0, 0, 1, 4, 0, 0, 0))).kind).toBe('bad-payload');
    expect(decodeFrame(withCrc(Uint8Array.of(0xa5, 1, 1, 0x8e, 0, 0, 0, 1, 0, 1, 0, 0))).kind).toBe('bad-payload');
    expect(decodeFrame(withCrc(Uint8Array.of(0xa5, 1, 1, 0x8e, 0, 0, 0, 1, 4, 0x06, 0, 0))).kind).toBe('bad-payload');
    expect(decodeFrame(withCrc(Uint8Array.of(0xa5, 1, 1, 0x8e, 0, 0, 0, 1, 4, 0x81, 0, 0))).kind).toBe('bad-payload');
    // DISPLAY_DATE: the day is BCD YYYY MM DD, a real day from 1990; a nibble that is no digit, month 13, day 0
    // or 31 April is a bad payload.
    expect(decodeFrame(withCrc(Uint8Array.of(0xa5, 1, 1, 0x0d, 0, 4, 0x20, 0x2a, 0x05, 0x25, 0, 0))).kind).toBe('bad-payload');
    expect(decodeFrame(withCrc(Uint8Array.of(0xa5, 1, 1, 0x0d, 0, 4, 0x20, 0x22, 0x13, 0x25, 0, 0))).kind).toBe('bad-payload');
    expect(decodeFrame(withCrc(Uint8Array.of(0xa5, 1, 1, 0x0d, 0, 4, 0x20, 0x22, 0x05, 0x00, 0, 0))).kind).toBe('bad-payload');
    expect(() => encodeFrame({ type: 'COMMAND', seq: 1, command: { type: 'DISPLAY_DATE', textId: 4, day: '2022-5-25' } })).toThrow(/day/);
    expect(decodeFrame(withCrc(Uint8Array.of(0xa5, 1, 1, 0x0d, 0, 4, 0x20, 0x22, 0x04, 0x31, 0, 0))).kind).toBe('bad-payload');
    expect(() => encodeFrame({ type: 'COMMAND', seq: 1, command: { type: 'DISPLAY_DATE', textId: 4, day: '2022-00-25' } })).toThrow(/day/);
    expect(() => encodeFrame({ type: 'COMMAND', seq: 1, command: { type: 'DISPLAY_DATE', textId: 4, day: '2022-02-30' } })).toThrow(/day/);
    // Normally open: regime 0..1, body 1..255 (0 is no body), body exit 1..3.
    expect(decodeFrame(withCrc(Uint8Array.of(0xa5, 1, 1, 0x0a, 2, 0, 0, 0, 0, 0, 0, 0))).kind).toBe('bad-payload');
    expect(decodeFrame(withCrc(Uint8Array.of(0xa5, 1, 1, 0x0c, 1, 0, 0, 0, 0, 0, 0, 0))).kind).toBe('bad-payload');
    expect(decodeFrame(withCrc(Uint8Array.of(0xa5, 1, 1, 0x90, 1, 0, 0, 10, 0, 0, 0, 0))).kind).toBe('bad-payload');
    expect(decodeFrame(withCrc(Uint8Array.of(0xa5, 1, 1, 0x92, 1, 3, 4, 0, 0, 0, 0, 0))).kind).toBe('bad-payload');
    expect(decodeFrame(withCrc(Uint8Array.of(0xa5, 1, 1, 0x93, 1, 3, 1, 0, 0, 0, 0, 0))).kind).toBe('unknown-type');
    expect(() => encodeFrame({ type: 'COMMAND', seq: 1, command: { type: 'AUTHORISE', direction: 'entry', body: 0 } })).toThrow(/body/);
    expect(() => encodeFrame({ type: 'EVENT', seq: 1, event: { type: 'BODY_ENTERED', direction: 'entry', body: 1, etaMs: 70_000 } })).toThrow(/etaMs/);
    expect(() => encodeFrame({ type: 'SESSION', seq: 1, session: 0 })).toThrow(/session/);
    expect(() => encodeFrame({ type: 'SESSION_ACK', seq: 1, session: 1, fresh: true, last: { seq: 1, command: 'OPEN' } })).toThrow(/fresh/);
  });
});

describe('barrier frames: reader resync', () => {
  const frames = GOLDEN.map(([, f]) => f);
  const stream = (fs: LinkFrame[]) => {
    const out = new Uint8Array(fs.length * FRAME_LENGTH);
    fs.forEach((f, i) => out.set(encodeFrame(f), i * FRAME_LENGTH));
    return out;
  };
  const good = (rs: DecodeResult[]) => rs.flatMap((r) => (r.kind === 'frame' ? [r.frame] : []));

  it('reads a clean stream cut anywhere', () => {
    const s = stream(frames);
    for (const cut of [1, 5, 12, 13, 100]) {
      const r = new FrameReader();
      const got: LinkFrame[] = [];
      for (let i = 0; i < s.length; i += cut) got.push(...good(r.push(s.subarray(i, i + cut))));
      expect(got).toEqual(frames);
      expect(r.counters.bytesDiscarded).toBe(0);
    }
  });

  it('a dropped, inserted or flipped byte costs only the frame it touched', () => {
    const s = stream(frames);
    const at = 3 * FRAME_LENGTH + 5; // inside frame 3
    const variants = {
      dropped: Uint8Array.from([...s.subarray(0, at), ...s.subarray(at + 1)]),
      inserted: Uint8Array.from([...s.subarray(0, at), 0x5a, ...s.subarray(at)]),
      flipped: Uint8Array.from(s, (b, i) => (i === at ? b ^ 0x10 : b)),
      junkFirst: Uint8Array.from([1, 2, 0xa5, 3, ...s]),
    };
    for (const [name, v] of Object.entries(variants)) {
      const r = new FrameReader();
      const got = good(r.push(v));
      const expected = name === 'junkFirst' ? frames : frames.filter((_, i) => i !== 3);
      expect(got, name).toEqual(expected);
      expect(r.counters.bytesDiscarded, name).toBeGreaterThan(0);
    }
  });
});

/**
 * The test's own CRC-16/CCITT-FALSE, written from protocol/README.md (poly 0x1021, init 0xFFFF, not
 * reflected, no final XOR) as a bit-serial shift register: each message bit, most significant first, is
 * XORed with the register's top bit to decide whether the polynomial is fed back. Independent of
 * protocol/barrier-frame.ts (which is byte-at-a-time and table-driven on the reader's path).
 */
function specCrc16(data: ArrayLike<number>): number {
  let reg = 0xffff;
  for (let i = 0; i < data.length; i++) {
    for (let bit = 7; bit >= 0; bit--) {
      const feedback = ((data[i] >> bit) & 1) ^ (reg >> 15);
      reg = (reg << 1) & 0xffff;
      if (feedback) reg ^= 0x1021;
    }
  }
  return reg;
}

describe('barrier frames: fuzz', () => {
  it("the fuzz oracle's own CRC meets the published check value (CRC catalogue: CRC-16/IBM-3740, alias CCITT-FALSE, check 0x29B1) and the golden frames", () => {
    expect(specCrc16(Array.from('123456789', (ch) => ch.charCodeAt(0)))).toBe(0x29b1);
    expect(specCrc16([])).toBe(0xffff);
    for (const [name, , h] of GOLDEN) {
      const b = bytes(h);
      expect(specCrc16(b.subarray(0, 10)), name).toBe((b[10] << 8) | b[11]);
    }
  });

  /** Feed the stream one byte at a time: a frame result then ends at exactly the byte just pushed. */
  const oracle = (chunks: Uint8Array[]) => {
    const all = Uint8Array.from(chunks.flatMap((c) => [...c]));
    const r = new FrameReader();
    const results: DecodeResult[] = [];
    for (let i = 0; i < all.length; i++) {
      for (const res of r.push(all.subarray(i, i + 1))) {
        results.push(res);
        if (res.kind !== 'frame') continue;
        // What the reader accepted is the 12 bytes received up to here: a start byte and a CRC the spec agrees with.
        const got = all.subarray(i + 1 - FRAME_LENGTH, i + 1);
        expect(got.length).toBe(FRAME_LENGTH);
        expect(got[0]).toBe(0xa5);
        expect(specCrc16(got.subarray(0, 10)), `frame ending at byte ${i}: ${hex(got)}`).toBe((got[10] << 8) | got[11]);
      }
    }
    return results;
  };

  const check = (r: FrameReader, chunks: Uint8Array[]) => {
    let total = 0;
    const results: DecodeResult[] = [];
    for (const c of chunks) {
      total += c.length;
      results.push(...r.push(c));
      expect(r.pending).toBeLessThan(FRAME_LENGTH);
    }
    // However the bytes were cut (an aligned 12-byte chunk takes the reader's fast path), the reader gives
    // what it gives byte by byte, where every accepted frame's received bytes are checked with the spec's CRC.
    expect(results).toEqual(oracle(chunks));
    const c = r.counters;
    // Every byte is accounted for: in a frame, discarded, or still pending.
    expect(c.frames * FRAME_LENGTH + c.badFrames * FRAME_LENGTH + c.bytesDiscarded + r.pending).toBe(total);
  };

  it('random byte streams: no crash, no hang, every byte accounted for', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 40 }), (chunks) => check(new FrameReader(), chunks)),
      { numRuns: 2000 },
    );
  });

  const frameArb: fc.Arbitrary<LinkFrame> = fc.oneof(
    fc.record({ type: fc.constant('COMMAND' as const), seq: fc.integer({ min: 0, max: 255 }), command: fc.oneof(
      fc.record({ type: fc.constant('OPEN' as const), direction: fc.constantFrom('entry' as const, 'exit' as const), passages: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ type: fc.constant('DISPLAY' as const), textId: fc.integer({ min: 0, max: 0xffff }) }),
      fc.record({
        type: fc.constant('DISPLAY_DATE' as const),
        textId: fc.integer({ min: 0, max: 0xffff }),
        day: fc.tuple(fc.integer({ min: 1990, max: 9999 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 28 })).map(([y, m, d]) => `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`),
      }),
      fc.constant({ type: 'CLOSE' as const }),
    ) }),
    fc.record({ type: fc.constant('EVENT' as const), seq: fc.integer({ min: 0, max: 255 }), event: fc.oneof(
      fc.record({ type: fc.constant('FAULT' as const), code: fc.integer({ min: 0, max: 0xffff }) }),
      fc.record({ type: fc.constant('PASSED' as const), direction: fc.constantFrom('entry' as const, 'exit' as const) }),
    ) }),
    fc.record({ type: fc.constant('ACK' as const), seq: fc.integer({ min: 0, max: 255 }), of: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ type: fc.constant('SESSION' as const), seq: fc.integer({ min: 0, max: 255 }), session: fc.integer({ min: 1, max: 0xffffffff }) }),
    fc.oneof(
      fc.record({ type: fc.constant('SESSION_ACK' as const), seq: fc.integer({ min: 0, max: 255 }), session: fc.integer({ min: 1, max: 0xffffffff }), fresh: fc.boolean() }),
      fc.record({
        type: fc.constant('SESSION_ACK' as const),
        seq: fc.integer({ min: 0, max: 255 }),
        session: fc.integer({ min: 1, max: 0xffffffff }),
        fresh: fc.constant(false),
        last: fc.record({ seq: fc.integer({ min: 1, max: 255 }), command: fc.constantFrom('OPEN' as const, 'CLOSE' as const, 'SET_MODE' as const, 'INDICATE' as const, 'DISPLAY' as const, 'DISPLAY_DATE' as const) }),
      }),
    ),
  );

  it('every frame the fuzz draws decodes to what was encoded (sessions included)', () => {
    fc.assert(
      fc.property(frameArb, (f) => {
        expect(decodeFrame(encodeFrame(f))).toEqual({ kind: 'frame', frame: f });
      }),
      { numRuns: 2000 },
    );
  });

  it('mutated frame streams: untouched frames survive, nothing with a bad CRC is accepted', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 1, maxLength: 30 }),
        fc.array(fc.record({ at: fc.nat(), op: fc.constantFrom('drop', 'dup', 'flip', 'insert'), v: fc.integer({ min: 1, max: 255 }) }), { maxLength: 5 }),
        fc.integer({ min: 1, max: 30 }),
        (frames, mutations, cut) => {
          const bytes: number[] = [];
          frames.forEach((f) => bytes.push(...encodeFrame(f)));
          const touched = new Set<number>();
          // Apply from the end so earlier positions keep meaning; remember which frames were touched.
          const sorted = mutations.map((m) => ({ ...m, at: m.at % bytes.length })).sort((a, b) => b.at - a.at);
          for (const m of sorted) {
            touched.add(Math.floor(m.at / FRAME_LENGTH));
            if (m.op === 'drop') bytes.splice(m.at, 1);
            else if (m.op === 'dup') bytes.splice(m.at, 0, bytes[m.at]);
            else if (m.op === 'insert') bytes.splice(m.at, 0, m.v);
            else bytes[m.at] ^= m.v;
          }
          const r = new FrameReader();
          const chunks: Uint8Array[] = [];
          for (let i = 0; i < bytes.length; i += cut) chunks.push(Uint8Array.from(bytes.slice(i, i + cut)));
          check(r, chunks);
          const r2 = new FrameReader();
          const got = chunks.flatMap((c) => r2.push(c)).flatMap((x) => (x.kind === 'frame' ? [JSON.stringify(x.frame)] : []));
          // Every untouched frame whose neighbours are untouched comes through (a damaged frame may
          // hide at most the frame it overlaps, never one further away).
          frames.forEach((f, i) => {
            if (!touched.has(i) && !touched.has(i - 1)) expect(got).toContain(JSON.stringify(f));
          });
        },
      ),
      { numRuns: 1500 },
    );
  });
});
