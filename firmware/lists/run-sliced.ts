// The gate's way to run a list generator (verify, build, merge, cut: protocol/lists/) on its own event
// loop: protocol/lists/run.ts's loop in time slices, with a turn of the event loop between them, so
// lookups and the lane keep being served while a large list is checked or merged.

import { runUntil } from '../../protocol/lists/index.js';

/** Run a generator to its end, yielding to the event loop whenever a slice exceeds `sliceMs` (Infinity: never). */
export async function runSliced<T>(g: Generator<void, T, void>, sliceMs = 0.5): Promise<T> {
  for (;;) {
    const until = performance.now() + sliceMs;
    const r = runUntil(g, () => performance.now() < until);
    if (r.done) return r.value;
    await new Promise<void>((res) => setImmediate(res));
  }
}
