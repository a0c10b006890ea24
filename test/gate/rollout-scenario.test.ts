// `gate sim --scenario rollout-2022`, shortened to 18-30 May (the announcement, both advise dates, both
// enforce dates and the tampered hour are inside it) with 3 lanes, 60 riders and hourly publishes and
// polls: riders register over days through the back office's HTTP API, statuses change, the lanes sync
// lists and the schedule, and every answer on every barrier wire agrees with the scenario's own rule.
import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { register } from '../../firmware/cli/sim.js';
import { runRolloutScenario } from '../../firmware/composition/rollout-scenario.js';
import { bj } from '../../simulator/scenarios/rollout-2022.js';

const HOUR = 3600_000;

describe('gate sim --scenario rollout-2022', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
  });

  it('plays 18-30 May 2022: ground truth follows the schedule, 0 false accepts, 0 false rejects', async () => {
    const s = await runRolloutScenario({ lanes: 3, riders: 60, seed: 3, fromMs: bj(5, 18), toMs: bj(5, 31), publishEveryMs: HOUR, pollEveryMs: HOUR });
    expect(s).toMatchObject({ falseAccepts: 0, falseRejects: 0, wrongReasons: 0, unanswered: 0, ambiguous: 0, mismatches: [] });
    // Every stage was played, with what it means at the gate.
    expect(s.byStage['not-enforced'].admitted).toBeGreaterThan(0);
    expect(s.byStage.advise.admitted).toBeGreaterThan(0);
    expect(s.byStage.enforce.refused).toBeGreaterThan(0);
    expect(s.byReason['advise-register']).toBeGreaterThan(0);
    expect(s.byReason['not-enforced']).toBeGreaterThan(0);
    expect(s.byReason['not-registered']).toBeGreaterThan(0);
    // The dates: the seed's openings, the scenario's enforcement dates, day by day.
    const day = (d: string) => s.days.find((x) => x.day === d)!;
    expect(day('2022-05-18').stages).toEqual({ card: 'not-enforced', 'phone-nfc': 'not-enforced', ticket: 'not-enforced', qr: 'not-enforced' });
    expect(day('2022-05-19').stages).toMatchObject({ card: 'advise', ticket: 'advise', qr: 'not-enforced' });
    expect(day('2022-05-23').stages).toMatchObject({ card: 'advise', qr: 'advise' });
    expect(day('2022-05-26').stages).toMatchObject({ card: 'enforce', 'phone-nfc': 'enforce', ticket: 'enforce', qr: 'advise' });
    expect(day('2022-05-30').stages).toMatchObject({ card: 'enforce', qr: 'enforce' });
    expect(day('2022-05-18').advised + day('2022-05-18').refusedNotRegistered).toBe(0);
    expect(s.days.reduce((n, d) => n + d.presentations, 0)).toBe(s.presentations);
    // Riders registered over the days through the HTTP API (some at a gate, once refused); each reached an admitting lane.
    expect(s.registrations.failed).toBe(0);
    expect(s.registrations.atGate).toBeGreaterThan(0);
    expect(s.syncLatencyS.n).toBe(s.registrations.submitted);
    expect(s.syncLatencyS.p50).toBeGreaterThan(0);
    expect(s.syncLatencyS.max).toBeLessThanOrEqual(2 * HOUR / 1000);
    // Every lane synced the announced schedule (seq 2) and refused the tampered one once, with an alarm.
    for (const l of s.lanes) expect(l).toMatchObject({ scheduleSeq: 2, alarms: { 'schedule-rejected': 1 } });
    // The journals hold every advise grant with its reason.
    expect(s.journal.adviseRegister).toBe(s.byReason['advise-register']);
    expect(s.journal.decisions).toBe(s.presentations);
  }, 300_000);

  it('runs from the command line with a JSON summary; an unknown scenario fails naming the known ones', async () => {
    const out: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
    vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
    const gate = (...args: string[]) => {
      const program = new Command().exitOverride();
      register(program);
      return program.parseAsync(['node', 'gate', 'sim', ...args]);
    };
    await gate('--scenario', 'rollout-2022', '--from', '2022-05-25', '--to', '2022-05-26', '--lanes', '2', '--passengers', '20', '--poll-seconds', '1800', '--publish-seconds', '1800', '--json');
    const s = JSON.parse(out.at(-1)!);
    expect(s).toMatchObject({ scenario: 'rollout-2022', from: '2022-05-25 00:00', to: '2022-05-27 00:00', falseAccepts: 0, falseRejects: 0 });
    expect(s.days.map((d: { day: string }) => d.day)).toEqual(['2022-05-25', '2022-05-26']);
    expect(process.exitCode ?? 0).toBe(0);
    await gate('--scenario', 'rollout-2021');
    expect(out.at(-1)).toMatch(/unknown scenario "rollout-2021"; known: rollout-2022/);
    expect(process.exitCode).toBe(2);
    process.exitCode = undefined;
    await gate('--from', '2022-05-25');
    expect(out.at(-1)).toMatch(/go with --scenario/);
    expect(process.exitCode).toBe(2);
    process.exitCode = undefined;
    await gate('--scenario', 'rollout-2022', '--realtime');
    expect(out.at(-1)).toMatch(/--scenario plays its own wiring/);
    expect(process.exitCode).toBe(2);
  }, 120_000);
});
