// The `fares` config section → a fare gate on the lane: the PSAM in its PC/SC slot, the fare table (its
// file, fed by list sync when the lists are synced), and the card transaction every PC/SC card reader of the
// lane runs while the card is in the field (a fare gate per side the readers serve, one PSAM between them).
// The lane's own refusal (its mode) and the lists come first, with the decision core's own lookup: a card
// either refuses gets nothing written (no entry record, no debit) and is refused with that reason; the
// lane's decider then refuses it for the same reason.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CardTransaction, CardTransactionResult, Clock, CredentialSource, SourceEvent } from '../../drivers/seams.js';
import { GateError, GateErrorCode, isGateError } from '../../protocol/errors.js';
import { alarmText, type Alarm } from '../../protocol/alarms.js';
import { trustedListKey, type TrustedListKey } from '../../protocol/lists/index.js';
import type { Direction } from '../../protocol/credential.js';
import { ConfigError, parseDriverConfig, type FaresConfig, type LaneConfig } from '../config/config.js';
import type { Logger } from '../config/log.js';
import { FareGate, fareModeSink, type Psam } from '../fares/fare-gate.js';
import type { FareModeName } from '../../protocol/station-bus.js';
import { FareTableHolder } from '../fares/fare-table-file.js';
import type { Journal } from '../journal/journal.js';
import type { ListProvider } from '../lists/list-provider.js';
import type { DecisionCore } from '../verify/decision-core.js';
import type { Lane } from '../lane/lane.js';
import type { ReasonCode } from '../../protocol/reasons.js';
import { checkReadableFile } from './startup-checks.js';

/** The file name the fare table is kept under in `lists.dir` when the lists are synced and `fares.tablePath` is not given. */
export const SYNCED_FARE_TABLE_FILE = 'fare-table.json';

/** A source whose card taps can run a card transaction (the PC/SC reader), on one side of the lane. */
type TransactionSource = CredentialSource & { side: Direction; setTransaction(t: CardTransaction | undefined): void };

export interface FareLane {
  /** The fare gate of each side a card reader serves (degraded modes are set on each). */
  gates: Partial<Record<Direction, FareGate>>;
  table: FareTableHolder;
  /** The degraded modes (GB 50157) of every side's gate at once, for the signed `fare-mode` station command. */
  modes: { set(names: readonly FareModeName[]): void; current(): FareModeName[] };
  /**
   * The PSAM as one of the lane's sources (`psam:<slot>`): SOURCE_FAULT while it is out of its slot or
   * silent, SOURCE_OK when it is back; the lane runs it with its readers (start-lane.ts). Absent when the
   * PSAM cannot tell (one given in-process).
   */
  presence?: CredentialSource;
  /** Unhook the readers, stop following list sync, release the PSAM. */
  stop(): Promise<void>;
}

/** Where the lane keeps its fare table: `fares.tablePath`, or `<lists.dir>/fare-table.json` under `http-sync` lists. */
export function fareTablePath(config: LaneConfig): string | undefined {
  const f = config.fares;
  if (!f) return undefined;
  if (f.tablePath !== undefined) return f.tablePath;
  const dir = config.lists.dir;
  return config.lists.type === 'http-sync' && typeof dir === 'string' && dir.length > 0 ? join(dir, SYNCED_FARE_TABLE_FILE) : undefined;
}

export interface FaresFromConfig {
  config: LaneConfig;
  lists: ListProvider;
  journal: Journal;
  sources: CredentialSource[];
  core: DecisionCore;
  clock: Clock;
  log: Logger;
  /** The running lane, once assembled: its own refusals (mode, lists too old) come before the card is written. */
  lane?: () => Lane | undefined;
  /** Parts held by someone else (a gate array's one fare table): used, never stopped, by this lane. */
  parts?: FareParts;
  /** Where the lane's sections sit in the file (`lanes[2].` in a gate array), so errors name the field there. */
  field?: string;
}

/** What a fare gate may be given instead of opening it itself. */
export interface FareParts {
  /** The fare table, held once for every lane of a box (gate-array.ts). */
  table?: FareTableHolder;
  /** A PSAM opened already (tests: an in-process stand-in where the private pcscd has no slot left). */
  psam?: Psam;
}

/**
 * What the lane does with a tap now, before its decision core is asked (gate-machine.ts): its own refusal
 * (out of service, maintenance, station closed, an emergency that ignores credentials, lists too old under
 * `staleListAction: refuse`), free passage (everyone passes: no list check), or undefined (decide).
 */
