// `gate sim --dashboard`: the command wires the dashboard to a realtime station, prints its URL, keeps
// running while the page is open, takes manual taps to the lanes (no login: loopback only), and stops
// cleanly on Ctrl-C; without a supervisors file it refuses to listen beyond loopback.

import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { register } from '../../firmware/cli/sim.js';
import { credentialRef } from '../../protocol/credential.js';

describe('gate sim --dashboard', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
  });

  it('prints the URL, takes a manual tap to a lane, and stops on Ctrl-C with exit code 0', async () => {
    const out: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
    vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
    const program = new Command().exitOverride();
    register(program);
    // No riders: without the open dashboard the station would end at once.
    const run = program.parseAsync(['node', 'gate', 'sim', '--dashboard', '--dashboard-port', '0', '--lanes', '2', '--passengers', '0', '--quiet']);
    let ended = false;
    void run.then(
      () => (ended = true),
      () => (ended = true),
    );

    await expect.poll(() => out.find((l) => l.startsWith('Station dashboard: ')), { timeout: 15_000 }).toBeDefined();
    const url = out.find((l) => l.startsWith('Station dashboard: '))!.split(' ')[2];
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);

    const cardNumber = '3104100055500000001';
    const ref = credentialRef({ kind: 'card', cardNumber });
    const res = await fetch(`${url}api/sim/tap`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ lane: 'L01', kind: 'card', story: 'green', number: cardNumber }) });
    expect(await res.json()).toMatchObject({ ok: true, lane: 'L01', ref });
    const decided = async () => {
      const s = (await (await fetch(`${url}api/state`)).json()) as { decisions: { ref: string; grant: boolean; reason: string }[] };
      return s.decisions.find((d) => d.ref === ref);
    };
    await expect.poll(decided, { timeout: 5000 }).toMatchObject({ grant: true, reason: 'ok' });

    // Still running once station time has moved on (by the lanes' list age): it does not end while the dashboard is open.
    const stationMs = async () => ((await (await fetch(`${url}api/state`)).json()) as { lanes: { listAgeMs: number }[] }).lanes[0].listAgeMs;
    const t0 = await stationMs();
    await expect.poll(stationMs, { timeout: 10_000 }).toBeGreaterThan(t0 + 1000);
    expect(ended).toBe(false);
    expect((await fetch(url)).status).toBe(200);

    process.emit('SIGINT');
    await run;
    expect(out.some((l) => l.includes('Station of 2 lanes'))).toBe(true);
    expect(process.exitCode ?? 0).toBe(0);
    await expect(fetch(url)).rejects.toThrow();
  });

  it('refuses the no-login demo dashboard on a non-loopback address, with exit code 2', async () => {
    const out: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
    vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
    const program = new Command().exitOverride();
    register(program);
    await program.parseAsync(['node', 'gate', 'sim', '--dashboard', '--dashboard-host', '0.0.0.0', '--dashboard-port', '0', '--lanes', '1', '--passengers', '0', '--quiet']);
    expect(process.exitCode).toBe(2);
    expect(out.find((l) => l.startsWith('gate sim: '))).toMatch(/loopback only, not 0\.0\.0\.0.*--supervisors FILE/);
    expect(out.some((l) => l.startsWith('Station dashboard: '))).toBe(false);
  });
});
