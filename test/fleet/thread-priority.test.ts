// The lane's event loop first: `gate run` lowers Node's and V8's helper threads to nice 19 at start
// (firmware/thread-priority.ts), and the list merge worker puts itself into SCHED_IDLE. Checked in a
// fresh process against the kernel's own record (/proc/<pid>/task/<tid>/stat: field 19 nice, 41 policy).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const MODULE = new URL('../../dist/firmware/platform/thread-priority.js', import.meta.url);
if (!existsSync(fileURLToPath(MODULE))) throw new Error('dist/firmware/platform/thread-priority.js is missing: run `npm run build` first (npm test does)');
if (spawnSync('chrt', ['--version']).error) throw new Error('this test needs chrt: apt-get install -y util-linux');

const script = `
import { readdirSync, readFileSync } from 'node:fs';
const { lowerHelperThreads, runAtIdlePriority, ownThreadId } = await import(${JSON.stringify(MODULE.href)});
const stat = (t) => readFileSync('/proc/self/task/' + t + '/stat', 'latin1').split(') ')[1].split(' ');
const view = () => Object.fromEntries(readdirSync('/proc/self/task').map((t) => [Number(t) === process.pid ? 'main' : t, { nice: Number(stat(t)[16]), policy: Number(stat(t)[38]) }]));
const before = view();
const r = lowerHelperThreads();
const after = view();
// A thread putting itself into SCHED_IDLE (what the merge worker does): here a worker thread.
const { Worker } = await import('node:worker_threads');
const idle = await new Promise((ok) => {
  const w = new Worker('const { parentPort, workerData } = await import("node:worker_threads"); const m = await import(workerData); parentPort.postMessage([m.ownThreadId(), m.runAtIdlePriority()]);', { eval: true, workerData: ${JSON.stringify(MODULE.href)} });
  w.once('message', ([tid, s]) => ok({ tid, s, policy: Number(stat(tid)[38]) }));
});
console.log(JSON.stringify({ before, r, after, idle, mainPolicy: Number(stat(process.pid)[38]) }));
`;

describe('helper threads yield to the lane', () => {
  it('every thread but the main one is lowered to nice 19; the main thread stays as it was; a worker can put itself into SCHED_IDLE', () => {
    const c = spawnSync(process.execPath, ['--single-threaded-gc', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(c.status, c.stderr).toBe(0);
    type T = { nice: number; policy: number };
    const out = JSON.parse(c.stdout) as { before: Record<string, T>; r: { lowered: number; failed: number }; after: Record<string, T>; idle: { tid: string; s: string; policy: number }; mainPolicy: number };
    expect(Object.values(out.before).every((t) => t.nice === 0 && t.policy === 0)).toBe(true);
    expect(out.r.failed).toBe(0);
    expect(out.r.lowered).toBeGreaterThanOrEqual(4); // V8's platform workers at least
    expect(out.after.main).toEqual({ nice: 0, policy: 0 });
    const helpers = Object.entries(out.after).filter(([k]) => k !== 'main');
    expect(helpers).toHaveLength(out.r.lowered);
    expect(helpers.every(([, t]) => t.nice === 19 && t.policy === 0)).toBe(true);
    expect(out.idle).toMatchObject({ s: 'idle', policy: 5 });
    expect(out.mainPolicy).toBe(0);
  });
});
