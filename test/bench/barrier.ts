// Barrier link figures, each beside its peer from the same run:
// - command → ack round trip over a real pty (driver ↔ virtual board) vs a bare serialport echo of
//   12 bytes over the same pty pair (what framing, CRC, sequencing and state cost on top of the tty);
// - frames per second the reader handles vs the 960 frames/s (11,520 bytes/s) a 115200-baud line carries.
import { ByteLengthParser } from '@serialport/parser-byte-length';
import { SerialPort } from 'serialport';
import { encodeFrame, FRAME_LENGTH, FrameReader, type LinkFrame } from '../../protocol/barrier-frame.js';
import { SerialBarrierLink } from '../../drivers/serial-barrier.js';
import { BarrierBoard } from '../../simulator/barrier-board.js';
import { ptyPair } from '../support/pty.js';
import { type BenchReport, percentile } from './report.js';

// Alternate rounds of each so a load change on the machine hits both alike.
const ROUNDS = 4;
const ROUND_TRIPS = 750;
const WARMUP = 50;

/** CPU time of this process (both ends run in it), summed over the measured round trips. */
const cpuMs = { bare: 0, ours: 0 };
const cpuSince = (c0: NodeJS.CpuUsage) => {
  const d = process.cpuUsage(c0);
  return (d.user + d.system) / 1000;
};

function openPort(path: string): Promise<SerialPort> {
  return new Promise((res, rej) => {
    const p = new SerialPort({ path, baudRate: 115200, autoOpen: false });
    p.open((e) => (e ? rej(e) : res(p)));
  });
}
const closePort = (p: SerialPort) => new Promise<void>((r) => p.close(() => r()));

