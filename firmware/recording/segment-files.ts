// A lane recording's files: the writer (blocks appended to the current segment, rotation to a new segment,
// retention of the oldest) and the reader (a lane's recordings found, every segment authenticated and
// chained before a record is used). Byte formats: protocol/recording.ts; this file only moves bytes.

import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { GateError, GateErrorCode } from '../../protocol/errors.js';
import {
  BlockKind,
  NO_DICTIONARY,
  SEGMENT_HEADER_BYTES,
  NONCE_BYTES,
  TAG_BYTES,
  decodeBlock,
  decodeSegmentHeader,
  encodeBlock,
  encodeSegmentHeader,
  type BlockDictionary,
  type DecodedBlock,
  type RecordedItem,
  type RecordingKey,
  type RecordingProblem,
  type SegmentHeader,
} from '../../protocol/recording.js';

export const SEGMENT_SUFFIX = '.grec';
/** Largest segment file a reader loads (a writer rotates long before). */
export const MAX_SEGMENT_FILE = 512 << 20;

/** A recording that cannot be used as it is: which file, where, and what is wrong with it. */
export class RecordingError extends GateError {
  constructor(
    readonly problem: RecordingProblem | 'missing-segment' | 'no-recording' | 'no-key' | 'unreadable',
    message: string,
    context: Record<string, unknown> = {},
  ) {
    super(message, problem === 'wrong-key' || problem === 'no-key' ? GateErrorCode.RecordingKey : GateErrorCode.RecordingDamaged, { problem, ...context });
    this.name = 'RecordingError';
  }
}

export interface WriterSettings {
  /** Rotate once a segment holds this many bytes (at the lane's next quiet moment). */
  segmentBytes: number;
  /** Rotate once a segment is this old (lane clock). */
  segmentMs: number;
  /** The oldest segments of this lane are removed while its recordings take more than this. */
  keepBytes: number;
}

/**
 * Appends a recording's blocks to its segment files, one at a time, in order. Encoding (and the tag
 * chain) is synchronous in the caller's turn; the writes run behind it. A write that fails stops the
 * recording (`failed`), never the lane.
 */
export class SegmentWriter {
  readonly recordingId = new Uint8Array(randomBytes(16));
  private segment = 0;
  private nextBlock = 1;
  private prevTag: Uint8Array = new Uint8Array(TAG_BYTES);
  private dict: BlockDictionary = NO_DICTIONARY;
  private handle: FileHandle | undefined;
  private chain: Promise<void> = Promise.resolve();
  private bytesInSegment = 0;
  private segmentOpenedAt = 0;
  private queuedBytes = 0;
  private readonly stamp: string;
  failed: string | undefined;
  ended = false;
  /** Bytes written, across segments. */
  written = 0;

  constructor(
    private readonly dir: string,
    private readonly key: RecordingKey,
    private readonly settings: WriterSettings,
    startedAtMs: number,
    private readonly onFail: (detail: string) => void,
  ) {
    this.stamp = new Date(startedAtMs).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  }

  /** Bytes encoded but not written yet. */
  get backlog(): number {
    return this.queuedBytes;
  }

  /** Due for rotation (size or age of the open segment)? */
  rotationDue(nowMs: number): boolean {
    return this.segment > 0 && (this.bytesInSegment >= this.settings.segmentBytes || nowMs - this.segmentOpenedAt >= this.settings.segmentMs);
  }

  /** Bytes in the open segment so far. */
  get segmentSize(): number {
    return this.bytesInSegment;
  }

  get segmentNumber(): number {
    return this.segment;
  }

  fileName(segment: number): string {
    return `${this.stamp}-${Buffer.from(this.recordingId).toString('hex').slice(0, 8)}-${String(segment).padStart(6, '0')}${SEGMENT_SUFFIX}`;
  }

  /** Start a new segment (the first, or the next after closing the open one with a segment-end block). */
  openSegment(nowMs: number, opensWithCheckpoint: boolean): void {
    if (this.ended) return;
    if (this.segment > 0) this.block(BlockKind.segmentEnd, []);
    this.segment++;
    this.segmentOpenedAt = nowMs;
    const header = encodeSegmentHeader(
      { segment: this.segment, firstBlock: this.nextBlock, recordingId: this.recordingId, createdAtMs: nowMs, prevTag: this.prevTag, opensWithCheckpoint },
      this.key,
      randomBytes(NONCE_BYTES),
    );
    this.prevTag = header.tag;
    this.dict = NO_DICTIONARY;
    this.bytesInSegment = header.bytes.byteLength;
    const name = this.fileName(this.segment);
    const bytes = header.bytes;
    this.queue(bytes.byteLength, async () => {
      const old = this.handle;
      this.handle = undefined;
      await old?.close();
      this.handle = await open(join(this.dir, name), 'wx', 0o600);
      await this.handle.write(bytes);
      this.written += bytes.byteLength;
      await this.prune(name);
    });
  }

