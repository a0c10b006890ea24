// The station bus wire, pure: topics, payload codecs (junk refused as values), the exact bytes a
// supervisor signs, and an RFC 8032 vector for the Ed25519 keys the lanes' configs carry.
import { createPrivateKey, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  MAX_CODES_PER_MESSAGE,
  commandSignatureOk,
  commandSignedBytes,
  decodeAlarm,
  decodeCommand,
  decodeLaneState,
  encodeLaneState,
  decodeOnline,
  decodeStats,
  decodeUsed,
  encodeAlarm,
  encodeCommand,
  encodeOnline,
  encodeUsed,
  fareModeSet,
  laneSubscriptions,
  laneTopic,
  parseTopic,
  rawPublicKeyB64,
  signCommand,
  supervisorPrivateKey,
  supervisorPublicKey,
  type Command,
} from '../../protocol/station-bus.js';

const b = (s: string) => new Uint8Array(Buffer.from(s));

describe('topics', () => {
  it('are versioned and parse back; anything else is not ours', () => {
    expect(laneTopic('BJ-0101', 'L01', 'used')).toBe('gate/v1/BJ-0101/L01/used');
    expect(parseTopic('gate/v1/BJ-0101/L01/used')).toEqual({ station: 'BJ-0101', lane: 'L01', leaf: 'used' });
    expect(parseTopic('gate/v1/BJ-0101/station/cmd')).toEqual({ station: 'BJ-0101', lane: 'station', leaf: 'cmd' });
    for (const t of ['gate/v2/S/L/used', 'gate/v1/S/L/nope', 'gate/v1/S/station/used', 'gate/v1/S/L', 'gate/v1/S/L/used/x', 'gate/v1/S/a.b/used']) expect(parseTopic(t)).toBeUndefined();
    expect(laneSubscriptions('S', 'L1')).toEqual(['gate/v1/S/+/used', 'gate/v1/S/+/alarm', 'gate/v1/S/L1/cmd', 'gate/v1/S/station/cmd']);
  });
});

describe('payloads', () => {
  it('round-trip', () => {
    const used = { codes: [['alipay:0011223344556677', 1_700_000_000_000]] as [string, number][] };
    expect(decodeUsed(encodeUsed(used))).toEqual({ ok: true, value: used });
    const on = { online: false, boot: 'abc', atMs: 5, cause: 'lost' as const };
    expect(decodeOnline(encodeOnline(on))).toEqual({ ok: true, value: on });
    expect(decodeAlarm(encodeAlarm({ alarm: 'fire-alarm', atMs: 7 }))).toEqual({ ok: true, value: { alarm: 'fire-alarm', atMs: 7 } });
    // The lane state with the enforcement schedule it holds (each kind's stage and next change).
    const state = { boot: 'b1', atMs: 9, mode: 'normal', state: 'normal.ready', flaps: 'closed', direction: 'entry', listVersion: 3, listAgeS: 0, link: 'up' as const, readers: {}, open: {}, fireAlarm: false };
    const schedule = { seq: 2, kinds: { card: { stage: 'advise', nextAtMs: 1_653_494_400_000, next: 'enforce' }, qr: { stage: 'enforce' } } };
    expect(decodeLaneState(encodeLaneState({ ...state, schedule }))).toEqual({ ok: true, value: { ...state, schedule } });
    expect(decodeLaneState(encodeLaneState(state))).toEqual({ ok: true, value: state });
    for (const bad of [{ seq: -1, kinds: {} }, { seq: 1, kinds: { card: { stage: 'maybe' } } }, { seq: 1, kinds: { card: { stage: 'advise', nextAtMs: 'soon' } } }, { seq: 1, kinds: [] }]) {
      expect(decodeLaneState(b(JSON.stringify({ v: 1, ...state, schedule: bad })))).toEqual({ ok: false, why: 'schedule' });
    }
  });

  it('junk is refused as a value, never thrown', () => {
    expect(decodeUsed(b('nope'))).toEqual({ ok: false, why: 'not JSON' });
    expect(decodeUsed(b('{"v":2,"codes":[]}'))).toEqual({ ok: false, why: 'version' });
    expect(decodeUsed(b('{"v":1,"codes":[]}'))).toEqual({ ok: false, why: 'codes' });
    expect(decodeUsed(b('{"v":1,"codes":[["x",1]]}'))).toEqual({ ok: false, why: 'code entry' });
    expect(decodeUsed(b('{"v":1,"codes":[["alipay:0011223344556677",1.5]]}'))).toEqual({ ok: false, why: 'code entry' });
    const many = Array.from({ length: MAX_CODES_PER_MESSAGE + 1 }, (_, i) => [`a:${i.toString(16).padStart(16, '0')}`, 1]);
    expect(decodeUsed(b(JSON.stringify({ v: 1, codes: many })))).toMatchObject({ ok: false });
    expect(decodeUsed(new Uint8Array(5000))).toEqual({ ok: false, why: 'too long' });
    expect(decodeLaneState(b('{"v":1}')).ok).toBe(false);
    expect(decodeStats(b('{"v":1,"fromMs":1,"toMs":2,"granted":1,"refused":0,"byReason":{"a b":1}}')).ok).toBe(false);
    expect(decodeAlarm(b('{"v":1,"alarm":"x","atMs":1.5}')).ok).toBe(false);
    expect(decodeCommand(b('[1]'))).toEqual({ ok: false, why: 'not an object' });
  });
});

