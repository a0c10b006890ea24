// The gate's one HTTP client for the back office (list sync, the snapshot download, journal upload), over
// `http://` or `https://`. For https the server is checked against what the gate was configured with — a
// CA file (the chain must end there, and the certificate must name the host), a pinned SHA-256 of the
// leaf's public key (SubjectPublicKeyInfo, DER) or of the whole leaf certificate (DER), or both — and this
// happens before a byte of the request (a bearer token) is sent: the TLS socket is verified, then handed to
// the keep-alive agent. A refusal is an HttpClientError of kind 'tls' naming the check that failed.
// Node's fetch (undici) takes a custom CA only through the undici package's dispatcher; node:https takes
// it directly, so this module stays on node:http/node:https.

import { X509Certificate, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';

/** What an https server must prove. Plain data: it crosses to the list merge worker as a message. */
export interface TlsTrust {
  /** PEM of the CA certificate(s) the server's chain must end in (instead of the system's store). */
  ca?: string;
  /** Where `ca` came from, for messages. */
  caFile?: string;
  /** SHA-256 pins (32 bytes each): the leaf's SubjectPublicKeyInfo (DER) or the whole leaf certificate (DER). */
  pins?: readonly Uint8Array[];
}

export type HttpClientErrorKind = 'tls' | 'network' | 'timeout' | 'too-large' | 'cut';

/** Why a request got no answer. `code`: the TLS or socket error code (e.g. DEPTH_ZERO_SELF_SIGNED_CERT, PIN_MISMATCH, ECONNREFUSED). */
export class HttpClientError extends Error {
  constructor(
    readonly kind: HttpClientErrorKind,
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'HttpClientError';
  }
}

export interface HttpRequest {
  method?: 'GET' | 'POST' | 'PUT';
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  /** Headers and the whole body within this, or the request is torn down (HttpClientError 'timeout'). */
  timeoutMs: number;
  /** Largest body taken (default 64 MiB). */
  maxBytes?: number;
  /** Read the body into a SharedArrayBuffer (it can then go to a worker without a copy). */
  shared?: boolean;
  /** For an https URL: what the server must prove (default: the system's CA store and the host name). */
  tls?: TlsTrust;
}

export interface HttpResponse {
  status: number;
  /** A 2xx status. */
  ok: boolean;
  headers: IncomingHttpHeaders;
  body: Uint8Array;
  /** The body as UTF-8 text. */
  text(): string;
}

export interface HttpStream {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body as it arrives (the deadline still applies: a late body throws). Consume it or call cancel(). */
  body: AsyncIterable<Uint8Array>;
  cancel(): void;
  /** Call when done with the body (clears the deadline). */
  done(): void;
}

const DEFAULT_MAX = 64 << 20;

/** One request, its whole body read (at most maxBytes). Throws HttpClientError; any HTTP status is an answer. */
export async function httpRequest(url: string, r: HttpRequest): Promise<HttpResponse> {
  const s = await httpStream(url, r);
  try {
    const body = await readAll(s, r.maxBytes ?? DEFAULT_MAX, r.shared ?? false);
    return { status: s.status, ok: s.status >= 200 && s.status < 300, headers: s.headers, body, text: () => Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8') };
  } finally {
    s.done();
  }
}

/** One request whose body is read by the caller (a snapshot streamed to disk). Throws HttpClientError. */
export function httpStream(url: string, r: HttpRequest): Promise<HttpStream> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return Promise.reject(new HttpClientError('network', `not a URL: ${url}`));
  }
  const attempt = (retry: boolean): Promise<HttpStream> =>
    once(u, r).catch((e: unknown) => {
      // A kept-alive socket the server closed just as it was reused: send once more on a new one (every
      // request here is idempotent: reads, and journal batches the back office takes once by (lane, seq)).
      if (retry && e instanceof ReusedSocketReset) return attempt(false);
      throw e instanceof ReusedSocketReset ? e.cause : e;
    });
  return attempt(true);
}

