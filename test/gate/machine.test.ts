// Every state and transition of the gate machine, on virtual time. The last test checks that every
// transition defined in the machine was taken by some test here (observed via XState inspection).
import { afterAll, describe, expect, it } from 'vitest';
import type { AnyStateNode, InspectionEvent } from 'xstate';
import { gateMachine } from '../../firmware/lane/gate-machine.js';
import { NORMALLY_OPEN_STATES } from '../../firmware/lane/normally-open.js';
import { MemoryJournal, type Journal } from '../../firmware/journal/journal.js';
import type { BarrierCommand } from '../../protocol/barrier.js';
import type { GateEvent, LaneMode, OperatorMode } from '../../firmware/lane/gate-machine.js';
import { laneHarness, type LaneHarness } from '../support/lane-harness.js';
import { ControlledJournal } from '../support/controlled-journal.js';

const taken = new Set<unknown>();
const inspect = (e: InspectionEvent) => {
  if (e.type === '@xstate.microstep') for (const t of (e as { _transitions: unknown[] })._transitions) taken.add(t);
};

const CARD = '3104100012300000001';
const CARD2 = '3104100012300000002';
const card = (n = CARD) => ({ kind: 'card' as const, cardNumber: n });

async function lane(overrides: Record<string, unknown> = {}, journal: Journal = new MemoryJournal()): Promise<LaneHarness> {
  const h = await laneHarness(overrides, { inspect, journal });
  h.register(`card:${CARD}`, 'green');
  h.register(`card:${CARD2}`, 'green');
  return h;
}

const opens = (h: LaneHarness) => h.commands.filter((c): c is Extract<BarrierCommand, { type: 'OPEN' }> => c.type === 'OPEN' && c.passages > 0).length;
const alarms = (h: LaneHarness) => {
  const out: string[] = [];
  h.lane.on('alarm', (e) => out.push(e.alarm.alarm));
  return out;
};
const decisions = (h: LaneHarness) => {
  const out: string[] = [];
  h.lane.on('decision', (e) => out.push(`${e.decision.grant ? 'grant' : 'refuse'}:${e.decision.reason}`));
  return out;
};

async function grantAndWalk(h: LaneHarness, side: 'entry' | 'exit' = 'entry', n = CARD) {
  (side === 'entry' ? h.entry : h.exit).present(card(n));
  await h.advance(0);
  expect(h.state()).toBe('normal.granted');
  await h.advance(300);
  h.board.walkThrough(side);
  await h.advance(0);
}

