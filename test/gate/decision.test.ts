// The decision table: every credential kind × registration status × direction, plus passback,
// replay, free passage, wrong direction and malformed credentials.
import { describe, expect, it } from 'vitest';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { DecisionCore, MemoryPassback, MemoryUsedCodes, refusal, type DecisionInput, type RideCodeVerifier } from '../../firmware/verify/decision-core.js';
import { requestDecision, type DeciderReply } from '../../firmware/lane/decider.js';
import { MemoryJournal, type JournalEntry } from '../../firmware/journal/journal.js';
import { MemoryLists } from '../../firmware/lists/list-provider.js';
import { credentialKey, credentialRef, type Credential, type Direction } from '../../protocol/credential.js';
import { REASONS, REASON_CODES, riderMessage } from '../../protocol/reasons.js';

const T0 = Date.UTC(2022, 4, 20, 8);
const creds: Record<string, Credential> = {
  qr: { kind: 'qr', issuer: 'alipay', account: 'acct0001' },
  card: { kind: 'card', cardNumber: '3104100012300000001' },
  'phone-nfc': { kind: 'phone-nfc', cardNumber: '3105100012300000001' },
  ticket: { kind: 'ticket', ticketNumber: 'CT202200000001' },
};
const statuses = ['green', 'yellow', 'red', 'unregistered', 'blocked'] as const;
const expected: Record<Direction, Record<(typeof statuses)[number], string>> = {
  entry: { green: 'ok', yellow: 'status-yellow', red: 'status-red', unregistered: 'not-registered', blocked: 'blocked' },
  exit: { green: 'ok', yellow: 'ok', red: 'ok', unregistered: 'ok', blocked: 'blocked' },
};

function core(status: (typeof statuses)[number], c: Credential, direction: 'entry' | 'exit' | 'bidirectional' = 'bidirectional', extra: Record<string, unknown> = {}) {
  const cfg = parseLaneConfig({ lane: { id: 'T', direction }, ...extra });
  const lists = new MemoryLists(T0);
  const key = credentialKey(c);
  if (status === 'blocked') {
    lists.allowlist.set(key, 'green'); // blocked wins over a green binding
    lists.denylist.block(key);
  } else if (status !== 'unregistered') lists.allowlist.set(key, status);
  return new DecisionCore(cfg.lane.direction, cfg.policy, { lists });
}

