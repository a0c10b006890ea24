// The gate's QR camera: an ffmpeg child process writes raw grey frames to a pipe (V4L2 on the box,
// any ffmpeg input in tests), a worker thread decodes them with zxing-wasm. Always the newest frame:
// frames arriving while the decoder is busy replace the waiting one. A code is reported once while
// it stays in view. No frames for `stallMs` (unplugged, frozen) is a SOURCE_FAULT; ffmpeg is
// restarted with backoff and the first frame after that is SOURCE_OK. Given the lane's trust list
// (`shareRideCodeTrust`), the worker checks each code's signature beside the decode and the code is
// presented with that verdict, off the lane's thread (the lane keeps the clock and replay checks).

import { SameCodeFilter } from './same-code.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { z } from 'zod';
import type { Direction } from '../protocol/credential.js';
import { systemClock, type Clock, type CredentialSource, type DecodeReport, type SourceEvent } from './seams.js';
import { startDecodeWorker, type DecodeResult } from './qr-decoder.js';
import type { RideCodePrecheck, RideCodeTrustShare } from '../protocol/ride-code-check.js';

export const qrCameraConfigSchema = z
  .object({
    type: z.literal('camera'),
    side: z.enum(['entry', 'exit']).default('entry'),
    device: z.string().min(1).default('/dev/video0'),
    width: z.number().int().min(16).max(4096).default(640),
    height: z.number().int().min(16).max(4096).default(480),
    fps: z.number().int().min(1).max(120).default(30),
    /** ffmpeg input arguments replacing the V4L2 ones (tests, recorded video): e.g. ["-re", "-i", "clip.y4m"]. */
    input: z.array(z.string()).optional(),
    ffmpeg: z.string().min(1).default('ffmpeg'),
    /** No frame for this long: camera fault. */
    stallMs: z.number().int().min(50).max(60_000).default(2000),
    /** Allowance from (re)starting ffmpeg to its first frame: opening a V4L2 device and probing take a while. */
    startMs: z.number().int().min(50).max(60_000).default(5000),
    /** ffmpeg restart backoff: first delay, doubling up to the max while it keeps failing. */
    restartMinMs: z.number().int().min(10).max(60_000).default(500),
    restartMaxMs: z.number().int().min(10).max(300_000).default(10_000),
    /** A code decoded again within this long of its last sighting is the same presentation (not reported again). */
    sameCodeHoldMs: z.number().int().min(0).max(60_000).default(1500),
    /** 'ffmpeg' (the box, tests); 'push': frames handed over by pushFrame() (the simulated station's rendered frames). */
    frames: z.enum(['ffmpeg', 'push']).default('ffmpeg'),
  })
  .strict();
export type QrCameraConfig = z.infer<typeof qrCameraConfigSchema>;

export type QrCameraStats = {
  frames: number;
  decoded: number;
  /** Frames replaced by a newer one before the decoder got to them. */
  dropped: number;
  presented: number;
  repeats: number;
  decodeErrors: number;
  restarts: number;
  faults: number;
  workerRestarts: number;
  /** Sum of zxing decode time (ms) reported by the worker. */
  decodeMs: number;
  /** Codes presented with the worker's signature verdict, and the worker's time on those checks (ms). */
  prechecked: number;
  checkMs: number;
};

type Worker = Awaited<ReturnType<typeof startDecodeWorker>>;

export class QrCamera implements CredentialSource {
  readonly name: string;
  readonly stats: QrCameraStats = { frames: 0, decoded: 0, dropped: 0, presented: 0, repeats: 0, decodeErrors: 0, restarts: 0, faults: 0, workerRestarts: 0, decodeMs: 0, prechecked: 0, checkMs: 0 };
  private readonly decodeListeners = new Set<(r: DecodeReport) => void>();
  private emit?: (e: SourceEvent) => void;
  private worker?: Worker;
  private ffmpeg?: ChildProcess;
  private readonly frameBytes: number;
  private partial?: Uint8Array;
  private filled = 0;
  private waiting?: { buf: ArrayBuffer; atMs: number };
  private busy?: { atMs: number; session: number };
  /** Bumped at every fault: a frame captured before it is never reported after it. */
  private session = 0;
  private readonly pool: ArrayBuffer[] = [];
  private frameId = 0;
  private lastFrameMs = 0;
  /** Since when the current ffmpeg has run without a frame yet (undefined once frames flow). */
  private startedMs?: number;
  private faulted = false;
  private stopping = false;
  private backoffMs: number;
  private restartTimer?: unknown;
  private watchdog?: unknown;
  private readonly sameCode: SameCodeFilter;
  private stderrTail = '';
  /** The lane's trust list, for the decode worker (sent again to a restarted one). */
  private trust?: RideCodeTrustShare;

