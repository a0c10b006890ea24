// `gate sim --broker mqtt`: the simulated station's lanes on a real mosquitto, each with its own link;
// every decision still agrees with ground truth, and the used codes went round through the broker.
import { describe, expect, it } from 'vitest';
import { simulateStation, type SimulatedStation } from '../../firmware/composition/simulated-station.js';

describe('gate sim --broker mqtt', () => {
  it('runs a station whose lanes share used QR codes through mosquitto: 0 false accepts, 0 false rejects', async () => {
    let sim!: SimulatedStation;
    const { summary } = await simulateStation({ lanes: 4, passengers: 300, seed: 7, broker: 'mqtt', onReady: (s) => void (sim = s) });
    expect(summary).toMatchObject({ falseAccepts: 0, falseRejects: 0, unanswered: 0 });
    expect(summary.admitted).toBeGreaterThan(0);
    // Each lane's QR grants reached the three others through the broker.
    const granted = sim.journals.map((j) => j.records.filter(({ entry: e }) => e.type === 'decision' && e.grant && e.kind === 'qr').length);
    expect(granted.reduce((a, b) => a + b, 0)).toBeGreaterThan(10);
  });

  it('an unknown broker wiring fails naming the known ones', async () => {
    await expect(simulateStation({ lanes: 1, passengers: 0, broker: 'amqp' })).rejects.toThrow(/known: none, mqtt/);
  });
});