describe('decision table', () => {
  for (const [kind, c] of Object.entries(creds))
    for (const status of statuses)
      for (const dir of ['entry', 'exit'] as const) {
        it(`${kind} × ${status} × ${dir} → ${expected[dir][status]}`, () => {
          const d = core(status, c).decide({ presented: { kind: 'credential', credential: c }, side: dir, nowMs: T0 });
          expect(d.reason).toBe(expected[dir][status]);
          expect(d.grant).toBe(expected[dir][status] === 'ok');
          expect(d.kind).toBe(kind);
          expect(d.ref).toBe(credentialRef(c));
        });
      }

  it('a phone emulating a card shares the card\'s registration (keyed by card number, not UID)', () => {
    const phone: Credential = { kind: 'phone-nfc', cardNumber: '3104100012300000001' };
    const d = core('green', creds.card).decide({ presented: { kind: 'credential', credential: phone }, side: 'entry', nowMs: T0 });
    expect(d.grant).toBe(true);
  });

  it('anti-passback: a second entry inside the window is refused, after an exit or the window it passes', () => {
    const c = creds.card;
    const cfg = parseLaneConfig({ lane: { id: 'T' }, policy: { antiPassbackSeconds: 600 } });
    const lists = new MemoryLists(T0);
    lists.allowlist.set(credentialKey(c), 'green');
    const passback = new MemoryPassback(600_000);
    const a = new DecisionCore('entry', cfg.policy, { lists, passback });
    const b = new DecisionCore('bidirectional', cfg.policy, { lists, passback }); // another lane of the station
    const p = { kind: 'credential' as const, credential: c };
    const d1 = a.decide({ presented: p, side: 'entry', nowMs: T0 });
    a.commit(d1, T0);
    expect(b.decide({ presented: p, side: 'entry', nowMs: T0 + 1000 }).reason).toBe('passback');
    expect(a.decide({ presented: p, side: 'entry', nowMs: T0 + 599_999 }).reason).toBe('passback');
    expect(a.decide({ presented: p, side: 'entry', nowMs: T0 + 600_000 }).reason).toBe('ok');
    const out = b.decide({ presented: p, side: 'exit', nowMs: T0 + 2000 });
    b.commit(out, T0 + 2000);
    expect(a.decide({ presented: p, side: 'entry', nowMs: T0 + 3000 }).reason).toBe('ok');
  });

  it('a refused decision consumes nothing (no passback, no used code)', () => {
    // One lane, its lists, passback store and used codes throughout: what the refusal would have consumed is still there.
    const cfg = parseLaneConfig({ lane: { id: 'T' } });
    expect(cfg.policy.antiPassbackSeconds).toBeGreaterThan(0);
    const lists = new MemoryLists(T0);
    const passback = new MemoryPassback(cfg.policy.antiPassbackSeconds * 1000);
    const usedCodes = new MemoryUsedCodes();
    const qr: Credential = { kind: 'qr', issuer: 'alipay', account: 'acct0001', codeId: 'code-1', validUntilMs: T0 + 60_000 };
    const c = new DecisionCore('bidirectional', cfg.policy, { lists, passback, usedCodes });
    lists.allowlist.set(credentialKey(creds.card), 'yellow');
    for (const credential of [creds.card, qr]) {
      const d = c.decide({ presented: { kind: 'credential', credential }, side: 'entry', nowMs: T0 });
      expect(d.grant).toBe(false);
      c.commit(d, T0);
    }
    expect(passback.lastEntry(credentialKey(creds.card))).toBeUndefined();
    expect(usedCodes.isUsed('code-1', T0 + 1)).toBe(false);
    // The rider registers (green) and taps again on the same lane: admitted, not refused as passback or replay.
    lists.allowlist.set(credentialKey(creds.card), 'green');
    lists.allowlist.set(credentialKey(qr), 'green');
    for (const credential of [creds.card, qr]) expect(c.decide({ presented: { kind: 'credential', credential }, side: 'entry', nowMs: T0 + 1000 }).reason).toBe('ok');
  });

  it('wrong direction on a one-way lane', () => {
    const d = core('green', creds.card, 'exit').decide({ presented: { kind: 'credential', credential: creds.card }, side: 'entry', nowMs: T0 });
    expect(d.reason).toBe('wrong-direction');
  });

  it('free passage admits everyone (still a decision to journal)', () => {
    const d = core('red', creds.card).decide({ presented: { kind: 'credential', credential: creds.card }, side: 'entry', nowMs: T0, freePassage: true });
    expect(d).toMatchObject({ grant: true, reason: 'ok-free-passage' });
  });

  it('QR text goes through the ride-code verifier; a replayed code id is refused', () => {
    const cfg = parseLaneConfig({ lane: { id: 'T' } });
    const lists = new MemoryLists(T0);
    lists.allowlist.set('qr:alipay:acct0001', 'green');
    const verifier: RideCodeVerifier = {
      verify: (text) => (text.startsWith('GOOD:') ? { ok: true, credential: { kind: 'qr', issuer: 'alipay', account: 'acct0001', codeId: text, validUntilMs: T0 + 60_000 } } : { ok: false, reason: 'qr-bad-signature' }),
    };
    const used = new MemoryUsedCodes();
    const c = new DecisionCore('bidirectional', cfg.policy, { lists, usedCodes: used, rideCodes: verifier });
    const good = c.decide({ presented: { kind: 'qr-text', text: 'GOOD:1' }, side: 'exit', nowMs: T0 });
    expect(good.grant).toBe(true);
    c.commit(good, T0);
    expect(c.decide({ presented: { kind: 'qr-text', text: 'GOOD:1' }, side: 'exit', nowMs: T0 + 1 }).reason).toBe('qr-replayed');
    expect(c.decide({ presented: { kind: 'qr-text', text: 'GOOD:1' }, side: 'exit', nowMs: T0 + 60_001 }).reason).toBe('ok');
    expect(c.decide({ presented: { kind: 'qr-text', text: 'forged' }, side: 'exit', nowMs: T0 }).reason).toBe('qr-bad-signature');
    const noVerifier = core('green', creds.qr);
    expect(noVerifier.decide({ presented: { kind: 'qr-text', text: 'GOOD:1' }, side: 'entry', nowMs: T0 }).reason).toBe('qr-malformed');
  });

  it('malformed credentials are refused with a clear reason, never thrown', () => {
    const c = core('green', creds.card);
    const bad: unknown[] = [
      { kind: 'card', cardNumber: '123' },
      { kind: 'card', cardNumber: 3104100012300000001 },
      { kind: 'qr', issuer: 'evil-pay', account: 'x' },
      { kind: 'qr', issuer: 'alipay', account: 'a'.repeat(65) },
      { kind: 'ticket', ticketNumber: 'x' },
      { kind: 'spaceship' },
      null,
      'card',
    ];
    for (const b of bad) {
      const d = c.decide({ presented: { kind: 'credential', credential: b as Credential }, side: 'entry', nowMs: T0 });
      expect(d).toMatchObject({ grant: false, reason: 'credential-invalid' });
    }
  });

  it('every reason has a Chinese and an English rider message and a unique display id', () => {
    const ids = new Set<number>();
    for (const r of REASON_CODES) {
      const m = riderMessage(r);
      expect(m.zh.length).toBeGreaterThan(1);
      expect(m.en.length).toBeGreaterThan(3);
      expect(ids.has(REASONS[r].id)).toBe(false);
      ids.add(REASONS[r].id);
    }
  });
});

