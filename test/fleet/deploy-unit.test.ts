// The systemd unit as shipped passes `systemd-analyze verify` with no warning at all, and keeps the
// hardening and watchdog settings the runtime relies on.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const unitPath = new URL('../../firmware/deploy/gate.service', import.meta.url).pathname;
const unit = readFileSync(unitPath, 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'gate-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function analyze(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('systemd-analyze', args, { encoding: 'utf8' });
  if (r.error) throw new Error('this test needs systemd-analyze: apt-get install -y systemd');
  return { status: r.status, out: (r.stdout + r.stderr).trim() };
}

/** The unit to verify: as shipped, or with ExecStart's node pointed at this machine's node when CI has none at /usr/bin/node. */
function unitFile(): string {
  const p = join(dir, 'gate.service');
  if (existsSync('/usr/bin/node')) copyFileSync(unitPath, p);
  else writeFileSync(p, unit.replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `));
  return p;
}

function setting(key: string): string[] {
  return unit
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

describe('gate.service', () => {
  it('passes systemd-analyze verify without a single warning', () => {
    const r = analyze(['verify', unitFile()]);
    expect(r.out).toBe('');
    expect(r.status).toBe(0);
  });

  it('would be caught by verify if broken (the check is not vacuous)', () => {
    const p = join(dir, 'gate.service');
    writeFileSync(p, unit.replace('Type=notify', 'Type=notfy'));
    expect(analyze(['verify', p]).out).toMatch(/Failed to parse service type/);
  });

  it('is Type=notify with a watchdog, a dedicated user with device groups, and a read-only system', () => {
    expect(setting('Type')).toEqual(['notify']);
    expect(setting('NotifyAccess')).toEqual(['all']);
    expect(setting('WatchdogSec')).toEqual(['10s']);
    expect(setting('Restart')).toEqual(['always']);
    expect(setting('User')).toEqual(['gate']);
    expect(setting('SupplementaryGroups')).toEqual(['dialout plugdev video']);
    expect(setting('ProtectSystem')).toEqual(['strict']);
    expect(setting('ReadWritePaths')).toEqual(['/var/lib/gate/journal /var/lib/gate/lists']);
    expect(setting('NoNewPrivileges')).toEqual(['yes']);
    expect(setting('PrivateTmp')).toEqual(['yes']);
    expect(setting('ProtectHome')).toEqual(['yes']);
    expect(setting('StandardOutput')).toEqual(['journal']);
  });

  it('rates as well hardened by systemd-analyze security (exposure below 5 of 10)', () => {
    const r = analyze(['security', '--offline=true', unitFile()]);
    const m = /Overall exposure level for gate\.service: ([\d.]+)/.exec(r.out);
    expect(m, r.out).not.toBeNull();
    expect(Number(m![1])).toBeLessThan(5);
  });
});
