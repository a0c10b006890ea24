import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, REDACTED } from '../../firmware/config/log.js';

function capture(): { stream: Writable; lines: () => any[]; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(c, _e, cb) {
      chunks.push(c.toString());
      cb();
    },
  });
  return { stream, text: () => chunks.join(''), lines: () => chunks.join('').trim().split('\n').map((l) => JSON.parse(l)) };
}

describe('log redaction', () => {
  it('never writes card numbers, account ids, list keys or ticket numbers, at any of the logged depths', () => {
    const out = capture();
    const log = createLogger('info', { lane: 'L1' }, out.stream);
    const card = '3104100000123456789';
    const account = 'alipay-2088102146225135';
    log.info({ cardNumber: card, ref: 'card:…6789#a1b2c3', reason: 'ok', latencyMs: 1.2 }, 'decision');
    log.info({ credential: { kind: 'qr', issuer: 'alipay', account } }, 'decision');
    log.warn({ entry: { type: 'decision', key: `card:${card}` } }, 'journal append failed');
    log.info({ event: { presented: { credential: { kind: 'ticket', ticketNumber: 'T20220501000123' } } } }, 'presented');
    log.info({ a: { b: { c: { cardNumber: card } } } }, 'deep');
    const text = out.text();
    expect(text).not.toContain(card);
    expect(text).not.toContain(account);
    expect(text).not.toContain('T20220501000123');
    const lines = out.lines();
    expect(lines[0]).toMatchObject({ lane: 'L1', cardNumber: REDACTED, ref: 'card:…6789#a1b2c3', reason: 'ok' });
    expect(lines[1].credential).toEqual({ kind: 'qr', issuer: 'alipay', account: REDACTED });
    expect(lines[2].entry.key).toBe(REDACTED);
    expect(lines[3].event.presented.credential.ticketNumber).toBe(REDACTED);
  });
});