  constructor(
    readonly cfg: QrCameraConfig,
    private readonly clock: Clock = systemClock,
  ) {
    this.name = `camera:${cfg.input ? 'input' : cfg.device}`;
    this.frameBytes = cfg.width * cfg.height;
    this.backoffMs = cfg.restartMinMs;
    this.sameCode = new SameCodeFilter(cfg.sameCodeHoldMs);
  }

  get side(): Direction {
    return this.cfg.side;
  }

  /** The running totals (the seam's name for `stats`). */
  get counters(): QrCameraStats {
    return this.stats;
  }

  /** Every decode result, with the time its frame was complete; see CredentialSource.onDecode. */
  onDecode(listener: (r: DecodeReport) => void): () => void {
    this.decodeListeners.add(listener);
    return () => this.decodeListeners.delete(listener);
  }

  /** See CredentialSource.shareRideCodeTrust: the decode worker checks signatures with this list. */
  shareRideCodeTrust(trust: RideCodeTrustShare): void {
    this.trust = trust;
    this.worker?.shareTrust(trust);
  }

  /** Whether the decode worker checks signatures (false until started, or from TypeScript sources). */
  get checksInWorker(): boolean {
    return this.worker?.checks === true;
  }

  async start(emit: (e: SourceEvent) => void): Promise<void> {
    this.emit = emit;
    this.stopping = false;
    this.worker = await this.startWorker();
    if (this.trust) this.worker.shareTrust(this.trust);
    this.lastFrameMs = this.clock.now();
    this.pump(); // frames pushed while the decoder was starting
    if (this.cfg.frames === 'push') return;
    this.spawnFfmpeg();
    this.armWatchdog();
  }

  /** Push mode: one grey frame (width*height bytes), as if ffmpeg had delivered it. The bytes are copied. */
  pushFrame(grey: Uint8Array): void {
    if (this.cfg.frames !== 'push') throw new Error('pushFrame needs frames: "push"');
    if (grey.length !== this.frameBytes) throw new RangeError(`frame is ${grey.length} bytes, expected ${this.cfg.width}x${this.cfg.height}`);
    const buf = this.pool.pop() ?? new ArrayBuffer(this.frameBytes);
    new Uint8Array(buf).set(grey);
    this.onFrame(buf);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.emit = undefined;
    if (this.restartTimer !== undefined) this.clock.clearTimeout(this.restartTimer);
    if (this.watchdog !== undefined) this.clock.clearTimeout(this.watchdog);
    this.restartTimer = this.watchdog = undefined;
    await this.killFfmpeg();
    const w = this.worker;
    this.worker = undefined;
    await w?.stop();
  }

  private async startWorker(): Promise<Worker> {
    return startDecodeWorker(
      (r) => this.onResult(r),
      (why) => {
        // A crashed worker loses at most the frame it held; start a new one.
        if (this.stopping) return;
        this.stats.workerRestarts++;
        this.busy = undefined;
        this.worker = undefined;
        this.fault(why);
        void this.startWorker().then(
          (w) => {
            if (this.stopping) return void w.stop();
            this.worker = w;
            if (this.trust) w.shareTrust(this.trust);
            this.pump();
          },
          (e) => this.fault(`decoder worker cannot restart: ${(e as Error).message}`),
        );
      },
    );
  }

  private ffmpegArgs(): string[] {
    const c = this.cfg;
    const input = c.input ?? ['-f', 'v4l2', '-framerate', String(c.fps), '-video_size', `${c.width}x${c.height}`, '-i', c.device];
    return ['-hide_banner', '-loglevel', 'error', '-nostdin', ...input, '-an', '-f', 'rawvideo', '-pix_fmt', 'gray', '-s', `${c.width}x${c.height}`, 'pipe:1'];
  }