class ReusedSocketReset extends Error {
  constructor(override readonly cause: HttpClientError) {
    super(cause.message);
  }
}

function once(u: URL, r: HttpRequest): Promise<HttpStream> {
  const secure = u.protocol === 'https:';
  if (!secure && u.protocol !== 'http:') return Promise.reject(new HttpClientError('network', `unsupported protocol ${u.protocol}`));
  const body = typeof r.body === 'string' ? Buffer.from(r.body) : r.body;
  const headers: Record<string, string | number> = { ...r.headers };
  if (body) headers['content-length'] = body.byteLength;
  return new Promise<HttpStream>((resolve, reject) => {
    let settled = false;
    const options: https.RequestOptions = {
      method: r.method ?? 'GET',
      host: u.hostname.replace(/^\[|\]$/g, ''),
      port: u.port || (secure ? 443 : 80),
      path: `${u.pathname}${u.search}`,
      headers,
      agent: secure ? agentFor(r.tls ?? {}) : plainAgent,
    };
    const req = (secure ? https : http).request(options);
    const timer = setTimeout(() => req.destroy(new HttpClientError('timeout', `no complete answer within ${r.timeoutMs} ms`)), r.timeoutMs);
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const err = classify(e);
      reject(req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE') ? new ReusedSocketReset(err) : err);
    };
    req.on('error', fail);
    req.on('response', (res: IncomingMessage) => {
      settled = true;
      // A connection lost before the caller reads the body must not be an unhandled 'error': the body's
      // iterator reports it (bodyOf) when it is read.
      res.on('error', () => {});
      let cancelled = false;
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: bodyOf(res, req),
        cancel: () => {
          cancelled = true;
          clearTimeout(timer);
          res.destroy();
        },
        done: () => {
          clearTimeout(timer);
          if (!cancelled && !res.complete) res.destroy();
        },
      });
    });
    req.end(body);
  });
}

/** The response body, with socket errors and a short body turned into HttpClientErrors. */
async function* bodyOf(res: IncomingMessage, req: http.ClientRequest): AsyncGenerator<Uint8Array> {
  const len = res.headers['content-length'] === undefined ? undefined : Number(res.headers['content-length']);
  let got = 0;
  try {
    for await (const c of res as AsyncIterable<Buffer>) {
      got += c.byteLength;
      yield c;
    }
  } catch (e) {
    // The deadline tears the request down with its own error; the response then sees 'aborted'.
    const why = (req as { errored?: Error | null }).errored;
    if (why instanceof HttpClientError) throw why;
    throw new HttpClientError('cut', `body cut at ${got}${len !== undefined ? ` of ${len}` : ''} bytes: ${(e as Error).message}`, (e as NodeJS.ErrnoException).code);
  }
  if (len !== undefined && got !== len) throw new HttpClientError('cut', `body cut at ${got} of ${len} bytes`);
}

