// The station bus reads a flood a slice at a time: what arrives in one turn of the event loop past the
// slice waits (in the stream, the kernel, the broker) for the next turn; nothing is lost or reordered.
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { paceReads } from '../../firmware/station/bus.js';

const nextTurn = () => new Promise<void>((r) => setImmediate(r));
const ticks = async () => {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => process.nextTick(r));
};

describe('paceReads', () => {
  it('once a turn has read for its slice, the rest waits for later turns, in order', async () => {
    const s = new PassThrough();
    let yields = 0;
    paceReads(s, 0, () => yields++);
    const got: string[] = [];
    s.on('data', (c: Buffer) => got.push(c.toString()));
    for (let i = 0; i < 6; i++) s.write(`p${i}`);
    await ticks();
    // The first chunk opens the turn, the second finds the slice spent (and is still handed on).
    expect(got).toEqual(['p0', 'p1']);
    expect(s.isPaused()).toBe(true);
    let turns = 0;
    while (got.length < 6 && turns < 20) {
      await nextTurn();
      await ticks();
      turns++;
    }
    expect(got).toEqual(['p0', 'p1', 'p2', 'p3', 'p4', 'p5']);
    expect(turns).toBeGreaterThanOrEqual(2);
    expect(yields).toBeGreaterThanOrEqual(3);
    s.destroy();
  });

  it('a turn within its slice reads everything at once', async () => {
    const s = new PassThrough();
    let yields = 0;
    paceReads(s, 60_000, () => yields++);
    const got: string[] = [];
    s.on('data', (c: Buffer) => got.push(c.toString()));
    for (let i = 0; i < 6; i++) s.write(`p${i}`);
    await ticks();
    expect(got).toHaveLength(6);
    expect(yields).toBe(0);
    s.destroy();
  });
});