  private spawnFfmpeg(): void {
    this.startedMs = this.clock.now();
    this.partial = undefined;
    this.filled = 0;
    this.stderrTail = '';
    let child: ChildProcess;
    try {
      child = spawn(this.cfg.ffmpeg, this.ffmpegArgs(), { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      this.fault(`cannot start ${this.cfg.ffmpeg}: ${(e as Error).message}`);
      this.scheduleRestart();
      return;
    }
    this.ffmpeg = child;
    child.stdout!.on('data', (b: Buffer) => this.onBytes(b));
    child.stderr!.on('data', (b: Buffer) => {
      this.stderrTail = (this.stderrTail + b.toString('utf8')).slice(-400);
    });
    child.on('error', (e) => {
      // ENOENT: ffmpeg not installed. Reported as a fault (and retried) so the lane goes out of service visibly.
      if (this.ffmpeg !== child) return;
      this.ffmpeg = undefined;
      this.fault(`${this.cfg.ffmpeg}: ${e.message}${(e as NodeJS.ErrnoException).code === 'ENOENT' ? ' (install ffmpeg)' : ''}`);
      this.scheduleRestart();
    });
    child.on('exit', (code, signal) => {
      if (this.ffmpeg !== child) return;
      this.ffmpeg = undefined;
      if (this.stopping) return;
      this.fault(`ffmpeg exited (${signal ?? code})${this.stderrTail ? `: ${this.stderrTail.trim()}` : ''}`);
      this.scheduleRestart();
    });
  }

  private async killFfmpeg(): Promise<void> {
    const child = this.ffmpeg;
    this.ffmpeg = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((res) => {
      child.once('exit', () => res());
      child.kill('SIGKILL');
    });
  }

  private scheduleRestart(): void {
    if (this.stopping || this.restartTimer !== undefined) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.cfg.restartMaxMs, this.backoffMs * 2);
    this.restartTimer = this.clock.setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopping) return;
      this.stats.restarts++;
      this.lastFrameMs = this.clock.now();
      this.spawnFfmpeg();
    }, delay);
  }

  private armWatchdog(): void {
    const every = Math.max(20, Math.floor(this.cfg.stallMs / 4));
    const tick = () => {
      if (this.stopping) return;
      const now = this.clock.now();
      const silentMs = now - (this.startedMs ?? this.lastFrameMs);
      if (this.ffmpeg && silentMs > (this.startedMs !== undefined ? this.cfg.startMs : this.cfg.stallMs)) {
        this.fault(this.startedMs !== undefined ? `no frame ${silentMs} ms after starting ffmpeg` : `no frame for ${silentMs} ms`);
        void this.killFfmpeg().then(() => this.scheduleRestart());
      }
      this.watchdog = this.clock.setTimeout(tick, every);
    };
    this.watchdog = this.clock.setTimeout(tick, every);
  }

  private fault(detail: string): void {
    if (this.faulted || this.stopping) return;
    this.faulted = true;
    this.stats.faults++;
    this.session++;
    if (this.waiting) {
      this.stats.dropped++;
      this.pool.push(this.waiting.buf);
      this.waiting = undefined;
    }
    this.sameCode.forget();
    this.emit?.({ type: 'SOURCE_FAULT', source: this.name, detail });
  }

  private onBytes(b: Buffer): void {
    let off = 0;
    while (off < b.length) {
      if (!this.partial) {
        const buf = this.pool.pop() ?? new ArrayBuffer(this.frameBytes);
        this.partial = new Uint8Array(buf);
        this.filled = 0;
      }
      const n = Math.min(b.length - off, this.frameBytes - this.filled);
      this.partial.set(b.subarray(off, off + n), this.filled);
      this.filled += n;
      off += n;
      if (this.filled === this.frameBytes) {
        const buf = this.partial.buffer as ArrayBuffer;
        this.partial = undefined;
        this.onFrame(buf);
      }
    }
  }

  private onFrame(buf: ArrayBuffer): void {
    this.stats.frames++;
    this.lastFrameMs = this.clock.now();
    this.startedMs = undefined;
    if (this.faulted) {
      this.faulted = false;
      this.backoffMs = this.cfg.restartMinMs;
      this.emit?.({ type: 'SOURCE_OK', source: this.name });
    }
    if (this.waiting) {
      this.stats.dropped++;
      this.pool.push(this.waiting.buf);
    }
    this.waiting = { buf, atMs: performance.now() };
    this.pump();
  }

  private pump(): void {
    if (this.busy || !this.waiting || !this.worker) return;
    const f = this.waiting;
    this.waiting = undefined;
    this.busy = { atMs: f.atMs, session: this.session };
    this.worker.post(f.buf, this.cfg.width, this.cfg.height, ++this.frameId);
  }

  private onResult(r: DecodeResult): void {
    const frameAtMs = this.busy?.atMs ?? performance.now();
    // A frame from before a fault (decoded after ffmpeg died or the worker restarted) is stale.
    const stale = this.faulted || this.busy?.session !== this.session;
    this.busy = undefined;
    if (r.frame.byteLength === this.frameBytes && this.pool.length < 4) this.pool.push(r.frame);
    this.stats.decodeMs += r.ms;
    this.stats.checkMs += r.checkMs ?? 0;
    if (r.error) this.stats.decodeErrors++;
    if (r.texts.length) this.stats.decoded++;
    if (this.decodeListeners.size > 0 && !this.stopping) {
      const report: DecodeReport = { texts: r.texts, frameAtMs, decodeMs: r.ms };
      for (const l of this.decodeListeners) l(report);
    }
    if (stale) {
      if (r.texts.length) this.stats.dropped++;
    } else if (r.texts.length) this.seen(r.texts[0], r.precheck);
    this.pump();
  }

  private seen(text: string, precheck: RideCodePrecheck | undefined): void {
    const now = this.clock.now();
    if (!this.sameCode.isNew(text, now)) {
      this.stats.repeats++;
      return;
    }
    this.stats.presented++;
    if (precheck) this.stats.prechecked++;
    this.emit?.({ type: 'PRESENTED', presented: precheck ? { kind: 'qr-text', text, precheck } : { kind: 'qr-text', text }, side: this.cfg.side, source: this.name, atMs: now });
  }
}
