// `gate backoffice`: the reference back office (simulator/backoffice) as a standalone HTTP server.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('backoffice')
    .description('run the back office: registration, status feed, signed list publishing, transaction ingest')
    .option('--port <n>', 'TCP port', '8080')
    .option('--host <addr>', 'listen address', '127.0.0.1')
    .option('--db <file>', 'SQLite database file', 'backoffice.db')
    .option('--key <pem>', 'Ed25519 private key (PEM) that signs lists (default: generated, kept in the database)')
    .option('--publish-ms <n>', 'publish pending changes as a new list version this often (0 = only on request)', '5000')
    .option('--issuer-keys <file>', 'signed issuer trust-list document to serve at GET /v1/issuer-keys')
    .option('--tokens <file>', 'bearer tokens and their roles: JSON [{ "token", "role": gate|registration|issuer|status-feed|admin, "issuer"? }]')
    .option('--open', 'serve every endpoint without tokens on a non-loopback address (a closed test network only)')
    .action(async (o: { port: string; host: string; db: string; key?: string; publishMs: string; issuerKeys?: string; tokens?: string; open?: boolean }) => {
      // Loaded on use: the back office needs better-sqlite3, which an edge box's bundle leaves out.
      const { Backoffice, parseAccessTokens } = await import('../../simulator/backoffice/server.js');
      let tokens;
      try {
        tokens = o.tokens ? parseAccessTokens(readFileSync(o.tokens, 'utf8')) : undefined;
      } catch (e) {
        console.error(`gate backoffice: ${o.tokens}: ${(e as Error).message}`);
        process.exit(2);
      }
      const loopback = o.host === 'localhost' || o.host === '::1' || o.host.startsWith('127.');
      if (!tokens && !loopback && !o.open) {
        console.error(`gate backoffice: refusing to serve registration, status and admin endpoints on ${o.host} without --tokens (or --open on a closed test network)`);
        process.exit(2);
      }
      const bo = new Backoffice({
        db: o.db,
        signingKeyPem: o.key ? readFileSync(o.key, 'utf8') : undefined,
        publishIntervalMs: Number(o.publishMs),
        tokens,
      });
      if (o.issuerKeys) bo.setIssuerKeys(readFileSync(o.issuerKeys));
      const { url } = await bo.listen(Number(o.port), o.host);
      console.log(`back office listening on ${url} (db ${o.db}, list version ${bo.latestVersion()}, ${tokens ? `${tokens.length} access tokens` : 'open: no tokens'})`);
      console.log(`list signing public key (put it in the gate config lists.publicKeys):\n${bo.publicKeyPem}`);
      const stop = () => void bo.close().then(() => process.exit(0));
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
}
