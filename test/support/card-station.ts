// A private pcscd with two vpcd readers and our PC/SC driver listening to them: the harness for the
// card tests and the card bench. Each tap is correlated with the one report the driver produced for it.

import type { SourceEvent } from '../../drivers/seams.js';
import { PcscReader, pcscReaderConfigSchema, type TapReport } from '../../drivers/pcsc-reader.js';
import type { VirtualCardBuilder, VirtualCard, TapLog } from '../../simulator/virtual-card.js';
import { startPcscd, type PrivatePcscd } from './pcscd.js';

export interface CardStation {
  pcscd: PrivatePcscd;
  reader: PcscReader;
  events: SourceEvent[];
  reports: TapReport[];
  /** Tap a card on reader slot `slot` (0 or 1), wait for the driver's report, remove the card. */
  tap(card: VirtualCardBuilder | VirtualCard, slot?: number, opts?: { timeoutMs?: number }): Promise<{ report?: TapReport; event?: SourceEvent; log: TapLog }>;
  waitFor(pred: (e: SourceEvent) => boolean, timeoutMs?: number): Promise<SourceEvent>;
  stop(): Promise<void>;
}

export async function startCardStation(cfg: Record<string, unknown> = {}): Promise<CardStation> {
  const pcscd = await startPcscd();
  // libpcsclite reads this once, at the first context: set it before the driver starts.
  process.env.PCSCLITE_CSOCK_NAME = pcscd.socket;
  const reader = new PcscReader(pcscReaderConfigSchema.parse({ type: 'pcsc', reader: 'Gate Reader', retryMs: 100, readerWaitMs: 1000, ...cfg }));
  const events: SourceEvent[] = [];
  const reports: TapReport[] = [];
  const waiters = new Set<{ pred: (e: SourceEvent) => boolean; resolve: (e: SourceEvent) => void }>();
  const reportWaiters = new Map<string, (r: TapReport) => void>();
  // The driver emits a tap's event, then reports the tap, synchronously: pair them here.
  const eventOf = new Map<TapReport, SourceEvent>();
  reader.onTap((r) => {
    reports.push(r);
    eventOf.set(r, events[events.length - 1]);
    reportWaiters.get(r.reader)?.(r);
  });
  await reader.start((e) => {
    events.push(e);
    for (const w of waiters) if (w.pred(e)) {
      waiters.delete(w);
      w.resolve(e);
    }
  });
  const waitFor = (pred: (e: SourceEvent) => boolean, timeoutMs = 10_000) =>
    new Promise<SourceEvent>((resolve, reject) => {
      const found = events.find(pred);
      if (found) return resolve(found);
      const w = { pred, resolve };
      waiters.add(w);
      setTimeout(() => {
        if (waiters.delete(w)) reject(new Error(`no matching source event within ${timeoutMs} ms; events: ${JSON.stringify(events.slice(-5))}`));
      }, timeoutMs);
    });
  await waitFor((e) => e.type === 'SOURCE_OK');
  // Both slots seen (the driver attaches readers one by one).
  for (let i = 0; i < 50 && reader.readerNames.length < 2; i++) await new Promise((r) => setTimeout(r, 20));

  const tap: CardStation['tap'] = async (card, slot = 0, opts = {}) => {
    const vr = pcscd.readers[slot];
    const got = new Promise<TapReport | undefined>((resolve) => {
      const t = setTimeout(() => {
        reportWaiters.delete(vr.name);
        resolve(undefined);
      }, opts.timeoutMs ?? 3000);
      reportWaiters.set(vr.name, (r) => {
        clearTimeout(t);
        reportWaiters.delete(vr.name);
        resolve(r);
      });
    });
    const t = card.tap({ port: vr.port, leaveAfterIdleMs: 10_000, maxHoldMs: 10_000 });
    const report = await got;
    t.remove();
    const log = await t.done;
    return { report, event: report ? eventOf.get(report) : undefined, log };
  };

  return {
    pcscd,
    reader,
    events,
    reports,
    tap,
    waitFor,
    stop: async () => {
      await reader.stop();
      await pcscd.stop();
    },
  };
}
