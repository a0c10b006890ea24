// A code held in front of a camera or scanner is seen many times a second: report it once while it stays
// in view, and again only after it has been out of view for longer than the hold time.

export class SameCodeFilter {
  private inView: { text: string; lastSeenMs: number } | undefined;
  constructor(private readonly holdMs: number) {}
  /** True when this sighting is a new presentation; false for a repeat of the code still in view. */
  isNew(text: string, nowMs: number): boolean {
    const v = this.inView;
    if (v && v.text === text && nowMs - v.lastSeenMs <= this.holdMs) {
      v.lastSeenMs = nowMs;
      return false;
    }
    this.inView = { text, lastSeenMs: nowMs };
    return true;
  }
  /** After a device fault the next sighting is new, whatever it was before. */
  forget(): void {
    this.inView = undefined;
  }
}
