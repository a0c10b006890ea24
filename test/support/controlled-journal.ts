// A journal whose durability the test sets: at once, held until released, or failing (ENOSPC). For the
// gate machine's tests and the recorded lane of the replay tests.
import type { Journal, JournalEntry } from '../../firmware/journal/journal.js';

type DecisionEntry = Extract<JournalEntry, { type: 'decision' }>;

export class ControlledJournal implements Journal {
  mode: 'instant' | 'hold' | 'fail' = 'instant';
  /** Every entry the journal took (not those refused while failing). */
  readonly entries: JournalEntry[] = [];
  /** Every decision asked to be made durable, a refused one too. */
  readonly asked: DecisionEntry[] = [];
  private held: (() => void)[] = [];
  private seq = 0;
  append(entry: JournalEntry): Promise<number> {
    if (entry.type === 'decision') this.asked.push(entry);
    if (this.mode === 'fail') return Promise.reject(new Error('ENOSPC: no space left on device'));
    this.entries.push(entry);
    const seq = ++this.seq;
    if (this.mode === 'hold') return new Promise((r) => this.held.push(() => r(seq)));
    return Promise.resolve(seq);
  }
  release(): void {
    const h = this.held;
    this.held = [];
    h.forEach((f) => f());
  }
  async close(): Promise<void> {}
  decisions(): DecisionEntry[] {
    return this.entries.filter((e): e is DecisionEntry => e.type === 'decision');
  }
}
