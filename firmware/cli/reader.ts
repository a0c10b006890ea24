// `gate reader [--json]`: a technician's bench tool for the contactless reader. Lists the PC/SC readers,
// then prints one line per tap: reader, card kind, credential (masked), validity, balance, the decision
// the gate would take with the current lists, and the time from card present to credential.
import type { Command } from 'commander';
import { Option } from 'commander';
import { PcscReader, pcscReaderConfigSchema, pcscdSocket, type TapReport } from '../../drivers/pcsc-reader.js';
import { systemClock, type SourceEvent } from '../../drivers/seams.js';
import type { Credential, Direction } from '../../protocol/credential.js';
import { GateErrorCode, isGateError } from '../../protocol/errors.js';
import { loadLaneConfig, parseDriverConfig, parseLaneConfig } from '../config/config.js';
import { DecisionCore } from '../verify/decision-core.js';
import type { ListProvider } from '../lists/list-provider.js';
import { silentLogger } from '../config/log.js';
import { listDrivers, pickDriver } from '../composition/registry.js';

export interface ReaderToolOptions {
  json: boolean;
  /** Lane config: its lists and policy give the decision; its first pcsc source gives the reader filter. */
  config?: string;
  reader?: string;
  side: Direction;
  /** After this long without a matching reader, say so (ACR122U after a reboot) and keep waiting. */
  waitMs: number;
}

export interface ReaderTool {
  reader: PcscReader;
  stop(): Promise<void>;
}

/** Mask all but the first and last four characters: enough for a technician to match the card in hand. */
export function maskCredential(c: Credential): string {
  const id = c.kind === 'ticket' ? c.ticketNumber : c.kind === 'qr' ? c.account : c.cardNumber;
  if (id.length <= 8) return '*'.repeat(Math.max(0, id.length - 4)) + id.slice(-4);
  return id.slice(0, 4) + '*'.repeat(id.length - 8) + id.slice(-4);
}

function fmtDate(d: number): string {
  const s = String(d);
  return `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}`;
}

/** Start the tool; `out` gets each line (stdout in the CLI, an array in tests). Rejects for configuration errors. */
export async function startReaderTool(o: ReaderToolOptions, out: (line: string) => void): Promise<ReaderTool> {
  const config = o.config ? loadLaneConfig(o.config) : parseLaneConfig({ lane: { id: 'BENCH', direction: 'bidirectional' } });
  const pcscSection = config.drivers.sources.find((s) => s.type === 'pcsc');
  const readerCfg = parseDriverConfig(
    pcscReaderConfigSchema,
    { ...(pcscSection ?? { type: 'pcsc' }), ...(o.reader ? { reader: o.reader } : {}), side: o.side, readerWaitMs: o.waitMs },
    'reader',
  );
  const ctx = { laneId: config.lane.id, clock: systemClock, log: silentLogger, config };
  const lists: ListProvider = await pickDriver(listDrivers, 'lists', config.lists.type)(config.lists, ctx);
  const core = new DecisionCore(config.lane.direction, config.policy, { lists });
  const reader = new PcscReader(readerCfg, systemClock);

  const emitLine = (obj: Record<string, unknown>, text: string) => out(o.json ? JSON.stringify(obj) : text);

  reader.onReader((name, present) => emitLine({ type: present ? 'reader-added' : 'reader-removed', reader: name }, `${present ? '+' : '-'} reader ${name}`));
  let lastEvent: SourceEvent | undefined;
  reader.onTap((t: TapReport) => {
    const base = { type: 'tap', reader: t.reader, ms: Math.round(t.elapsedMs * 10) / 10, atr: t.atr };
    const ms = `${t.elapsedMs.toFixed(1)} ms`;
    if (t.outcome.ok) {
      const c = t.outcome.credential;
      const card = t.outcome.card;
      const validity = card ? `${fmtDate(card.start)}..${fmtDate(card.expiry)}` : t.outcome.ticket ? `${fmtDate(t.outcome.ticket.validFrom)}..${fmtDate(t.outcome.ticket.validUntil)}` : '';
      const balance = card?.balanceFen !== undefined ? (card.balanceFen / 100).toFixed(2) : undefined;
      const presented = lastEvent?.type === 'PRESENTED' ? lastEvent.presented : { kind: 'credential' as const, credential: c };
      const d = core.decide({ presented, side: o.side, nowMs: Date.now() });
      emitLine(
        { ...base, kind: c.kind, layout: card?.layout ?? 'ticket', credential: maskCredential(c), validity, balanceYuan: balance, cardType: card?.cardType, decision: d.grant ? 'OPEN' : 'REFUSE', reason: d.reason },
        `${t.reader} | ${c.kind}${card ? ` (${card.layout})` : ''} | ${maskCredential(c)} | valid ${validity} | balance ${balance ?? '-'} | ${d.grant ? 'OPEN' : 'REFUSE'} ${d.reason} | ${ms}`,
      );
    } else {
      emitLine({ ...base, kind: 'refused', reason: t.outcome.reason, error: t.outcome.error, detail: t.outcome.detail, decision: 'REFUSE' }, `${t.reader} | refused | ${t.outcome.reason} (${t.outcome.error}: ${t.outcome.detail}) | ${ms}`);
    }
  });

  await reader.start((e) => {
    lastEvent = e;
    if (e.type === 'SOURCE_FAULT') emitLine({ type: 'reader-fault', detail: e.detail }, `! ${e.detail}; still watching for readers (Ctrl-C to quit)`);
    if (e.type === 'SOURCE_OK') emitLine({ type: 'reader-ok', readers: reader.readerNames }, `readers: ${reader.readerNames.join(', ')} (pcscd ${pcscdSocket()}); tap a card`);
  });
  return { reader, stop: () => reader.stop() };
}

export function register(program: Command): void {
  program
    .command('reader')
    .description('bench-test a contactless reader: list PC/SC readers, then one line per tap (kind, card, validity, balance, decision, time)')
    .option('--json', 'one JSON object per line', false)
    .option('-c, --config <file>', 'lane config: its lists and policy decide, its pcsc source picks the reader')
    .option('--reader <name>', 'only readers whose name contains this (e.g. ACR122U)')
    .addOption(new Option('--side <side>', 'which side the decision is taken for').choices(['entry', 'exit']).default('entry'))
    .option('--wait-ms <ms>', 'report a missing reader after this long', (v) => Number(v), 3000)
    .action(async (o) => {
      let tool: ReaderTool;
      try {
        tool = await startReaderTool({ json: o.json, config: o.config, reader: o.reader, side: o.side, waitMs: o.waitMs }, (l) => console.log(l));
      } catch (e) {
        const msg = (e as Error).message;
        console.error(`gate reader: ${msg}`);
        process.exitCode = isGateError(e, GateErrorCode.Config) ? 2 : 1;
        return;
      }
      const stop = async () => {
        await tool.stop();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
