// Logs never carry a full card number, ticket number or QR account id: scan every log line of a
// simulator run for every rider's identifiers.
import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { simulateStation } from '../../firmware/composition/simulated-station.js';
import { Random, makeRiders } from '../../simulator/population.js';

describe('log privacy', () => {
  it('a simulator run at debug level logs no full credential', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(...String(chunk).split('\n').filter(Boolean));
        cb();
      },
    });
    const log = pino({ level: 'debug' }, sink);
    const seed = 11;
    await simulateStation({ lanes: 3, passengers: 300, seed, log });
    expect(lines.length).toBeGreaterThan(300); // decisions, mode changes, alarms were logged
    expect(lines.some((l) => l.includes('"event":"decision"'))).toBe(true);
    const secrets = makeRiders(300, new Random(seed)).map((r) => {
      const c = r.credential;
      return c.kind === 'qr' ? c.account : c.kind === 'ticket' ? c.ticketNumber : c.cardNumber;
    });
    const all = lines.join('\n');
    const leaks = secrets.filter((s) => all.includes(s));
    expect(leaks).toEqual([]);
    expect(all).not.toMatch(/\d{19}/);
  });
});