export function laneAnswer(lane: Lane | undefined): { refuse: ReasonCode } | { free: true } | undefined {
  if (!lane) return undefined;
  switch (lane.view().mode) {
    case 'normal': {
      // A passage under way (deciding, or the flaps open for the rider before): the machine refuses this
      // tap as busy, so nothing may be written to the card for it.
      const state = lane.view().state;
      if (state === 'normal.verifying' || state === 'normal.granted') return { refuse: 'lane-busy' };
      return lane.actor.getSnapshot().context.listRefuse ? { refuse: 'list-too-old' } : undefined;
    }
    case 'freePassage':
      return { free: true };
    case 'closed':
      return { refuse: 'station-closed' };
    default:
      return { refuse: 'out-of-service' };
  }
}

/**
 * Build the lane's fare gate from `config.fares` (undefined without one). Every start-up error names the
 * field (`fares.direction`, `fares.tablePath`, `fares.psam.reader`, ...) and the fix; the PSAM is released
 * again when a later step fails.
 */
export async function faresFromConfig(o: FaresFromConfig): Promise<FareLane | undefined> {
  const { config, log } = o;
  const f = config.fares;
  if (!f) return undefined;
  const at = o.field ?? '';
  const directions = fareDirections(config, at);
  const readers = o.sources.flatMap((s, i) => (typeof (s as Partial<TransactionSource>).setTransaction === 'function' ? [{ source: s as TransactionSource, i }] : []));
  if (readers.length === 0) throw new ConfigError(`${at}fares: a fare gate runs its card transaction on a PC/SC card reader; add one to ${at}drivers.sources ({ "type": "pcsc", ... })`);
  for (const { source, i } of readers) {
    if (!directions.includes(source.side)) throw new ConfigError(`${at}drivers.sources[${i}].side: "${source.side}" on a fare gate for ${directions.join(' and ')} (${at}fares.direction, ${at ? `${at}direction` : 'lane.direction'}); set the reader's side`);
  }
  const own = o.parts?.table ? undefined : await fareTableFromConfig(config, o.lists, log, at);
  const table = o.parts?.table ?? own!.table;
  let psam: Psam & { stop?(): Promise<void> };
  try {
    psam = o.parts?.psam ?? (await openPsam(f.psam, at));
  } catch (e) {
    own?.stop();
    throw e;
  }
  const path = fareTablePath(config);

  // The terminal id read from the PSAM now, and again when a PSAM is put back in the slot.
  const lanePsam: Psam = { exchange: psam.exchange, get terminalId() { return psam.terminalId; } };
  // Without its PSAM a fare lane cannot charge anyone: it is out of service (a source fault, alarmed) until
  // the PSAM is back, rather than refusing tap after tap with "use another lane".
  const presence = psam.onPresence ? new PsamPresence(`psam:${f.psam.reader}`, psam.onPresence.bind(psam)) : undefined;
  const gates: Partial<Record<Direction, FareGate>> = {};
  for (const direction of new Set(readers.map((r) => r.source.side))) {
    gates[direction] = new FareGate({ laneId: config.lane.id, laneNumber: f.laneNumber, station: f.station, direction, retapGraceMs: f.retapGraceMs }, lanePsam, o.journal);
  }
  const untable = table.onTable((t) => {
    for (const g of Object.values(gates)) g.setTable(t);
  });

  // One purchase session at a time on the PSAM: taps on two readers of the lane wait their turn.
  let queue: Promise<unknown> = Promise.resolve();
  const transactionFor = (direction: Direction, gate: FareGate): CardTransaction => (exchange, cardNumber, atMs, credential) => {
    const run = async (): Promise<CardTransactionResult> => {
      // The lane's own refusal first, then the lists with the decision core's own checks: a card the lane
      // would refuse is not written. Under free passage everyone passes and the trip is recorded as usual.
      const nothing = (reason: ReasonCode): CardTransactionResult => ({ grant: false, reason, detail: `refused before the card transaction (${reason}): nothing written to the card` });
      const l = laneAnswer(o.lane?.());
      if (l && 'refuse' in l) return nothing(l.refuse);
      if (!l) {
        const d = o.core.beforeTransaction(credential, direction, atMs);
        if (!d.grant) return nothing(d.reason);
      }
      return gate.tap(exchange, cardNumber, atMs);
    };
    const p = queue.then(run, run);
    queue = p.catch(() => undefined);
    return p;
  };
  for (const { source } of readers) source.setTransaction(transactionFor(source.side, gates[source.side]!));
  log.info({ station: f.station, directions: Object.keys(gates), psam: f.psam.reader, table: path, tableSeq: table.current()?.seq ?? null }, 'fare gate ready');

  const [first, ...others] = Object.values(gates);
  return {
    gates,
    table,
    ...(presence ? { presence } : {}),
    modes: fareModeSink(first, ...others),
    stop: async () => {
      for (const { source } of readers) source.setTransaction(undefined);
      untable();
      own?.stop();
      // A PSAM given (o.parts) is its giver's to release.
      if (!o.parts?.psam) await psam.stop?.();
    },
  };
}