describe('gate machine: start-up and modes', () => {
  it('starts out of service until the barrier link is up, then serves', async () => {
    const h = await lane();
    expect(h.state()).toBe('normal.ready');
    const modes: string[] = [];
    h.lane.on('mode', (e) => modes.push(`${e.from}->${e.to}`));
    h.lane.send({ type: 'LINK', up: false, detail: 'silence 500 ms' });
    await h.advance(0);
    expect(h.state()).toBe('outOfService');
    expect(h.lane.view().faults['barrier-link']).toContain('silence');
    h.entry.present(card());
    await h.advance(0);
    expect(opens(h)).toBe(0);
    h.lane.send({ type: 'LINK', up: true });
    await h.advance(0);
    expect(h.state()).toBe('normal.ready');
    expect(modes).toEqual(['normal->outOfService', 'outOfService->normal']);
  });

  it('free passage: flaps open for all, still journaled, never refused', async () => {
    const j = new ControlledJournal();
    const h = await lane({}, j);
    const passages: string[] = [];
    h.lane.on('passage', (e) => passages.push(e.outcome));
    h.lane.send({ type: 'SET_MODE', mode: 'free' });
    await h.advance(0);
    expect(h.state()).toBe('freePassage');
    expect(h.commands).toContainEqual({ type: 'SET_MODE', mode: 'free' });
    h.entry.present({ kind: 'card', cardNumber: '3104999999999999999' });
    await h.advance(0);
    expect(j.decisions().at(-1)).toMatchObject({ grant: true, reason: 'ok-free-passage' });
    h.board.walkThrough('entry');
    await h.advance(0);
    expect(passages).toEqual(['passed']);
    h.lane.send({ type: 'SET_MODE', mode: 'normal' });
    await h.advance(0);
    expect(h.state()).toBe('normal.ready');
  });

  it('maintenance and station closed refuse with their reasons, and record it', async () => {
    const j = new ControlledJournal();
    const h = await lane({}, j);
    h.lane.send({ type: 'SET_MODE', mode: 'maintenance' });
    await h.advance(0);
    expect(h.state()).toBe('maintenance');
    h.entry.present(card());
    await h.advance(0);
    expect(j.decisions().at(-1)).toMatchObject({ grant: false, reason: 'out-of-service' });
    h.lane.send({ type: 'SET_MODE', mode: 'closed' });
    await h.advance(0);
    expect(h.state()).toBe('closed');
    h.entry.present(card());
    await h.advance(0);
    expect(j.decisions().at(-1)).toMatchObject({ grant: false, reason: 'station-closed' });
    expect(opens(h)).toBe(0);
    h.lane.send({ type: 'SET_MODE', mode: 'normal' });
    await h.advance(0);
    expect(h.state()).toBe('normal.ready');
  });

  it('a reader fault takes the lane out of service and its recovery brings it back; card faults do not', async () => {
    const h = await lane();
    const a = alarms(h);
    h.entry.cardFault('tap-again');
    await h.advance(0);
    expect(h.state()).toBe('normal.denied');
    h.entry.fault('reader unplugged');
    await h.advance(0);
    expect(h.state()).toBe('outOfService');
    expect(a).toContain('reader-fault');
    h.entry.cardFault('tap-again');
    await h.advance(0);
    expect(h.state()).toBe('outOfService');
    h.entry.recover();
    await h.advance(0);
    expect(h.state()).toBe('normal.ready');
  });

  it('a reader fault during an open passage waits for the passage to finish', async () => {
    const h = await lane();
    h.entry.present(card());
    await h.advance(0);
    h.exit.fault('camera frozen');
    await h.advance(0);
    expect(h.state()).toBe('normal.granted');
    await h.advance(300);
    h.board.walkThrough('entry');
    await h.advance(1000);
    expect(h.state()).toBe('outOfService');
  });

  it('a barrier fault puts the lane out of service until the board reports no fault', async () => {
    const h = await lane();
    h.board.setFault(7);
    await h.advance(0);
    expect(h.state()).toBe('outOfService');
    h.board.setFault(0);
    await h.advance(0);
    expect(h.state()).toBe('normal.ready');
  });

  it('stale lists: out-of-service policy, and refuse policy', async () => {
    const j = new ControlledJournal();
    const h = await lane({}, j);
    h.lane.send({ type: 'LIST_STATE', stale: true, action: 'out-of-service' });
    await h.advance(0);
    expect(h.state()).toBe('outOfService');
    h.lane.send({ type: 'LIST_STATE', stale: true, action: 'refuse' });
    await h.advance(0);
    expect(h.state()).toBe('normal.ready');
    h.entry.present(card());
    await h.advance(0);
    expect(h.state()).toBe('normal.denied');
    expect(h.lane.view().display).toBe('list-too-old');
    h.entry.present(card());
    await h.advance(0);
    expect(h.state()).toBe('normal.denied');
    expect(j.decisions().map((d) => d.reason)).toEqual(['list-too-old', 'list-too-old']);
    expect(opens(h)).toBe(0);
    h.lane.send({ type: 'LIST_STATE', stale: false, action: 'refuse' });
    await h.advance(2000);
    h.entry.present(card());
    await h.advance(0);
    expect(h.state()).toBe('normal.granted');
  });
});

