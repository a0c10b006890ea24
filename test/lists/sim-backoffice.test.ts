// `gate sim --backoffice http`: the station's registrations go through the real back office and reach
// every lane over HTTP sync; the decisions must match each rider's ground truth exactly.
import { describe, expect, it } from 'vitest';
import { simulateStation } from '../../firmware/simulated-station.js';

describe('simulated station on the HTTP back office', () => {
  it('decides exactly as with in-memory lists', async () => {
    const viaHttp = await simulateStation({ lanes: 3, passengers: 200, seed: 7, backoffice: 'http' });
    const inMemory = await simulateStation({ lanes: 3, passengers: 200, seed: 7, backoffice: 'memory' });
    expect(viaHttp.summary.falseAccepts).toBe(0);
    expect(viaHttp.summary.falseRejects).toBe(0);
    expect(viaHttp.summary.unanswered).toBe(0);
    expect(viaHttp.summary.wrongReasons).toBe(0);
    expect(viaHttp.summary.byReason).toEqual(inMemory.summary.byReason);
  });
});