  /** Append one block of records (kind 1), or a closing block. */
  block(kind: BlockKind, records: readonly RecordedItem[]): void {
    if (this.ended || this.segment === 0) return;
    const part = encodeBlock(kind, this.nextBlock++, records, this.key, randomBytes(NONCE_BYTES), this.prevTag, this.dict);
    this.prevTag = part.tag;
    this.dict = part.dict;
    this.bytesInSegment += part.bytes.byteLength;
    const bytes = part.bytes;
    this.queue(bytes.byteLength, async () => {
      await this.handle!.write(bytes);
      this.written += bytes.byteLength;
    });
  }

  /** The recording-end block (with a note when it stopped early), then the file closed. */
  async end(note?: Record<string, unknown>): Promise<void> {
    if (!this.ended && this.segment > 0 && this.failed === undefined) {
      this.block(BlockKind.recordingEnd, note ? [{ clear: note }] : []);
    }
    this.ended = true;
    this.queue(0, async () => {
      const h = this.handle;
      this.handle = undefined;
      await h?.sync();
      await h?.close();
    });
    await this.chain;
  }

  /** Wait for every write queued so far. */
  async drain(): Promise<void> {
    await this.chain;
  }

  private queue(bytes: number, write: () => Promise<void>): void {
    this.queuedBytes += bytes;
    this.chain = this.chain.then(async () => {
      if (this.failed !== undefined) return;
      try {
        await write();
      } catch (e) {
        this.failed = (e as Error).message;
        this.onFail(this.failed);
      } finally {
        this.queuedBytes -= bytes;
      }
    });
  }

  /** Remove this lane's oldest segments (never the open one) while they take more than keepBytes. */
  private async prune(current: string): Promise<void> {
    const names = (await readdir(this.dir)).filter((n) => n.endsWith(SEGMENT_SUFFIX)).sort();
    const sizes = await Promise.all(names.map(async (n) => (await stat(join(this.dir, n)).catch(() => ({ size: 0 }))).size));
    let total = sizes.reduce((a, b) => a + b, 0);
    for (let i = 0; i < names.length && total > this.settings.keepBytes; i++) {
      if (names[i] === current) continue;
      await unlink(join(this.dir, names[i])).catch(() => {});
      total -= sizes[i];
    }
  }
}