describe('gate machine: passage cycle', () => {
  it('ready → verifying → granted → closing → ready, journal before OPEN', async () => {
    const j = new ControlledJournal();
    j.mode = 'hold';
    const h = await lane({}, j);
    const passages: string[] = [];
    h.lane.on('passage', (e) => passages.push(e.outcome));
    h.entry.present(card());
    await h.advance(0);
    expect(h.state()).toBe('normal.verifying');
    expect(opens(h)).toBe(0); // not durable yet: no OPEN
    j.release();
    await h.advance(0);
    expect(h.state()).toBe('normal.granted');
    expect(opens(h)).toBe(1);
    await h.advance(300);
    h.board.walkThrough('entry');
    await h.advance(0);
    expect(h.state()).toBe('normal.closing');
    expect(h.commands.at(-1)).toEqual({ type: 'CLOSE' });
    h.lane.send({ type: 'STATUS', flaps: 'closed', mode: 'normal', faultCode: 0, fireAlarm: false }); // status resync says closed
    await h.advance(0);
    expect(h.state()).toBe('normal.ready');
    await h.advance(500);
    expect(passages).toEqual(['passed']);
  });

  it('refusal shows its reason for the configured time, then ready', async () => {
    const h = await lane({ timeouts: { deniedDisplayMs: 900 } });
    h.entry.present({ kind: 'card', cardNumber: '3104000000000000009' });
    await h.advance(0);
    expect(h.state()).toBe('normal.denied');
    expect(h.lane.view().display).toBe('not-registered');
    expect(h.commands).toContainEqual({ type: 'DISPLAY', textId: 10 });
    await h.advance(899);
    expect(h.state()).toBe('normal.denied');
    await h.advance(1);
    expect(h.state()).toBe('normal.ready');
  });

  it('a new tap while the refusal shows is decided at once; a card fault there shows tap again', async () => {
    const h = await lane();
    h.entry.present({ kind: 'card', cardNumber: '3104000000000000009' });
    await h.advance(0);
    h.entry.cardFault('tap-again');
    await h.advance(0);
    expect(h.state()).toBe('normal.denied');
    expect(h.lane.view().display).toBe('tap-again');
    h.entry.present(card());
    await h.advance(0);
    expect(h.state()).toBe('normal.granted');
  });

  it('passage timeout: nobody walked through, close and log not passed', async () => {
    const h = await lane({ timeouts: { passageMs: 5000 } });
    const passages: string[] = [];
    h.lane.on('passage', (e) => passages.push(e.outcome));
    const a = alarms(h);
    h.entry.present(card());
    await h.advance(4999);
    expect(h.state()).toBe('normal.granted');
    await h.advance(1);
    expect(h.state()).toBe('normal.closing');
    expect(passages).toEqual(['not-passed']);
    expect(a).toContain('not-passed');
  });

  it('tailgating and intrusion raise alarms; an unexpected passage too', async () => {
    const h = await lane();
    const a = alarms(h);
    h.entry.present(card());
    await h.advance(300);
    h.board.walkThrough('entry', { tailgater: true });
    await h.advance(1000);
    h.board.walkThrough('exit'); // flaps closed, nothing authorised: wrong way / intrusion
    await h.advance(0);
    h.lane.send({ type: 'PASSED', direction: 'entry' });
    h.lane.send({ type: 'POWER', state: 'battery' });
    await h.advance(0);
    expect(a).toEqual(expect.arrayContaining(['tailgating', 'intrusion', 'unexpected-passage', 'power']));
    expect(h.commands).toContainEqual({ type: 'INDICATE', indicator: 'red-cross', buzzer: 'alarm' });
  });

  it('obstruction while closing: reopen without authorising, hold, close again — never crush', async () => {
    const h = await lane({ timeouts: { obstructionHoldMs: 1000 } });
    const a = alarms(h);
    h.entry.present(card());
    await h.advance(300);
    h.board.obstructed = true;
    h.board.walkThrough('entry');
    await h.advance(0);
    expect(h.state()).toBe('normal.obstructed');
    expect(h.commands).toContainEqual({ type: 'OPEN', direction: 'entry', passages: 0 });
    expect(a).toContain('obstruction');
    h.lane.send({ type: 'OBSTRUCTION' }); // repeated report while held open: alarm only
    h.entry.present(card(CARD2)); // the next rider taps while obstructed: queued
    h.entry.cardFault('tap-again');
    await h.advance(0);
    h.board.obstructed = false;
    await h.advance(1000);
    expect(h.state()).toBe('normal.closing');
    await h.advance(500);
    expect(h.state()).toBe('normal.granted'); // the queued rider is served
    expect(opens(h)).toBe(2);
    expect(h.board.counts.safetyReopens).toBe(1);
  });

  it('flaps that never close: out of service (flap stuck)', async () => {
    const h = await lane({ timeouts: { closingMs: 2000 } });
    const a = alarms(h);
    h.entry.present(card());
    await h.advance(300);
    h.board.mechanics.closeMs = 10_000;
    h.board.walkThrough('entry');
    await h.advance(0);
    // Intermediate reports while closing change nothing.
    h.lane.send({ type: 'FLAPS', position: 'closing' });
    h.lane.send({ type: 'STATUS', flaps: 'closing', mode: 'normal', faultCode: 0, fireAlarm: false });
    await h.advance(1999);
    expect(h.state()).toBe('normal.closing');
    await h.advance(1);
    expect(h.state()).toBe('outOfService');
    expect(a).toContain('flap-stuck');
  });
});

