// The normally-open lane on the simulated clock: the real gate machine, the virtual board in its
// normally-open regime, and bodies walking at a set speed (simulator/lane-mechanics.ts). Every fraud story
// (no tap, refused, a second body, wrong way, a late decision) must end with the flaps shut before the
// body reaches them; a fire alarm still opens everything. The last check: every transition of the
// normally-open states was taken here (test/gate/machine.test.ts covers the rest of the machine).
import { afterAll, describe, expect, it } from 'vitest';
import type { AnyStateNode, InspectionEvent } from 'xstate';
import { gateMachine } from '../../firmware/lane/gate-machine.js';
import { NORMALLY_OPEN_STATES } from '../../firmware/lane/normally-open.js';
import { MemoryJournal, type Journal, type JournalEntry } from '../../firmware/journal/journal.js';
import type { BarrierCommand } from '../../protocol/barrier.js';
import { REASONS } from '../../protocol/reasons.js';
import { NormallyOpenFlow, type Arrival } from '../../simulator/lane-mechanics.js';
import { laneHarness, type LaneHarness } from '../support/lane-harness.js';

const taken = new Set<unknown>();
const inspect = (e: InspectionEvent) => {
  if (e.type === '@xstate.microstep') for (const t of (e as { _transitions: unknown[] })._transitions) taken.add(t);
};

const GREEN = '3104100012300000001';
const GREEN2 = '3104100012300000002';
const UNREGISTERED = '3104100012300000009';
const card = (n: string) => ({ kind: 'card' as const, cardNumber: n });
const WALK = 1300; // mm/s: 1200 mm to the flaps in 923 ms; the close must start by 923 − 250 − 100 = 573 ms

/** A journal whose durability the test holds and releases (virtual time goes on meanwhile). */
class HeldJournal implements Journal {
  hold = false;
  readonly entries: JournalEntry[] = [];
  private held: (() => void)[] = [];
  append(entry: JournalEntry): Promise<number> {
    this.entries.push(entry);
    const seq = this.entries.length;
    if (!this.hold) return Promise.resolve(seq);
    return new Promise((r) => this.held.push(() => r(seq)));
  }
  release(): void {
    this.hold = false;
    const h = this.held;
    this.held = [];
    h.forEach((f) => f());
  }
  async close(): Promise<void> {}
}

interface Lane extends LaneHarness {
  flow: NormallyOpenFlow;
  arrivals: Arrival[];
  alarms: string[];
  passages: string[];
  displays: string[];
  count(type: BarrierCommand['type']): number;
}

async function lane(direction: 'entry' | 'exit' | 'bidirectional' = 'bidirectional', journal: Journal = new MemoryJournal()): Promise<Lane> {
  const h = await laneHarness({ lane: { id: 'L1', direction, flaps: 'normally-open' } }, { inspect, journal });
  h.register(`card:${GREEN}`, 'green');
  h.register(`card:${GREEN2}`, 'green');
  const flow = new NormallyOpenFlow(h.clock, h.board, direction, 7);
  const arrivals: Arrival[] = [];
  flow.onArrival = (a) => arrivals.push(a);
  const alarms: string[] = [];
  const passages: string[] = [];
  const displays: string[] = [];
  h.lane.on('alarm', (e) => alarms.push(e.alarm.alarm === 'body-stopped' ? `body-stopped:${e.alarm.why}` : e.alarm.alarm));
  h.lane.on('passage', (e) => passages.push(`${e.direction}:${e.outcome}`));
  h.board.onCommand((c) => {
    if (c.type === 'DISPLAY' && c.textId !== 0) displays.push(Object.entries(REASONS).find(([, r]) => r.id === c.textId)?.[0] ?? String(c.textId));
  });
  await h.advance(400); // the flaps open for the regime
  return Object.assign(h, { flow, arrivals, alarms, passages, displays, count: (t: BarrierCommand['type']) => h.commands.filter((c) => c.type === t).length });
}

