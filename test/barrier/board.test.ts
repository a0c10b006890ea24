// The virtual board from the runtime's side of a real pty, with raw bytes: a repeated seq executes once
// and is answered again; a CRC-valid frame it cannot use gets a NACK; its events repeat until acknowledged.
import { SerialPort } from 'serialport';
import { afterEach, expect, it } from 'vitest';
import { crc16, encodeFrame, FRAME_LENGTH, FrameReader, type LinkFrame } from '../../protocol/barrier-frame.js';
import { BarrierBoard } from '../../simulator/barrier-board.js';
import { ptyPair, type PtyPair } from '../support/pty.js';

let pty: PtyPair | undefined;
let board: BarrierBoard | undefined;
let port: SerialPort | undefined;
afterEach(async () => {
  if (port?.isOpen) await new Promise((r) => port!.close(r));
  await board?.stop();
  await pty?.close();
});

async function rig() {
  pty = await ptyPair('board');
  board = new BarrierBoard({ path: pty.b, heartbeatMs: 1000, failSafeAfterMs: 60_000, eventRetryMs: 30, eventRetries: 2, mechanics: { openMs: 5, closeMs: 5 } });
  await board.start();
  const p = new SerialPort({ path: pty.a, baudRate: 115200, autoOpen: false });
  await new Promise<void>((res, rej) => p.open((e) => (e ? rej(e) : res())));
  port = p;
  const frames: LinkFrame[] = [];
  const reader = new FrameReader();
  p.on('data', (b: Buffer) => {
    for (const r of reader.push(b)) if (r.kind === 'frame' && r.frame.type !== 'HEARTBEAT') frames.push(r.frame);
  });
  const send = (b: Uint8Array) => p.write(Buffer.from(b));
  const waitFor = async (pred: () => boolean, what: string) => {
    const until = Date.now() + 5000;
    while (!pred()) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(frames)}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  return { frames, send, waitFor, board: board! };
}

it('a retransmitted OPEN (same seq, same bytes) opens once and is acknowledged each time', async () => {
  const r = await rig();
  const open = encodeFrame({ type: 'COMMAND', seq: 42, command: { type: 'OPEN', direction: 'entry', passages: 1 } });
  r.send(open);
  r.send(open);
  r.send(open);
  await r.waitFor(() => r.frames.filter((f) => f.type === 'ACK').length === 3, 'three ACKs');
  expect(r.frames.filter((f) => f.type === 'ACK')).toEqual(Array(3).fill({ type: 'ACK', seq: 42, of: 0x01 }));
  expect(r.board.barrier.counts.opens).toBe(1);
  expect(r.board.counts.duplicateCommands).toBe(2);
  // The next seq is a new command.
  r.send(encodeFrame({ type: 'COMMAND', seq: 43, command: { type: 'OPEN', direction: 'entry', passages: 1 } }));
  await r.waitFor(() => r.board.barrier.counts.opens === 2, 'second opening');
});

it('CRC-valid but unusable frames get NACK; events repeat until EVENT_ACK', async () => {
  const r = await rig();
  const withCrc = (b: number[]) => {
    const f = Uint8Array.from(b);
    const c = crc16(f, 0, FRAME_LENGTH - 2);
    f[10] = c >> 8;
    f[11] = c & 0xff;
    return f;
  };
  r.send(withCrc([0xa5, 1, 7, 0x03, 9, 0, 0, 0, 0, 0, 0, 0])); // SET_MODE 9
  r.send(withCrc([0xa5, 1, 8, 0x44, 0, 0, 0, 0, 0, 0, 0, 0])); // unknown type
  await r.waitFor(() => r.frames.filter((f) => f.type === 'NACK').length === 2, 'two NACKs');
  expect(r.frames.filter((f) => f.type === 'NACK')).toEqual([
    { type: 'NACK', seq: 7, of: 0x03, reason: 'bad-payload' },
    { type: 'NACK', seq: 8, of: 0x44, reason: 'unsupported' },
  ]);
  expect(r.board.barrier.mode).toBe('normal');
  r.board.power('battery');
  await r.waitFor(() => r.frames.filter((f) => f.type === 'EVENT').length >= 2, 'event repeated');
  const ev = r.frames.find((f) => f.type === 'EVENT')!;
  expect(ev).toMatchObject({ type: 'EVENT', event: { type: 'POWER', state: 'battery' } });
  r.send(encodeFrame({ type: 'EVENT_ACK', seq: ev.seq, of: 0x88 }));
  await r.waitFor(() => r.board.idle, 'board idle after EVENT_ACK');
  expect(r.board.counts.eventsAcked).toBe(1);
});