describe('gate machine: credentials that arrive while busy', () => {
  it('never double-opens and never loses a tap silently', async () => {
    const j = new ControlledJournal();
    j.mode = 'hold';
    const h = await lane({}, j);
    const d = decisions(h);
    h.entry.present(card());
    await h.advance(0);
    h.entry.present(card(CARD2)); // during verifying
    h.entry.cardFault('tap-again');
    await h.advance(0);
    j.release();
    await h.advance(0);
    expect(h.state()).toBe('normal.granted');
    j.mode = 'instant';
    h.entry.present(card(CARD2)); // during granted
    h.entry.cardFault('tap-again');
    await h.advance(0);
    expect(opens(h)).toBe(1);
    expect(d.filter((x) => x === 'refuse:lane-busy')).toHaveLength(2);
    await h.advance(300);
    h.board.walkThrough('entry');
    await h.advance(0);
    // during closing: the newest tap is kept and served next; an older one is refused as busy
    h.entry.present({ kind: 'card', cardNumber: '3104000000000000009' });
    h.entry.present(card(CARD2));
    h.entry.cardFault('tap-again');
    await h.advance(0);
    expect(d.filter((x) => x === 'refuse:lane-busy')).toHaveLength(3);
    await h.advance(500);
    expect(h.state()).toBe('normal.granted');
    expect(opens(h)).toBe(2);
  });

  it('a queued tap is dropped (and recorded) when the link goes down while closing', async () => {
    const j = new ControlledJournal();
    const h = await lane({}, j);
    await grantAndWalk(h);
    h.entry.present(card(CARD2));
    await h.advance(0);
    h.lane.send({ type: 'LINK', up: false });
    await h.advance(0);
    expect(h.state()).toBe('outOfService');
    expect(j.decisions().at(-1)).toMatchObject({ grant: false, reason: 'out-of-service' });
  });

  it('link down while obstructed, and while granted', async () => {
    const h = await lane();
    h.entry.present(card());
    await h.advance(300);
    h.board.obstructed = true;
    h.board.walkThrough('entry');
    await h.advance(0);
    expect(h.state()).toBe('normal.obstructed');
    h.lane.send({ type: 'LINK', up: false });
    await h.advance(0);
    expect(h.state()).toBe('outOfService');
    h.board.obstructed = false;
    h.lane.send({ type: 'LINK', up: true });
    await h.advance(2000);
    h.entry.present(card(CARD2));
    await h.advance(0);
    expect(h.state()).toBe('normal.granted');
    const passages: string[] = [];
    h.lane.on('passage', (e) => passages.push(e.outcome));
    h.lane.send({ type: 'LINK', up: false });
    await h.advance(0);
    expect(h.state()).toBe('outOfService');
    expect(passages).toEqual(['not-passed']);
    expect(h.commands.at(-1)).toEqual({ type: 'INDICATE', indicator: 'red-cross', buzzer: 'off' });
    h.lane.send({ type: 'LINK', up: true });
    await h.advance(0);
    expect(h.state()).toBe('normal.ready');
  });

  it('an OPEN the board never acknowledged: not passed, lane re-routed', async () => {
    const h = await lane();
    const a = alarms(h);
    h.entry.present(card());
    await h.advance(0);
    h.lane.send({ type: 'COMMAND_FAILED', command: 'OPEN', detail: 'no ack after 3 tries' });
    await h.advance(0);
    expect(a).toContain('open-failed');
    h.lane.send({ type: 'COMMAND_FAILED', command: 'CLOSE', detail: 'no ack' });
    await h.advance(0);
    expect(a).toContain('barrier-command-failed');
  });
});

describe('gate machine: journal trouble', () => {
  it('a decision that never becomes durable is refused after the decision timeout; its late answer is still reported', async () => {
    const j = new ControlledJournal();
    j.mode = 'hold';
    const h = await lane({ timeouts: { decisionMs: 500 } }, j);
    const d = decisions(h);
    h.entry.present(card());
    await h.advance(500);
    expect(h.state()).toBe('normal.denied');
    expect(h.lane.view().display).toBe('journal-unavailable');
    h.entry.present(card(CARD2));
    await h.advance(0);
    expect(h.state()).toBe('normal.verifying');
    j.release(); // both answers arrive; only the current one counts
    await h.advance(0);
    expect(h.state()).toBe('normal.granted');
    expect(opens(h)).toBe(1);
    expect(d).toEqual(['grant:ok', 'grant:ok']);
  });

  it('a failing journal refuses entries but lets exits out', async () => {
    const j = new ControlledJournal();
    j.mode = 'fail';
    const h = await lane({}, j);
    h.entry.present(card());
    await h.advance(0);
    expect(h.state()).toBe('normal.denied');
    expect(h.lane.view().display).toBe('journal-unavailable');
    await h.advance(2000);
    h.exit.present(card());
    await h.advance(0);
    expect(h.state()).toBe('normal.granted');
  });
});

