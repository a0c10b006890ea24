// The one loop that drives the list generators. Every slow list step (verify, build, merge, cut) is a
// generator that yields every few hundred entries; `runUntil` advances one until it finishes or its
// caller says stop, `runToEnd` runs it through (the back office, the merge worker, tests). The gate's
// event loop runs them in time slices with firmware/lists/run-sliced.ts, which is this loop plus a
// turn of the event loop between slices (timers stay out of protocol/). Pure.

/**
 * Advance `g` until it returns, or until `more()` is false after a step (checked after every step, so
 * at least one step runs). Returns the last step's result: `done` with the value, or not done yet.
 */
export function runUntil<T>(g: Generator<void, T, void>, more: () => boolean): IteratorResult<void, T> {
  for (;;) {
    const r = g.next();
    if (r.done || !more()) return r;
  }
}

const always = () => true;

/** Run a generator to its end (for callers that may block, like the back office). */
export function runToEnd<T>(g: Generator<void, T, void>): T {
  return runUntil(g, always).value as T;
}
