// `gate sim --reader pcsc`: one lane's taps through real pcscd + vpcd, judged against ground truth.
import { expect, test } from 'vitest';
import { simulateStation } from '../../firmware/composition/simulated-station.js';
import { ConfigError } from '../../firmware/config/config.js';

test('a realtime one-lane station with its card taps on real PC/SC: no false accepts, rejects or unanswered', async () => {
  const kinds: string[] = [];
  const { summary } = await simulateStation({ lanes: 1, passengers: 10, seed: 1, rate: 30, realtime: true, reader: 'pcsc', onResult: (r) => kinds.push(JSON.stringify(r)) });
  expect(summary.presentations).toBeGreaterThanOrEqual(10);
  // Some of the riders tapped cards, phones or tickets (the rest showed QR codes, simulated in process).
  expect(kinds.filter((k) => /"(card|phone-nfc|ticket)"/.test(k)).length).toBeGreaterThan(0);
  expect(summary).toMatchObject({ falseAccepts: 0, falseRejects: 0, unanswered: 0, wrongReasons: 0 });
}, 90_000);

test('--reader pcsc without --realtime, or on more than one lane, is a clear config error', async () => {
  await expect(simulateStation({ lanes: 1, passengers: 1, reader: 'pcsc', realtime: false })).rejects.toThrow(ConfigError);
  await expect(simulateStation({ lanes: 2, passengers: 1, reader: 'pcsc', realtime: true })).rejects.toThrow(/one lane/);
});