/** The body reached the flaps shut, and never crossed them without authorisation. */
function stoppedInTime(l: Lane, body: number): void {
  const a = l.arrivals.find((x) => x.body === body);
  expect(a, `body ${body} reached the flaps`).toBeDefined();
  expect(a!.authorised).toBe(false);
  expect(a!.flaps).toBe('closed');
  expect(a!.stopped).toBe(true);
  expect(l.board.closedAt).toBeLessThanOrEqual(a!.atMs);
  expect(l.flow.summary().intruded).toBe(0);
}

describe('normally-open lane: riders walk through while the lane decides', () => {
  it('starts flowing: regime first, then mode normal, flaps resting open', async () => {
    const l = await lane();
    expect(l.state()).toBe('normal.flowing');
    const regime = l.commands.findIndex((c) => c.type === 'SET_FLAP_REGIME');
    const mode = l.commands.findIndex((c, i) => i > regime && c.type === 'SET_MODE' && c.mode === 'normal');
    expect(regime).toBeGreaterThanOrEqual(0);
    expect(mode).toBeGreaterThan(regime);
    expect(l.board.regime).toBe('normally-open');
    expect(l.board.flaps).toBe('open');
  });

  it('a rider taps while walking: authorised before the flaps, walks through, never closed on', async () => {
    const l = await lane();
    const w = l.flow.walkIn('rider', 'entry', WALK);
    await l.advance(200);
    l.entry.present(card(GREEN));
    await l.advance(0);
    expect(l.count('AUTHORISE')).toBe(1);
    expect(l.count('FAST_CLOSE')).toBe(0);
    await l.advance(2000);
    expect(l.arrivals).toMatchObject([{ body: w.body, authorised: true, flaps: 'open' }]);
    expect(l.passages).toEqual(['entry:passed']);
    expect(l.state()).toBe('normal.flowing');
    expect(l.flow.summary().grantMarginMs.p50).toBeGreaterThan(600);
  });

  it('a tap seen before its body breaks the beam is that body’s', async () => {
    const l = await lane();
    l.entry.present(card(GREEN));
    await l.advance(300);
    expect(l.count('AUTHORISE')).toBe(0);
    l.flow.walkIn('rider', 'entry', WALK);
    await l.advance(0);
    expect(l.count('AUTHORISE')).toBe(1);
    await l.advance(2000);
    expect(l.passages).toEqual(['entry:passed']);
  });
});

