// The simulated station and its ground-truth judge.
import { describe, expect, it } from 'vitest';
import { simulateStation } from '../../firmware/composition/simulated-station.js';
import { Random, makeRiders } from '../../simulator/population.js';
import { STATION_RULE, type PresentationResult } from '../../simulator/station.js';
import { credentialKey as keyOf } from '../../protocol/credential.js';

const granted = (r: PresentationResult) => r.observed !== 'unanswered' && r.observed.grant;
const reasonOf = (r: PresentationResult) => (r.observed === 'unanswered' ? 'unanswered' : r.observed.reason);
/** A phone emulating the card its rider registered (same card number; the lanes get no separate listing for it). */
const phoneOfCard = (r: PresentationResult) => r.credential.kind === 'phone-nfc' && r.rider.credential.kind === 'card' && r.rider.shows.length > 1;

/** The stories a station run must show, found in its results (not only in its reason counts). */
function storiesSeen(results: PresentationResult[]): Set<string> {
  const seen = new Set<string>();
  for (const r of results) {
    if (phoneOfCard(r) && granted(r)) seen.add('phone of a registered card admitted');
    if (r.rider.story === 'enters-twice' && r.attempt === 2 && r.rider.shows.length > 1 && reasonOf(r) === 'passback') seen.add('second entry on the other device refused as passback');
    if (r.rider.story === 'registers-after-refusal' && r.attempt === 1 && reasonOf(r) === 'not-registered') seen.add('refused as not registered');
    if (r.rider.story === 'registers-after-refusal' && r.attempt > 1 && granted(r)) seen.add('registered, tapped again, admitted');
  }
  return seen;
}

