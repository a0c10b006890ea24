// The lane's event loop first: `gate run` puts Node's and V8's helper threads into SCHED_IDLE at start
// (firmware/thread-priority.ts), and the list merge worker puts itself there. Checked in a fresh
// process against the kernel's own record (/proc/<pid>/task/<tid>/stat, field 41: 0 normal, 5 idle).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const MODULE = new URL('../../dist/firmware/thread-priority.js', import.meta.url);
if (!existsSync(fileURLToPath(MODULE))) throw new Error('dist/firmware/thread-priority.js is missing: run `npm run build` first (npm test does)');
if (spawnSync('chrt', ['--version']).error) throw new Error('this test needs chrt: apt-get install -y util-linux');

const script = `
import { readdirSync, readFileSync } from 'node:fs';
const { idleHelperThreads } = await import(${JSON.stringify(MODULE.href)});
const policy = (t) => Number(readFileSync('/proc/self/task/' + t + '/stat', 'latin1').split(') ')[1].split(' ')[38]);
const before = readdirSync('/proc/self/task').map(policy);
const r = idleHelperThreads();
const after = Object.fromEntries(readdirSync('/proc/self/task').map((t) => [Number(t) === process.pid ? 'main' : t, policy(t)]));
console.log(JSON.stringify({ before, r, after }));
`;

describe('helper threads yield to the lane', () => {
  it('every thread but the main one becomes SCHED_IDLE; the main thread stays normal', () => {
    const c = spawnSync(process.execPath, ['--single-threaded-gc', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(c.status, c.stderr).toBe(0);
    const { before, r, after } = JSON.parse(c.stdout) as { before: number[]; r: { idle: number; failed: number }; after: Record<string, number> };
    expect(before.every((p) => p === 0)).toBe(true);
    expect(r.failed).toBe(0);
    expect(r.idle).toBeGreaterThanOrEqual(4); // V8's platform workers at least
    expect(after.main).toBe(0);
    const helpers = Object.entries(after).filter(([k]) => k !== 'main');
    expect(helpers.length).toBe(r.idle);
    expect(helpers.every(([, p]) => p === 5)).toBe(true);
  });
});