describe('gate machine: emergency', () => {
  for (const where of ['ready', 'verifying', 'granted'] as const) {
    it(`fire alarm while ${where}: flaps open, credentials ignored, latched until reset`, async () => {
      const j = new ControlledJournal();
      if (where === 'verifying') j.mode = 'hold';
      const h = await lane({}, j);
      if (where !== 'ready') {
        h.entry.present(card());
        await h.advance(0);
        expect(h.state()).toBe(`normal.${where}`);
      }
      h.board.setFireAlarm(true);
      await h.advance(0);
      expect(h.state()).toBe('emergency');
      expect(h.commands).toContainEqual({ type: 'SET_MODE', mode: 'emergency' });
      j.release();
      await h.advance(1000);
      h.entry.present(card(CARD2));
      await h.advance(0);
      expect(h.state()).toBe('emergency');
      expect(h.board.flaps).toBe('open');
      h.lane.send({ type: 'RESET_EMERGENCY' }); // alarm input still on: refused
      await h.advance(0);
      expect(h.state()).toBe('emergency');
      h.board.setFireAlarm(false);
      await h.advance(60_000);
      expect(h.state()).toBe('emergency'); // latched
      h.lane.send({ type: 'RESET_EMERGENCY' });
      await h.advance(0);
      expect(h.state()).toBe('normal.ready');
    });
  }

  it('emergency holds through link flaps, status reports, walkers; status with fire input enters it too', async () => {
    const h = await lane();
    h.board.fireAlarm = true;
    h.lane.send({ type: 'STATUS', flaps: 'closed', mode: 'normal', faultCode: 0, fireAlarm: true });
    await h.advance(0);
    expect(h.state()).toBe('emergency');
    const before = h.commands.length;
    h.lane.send({ type: 'STATUS', flaps: 'closed', mode: 'normal', faultCode: 0, fireAlarm: true });
    h.lane.send({ type: 'LINK', up: false });
    h.lane.send({ type: 'LINK', up: true });
    h.lane.send({ type: 'PASSED', direction: 'entry' });
    h.lane.send({ type: 'INTRUSION', direction: 'exit' });
    await h.advance(0);
    expect(h.state()).toBe('emergency');
    expect(h.commands.slice(before).filter((c) => c.type === 'SET_MODE')).toEqual([
      { type: 'SET_MODE', mode: 'emergency' },
      { type: 'SET_MODE', mode: 'emergency' },
      { type: 'SET_MODE', mode: 'emergency' },
    ]);
  });

  it('the emergency button latches too', async () => {
    const h = await lane();
    h.lane.send({ type: 'EMERGENCY_BUTTON', active: true });
    await h.advance(0);
    expect(h.state()).toBe('emergency');
    h.lane.send({ type: 'EMERGENCY_BUTTON', active: false });
    h.lane.send({ type: 'RESET_EMERGENCY' });
    await h.advance(0);
    expect(h.state()).toBe('normal.ready');
  });
});

afterAll(() => {
  // Transition coverage: every transition the machine defines was taken above. The normally-open cycle's
  // (its states, and the edge into them) are covered by test/gate/normally-open.test.ts.
  const all: { t: unknown; name: string }[] = [];
  const open = (t: { target?: readonly AnyStateNode[] }) => (t.target ?? []).some((s) => NORMALLY_OPEN_STATES.includes(s.key));
  const walk = (node: AnyStateNode) => {
    if (NORMALLY_OPEN_STATES.includes(node.key)) return;
    for (const [ev, ts] of node.transitions) ts.forEach((t, i) => open(t) || all.push({ t, name: `${node.id} --${ev}[${i}]--> ${(t.target ?? []).map((s: AnyStateNode) => s.id).join(',') || '(self)'}` }));
    (node.always ?? []).forEach((t, i) => open(t) || all.push({ t, name: `${node.id} --always[${i}]--> ${(t.target ?? []).map((s: AnyStateNode) => s.id).join(',')}` }));
    for (const child of Object.values(node.states)) walk(child as AnyStateNode);
  };
  walk(gateMachine.root);
  const missing = all.filter((x) => !taken.has(x.t)).map((x) => x.name);
  expect(missing, `transitions never taken:\n${missing.join('\n')}`).toEqual([]);
});

