// Record a lane through startLane's recorder (the path of `gate run --record`) on virtual time, then replay
// the recording through the same machine: an unchanged lane decides exactly as it did, on every path a day
// takes (passages, refusals, busy taps, a tap kept while closing, a journal that fails or stalls, modes,
// fire alarm, a barrier fault, a list update); another policy or list file shows exactly the decisions it
// changes, and why.
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentialKey, credentialRef } from '../../protocol/credential.js';
import { ListBuilder, statusByte } from '../../protocol/lists/index.js';
import { loadListFile } from '../../firmware/lists/stored-lists.js';
import { findRecordings } from '../../firmware/recording/segment-files.js';
import { replayRecording, type ReplayedDecision } from '../../firmware/recording/replay.js';
import { card, recordedLane, type RecordedLane } from './recorded-lane.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const A = card(1); // green
const B = card(2); // yellow
const C = card(3); // red
const D = card(4); // not registered
const E = card(5); // blocked
const F = card(6); // green
const G = card(7); // green
const H = card(8); // green
const I = card(9); // green
const J = card(10); // green

/** A lane's day, in short: every path the machine and the decider take, with the events as they came. */
async function day(h: RecordedLane): Promise<void> {
  h.register(A, 'green');
  h.register(B, 'yellow');
  h.register(C, 'red');
  h.register(E, 'blocked');
  h.register(F, 'green');
  for (const c of [G, H, I, J]) h.register(c, 'green');
  // A enters and walks through.
  h.entry.present(A);
  await h.advance(500);
  h.board.walkThrough('entry');
  await h.advance(3000);
  // Yellow (twice), red, unregistered, blocked.
  for (const c of [B, B, C, D, E]) {
    h.entry.present(c);
    await h.advance(2000);
  }
  // A again: anti-passback.
  h.entry.present(A);
  await h.advance(2000);
  // F is deciding while the journal holds: G's tap is refused busy; F is granted and never walks (not passed).
  h.journal.mode = 'hold';
  h.entry.present(F);
  await h.advance(100);
  h.entry.present(G);
  await h.advance(100);
  h.journal.release();
  h.journal.mode = 'instant';
  await h.advance(10_000);
  // The journal stalls past decisionMs: refused journal-unavailable; the answer comes late and changes nothing.
  h.journal.mode = 'hold';
  h.entry.present(G);
  await h.advance(1500);
  h.journal.release();
  h.journal.mode = 'instant';
  await h.advance(2000);
  // The journal fails: an entry is refused, an exit still opens.
  h.journal.mode = 'fail';
  h.entry.present(H);
  await h.advance(2000);
  h.exit.present(A);
  await h.advance(500);
  h.board.walkThrough('exit');
  await h.advance(3000);
  h.journal.mode = 'instant';
  // A card pulled away mid-read.
  h.entry.cardFault('tap-again', 'card removed');
  await h.advance(2000);
  // I enters; while the flaps close, J taps (kept, and served once they are closed); D at the exit is busy.
  h.entry.present(I);
  await h.advance(500);
  h.board.walkThrough('entry');
  await h.advance(1250);
  h.entry.present(J);
  await h.advance(10);
  h.exit.present(D);
  await h.advance(12_000);
  // The station closes and opens again; free passage; back to normal.
  h.lane.send({ type: 'SET_MODE', mode: 'closed' });
  await h.advance(100);
  h.entry.present(B);
  await h.advance(1000);
  h.lane.send({ type: 'SET_MODE', mode: 'free' });
  await h.advance(100);
  h.entry.present(C);
  await h.advance(1000);
  h.lane.send({ type: 'SET_MODE', mode: 'normal' });
  await h.advance(1000);
  // Fire alarm: a tap is ignored; cleared and reset.
  h.board.setFireAlarm(true);
  await h.advance(1000);
  h.entry.present(B);
  await h.advance(1000);
  h.board.setFireAlarm(false);
  await h.advance(500);
  h.lane.send({ type: 'RESET_EMERGENCY' });
  await h.advance(1000);
  // A barrier fault takes the lane out of service; a tap is refused; the fault clears.
  h.board.setFault(7);
  await h.advance(500);
  h.entry.present(F);
  await h.advance(1000);
  h.board.setFault(0);
  await h.advance(1000);
  // A new list version: B is green now.
  h.lists.allowlist.set(credentialKey(B), 'green');
  h.lists.version = 2;
  h.entry.present(B);
  await h.advance(500);
  h.board.walkThrough('entry');
  await h.advance(4000);
}

async function recordDay(opts: Parameters<typeof recordedLane>[0] = {}): Promise<RecordedLane> {
  const h = await recordedLane(opts);
  dirs.push(h.dir);
  await day(h);
  await h.lane.stop();
  return h;
}

