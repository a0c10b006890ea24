// Single-module tests of the serial driver on @serialport/binding-mock with a hand-moved clock: the
// exact silence-detection window, retransmission with the same bytes, and failures reported as events.
import { SerialPortMock } from 'serialport';
import { afterEach, describe, expect, it } from 'vitest';
import type { BarrierEvent } from '../../protocol/barrier.js';
import { decodeFrame, encodeFrame, FRAME_LENGTH, type LinkFrame } from '../../protocol/barrier-frame.js';
import { SerialBarrierLink, type PortLike } from '../../drivers/serial-barrier.js';
import type { Clock } from '../../drivers/seams.js';

class ManualClock implements Clock {
  t = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private id = 0;
  now = () => this.t;
  setTimeout = (fn: () => void, ms: number) => {
    this.timers.set(++this.id, { at: this.t + ms, fn });
    return this.id;
  };
  clearTimeout = (id: any) => void this.timers.delete(id);
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}

const settle = () => new Promise((r) => setTimeout(r, 5));

// serialport's own instance of the mock binding (importing @serialport/binding-mock directly from ESM
// would load a second copy that SerialPortMock does not see).
const MockBinding = SerialPortMock.binding;

async function rig() {
  MockBinding.reset();
  MockBinding.createPort('/dev/mock-barrier', { echo: false, record: true });
  const clock = new ManualClock();
  let port!: SerialPortMock;
  const link = new SerialBarrierLink(
    { type: 'serial', path: '/dev/mock-barrier', heartbeatMs: 100, silenceMs: 500, ackTimeoutMs: 40, retries: 2 },
    {
      clock,
      makePort: (c) => (port = new SerialPortMock({ path: c.path, baudRate: c.baudRate, autoOpen: false })) as unknown as PortLike,
    },
  );
  const events: BarrierEvent[] = [];
  await link.start((e) => events.push(e));
  await settle();
  const written = (): LinkFrame[] => {
    const rec = port.port!.recording;
    const out: LinkFrame[] = [];
    for (let i = 0; i + FRAME_LENGTH <= rec.length; i += FRAME_LENGTH) {
      const r = decodeFrame(rec, i);
      if (r.kind === 'frame') out.push(r.frame);
    }
    return out;
  };
  const board = async (...frames: LinkFrame[]) => {
    port.port!.emitData(Buffer.concat(frames.map((f) => Buffer.from(encodeFrame(f)))));
    await settle();
  };
  return { clock, link, events, written, board, port: () => port };
}

let stopLink: (() => Promise<void>) | undefined;
afterEach(async () => stopLink?.());

