// The enforcement schedule reaches lanes by list sync, as the lists do: the back office publishes it signed
// and versioned (POST /v1/policy-schedule), each lane's sync fetches it, verifies it, writes it atomically
// and hands it to the decision core, and each date takes effect at its millisecond on the lane's clock
// (real taps through the gate machine at A-1 and A, B-1 and B; the advise grant shows the day on the
// display). A tampered, older or wrongly signed schedule over sync is a schedule-rejected alarm and the old
// one stays, on disk and in force; a restart keeps the synced one over an older provisioned file.

import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedBarrierLink, SimulatedSource } from '../../drivers/simulated.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { startLane, type Lane } from '../../firmware/composition/start-lane.js';
import type { MemoryJournal } from '../../firmware/journal/journal.js';
import type { ListSync } from '../../firmware/lists/list-sync.js';
import type { Decision } from '../../firmware/verify/decision-core.js';
import type { Alarm } from '../../protocol/alarms.js';
import type { BarrierCommand } from '../../protocol/barrier.js';
import { signPolicySchedule, type PolicySchedule } from '../../protocol/policy-schedule.js';
import { REASONS } from '../../protocol/reasons.js';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { withCheckDigit } from '../../simulator/backoffice/validate.js';
import { VirtualBarrier } from '../../simulator/virtual-barrier.js';
import { VirtualClock } from '../../simulator/virtual-clock.js';

const BJ = (d: number, h = 0) => Date.UTC(2022, 4, d, h - 8); // 2022-05-d h:00 Beijing time
const A = BJ(19); // advise from 19 May
const B = BJ(26); // enforce from 26 May
const ADMIN = 'admin-token-0123456789';
const GATE = 'gate-token-0123456789';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let serial = 0;
const unregisteredCard = () => withCheckDigit(`31041000770${String(++serial).padStart(7, '0')}`);