/** Make `dir` (one level; its parent must exist) if it is not there. */
export async function ensureDirectory(dir: string): Promise<void> {
  try {
    await mkdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  if (!(await stat(dir)).isDirectory()) throw new Error(`${dir} is not a directory`);
}

/** One recording of one lane: its segment files in order. */
export interface RecordingFiles {
  laneId: string;
  dir: string;
  /** File name prefix shared by its segments: start stamp and recording id. */
  name: string;
  files: string[];
}

/** The recordings under DIR: DIR/<lane>/<stamp>-<id>-<segment>.grec, each lane's in the order they started. */
export function findRecordings(root: string, laneId?: string): RecordingFiles[] {
  let lanes: string[];
  try {
    lanes = readdirSorted(root);
  } catch (e) {
    throw new RecordingError('no-recording', `cannot read recording directory ${root}: ${(e as Error).message}`, { dir: root });
  }
  const out: RecordingFiles[] = [];
  for (const lane of lanes) {
    if (laneId !== undefined && lane !== laneId) continue;
    const dir = join(root, lane);
    let names: string[];
    try {
      names = readdirSorted(dir).filter((n) => n.endsWith(SEGMENT_SUFFIX));
    } catch {
      continue;
    }
    const groups = new Map<string, string[]>();
    for (const n of names) {
      const m = /^(.+)-(\d{6})\.grec$/.exec(n);
      if (!m) continue;
      const list = groups.get(m[1]) ?? [];
      list.push(n);
      groups.set(m[1], list);
    }
    for (const [name, files] of groups) out.push({ laneId: lane, dir, name, files });
  }
  if (out.length === 0) {
    throw new RecordingError('no-recording', `no lane recording under ${root}${laneId ? ` for lane ${laneId}` : ''} (expected <lane>/<…>${SEGMENT_SUFFIX} files, made by gate run --record or gate sim --record)`, { dir: root });
  }
  return out;
}

/** Sync: `gate replay` reads what is there before anything runs. */
function readdirSorted(dir: string): string[] {
  return readdirSync(dir).sort();
}

/** Where a recording was found wanting: the error, with the file and offset. */
function damaged(problem: RecordingProblem | 'missing-segment', file: string, offset: number, detail: string): RecordingError {
  const what = {
    'not-a-recording': 'is not a lane recording',
    'unknown-format': 'is in a format this gate does not read',
    'wrong-key': 'was recorded with another key',
    truncated: 'is truncated',
    'bad-length': 'is damaged',
    tampered: 'was tampered with or damaged',
    'out-of-order': 'is out of order',
    'bad-records': 'holds unreadable records',
    'missing-segment': 'has a segment missing',
  }[problem];
  return new RecordingError(problem, `recording ${file} ${what} (at byte ${offset}): ${detail}`, { file, offset });
}

/** How a recording reads, segment by segment, authenticated: its blocks in order. */
export interface RecordingReadOptions {
  key: RecordingKey;
  /** Replay what verifies up to a cut instead of refusing a recording without its closing block (a lane that lost power). */
  allowTruncated?: boolean;
}

/** What reading a recording found about its shape (before or while its records are used). */
export interface RecordingShape {
  segments: number;
  firstSegment: number;
  /** Why the replay starts after segment 1 (retention removed the earlier ones). */
  startsLate?: string;
  /** Set when allowTruncated let a cut recording through. */
  truncated?: string;
  /** The note of a recording the recorder stopped early (disk full, falling behind). */
  stoppedEarly?: string;
}

/**
 * Walks a recording's blocks in order, authenticating each and checking the chain across segment files.
 * `verify()` reads it all once without decoding records (so a damaged recording is refused before anything
 * is replayed); `next()` then hands out blocks with their records.
 */
export class RecordingReader {
  readonly shape: RecordingShape;
  private fileIndex = 0;
  private bytes: Uint8Array | undefined;
  private offset = 0;
  private prevTag: Uint8Array | undefined;
  private dict: BlockDictionary = NO_DICTIONARY;
  private expectBlock = 0;
  private header: SegmentHeader | undefined;
  private done = false;

  constructor(
    readonly recording: RecordingFiles,
    private readonly opts: RecordingReadOptions,
  ) {
    this.shape = { segments: recording.files.length, firstSegment: 0 };
  }

  /** Authenticate the whole recording (no records decoded); throws a RecordingError naming the first problem. */
  verify(): RecordingShape {
    const probe = new RecordingReader(this.recording, this.opts);
    while (probe.next(false) !== undefined);
    Object.assign(this.shape, probe.shape);
    return this.shape;
  }

  /** The next block with its records (undefined at the end). */
  next(parse = true): DecodedBlock | undefined {
    for (;;) {
      if (this.done) return undefined;
      if (!this.bytes) {
        if (this.fileIndex >= this.recording.files.length) return this.cut(this.lastFile(), this.lastSize(), 'the recording has no closing block: the lane stopped without closing it, or its last segments were cut off');
        this.openFile();
        continue;
      }
      if (this.offset >= this.bytes.byteLength) {
        this.bytes = undefined;
        this.fileIndex++;
        if (this.fileIndex >= this.recording.files.length) return this.cut(this.lastFile(), this.lastSize(), 'the last segment ends without its closing block');
        throw damaged('missing-segment', this.file(this.fileIndex - 1), this.lastSize(), 'the segment ends without its segment-end block, yet another segment follows');
      }
      const r = decodeBlock(this.bytes, this.offset, this.opts.key, this.prevTag!, this.expectBlock, parse, this.dict);
      if (!r.ok) {
        if (r.problem === 'truncated' && this.fileIndex === this.recording.files.length - 1) return this.cut(this.file(this.fileIndex), r.offset, r.detail);
        throw damaged(r.problem, this.file(this.fileIndex), r.offset, r.detail);
      }
      const b = r.block;
      this.prevTag = b.tag;
      this.dict = b.dict;
      this.expectBlock++;
      this.offset = b.next;
      if (b.kind === BlockKind.segmentEnd) {
        if (this.offset !== this.bytes.byteLength) throw damaged('tampered', this.file(this.fileIndex), this.offset, 'bytes follow the segment-end block');
        this.bytes = undefined;
        this.fileIndex++;
        if (this.fileIndex >= this.recording.files.length) {
          return this.cut(this.file(this.fileIndex - 1), this.offset, `segment ${this.header!.segment + 1} is missing (the recording continues past segment ${this.header!.segment})`);
        }
        continue;
      }
      if (b.kind === BlockKind.recordingEnd) {
        if (this.offset !== this.bytes.byteLength) throw damaged('tampered', this.file(this.fileIndex), this.offset, 'bytes follow the recording-end block');
        if (this.fileIndex !== this.recording.files.length - 1) throw damaged('out-of-order', this.file(this.fileIndex + 1), 0, 'a segment follows the recording-end block');
        const note = b.records[0]?.clear;
        if (note && typeof note.stopped === 'string') this.shape.stoppedEarly = note.stopped;
        this.done = true;
        return undefined;
      }
      return b;
    }
  }

  /** The header of the segment being read. */
  get segmentHeader(): SegmentHeader | undefined {
    return this.header;
  }

  private openFile(): void {
    const name = this.file(this.fileIndex);
    let bytes: Uint8Array;
    try {
      const s = statSize(name);
      if (s > MAX_SEGMENT_FILE) throw damaged('bad-length', name, 0, `a segment of ${s} bytes is over the ${MAX_SEGMENT_FILE}-byte bound`);
      bytes = readFileSync(name);
    } catch (e) {
      if (e instanceof RecordingError) throw e;
      throw new RecordingError('unreadable', `cannot read recording ${name}: ${(e as Error).message}`, { file: name });
    }
    const h = decodeSegmentHeader(bytes, this.opts.key);
    if (!h.ok) {
      if (h.problem === 'truncated' && this.fileIndex === this.recording.files.length - 1 && this.fileIndex > 0) {
        this.cut(name, h.offset, h.detail);
        return;
      }
      throw damaged(h.problem, name, h.offset, h.detail);
    }
    const header = h.header;
    const expectName = /-(\d{6})\.grec$/.exec(name);
    if (!expectName || Number(expectName[1]) !== header.segment) throw damaged('out-of-order', name, 8, `the file is named for segment ${expectName?.[1]} but holds segment ${header.segment}`);
    if (this.header === undefined) {
      // The first segment present: segment 1, or one a replay can start at (retention removed the earlier ones).
      this.shape.firstSegment = header.segment;
      if (header.segment !== 1) {
        if (!header.opensWithCheckpoint) throw damaged('missing-segment', name, 8, `segments 1-${header.segment - 1} are gone and segment ${header.segment} does not open with a checkpoint to start from`);
        this.shape.startsLate = `segments 1-${header.segment - 1} were removed (retention); the replay starts at segment ${header.segment}'s checkpoint`;
      } else if (!isZero(header.prevTag)) throw damaged('tampered', name, 48, 'segment 1 chains on a previous segment');
    } else {
      if (!sameBytes(header.recordingId, this.header.recordingId)) throw damaged('out-of-order', name, 16, 'the segment belongs to another recording');
      if (header.segment !== this.header.segment + 1) throw damaged('missing-segment', name, 8, `segment ${header.segment} follows segment ${this.header.segment}`);
      if (!sameBytes(header.prevTag, this.prevTag!)) throw damaged('tampered', name, 48, `segment ${header.segment} does not chain on the end of segment ${this.header.segment}`);
      if (header.firstBlock !== this.expectBlock) throw damaged('out-of-order', name, 12, `segment ${header.segment} starts at block ${header.firstBlock}, block ${this.expectBlock} was next`);
    }
    this.header = header;
    this.prevTag = h.tag;
    this.dict = NO_DICTIONARY;
    this.expectBlock = header.firstBlock;
    this.bytes = bytes;
    this.offset = SEGMENT_HEADER_BYTES;
  }

  private cut(file: string, offset: number, detail: string): undefined {
    if (!this.opts.allowTruncated) {
      throw damaged('truncated', file, offset, `${detail}; replay what verifies with --allow-truncated`);
    }
    this.shape.truncated = `${file} at byte ${offset}: ${detail}`;
    this.done = true;
    return undefined;
  }

  private file(i: number): string {
    return join(this.recording.dir, this.recording.files[i]);
  }
  private lastFile(): string {
    return this.file(this.recording.files.length - 1);
  }
  private lastSize(): number {
    try {
      return statSize(this.lastFile());
    } catch {
      return 0;
    }
  }
}

function statSize(path: string): number {
  return statSync(path).size;
}

function isZero(b: Uint8Array): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}