async function bareEcho(a: string, b: string): Promise<number[]> {
  const pa = await openPort(a);
  const pb = await openPort(b);
  pb.on('data', (d: Buffer) => pb.write(d));
  const frame = Buffer.from(encodeFrame({ type: 'COMMAND', seq: 1, command: { type: 'DISPLAY', textId: 1 } }));
  let got = 0;
  let done: (() => void) | undefined;
  pa.on('data', (d: Buffer) => {
    got += d.length;
    if (got >= FRAME_LENGTH && done) {
      got -= FRAME_LENGTH;
      const f = done;
      done = undefined;
      f();
    }
  });
  const samples: number[] = [];
  let cpu0 = process.cpuUsage();
  for (let i = 0; i < ROUND_TRIPS + WARMUP; i++) {
    if (i === WARMUP) cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await new Promise<void>((r) => {
      done = r;
      pa.write(frame);
    });
    if (i >= WARMUP) samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  cpuMs.bare += cpuSince(cpu0);
  await closePort(pa);
  await closePort(pb);
  return samples;
}

async function linkRoundTrip(a: string, b: string): Promise<number[]> {
  const board = new BarrierBoard({ path: b, heartbeatMs: 100 });
  await board.start();
  const link = new SerialBarrierLink({ type: 'serial', path: a, heartbeatMs: 100, silenceMs: 2000, ackTimeoutMs: 200 });
  await link.start(() => {});
  const until = Date.now() + 5000;
  while (link.state !== 'up' && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  if (link.state !== 'up') throw new Error('barrier link did not come up on the pty');
  const samples: number[] = [];
  let cpu0 = process.cpuUsage();
  for (let i = 0; i < ROUND_TRIPS + WARMUP; i++) {
    if (i === WARMUP) cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const r = await link.request({ type: 'DISPLAY', textId: i & 0xffff });
    if (!r.ok) throw new Error(`command failed on a clean pty: ${r.detail}`);
    if (i >= WARMUP) samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  cpuMs.ours += cpuSince(cpu0);
  const retransmits = link.counters.retransmits;
  await link.stop();
  await board.stop();
  if (retransmits > 0) console.log(`[barrier] note: ${retransmits} retransmits during the round-trip run`);
  return samples;
}

function parserThroughput(): { aligned: number; sliced: number; noisy: number } {
  const frames: LinkFrame[] = [];
  for (let i = 0; i < 1000; i++) {
    frames.push(
      i % 3 === 0
        ? { type: 'COMMAND', seq: i & 0xff, command: { type: 'OPEN', direction: 'entry', passages: 1 } }
        : i % 3 === 1
          ? { type: 'EVENT', seq: i & 0xff, event: { type: 'STATUS', flaps: 'open', mode: 'normal', faultCode: 0, fireAlarm: false } }
          : { type: 'ACK', seq: i & 0xff, of: 1 },
    );
  }
  const stream = Buffer.concat(frames.map((f) => Buffer.from(encodeFrame(f))));
  const rounds = 300;
  const time = (fn: () => void) => {
    fn(); // warm
    const t0 = process.hrtime.bigint();
    for (let r = 0; r < rounds; r++) fn();
    return (frames.length * rounds) / (Number(process.hrtime.bigint() - t0) / 1e9);
  };
  // 12-byte pieces, as an aligned ByteLengthParser hands them over.
  const reader = new FrameReader();
  const aligned = time(() => {
    for (let i = 0; i < stream.length; i += FRAME_LENGTH) reader.push(stream.subarray(i, i + FRAME_LENGTH));
  });
  // Through a real ByteLengthParser fed 64-byte reads, as the driver does.
  const reader2 = new FrameReader();
  const slicer = new ByteLengthParser({ length: FRAME_LENGTH });
  slicer.on('data', (b: Buffer) => reader2.push(b));
  const sliced = time(() => {
    for (let i = 0; i < stream.length; i += 64) slicer.write(stream.subarray(i, i + 64));
  });
  // A stream with one flipped byte every 100 frames: resync work included.
  const noisyStream = Buffer.from(stream);
  for (let i = 50; i < noisyStream.length; i += 1200) noisyStream[i] ^= 0x20;
  const reader3 = new FrameReader();
  const noisy = time(() => {
    for (let i = 0; i < noisyStream.length; i += 64) reader3.push(noisyStream.subarray(i, i + 64));
  });
  return { aligned, sliced, noisy };
}

export async function run(report: BenchReport): Promise<void> {
  const pty = await ptyPair('bench');
  try {
    const bare: number[] = [];
    const ours: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      bare.push(...(await bareEcho(pty.a, pty.b)));
      ours.push(...(await linkRoundTrip(pty.a, pty.b)));
    }
    for (const p of [50, 99]) {
      const b = percentile(bare, p);
      const o = percentile(ours, p);
      report.row({
        section: 'barrier',
        metric: `command→ack round trip p${p} (pty)`,
        value: o,
        unit: 'ms',
        peer: { name: 'bare serialport 12-byte echo, same pty', value: b },
        target: p === 50 ? 'framing+CRC+state add < 0.2 ms' : undefined,
        note: `added ${(o - b).toFixed(3)} ms`,
      });
    }
    const n = ROUNDS * ROUND_TRIPS;
    report.row({
      section: 'barrier',
      metric: 'CPU per command round trip, both ends in one process',
      value: (cpuMs.ours / n) * 1000,
      unit: 'µs',
      peer: { name: 'bare serialport 12-byte echo', value: (cpuMs.bare / n) * 1000 },
      note: `added ${(((cpuMs.ours - cpuMs.bare) / n) * 1000).toFixed(1)} µs; insensitive to scheduling delays`,
    });
  } finally {
    await pty.close();
  }
  const LINE_FRAMES_PER_S = 115200 / 10 / FRAME_LENGTH; // 8N1: 10 bits a byte
  const t = parserThroughput();
  report.row({ section: 'barrier', metric: 'reader frames/s, aligned 12-byte pieces', value: t.aligned, unit: 'frames/s', peer: { name: '115200-baud line (960 frames/s)', value: LINE_FRAMES_PER_S }, target: 'far above the line' });
  report.row({ section: 'barrier', metric: 'ByteLengthParser + reader frames/s, 64-byte reads', value: t.sliced, unit: 'frames/s', peer: { name: '115200-baud line (960 frames/s)', value: LINE_FRAMES_PER_S } });
  report.row({ section: 'barrier', metric: 'reader frames/s, 1 flipped byte per 100 frames', value: t.noisy, unit: 'frames/s', peer: { name: '115200-baud line (960 frames/s)', value: LINE_FRAMES_PER_S } });
}
