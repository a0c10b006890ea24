// `gate run --record DIR`: keeps what crossed one lane's edges, in the order its machine took it, so the
// lane's day can be replayed through the same machine (replay.ts). Two taps: the machine's inspection
// (every event it takes — taps, barrier events, operator commands, its own timers, the decider's answers —
// seen where XState relays it, so the order is the machine's own), and the decision core (each decision
// with what it read: list status and version, anti-passback, used codes, the enforcement schedule). Nothing
// here may disturb the lane: a failure stops the recording, logged, and the lane goes on.

import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AnyActorRef, InspectionEvent } from 'xstate';
import { BlockKind, keyIdHex, parseRecordingKeyFile, recordingKey, type RecordedItem, type RecordingKey } from '../../protocol/recording.js';
import type { Clock, CredentialSource } from '../../drivers/seams.js';
import type { LaneConfig, Policy } from '../config/config.js';
import type { Logger } from '../config/log.js';
import type { LaneDirection } from '../../protocol/credential.js';
import type { Lane } from '../lane/lane.js';
import type { ListProvider } from '../lists/list-provider.js';
import { DecisionCore, MemoryPassback, MemoryUsedCodes, type Decision, type DecisionCoreDeps, type DecisionInput, type PassbackStore, type RideCodeCheck, type UsedCodes } from '../verify/decision-core.js';
import type { EnforcementStages } from '../verify/policy-schedule.js';
import { RELAXABLE, laneInfo, outcomeOf, toStored, type LaneRecord } from './records.js';
import { RecordingError, SegmentWriter, ensureDirectory, type WriterSettings } from './segment-files.js';

export interface RecordSettings extends WriterSettings {
  /** The recording root: this lane records into `<dir>/<lane id>/`. */
  dir: string;
  key: RecordingKey;
  /** Records are written as one block at least this often (lane clock). */
  flushMs: number;
}

export const DEFAULT_RECORD: Omit<RecordSettings, 'dir' | 'key'> = {
  segmentBytes: 16 << 20,
  segmentMs: 3_600_000,
  keepBytes: 1024 << 20,
  flushMs: 5000,
};

/** A block is written once this many records wait (besides the flush timer). */
const BLOCK_RECORDS = 4096;
/** Encoded but unwritten bytes beyond which the recording stops (a disk that cannot keep up). */
const MAX_BACKLOG = 64 << 20;
/** A segment that has not found a quiet moment by this many times its size is rotated without a checkpoint. */
const FORCE_ROTATION = 4;
/** Decisions asked for but never answered that are remembered (a journal stuck for good). */
const MAX_UNANSWERED = 1024;

