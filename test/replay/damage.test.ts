// A recording that is not what the lane wrote is refused before anything is replayed, with a classified
// error (GateErrorCode.RecordingDamaged / RecordingKey) naming the file, the byte and the problem: cut at
// every byte, every bit flipped, a block taken out or repeated, a segment missing or from elsewhere, the
// wrong key. --allow-truncated replays what verifies of a cut recording, and says so.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GateErrorCode, isGateError } from '../../protocol/errors.js';
import { SEGMENT_HEADER_BYTES, decodeBlock, decodeSegmentHeader, recordingKey } from '../../protocol/recording.js';
import { RecordingError, RecordingReader, findRecordings, type RecordingFiles } from '../../firmware/recording/segment-files.js';
import { replayRecording } from '../../firmware/recording/replay.js';
import { card, recordedLane, type RecordedLane } from './recorded-lane.js';

// Thousands of small files are written: in memory where the box has it (a disk's sync writes take ms each).
const scratch = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'gate-rec-damage-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A short day: three riders, so the recording is small enough to flip every bit of. */
async function shortDay(record: Parameters<typeof recordedLane>[0] = {}): Promise<RecordedLane> {
  const h = await recordedLane({ dir: mkdtempSync(join(scratch, 'lane-')), ...record });
  for (let i = 1; i <= 3; i++) {
    h.register(card(i), i === 2 ? 'red' : 'green');
    h.entry.present(card(i));
    await h.advance(500);
    if (i !== 2) h.board.walkThrough('entry');
    await h.advance(3000);
  }
  await h.lane.stop();
  return h;
}

/** What reading the recording as `bytes` (its one segment replaced) does: the error, or 'accepted'. */
function verdict(rec: RecordingFiles, file: string, bytes: Uint8Array, key = lane.key, allowTruncated = false): RecordingError | 'accepted' {
  writeFileSync(file, bytes);
  try {
    new RecordingReader(rec, { key, allowTruncated }).verify();
    return 'accepted';
  } catch (e) {
    if (e instanceof RecordingError) return e;
    throw e;
  }
}

let lane: RecordedLane;
let rec: RecordingFiles;
let file: string;
let original: Buffer;

beforeAll(async () => {
  lane = await shortDay();
  [rec] = findRecordings(lane.dir);
  file = join(rec.dir, rec.files[0]);
  original = readFileSync(file);
});

/** Where each block of the segment starts (and the end). */
function blockStarts(bytes: Uint8Array): number[] {
  const h = decodeSegmentHeader(bytes, lane.key);
  if (!h.ok) throw new Error(h.detail);
  const starts = [SEGMENT_HEADER_BYTES];
  let tag = h.tag;
  let dict;
  for (let n = h.header.firstBlock; ; n++) {
    const b = decodeBlock(bytes, starts[starts.length - 1], lane.key, tag, n, true, dict);
    if (!b.ok) throw new Error(b.detail);
    tag = b.block.tag;
    dict = b.block.dict;
    starts.push(b.block.next);
    if (b.block.next === bytes.byteLength) return starts;
  }
}