describe('normally-open lane: every fraud story ends with the flaps shut before the body passes', () => {
  it('refused: closed in front of it before it arrives; it turns back; the lane reopens', async () => {
    const l = await lane();
    const w = l.flow.walkIn('rider', 'entry', WALK);
    await l.advance(200);
    l.entry.present(card(UNREGISTERED));
    await l.advance(0);
    expect(l.count('FAST_CLOSE')).toBe(1);
    expect(l.state()).toBe('normal.blocking');
    expect(l.displays).toEqual(['not-registered']);
    await l.advance(800);
    stoppedInTime(l, w.body);
    await l.advance(3000);
    expect(l.board.bodies.size).toBe(0);
    expect(l.state()).toBe('normal.flowing');
    expect(l.commands.filter((c) => c.type === 'OPEN')).toEqual([{ type: 'OPEN', direction: 'entry', passages: 0 }]);
    await l.advance(400);
    expect(l.board.flaps).toBe('open');
  });

  it('no tap: closed at its close-by time, shown “tap first”, alarm', async () => {
    const l = await lane();
    const w = l.flow.walkIn('no-tap', 'entry', WALK);
    await l.advance(572);
    expect(l.count('FAST_CLOSE')).toBe(0);
    await l.advance(2);
    expect(l.count('FAST_CLOSE')).toBe(1);
    expect(l.displays).toEqual(['no-tap']);
    expect(l.alarms).toEqual(['body-stopped:no-tap']);
    await l.advance(500);
    stoppedInTime(l, w.body);
  });

  it('two without a tap, one behind the other: each is held, the lane reopens only when both have gone', async () => {
    const l = await lane();
    const a = l.flow.walkIn('no-tap', 'entry', WALK);
    await l.advance(1000);
    const b = l.flow.walkIn('no-tap', 'entry', WALK);
    await l.advance(1000);
    expect(l.alarms).toEqual(['body-stopped:no-tap', 'body-stopped:no-tap']);
    stoppedInTime(l, a.body);
    // b waits behind a (single file) until a has turned back, then meets the flaps still shut.
    await l.advance(2500);
    stoppedInTime(l, b.body);
    expect(l.state()).toBe('normal.blocking');
    await l.advance(3000);
    expect(l.state()).toBe('normal.flowing');
    expect(l.count('OPEN')).toBe(1);
  });

  it('a fast walker with no tap is closed on by its own, earlier, close-by time', async () => {
    const l = await lane();
    const w = l.flow.walkIn('no-tap', 'entry', 2000); // 600 ms to the flaps: close by 250 ms
    await l.advance(700);
    stoppedInTime(l, w.body);
  });

  it('a second body on an authorised rider’s heels: the rider walks through, the second body is stopped', async () => {
    const l = await lane();
    const a = l.flow.walkIn('rider', 'entry', WALK);
    await l.advance(200);
    l.entry.present(card(GREEN));
    await l.advance(600);
    const b = l.flow.walkIn('second-body', 'entry', WALK); // 0.8 s (1040 mm) behind
    await l.advance(1200);
    expect(l.arrivals.find((x) => x.body === a.body)).toMatchObject({ authorised: true, flaps: 'open' });
    stoppedInTime(l, b.body);
    expect(l.alarms).toEqual(['body-stopped:second-body']);
    expect(l.passages).toEqual(['entry:passed']);
    await l.advance(4000);
    expect(l.state()).toBe('normal.flowing');
  });

  it('a second body closer behind: the close waits for the rider to clear the flaps (never on the rider), then stops it', async () => {
    const l = await lane();
    const a = l.flow.walkIn('rider', 'entry', WALK);
    await l.advance(200);
    l.entry.present(card(GREEN));
    await l.advance(500);
    const b = l.flow.walkIn('second-body', 'entry', WALK); // 0.7 s (910 mm): its close-by time comes while the rider is between the flaps
    await l.advance(1200);
    expect(l.alarms).toEqual(['body-stopped:second-body', 'obstruction']);
    expect(l.arrivals.find((x) => x.body === a.body)).toMatchObject({ authorised: true });
    expect(l.passages).toEqual(['entry:passed']);
    stoppedInTime(l, b.body);
  });

  it('wrong way on an entry lane: closed at once, whatever comes after', async () => {
    const l = await lane('entry');
    const w = l.flow.walkIn('wrong-way', 'exit', WALK);
    await l.advance(0);
    expect(l.count('FAST_CLOSE')).toBe(1);
    expect(l.displays).toEqual(['wrong-way']);
    expect(l.alarms).toEqual(['body-stopped:wrong-way']);
    l.exit.present(card(GREEN)); // no exit reader on an entry lane would matter: a tap cannot open for a wrong-way body
    await l.advance(1000);
    stoppedInTime(l, w.body);
    await l.advance(4000);
    expect(l.state()).toBe('normal.flowing');
  });

  it('late decision: closed at the close-by time, not guessed; the grant then reopens for the waiting rider', async () => {
    const j = new HeldJournal();
    const l = await lane('bidirectional', j);
    const w = l.flow.walkIn('rider', 'entry', WALK);
    await l.advance(200);
    j.hold = true;
    l.entry.present(card(GREEN));
    await l.advance(380);
    expect(l.count('FAST_CLOSE')).toBe(1);
    expect(l.displays).toEqual(['too-fast']);
    expect(l.alarms).toEqual(['body-stopped:too-fast']);
    await l.advance(400);
    stoppedInTime(l, w.body);
    j.release();
    await l.advance(0);
    expect(l.count('AUTHORISE')).toBe(1);
    expect(l.state()).toBe('normal.flowing');
    await l.advance(1500);
    expect(l.passages).toEqual(['entry:passed']);
    expect(l.flow.summary()).toMatchObject({ admittedAfterWaiting: 1, intruded: 0 });
  });

  it('late refusal: closed at the close-by time; the refusal keeps it shut; the body turns back', async () => {
    const j = new HeldJournal();
    const l = await lane('bidirectional', j);
    const w = l.flow.walkIn('rider', 'entry', WALK);
    await l.advance(200);
    j.hold = true;
    l.entry.present(card(UNREGISTERED));
    await l.advance(800);
    stoppedInTime(l, w.body);
    j.release();
    await l.advance(0);
    expect(l.displays).toEqual(['too-fast', 'not-registered']);
    expect(l.count('AUTHORISE')).toBe(0);
    await l.advance(4000);
    expect(l.flow.summary().intruded).toBe(0);
    expect(l.state()).toBe('normal.flowing');
  });

  it('a tap after the close-by time, refused or torn, while the flaps close: no second FAST_CLOSE, they shut before the body arrives', async () => {
    for (const tap of ['refused', 'torn'] as const) {
      const l = await lane();
      const w = l.flow.walkIn('rider', 'entry', WALK); // close-by at 573 ms, shut at 823, at the flaps at 923
      await l.advance(700);
      expect(l.count('FAST_CLOSE')).toBe(1);
      if (tap === 'refused') l.entry.present(card(UNREGISTERED));
      else l.entry.cardFault('tap-again', 'rider pulled the card away');
      await l.advance(0);
      expect(l.displays).toEqual(['no-tap', tap === 'refused' ? 'not-registered' : 'tap-again']);
      // A second FAST_CLOSE now would start the close over: shut at 950, after the body reached them at 923.
      expect(l.count('FAST_CLOSE')).toBe(1);
      await l.advance(300);
      stoppedInTime(l, w.body);
      await l.advance(4000);
      expect(l.flow.summary().intruded).toBe(0);
      expect(l.state()).toBe('normal.flowing');
    }
  });

  it('a decision that never comes: refused as a journal fault after decisionMs, flaps shut, alarm', async () => {
    const j = new HeldJournal();
    const l = await lane('bidirectional', j);
    const w = l.flow.walkIn('rider', 'entry', 600); // slow: 2 s to the flaps
    await l.advance(100);
    j.hold = true;
    l.entry.present(card(GREEN));
    await l.advance(1000);
    expect(l.alarms).toEqual(['decision-timeout']);
    expect(l.displays).toEqual(['journal-unavailable']);
    expect(l.state()).toBe('normal.blocking');
    await l.advance(1500);
    stoppedInTime(l, w.body);
    j.release();
    await l.advance(5000);
    expect(l.count('AUTHORISE')).toBe(0);
    expect(l.state()).toBe('normal.flowing');
  });

  it('a fire alarm opens everything, a body held at the shut flaps included, until reset', async () => {
    const l = await lane();
    l.flow.walkIn('no-tap', 'entry', WALK);
    await l.advance(1000);
    expect(l.board.flaps).toBe('closed');
    l.board.setFireAlarm(true);
    await l.advance(400);
    expect(l.state()).toBe('emergency');
    expect(l.board.flaps).toBe('open');
    await l.advance(1000);
    expect(l.board.bodies.size).toBe(0);
    expect(l.board.counts.passed).toBe(1);
    const b = l.flow.walkIn('no-tap', 'exit', WALK);
    await l.advance(2000);
    expect(l.arrivals.find((x) => x.body === b.body)).toMatchObject({ flaps: 'open' });
    expect(l.count('FAST_CLOSE')).toBe(1);
    l.board.setFireAlarm(false);
    l.lane.send({ type: 'RESET_EMERGENCY' });
    await l.advance(400);
    expect(l.state()).toBe('normal.flowing');
    expect(l.board.flaps).toBe('open');
  });
});

