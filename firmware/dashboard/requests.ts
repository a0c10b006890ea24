// The dashboard's HTTP plumbing: refused requests as classified errors, bounded JSON bodies, JSON answers.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import { GateError, GateErrorCode } from '../../protocol/errors.js';

const MAX_BODY = 16 * 1024;

/** A refused request: a GateError with code bad-request; `status` and `kind` go back in the HTTP answer. */
export class RequestError extends GateError {
  constructor(
    readonly status: number,
    readonly kind: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message, GateErrorCode.BadRequest, { status, kind });
    this.name = 'RequestError';
  }
}

export function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (!r.success) {
    const first = r.error.issues[0];
    const where = first.path.length ? first.path.join('.') : 'body';
    const hint = where === 'confirmed' ? ' (this action needs an explicit confirmation)' : '';
    throw new RequestError(400, where === 'confirmed' ? 'not-confirmed' : 'bad-body', `${where}: ${first.message}${hint}`);
  }
  return r.data;
}

/**
 * Actions take JSON only: a cross-site form cannot send it, and a cross-site fetch with it needs a preflight
 * that is never answered. The Origin and the session come after (access.ts).
 */
export function checkContentType(req: IncomingMessage): void {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') throw new RequestError(415, 'bad-content-type', 'actions take a JSON body (content-type: application/json)');
}

export function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      // Over the limit: answer 413 and drop the rest as it arrives (cutting the socket would lose the answer).
      if (size > MAX_BODY) reject(new RequestError(413, 'too-large', `body over ${MAX_BODY} bytes`));
      else chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_BODY) return;
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return resolve({});
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new RequestError(400, 'bad-json', 'body is not valid JSON'));
      }
    });
    req.on('error', (e) => reject(new RequestError(400, 'bad-request', e.message)));
  });
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