describe('a damaged recording', () => {
  it('as written, verifies and replays', async () => {
    expect(verdict(rec, file, original)).toBe('accepted');
    const r = await replayRecording(rec, { key: lane.key });
    expect(r).toMatchObject({ decisions: 3, asRecorded: 3, diverged: 0 });
  });

  it('cut at any byte is refused as truncated, naming the file and the byte', () => {
    const cuts: string[] = [];
    for (let len = 0; len < original.byteLength; len++) {
      const v = verdict(rec, file, original.subarray(0, len));
      if (v === 'accepted' || !isGateError(v, GateErrorCode.RecordingDamaged) || v.problem !== 'truncated') cuts.push(`${len}: ${v === 'accepted' ? v : `${v.problem} ${v.message}`}`);
    }
    expect(cuts).toEqual([]);
    const v = verdict(rec, file, original.subarray(0, original.byteLength - 7)) as RecordingError;
    expect(v.message).toContain(file);
    expect(v.message).toMatch(/is truncated \(at byte \d+\): .*--allow-truncated/);
    expect(v.context).toMatchObject({ problem: 'truncated', file });
  });

  it('with any one bit flipped is refused, never read', () => {
    const accepted: number[] = [];
    const problems = new Set<string>();
    const bytes = Buffer.from(original);
    for (let bit = 0; bit < bytes.byteLength * 8; bit++) {
      bytes[bit >> 3] ^= 1 << (bit & 7);
      const v = verdict(rec, file, bytes);
      bytes[bit >> 3] ^= 1 << (bit & 7);
      if (v === 'accepted') accepted.push(bit);
      else {
        expect(isGateError(v, GateErrorCode.RecordingDamaged) || isGateError(v, GateErrorCode.RecordingKey)).toBe(true);
        problems.add(v.problem);
      }
    }
    expect(accepted).toEqual([]);
    // A flip in the key id reads as another key; in the magic, as no recording; everywhere else, as damage.
    expect([...problems].sort()).toEqual(expect.arrayContaining(['not-a-recording', 'tampered', 'unknown-format', 'wrong-key']));
    const v = verdict(rec, file, Buffer.concat([original.subarray(0, 200), Buffer.from([original[200] ^ 0x10]), original.subarray(201)])) as RecordingError;
    expect(v.message).toMatch(/was tampered with or damaged \(at byte \d+\): block \d+ does not authenticate/);
  });

  it('with a block taken out or repeated is refused', () => {
    const starts = blockStarts(original);
    expect(starts.length).toBeGreaterThan(3);
    const [a, b] = [starts[1], starts[2]];
    const without = Buffer.concat([original.subarray(0, a), original.subarray(b)]);
    const twice = Buffer.concat([original.subarray(0, b), original.subarray(a, b), original.subarray(b)]);
    for (const bytes of [without, twice]) {
      const v = verdict(rec, file, bytes);
      expect(v !== 'accepted' && v.problem).toBe('tampered');
    }
  });

  it('read with another key is refused as the wrong key, naming both key ids', () => {
    const v = verdict(rec, file, original, recordingKey(randomBytes(32)));
    expect(v !== 'accepted' && isGateError(v, GateErrorCode.RecordingKey)).toBe(true);
    expect((v as RecordingError).message).toMatch(/recorded with key id [0-9a-f]{16}, the key given has id [0-9a-f]{16}/);
  });

  it('cut short replays with --allow-truncated as far as it verifies, and says where it was cut', async () => {
    const starts = blockStarts(original);
    // Inside the header of the recording-end block: the records before it all verify.
    const cut = starts[starts.length - 2] + 5;
    writeFileSync(file, original.subarray(0, cut));
    const r = await replayRecording(rec, { key: lane.key, allowTruncated: true });
    expect(r.shape.truncated).toContain(`at byte ${starts[starts.length - 2]}: a block header is cut short (5 of 32 bytes)`);
    expect(r.diverged).toBe(0);
    expect(r.decisions).toBeLessThanOrEqual(3);
    await expect(replayRecording(rec, { key: lane.key })).rejects.toMatchObject({ code: GateErrorCode.RecordingDamaged, problem: 'truncated' });
    writeFileSync(file, original);
  });
});

describe('a recording with segments missing or out of place', () => {
  let many: RecordedLane;
  let files: RecordingFiles;
  beforeAll(async () => {
    many = await shortDay({ record: { segmentBytes: 400, flushMs: 200 } });
    [files] = findRecordings(many.dir);
  });
  const copyOf = (name: string): RecordingFiles => {
    const dir = join(scratch, `${name}-${randomBytes(4).toString('hex')}`, 'L1');
    mkdirSync(dir, { recursive: true });
    for (const f of files.files) copyFileSync(join(files.dir, f), join(dir, f));
    return { ...files, dir };
  };
  const refusal = (r: RecordingFiles) => {
    try {
      new RecordingReader({ ...r, files: readdirSync(r.dir).sort() }, { key: many.key }).verify();
      return 'accepted';
    } catch (e) {
      return e instanceof RecordingError ? `${e.problem}: ${e.message}` : String(e);
    }
  };

  it('has several segments that verify as a whole', () => {
    expect(files.files.length).toBeGreaterThanOrEqual(3);
    expect(refusal(files)).toBe('accepted');
  });

  it('a middle segment gone is refused as a missing segment', () => {
    const r = copyOf('gap');
    rmSync(join(r.dir, files.files[1]));
    expect(refusal(r)).toMatch(/^missing-segment: .*segment 3 follows segment 1/);
  });

  it('the last segment gone is refused as truncated', () => {
    const r = copyOf('tail');
    rmSync(join(r.dir, files.files[files.files.length - 1]));
    expect(refusal(r)).toMatch(/^truncated: .*segment \d+ is missing/);
  });

  it('two segments swapped (renamed into each other) are refused', () => {
    const r = copyOf('swap');
    const [x, y] = [join(r.dir, files.files[1]), join(r.dir, files.files[2])];
    renameSync(x, x + '.tmp');
    renameSync(y, x);
    renameSync(x + '.tmp', y);
    expect(refusal(r)).toMatch(/^out-of-order: .*is named for segment 000002 but holds segment 3/);
  });

  it("a segment of another recording of the same lane is refused", async () => {
    const other = await shortDay({ record: { segmentBytes: 400, flushMs: 200, key: many.key } });
    const [o] = findRecordings(other.dir);
    const r = copyOf('foreign');
    copyFileSync(join(o.dir, o.files[1]), join(r.dir, files.files[1]));
    expect(refusal(r)).toMatch(/^out-of-order: .*belongs to another recording/);
  });
});
