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

const SESSION = 0x1234abcd;
const STATUS: LinkFrame = { type: 'EVENT', seq: 1, event: { type: 'STATUS', flaps: 'closed', mode: 'normal', faultCode: 0, fireAlarm: false } };

async function rig() {
  MockBinding.reset();
  MockBinding.createPort('/dev/mock-barrier', { echo: false, record: true });
  const clock = new ManualClock();
  let port!: SerialPortMock;
  const link = new SerialBarrierLink(
    { type: 'serial', path: '/dev/mock-barrier', heartbeatMs: 100, silenceMs: 500, ackTimeoutMs: 40, retries: 2, linkWaitMs: 300 },
    {
      clock,
      session: SESSION,
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
  /** Sequenced frames written (commands and SESSION), heartbeats and event acks left out. */
  const sent = () => written().filter((f): f is Extract<LinkFrame, { type: 'COMMAND' | 'SESSION' }> => f.type === 'COMMAND' || f.type === 'SESSION');
  const board = async (...frames: LinkFrame[]) => {
    port.port!.emitData(Buffer.concat(frames.map((f) => Buffer.from(encodeFrame(f)))));
    await settle();
  };
  /** Play the board's side of the resync: SESSION answered (a board with sessions) or refused (one without), then STATUS. */
  const handshake = async (sessions: boolean, status: LinkFrame = STATUS) => {
    const ses = sent().find((f) => f.type === 'SESSION')!;
    expect(ses).toMatchObject({ type: 'SESSION', session: SESSION });
    await board(sessions ? { type: 'SESSION_ACK', seq: ses.seq, session: SESSION, fresh: true } : { type: 'NACK', seq: ses.seq, of: 0x09, reason: 'unsupported' });
    const req = sent().find((f) => f.type === 'COMMAND' && f.command.type === 'STATUS_REQUEST')!;
    expect(req.seq).toBe((ses.seq % 255) + 1);
    await board({ type: 'ACK', seq: req.seq, of: 0x06 }, status);
  };
  /** Move the clock past every retransmission of the command in flight (3 attempts: waits 40, 80, 160 ms). */
  const exhaust = async () => {
    for (const ms of [40, 80, 160]) {
      r0.clock.advance(ms);
      await settle();
    }
  };
  const r0 = { clock, link, events, written, sent, board, handshake, exhaust, port: () => port };
  return r0;
}

let stopLink: (() => Promise<void>) | undefined;
afterEach(async () => stopLink?.());

describe('serial barrier driver (binding-mock, manual clock)', () => {
  it('resyncs with SESSION then STATUS_REQUEST before reporting up, then detects silence inside the configured window', async () => {
    const r = await rig();
    stopLink = () => r.link.stop();
    // The first frame is SESSION with this link's id; the first seq is drawn from it (1 + id mod 255).
    expect(r.sent()).toEqual([{ type: 'SESSION', seq: 1 + (SESSION % 255), session: SESSION }]);
    expect(r.events.some((e) => e.type === 'LINK' && e.up)).toBe(false);
    await r.handshake(true);
    expect(r.link.boardSupportsSessions).toBe(true);
    expect(r.link.counters.freshSessions).toBe(1);
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

  it('a board without sessions: retransmits the same bytes, then COMMAND_FAILED saying the truth is unknown', async () => {
    const r = await rig();
    stopLink = () => r.link.stop();
    await r.handshake(false);
    expect(r.link.boardSupportsSessions).toBe(false);
    expect(r.events.map((e) => e.type)).toEqual(['LINK', 'STATUS']);
    expect(r.link.counters.commandFailures).toBe(0); // a refused SESSION is an answer, not a failure
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
    const detail = 'no answer after 3 attempts; the board does not report what it executed (no SESSION support): unknown whether it executed OPEN';
    expect(await outcome).toEqual({ ok: false, detail });
    expect(r.events.at(-1)).toEqual({ type: 'COMMAND_FAILED', command: 'OPEN', port: '/dev/mock-barrier', detail });
    // Not asked: a board without sessions cannot answer.
    expect(r.sent().filter((f) => f.type === 'SESSION')).toHaveLength(1);
    expect(r.link.counters).toMatchObject({ retransmits: 2, commandFailures: 1, ackLostUnknown: 1 });
  });

  it('while the link is down, commands wait for it (then fail as never sent); an authorising OPEN fails at once', async () => {
    const r = await rig();
    stopLink = () => r.link.stop();
    await r.handshake(true);
    r.clock.advance(600); // silence: link down
    await settle();
    expect(r.events.at(-1)).toMatchObject({ type: 'LINK', up: false });
    const mark = r.events.length;
    const close = r.link.request({ type: 'CLOSE' });
    const open = r.link.request({ type: 'OPEN', direction: 'entry', passages: 1 });
    await settle();
    expect(await open).toMatchObject({ ok: false, executed: false, detail: expect.stringMatching(/an opening is never kept waiting/) });
    expect(r.events.slice(mark)).toEqual([{ type: 'COMMAND_FAILED', command: 'OPEN', port: '/dev/mock-barrier', executed: false, detail: expect.stringMatching(/^link down/) }]);
    r.clock.advance(299);
    await settle();
    expect(r.events.slice(mark).map((e) => e.type)).toEqual(['COMMAND_FAILED']); // CLOSE still waiting
    r.clock.advance(100);
    await settle();
    expect(await close).toMatchObject({ ok: false, executed: false, detail: expect.stringMatching(/^link down for 300 ms, never sent: no frame from the board/) });
    expect(r.events.at(-1)).toMatchObject({ type: 'COMMAND_FAILED', command: 'CLOSE', port: '/dev/mock-barrier', executed: false });
    expect(r.sent().some((f) => f.type === 'COMMAND' && f.command.type === 'CLOSE')).toBe(false);
    expect(r.link.counters.linkWaitExpired).toBe(1);
  });

  it('commands sent before the port opens wait, and go out in order once the link is up', async () => {
    const r = await rig();
    stopLink = () => r.link.stop();
    r.link.send({ type: 'SET_MODE', mode: 'locked' });
    r.link.send({ type: 'DISPLAY', textId: 3 });
    await settle();
    expect(r.events).toEqual([]);
    expect(r.sent().map((f) => f.type)).toEqual(['SESSION']);
    await r.handshake(true);
    const cmds = r.sent().filter((f) => f.type === 'COMMAND').map((f) => (f.type === 'COMMAND' ? f.command.type : ''));
    expect(cmds).toEqual(['STATUS_REQUEST', 'SET_MODE']); // one at a time: DISPLAY after SET_MODE's ACK
    const setMode = r.sent().at(-1)!;
    await r.board({ type: 'ACK', seq: setMode.seq, of: 0x03 });
    expect(r.sent().at(-1)).toMatchObject({ type: 'COMMAND', command: { type: 'DISPLAY', textId: 3 } });
    expect(r.events.map((e) => e.type)).toEqual(['LINK', 'STATUS']);
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

  it('a NACK settles the command as refused (not executed), and a late ACK for an abandoned seq is ignored', async () => {
    const r = await rig();
    stopLink = () => r.link.stop();
    await r.handshake(true, { type: 'EVENT', seq: 1, event: { type: 'STATUS', flaps: 'closed', mode: 'locked', faultCode: 0, fireAlarm: false } });
    const outcome = r.link.request({ type: 'OPEN', direction: 'entry', passages: 1 });
    await settle();
    const open = r.sent().at(-1)!;
    await r.board({ type: 'ACK', seq: (open.seq + 100) & 0xff, of: 0x01 }, { type: 'NACK', seq: open.seq, of: 0x01, reason: 'refused' });
    expect(await outcome).toEqual({ ok: false, executed: false, detail: 'refused by the board: refused' });
    expect(r.events.at(-1)).toMatchObject({ type: 'COMMAND_FAILED', command: 'OPEN', executed: false });
    expect(r.link.counters.staleAnswers).toBe(1);
  });
});

describe('every ack of a command lost: the driver asks the board what it executed (binding-mock, manual clock)', () => {
  /** Up with a board that speaks sessions; an OPEN (and a DISPLAY behind it) sent, every ack of the OPEN lost. */
  async function acksLost() {
    const r = await rig();
    stopLink = () => r.link.stop();
    await r.handshake(true);
    const mark = r.events.length;
    const open = r.link.request({ type: 'OPEN', direction: 'entry', passages: 1 });
    const display = r.link.request({ type: 'DISPLAY', textId: 7 });
    await settle();
    const openSeq = r.sent().at(-1)!.seq;
    await r.exhaust();
    const ask = r.sent().at(-1)!;
    return { r, mark, open, display, openSeq, ask };
  }

  it('the board executed it: settled as done, no COMMAND_FAILED, and the next command waited for the answer', async () => {
    const { r, mark, open, display, openSeq, ask } = await acksLost();
    // After the last OPEN, SESSION (same id, the next seq); the DISPLAY queued behind the OPEN has not gone yet.
    expect(r.sent().slice(-4).map((f) => f.type)).toEqual(['COMMAND', 'COMMAND', 'COMMAND', 'SESSION']);
    expect(ask).toEqual({ type: 'SESSION', seq: (openSeq % 255) + 1, session: SESSION });
    await r.board({ type: 'SESSION_ACK', seq: ask.seq, session: SESSION, fresh: false, last: { seq: openSeq, command: 'OPEN' } });
    expect(await open).toEqual({ ok: true, attempts: 3, ackLost: true });
    expect(r.events.slice(mark)).toEqual([]);
    expect(r.sent().at(-1)).toMatchObject({ type: 'COMMAND', command: { type: 'DISPLAY', textId: 7 } });
    await r.board({ type: 'ACK', seq: r.sent().at(-1)!.seq, of: 0x05 });
    expect(await display).toEqual({ ok: true, attempts: 1 });
    expect(r.link.counters).toMatchObject({ ackLostExecuted: 1, ackLostNotExecuted: 0, ackLostUnknown: 0, commandFailures: 0 });
  });

  it('the board did not execute it: COMMAND_FAILED with executed false', async () => {
    const { r, mark, open, openSeq, ask } = await acksLost();
    await r.board({ type: 'SESSION_ACK', seq: ask.seq, session: SESSION, fresh: false, last: { seq: (openSeq + 254) % 255 || 255, command: 'SET_MODE' } });
    const o = await open;
    expect(o).toMatchObject({ ok: false, executed: false, detail: expect.stringMatching(/^no answer after 3 attempts; the board did not execute it \(its last executed command: #\d+ SET_MODE\)$/) });
    expect(r.events.slice(mark)).toEqual([{ type: 'COMMAND_FAILED', command: 'OPEN', port: '/dev/mock-barrier', executed: false, detail: (o as { detail: string }).detail }]);
    expect(r.link.counters.ackLostNotExecuted).toBe(1);
  });

  it('the board no longer holds our session (it restarted): unknown, and its status is asked for', async () => {
    const { r, mark, open, ask } = await acksLost();
    await r.board({ type: 'SESSION_ACK', seq: ask.seq, session: SESSION, fresh: true });
    const o = await open;
    expect(o).toEqual({ ok: false, detail: 'no answer after 3 attempts; the board no longer held our session (restarted?): unknown whether it executed OPEN' });
    const failed = r.events.slice(mark).find((e) => e.type === 'COMMAND_FAILED');
    expect(failed).not.toHaveProperty('executed');
    expect(r.sent().at(-1)).toMatchObject({ type: 'COMMAND', command: { type: 'STATUS_REQUEST' } });
    expect(r.link.counters.ackLostUnknown).toBe(1);
  });

  it('the question goes unanswered too: COMMAND_FAILED, unknown, and says so', async () => {
    const { r, mark, open } = await acksLost();
    await r.exhaust();
    const o = await open;
    expect(o).toEqual({ ok: false, detail: 'no answer after 3 attempts; asking the board what it executed failed too (no answer after 3 attempts): unknown whether it executed OPEN' });
    expect(r.events.slice(mark)).toEqual([{ type: 'COMMAND_FAILED', command: 'OPEN', port: '/dev/mock-barrier', detail: o.ok ? '' : o.detail }]);
    expect(r.link.counters.ackLostUnknown).toBe(1);
  });
});
