// The recording format (protocol/README.md, "Lane recordings") in golden bytes: the key derivation checked
// against RFC 5869 HKDF written out with HMAC, and the GCM tags against WebCrypto (a second AES-GCM path);
// a header and a closing block encode to these exact bytes; a records block in these bytes decodes to these
// records; blocks compressed with the segment's earlier text decode in order, and not out of it.
import { describe, expect, it } from 'vitest';
import { createHmac, webcrypto } from 'node:crypto';
import {
  BlockKind,
  NO_DICTIONARY,
  decodeBlock,
  decodeSegmentHeader,
  encodeBlock,
  encodeSegmentHeader,
  parseRecordingKeyFile,
  recordingKey,
  type BlockDictionary,
  type RecordedItem,
} from '../../protocol/recording.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const seq = (n: number, from: number) => Uint8Array.from({ length: n }, (_, i) => from + i);
const secret = seq(32, 0);
const key = recordingKey(secret);

/** RFC 5869, step by step: extract with the salt, expand with the info. */
function hkdf(ikm: Uint8Array, salt: string, info: string, length: number): string {
  const prk = createHmac('sha256', salt).update(ikm).digest();
  let t = Buffer.alloc(0);
  let okm = Buffer.alloc(0);
  for (let i = 1; okm.length < length; i++) {
    t = createHmac('sha256', prk).update(Buffer.concat([t, Buffer.from(info), Buffer.from([i])])).digest();
    okm = Buffer.concat([okm, t]);
  }
  return okm.subarray(0, length).toString('hex');
}

const HEADER =
  '47524543010000000100000001000000101112131415161718191a1b1c1d1e1f5fc01098ec4fe0bd801544e08001000000000000000000000000000000000000a0a1a2a3a4a5a6a7a8a9aaab47b4268d2310df60cd5c9064616e9135';
const BLOCK =
  '0100000001000000020000008c00000052000000b0b1b2b3b4b5b6b7b8b9babb758c410ac2301444f71e63dc4648a916fc6bbb10b5887a81907ca1086df94d8452029ec683791209eaaa38bbf79899111e04be43c1785056ac729deb4f141834c20f1d83b0df563b28840ee425708cb3f1cf369b6c8fa7f25c5697720385be764971e36548d806b149081bc7b2f879e30ffde4f356370e046bc44141f8fa057a3d9ea934d7a6b0cb35627c03e24901016272f14c06ea77735d2263c3e5e0307aef849fb546feca5abd451c73e69986b33c48303d11e0ea1c791be41e26cae01b04380fa90b10e08cf25962e43a49c38fa95485dc6a2aad717ba6c46f679b6d09b2025b5b518139bee6ce0a274195';
const END = '0300000002000000000000000000000000000000c0c1c2c3c4c5c6c7c8c9cacbf17c92eb65f85384290b8551a9d11a60';

const RECORDS: RecordedItem[] = [
  { clear: { t: 'ev', at: 1653030000000, e: { type: 'LINK', up: true } } },
  {
    clear: { t: 'ev', at: 1653030001000, e: { type: 'PRESENTED', side: 'entry', source: 'reader-entry', atMs: 1653030001000, kind: 'card', ref: 'card:…0001#0a6c49' } },
    secret: { presented: { kind: 'credential', credential: { kind: 'card', cardNumber: '3104100012300000001' } } },
  },
];

describe('the recording key', () => {
  it('is HKDF-SHA256 of the secret with salt gate-recording (RFC 5869)', () => {
    expect(hex(key.aes)).toBe(hkdf(secret, 'gate-recording', 'aes-256-gcm v1', 32));
    expect(hex(key.keyId)).toBe(hkdf(secret, 'gate-recording', 'key id v1', 8));
    expect(hex(key.keyId)).toBe('5fc01098ec4fe0bd');
  });

  it('reads from 64 hex digits, base64, or 32 raw bytes, and says what it expected otherwise', () => {
    const bytes = Buffer.from(secret);
    for (const text of [bytes.toString('hex') + '\n', `  ${bytes.toString('base64')}\n`]) {
      const r = parseRecordingKeyFile(Buffer.from(text));
      expect(r.ok && hex(r.secret)).toBe(hex(secret));
    }
    expect(parseRecordingKeyFile(bytes)).toMatchObject({ ok: true });
    expect(parseRecordingKeyFile(Buffer.from('not a key'))).toMatchObject({ ok: false, why: expect.stringContaining('64 hex digits') });
  });
});

