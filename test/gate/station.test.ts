// The simulated station and its ground-truth judge.
import { describe, expect, it } from 'vitest';
import { simulateStation } from '../../firmware/composition/simulated-station.js';
import { Random, makeRiders } from '../../simulator/population.js';
import { credentialKey as keyOf } from '../../protocol/credential.js';

describe('simulated station', () => {
  for (const seed of [1, 2, 3, 7, 42]) {
    it(`seed ${seed}: every decision matches ground truth`, async () => {
      const { summary } = await simulateStation({ lanes: 4, passengers: 600, seed });
      expect(summary.falseAccepts).toBe(0);
      expect(summary.falseRejects).toBe(0);
      expect(summary.unanswered).toBe(0);
      expect(summary.wrongReasons).toBe(0);
      expect(summary.admitted + summary.refused).toBe(summary.presentations);
      // The mix exercises every story.
      for (const r of ['ok', 'not-registered', 'status-yellow', 'blocked', 'passback', 'tap-again']) expect(summary.byReason[r] ?? 0).toBeGreaterThan(0);
    });
  }

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
    await expect(simulateStation({ lanes: 0 })).rejects.toThrow(/--lanes must be 1-64/);
    await expect(simulateStation({ barrier: 'carrier-pigeon' })).rejects.toThrow(/unknown barrier wiring .*known: typed/);
  });
});
