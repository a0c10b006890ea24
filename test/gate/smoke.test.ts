import { describe, expect, it } from 'vitest';
import { MemoryJournal } from '../../firmware/journal/journal.js';
import { laneHarness } from '../support/lane-harness.js';

describe('gate lane smoke', () => {
  it('opens for a registered green card and closes after passage', async () => {
    const h = await laneHarness();
    expect(h.state()).toBe('normal.ready');
    h.register('card:3104000000000000001', 'green');
    h.entry.present({ kind: 'card', cardNumber: '3104000000000000001' });
    await h.advance(0);
    expect(h.state()).toBe('normal.granted');
    expect(h.commands.some((c) => c.type === 'OPEN')).toBe(true);
    await h.advance(400);
    h.board.walkThrough('entry');
    await h.advance(0);
    expect(h.state()).toBe('normal.closing');
    await h.advance(1000);
    expect(h.state()).toBe('normal.ready');
    expect((h.journal as MemoryJournal).records.map((r) => r.entry.type)).toContain('decision');
  });
});
