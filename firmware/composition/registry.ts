// Which implementation serves each seam, picked by name from config. An unknown name fails at
// start-up listing the known ones. Implementations that need native addons are imported lazily so
// the simulated station runs on a box without them.

import type { BarrierLink, Clock, CredentialSource } from '../../drivers/seams.js';
import { SimulatedSource } from '../../drivers/simulated.js';
import { z } from 'zod';
import { ConfigError, parseDriverConfig, type LaneConfig } from '../config/config.js';
import type { Journal } from '../journal/journal.js';
import { MemoryJournal } from '../journal/journal.js';
import type { ListProvider } from '../lists/list-provider.js';
import { MemoryLists } from '../lists/list-provider.js';
import type { BarrierFactory, DriverContext, JournalFactory, ListFactory, SourceFactory } from './driver-context.js';

export type { BarrierFactory, DriverContext, JournalFactory, ListFactory, SourceFactory } from './driver-context.js';


export const sourceDrivers: Record<string, SourceFactory> = {
  simulated: async (cfg, ctx, i) => new SimulatedSource(`sim-${cfg.side}-${i}`, cfg.side, ctx.clock),
  camera: async (cfg, ctx, i) => {
    const { QrCamera, qrCameraConfigSchema } = await import('../../drivers/qr-camera.js');
    return new QrCamera(parseDriverConfig(qrCameraConfigSchema, cfg, `${ctx.field ?? ''}drivers.sources[${i}]`), ctx.clock);
  },
  'qr-serial': async (cfg, ctx, i) => {
    const { QrSerialScanner, qrSerialConfigSchema } = await import('../../drivers/qr-serial-scanner.js');
    return new QrSerialScanner(parseDriverConfig(qrSerialConfigSchema, cfg, `${ctx.field ?? ''}drivers.sources[${i}]`), ctx.clock);
  },
  // Real contactless reader over pcscd; nfc-pcsc (native) is loaded only when a config names it.
  pcsc: async (cfg, ctx, i) => {
    const { PcscReader, pcscReaderConfigSchema } = await import('../../drivers/pcsc-reader.js');
    return new PcscReader(parseDriverConfig(pcscReaderConfigSchema, cfg, `${ctx.field ?? ''}drivers.sources[${i}]`), ctx.clock);
  },
};

export const barrierDrivers: Record<string, BarrierFactory> = {
  simulated: async (_cfg, ctx) => {
    const { SimulatedBarrierLink } = await import('../../drivers/simulated.js');
    const { VirtualBarrier } = await import('../../simulator/virtual-barrier.js');
    return new SimulatedBarrierLink(new VirtualBarrier(ctx.clock), ctx.clock);
  },
  /** The barrier board on a serial line (RS-232/RS-485, or a pty in CI): drivers/serial-barrier.ts. */
  serial: async (cfg, ctx) => {
    const { SerialBarrierLink, serialBarrierConfigSchema } = await import('../../drivers/serial-barrier.js');
    const c = parseDriverConfig(serialBarrierConfigSchema, cfg, ctx.field !== undefined ? `${ctx.field}drivers.barrier` : `lane ${ctx.config.lane.id} drivers.barrier`);
    return new SerialBarrierLink(c, { clock: ctx.clock, log: ctx.log.child({ driver: 'barrier:serial', path: c.path }) });
  },
};

const memoryListsSchema = z
  .object({
    type: z.literal('memory'),
    /** Inline registrations for a bench or a demo: list key → status. */
    entries: z.record(z.string(), z.enum(['green', 'yellow', 'red'])).default({}),
    blocked: z.array(z.string()).default([]),
  })
  .strict();

export const listDrivers: Record<string, ListFactory> = {
  memory: async (cfg, ctx) => {
    const c = parseDriverConfig(memoryListsSchema, cfg, 'lists');
    const lists = new MemoryLists(ctx.clock.now());
    for (const [k, v] of Object.entries(c.entries)) lists.allowlist.set(k, v);
    for (const k of c.blocked) lists.denylist.block(k);
    return lists;
  },
  /** A local snapshot file (provisioned by hand or by another process), loaded at start-up. */
  file: async (cfg) => {
    const { fileListsFromConfig } = await import('./storage-drivers.js');
    return fileListsFromConfig(cfg);
  },
  /** Synced from the back office over HTTP (firmware/list-sync.ts). */
  'http-sync': async (cfg, ctx) => {
    const { httpSyncFromConfig } = await import('./storage-drivers.js');
    return httpSyncFromConfig(cfg, ctx);
  },
};

export const journalDrivers: Record<string, JournalFactory> = {
  memory: async () => new MemoryJournal(),
  /** Files with fsync, group commit, recovery and upload (firmware/file-journal.ts). */
  file: async (cfg, ctx) => {
    const { fileJournalFromConfig } = await import('./storage-drivers.js');
    return fileJournalFromConfig(cfg, ctx);
  },
};

/** Look up a driver by name, or fail naming the seam and every known implementation. */
export function pickDriver<T>(table: Record<string, T>, seam: string, name: string): T {
  const f = Object.hasOwn(table, name) ? table[name] : undefined;
  if (!f) throw new ConfigError(`unknown ${seam} driver "${name}"; known: ${Object.keys(table).join(', ')}`);
  return f;
}
