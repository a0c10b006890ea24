// The JSON envelope shared by the back office's signed documents (issuer trust list, enforcement
// schedule): size bound, JSON object, then `format`/`v`/`alg` checked. Signature checks stay with each format.

export type EnvelopeResult =
  | { ok: true; env: Record<string, unknown> }
  | { ok: false; error: 'envelope' | 'json'; detail: string };

/** Parse a signed document's envelope; with `rejectArrays` a JSON array is refused as "not an object". */
export function parseSignedEnvelope(
  doc: Uint8Array,
  maxBytes: number,
  format: string,
  version: number,
  rejectArrays = false,
): EnvelopeResult {
  if (doc.length > maxBytes) return { ok: false, error: 'envelope', detail: `document larger than ${maxBytes} bytes` };
  let env: Record<string, unknown>;
  try {
    env = JSON.parse(Buffer.from(doc.buffer, doc.byteOffset, doc.byteLength).toString('utf8'));
  } catch (e) {
    return { ok: false, error: 'json', detail: (e as Error).message };
  }
  if (typeof env !== 'object' || env === null || (rejectArrays && Array.isArray(env))) return { ok: false, error: 'envelope', detail: 'not an object' };
  if (env.format !== format || env.v !== version || env.alg !== 'Ed25519') {
    return { ok: false, error: 'envelope', detail: `format/v/alg must be ${format}/${version}/Ed25519` };
  }
  return { ok: true, env };
}
