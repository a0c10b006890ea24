// A discrete-event clock for virtual time: timers fire in time order (FIFO among equal times) when the
// simulation advances. Pure: no real timers. Fits XState's `clock` option and drivers' Clock.

export class VirtualClock {
  private t: number;
  private seq = 0;
  // A binary heap of [time, seq, id]; callbacks in a map so cancelled timers are skipped cheaply.
  private heap: [number, number, number][] = [];
  private callbacks = new Map<number, () => void>();
  private nextId = 1;

  constructor(startMs = Date.UTC(2022, 4, 20, 7, 0, 0)) {
    this.t = startMs;
  }
  now(): number {
    return this.t;
  }
  setTimeout(fn: (...args: any[]) => void, ms: number): number {
    const id = this.nextId++;
    this.callbacks.set(id, fn);
    this.push([this.t + Math.max(0, ms || 0), this.seq++, id]);
    return id;
  }
  clearTimeout(id: any): void {
    this.callbacks.delete(id as number);
  }
  /** Pending timers (cancelled ones excluded). */
  get pending(): number {
    return this.callbacks.size;
  }
  /** Time of the next live timer, or undefined. */
  nextAt(): number | undefined {
    while (this.heap.length > 0 && !this.callbacks.has(this.heap[0][2])) this.pop();
    return this.heap.length > 0 ? this.heap[0][0] : undefined;
  }
  /** Fire the next due timer at or before `limit`; returns false when none is due. */
  step(limit = Infinity): boolean {
    const at = this.nextAt();
    if (at === undefined || at > limit) return false;
    const [time, , id] = this.pop()!;
    const fn = this.callbacks.get(id)!;
    this.callbacks.delete(id);
    this.t = Math.max(this.t, time);
    fn();
    return true;
  }
  /** Advance to `untilMs`, firing every timer due on the way (synchronously). */
  advanceTo(untilMs: number): void {
    while (this.step(untilMs));
    this.t = Math.max(this.t, untilMs);
  }
  advanceBy(ms: number): void {
    this.advanceTo(this.t + ms);
  }

  private push(e: [number, number, number]): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p], h[i])) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }
  private pop(): [number, number, number] | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l], h[m])) m = l;
        if (r < h.length && less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
}

function less(a: [number, number, number], b: [number, number, number]): boolean {
  return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
}