describe('golden bytes', () => {
  const header = encodeSegmentHeader({ segment: 1, firstBlock: 1, recordingId: seq(16, 0x10), createdAtMs: 1653030000000, prevTag: new Uint8Array(16), opensWithCheckpoint: false }, key, seq(12, 0xa0));

  it('a segment header encodes to its bytes and reads back', () => {
    expect(hex(header.bytes)).toBe(HEADER);
    const h = decodeSegmentHeader(Buffer.from(HEADER, 'hex'), key);
    expect(h.ok && h.header).toMatchObject({ segment: 1, firstBlock: 1, createdAtMs: 1653030000000, opensWithCheckpoint: false });
  });

  it("a header's tag is AES-256-GCM over no plaintext with the header as AAD (WebCrypto agrees)", async () => {
    const k = await webcrypto.subtle.importKey('raw', key.aes, 'AES-GCM', false, ['encrypt']);
    const bytes = Buffer.from(HEADER, 'hex');
    const tag = await webcrypto.subtle.encrypt({ name: 'AES-GCM', iv: bytes.subarray(64, 76), additionalData: bytes.subarray(0, 76), tagLength: 128 }, k, new Uint8Array(0));
    expect(hex(new Uint8Array(tag))).toBe(hex(bytes.subarray(76, 92)));
  });

  it('a records block in these bytes decodes to these records (the secret part decrypted)', () => {
    const b = decodeBlock(Buffer.from(BLOCK, 'hex'), 0, key, header.tag, 1);
    expect(b.ok && b.block.records).toEqual(RECORDS);
    expect(b.ok && b.block.kind).toBe(BlockKind.records);
  });

  it('WebCrypto opens the secret part with the chain tag, block header and clear part as AAD', async () => {
    const k = await webcrypto.subtle.importKey('raw', key.aes, 'AES-GCM', false, ['decrypt']);
    const bytes = Buffer.from(BLOCK, 'hex');
    const c = bytes.readUInt32LE(12);
    const aad = Buffer.concat([header.tag, bytes.subarray(0, 32 + c)]);
    const plain = await webcrypto.subtle.decrypt({ name: 'AES-GCM', iv: bytes.subarray(20, 32), additionalData: aad, tagLength: 128 }, k, bytes.subarray(32 + c));
    const { inflateRawSync } = await import('node:zlib');
    expect(JSON.parse(inflateRawSync(new Uint8Array(plain)).toString())).toEqual([null, RECORDS[1].secret]);
  });

  it('a recording-end block with no note encodes to its bytes', () => {
    const blockTag = Buffer.from(BLOCK, 'hex').subarray(-16);
    const end = encodeBlock(BlockKind.recordingEnd, 2, [], key, seq(12, 0xc0), blockTag);
    expect(hex(end.bytes)).toBe(END);
  });
});

describe('dictionaries', () => {
  const items = (i: number): RecordedItem[] => [
    { clear: { t: 'ev', at: 1653030000000 + i, e: { type: 'FLAPS', position: 'closed' } } },
    { clear: { t: 'decide', at: 1653030000000 + i, n: i, side: 'entry', lv: 1, st: 'green' }, secret: { ride: { ok: true } } },
  ];

  it('blocks compressed with the texts before them decode in order, smaller than alone; out of order they do not', () => {
    let tag: Uint8Array = new Uint8Array(16);
    let dict: BlockDictionary = NO_DICTIONARY;
    const blocks: Uint8Array[] = [];
    const tags: Uint8Array[] = [];
    for (let i = 1; i <= 3; i++) {
      const b = encodeBlock(BlockKind.records, i, items(i), key, seq(12, i), tag, dict);
      blocks.push(b.bytes);
      tags.push(b.tag);
      tag = b.tag;
      dict = b.dict;
    }
    const alone = encodeBlock(BlockKind.records, 3, items(3), key, seq(12, 3), new Uint8Array(16)).bytes;
    expect(blocks[2].byteLength).toBeLessThan(alone.byteLength);
    tag = new Uint8Array(16);
    dict = NO_DICTIONARY;
    for (let i = 1; i <= 3; i++) {
      const b = decodeBlock(blocks[i - 1], 0, key, tag, i, true, dict);
      expect(b.ok && b.block.records).toEqual(items(i));
      if (!b.ok) return;
      tag = b.block.tag;
      dict = b.block.dict;
    }
    // The second block read without the first's text: it authenticates (its chain tag given) but cannot be read.
    expect(decodeBlock(blocks[1], 0, key, tags[0], 2)).toMatchObject({ ok: false, problem: 'bad-records' });
    // Authenticated only (as a reader's first pass does), it needs no dictionary.
    expect(decodeBlock(blocks[1], 0, key, tags[0], 2, false)).toMatchObject({ ok: true });
  });
});