/** Read a body into one buffer (shared memory if asked), refusing more than `max` bytes. */
async function readAll(s: HttpStream, max: number, shared: boolean): Promise<Uint8Array> {
  const alloc = (n: number) => new Uint8Array(shared ? new SharedArrayBuffer(n) : new ArrayBuffer(n));
  const said = s.headers['content-length'] === undefined ? NaN : Number(s.headers['content-length']);
  if (said > max) {
    s.cancel();
    throw new HttpClientError('too-large', `${said} bytes exceeds the limit of ${max}`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  let out = Number.isFinite(said) ? alloc(said) : undefined;
  for await (const c of s.body) {
    if (total + c.byteLength > max) {
      s.cancel();
      throw new HttpClientError('too-large', `more than ${max} bytes`);
    }
    if (out && total + c.byteLength <= out.byteLength) out.set(c, total);
    else {
      if (out) chunks.push(out.slice(0, total));
      out = undefined;
      chunks.push(c);
    }
    total += c.byteLength;
  }
  if (out) return total === out.byteLength ? out : out.subarray(0, total);
  const b = alloc(total);
  let p = 0;
  for (const c of chunks) {
    b.set(c, p);
    p += c.byteLength;
  }
  return b;
}

function classify(e: Error): HttpClientError {
  if (e instanceof HttpClientError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  if (code && (/^ERR_(SSL|TLS)_/.test(code) || code === 'EPROTO')) return new HttpClientError('tls', `TLS handshake failed (${code}): ${e.message}`, code);
  return new HttpClientError('network', code ? `${code}: ${e.message}` : e.message, code);
}

// ------------------------------------------------------------------------------------------------
// Agents: keep-alive, one per trust configuration; for https the socket is verified before it is used.

const plainAgent = new http.Agent({ keepAlive: true });
const secureAgents = new Map<string, https.Agent>();

function agentFor(t: TlsTrust): https.Agent {
  const key = createHash('sha256')
    .update(t.ca ?? '-')
    .update((t.pins ?? []).map((p) => Buffer.from(p).toString('hex')).join(','))
    .digest('hex');
  const held = secureAgents.get(key);
  if (held) return held;
  const a = new VerifyingAgent(t);
  secureAgents.set(key, a);
  return a;
}

/** Close every kept-alive connection (a bench measuring fresh handshakes; shutdown). The next request connects anew. */
export function dropConnections(): void {
  plainAgent.destroy();
  for (const a of secureAgents.values()) a.destroy();
}

class VerifyingAgent extends https.Agent {
  /** Built once: OpenSSL 3 takes milliseconds to make a context, which a handshake per poll would pay each time. */
  private readonly context: tls.SecureContext;

  constructor(private readonly trust: TlsTrust) {
    // No TLS session resumption: every connection shows its certificate and is checked.
    super({ keepAlive: true, maxCachedSessions: 0 });
    this.context = tls.createSecureContext(trust.ca ? { ca: trust.ca } : {});
  }

  // Node's agent takes the socket from the callback when createConnection returns nothing: the request
  // is written only once the peer has been checked.
  override createConnection(options: http.RequestOptions, cb?: (err: Error | null, socket: Duplex) => void): undefined {
    const host = options.host ?? 'localhost';
    const socket = tls.connect({
      ...(options as tls.ConnectionOptions),
      host,
      servername: isIP(host) ? undefined : host,
      secureContext: this.context,
      // Checked below, in one place, with the answer naming what failed.
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
      ALPNProtocols: ['http/1.1'],
    });
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      socket.off('error', finish);
      if (err) socket.destroy();
      cb?.(err, socket);
    };
    socket.once('error', finish);
    socket.once('secureConnect', () => finish(verifyPeer(socket, host, this.trust)));
    return undefined;
  }
}

/** Is this the server the gate was told to trust? null when it is; else the refusal, naming the check. */
export function verifyPeer(socket: tls.TLSSocket, host: string, t: TlsTrust): HttpClientError | null {
  const cert = socket.getPeerCertificate(true);
  if (!cert || !cert.raw) return new HttpClientError('tls', 'TLS certificate refused: the server sent no certificate', 'NO_CERTIFICATE');
  const pinned = t.pins && t.pins.length > 0;
  if (pinned) {
    const spki = spkiSha256(cert.raw);
    const der = createHash('sha256').update(cert.raw).digest();
    if (!t.pins!.some((p) => Buffer.compare(Buffer.from(p), spki) === 0 || Buffer.compare(Buffer.from(p), der) === 0)) {
      return new HttpClientError(
        'tls',
        `TLS certificate refused (PIN_MISMATCH): ${host}'s certificate (public key SHA-256 ${spki.toString('base64')}, certificate SHA-256 ${der.toString('base64')}) matches no pinned key`,
        'PIN_MISMATCH',
      );
    }
    // A pin alone is enough (a self-signed back office); with a CA file too, the chain and name must hold as well.
    if (!t.ca) return null;
  }
  if (!socket.authorized) {
    const code = String(socket.authorizationError ?? 'UNTRUSTED');
    const by = t.ca ? `the configured CA${t.caFile ? ` (${t.caFile})` : ''}` : "the system's CA store (set tls.caFile or tls.pinSha256 for a private back office)";
    return new HttpClientError('tls', `TLS certificate refused (${code}): ${host}'s certificate does not chain to ${by}`, code);
  }
  const name = tls.checkServerIdentity(host, cert);
  if (name) return new HttpClientError('tls', `TLS certificate refused (${(name as NodeJS.ErrnoException).code ?? 'ERR_TLS_CERT_ALTNAME_INVALID'}): ${name.message}`, (name as NodeJS.ErrnoException).code ?? 'ERR_TLS_CERT_ALTNAME_INVALID');
  return null;
}

/** SHA-256 of a certificate's SubjectPublicKeyInfo (DER), from the certificate's DER or PEM. */
export function spkiSha256(cert: Uint8Array | string): Buffer {
  const x = new X509Certificate(typeof cert === 'string' ? cert : Buffer.from(cert));
  return createHash('sha256').update(x.publicKey.export({ type: 'spki', format: 'der' })).digest();
}

// ------------------------------------------------------------------------------------------------
// Config: what a driver section says, checked at start-up with messages that name the field.

/**
 * A pin as an operator writes it: base64 (44 characters, as `openssl … | openssl dgst -sha256 -binary |
 * base64` prints), 64 hex digits, or openssl's colon-separated fingerprint; optionally prefixed `sha256/`.
 */
export function parsePin(text: string): Uint8Array {
  const s = text.trim().replace(/^sha256[/:]/i, '');
  let b: Buffer | undefined;
  if (/^[0-9a-f]{64}$/i.test(s)) b = Buffer.from(s, 'hex');
  else if (/^([0-9a-f]{2}:){31}[0-9a-f]{2}$/i.test(s)) b = Buffer.from(s.replace(/:/g, ''), 'hex');
  else if (/^[A-Za-z0-9+/]{43}=$/.test(s)) b = Buffer.from(s, 'base64');
  if (!b || b.byteLength !== 32) throw new Error(`not a SHA-256 pin (base64 of 32 bytes, 64 hex digits, or AB:CD:… fingerprint): ${JSON.stringify(text.slice(0, 80))}`);
  return new Uint8Array(b);
}

/** Read a CA file and parse pins (config time). Throws Error naming what is wrong. */
export function loadTlsTrust(o: { caFile?: string; pinSha256?: readonly string[] }): TlsTrust {
  const t: TlsTrust = {};
  if (o.caFile !== undefined) {
    let pem: string;
    try {
      pem = readFileSync(o.caFile, 'utf8');
    } catch (e) {
      throw new Error(`caFile ${o.caFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    try {
      if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no PEM certificate in it');
      new X509Certificate(pem);
    } catch (e) {
      throw new Error(`caFile ${o.caFile}: not a PEM certificate (${(e as Error).message})`);
    }
    t.ca = pem;
    t.caFile = o.caFile;
  }
  if (o.pinSha256 !== undefined) t.pins = o.pinSha256.map((p, i) => {
    try {
      return parsePin(p);
    } catch (e) {
      throw new Error(`pinSha256[${i}]: ${(e as Error).message}`);
    }
  });
  return t;
}

/** 127.0.0.0/8, ::1 or localhost. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::ffff:127.0.0.1';
}

/**
 * What is wrong with sending a bearer token (`token`) to `url` with `tls` settings, or undefined: a token
 * in clear over http:// beyond this box, or TLS settings on an http:// URL (they would silently do nothing).
 */
export function transportProblem(url: string, o: { token?: boolean; tls?: boolean }): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `not a URL: ${url}`;
  }
  if (u.protocol === 'http:' && o.tls) return `TLS settings are given but ${url} is http://: use https://`;
  if (u.protocol === 'http:' && o.token && !isLoopbackHost(u.hostname)) {
    return `refusing to send the bearer token in clear over http:// to ${u.hostname}: use https:// (with a CA file or a pinned certificate); plain http:// is allowed only to this box (127.0.0.1, ::1, localhost)`;
  }
  return undefined;
}