describe('refusals the lane decides (busy, out of service, closed, card faults): built by the core too', () => {
  it('a well-formed credential is named (privacy-safe ref, no list key); no lookup, nothing consumed', () => {
    const c = core('green', creds.card);
    const d = c.decide({ presented: { kind: 'credential', credential: creds.card }, side: 'entry', nowMs: T0, preset: 'lane-busy' });
    expect(d).toEqual({ grant: false, reason: 'lane-busy', direction: 'entry', kind: 'card', ref: credentialRef(creds.card) });
    c.commit(d, T0);
    expect(c.decide({ presented: { kind: 'credential', credential: creds.card }, side: 'entry', nowMs: T0 }).grant).toBe(true);
  });

  it('QR text is not verified, a malformed credential and a card fault are unknown', () => {
    const verifier: RideCodeVerifier = { verify: () => expect.unreachable('a preset refusal verifies nothing') };
    const cfg = parseLaneConfig({ lane: { id: 'T' } });
    const c = new DecisionCore('bidirectional', cfg.policy, { lists: new MemoryLists(T0), rideCodes: verifier });
    expect(c.decide({ presented: { kind: 'qr-text', text: 'GOOD:1' }, side: 'exit', nowMs: T0, preset: 'out-of-service' })).toEqual(
      { grant: false, reason: 'out-of-service', direction: 'exit', kind: 'qr', ref: 'qr:?' },
    );
    const bad = { kind: 'credential', credential: { kind: 'card', cardNumber: '12' } } as DecisionInput['presented'];
    expect(c.decide({ presented: bad, side: 'entry', nowMs: T0, preset: 'station-closed' })).toMatchObject({ reason: 'station-closed', kind: 'unknown', ref: 'unknown:?' });
    expect(c.decide({ side: 'entry', nowMs: T0, preset: 'tap-again' })).toEqual({ grant: false, reason: 'tap-again', direction: 'entry', kind: 'unknown', ref: 'unknown:?' });
  });

  it('a granting reason is never a refusal', () => {
    expect(() => refusal('ok', 'entry')).toThrow(/granting reason/);
    expect(() => core('green', creds.card).decide({ side: 'entry', nowMs: T0, preset: 'ok-free-passage' })).toThrow(/granting reason/);
  });

  it('the decider asks the core once per presentation, lane refusals included, and journals what it answered', async () => {
    const c = core('green', creds.card);
    const asked: DecisionInput[] = [];
    const decide = c.decide.bind(c);
    c.decide = (input) => (asked.push(input), decide(input));
    const journal = new MemoryJournal();
    const deps = { laneId: 'T', core: c, journal, clock: { now: () => T0, setTimeout: () => 0, clearTimeout: () => {} } };
    const replies: DeciderReply[] = [];
    const presented = { kind: 'credential' as const, credential: creds.card };
    requestDecision(deps, { type: 'DECIDE', id: 1, presented, side: 'entry', source: 's', atMs: T0, preset: 'lane-busy' }, (r) => replies.push(r));
    requestDecision(deps, { type: 'DECIDE', id: 2, presented, side: 'entry', source: 's', atMs: T0 }, (r) => replies.push(r));
    await new Promise((r) => setImmediate(r));
    expect(asked.map((a) => a.preset)).toEqual(['lane-busy', undefined]);
    expect(replies.map((r) => `${r.id}:${r.decision.reason}`)).toEqual(['1:lane-busy', '2:ok']);
    const journaled = journal.records.map((r) => r.entry as Extract<JournalEntry, { type: 'decision' }>);
    expect(journaled.map((e) => [e.reason, e.ref, e.key])).toEqual([
      ['lane-busy', credentialRef(creds.card), undefined],
      ['ok', credentialRef(creds.card), credentialKey(creds.card)],
    ]);
  });
});

describe('used QR codes', () => {
  it('pruning a large store goes by the lane clock, not the wall clock (virtual time keeps its replays)', () => {
    const used = new MemoryUsedCodes();
    const now = Date.UTC(2022, 4, 20, 8); // the simulator's clock, years behind the wall clock
    used.isUsed('probe', now);
    for (let i = 0; i <= 100_000; i++) used.markUsed(`code-${i}`, now + 60_000);
    expect(used.isUsed('code-100000', now + 1)).toBe(true);
    expect(used.isUsed('code-0', now + 1)).toBe(true);
    expect(used.isUsed('code-0', now + 60_001)).toBe(false);
  });
});
