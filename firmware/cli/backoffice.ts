// `gate backoffice`: the reference back office (simulator/backoffice) as a standalone HTTP server.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';

/** A whole number in [min, max] from a command-line option, or exit 2 naming the option. */
function whole(name: string, v: string, min: number, max: number): number {
  const n = /^\d{1,15}$/.test(v) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) {
    console.error(`gate backoffice: ${name} must be a whole number from ${min} to ${max} (got ${JSON.stringify(v)})`);
    process.exit(2);
  }
  return n;
}

export function register(program: Command): void {
  program
    .command('backoffice')
    .description('run the back office: registration, status feed, signed list publishing, transaction ingest')
    .option('--port <n>', 'TCP port', '8080')
    .option('--host <addr>', 'listen address', '127.0.0.1')
    .option('--db <file>', 'SQLite database file', 'backoffice.db')
    .option('--key <pem>', 'Ed25519 private key (PEM) that signs lists (default: generated, kept in the database)')
    .option('--publish-ms <n>', 'publish pending changes as a new list version this often (0 = only on request)', '5000')
    .option('--trust-list-keys <file>', 'who signs issuer trust lists: JSON { "<signer id>": "<base64 Ed25519 public key>" } (as a gate\'s qr.backOfficeKeys); PUT /v1/issuer-keys stores only documents they signed')
    .option('--issuer-keys <file>', 'signed issuer trust-list document to serve at GET /v1/issuer-keys (verified with --trust-list-keys)')
    .option('--tokens <file>', 'bearer tokens and their roles: JSON [{ "token", "role": gate|registration|issuer|status-feed|admin, "issuer"? }]')
    .option('--open', 'serve every endpoint without tokens on a non-loopback address (a closed test network only)')
    .option('--tls-cert <pem>', 'serve https with this certificate (chain), PEM; gates check it against their lists.tls / journal.uploadTls (CA file or pinned key)')
    .option('--tls-key <pem>', 'the private key of --tls-cert, PEM')
    .option('--max-connections <n>', 'connections open at once; more are closed as they arrive', '512')
    .option('--request-timeout-ms <n>', 'a request\'s headers and body must arrive within this (408 and the connection closed otherwise)', '30000')
    .option('--headers-timeout-ms <n>', 'a request\'s headers must arrive within this', '10000')
    .option('--keep-alive-timeout-ms <n>', 'an idle keep-alive connection is closed after this', '5000')
    .action(async (o: {
      port: string; host: string; db: string; key?: string; publishMs: string; trustListKeys?: string; issuerKeys?: string; tokens?: string; open?: boolean; tlsCert?: string; tlsKey?: string;
      maxConnections: string; requestTimeoutMs: string; headersTimeoutMs: string; keepAliveTimeoutMs: string;
    }) => {
      // Loaded on use: the back office needs better-sqlite3 and fastify, which an edge box's bundle leaves out.
      const { Backoffice, parseAccessTokens, parseTrustListSigners } = await import('../../simulator/backoffice/server.js');
      const readOr2 = <T>(file: string | undefined, parse: (text: string) => T): T | undefined => {
        try {
          return file ? parse(readFileSync(file, 'utf8')) : undefined;
        } catch (e) {
          console.error(`gate backoffice: ${file}: ${(e as Error).message}`);
          process.exit(2);
        }
      };
      const tokens = readOr2(o.tokens, parseAccessTokens);
      const trustListSigners = readOr2(o.trustListKeys, parseTrustListSigners);
      if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) {
        console.error('gate backoffice: --tls-cert and --tls-key go together (the certificate and its private key, PEM)');
        process.exit(2);
      }
      const pem = (file: string, what: RegExp, label: string) =>
        readOr2(file, (text) => {
          if (!what.test(text)) throw new Error(`not ${label}`);
          return text;
        })!;
      const tls = o.tlsCert && o.tlsKey ? { cert: pem(o.tlsCert, /-----BEGIN CERTIFICATE-----/, 'a PEM certificate'), key: pem(o.tlsKey, /-----BEGIN [A-Z ]*PRIVATE KEY-----/, 'a PEM private key') } : undefined;
      const loopback = o.host === 'localhost' || o.host === '::1' || o.host.startsWith('127.');
      if (!tokens && !loopback && !o.open) {
        console.error(`gate backoffice: refusing to serve registration, status and admin endpoints on ${o.host} without --tokens (or --open on a closed test network)`);
        process.exit(2);
      }
      const limits = {
        maxConnections: whole('--max-connections', o.maxConnections, 1, 1_000_000),
        requestTimeoutMs: whole('--request-timeout-ms', o.requestTimeoutMs, 100, 3_600_000),
        headersTimeoutMs: whole('--headers-timeout-ms', o.headersTimeoutMs, 100, 3_600_000),
        keepAliveTimeoutMs: whole('--keep-alive-timeout-ms', o.keepAliveTimeoutMs, 100, 3_600_000),
      };
      const bo = new Backoffice({
        db: o.db,
        signingKeyPem: o.key ? readFileSync(o.key, 'utf8') : undefined,
        publishIntervalMs: whole('--publish-ms', o.publishMs, 0, 86_400_000),
        tokens,
        trustListSigners,
        limits,
        tls,
      });
      if (o.issuerKeys) {
        const r = bo.putIssuerKeys(readFileSync(o.issuerKeys));
        if (!r.ok) {
          console.error(`gate backoffice: ${o.issuerKeys}: ${r.message}`);
          await bo.close();
          process.exit(2);
        }
      }
      let url: string;
      try {
        ({ url } = await bo.listen(whole('--port', o.port, 0, 65535), o.host));
      } catch (e) {
        // A key that does not match the certificate, a port in use: said plainly, exit 2.
        console.error(`gate backoffice: cannot listen: ${(e as Error).message}`);
        await bo.close().catch(() => {});
        process.exit(2);
      }
      console.log(`back office listening on ${url} (db ${o.db}, list version ${bo.latestVersion()}, ${tokens ? `${tokens.length} access tokens` : 'open: no tokens'}${tls ? ', TLS' : ''}, at most ${limits.maxConnections} connections)`);
      console.log(`list signing public key (put it in the gate config lists.publicKeys):\n${bo.publicKeyPem}`);
      const stop = () => void bo.close().then(() => process.exit(0));
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
}
