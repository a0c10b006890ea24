// Real certificates for the TLS tests and the bench, made with the openssl command line into a temp dir:
// a CA, a server certificate it signs (for 127.0.0.1 / localhost, or the names asked), and a second,
// unrelated CA to show a wrong one is refused. Without openssl the caller FAILS and says what to install.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spkiSha256 } from '../../firmware/platform/https-client.js';

export interface TestPki {
  dir: string;
  /** The CA that signed `server` (PEM file and text). */
  caFile: string;
  caPem: string;
  /** Another CA that signed nothing of ours. */
  otherCaFile: string;
  /** The server's certificate and key (PEM files), signed by the CA, for the names asked. */
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
  /** A self-signed certificate and key (for pinning without a CA). */
  selfCertFile: string;
  selfKeyFile: string;
  /** Base64 SHA-256 of the server certificate's public key (SPKI), as a gate's pin. */
  spkiPin: string;
  /** Base64 SHA-256 of the self-signed certificate's public key. */
  selfSpkiPin: string;
  remove(): void;
}

export function requireOpenssl(): void {
  const r = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error('openssl is missing: the TLS tests make real certificates with it (apt-get install openssl)');
}

/** A CA and a server certificate for `names` (default 127.0.0.1 and localhost), plus a stranger CA and a self-signed pair. */
export function makePki(names: { dns?: string[]; ip?: string[] } = {}): TestPki {
  requireOpenssl();
  const dir = mkdtempSync(join(tmpdir(), 'pki-'));
  const f = (n: string) => join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=Test Back Office CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  ssl('req', '-x509', ...ec, '-keyout', f('other-ca.key'), '-out', f('other-ca.pem'), '-days', '2', '-subj', '/CN=Some Other CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  const dns = names.dns ?? ['localhost'];
  const ip = names.ip ?? ['127.0.0.1'];
  const san = [...dns.map((d) => `DNS:${d}`), ...ip.map((i) => `IP:${i}`)].join(',');
  writeFileSync(f('server.ext'), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n`);
  ssl('req', '-new', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', `/CN=${dns[0] ?? ip[0]}`);
  ssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('server.ext'));
  ssl('req', '-x509', ...ec, '-keyout', f('self.key'), '-out', f('self.pem'), '-days', '2', '-subj', '/CN=self-signed back office', '-addext', `subjectAltName=${san}`);
  const cert = readFileSync(f('server.pem'), 'utf8');
  return {
    dir,
    caFile: f('ca.pem'),
    caPem: readFileSync(f('ca.pem'), 'utf8'),
    otherCaFile: f('other-ca.pem'),
    certFile: f('server.pem'),
    keyFile: f('server.key'),
    cert,
    key: readFileSync(f('server.key'), 'utf8'),
    selfCertFile: f('self.pem'),
    selfKeyFile: f('self.key'),
    spkiPin: spkiSha256(cert).toString('base64'),
    selfSpkiPin: spkiSha256(readFileSync(f('self.pem'), 'utf8')).toString('base64'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
