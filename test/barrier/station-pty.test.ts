// `gate sim --barrier pty`: every lane's barrier on its own real pty through the real serial driver,
// on virtual time. Same riders, same verdicts as the typed wire; 0 false accepts, 0 false rejects;
// one fire alarm from a board opens every lane until reset.
import { expect, it } from 'vitest';
import { simulateStation, type SimulatedStation } from '../../firmware/composition/simulated-station.js';

async function advance(s: SimulatedStation, ms: number): Promise<void> {
  const until = s.clock.now() + ms;
  await s.settle();
  while (s.clock.step(until)) await s.settle();
  s.clock.advanceTo(until);
  await s.settle();
}

it('a small station over ptys keeps 0 false accepts / rejects and matches the typed wire', { timeout: 60_000 }, async () => {
  const opts = { lanes: 2, passengers: 40, seed: 7 };
  const { summary: pty } = await simulateStation({ ...opts, barrier: 'pty' });
  const { summary: typed } = await simulateStation({ ...opts, barrier: 'typed' });
  expect(pty.falseAccepts).toBe(0);
  expect(pty.falseRejects).toBe(0);
  expect(pty.unanswered).toBe(0);
  expect(pty.admitted).toBeGreaterThan(0);
  expect({ admitted: pty.admitted, refused: pty.refused, byReason: pty.byReason }).toEqual({
    admitted: typed.admitted,
    refused: typed.refused,
    byReason: typed.byReason,
  });
});

it('fire alarm from one board over its pty: every lane in emergency, flaps open, latched until reset', { timeout: 60_000 }, async () => {
  await simulateStation({
    lanes: 3,
    passengers: 0,
    barrier: 'pty',
    onReady: async (s) => {
      for (const l of s.lanes) expect(l.view().state).toBe('normal.ready');
      s.fireAlarm(true);
      await advance(s, 1000);
      for (const l of s.lanes) expect(l.view().state).toBe('emergency');
      for (const b of s.boards) expect(b.flaps).toBe('open');
      s.boards[0].setFireAlarm(false);
      for (const l of s.lanes) l.send({ type: 'FIRE_ALARM', active: false });
      await advance(s, 1000);
      for (const l of s.lanes) expect(l.view().state).toBe('emergency');
      for (const b of s.boards) expect(b.flaps).toBe('open');
      for (const l of s.lanes) l.send({ type: 'RESET_EMERGENCY' });
      await advance(s, 1000);
      for (const l of s.lanes) expect(l.view().state).toBe('normal.ready');
      for (const b of s.boards) expect(b.flaps).toBe('closed');
    },
  });
});
