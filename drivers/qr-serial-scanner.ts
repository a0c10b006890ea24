// A serial QR scan engine: the module decodes by itself and sends each code's text as a line over a
// UART (CR, LF or CRLF terminated). Same seam as the camera: PRESENTED {qr-text}, the gate verifies.
// Scan engines repeat a code while it stays in view; it is reported once. An unplugged or unopenable
// port is a SOURCE_FAULT, retried with backoff; the first successful open after that is SOURCE_OK.

import { SameCodeFilter } from './same-code.js';
import { stat } from 'node:fs';
import { SerialPort } from 'serialport';
import { z } from 'zod';
import { systemClock, type Clock, type CredentialSource, type SourceEvent } from './seams.js';

export const qrSerialConfigSchema = z
  .object({
    type: z.literal('qr-serial'),
    side: z.enum(['entry', 'exit']).default('entry'),
    path: z.string().min(1),
    baudRate: z.number().int().min(1200).max(4_000_000).default(115200),
    /** Longest line accepted; longer input is junk (noise on the line, wrong baud rate) and is dropped. */
    maxLineBytes: z.number().int().min(16).max(65_536).default(1024),
    /** The same text again within this long of its last sighting is the same presentation. */
    sameCodeHoldMs: z.number().int().min(0).max(60_000).default(1500),
    reopenMinMs: z.number().int().min(10).max(60_000).default(500),
    reopenMaxMs: z.number().int().min(10).max(300_000).default(10_000),
    /** How often to check the device node still exists: a pulled USB adapter (or pty) does not always make reads fail. */
    presenceCheckMs: z.number().int().min(10).max(60_000).default(1000),
  })
  .strict();
export type QrSerialConfig = z.infer<typeof qrSerialConfigSchema>;

export class QrSerialScanner implements CredentialSource {
  readonly name: string;
  readonly stats = { lines: 0, presented: 0, repeats: 0, overlong: 0, badText: 0, faults: 0, reopens: 0 };
  /** The running totals (the seam's name for `stats`). */
  get counters(): Readonly<QrSerialScanner['stats']> {
    return this.stats;
  }
  private emit?: (e: SourceEvent) => void;
  private port?: SerialPort;
  private line: Buffer[] = [];
  private lineBytes = 0;
  private skipping = false;
  private readonly sameCode: SameCodeFilter;
  private faulted = false;
  private stopping = false;
  private timer?: unknown;
  private presence?: unknown;
  private backoffMs: number;

  constructor(
    readonly cfg: QrSerialConfig,
    private readonly clock: Clock = systemClock,
  ) {
    this.name = `qr-serial:${cfg.path}`;
    this.backoffMs = cfg.reopenMinMs;
    this.sameCode = new SameCodeFilter(cfg.sameCodeHoldMs);
  }

  async start(emit: (e: SourceEvent) => void): Promise<void> {
    this.emit = emit;
    this.stopping = false;
    await this.open();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.emit = undefined;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    if (this.presence !== undefined) this.clock.clearTimeout(this.presence);
    this.timer = this.presence = undefined;
    const p = this.port;
    this.port = undefined;
    if (p?.isOpen) await new Promise<void>((res) => p.close(() => res()));
  }

  private open(): Promise<void> {
    return new Promise((resolve) => {
      const p = new SerialPort({ path: this.cfg.path, baudRate: this.cfg.baudRate, autoOpen: false });
      p.open((err) => {
        if (this.stopping) {
          if (!err) p.close();
          return resolve();
        }
        if (err) {
          this.fault(`cannot open ${this.cfg.path}: ${err.message}`);
          this.reopenLater();
          return resolve();
        }
        this.port = p;
        this.backoffMs = this.cfg.reopenMinMs;
        this.resetLine();
        if (this.faulted) {
          this.faulted = false;
          this.emit?.({ type: 'SOURCE_OK', source: this.name });
        }
        p.on('data', (b: Buffer) => this.onBytes(b));
        p.on('close', () => {
          if (this.port !== p) return;
          this.port = undefined;
          this.fault(`${this.cfg.path} closed (unplugged?)`);
          this.reopenLater();
        });
        p.on('error', (e) => this.lost(p, `${this.cfg.path}: ${e.message}`));
        this.checkPresence(p);
        resolve();
      });
    });
  }

  /** The port failed under us: close it, report, and start reopening. */
  private lost(p: SerialPort, detail: string): void {
    if (this.port !== p) return;
    this.port = undefined;
    if (p.isOpen) p.close(() => {});
    this.fault(detail);
    this.reopenLater();
  }

  private checkPresence(p: SerialPort): void {
    this.presence = this.clock.setTimeout(() => {
      this.presence = undefined;
      if (this.port !== p || this.stopping) return;
      stat(this.cfg.path, (err) => {
        if (err && err.code === 'ENOENT') this.lost(p, `${this.cfg.path} disappeared (unplugged)`);
        else this.checkPresence(p);
      });
    }, this.cfg.presenceCheckMs);
  }

  private reopenLater(): void {
    if (this.stopping || this.timer !== undefined) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.cfg.reopenMaxMs, this.backoffMs * 2);
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      if (this.stopping) return;
      this.stats.reopens++;
      void this.open();
    }, delay);
  }

  private fault(detail: string): void {
    if (this.faulted || this.stopping) return;
    this.faulted = true;
    this.stats.faults++;
    this.sameCode.forget();
    this.emit?.({ type: 'SOURCE_FAULT', source: this.name, detail });
  }

  private resetLine(): void {
    this.line = [];
    this.lineBytes = 0;
    this.skipping = false;
  }

  private onBytes(b: Buffer): void {
    let start = 0;
    for (let i = 0; i < b.length; i++) {
      const c = b[i];
      if (c !== 0x0a && c !== 0x0d) continue;
      this.append(b.subarray(start, i));
      start = i + 1;
      this.endLine();
    }
    this.append(b.subarray(start));
  }

  private append(part: Buffer): void {
    if (part.length === 0 || this.skipping) return;
    if (this.lineBytes + part.length > this.cfg.maxLineBytes) {
      // Drop the whole over-long line up to its terminator.
      this.stats.overlong++;
      this.line = [];
      this.lineBytes = 0;
      this.skipping = true;
      return;
    }
    this.line.push(Buffer.from(part));
    this.lineBytes += part.length;
  }

  private endLine(): void {
    const skipped = this.skipping;
    const bytes = Buffer.concat(this.line);
    this.resetLine();
    if (skipped || bytes.length === 0) return; // CRLF gives an empty line between CR and LF
    this.stats.lines++;
    // Printable ASCII only: ride codes are base45; anything else is line noise, reported as unreadable.
    for (const c of bytes) {
      if (c < 0x20 || c > 0x7e) {
        this.stats.badText++;
        this.emit?.({ type: 'CARD_FAULT', reason: 'qr-malformed', side: this.cfg.side, source: this.name, detail: 'non-printable bytes in scanned line', atMs: this.clock.now() });
        return;
      }
    }
    this.seen(bytes.toString('latin1'));
  }

  private seen(text: string): void {
    const now = this.clock.now();
    if (!this.sameCode.isNew(text, now)) {
      this.stats.repeats++;
      return;
    }
    this.stats.presented++;
    this.emit?.({ type: 'PRESENTED', presented: { kind: 'qr-text', text }, side: this.cfg.side, source: this.name, atMs: now });
  }
}