describe('lane: list age watchdog', () => {
  it('a list older than the limit applies the configured policy, and a fresh one lifts it', async () => {
    const h = await laneHarness({ policy: { listMaxAgeSeconds: 3600, staleListAction: 'out-of-service' } });
    expect(h.state()).toBe('normal.ready');
    await h.advance(3600_000 + 360_000);
    expect(h.state()).toBe('outOfService');
    expect(h.lane.view().faults['list-too-old']).toBeDefined();
    h.lists.publishedAtMs = h.clock.now();
    await h.advance(360_000);
    expect(h.state()).toBe('normal.ready');
    await h.lane.stop();
  });
});

describe('gate machine: emergency while a tap waits', () => {
  it('a tap queued while closing is refused and journaled when the fire alarm comes', async () => {
    const h = await laneHarness({}, { inspect });
    h.register(`card:${CARD}`, 'green');
    h.register(`card:${CARD2}`, 'green');
    const d = decisions(h);
    await grantAndWalk(h);
    h.entry.present(card(CARD2));
    await h.advance(0);
    h.board.setFireAlarm(true);
    await h.advance(0);
    expect(h.state()).toBe('emergency');
    expect(d).toEqual(['grant:ok', 'refuse:out-of-service']);
  });
});

// Every cause, from every state it can act in: the chart's transitions, one test each (tables below).
const UNREGISTERED = '3104000000000000009';
type Settled = 'ready' | 'denied' | 'freePassage' | 'maintenance' | 'closed';
const SETTLED: Settled[] = ['ready', 'denied', 'freePassage', 'maintenance', 'closed'];
const STATE_NAME: Record<Settled, string> = { ready: 'normal.ready', denied: 'normal.denied', freePassage: 'freePassage', maintenance: 'maintenance', closed: 'closed' };
const MODE_OF: Record<Settled, LaneMode> = { ready: 'normal', denied: 'normal', freePassage: 'freePassage', maintenance: 'maintenance', closed: 'closed' };
const OPERATOR: Record<Exclude<LaneMode, 'emergency' | 'outOfService'>, OperatorMode> = { normal: 'normal', freePassage: 'free', maintenance: 'maintenance', closed: 'closed' };
const IN_SERVICE = Object.keys(OPERATOR) as (keyof typeof OPERATOR)[];

async function settledIn(where: Settled, journal?: Journal): Promise<LaneHarness> {
  const h = await lane({}, journal);
  if (where === 'denied') h.entry.present({ kind: 'card', cardNumber: UNREGISTERED });
  else if (where !== 'ready') h.lane.send({ type: 'SET_MODE', mode: OPERATOR[MODE_OF[where] as keyof typeof OPERATOR] });
  await h.advance(0);
  expect(h.state()).toBe(STATE_NAME[where]);
  return h;
}
const modeChanges = (h: LaneHarness) => {
  const out: string[] = [];
  h.lane.on('mode', (e) => out.push(`${e.from}->${e.to}`));
  return out;
};
const boardModes = (h: LaneHarness, from: number) => h.commands.slice(from).filter((c) => c.type === 'SET_MODE');

/** A fault, and the event that clears it. */
const FAULTS: { cause: string; raise: GateEvent; clear?: GateEvent; key: string }[] = [
  { cause: 'LINK down', raise: { type: 'LINK', up: false, detail: 'silence 500 ms' }, clear: { type: 'LINK', up: true }, key: 'barrier-link' },
  { cause: 'SOURCE_FAULT', raise: { type: 'SOURCE_FAULT', source: 'sim-entry', detail: 'reader unplugged' }, clear: { type: 'SOURCE_OK', source: 'sim-entry' }, key: 'source:sim-entry' },
  { cause: 'FAULT', raise: { type: 'FAULT', code: 9 }, key: 'barrier-fault' },
  {
    cause: 'STATUS with a fault code',
    raise: { type: 'STATUS', flaps: 'closed', mode: 'normal', faultCode: 9, fireAlarm: false },
    clear: { type: 'STATUS', flaps: 'closed', mode: 'locked', faultCode: 0, fireAlarm: false },
    key: 'barrier-fault',
  },
  { cause: 'LIST_STATE too old', raise: { type: 'LIST_STATE', stale: true, action: 'out-of-service' }, clear: { type: 'LIST_STATE', stale: false, action: 'out-of-service' }, key: 'list-too-old' },
];

describe('gate machine: a fault takes a serving lane out of service at once', () => {
  for (const where of SETTLED) {
    for (const f of FAULTS) {
      it(`${f.cause} in ${where}`, async () => {
        const h = await settledIn(where);
        const m = modeChanges(h);
        const before = h.commands.length;
        h.lane.send(f.raise);
        await h.advance(0);
        expect(h.state()).toBe('outOfService');
        expect(h.lane.view().faults[f.key]).toBeDefined();
        expect(m).toEqual([`${MODE_OF[where]}->outOfService`]);
        expect(boardModes(h, before)).toEqual([{ type: 'SET_MODE', mode: 'locked' }]);
      });
    }
  }
});