describe('commands', () => {
  // RFC 8032 section 7.1, TEST 1: secret key, public key.
  const secret = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60';
  const pub = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
  const key = supervisorPrivateKey(Buffer.from(secret, 'hex').toString('base64'));

  it('keys from config: raw base64 Ed25519 matches RFC 8032 test 1', () => {
    expect(Buffer.from(rawPublicKeyB64(key), 'base64').toString('hex')).toBe(pub);
    // The RFC's empty-message signature.
    expect(sign(null, Buffer.alloc(0), key).toString('hex')).toBe('e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b');
    expect(() => supervisorPublicKey('short')).toThrow(/32 bytes/);
    expect(createPrivateKey(key.export({ format: 'pem', type: 'pkcs8' })).asymmetricKeyType).toBe('ed25519');
  });

  it('sign the documented bytes; any change breaks the signature', () => {
    const c: Command = { id: '00112233445566778899aabbccddeeff', station: 'BJ-0101', lane: 'L01', action: 'set-mode', args: { mode: 'closed' }, by: 'sup-wang', issuedAtMs: 1_700_000_000_000, expiresAtMs: 1_700_000_060_000 };
    expect(Buffer.from(commandSignedBytes(c)).toString()).toBe('gate-command-v1\n["00112233445566778899aabbccddeeff","BJ-0101","L01","set-mode",["closed",null],"sup-wang",1700000000000,1700000060000]');
    const s = signCommand(c, key);
    const pk = supervisorPublicKey(Buffer.from(pub, 'hex').toString('base64'));
    expect(commandSignatureOk(s, pk)).toBe(true);
    for (const changed of [{ ...s, lane: 'L02' }, { ...s, args: { mode: 'normal' as const } }, { ...s, expiresAtMs: s.expiresAtMs + 1 }, { ...s, by: 'sup-li' }]) expect(commandSignatureOk(changed, pk)).toBe(false);
    const d = decodeCommand(encodeCommand(s));
    expect(d).toEqual({ ok: true, value: s });
    // Arguments are checked per action.
    expect(decodeCommand(encodeCommand({ ...c, args: {} })).ok).toBe(false);
    expect(decodeCommand(encodeCommand({ ...c, action: 'reload', args: { mode: 'closed' } })).ok).toBe(false);
    expect(decodeCommand(encodeCommand({ ...c, action: 'station-emergency', args: { active: true } })).ok).toBe(true);
  });

  it('fare-mode signs its whole set as a third argument; only the canonical set decodes', () => {
    const c: Command = { id: '00112233445566778899aabbccddeeff', station: 'BJ-0101', lane: 'station', action: 'fare-mode', args: { fareModes: ['waive-time', 'train-failure'] }, by: 'sup-wang', issuedAtMs: 1_700_000_000_000, expiresAtMs: 1_700_000_060_000 };
    expect(Buffer.from(commandSignedBytes(c)).toString()).toBe('gate-command-v1\n["00112233445566778899aabbccddeeff","BJ-0101","station","fare-mode",[null,null,["waive-time","train-failure"]],"sup-wang",1700000000000,1700000060000]');
    const s = signCommand(c, key);
    const pk = supervisorPublicKey(Buffer.from(pub, 'hex').toString('base64'));
    expect(commandSignatureOk(s, pk)).toBe(true);
    for (const fareModes of [['waive-time'], ['waive-time', 'train-failure', 'emergency-release'], []] as const) expect(commandSignatureOk({ ...s, args: { fareModes: [...fareModes] } }, pk)).toBe(false);
    expect(decodeCommand(encodeCommand(s))).toEqual({ ok: true, value: s });
    expect(decodeCommand(encodeCommand({ ...c, args: { fareModes: [] } }))).toMatchObject({ ok: true, value: { args: { fareModes: [] } } });
    // Out of order, twice, unknown, or beside another argument: not a command.
    for (const args of [{ fareModes: ['train-failure', 'waive-time'] }, { fareModes: ['waive-fare', 'waive-fare'] }, { fareModes: ['free-ride'] }, { fareModes: 'waive-fare' }, { fareModes: [], mode: 'closed' }, {}]) {
      expect(decodeCommand(b(JSON.stringify({ v: 1, ...c, args })))).toEqual({ ok: false, why: 'args' });
    }
    expect(fareModeSet(['emergency-release', 'waive-order', 'nonsense'])).toEqual(['waive-order', 'emergency-release']);
    // A lane's state names its fare modes (absent: no fare gate), checked like a command's.
    const state = { boot: 'b1', atMs: 9, mode: 'normal', state: 'normal.ready', flaps: 'closed', direction: 'exit', listVersion: 3, listAgeS: 0, link: 'up' as const, readers: {}, open: {}, fireAlarm: false };
    expect(decodeLaneState(encodeLaneState({ ...state, fareModes: ['waive-fare'] }))).toEqual({ ok: true, value: { ...state, fareModes: ['waive-fare'] } });
    expect(decodeLaneState(b(JSON.stringify({ v: 1, ...state, fareModes: ['late'] })))).toEqual({ ok: false, why: 'fareModes' });
  });
});