describe('simulated station', () => {
  for (const seed of [1, 2, 3, 7, 42]) {
    it(`seed ${seed}: every decision matches ground truth`, async () => {
      const results: PresentationResult[] = [];
      const { summary } = await simulateStation({ lanes: 4, passengers: 600, seed, onResult: (r) => results.push(r) });
      const wrong = results
        .filter((r) => r.verdict !== 'ok')
        .map((r) => `${r.verdict}: ${r.rider.story} rider, ${r.credential.kind} (registered ${r.rider.credential.kind}), attempt ${r.attempt} at ${r.direction} → ${reasonOf(r)}, expected ${r.expected.grant ? 'ok' : r.expected.reason}`);
      expect(wrong).toEqual([]);
      expect(summary.falseAccepts).toBe(0);
      expect(summary.falseRejects).toBe(0);
      expect(summary.unanswered).toBe(0);
      expect(summary.wrongReasons).toBe(0);
      expect(summary.admitted + summary.refused).toBe(summary.presentations);
      // The mix exercises every story.
      for (const r of ['ok', 'not-registered', 'status-yellow', 'status-red', 'blocked', 'passback', 'tap-again', 'qr-malformed']) expect(summary.byReason[r] ?? 0, r).toBeGreaterThan(0);
      expect([...storiesSeen(results)].sort()).toEqual([
        'phone of a registered card admitted',
        'refused as not registered',
        'registered, tapped again, admitted',
        'second entry on the other device refused as passback',
      ]);
    });
  }

  it('refused, registers, taps again: admitted with anti-passback on (a refused entry recorded no passback)', async () => {
    const results: PresentationResult[] = [];
    await simulateStation({ lanes: 4, passengers: 600, seed: 1, onResult: (r) => results.push(r) });
    expect(STATION_RULE.antiPassbackSeconds).toBeGreaterThan(0);
    const byRider = new Map<number, PresentationResult[]>();
    for (const r of results) if (r.rider.story === 'registers-after-refusal') byRider.set(r.rider.id, [...(byRider.get(r.rider.id) ?? []), r]);
    expect(byRider.size).toBeGreaterThanOrEqual(5);
    for (const [id, rs] of byRider) {
      expect(rs.map((r) => `${r.attempt} ${r.direction} ${reasonOf(r)} ${r.verdict}`), `rider ${id}`).toEqual(['1 entry not-registered ok', '2 entry ok ok']);
    }
  });

  it('a phone emulating a registered card is that card: admitted on its registration, passback across phone and card', async () => {
    const results: PresentationResult[] = [];
    await simulateStation({ lanes: 4, passengers: 600, seed: 42, onResult: (r) => results.push(r) });
    const phones = results.filter(phoneOfCard);
    expect(phones.filter(granted).length).toBeGreaterThan(10);
    // The phone shows the card's application serial; nothing else is listed for it.
    for (const r of phones) if (r.credential.kind === 'phone-nfc' && r.rider.credential.kind === 'card') expect(r.credential.cardNumber).toBe(r.rider.credential.cardNumber);
    for (const r of phones) expect(r.verdict).toBe('ok');
    const crossed = results.filter((r) => r.rider.story === 'enters-twice' && r.rider.shows.length > 1 && r.attempt === 2);
    expect(crossed.length).toBeGreaterThan(0);
    for (const r of crossed) expect([r.credential.kind, reasonOf(r), r.verdict]).toEqual(['card', 'passback', 'ok']);
  });

  it('the judge holds its own rule: lanes configured to admit red at entry are caught', async () => {
    const { summary } = await simulateStation({
      lanes: 2,
      passengers: 400,
      seed: 3,
      lanePolicy: { entry: { green: true, yellow: false, red: true, unregistered: false, blocked: false } },
      judgeRule: STATION_RULE,
    });
    expect(summary.falseAccepts).toBeGreaterThan(0);
  });

  it('a scenario with its own lane policy states the same rule to the judge', async () => {
    await expect(simulateStation({ lanes: 2, passengers: 10, lanePolicy: { antiPassbackSeconds: 0 } })).rejects.toThrow(/must state the same rule to the judge/);
    const { summary } = await simulateStation({
      lanes: 2,
      passengers: 400,
      seed: 3,
      lanePolicy: { antiPassbackSeconds: 0 },
      judgeRule: { ...STATION_RULE, antiPassbackSeconds: 0 },
    });
    expect(summary).toMatchObject({ falseAccepts: 0, falseRejects: 0, unanswered: 0, wrongReasons: 0 });
    expect(summary.byReason.passback ?? 0).toBe(0);
    expect(summary.byReason.ok).toBeGreaterThan(0);
  });

  it('is deterministic for a seed', async () => {
    const a = await simulateStation({ lanes: 3, passengers: 200, seed: 9 });
    const b = await simulateStation({ lanes: 3, passengers: 200, seed: 9 });
    const strip = (s: typeof a.summary) => ({ ...s, wallSeconds: 0, decisionLatencyMs: 0 });
    expect(strip(a.summary)).toEqual(strip(b.summary));
  });

  it('the judge catches a gate that admits what it should not', async () => {
    // Sabotage the lanes: every yellow rider is registered green in the lanes' lists.
    const results: string[] = [];
    const { summary } = await simulateStation({
      lanes: 2,
      passengers: 300,
      seed: 5,
      onReady: (sim) => {
        const lists = sim.lanes[0].lists.current();
        const riders = makeRiders(300, new Random(5));
        for (const r of riders) if (r.registration === 'yellow') (lists.allowlist as unknown as { set(k: string, v: string): void }).set(keyOf(r.credential), 'green');
      },
      onResult: (r) => results.push(r.verdict),
    });
    expect(summary.falseAccepts).toBeGreaterThan(0);
    expect(results).toContain('false-accept');
  });

  it('one fire alarm opens every lane and they stay open until reset', async () => {
    const { sim } = await simulateStation({
      lanes: 4,
      passengers: 0,
      onReady: async (s) => {
        s.fireAlarm(true);
        s.clock.advanceBy(1000);
        await new Promise((r) => setImmediate(r));
        for (const l of s.lanes) expect(l.view().state).toBe('emergency');
        for (const b of s.boards) expect(b.flaps).toBe('open');
        s.boards[0].setFireAlarm(false);
        for (const l of s.lanes) l.send({ type: 'FIRE_ALARM', active: false });
        s.clock.advanceBy(1000);
        for (const l of s.lanes) expect(l.view().state).toBe('emergency');
        for (const l of s.lanes) l.send({ type: 'RESET_EMERGENCY' });
        s.clock.advanceBy(1000);
        await new Promise((r) => setImmediate(r));
        for (const l of s.lanes) expect(l.view().state).toBe('normal.ready');
      },
    });
    expect(sim.lanes).toHaveLength(4);
  });

  it('bad options get clear errors', async () => {
    await expect(simulateStation({ lanes: 0 })).rejects.toThrow(/--lanes must be 1-1024/);
    await expect(simulateStation({ barrier: 'carrier-pigeon' })).rejects.toThrow(/unknown barrier wiring .*known: typed/);
  });
});