describe('normally-open lane: faults, modes, taps out of turn', () => {
  it('a board that refuses the regime: alarm, and the lane serves normally closed', async () => {
    const l = await lane();
    l.lane.send({ type: 'COMMAND_FAILED', command: 'SET_FLAP_REGIME', executed: false, detail: 'refused by the board: unsupported' });
    await l.advance(500);
    expect(l.state()).toBe('normal.ready');
    expect(l.alarms).toEqual(['flap-regime-refused']);
    expect(l.board.regime).toBe('normally-closed');
    expect(l.board.flaps).toBe('closed');
    l.entry.present(card(GREEN));
    await l.advance(0);
    expect(l.state()).toBe('normal.granted');
    expect(l.commands.at(-3)).toEqual({ type: 'OPEN', direction: 'entry', passages: 1 });
  });

  it('a regime refusal while a body is held also falls back', async () => {
    const l = await lane();
    l.flow.walkIn('no-tap', 'entry', WALK);
    await l.advance(600);
    expect(l.state()).toBe('normal.blocking');
    l.lane.send({ type: 'COMMAND_FAILED', command: 'SET_FLAP_REGIME', executed: false, detail: 'refused' });
    l.lane.send({ type: 'COMMAND_FAILED', command: 'FAST_CLOSE', detail: 'no answer after 4 attempts' });
    await l.advance(0);
    expect(l.state()).toBe('normal.ready');
  });

  it('other command failures are alarms, the cycle goes on', async () => {
    const l = await lane();
    l.lane.send({ type: 'COMMAND_FAILED', command: 'AUTHORISE', detail: 'no answer after 4 attempts' });
    await l.advance(0);
    expect(l.alarms).toEqual(['barrier-command-failed']);
    expect(l.state()).toBe('normal.flowing');
    l.flow.walkIn('no-tap', 'entry', WALK);
    await l.advance(600);
    l.lane.send({ type: 'COMMAND_FAILED', command: 'DISPLAY', detail: 'no answer after 4 attempts' });
    await l.advance(0);
    expect(l.state()).toBe('normal.blocking');
  });

  it('an operator choice waits for the lane to empty; a lost link does not', async () => {
    const l = await lane();
    l.entry.present(card(GREEN));
    l.flow.walkIn('rider', 'entry', WALK);
    await l.advance(100);
    l.lane.send({ type: 'SET_MODE', mode: 'maintenance' });
    await l.advance(0);
    expect(l.state()).toBe('normal.flowing');
    await l.advance(2000);
    expect(l.passages).toEqual(['entry:passed']);
    expect(l.state()).toBe('maintenance');
    l.lane.send({ type: 'SET_MODE', mode: 'normal' });
    await l.advance(400);
    expect(l.state()).toBe('normal.flowing');
    l.flow.walkIn('rider', 'entry', WALK);
    await l.advance(100);
    l.lane.send({ type: 'LINK', up: false, detail: 'silence' });
    await l.advance(0);
    expect(l.state()).toBe('outOfService');
  });

  it('faults and operator choices reach a lane that is holding a body, once it has gone', async () => {
    for (const mode of ['closed', 'free', 'maintenance'] as const) {
      const l = await lane();
      l.flow.walkIn('no-tap', 'entry', WALK);
      await l.advance(600);
      expect(l.state()).toBe('normal.blocking');
      l.lane.send({ type: 'SET_MODE', mode });
      await l.advance(4000);
      expect(l.state()).toBe(mode === 'free' ? 'freePassage' : mode);
    }
    const l = await lane();
    l.flow.walkIn('no-tap', 'entry', WALK);
    await l.advance(600);
    l.lane.send({ type: 'SOURCE_FAULT', source: 'sim-entry', detail: 'unplugged' });
    await l.advance(0);
    expect(l.state()).toBe('outOfService');
    // A fault recorded while flowing and only acted on once empty (a flap fault already there).
    const m = await lane();
    m.flow.walkIn('rider', 'entry', WALK);
    m.entry.present(card(GREEN));
    await m.advance(0);
    m.lane.send({ type: 'SET_MODE', mode: 'closed' });
    await m.advance(3000);
    expect(m.state()).toBe('closed');
  });

  it('a lane whose close-by time was missed closes at the flaps: the board will not crush, the crossing is an intrusion', async () => {
    const l = await lane();
    // A body the lane never heard enter (lost event): first seen at the flaps.
    l.lane.send({ type: 'BODY_AT_FLAPS', direction: 'entry', body: 200 });
    await l.advance(0);
    expect(l.alarms).toEqual(['body-stopped:at-flaps']);
    expect(l.state()).toBe('normal.blocking');
    l.lane.send({ type: 'BODY_AT_FLAPS', direction: 'exit', body: 201 });
    await l.advance(0);
    expect(l.alarms.at(-1)).toBe('body-stopped:at-flaps');
    l.lane.send({ type: 'BODY_LEFT', direction: 'entry', body: 200, way: 'intruded' });
    await l.advance(0);
    expect(l.alarms.at(-1)).toBe('intrusion');
  });

  it('while held: a second tap waits for the first decision; grants and refusals for other bodies; wrong way and deadlines', async () => {
    const j = new HeldJournal();
    const l = await lane('entry', j);
    const a = l.flow.walkIn('no-tap', 'entry', WALK);
    await l.advance(600);
    expect(l.state()).toBe('normal.blocking');
    // A rider behind taps (held journal) and a third taps right after: queued.
    const b = l.flow.walkIn('rider', 'entry', 700);
    j.hold = true;
    l.entry.present(card(GREEN));
    await l.advance(50);
    const c = l.flow.walkIn('rider', 'entry', 500);
    l.entry.present(card(UNREGISTERED));
    await l.advance(0);
    l.flow.walkIn('wrong-way', 'exit', WALK);
    await l.advance(0);
    j.release();
    await l.advance(0);
    // b granted while a (no tap) still walks ahead: AUTHORISE, but the board keeps the flaps shut.
    expect(l.count('AUTHORISE')).toBe(1);
    expect(['closing', 'closed']).toContain(l.board.flaps);
    await l.advance(300);
    expect(l.board.flaps).toBe('closed');
    expect(l.displays).toContain('not-registered');
    l.lane.send({ type: 'DECIDED', id: 999, decision: { grant: false, reason: 'lane-busy', direction: 'entry' } as never, source: 'x', atMs: 0 });
    await l.advance(6000);
    expect(l.arrivals.find((x) => x.body === a.body)?.stopped).toBe(true);
    expect(l.arrivals.find((x) => x.body === c.body)?.stopped).toBe(true);
    expect(l.flow.summary().intruded).toBe(0);
    void b;
  });

  it('while flowing: a refusal with no body in the lane is shown, nothing closes; stray answers are only reported', async () => {
    const l = await lane();
    l.entry.present(card(UNREGISTERED));
    await l.advance(0);
    expect(l.displays).toEqual(['not-registered']);
    expect(l.count('FAST_CLOSE')).toBe(0);
    expect(l.state()).toBe('normal.flowing');
    l.lane.send({ type: 'DECIDED', id: 999, decision: { grant: false, reason: 'lane-busy', direction: 'entry' } as never, source: 'x', atMs: 0 });
    l.entry.cardFault('tap-again');
    await l.advance(0);
    expect(l.state()).toBe('normal.flowing');
  });

  it('a decision overdue for a tap with no body: refused, nothing to close', async () => {
    const j = new HeldJournal();
    const l = await lane('bidirectional', j);
    j.hold = true;
    l.entry.present(card(GREEN));
    l.entry.present(card(GREEN2));
    await l.advance(1000);
    expect(l.alarms).toEqual(['decision-timeout']);
    expect(l.count('FAST_CLOSE')).toBe(0);
    expect(l.state()).toBe('normal.flowing');
    l.flow.walkIn('no-tap', 'entry', 600);
    await l.advance(1800);
    expect(l.state()).toBe('normal.blocking');
    await l.advance(1000);
    expect(l.alarms.filter((a) => a === 'decision-timeout')).toHaveLength(2);
    j.release();
    await l.advance(5000);
  });

  it('stale list with the refuse policy: a tap is refused list-too-old and its body stopped', async () => {
    const l = await lane();
    l.lane.send({ type: 'LIST_STATE', stale: true, action: 'refuse' });
    const w = l.flow.walkIn('rider', 'entry', WALK);
    await l.advance(200);
    l.entry.present(card(GREEN));
    await l.advance(800);
    expect(l.displays).toEqual(['list-too-old']);
    stoppedInTime(l, w.body);
  });
});

