// `gate pack` makes one tarball with what a box needs, and the unpacked bundle runs on its own.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { pack, productionPackages, type PackResult } from '../../firmware/operations/pack.js';

const root = new URL('../..', import.meta.url).pathname;
let dir: string;
let result: PackResult;
let entries: string[];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gate-pack-test-'));
  // `npm test` builds dist/ before vitest; build here only when run on its own.
  result = pack({ root, out: join(dir, 'bundle.tar.gz'), build: !existsSync(join(root, 'dist/firmware/cli/gate.js')) });
  const t = spawnSync('tar', ['-tzf', result.file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  entries = t.stdout.split('\n').filter(Boolean);
  const x = spawnSync('tar', ['-xzf', result.file, '-C', dir]);
  if (x.status !== 0) throw new Error(`tar -x failed: ${x.stderr}`);
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('gate pack', () => {
  it('puts dist, production node_modules, the unit, the udev rule, a sample config and install.sh under one folder', () => {
    const p = result.prefix;
    expect(p).toBe(`gate-0.1.0-${process.platform}-${process.arch}`);
    expect(entries.every((e) => e.startsWith(`${p}/`))).toBe(true);
    for (const f of [
      'install.sh',
      'manifest.json',
      'lane.sample.json',
      'package.json',
      'deploy/gate.service',
      'deploy/99-gate-serial.rules',
      'deploy/README.md',
      'dist/firmware/cli/gate.js',
      'dist/firmware/operations/doctor.js',
      'dist/protocol/credential.js',
      'node_modules/pino/package.json',
      'node_modules/serialport/package.json',
      'node_modules/@serialport/bindings-cpp/package.json',
      'node_modules/prom-client/package.json',
      'node_modules/xstate/package.json',
      'node_modules/zod/package.json',
      'node_modules/zxing-wasm/package.json',
      'node_modules/commander/package.json',
    ]) {
      expect(entries, f).toContain(`${p}/${f}`);
    }
    // The native addons as built for this machine.
    expect(entries.some((e) => e.startsWith(`${p}/node_modules/@pokusew/pcsclite/build/Release/`) && e.endsWith('.node'))).toBe(true);
    expect(entries.some((e) => e.startsWith(`${p}/node_modules/@serialport/bindings-cpp/`) && e.endsWith('.node'))).toBe(true);
  });

  it('leaves out dev tools, the bench build and back-office-only packages', () => {
    const p = result.prefix;
    for (const dev of ['vitest', 'typescript', 'playwright-core', 'fast-check', 'jsqr', 'better-sqlite3', '.bin']) {
      expect(entries.filter((e) => e.startsWith(`${p}/node_modules/${dev}/`)), dev).toEqual([]);
    }
    expect(entries.filter((e) => e.startsWith(`${p}/dist/test/`))).toEqual([]);
    expect(entries.filter((e) => e.endsWith('.tsbuildinfo'))).toEqual([]);
    expect(productionPackages(root, [])).toContain('node_modules/better-sqlite3');
  });

  it('runs from the unpacked bundle alone: the CLI starts and the native addons load', () => {
    const top = join(dir, result.prefix);
    const help = spawnSync(process.execPath, [join(top, 'dist/firmware/cli/gate.js'), '--help'], { encoding: 'utf8' });
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain('doctor');
    expect(help.stdout).toContain('pack');
    const addons = spawnSync(
      process.execPath,
      ['-e', "require('@pokusew/pcsclite'); require('@serialport/bindings-cpp'); console.log('loaded')"],
      { cwd: top, encoding: 'utf8' },
    );
    expect(addons.stdout.trim(), addons.stderr).toBe('loaded');
  });

  it('ships a sample config that is a valid lane config, and a manifest naming CPU and Node ABI', () => {
    const top = join(dir, result.prefix);
    const sample = JSON.parse(readFileSync(join(top, 'lane.sample.json'), 'utf8'));
    expect(parseLaneConfig(sample).lane.id).toBe('L01');
    const m = JSON.parse(readFileSync(join(top, 'manifest.json'), 'utf8'));
    expect(m).toMatchObject({ arch: process.arch, platform: process.platform, nodeModulesAbi: process.versions.modules, version: '0.1.0' });
  });

  it('has an install.sh that parses and refuses a bundle built for another CPU or Node ABI', () => {
    const top = join(dir, result.prefix);
    expect(spawnSync('sh', ['-n', join(top, 'install.sh')]).status).toBe(0);
    const manifest = join(top, 'manifest.json');
    const m = JSON.parse(readFileSync(manifest, 'utf8'));
    writeFileSync(manifest, JSON.stringify({ ...m, arch: process.arch === 'arm64' ? 'x64' : 'arm64' }, null, 2));
    let r = spawnSync('sh', [join(top, 'install.sh')], { encoding: 'utf8', env: { ...process.env, PREFIX: join(dir, 'opt-gate') } });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/this bundle was built for (arm64|x64), this box is/);
    writeFileSync(manifest, JSON.stringify({ ...m, nodeModulesAbi: '1' }, null, 2));
    r = spawnSync('sh', [join(top, 'install.sh')], { encoding: 'utf8', env: { ...process.env, PREFIX: join(dir, 'opt-gate') } });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('native addons were built for Node ABI 1');
    expect(existsSync(join(dir, 'opt-gate'))).toBe(false);
  });
});