describe('gate machine: the event that clears the last fault takes the lane back to the operator\'s mode', () => {
  for (const mode of IN_SERVICE) {
    for (const f of FAULTS.filter((x) => x.clear)) {
      it(`${f.clear!.type} back to ${mode}`, async () => {
        const h = await lane();
        h.lane.send({ type: 'SET_MODE', mode: OPERATOR[mode] });
        h.lane.send(f.raise);
        await h.advance(0);
        expect(h.state()).toBe('outOfService');
        const m = modeChanges(h);
        h.lane.send(f.clear!);
        await h.advance(0);
        expect(h.lane.view().mode).toBe(mode);
        expect(m).toEqual([`outOfService->${mode}`]);
      });
    }
  }

  it('LINK up while another fault remains: still out of service, the board told its mode again', async () => {
    const h = await lane();
    h.entry.fault('reader unplugged');
    h.lane.send({ type: 'LINK', up: false });
    await h.advance(0);
    const before = h.commands.length;
    h.lane.send({ type: 'LINK', up: true });
    await h.advance(0);
    expect(h.state()).toBe('outOfService');
    expect(boardModes(h, before)).toEqual([{ type: 'SET_MODE', mode: 'locked' }]);
    h.entry.recover();
    await h.advance(0);
    expect(h.state()).toBe('normal.ready');
  });
});

describe('gate machine: SET_MODE takes a serving lane to the operator\'s mode', () => {
  for (const where of SETTLED) {
    for (const mode of IN_SERVICE.filter((m) => m !== MODE_OF[where])) {
      it(`${where} → ${mode}`, async () => {
        const h = await settledIn(where);
        const m = modeChanges(h);
        h.lane.send({ type: 'SET_MODE', mode: OPERATOR[mode] });
        await h.advance(0);
        expect(h.lane.view().mode).toBe(mode);
        expect(m).toEqual([`${MODE_OF[where]}->${mode}`]);
      });
    }
  }

  it('facts that change nothing: the same mode again, a link or reader that was fine', async () => {
    const h = await lane();
    const m = modeChanges(h);
    const before = h.commands.length;
    h.lane.send({ type: 'SET_MODE', mode: 'normal' });
    h.lane.send({ type: 'LINK', up: true });
    h.entry.recover();
    await h.advance(0);
    expect(h.state()).toBe('normal.ready');
    expect(m).toEqual([]);
    expect(h.commands.length).toBe(before);
  });
});

/** What can change while a passage is under way, applied when the passage settles. */
const PENDING: { change: string; to: LaneMode; send: (h: LaneHarness) => void }[] = [
  { change: 'a reader fault', to: 'outOfService', send: (h) => h.entry.fault('reader unplugged') },
  { change: 'SET_MODE closed', to: 'closed', send: (h) => h.lane.send({ type: 'SET_MODE', mode: 'closed' }) },
  { change: 'SET_MODE maintenance', to: 'maintenance', send: (h) => h.lane.send({ type: 'SET_MODE', mode: 'maintenance' }) },
  { change: 'SET_MODE free', to: 'freePassage', send: (h) => h.lane.send({ type: 'SET_MODE', mode: 'free' }) },
];