const said = (d: { grant: boolean; reason: string; ref: string; direction: string }) => `${d.ref} ${d.direction} ${d.grant ? 'grant' : 'refuse'} ${d.reason}`;

describe('replay of an unchanged lane', () => {
  it('decides every decision exactly as the lane did, on every path of its day', async () => {
    const h = await recordDay();
    const decided = h.journal.asked.map(said);
    // The day took the paths it is meant to.
    const reasons = new Set(h.journal.asked.map((d) => d.reason));
    for (const r of ['ok', 'status-yellow', 'status-red', 'not-registered', 'blocked', 'passback', 'lane-busy', 'station-closed', 'ok-free-passage', 'out-of-service', 'tap-again']) expect(reasons).toContain(r);

    const [recording] = findRecordings(h.dir);
    const replayed: ReplayedDecision[] = [];
    const report = await replayRecording(recording, { key: h.key, onDecision: (d) => replayed.push(d) });
    expect(report.divergences).toEqual([]);
    expect(replayed.map((d) => said(d.replayed))).toEqual(decided);
    expect(report.asRecorded).toBe(decided.length);
    expect(report.timers).toBeGreaterThan(0);
    expect(report.listVersions).toEqual([1, 2]);
    expect(report.finalState).toBe(h.lane.view().state);
  });
});

describe('replay against another version', () => {
  it('a policy that admits yellow changes exactly the yellow entries (and what they then consume)', async () => {
    const h = await recordedLane();
    dirs.push(h.dir);
    h.register(A, 'green');
    h.register(B, 'yellow');
    h.register(C, 'red');
    // B yellow twice at entry, C red at entry, A green, B at the exit, D unregistered.
    for (const [side, c] of [['entry', B], ['entry', C], ['entry', A], ['entry', B], ['exit', B], ['entry', D]] as const) {
      (side === 'entry' ? h.entry : h.exit).present(c);
      await h.advance(500);
      if (c === A) h.board.walkThrough('entry');
      await h.advance(4000);
    }
    await h.lane.stop();
    const [recording] = findRecordings(h.dir);
    const replayed: ReplayedDecision[] = [];
    const policy = { ...h.config.policy, entry: { ...h.config.policy.entry, yellow: true } };
    const report = await replayRecording(recording, { key: h.key, other: { label: 'yellow-admitted.json', policy }, onDecision: (d) => replayed.push(d) });
    expect(report.divergences).toEqual([]);
    const differing = replayed.filter((d) => d.other!.grant !== d.replayed.grant || d.other!.reason !== d.replayed.reason);
    expect(differing.map((d) => `${d.n} ${d.replayed.ref} ${d.replayed.reason} -> ${d.other!.grant ? 'grant' : 'refuse'} ${d.other!.reason}`)).toEqual([
      // First yellow entry: admitted now.
      `1 ${credentialRef(B)} status-yellow -> grant ok`,
      // Second yellow entry: the other version let B in a moment ago: anti-passback.
      `4 ${credentialRef(B)} status-yellow -> refuse passback`,
    ]);
    expect(differing[0].why).toEqual(['entry policy for yellow: refused → admitted (yellow-admitted.json)']);
    expect(differing[1].why!.join('; ')).toMatch(/anti-passback: the other version let this credential in at 2022-05-20T07:00:00\.010Z/);
    expect(report).toMatchObject({ decisions: 6, asRecorded: 6, differing: 2, nowGranted: 1, nowRefused: 0 });
  });

  it('another list file changes exactly the credentials whose status changed, naming both versions', async () => {
    const h = await recordedLane();
    dirs.push(h.dir);
    h.register(A, 'green');
    h.register(C, 'red');
    h.register(F, 'green');
    for (const c of [A, C, F, D]) {
      h.entry.present(c);
      await h.advance(500);
      if (c === A || c === F) h.board.walkThrough('entry');
      await h.advance(4000);
    }
    await h.lane.stop();
    // Version 7: A blocked, C green, F still green, D registered yellow.
    const b = new ListBuilder(4);
    b.set(credentialKey(A), statusByte('green', true));
    b.set(credentialKey(C), statusByte('green', false));
    b.set(credentialKey(F), statusByte('green', false));
    b.set(credentialKey(D), statusByte('yellow', false));
    const file = join(h.dir, 'lists-v7.snap');
    writeFileSync(file, b.build({ version: 7, publishedAtMs: h.clock.now() }));
    const lists = await loadListFile(file, null);
    const [recording] = findRecordings(h.dir);
    const replayed: ReplayedDecision[] = [];
    const report = await replayRecording(recording, { key: h.key, other: { label: '--lists lists-v7.snap', lists: { current: () => lists }, listsLabel: 'lists-v7.snap' }, onDecision: (d) => replayed.push(d) });
    const differing = replayed.filter((d) => d.other!.reason !== d.replayed.reason);
    expect(differing.map((d) => `${d.replayed.ref} ${d.replayed.reason} -> ${d.other!.reason}: ${d.why!.join('; ')}`)).toEqual([
      `${credentialRef(A)} ok -> blocked: list status green in the recorded lists (v1) → blocked in lists-v7.snap (v7)`,
      `${credentialRef(C)} status-red -> ok: list status red in the recorded lists (v1) → green in lists-v7.snap (v7)`,
      `${credentialRef(D)} not-registered -> status-yellow: list status unregistered in the recorded lists (v1) → yellow in lists-v7.snap (v7)`,
    ]);
    expect(report).toMatchObject({ decisions: 4, asRecorded: 4, differing: 3, nowGranted: 1, nowRefused: 1 });
  });
});

