// `gate sim --qr camera`: QR riders reach the real lane runtime as rendered frames through the real
// zxing-wasm decoder worker and the ride-code verifier; every decision judged against ground truth.
import { describe, expect, it } from 'vitest';
import { simulateStation, DEFAULT_SIM } from '../../firmware/composition/simulated-station.js';
import type { PresentationResult } from '../../simulator/station.js';

describe('simulated station with QR riders through the camera path', () => {
  it('admits and refuses QR riders exactly as ground truth says', async () => {
    const results: PresentationResult[] = [];
    const { summary } = await simulateStation({ ...DEFAULT_SIM, lanes: 2, passengers: 80, seed: 7, qr: 'camera', onResult: (r) => results.push(r) });
    const qr = results.filter((r) => r.rider.credential.kind === 'qr');
    expect(qr.length).toBeGreaterThan(10);
    expect(qr.filter((r) => r.verdict === 'ok' && r.observed !== 'unanswered' && r.observed.grant).length).toBeGreaterThan(5);
    expect(summary).toMatchObject({ falseAccepts: 0, falseRejects: 0, unanswered: 0, wrongReasons: 0 });
  }, 60_000);
});
