// The camera path end to end: a generated video → a real ffmpeg process → raw grey frames on a pipe →
// zxing-wasm in a worker thread → PRESENTED → verified by the gate's RideCodes.
import { execFileSync, spawnSync } from 'node:child_process';
import { constants, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { QrCamera, qrCameraConfigSchema } from '../../drivers/qr-camera.js';
import type { SourceEvent } from '../../drivers/seams.js';
import { RideCodes } from '../../firmware/verify/ride-codes.js';
import { verifyTrustList } from '../../protocol/trust-list.js';
import { qrMatrix, renderFrame, y4mFrame, y4mHeader, y4mVideo, type Scene } from '../../simulator/virtual-camera.js';
import { IssuerApps } from '../../simulator/virtual-phone.js';

const W = 640, H = 480;
const T0 = Date.now();
let dir: string;
const apps = new IssuerApps('camera-test');

function requireFfmpeg(): void {
  const r = spawnSync('ffmpeg', ['-version']);
  if (r.error || r.status !== 0) throw new Error('ffmpeg is required for the camera tests: apt-get install -y ffmpeg');
}

const scene = (over: Partial<Scene> = {}): Scene => ({
  width: W, height: H, codePx: 200, cx: 320, cy: 240, rotation: 8, tiltX: 6, tiltY: -5, black: 25, white: 215,
  background: 70, blur: 0.6, noise: 2, seed: 7, ...over,
});

beforeAll(() => {
  requireFfmpeg();
  dir = mkdtempSync(join(tmpdir(), 'qr-camera-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function camera(over: Record<string, unknown>) {
  return new QrCamera(qrCameraConfigSchema.parse({ type: 'camera', stallMs: 400, startMs: 4000, restartMinMs: 100, restartMaxMs: 400, sameCodeHoldMs: 800, ...over }));
}

function verifier() {
  const r = verifyTrustList(apps.trustListDocument(), apps.backOfficeKeys());
  if (!r.ok) throw new Error(r.detail);
  return new RideCodes(r.list);
}

describe('QR camera through a real ffmpeg process', () => {
  it('reports each code once while in view, verifies it, and recovers after the video ends (camera unplugged)', async () => {
    const a = apps.app('alipay').mint('cam_rider_a', T0, { validitySeconds: 300 });
    const b = apps.app('yitongxing').mint('cam_rider_b', T0, { validitySeconds: 300 });
    const empty = renderFrame(undefined, scene());
    const fa = renderFrame(await qrMatrix(a), scene());
    const fb = renderFrame(await qrMatrix(b), scene({ rotation: -25, tiltX: 20, blur: 1.2, noise: 5, seed: 8 }));
    const frames = [...Array(6).fill(empty), ...Array(15).fill(fa), ...Array(6).fill(empty), ...Array(15).fill(fb)];
    const file = join(dir, 'two-riders.y4m');
    writeFileSync(file, y4mVideo(W, H, frames));

    const cam = camera({ input: ['-re', '-i', file] });
    const events: SourceEvent[] = [];
    await cam.start((e) => events.push(e));
    try {
      // Whole clip, then ffmpeg exits (like an unplugged camera), restarts, and plays the clip again.
      await vi.waitFor(() => expect(events.filter((e) => e.type === 'PRESENTED').length).toBeGreaterThanOrEqual(3), { timeout: 20_000, interval: 50 });
    } finally {
      await cam.stop();
    }
    const seq = events.map((e) => (e.type === 'PRESENTED' ? (e.presented.kind === 'qr-text' && e.presented.text === a ? 'A' : 'B') : e.type));
    expect(seq.slice(0, 5)).toEqual(['A', 'B', 'SOURCE_FAULT', 'SOURCE_OK', 'A']);
    expect(cam.stats.repeats).toBeGreaterThan(5); // decoded again and again, reported once
    const v = verifier();
    const first = events[0];
    if (first.type !== 'PRESENTED' || first.presented.kind !== 'qr-text') throw new Error('expected PRESENTED');
    expect(v.verify(first.presented.text, Date.now())).toMatchObject({ ok: true, credential: { issuer: 'alipay', account: 'cam_rider_a' } });
    expect(first.source).toBe('camera:input');
  }, 30_000);

  it('a code decoded from a frame captured before a fault is never reported after it', async () => {
    const a = apps.app('alipay').mint('before_fault', T0, { validitySeconds: 300 });
    const grey = renderFrame(await qrMatrix(a), scene());
    const cam = camera({ frames: 'push', stallMs: 60_000 });
    const events: SourceEvent[] = [];
    await cam.start((e) => events.push(e));
    try {
      cam.pushFrame(grey); // goes to the decoder at once
      // The camera dies while that frame is being decoded (what an ffmpeg exit does).
      (cam as unknown as { fault(d: string): void }).fault('unplugged mid-decode');
      await vi.waitFor(() => expect(cam.stats.dropped).toBe(1), { timeout: 10_000, interval: 10 });
      expect(events.map((e) => e.type)).toEqual(['SOURCE_FAULT']);
      // A fresh frame after the fault: the camera is back and the code is reported.
      cam.pushFrame(grey);
      await vi.waitFor(() => expect(events.map((e) => e.type)).toEqual(['SOURCE_FAULT', 'SOURCE_OK', 'PRESENTED']), { timeout: 10_000, interval: 10 });
    } finally {
      await cam.stop();
    }
  }, 30_000);

  it('decodes the newest frame and drops stale ones when frames arrive faster than it decodes', async () => {
    const a = apps.app('cmb').mint('old_frame', T0);
    const b = apps.app('cmb').mint('new_frame', T0);
    const fa = renderFrame(await qrMatrix(a), scene());
    const fb = renderFrame(await qrMatrix(b), scene());
    const file = join(dir, 'burst.y4m');
    // No -re: ffmpeg delivers 200 frames as fast as it can; the last 40 show code B.
    writeFileSync(file, y4mVideo(W, H, [...Array(160).fill(fa), ...Array(40).fill(fb)]));
    const cam = camera({ input: ['-i', file], stallMs: 5000 });
    const texts: string[] = [];
    await cam.start((e) => {
      if (e.type === 'PRESENTED' && e.presented.kind === 'qr-text') texts.push(e.presented.text);
    });
    try {
      await vi.waitFor(() => expect(texts).toContain(b), { timeout: 15_000, interval: 50 });
    } finally {
      await cam.stop();
    }
    expect(cam.stats.dropped).toBeGreaterThan(0);
  }, 30_000);

  it('a camera that freezes (no frames, ffmpeg still running) is a fault, and comes back by itself', async () => {
    const fifo = join(dir, 'camera.fifo');
    execFileSync('mkfifo', [fifo]);
    const code = apps.app('unionpay').mint('frozen_cam', T0, { validitySeconds: 300 });
    const frame = y4mFrame(renderFrame(await qrMatrix(code), scene()));
    const cam = camera({ input: ['-f', 'yuv4mpegpipe', '-i', fifo] });
    // The "camera" writes y4m frames into the FIFO. O_RDWR|O_NONBLOCK never blocks on open, and a
    // net.Socket drives the non-blocking fd on the event loop (not the thread pool).
    let sock: Socket | undefined;
    const plugIn = () => {
      const fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
      sock = new Socket({ fd, readable: false, writable: true });
      sock.on('error', () => {});
      sock.write(y4mHeader(W, H));
    };
    const unplug = () => {
      sock?.destroy();
      sock = undefined;
    };
    let live = true;
    const feed = setInterval(() => {
      if (live && sock && sock.writableLength < frame.length) sock.write(frame);
    }, 33);
    const events: SourceEvent[] = [];
    await cam.start((e) => {
      events.push(e);
      // Frozen camera detected: its pipe is closed (as if the driver reset the USB device).
      if (e.type === 'SOURCE_FAULT') unplug();
    });
    try {
      plugIn();
      await vi.waitFor(() => expect(events.some((e) => e.type === 'PRESENTED')).toBe(true), { timeout: 15_000, interval: 50 });
      live = false; // freeze: the pipe stays open, no frames come
      await vi.waitFor(() => expect(events.some((e) => e.type === 'SOURCE_FAULT')).toBe(true), { timeout: 10_000, interval: 50 });
      await new Promise((r) => setTimeout(r, 300));
      live = true;
      plugIn();
      await vi.waitFor(() => expect(events.map((e) => e.type)).toEqual(['PRESENTED', 'SOURCE_FAULT', 'SOURCE_OK', 'PRESENTED']), { timeout: 15_000, interval: 50 });
    } finally {
      clearInterval(feed);
      unplug();
      await cam.stop();
    }
    expect(events[1]).toMatchObject({ type: 'SOURCE_FAULT', detail: expect.stringMatching(/no frame for/) });
  }, 40_000);

  it('a missing ffmpeg binary is a fault that keeps retrying, not a crash', async () => {
    const cam = camera({ ffmpeg: join(dir, 'no-such-ffmpeg'), input: ['-i', 'x'] });
    const events: SourceEvent[] = [];
    await cam.start((e) => events.push(e));
    try {
      await vi.waitFor(() => expect(cam.stats.restarts).toBeGreaterThanOrEqual(2), { timeout: 10_000, interval: 50 });
    } finally {
      await cam.stop();
    }
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'SOURCE_FAULT', detail: expect.stringMatching(/install ffmpeg/) });
  }, 20_000);
});