async function backOffice(clock: VirtualClock) {
  const bo = new Backoffice({ db: ':memory:', now: () => clock.now(), tokens: [{ token: ADMIN, role: 'admin' }, { token: GATE, role: 'gate' }] });
  const { url } = await bo.listen(0);
  cleanups.push(() => bo.close());
  const publish = async (kinds: PolicySchedule['kinds']) => {
    const r = await fetch(`${url}/v1/policy-schedule`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` }, body: JSON.stringify({ kinds }) });
    return { status: r.status, body: (await r.json()) as { seq?: number; error?: string } };
  };
  return { bo, url, publish };
}

async function syncedLane(clock: VirtualClock, url: string, bo: Backoffice, dir: string, id: string, scheduleFile?: string) {
  const board = new VirtualBarrier(clock);
  const commands: BarrierCommand[] = [];
  board.onCommand((c) => commands.push(c));
  const entry = new SimulatedSource(`sim-entry-${id}`, 'entry', clock);
  const config = parseLaneConfig({
    lane: { id, direction: 'entry' },
    lists: { type: 'http-sync', url, dir, publicKeys: [bo.publicKeyPem], token: GATE, pollSeconds: 86_400 },
    policy: { antiPassbackSeconds: 0, ...(scheduleFile ? { scheduleFile } : {}) },
  });
  const lane: Lane = await startLane({ config, clock, barrier: new SimulatedBarrierLink(board, clock), sources: [entry] });
  cleanups.push(() => lane.stop());
  const decisions: Decision[] = [];
  const alarms: Alarm[] = [];
  lane.on('decision', (e) => decisions.push(e.decision));
  lane.on('alarm', (e) => alarms.push(e.alarm));
  const sync = lane.lists as ListSync;
  /** Present a card at this instant of the lane's clock; the decision is taken at it. */
  const tap = async (cardNumber: string): Promise<Decision> => {
    const n = decisions.length;
    entry.present({ kind: 'card', cardNumber });
    for (let i = 0; i < 2000 && decisions.length === n; i++) await new Promise<void>((r) => setImmediate(r));
    if (decisions.length === n) throw new Error(`lane ${id}: no decision`);
    return decisions[n];
  };
  return { lane, board, commands, decisions, alarms, sync, tap };
}

/** Move virtual time, letting promise callbacks (journal, HTTP) run between timers. */
async function advanceTo(clock: VirtualClock, t: number): Promise<void> {
  const turn = async () => {
    for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
  };
  await turn();
  while (clock.step(t)) await turn();
  clock.advanceTo(t);
  await turn();
}

/** A granted rider walks through and the lane is back to ready (virtual seconds later). */
async function walkThrough(clock: VirtualClock, l: { lane: Lane; board: VirtualBarrier }) {
  l.board.walkThrough('entry');
  await advanceTo(clock, clock.now() + 3000);
  expect(l.lane.view().state).toBe('normal.ready');
}

function tmp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'schedule-sync-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('enforcement schedule over list sync', () => {
  it('is published signed, synced by each lane and in force at each date\'s millisecond on the lane\'s clock', async () => {
    const clock = new VirtualClock(BJ(18, 10));
    const { bo, url, publish } = await backOffice(clock);
    const dir = tmp();
    const x = await syncedLane(clock, url, bo, join(dir, 'x'), 'X');
    const y = await syncedLane(clock, url, bo, join(dir, 'y'), 'Y');
    await advanceTo(clock, clock.now() + 10);

    // No schedule anywhere yet: every kind enforced, as before this feature.
    expect(x.lane.view().schedule).toBeUndefined();
    expect(await x.tap(unregisteredCard())).toMatchObject({ grant: false, reason: 'not-registered' });
    await advanceTo(clock, clock.now() + 3000);

    // Bad requests to the operator's endpoint change nothing.
    expect((await publish({ card: { adviseFromMs: B, enforceFromMs: A } })).status).toBe(400);
    expect((await publish({ bus: { adviseFromMs: A, enforceFromMs: B } } as never)).status).toBe(400);
    expect(await publish({ card: { adviseFromMs: A, enforceFromMs: B }, 'phone-nfc': { adviseFromMs: A, enforceFromMs: B } })).toEqual({ status: 201, body: { seq: 1, kinds: expect.any(Object) } });
    for (const l of [x, y]) {
      expect((await l.sync.syncOnce()).kind).not.toBe('failed');
      expect(l.sync.counters.scheduleUpdates).toBe(1);
      expect(l.lane.view().schedule).toMatchObject({ seq: 1, kinds: { card: { stage: 'not-enforced', next: { atMs: A, stage: 'advise' } } } });
      // Written as fetched (write + fsync + rename) before it was handed on.
      expect(readFileSync(l.sync.policySchedulePath)).toEqual(bo.policySchedule());
    }

    // The millisecond before A (lane X) and A itself (lane Y): real taps through the gate machine.
    await advanceTo(clock, A - 1);
    expect(await x.tap(unregisteredCard())).toMatchObject({ grant: true, reason: 'not-enforced' });
    expect(x.commands.some((c) => c.type === 'DISPLAY_DATE')).toBe(false);
    await advanceTo(clock, A);
    const advised = await y.tap(unregisteredCard());
    expect(advised).toMatchObject({ grant: true, reason: 'advise-register', registerByMs: B });
    // The display: the advise text, then the same text with its day (the day before enforcement begins).
    const id = REASONS['advise-register'].id;
    expect(y.commands.slice(-4)).toEqual([
      { type: 'OPEN', direction: 'entry', passages: 1 },
      { type: 'DISPLAY', textId: id },
      { type: 'DISPLAY_DATE', textId: id, day: '2022-05-25' },
      { type: 'INDICATE', indicator: 'green-arrow', buzzer: 'off' },
    ]);
    expect(y.board.display).toEqual({ textId: id, day: '2022-05-25' });
    expect(y.lane.view().display).toBe('advise-register');
    await walkThrough(clock, x);
    await walkThrough(clock, y);
    expect(y.lane.view().schedule?.kinds.card).toMatchObject({ stage: 'advise', next: { atMs: B, stage: 'enforce' } });

    // B-1 on X (still advised), B on Y (refused as the policy says).
    await advanceTo(clock, B - 1);
    expect(await x.tap(unregisteredCard())).toMatchObject({ grant: true, reason: 'advise-register' });
    await advanceTo(clock, B);
    expect(await y.tap(unregisteredCard())).toMatchObject({ grant: false, reason: 'not-registered' });
    expect(y.board.display).toEqual({ textId: REASONS['not-registered'].id });
    expect(y.lane.view().schedule?.kinds.card).toEqual({ stage: 'enforce', adviseFromMs: A, enforceFromMs: B });
    // The same lanes' decision cores, a millisecond either side of each date.
    const decide = (l: typeof x, nowMs: number) => l.lane.core.decide({ presented: { kind: 'credential', credential: { kind: 'phone-nfc', cardNumber: unregisteredCard() } }, side: 'entry', nowMs });
    for (const l of [x, y]) {
      expect(decide(l, A - 1).reason).toBe('not-enforced');
      expect(decide(l, A).reason).toBe('advise-register');
      expect(decide(l, A + 1).reason).toBe('advise-register');
      expect(decide(l, B - 1).reason).toBe('advise-register');
      expect(decide(l, B).reason).toBe('not-registered');
      expect(decide(l, B + 1).reason).toBe('not-registered');
    }
    expect([...x.alarms, ...y.alarms].filter((a) => a.alarm === 'schedule-rejected')).toEqual([]);
  });

  it('a tampered, older or wrongly signed schedule over sync raises schedule-rejected and keeps the old one; a restart keeps the synced one', async () => {
    const clock = new VirtualClock(BJ(18, 10));
    const { bo, url, publish } = await backOffice(clock);
    const dir = tmp();
    const listDir = join(dir, 'lists');
    // Provisioned with the first schedule (seq 1) as policy.scheduleFile, as an installer would.
    expect((await publish({ card: { adviseFromMs: A, enforceFromMs: B } })).body.seq).toBe(1);
    const provisioned = join(dir, 'schedule.json');
    const seq1 = bo.policySchedule()!;
    writeFileSync(provisioned, seq1);
    let l = await syncedLane(clock, url, bo, listDir, 'T', provisioned);
    expect(l.lane.view().schedule?.seq).toBe(1);
    await l.sync.syncOnce();
    // The same seq as provisioned: nothing to take, nothing written.
    expect(l.sync.counters.scheduleUpdates).toBe(0);

    // seq 2 moves enforcement a week later; synced, written, in force.
    const LATER = B + 7 * 86_400_000;
    expect((await publish({ card: { adviseFromMs: A, enforceFromMs: LATER } })).body.seq).toBe(2);
    const seq2 = bo.policySchedule()!;
    await l.sync.syncOnce();
    expect(l.lane.view().schedule).toMatchObject({ seq: 2, kinds: { card: { enforceFromMs: LATER } } });
    expect(readFileSync(l.sync.policySchedulePath)).toEqual(seq2);

    const check = async (error: string) => {
      const before = l.alarms.length;
      const r = await l.sync.syncOnce();
      expect(r.kind).not.toBe('failed');
      expect(l.alarms.slice(before)).toMatchObject([{ alarm: 'schedule-rejected', error }]);
      expect(l.lane.view().schedule).toMatchObject({ seq: 2, kinds: { card: { enforceFromMs: LATER } } });
      expect(readFileSync(l.sync.policySchedulePath)).toEqual(seq2);
      expect(l.lane.core.decide({ presented: { kind: 'credential', credential: { kind: 'card', cardNumber: unregisteredCard() } }, side: 'entry', nowMs: B }).reason).toBe('advise-register');
    };
    // Tampered: a path that changes the payload (enforcement sooner) without the key.
    const env = JSON.parse(seq2.toString());
    const sooner = Buffer.from(JSON.stringify({ v: 1, seq: 3, issuedAtMs: clock.now(), kinds: { card: { adviseFromMs: A, enforceFromMs: A } } })).toString('base64');
    bo.setPolicyScheduleDocument(Buffer.from(JSON.stringify({ ...env, payload: sooner })));
    await check('bad-signature');
    // Older: seq 1 served again (a replay, or a back office restored from an old backup).
    bo.setPolicyScheduleDocument(seq1);
    await check('older');
    // Signed by a key the lane does not trust.
    const other = generateKeyPairSync('ed25519').privateKey;
    bo.setPolicyScheduleDocument(signPolicySchedule({ seq: 9, issuedAtMs: clock.now(), kinds: {} }, other));
    await check('unknown-key');
    // Not a document at all.
    bo.setPolicyScheduleDocument(Buffer.from('{"format":"bj-policy-schedule"'));
    await check('json');
    expect(l.sync.counters.schedulesRefused).toBe(4);

    // A restart, provisioned file still seq 1, back office gone: the synced seq 2 is in force at once.
    await l.lane.stop();
    await bo.close();
    l = await syncedLane(clock, url, bo, listDir, 'T', provisioned);
    expect(l.lane.view().schedule).toMatchObject({ seq: 2, kinds: { card: { enforceFromMs: LATER } } });

    // A provisioned file that does not verify: an alarm the lane raises (and journals), every kind enforced.
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, 'not a schedule');
    const m = await syncedLane(clock, url, bo, join(dir, 'm'), 'M', bad);
    const records = (m.lane.journal as MemoryJournal).records.map((r) => r.entry);
    expect(records).toContainEqual(expect.objectContaining({ type: 'alarm', alarm: 'schedule-rejected', detail: expect.stringContaining('json') }));
    expect(m.lane.view().schedule).toBeUndefined();
  });
});