/**
 * The fare table `config.fares` names: followed from list sync (synced lists; none yet: fares refused as
 * `fare-unavailable` until the first sync), else read from `fares.tablePath`, which must verify. `at` prefixes
 * the field names in errors (`lanes[2].`). `stop` stops following list sync.
 */
export async function fareTableFromConfig(config: LaneConfig, lists: ListProvider, log: Logger, at = ''): Promise<{ table: FareTableHolder; stop(): void }> {
  const keys = listKeys(config);
  const path = fareTablePath(config);
  if (path === undefined) throw new ConfigError(`${at}fares.tablePath: give the signed fare table file (or sync the lists with http-sync, which keeps it in <lists.dir>/fare-table.json)`);
  const raise = (a: Alarm) => log.error({ ...a, text: alarmText(a) }, 'fare table alarm');
  if (lists.onFareTable) {
    const table = new FareTableHolder(keys, raise);
    const unfollow = lists.onFareTable((doc) => table.update(doc));
    // A sync that keeps no table (lists given by the caller) hands nothing: a table in the file still serves.
    if (!table.current()) {
      const doc = await readFile(path).catch(() => undefined);
      if (doc) table.update(new Uint8Array(doc));
    }
    return { table, stop: unfollow };
  }
  const fix = 'provision the back office\'s signed fare table there (GET /v1/fare-table), or sync the lists with http-sync';
  await checkReadableFile(path, `${at}fares.tablePath`, fix, (m) => new ConfigError(m));
  const problems: string[] = [];
  const table = FareTableHolder.fromFile(path, keys, (a) => (problems.push('detail' in a ? String(a.detail) : a.alarm), raise(a)));
  if (!table.current()) throw new ConfigError(`${at}fares.tablePath: ${path} is refused (${problems.join('; ')}); ${fix}`);
  return { table, stop: () => {} };
}

/** The PSAM in its PC/SC slot (`fares.psam`), its terminal id read; an error names `fares.psam.reader` and the fix. */
export async function openPsam(section: FaresConfig['psam'], at: string): Promise<Psam & { stop(): Promise<void> }> {
  const { PcscPsam, pcscPsamConfigSchema } = await import('../../drivers/pcsc-psam.js');
  const psam = new PcscPsam(parseDriverConfig(pcscPsamConfigSchema, section, `${at}fares.psam`));
  try {
    await psam.start();
  } catch (e) {
    await psam.stop();
    const why = (e as Error).message;
    const code = isGateError(e) ? e.code : GateErrorCode.Timeout;
    throw new GateError(`${at}fares.psam.reader: ${why}; put the PSAM in a PC/SC slot whose name contains "${section.reader}" (pcsc_scan lists the slots) and check pcscd runs`, code, { field: `${at}fares.psam.reader` });
  }
  return psam;
}

/** The fare transactions the lane runs: `fares.direction`, else the lane's direction (a bidirectional lane: both). */
function fareDirections(config: LaneConfig, at: string): Direction[] {
  const want = config.fares!.direction;
  const lane = config.lane.direction;
  if (want === undefined) return lane === 'bidirectional' ? ['entry', 'exit'] : [lane];
  if (lane !== 'bidirectional' && lane !== want) throw new ConfigError(`${at}fares.direction: "${want}" on an ${lane} lane (${at ? `${at}direction` : 'lane.direction'}); make them agree`);
  return [want];
}

function listKeys(config: LaneConfig): TrustedListKey[] {
  const raw = config.lists.publicKeys;
  const keys = Array.isArray(raw) ? raw.filter((k): k is string => typeof k === 'string') : [];
  if (keys.length === 0) throw new ConfigError('fares: the fare table is verified with the back office\'s list signing keys; give them in lists.publicKeys');
  try {
    return keys.map(trustedListKey);
  } catch (e) {
    throw new ConfigError(`lists.publicKeys: ${(e as Error).message}`);
  }
}

/** The lane's PSAM seen as a source: it presents nothing, it only faults (and recovers) with the PSAM. */
export class PsamPresence implements CredentialSource {
  private unlisten?: () => void;
  constructor(
    readonly name: string,
    private readonly onPresence: (listener: (present: boolean, detail: string) => void) => () => void,
  ) {}
  async start(emit: (e: SourceEvent) => void): Promise<void> {
    this.unlisten?.();
    this.unlisten = this.onPresence((present, detail) => emit(present ? { type: 'SOURCE_OK', source: this.name } : { type: 'SOURCE_FAULT', source: this.name, detail }));
  }
  async stop(): Promise<void> {
    this.unlisten?.();
    this.unlisten = undefined;
  }
}
