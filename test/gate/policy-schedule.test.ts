// Staged enforcement: the back office's signed schedule (per credential kind: not enforced, then advise,
// then enforce) verified before use, and the decision core's answers at each date's exact millisecond on
// the lane's virtual clock — 1 ms before and after each. A tampered, older or wrongly signed schedule is
// a schedule-rejected alarm and the old one stays. Exits never trap a rider, whatever the schedule says.

import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { policySchema } from '../../firmware/config/config.js';
import { MemoryLists } from '../../firmware/lists/list-provider.js';
import { DecisionCore } from '../../firmware/verify/decision-core.js';
import { PolicyStages, policyStagesFromFile } from '../../firmware/verify/policy-schedule.js';
import type { Alarm } from '../../protocol/alarms.js';
import type { Credential } from '../../protocol/credential.js';
import { trustedListKey } from '../../protocol/lists/index.js';
import { adviseMessage, signPolicySchedule, stageAt, type PolicySchedule } from '../../protocol/policy-schedule.js';
import { REASONS } from '../../protocol/reasons.js';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { withCheckDigit } from '../../simulator/backoffice/validate.js';
import { VirtualClock } from '../../simulator/virtual-clock.js';

const BJ = (d: number, h = 0) => Date.UTC(2022, 4, d, h - 8); // 2022-05-d h:00 Beijing time
const A = BJ(25); // advise from
const B = BJ(1 + 31); // enforce from 1 June
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const TRUSTED = [trustedListKey(publicKey.export({ format: 'pem', type: 'spki' }).toString())];
const schedule = (seq: number, kinds: PolicySchedule['kinds'] = { card: { adviseFromMs: A, enforceFromMs: B }, 'phone-nfc': { adviseFromMs: A, enforceFromMs: B } }): PolicySchedule => ({ seq, issuedAtMs: BJ(20), kinds });

const unregisteredCard: Credential = { kind: 'card', cardNumber: withCheckDigit('310410007000000001') };
const redCard: Credential = { kind: 'card', cardNumber: withCheckDigit('310410007000000002') };
const blockedCard: Credential = { kind: 'card', cardNumber: withCheckDigit('310410007000000003') };
const ticket: Credential = { kind: 'ticket', ticketNumber: 'BJ2022MAY0001' };

function lane(direction: 'entry' | 'exit', stages: PolicyStages) {
  const lists = new MemoryLists(BJ(20));
  lists.allowlist.set(`card:${(redCard as { cardNumber: string }).cardNumber}`, 'red');
  lists.denylist.block(`card:${(blockedCard as { cardNumber: string }).cardNumber}`);
  const core = new DecisionCore(direction, policySchema.parse({ antiPassbackSeconds: 0 }), { lists, stages });
  return (c: Credential, nowMs: number) => core.decide({ presented: { kind: 'credential', credential: c }, side: direction, nowMs });
}

