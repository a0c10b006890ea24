// The lane's event loop answers riders; the threads in the process that do background work should not
// take its core. Measured with sched_switch traces on a 2-core box during a 50 M list merge: V8's
// compiler threads and the merge worker (even at nice 10) were woken beside the lane's thread and ran
// out 2-5 ms slices there while the other core sat idle (the kernel does not move a cache-hot thread).
// So the merge worker runs in SCHED_IDLE (preempted at once by any normal thread), and Node's and V8's
// helpers at nice 19 (why not SCHED_IDLE: lowerHelperThreads).
//
// Node cannot call sched_setscheduler; util-linux's chrt can, on one thread id. Lowering a thread's
// own class needs no privilege (and RestrictRealtime= in the unit does not forbid it). A real-time
// class for the lane's thread instead was worse (47-53 ms stalls: a normal thread it waited on sat
// starved on its core until real-time throttling let it run).

import { execFileSync } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';

export type ThreadScheduling = 'idle' | 'nice' | 'normal';

/** Put the calling thread into SCHED_IDLE; nice 19 if chrt is missing or refused. */
export function runAtIdlePriority(): ThreadScheduling {
  try {
    execFileSync('chrt', ['--idle', '--pid', '0', ownThreadId()], { stdio: 'ignore', timeout: 5000 });
    return 'idle';
  } catch {
    try {
      setPriority(19);
      return 'nice';
    } catch {
      return 'normal';
    }
  }
}

/** The calling thread's kernel id (Linux), or the process id elsewhere. */
export function ownThreadId(): string {
  try {
    return readlinkSync('/proc/thread-self').split('/').pop()!;
  } catch {
    return String(process.pid);
  }
}

/**
 * Lower every thread of this process except the main one to nice 19. Call it first thing, when the
 * only other threads are Node's and V8's own (platform workers: concurrent compiles; the delayed task
 * scheduler; the debug-signal thread): threads started later (libuv's pool, which the journal's fsync
 * runs on, the QR decoder, PC/SC readers) are on a rider's path and keep normal priority.
 *
 * Nice 19, not SCHED_IDLE: the main thread posts tasks to these threads, and glibc's condition variable
 * can make pthread_cond_signal wait for a waiter that is mid-handoff; with that waiter in SCHED_IDLE
 * the lane's thread stalled 1.3-3.8 ms (traced). At nice 19 the kernel still moves them to a free core
 * at once, and with weight 15 against the lane's 1024 they practically never win its core.
 * (setpriority(2) on a thread id sets that thread's nice on Linux.) Returns how many changed.
 */
export function lowerHelperThreads(): { lowered: number; failed: number } {
  let lowered = 0, failed = 0;
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return { lowered, failed }; // not Linux
  }
  for (const t of tids) {
    if (Number(t) === process.pid) continue;
    try {
      setPriority(Number(t), 19);
      lowered++;
    } catch {
      failed++;
    }
  }
  return { lowered, failed };
}
