// Waiting for a condition in tests: poll until it holds, fail at a deadline saying what was seen.
// Synchronise on evidence (an event, a counter, a state), never on a fixed sleep.

/**
 * Resolve once `cond()` is true (checked at once, then every `everyMs`); reject after `timeoutMs` with
 * `what()` in the message. The deadline bounds a broken run; it is not a timing assertion.
 */
export async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: () => string = () => 'condition not met', everyMs = 10): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what()}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