describe('enforcement schedule', () => {
  it('takes effect at each date\'s millisecond on the lane\'s virtual clock, never one early', () => {
    const stages = new PolicyStages(TRUSTED);
    expect(stages.update(signPolicySchedule(schedule(1), privateKey))).toEqual({ ok: true, seq: 1 });
    const decide = lane('entry', stages);
    const clock = new VirtualClock(BJ(19));
    const at = (t: number) => {
      clock.advanceTo(t);
      return decide(unregisteredCard, clock.now());
    };
    expect(at(A - 1)).toMatchObject({ grant: true, reason: 'not-enforced' });
    expect(at(A)).toMatchObject({ grant: true, reason: 'advise-register', registerByMs: B });
    expect(at(A + 1)).toMatchObject({ grant: true, reason: 'advise-register' });
    expect(at(B - 1)).toMatchObject({ grant: true, reason: 'advise-register' });
    expect(at(B)).toMatchObject({ grant: false, reason: 'not-registered' });
    expect(at(B + 1)).toMatchObject({ grant: false, reason: 'not-registered' });
    expect(REASONS['advise-register'].grant && REASONS['not-enforced'].grant).toBe(true);
    expect(adviseMessage(B)).toEqual({ zh: '请于5月31日前完成乘车码升级或卡片登记', en: 'Please register by 2022-05-31' });
  });

  it('relaxes registration and status only: blocked stays refused; an unscheduled kind is enforced; a red card passes only before B', () => {
    const stages = new PolicyStages(TRUSTED);
    stages.update(signPolicySchedule(schedule(1), privateKey));
    const decide = lane('entry', stages);
    expect(decide(blockedCard, A - 1)).toMatchObject({ grant: false, reason: 'blocked' });
    expect(decide(ticket, A - 1)).toMatchObject({ grant: false, reason: 'not-registered' });
    expect(decide(redCard, A - 1)).toMatchObject({ grant: true, reason: 'not-enforced' });
    expect(decide(redCard, A)).toMatchObject({ grant: true, reason: 'not-enforced' });
    expect(decide(redCard, B)).toMatchObject({ grant: false, reason: 'status-red' });
    expect(stageAt(stages.current(), 'card', A)).toBe('advise');
    expect(stageAt(stages.current(), 'ticket', A)).toBe('enforce');
  });

  it('never traps a rider at an exit, whatever the schedule says', () => {
    const stages = new PolicyStages(TRUSTED);
    // Enforced from the start of time for every kind.
    stages.update(signPolicySchedule(schedule(1, { card: { adviseFromMs: 0, enforceFromMs: 0 }, ticket: { adviseFromMs: 0, enforceFromMs: 0 } }), privateKey));
    const decide = lane('exit', stages);
    for (const t of [A - 1, A, B - 1, B, B + 1]) {
      expect(decide(unregisteredCard, t).grant).toBe(true);
      expect(decide(redCard, t).grant).toBe(true);
      expect(decide(ticket, t).grant).toBe(true);
    }
  });

  it('refuses a tampered, older, wrongly signed or malformed schedule with an alarm, and keeps the one in force', () => {
    const alarms: Alarm[] = [];
    const stages = new PolicyStages(TRUSTED, (a) => alarms.push(a));
    const v2 = signPolicySchedule(schedule(2), privateKey);
    expect(stages.update(v2).ok).toBe(true);
    // Tampered: the payload says enforcement starts later (a byte of the base64 payload changed).
    const env = JSON.parse(Buffer.from(v2).toString());
    const later = Buffer.from(JSON.stringify({ v: 1, seq: 3, issuedAtMs: BJ(20), kinds: { card: { adviseFromMs: A, enforceFromMs: B + 86_400_000 } } })).toString('base64');
    const tampered = new Uint8Array(Buffer.from(JSON.stringify({ ...env, payload: later })));
    expect(stages.update(tampered)).toMatchObject({ ok: false, alarm: { alarm: 'schedule-rejected', error: 'bad-signature' } });
    // Older.
    expect(stages.update(signPolicySchedule(schedule(1), privateKey))).toMatchObject({ ok: false, alarm: { error: 'older', seq: 1 } });
    // The same seq with other content.
    expect(stages.update(signPolicySchedule(schedule(2, {}), privateKey))).toMatchObject({ ok: false, alarm: { error: 'older' } });
    // The same document again is fine.
    expect(stages.update(v2)).toEqual({ ok: true, seq: 2 });
    // Signed by a key the gate does not trust.
    const other = generateKeyPairSync('ed25519').privateKey;
    expect(stages.update(signPolicySchedule(schedule(9), other))).toMatchObject({ ok: false, alarm: { error: 'unknown-key' } });
    // Not JSON, and a payload whose dates are backwards.
    expect(stages.update(new Uint8Array(Buffer.from('{not json')))).toMatchObject({ ok: false, alarm: { error: 'json' } });
    expect(stages.update(signPolicySchedule(schedule(10, { card: { adviseFromMs: B, enforceFromMs: A } }), privateKey))).toMatchObject({ ok: false, alarm: { error: 'payload' } });
    expect(alarms.map((a) => a.alarm)).toEqual(Array(6).fill('schedule-rejected'));
    expect(stages.current()?.seq).toBe(2);
    expect(stages.current()?.kinds.card).toEqual({ adviseFromMs: A, enforceFromMs: B });
    // A newer one is taken.
    expect(stages.update(signPolicySchedule(schedule(3), privateKey))).toEqual({ ok: true, seq: 3 });
  });

  it('the back office serves it signed at GET /v1/policy-schedule; a lane loads it from policy.scheduleFile', async () => {
    const bo = new Backoffice({ db: ':memory:', tokens: [{ token: 'gate-token-0123456789', role: 'gate' }] });
    const { url } = await bo.listen(0);
    const dir = mkdtempSync(join(tmpdir(), 'schedule-'));
    try {
      expect((await fetch(`${url}/v1/policy-schedule`, { headers: { authorization: 'Bearer gate-token-0123456789' } })).status).toBe(404);
      expect((await fetch(`${url}/v1/policy-schedule`)).status).toBe(401);
      bo.publishPolicySchedule({ card: { adviseFromMs: A, enforceFromMs: B } });
      bo.publishPolicySchedule({ card: { adviseFromMs: A, enforceFromMs: B }, ticket: { adviseFromMs: A, enforceFromMs: B } });
      const r = await fetch(`${url}/v1/policy-schedule`, { headers: { authorization: 'Bearer gate-token-0123456789' } });
      expect(r.status).toBe(200);
      const file = join(dir, 'schedule.json');
      writeFileSync(file, Buffer.from(await r.arrayBuffer()));
      const stages = policyStagesFromFile(file, [trustedListKey(bo.publicKeyPem)]);
      expect(stages.current()).toMatchObject({ seq: 2, kinds: { ticket: { enforceFromMs: B } } });
      // A file that is not there: an alarm, and every kind enforced.
      const alarms: Alarm[] = [];
      expect(policyStagesFromFile(join(dir, 'none.json'), TRUSTED, (a) => alarms.push(a)).current()).toBeUndefined();
      expect(alarms).toMatchObject([{ alarm: 'schedule-rejected', error: 'read' }]);
    } finally {
      await bo.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