/** Read the operator's recording key file (see protocol/recording.ts for what it may hold). */
export async function loadRecordingKey(file: string, field: string): Promise<RecordingKey> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new RecordingError('no-key', `${field}: cannot read the recording key ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file });
  }
  const k = parseRecordingKeyFile(bytes);
  if (!k.ok) throw new RecordingError('no-key', `${field}: ${file} is not a recording key: ${k.why}`, { file });
  return recordingKey(k.secret);
}

export interface RecorderParts {
  config: LaneConfig;
  clock: Clock;
  log: Logger;
  lists: ListProvider;
  sources: CredentialSource[];
  stages?: EnforcementStages;
}

type DecideRecord = Extract<LaneRecord, { t: 'decide' }>;

/** What the recording decision core reads besides what the core itself did. */
interface CoreAnswers {
  lists: ListProvider;
  passback: PassbackStore;
  usedCodes: UsedCodes;
  stages?: EnforcementStages;
}

/** The lane's decision core, telling the recorder each decision and what it read. */
class RecordingDecisionCore extends DecisionCore {
  private readonly recorder: LaneRecorder;
  private readonly answers: CoreAnswers;
  private readonly verified: { last?: RideCodeCheck };

  constructor(direction: LaneDirection, policy: Policy, deps: DecisionCoreDeps, recorder: LaneRecorder) {
    // The stores the core would make for itself, made here so the recorder can read them too.
    const passback = deps.passback ?? new MemoryPassback(policy.antiPassbackSeconds * 1000);
    const usedCodes = deps.usedCodes ?? new MemoryUsedCodes();
    const verified: { last?: RideCodeCheck } = {};
    const inner = deps.rideCodes;
    const rideCodes = inner && {
      verify: (text: string, nowMs: number) => {
        const r = inner.verify(text, nowMs);
        verified.last = r;
        return r;
      },
    };
    super(direction, policy, { ...deps, passback, usedCodes, rideCodes });
    this.recorder = recorder;
    this.verified = verified;
    this.answers = { lists: deps.lists, passback, usedCodes, stages: deps.stages };
  }

  override decide(input: DecisionInput): Decision {
    this.verified.last = undefined;
    let d: Decision;
    try {
      d = super.decide(input);
    } catch (e) {
      this.recorder.decided(input, undefined, this.answers, undefined, e as Error);
      throw e;
    }
    this.recorder.decided(input, d, this.answers, this.verified.last);
    return d;
  }
}

export class LaneRecorder {
  private readonly pending: RecordedItem[] = [];
  private readonly ordinals = new WeakMap<Decision, number>();
  /** Decisions asked for and not yet answered, in order: ordinal → ref (and whether the core threw). */
  private readonly unanswered = new Map<number, { ref: string; threw: boolean }>();
  private nextOrdinal = 1;
  private relayed = 0;
  private processed = 0;
  private listVersion: number;
  private stopped: string | undefined;
  private flushTimer: unknown;
  private closing: Promise<void> | undefined;
  /** Records kept (for the operator's log and the bench). */
  records = 0;

  private constructor(
    private readonly writer: SegmentWriter,
    private readonly parts: RecorderParts,
    private readonly settings: RecordSettings,
    readonly dir: string,
  ) {
    this.listVersion = parts.lists.current().version;
  }

  /** Open `<dir>/<lane id>/` and start the recording with its `start` record. */
  static async open(settings: RecordSettings, parts: RecorderParts): Promise<LaneRecorder> {
    const laneDir = join(settings.dir, parts.config.lane.id);
    try {
      await ensureDirectory(settings.dir);
      await ensureDirectory(laneDir);
    } catch (e) {
      throw new RecordingError('unreadable', `record.dir: cannot record into ${laneDir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; make the directory writable or pick another with --record`, { dir: laneDir });
    }
    const now = parts.clock.now();
    const writer = new SegmentWriter(laneDir, settings.key, settings, now, (detail) => parts.log.error({ event: 'recording-failed', dir: laneDir, detail }, 'lane recording stopped: write failed'));
    const r = new LaneRecorder(writer, parts, settings, laneDir);
    writer.openSegment(now, false);
    r.push({ t: 'start', at: now, lane: r.info(), next: 1 });
    r.scheduleFlush();
    parts.log.info({ event: 'recording', dir: laneDir, file: writer.fileName(1), keyId: keyIdHex(settings.key.keyId) }, 'recording the lane');
    return r;
  }

  /** The lane's decision core, recording every decision. */
  core(direction: LaneDirection, policy: Policy, deps: DecisionCoreDeps): DecisionCore {
    return new RecordingDecisionCore(direction, policy, deps, this);
  }

  /** The machine's inspection observer (and `other`'s, when the lane has one already). */
  inspectWith(other?: (e: InspectionEvent) => void): (e: InspectionEvent) => void {
    return (e) => {
      other?.(e);
      if (this.stopped !== undefined) return;
      try {
        this.inspect(e);
      } catch (err) {
        this.stop(`recording failed: ${(err as Error).message}`);
      }
    };
  }

  /** Stop with the lane. */
  attach(lane: Lane): void {
    lane.cleanups.push(() => this.close());
  }

  /** Write what waits, close the recording with its end block. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.flushTimer !== undefined) this.parts.clock.clearTimeout(this.flushTimer);
      this.flush();
      await this.writer.end(this.stopped === undefined ? undefined : { stopped: this.stopped });
    })();
    return this.closing;
  }

  /** Bytes written so far, and whether the recording stopped early. */
  status(): { written: number; records: number; segments: number; stopped?: string } {
    return { written: this.writer.written, records: this.records, segments: this.writer.segmentNumber, stopped: this.stopped ?? this.writer.failed };
  }

  /** Wait for every block flushed so far to be written (tests, the bench). */
  async drain(): Promise<void> {
    this.flush();
    await this.writer.drain();
  }

  private inspect(e: InspectionEvent): void {
    if (e.type === '@xstate.event') {
      if (e.actorRef.sessionId !== e.rootId) return;
      this.relayed++;
      const ev = e.event as { type: string } & Record<string, unknown>;
      const at = this.parts.clock.now();
      if (ev.type === 'xstate.init') return;
      if (ev.type === 'DECIDED') this.answered(at, ev.decision as Decision);
      else if (ev.type.startsWith('xstate.after.')) this.push({ t: 'timer', at, name: ev.type });
      else this.push({ t: 'ev', at, e: ev as never });
    } else if (e.type === '@xstate.snapshot') {
      if (e.actorRef.sessionId !== e.rootId) return;
      this.processed++;
      const now = this.parts.clock.now();
      if (this.writer.rotationDue(now)) this.maybeRotate(now, e.snapshot as never, e.actorRef);
    }
  }

  /** Rotate at a quiet moment: nothing in flight, no timer pending, so the next segment can open with a checkpoint. */
  private maybeRotate(now: number, snapshot: { value: unknown; context: Record<string, unknown> }, actor: InspectionEvent['actorRef']): void {
    const c = snapshot.context;
    // The inspected ref is the actor itself: its system holds the timers XState has scheduled.
    const scheduled = (actor as AnyActorRef).system.getSnapshot()._scheduledEvents;
    let timers = 0;
    for (const _ in scheduled) timers++;
    const quiet = this.relayed === this.processed && this.unanswered.size === 0 && c.pending === undefined && c.current === undefined && c.queued === undefined && timers === 0;
    if (quiet) {
      const facts: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(c)) if (k !== 'env' && k !== 'lastDecision' && k !== 'pending' && k !== 'current' && k !== 'queued') facts[k] = v;
      this.flush();
      this.writer.openSegment(now, true);
      this.push({ t: 'checkpoint', at: now, lane: this.info(), state: JSON.parse(JSON.stringify(snapshot.value)), facts: JSON.parse(JSON.stringify(facts)), next: this.nextOrdinal });
    } else if (this.writer.rotationDue(now) && this.overdue()) {
      // Never quiet for this long (a stuck journal): keep the files bounded; a replay cannot start at this segment.
      this.flush();
      this.writer.openSegment(now, false);
    }
  }

  private overdue(): boolean {
    return this.writer.segmentSize >= FORCE_ROTATION * this.settings.segmentBytes;
  }

  /** Called by the recording decision core after each decision (or throw). */
  decided(input: DecisionInput, d: Decision | undefined, answers: CoreAnswers, ride: RideCodeCheck | undefined, threw?: Error): void {
    if (this.stopped !== undefined) return;
    try {
      const n = this.nextOrdinal++;
      const snap = answers.lists.current();
      if (snap.version !== this.listVersion) {
        this.listVersion = snap.version;
        this.push({ t: 'lists', at: input.nowMs, version: snap.version, publishedAtMs: snap.publishedAtMs });
      }
      const rec: DecideRecord = { t: 'decide', at: input.nowMs, n, side: input.side, lv: snap.version };
      if (input.preset !== undefined) rec.preset = input.preset;
      if (input.freePassage) rec.free = true;
      const key = d?.key;
      if (key !== undefined) {
        // What the core read, or would read under another policy: the list status, the station's anti-passback record, used codes, the schedule.
        rec.st = snap.denylist.isBlocked(key) ? 'blocked' : (snap.allowlist.lookup(key) ?? 'unregistered');
        rec.pb = answers.passback.lastEntry(key) ?? null;
        const credential = input.presented?.kind === 'credential' ? input.presented.credential : ride?.ok ? ride.credential : undefined;
        if (credential?.kind === 'qr' && credential.codeId !== undefined) rec.used = answers.usedCodes.isUsed(credential.codeId, input.nowMs);
        const stages = answers.stages;
        if (stages && credential) rec.rx = RELAXABLE.map((s) => stages.relax(credential.kind, s, input.nowMs) ?? null);
      }
      if (ride !== undefined) rec.ride = ride;
      if (d) {
        rec.out = outcomeOf(d);
        this.ordinals.set(d, n);
        this.remember(n, d.ref, false);
      } else {
        rec.threw = threw?.message ?? 'unknown';
        this.remember(n, 'unknown:?', true);
      }
      this.push(rec);
    } catch (err) {
      this.stop(`recording failed: ${(err as Error).message}`);
    }
  }

  private remember(n: number, ref: string, threw: boolean): void {
    this.unanswered.set(n, { ref, threw });
    if (this.unanswered.size > MAX_UNANSWERED) this.unanswered.delete(this.unanswered.keys().next().value!);
  }

  /**
   * The decider's answer reached the machine. Its decision is the core's own object (journal durable, or an
   * exit let through a failing journal), or a refusal the decider made instead: `journal-unavailable` for a
   * record that could not be made durable, `credential-invalid` when the core threw.
   */
  private answered(at: number, d: Decision): void {
    let n = this.ordinals.get(d);
    let ok = true;
    if (n === undefined) {
      ok = d.reason !== 'journal-unavailable';
      for (const [k, u] of this.unanswered) {
        if ((d.reason === 'journal-unavailable' && (u.ref === d.ref || u.threw)) || (d.reason === 'credential-invalid' && u.threw)) {
          n = k;
          break;
        }
      }
    }
    if (n !== undefined) this.unanswered.delete(n);
    this.push({ t: 'answer', at, n: n ?? -1, ok, d: outcomeOf(d) });
  }

  private info() {
    const { config, lists, sources, stages } = this.parts;
    const l = lists.current();
    const held = (stages as { current?: () => { seq: number } | undefined } | undefined)?.current?.();
    return laneInfo(config, sources.map((s) => s.name), { version: l.version, publishedAtMs: l.publishedAtMs }, held?.seq ?? null, Date.now());
  }

  private push(r: LaneRecord): void {
    if (this.stopped !== undefined) return;
    this.pending.push(toStored(r));
    this.records++;
    if (this.pending.length >= BLOCK_RECORDS) this.flush();
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    if (this.writer.failed !== undefined) {
      this.stop(`write failed: ${this.writer.failed}`);
      return;
    }
    const items = this.pending.splice(0);
    this.writer.block(BlockKind.records, items);
    if (this.writer.backlog > MAX_BACKLOG) this.stop(`the disk fell behind the lane (${this.writer.backlog} bytes not yet written)`);
  }

  private scheduleFlush(): void {
    this.flushTimer = this.parts.clock.setTimeout(() => {
      this.flushTimer = undefined;
      if (this.stopped !== undefined || this.closing) return;
      this.flush();
      this.scheduleFlush();
    }, this.settings.flushMs);
  }

  /** Stop recording (the lane goes on); the recording ends with a note saying why. */
  private stop(why: string): void {
    if (this.stopped !== undefined) return;
    this.stopped = why;
    this.pending.length = 0;
    this.parts.log.error({ event: 'recording-stopped', dir: this.dir, why }, 'lane recording stopped');
    void this.writer.end({ stopped: why }).catch(() => {});
  }
}

/** `record` settings a caller gives (gate run's --record/--record-key, gate sim's): what the config's `record` section says, overridden. */
export interface RecordOverrides {
  dir?: string;
  keyFile?: string;
  /** A key already loaded (the simulator, tests); wins over keyFile. */
  key?: RecordingKey;
  segmentBytes?: number;
  segmentMs?: number;
  keepBytes?: number;
  flushMs?: number;
}

/**
 * The lane's recorder when its config (`record`) or the caller (`gate run --record`) asks for one, else
 * undefined. A recording keeps the credentials presented (a replay decides again from them), so it needs
 * the operator's key: without one, start-up fails saying where to put it.
 */
export async function recorderFor(parts: RecorderParts, over: RecordOverrides = {}): Promise<LaneRecorder | undefined> {
  const c = parts.config.record;
  const dir = over.dir ?? c?.dir;
  if (dir === undefined) return undefined;
  const keyFile = over.keyFile ?? c?.keyFile;
  let key = over.key;
  if (!key) {
    if (keyFile === undefined) {
      throw new RecordingError(
        'no-key',
        'recording needs the operator key: set record.keyFile in the config or give --record-key FILE (64 hex digits, e.g. `openssl rand -hex 32 > record.key`); the credentials presented are kept encrypted with it so that a replay can decide again',
      );
    }
    key = await loadRecordingKey(keyFile, over.keyFile !== undefined ? '--record-key' : 'record.keyFile');
  }
  const mb = (v: number | undefined, d: number) => (v === undefined ? d : Math.floor(v * (1 << 20)));
  return LaneRecorder.open(
    {
      dir,
      key,
      segmentBytes: over.segmentBytes ?? mb(c?.segmentMegabytes, DEFAULT_RECORD.segmentBytes),
      segmentMs: over.segmentMs ?? (c ? c.segmentMinutes * 60_000 : DEFAULT_RECORD.segmentMs),
      keepBytes: over.keepBytes ?? mb(c?.keepMegabytes, DEFAULT_RECORD.keepBytes),
      flushMs: over.flushMs ?? c?.flushMs ?? DEFAULT_RECORD.flushMs,
    },
    parts,
  );
}

/**
 * `gate sim --record DIR` without --record-key: the key of DIR/record.key, made (0600) if it is not there.
 * Only for simulated riders — a lane's key belongs apart from its recordings.
 */
export async function keyBesideRecording(dir: string): Promise<{ key: RecordingKey; file: string; made: boolean }> {
  const file = join(dir, 'record.key');
  try {
    await ensureDirectory(dir);
  } catch (e) {
    throw new RecordingError('unreadable', `--record: cannot record into ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { dir });
  }
  let made = false;
  try {
    await writeFile(file, randomBytes(32).toString('hex') + '\n', { flag: 'wx', mode: 0o600 });
    made = true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new RecordingError('no-key', `--record: cannot write ${file}: ${(e as Error).message}`, { file });
  }
  return { key: await loadRecordingKey(file, '--record-key'), file, made };
}