describe('serial barrier driver (binding-mock, manual clock)', () => {
  it('resyncs with STATUS_REQUEST before reporting up, then detects silence inside the configured window', async () => {
    const r = await rig();
    stopLink = () => r.link.stop();
    const req = r.written().find((f) => f.type === 'COMMAND');
    expect(req).toMatchObject({ type: 'COMMAND', command: { type: 'STATUS_REQUEST' } });
    expect(r.events.some((e) => e.type === 'LINK' && e.up)).toBe(false);
    await r.board({ type: 'ACK', seq: req!.seq, of: 0x06 }, { type: 'EVENT', seq: 1, event: { type: 'STATUS', flaps: 'closed', mode: 'normal', faultCode: 0, fireAlarm: false } });
    expect(r.events.map((e) => e.type)).toEqual(['LINK', 'STATUS']);
    expect(r.events[0]).toEqual({ type: 'LINK', up: true });
    // The STATUS event was acknowledged.
    expect(r.written().some((f) => f.type === 'EVENT_ACK' && f.seq === 1 && f.of === 0x8a)).toBe(true);
    const quietFrom = r.clock.now();
    r.clock.advance(500);
    expect(r.events.some((e) => e.type === 'LINK' && !e.up)).toBe(false);
    r.clock.advance(100);
    const down = r.events.find((e) => e.type === 'LINK' && !e.up);
    expect(down).toMatchObject({ type: 'LINK', up: false });
    expect(r.clock.now() - quietFrom).toBeLessThanOrEqual(600);
    await settle();
    // Heartbeats went out while idle.
    expect(r.written().filter((f) => f.type === 'HEARTBEAT').length).toBeGreaterThanOrEqual(5);
  });

  it('retransmits the same bytes, then reports COMMAND_FAILED; commands while down fail at once', async () => {
    const r = await rig();
    stopLink = () => r.link.stop();
    const req = r.written().find((f) => f.type === 'COMMAND')!;
    await r.board({ type: 'ACK', seq: req.seq, of: 0x06 }, { type: 'EVENT', seq: 1, event: { type: 'STATUS', flaps: 'closed', mode: 'normal', faultCode: 0, fireAlarm: false } });
    const outcome = r.link.request({ type: 'OPEN', direction: 'exit', passages: 2 });
    await settle();
    r.clock.advance(40);
    await settle();
    r.clock.advance(79);
    await settle();
    // Waits double: the second retransmission comes 80 ms after the first, not 40.
    expect(r.written().filter((f) => f.type === 'COMMAND' && f.command.type === 'OPEN')).toHaveLength(2);
    r.clock.advance(1);
    await settle();
    r.clock.advance(160);
    await settle();
    const opens = r.written().filter((f) => f.type === 'COMMAND' && f.command.type === 'OPEN');
    expect(opens).toHaveLength(3);
    expect(new Set(opens.map((f) => f.seq)).size).toBe(1);
    expect(await outcome).toEqual({ ok: false, detail: 'no answer after 3 attempts' });
    expect(r.events.at(-1)).toEqual({ type: 'COMMAND_FAILED', command: 'OPEN', port: '/dev/mock-barrier', detail: 'no answer after 3 attempts' });
    expect(r.link.counters).toMatchObject({ retransmits: 2, commandFailures: 1 });
    r.clock.advance(1000);
    r.link.send({ type: 'CLOSE' });
    await settle();
    expect(r.events.at(-1)).toMatchObject({ type: 'COMMAND_FAILED', command: 'CLOSE', port: '/dev/mock-barrier' });
  });

  it('passes a repeated event on once and counts garbage', async () => {
    const r = await rig();
    stopLink = () => r.link.stop();
    const passed: LinkFrame = { type: 'EVENT', seq: 7, event: { type: 'PASSED', direction: 'entry' } };
    r.port().port!.emitData(Buffer.from([0x00, 0xa5, 0x13]));
    await r.board(passed, passed);
    expect(r.events.filter((e) => e.type === 'PASSED')).toHaveLength(1);
    expect(r.written().filter((f) => f.type === 'EVENT_ACK' && f.seq === 7)).toHaveLength(2);
    const c = r.link.counters;
    expect(c.duplicateEvents).toBe(1);
    expect(c.bytesDiscarded).toBeGreaterThanOrEqual(3);
  });

  it('a NACK settles the command as refused, and a late ACK for an abandoned seq is ignored', async () => {
    const r = await rig();
    stopLink = () => r.link.stop();
    const req = r.written().find((f) => f.type === 'COMMAND')!;
    await r.board({ type: 'ACK', seq: req.seq, of: 0x06 }, { type: 'EVENT', seq: 1, event: { type: 'STATUS', flaps: 'closed', mode: 'locked', faultCode: 0, fireAlarm: false } });
    const outcome = r.link.request({ type: 'OPEN', direction: 'entry', passages: 1 });
    await settle();
    const open = r.written().filter((f) => f.type === 'COMMAND').at(-1)!;
    await r.board({ type: 'ACK', seq: (open.seq + 100) & 0xff, of: 0x01 }, { type: 'NACK', seq: open.seq, of: 0x01, reason: 'refused' });
    expect(await outcome).toEqual({ ok: false, detail: 'refused by the board: refused' });
    expect(r.events.at(-1)).toMatchObject({ type: 'COMMAND_FAILED', command: 'OPEN' });
    expect(r.link.counters.staleAnswers).toBe(1);
  });
});