describe('gate machine: a change that arrives during a passage applies when it settles', () => {
  for (const p of PENDING) {
    it(`${p.change} while closing: the flaps close, ready, then ${p.to}`, async () => {
      const h = await lane();
      await grantAndWalk(h);
      expect(h.state()).toBe('normal.closing');
      p.send(h);
      await h.advance(0);
      expect(h.state()).toBe('normal.closing');
      const m = modeChanges(h);
      await h.advance(1000);
      expect(h.lane.view().mode).toBe(p.to);
      expect(m).toEqual([`normal->${p.to}`]);
      expect(h.commands).toContainEqual({ type: 'DISPLAY', textId: 0 }); // ready was shown on the way
    });

    it(`${p.change} while deciding a refusal: the refusal is shown, then ${p.to}`, async () => {
      const j = new ControlledJournal();
      j.mode = 'hold';
      const h = await lane({}, j);
      h.entry.present({ kind: 'card', cardNumber: UNREGISTERED });
      await h.advance(0);
      expect(h.state()).toBe('normal.verifying');
      p.send(h);
      await h.advance(0);
      expect(h.state()).toBe('normal.verifying');
      const m = modeChanges(h);
      j.release();
      await h.advance(0);
      expect(h.lane.view().mode).toBe(p.to);
      expect(m).toEqual([`normal->${p.to}`]);
      expect(h.commands).toContainEqual({ type: 'INDICATE', indicator: 'red-cross', buzzer: 'short' });
    });

    it(`${p.change}, then the board never acknowledges OPEN: ${p.to}`, async () => {
      const h = await lane();
      const a = alarms(h);
      h.entry.present(card());
      await h.advance(0);
      expect(h.state()).toBe('normal.granted');
      p.send(h);
      await h.advance(0);
      expect(h.state()).toBe('normal.granted');
      h.lane.send({ type: 'COMMAND_FAILED', command: 'OPEN', detail: 'no ack after 3 tries' });
      await h.advance(0);
      expect(h.lane.view().mode).toBe(p.to);
      expect(a).toContain('open-failed');
    });

    it(`${p.change} during an emergency: the reset goes to ${p.to}`, async () => {
      const h = await lane();
      h.board.setFireAlarm(true);
      await h.advance(0);
      expect(h.state()).toBe('emergency');
      p.send(h);
      h.board.setFireAlarm(false);
      await h.advance(0);
      expect(h.state()).toBe('emergency');
      const m = modeChanges(h);
      h.lane.send({ type: 'RESET_EMERGENCY' });
      await h.advance(0);
      expect(h.lane.view().mode).toBe(p.to);
      expect(m).toEqual([`emergency->${p.to}`]);
    });
  }

  it('a barrier fault while deciding a grant: the passage runs, then out of service', async () => {
    const j = new ControlledJournal();
    j.mode = 'hold';
    const h = await lane({}, j);
    h.entry.present(card());
    await h.advance(0);
    h.lane.send({ type: 'FAULT', code: 9 });
    await h.advance(0);
    expect(h.state()).toBe('normal.verifying');
    j.release();
    await h.advance(0);
    expect(h.state()).toBe('normal.granted');
    await h.advance(300);
    h.board.walkThrough('entry');
    await h.advance(1000);
    expect(h.state()).toBe('outOfService');
  });

  it('the link goes down while deciding a grant: OPEN is sent, nobody passes, out of service', async () => {
    const j = new ControlledJournal();
    j.mode = 'hold';
    const h = await lane({}, j);
    const passages: string[] = [];
    h.lane.on('passage', (e) => passages.push(e.outcome));
    h.entry.present(card());
    await h.advance(0);
    h.lane.send({ type: 'LINK', up: false });
    await h.advance(0);
    expect(h.state()).toBe('normal.verifying');
    j.release();
    await h.advance(0);
    expect(h.state()).toBe('outOfService');
    expect(opens(h)).toBe(1);
    expect(passages).toEqual(['not-passed']);
  });
});

describe('gate machine: alarms carry their details', () => {
  it('typed alarms from the board, the link and the readers; the journal keeps name and one line', async () => {
    const j = new ControlledJournal();
    const h = await lane({}, j);
    const got: unknown[] = [];
    h.lane.on('alarm', (e) => got.push(e.alarm));
    h.lane.send({ type: 'COMMAND_FAILED', command: 'CLOSE', detail: 'no ack after 3 tries' });
    h.lane.send({ type: 'FAULT', code: 9 });
    h.lane.send({ type: 'INTRUSION', direction: 'exit' });
    h.lane.send({ type: 'POWER', state: 'battery' });
    h.entry.fault('reader unplugged');
    await h.advance(0);
    expect(got).toEqual([
      { alarm: 'barrier-command-failed', command: 'CLOSE', detail: 'no ack after 3 tries' },
      { alarm: 'barrier-fault', code: 9 },
      { alarm: 'intrusion', direction: 'exit' },
      { alarm: 'power', state: 'battery' },
      { alarm: 'reader-fault', source: 'sim-entry', detail: 'reader unplugged' },
    ]);
    const records = j.entries.filter((e) => e.type === 'alarm');
    expect(records.map((r) => Object.keys(r).sort().join(','))).toEqual(Array(5).fill('alarm,atMs,detail,laneId,type'));
    expect(records.map((r) => (r.type === 'alarm' ? `${r.alarm}: ${r.detail}` : ''))).toEqual([
      'barrier-command-failed: command CLOSE, no ack after 3 tries',
      'barrier-fault: code 9',
      'intrusion: direction exit',
      'power: state battery',
      'reader-fault: source sim-entry, reader unplugged',
    ]);
  });
});