describe('rotation', () => {
  it('spreads a day over segments that open with checkpoints; it replays whole, and from any checkpoint once the first segments are gone', async () => {
    const h = await recordDay({ record: { segmentBytes: 700, flushMs: 500 } });
    const [recording] = findRecordings(h.dir);
    expect(recording.files.length).toBeGreaterThanOrEqual(4);
    const whole: ReplayedDecision[] = [];
    const report = await replayRecording(recording, { key: h.key, onDecision: (d) => whole.push(d) });
    expect(report.divergences).toEqual([]);
    expect(whole.map((d) => said(d.replayed))).toEqual(h.journal.asked.map(said));

    // Retention removed segments 1 and 2: the replay starts at segment 3's checkpoint, as the lane was then.
    rmSync(join(recording.dir, recording.files[0]));
    rmSync(join(recording.dir, recording.files[1]));
    const [rest] = findRecordings(h.dir);
    const later: ReplayedDecision[] = [];
    const partial = await replayRecording(rest, { key: h.key, onDecision: (d) => later.push(d) });
    expect(partial.shape.startsLate).toMatch(/segments 1-2 were removed/);
    expect(partial.divergences).toEqual([]);
    expect(later.length).toBeGreaterThan(0);
    expect(later.map((d) => said(d.replayed))).toEqual(h.journal.asked.slice(h.journal.asked.length - later.length).map(said));
  });

  it("keeps a lane's recordings under keepBytes by removing the oldest segments", async () => {
    const h = await recordDay({ record: { segmentBytes: 700, flushMs: 500, keepBytes: 2500 } });
    const [recording] = findRecordings(h.dir);
    const { statSync } = await import('node:fs');
    const sizes = recording.files.map((f) => statSync(join(recording.dir, f)).size);
    expect(Number(/-(\d{6})\.grec$/.exec(recording.files[0])![1])).toBeGreaterThan(1);
    // What is left, bar the segment open when the limit was last checked, fits.
    expect(sizes.slice(0, -1).reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(2500);
    const report = await replayRecording(recording, { key: h.key });
    expect(report.divergences).toEqual([]);
    expect(report.decisions).toBeGreaterThan(0);
  });
});

describe('a recording that cannot be written', () => {
  it('stops, and the lane goes on deciding; the replay says where the recording ends', async () => {
    const h = await recordedLane({ record: { segmentBytes: 600, flushMs: 500 } });
    dirs.push(h.dir);
    const { readdirSync, writeFileSync: write } = await import('node:fs');
    const laneDir = join(h.dir, 'L1');
    const [first] = readdirSync(laneDir);
    // Something already holds the next segment's name: opening it fails, as a full or broken disk would.
    write(join(laneDir, first.replace('-000001.grec', '-000002.grec')), 'in the way');
    const decided: string[] = [];
    h.lane.on('decision', (e) => decided.push(e.decision.reason));
    for (let i = 1; i <= 8; i++) {
      h.register(card(i), 'green');
      h.entry.present(card(i));
      await h.advance(500);
      h.board.walkThrough('entry');
      await h.advance(4000);
    }
    await h.lane.stop();
    expect(decided).toEqual(Array(8).fill('ok'));
    const [recording] = findRecordings(h.dir);
    rmSync(join(laneDir, first.replace('-000001.grec', '-000002.grec')));
    await expect(replayRecording({ ...recording, files: [first] }, { key: h.key })).rejects.toMatchObject({ problem: 'truncated' });
    const r = await replayRecording({ ...recording, files: [first] }, { key: h.key, allowTruncated: true });
    expect(r.shape.truncated).toMatch(/segment 2 is missing/);
    expect(r.diverged).toBe(0);
    expect(r.decisions).toBeGreaterThan(0);
    expect(r.decisions).toBeLessThan(8);
  });
});
