// The issuer trust list a gate holds (`issuer-keys.bin` in the list directory): a document is written
// there only once it verifies against the gate's back-office keys (the `qr.backOfficeKeys` the lane was
// installed with) and is newer than what the gate holds; so the file's seq is the floor at boot, and a
// replayed older document, before or after a reboot, is refused. A provisioned trust list (the lane's
// `qr.trustList` file) counts too: a stored one older than it is ignored; one newer replaces it.

import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../platform/atomic-file.js';

/** Verify a trust-list document's signature and read its seq (the lane's back-office keys). Never throws. */
export type IssuerKeysVerifier = (document: Uint8Array) => { ok: true; seq: number } | { ok: false; detail: string };

export type IssuerKeysOffer =
  | { kind: 'taken'; seq: number; written: boolean; writeError?: string }
  | { kind: 'same' }
  | { kind: 'refused'; detail: string };

export class HeldTrustList {
  /** The newest seq held: the stored document's, or the provisioned one's when that is newer. */
  seq: number;
  /** The stored document, when it is newer than the provisioned one (handed to the lane at start). */
  document: Uint8Array | undefined;
  private constructor(
    readonly path: string,
    private readonly verify: IssuerKeysVerifier,
    seq: number,
    document: Uint8Array | undefined,
  ) {
    this.seq = seq;
    this.document = document;
  }

  /**
   * Read the stored document (verified again: a damaged or foreign file is ignored, with `problem` saying
   * why). `provisionedSeq`: the seq of the trust list the gate was provisioned with (-1: none).
   */
  static async open(path: string, verify: IssuerKeysVerifier, provisionedSeq = -1): Promise<{ held: HeldTrustList; problem?: string }> {
    let bytes: Uint8Array | undefined;
    try {
      bytes = new Uint8Array(await readFile(path));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return { held: new HeldTrustList(path, verify, provisionedSeq, undefined), problem: `${path}: ${(e as Error).message}` };
    }
    if (!bytes) return { held: new HeldTrustList(path, verify, provisionedSeq, undefined) };
    const r = verify(bytes);
    if (!r.ok) return { held: new HeldTrustList(path, verify, provisionedSeq, undefined), problem: `${path} does not verify (${r.detail}); ignored` };
    if (r.seq <= provisionedSeq) return { held: new HeldTrustList(path, verify, provisionedSeq, undefined) };
    return { held: new HeldTrustList(path, verify, r.seq, bytes) };
  }

  /**
   * A document fetched from the back office: refused unless it verifies and is newer than the one held
   * (the same seq with the same bytes changes nothing); then written atomically (write + fsync + rename),
   * and only then taken.
   */
  async offer(doc: Uint8Array): Promise<IssuerKeysOffer> {
    const r = this.verify(doc);
    if (!r.ok) return { kind: 'refused', detail: `issuer trust list refused: ${r.detail}` };
    if (r.seq === this.seq && (!this.document || sameBytes(doc, this.document))) return { kind: 'same' };
    if (r.seq <= this.seq) return { kind: 'refused', detail: `issuer trust list seq ${r.seq} is not newer than the seq ${this.seq} the gate holds (a replayed or rolled-back list)` };
    let writeError: string | undefined;
    try {
      await writeFileAtomic(this.path, doc);
    } catch (e) {
      // Verified: used now all the same; the floor holds until a restart.
      writeError = (e as Error).message;
    }
    this.seq = r.seq;
    this.document = doc;
    return { kind: 'taken', seq: r.seq, written: writeError === undefined, writeError };
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}
