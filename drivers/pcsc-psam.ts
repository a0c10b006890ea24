// The lane's PSAM (purchase security module) in a PC/SC slot of its own: the contact SAM slot of a dual
// reader, or a second vpcd slot in CI. One APDU at a time (the PSAM keeps one purchase session); its
// terminal id is read whenever it is put in. A PSAM that leaves or fails is told to `onPresence` listeners:
// the fare lane runs it as a source and is out of service until it is back (firmware/composition/fare-lane.ts);
// a tap that meets it missing meanwhile is refused `fare-unavailable`. nfc-pcsc is loaded lazily, as for the card reader.

import { z } from 'zod';
import { parsePsamTerminalId, readPsamTerminalId } from '../protocol/tunion-purse.js';
import { GateError, GateErrorCode } from '../protocol/errors.js';
import { loadNfcPcsc, pcscdSocket, probeSocket } from './pcsc-reader.js';

export const pcscPsamConfigSchema = z
  .object({
    /** The PSAM's slot: a reader name substring, e.g. "SAM" or "Gate Reader A 00 01". */
    reader: z.string().min(1),
    /** How long start() waits for the PSAM to answer its terminal id. */
    readyWaitMs: z.number().int().min(50).max(60_000).default(3000),
    /** One APDU's answer must come within this. */
    apduTimeoutMs: z.number().int().min(20).max(10_000).default(1000),
  })
  .strict();
export type PcscPsamConfig = z.infer<typeof pcscPsamConfigSchema>;

interface PsamReader {
  name: string;
  autoProcessing: boolean;
  on(ev: 'card', fn: (card: { atr?: Buffer }) => void): void;
  on(ev: 'card.off', fn: () => void): void;
  on(ev: 'error' | 'end', fn: (e?: Error) => void): void;
  transmit(data: Buffer, maxLen: number): Promise<Buffer>;
}

export class PcscPsam {
  terminalId: Uint8Array = new Uint8Array(6);
  readonly counters = { apdus: 0, faults: 0 };
  private reader?: PsamReader;
  private present = false;
  /** In its slot and its terminal id read: what the lane is told (onPresence). */
  private ready = false;
  private readyDetail = 'PSAM not found yet';
  private readonly presenceListeners = new Set<(present: boolean, detail: string) => void>();
  private nfc?: { close(): void };
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly config: PcscPsamConfig) {}

  /** Find the PSAM and read its terminal id. Rejects (GateError timeout) when it does not answer in time. */
  async start(): Promise<void> {
    // pcscd answers only once every reader's first poll is done (see probeSocket): ask until it does.
    const until = Date.now() + this.config.readyWaitMs;
    while (!(await probeSocket(pcscdSocket(), 500))) {
      if (Date.now() >= until) throw new GateError(`pcscd is not running (${pcscdSocket()})`, GateErrorCode.Timeout, { reader: this.config.reader });
      await new Promise((r) => setTimeout(r, 100));
    }
    const { NFC } = loadNfcPcsc();
    const nfc = new NFC() as unknown as { on(ev: 'reader', fn: (r: PsamReader) => void): void; on(ev: 'error', fn: (e: Error) => void): void; close(): void };
    this.nfc = nfc;
    const ready = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new GateError(`no PSAM answered in a reader matching "${this.config.reader}"`, GateErrorCode.Timeout, { reader: this.config.reader })), this.config.readyWaitMs);
      nfc.on('error', () => {
        this.counters.faults++;
      });
      nfc.on('reader', (r) => {
        r.on('error', () => {
          this.counters.faults++;
        });
        if (!r.name.toLowerCase().includes(this.config.reader.toLowerCase())) return;
        r.autoProcessing = false;
        this.reader = r;
        r.on('card', () => {
          this.present = true;
          // Read again on every insertion: a PSAM put back may be another one.
          this.exchange(readPsamTerminalId).then(
            (a) => {
              const id = parsePsamTerminalId(a);
              if (id.ok) {
                this.terminalId = id.value;
                this.setReady(true, 'PSAM in its slot');
                clearTimeout(t);
                resolve();
              } else this.setReady(false, `PSAM in "${r.name}" answers no terminal id (${id.detail})`);
            },
            (e: Error) => this.setReady(false, `PSAM in "${r.name}" does not answer: ${e.message}`),
          );
        });
        r.on('card.off', () => {
          this.present = false;
          this.setReady(false, `PSAM taken out of "${r.name}": no fare can be charged`);
        });
        r.on('end', () => {
          this.present = false;
          this.reader = undefined;
          this.setReady(false, `PSAM reader "${r.name}" gone: no fare can be charged`);
        });
      });
    });
    await ready;
  }

  /** Told at once, then whenever the PSAM becomes usable (in its slot, terminal id read) or stops being so, with why. */
  onPresence(listener: (present: boolean, detail: string) => void): () => void {
    this.presenceListeners.add(listener);
    listener(this.ready, this.readyDetail);
    return () => void this.presenceListeners.delete(listener);
  }

  private setReady(ready: boolean, detail: string): void {
    if (ready === this.ready) return;
    this.ready = ready;
    this.readyDetail = detail;
    for (const l of this.presenceListeners) l(ready, detail);
  }

  /** Send one APDU to the PSAM (queued: one at a time). Rejects with a GateError when the PSAM is absent or silent. */
  exchange = (cmd: Uint8Array): Promise<Uint8Array> => {
    const run = async (): Promise<Uint8Array> => {
      const r = this.reader;
      if (!r || !this.present) {
        this.counters.faults++;
        throw new GateError('PSAM not present', GateErrorCode.BadAnswer, { reader: this.config.reader });
      }
      this.counters.apdus++;
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        const answer = await Promise.race([
          r.transmit(Buffer.from(cmd.buffer, cmd.byteOffset, cmd.length), 258),
          new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new GateError('PSAM did not answer', GateErrorCode.Timeout, { reader: r.name })), this.config.apduTimeoutMs))),
        ]);
        return new Uint8Array(answer);
      } catch (e) {
        this.counters.faults++;
        throw e;
      } finally {
        clearTimeout(timer);
      }
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  };

  async stop(): Promise<void> {
    const nfc = this.nfc;
    this.nfc = undefined;
    this.reader = undefined;
    this.present = false;
    try {
      nfc?.close();
    } catch {
      // a context whose pcscd is gone may throw on close; nothing to release then
    }
  }
}
