// `gate sim --backoffice http`: the station's registrations go through the real back office and reach
// every lane over HTTP sync; during the run riders register and statuses change over the back office's
// API, and the lanes decide on them (checked against each rider's updated ground truth).
import { describe, expect, it } from 'vitest';
import { simulateStation } from '../../firmware/composition/simulated-station.js';

describe('simulated station on the HTTP back office', () => {
  it('registrations and status changes arriving during the run reach the lanes through sync', async () => {
    const viaHttp = await simulateStation({ lanes: 4, passengers: 400, seed: 1, backoffice: 'http' });
    const inMemory = await simulateStation({ lanes: 4, passengers: 400, seed: 1, backoffice: 'memory' });
    for (const s of [viaHttp.summary, inMemory.summary]) {
      expect(s.falseAccepts).toBe(0);
      expect(s.falseRejects).toBe(0);
      expect(s.unanswered).toBe(0);
      expect(s.wrongReasons).toBe(0);
    }
    // Riders who registered mid-run were admitted; riders turned red mid-run were refused.
    expect(viaHttp.summary.byReason['not-registered']).toBeLessThan(inMemory.summary.byReason['not-registered']);
    expect(viaHttp.summary.byReason['status-red']).toBeGreaterThan(inMemory.summary.byReason['status-red']);
  });
});