describe('normally-open lane: faults act at once, flowing or holding a body', () => {
  const faults = [
    { type: 'SOURCE_FAULT', source: 'sim-entry', detail: 'unplugged' },
    { type: 'FAULT', code: 0x0201 },
    { type: 'STATUS', flaps: 'closed', mode: 'normal', faultCode: 0x0101, fireAlarm: false },
    { type: 'LIST_STATE', stale: true, action: 'out-of-service' },
    { type: 'LINK', up: false, detail: 'silence' },
  ] as const;
  for (const fault of faults) {
    it(`${fault.type}: out of service, flaps locked`, async () => {
      for (const holding of [false, true]) {
        const l = await lane();
        l.flow.walkIn('no-tap', 'entry', WALK);
        await l.advance(holding ? 600 : 300);
        expect(l.state()).toBe(holding ? 'normal.blocking' : 'normal.flowing');
        l.lane.send(fault);
        await l.advance(0);
        expect(l.state()).toBe('outOfService');
        expect(l.commands.at(-3)).toEqual({ type: 'SET_MODE', mode: 'locked' });
      }
    });
  }

  it('taps and card faults while a decision is under way, flowing or holding: decided in turn', async () => {
    const j = new HeldJournal();
    const l = await lane('bidirectional', j);
    j.hold = true;
    l.flow.walkIn('rider', 'entry', 600);
    l.entry.present(card(GREEN));
    l.entry.cardFault('tap-again');
    await l.advance(0);
    j.release();
    await l.advance(0);
    expect(l.displays).toEqual(['ok', 'tap-again']);
    // Held: a no-tap body stopped, then a tap under way, a card fault behind it, and one with none under way.
    const m = await lane('bidirectional', j);
    m.flow.walkIn('no-tap', 'entry', WALK);
    await m.advance(600);
    expect(m.state()).toBe('normal.blocking');
    j.hold = true;
    m.entry.present(card(GREEN2));
    m.entry.cardFault('tap-again');
    await m.advance(1000);
    expect(m.alarms).toContain('decision-timeout');
    j.release();
    await m.advance(0);
    m.entry.cardFault('tap-again');
    await m.advance(0);
    m.lane.send({ type: 'LIST_STATE', stale: true, action: 'refuse' });
    m.entry.present(card(GREEN));
    await m.advance(0);
    expect(m.displays.slice(-2)).toEqual(['tap-again', 'list-too-old']);
    expect(m.state()).toBe('normal.blocking');
  });
});

afterAll(() => {
  // Every transition of the normally-open states, and the edge into them, was taken above.
  const all: { t: unknown; name: string }[] = [];
  const isOpen = (n: AnyStateNode) => NORMALLY_OPEN_STATES.includes(n.key);
  const walk = (node: AnyStateNode) => {
    for (const [ev, ts] of node.transitions)
      ts.forEach((t, i) => (isOpen(node) || (t.target ?? []).some(isOpen)) && all.push({ t, name: `${node.id} --${ev}[${i}]` }));
    (node.always ?? []).forEach((t, i) => (isOpen(node) || (t.target ?? []).some(isOpen)) && all.push({ t, name: `${node.id} --always[${i}]` }));
    for (const child of Object.values(node.states)) walk(child as AnyStateNode);
  };
  walk(gateMachine.root);
  expect(all.length).toBeGreaterThan(20);
  const missing = all.filter((x) => !taken.has(x.t)).map((x) => x.name);
  expect(missing, `normally-open transitions never taken:\n${missing.join('\n')}`).toEqual([]);
});
