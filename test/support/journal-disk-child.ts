// A journaling process driven line by line on stdin, for the disk-full tests (test/journal/disk-full.test.ts):
// it runs a real FileJournal in the directory it is given (on a small tmpfs, or on ext4 over a loop
// device, in a private mount namespace), a real /readyz over HTTP, and the lane's real decider; the test
// fills the file system, watches, and empties it again. One JSON line answers each command.
// Usage: node journal-disk-child.js <journalDir> <fillDir> <backofficeUrl> <laneId> <optionsJson>
//
// Commands: append <n> | append-to-size <bytes> | fill | unfill | exhaust-fds | release-fds | state |
// readyz | decide <entry|exit> | wait-writable <tries> | upload | reopen | close
import { alarmText } from '../../protocol/alarms.js';
import { closeSync, openSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { FileJournal, type FileJournalOptions } from '../../firmware/journal/file-journal.js';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { DecisionCore } from '../../firmware/verify/decision-core.js';
import { MemoryLists } from '../../firmware/lists/list-provider.js';
import { requestDecision, type DeciderReply } from '../../firmware/lane/decider.js';
import { laneProbes } from '../../firmware/operations/service.js';
import { startHealthServer } from '../../firmware/operations/health.js';
import type { Lane } from '../../firmware/lane/lane.js';
import { systemClock } from '../../drivers/seams.js';
import { credentialKey, type Credential } from '../../protocol/credential.js';
import { dataEnd } from './journal-files.js';

const [dir, fillDir, url, laneId, optsJson] = process.argv.slice(2);
const opts = JSON.parse(optsJson ?? '{}') as Partial<FileJournalOptions>;
const open = () => FileJournal.open({ dir, laneId, uploadUrl: url, uploadIntervalMs: 3_600_000, probeMinMs: 20, probeMaxMs: 200, ...opts });
let j = await open();
const alarms: { name: string; detail?: string }[] = [];
const listen = (x: FileJournal) => x.onAlarm((a) => alarms.push({ name: a.alarm, detail: alarmText(a) }));
listen(j);
let tap = 0;

// The lane's decider on this journal, with one registered card.
const config = parseLaneConfig({ lane: { id: laneId, direction: 'bidirectional' } });
const lists = new MemoryLists(Date.now());
const card: Credential = { kind: 'card', cardNumber: '3104100012300000001' };
lists.allowlist.set(credentialKey(card), 'green');
const core = new DecisionCore('bidirectional', config.policy, { lists });

// /readyz with the service's own journal probe (the stub lane has no journal directory in its config,
// so only the journal's own health decides: a 256 KiB tmpfs is always under the 16 MiB free-space floor).
const stubLane = { get journal() { return j; }, config: { ...config, journal: { type: 'file' } } } as unknown as Lane;
const health = await startHealthServer({ port: 0, ready: { journal: laneProbes(stubLane).journal } });

const fds: number[] = [];
const state = () => ({
  lastSeq: j.lastSeq, backlog: j.backlog, segments: j.segmentCount, health: j.health?.() ?? { writable: undefined, state: 'unknown', detail: 'this journal has no health()' }, counters: j.counters, alarms,
  files: listFiles(),
});
function listFiles(): string[] {
  try {
    return readdirSync(dir).map((n) => `${n}:${statSync(join(dir, n)).size}`);
  } catch (e) {
    return [(e as Error).message]; // no descriptor left (exhaust-fds)
  }
}

async function appendOne(): Promise<{ ok: true; seq: number; tap: number; rotationFailures: number } | { ok: false; error: { name: string; code: string; message: string } }> {
  const t = ++tap;
  try {
    const seq = await j.append({ type: 'decision', laneId, atMs: Date.now(), direction: 'entry', kind: 'card', ref: `tap-${t}`, grant: true, reason: 'ok', source: 'disk-test' });
    return { ok: true, seq, tap: t, rotationFailures: j.counters.rotationFailures };
  } catch (e) {
    const err = e as Error & { code?: string; reason?: string };
    return { ok: false, error: { name: err.name, code: err.reason ?? err.code ?? '', message: err.message } };
  }
}

async function run(cmd: string, arg: string | undefined): Promise<unknown> {
  switch (cmd) {
    case 'append': {
      // Appends one at a time until n resolved or one is refused.
      const acted: [number, number, number][] = [];
      for (let k = 0; k < Number(arg); k++) {
        const r = await appendOne();
        if (!r.ok) return { acted, error: r.error };
        acted.push([r.seq, r.tap, r.rotationFailures]);
      }
      return { acted };
    }
    case 'append-to-size': {
      const acted: [number, number, number][] = [];
      for (let k = 0; k < 10_000; k++) {
        // Where the records end (segments are created at their full size, zeros after the records).
        const tail = readdirSync(dir).filter((n) => n.endsWith('.jnl')).sort().at(-1)!;
        if (dataEnd(join(dir, tail)) >= Number(arg)) break;
        const r = await appendOne();
        if (!r.ok) return { acted, error: r.error };
        acted.push([r.seq, r.tap, r.rotationFailures]);
      }
      return { acted };
    }
    case 'fill': {
      // Fill the file system to the last block (a short write or ENOSPC ends it).
      const fd = openSync(join(fillDir, 'filler'), 'a');
      let bytes = 0;
      try {
        for (let k = 0; k < 1 << 20; k++) {
          const n = writeSync(fd, Buffer.alloc(4096, 0x55));
          bytes += n;
          if (n < 4096) break;
        }
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      } finally {
        closeSync(fd);
      }
      return { bytes };
    }
    case 'unfill':
      rmSync(join(fillDir, 'filler'), { force: true });
      return {};
    case 'exhaust-fds':
      try {
        for (let k = 0; k < 100_000; k++) fds.push(openSync('/dev/null', 'r'));
      } catch (e) {
        return { held: fds.length, code: (e as NodeJS.ErrnoException).code };
      }
      return { held: fds.length };
    case 'release-fds':
      for (const fd of fds.splice(0)) closeSync(fd);
      return {};
    case 'state':
      return state();
    case 'readyz': {
      const res = await fetch(`${health.url}/readyz`);
      return { status: res.status, body: await res.json() };
    }
    case 'decide': {
      const side = arg === 'exit' ? 'exit' : 'entry';
      const reply = await new Promise<DeciderReply>((resolve) =>
        requestDecision({ laneId, core, journal: j, clock: systemClock }, { type: 'DECIDE', id: 1, presented: { kind: 'credential', credential: card }, side, source: 'disk-test', atMs: Date.now() }, resolve),
      );
      return { grant: reply.decision.grant, reason: reply.decision.reason };
    }
    case 'wait-writable': {
      // Bounded: at most `tries` looks, 50 ms apart.
      for (let k = 0; k < Number(arg); k++) {
        if (j.health?.().writable) return { writable: true, tries: k };
        await new Promise((r) => setTimeout(r, 50));
      }
      return { writable: false, tries: Number(arg) };
    }
    case 'upload': {
      for (let k = 0; k < 50 && j.backlog > 0; k++) if (!(await j.uploadNow())) await new Promise((r) => setTimeout(r, 20));
      return { backlog: j.backlog };
    }
    case 'reopen':
      await j.close();
      j = await open();
      listen(j);
      j.raiseRecoveryAlarms?.();
      return { lastSeq: j.lastSeq, recovery: j.recovery };
    case 'close':
      await j.close();
      await health.close();
      return {};
    default:
      throw new Error(`unknown command ${cmd}`);
  }
}

process.stdout.write(`${JSON.stringify({ ready: true, lastSeq: j.lastSeq })}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  const [cmd, arg] = line.trim().split(/\s+/);
  try {
    process.stdout.write(`${JSON.stringify({ cmd, result: await run(cmd, arg) })}\n`);
  } catch (e) {
    process.stdout.write(`${JSON.stringify({ cmd, failed: (e as Error).stack })}\n`);
  }
  if (cmd === 'close') break;
}
process.exit(0);
