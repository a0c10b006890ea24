// The offline install bundle: one .tar.gz with everything an edge box needs (built dist/, production
// node_modules with their native addons as built on this machine, the systemd unit, the udev rule, a
// sample lane config, install.sh and a manifest naming the CPU and Node ABI it was built for).
//
// Production dependencies are the closure of package.json's dependencies and optionalDependencies,
// resolved through package-lock.json the way Node resolves them (nested node_modules first), so the
// installed node_modules is reused with `--omit=dev` semantics and nothing is downloaded.

import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

interface LockPackage {
  version?: string;
  dev?: boolean;
  optional?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

/** Packages that only the back office needs; left out of a gate box's bundle unless asked for. */
export const BACKOFFICE_ONLY = ['better-sqlite3', 'fastify'];

/**
 * The node_modules locations (e.g. "node_modules/pino", "node_modules/a/node_modules/b") a production
 * install needs, from package-lock.json. Optional packages absent on disk (other platforms) are skipped.
 */
export function productionPackages(root: string, leaveOut: string[] = []): string[] {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockPackage> };
  const pkgs = lock.packages;
  const top = pkgs[''] ?? {};
  const found = new Set<string>();
  const resolveFrom = (from: string, name: string): string | undefined => {
    // Node's lookup: <from>/node_modules/<name>, then each enclosing node_modules up to the root.
    let base = from;
    for (;;) {
      const loc = `${base ? `${base}/` : ''}node_modules/${name}`;
      if (pkgs[loc]) return loc;
      if (!base) return undefined;
      const i = base.lastIndexOf('/node_modules/');
      base = i < 0 ? '' : base.slice(0, i);
    }
  };
  const visit = (from: string, deps: Record<string, string> | undefined, optional: boolean) => {
    for (const name of Object.keys(deps ?? {})) {
      if (leaveOut.includes(name)) continue;
      const loc = resolveFrom(from, name);
      if (!loc) {
        if (optional) continue;
        throw new Error(`${name} (needed by ${from || 'package.json'}) is not in package-lock.json: run npm install`);
      }
      if (found.has(loc)) continue;
      if (!existsSync(join(root, loc))) {
        if (optional || pkgs[loc]?.optional) continue;
        throw new Error(`${loc} is in package-lock.json but not installed: run npm ci`);
      }
      found.add(loc);
      visit(loc, pkgs[loc].dependencies, false);
      visit(loc, pkgs[loc].optionalDependencies, true);
    }
  };
  visit('', top.dependencies, false);
  visit('', top.optionalDependencies, true);
  // A package inside another's folder is shipped with it; list only outermost folders for tar.
  return [...found].sort().filter((loc, i, all) => !all.slice(0, i).some((p) => loc.startsWith(`${p}/`)));
}

/** A lane config for a real box; every field is explained in deploy/README.md. */
export const SAMPLE_CONFIG = {
  lane: { id: 'L01', station: 'XZM', direction: 'bidirectional' },
  drivers: {
    barrier: { type: 'serial', path: '/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K1234-if00-port0', baudRate: 115200 },
    sources: [
      { type: 'pcsc', side: 'entry', reader: 'ACR1252' },
      { type: 'camera', side: 'entry', device: '/dev/video0' },
    ],
  },
  lists: {
    type: 'http-sync',
    url: 'https://afc-backoffice.example/api/v1/lists',
    dir: '/var/lib/gate/lists',
    publicKeys: ['REPLACE-WITH-THE-BACK-OFFICE-LIST-SIGNING-KEY'],
    token: 'REPLACE-WITH-THIS-GATE-S-BACK-OFFICE-TOKEN',
  },
  journal: { type: 'file', dir: '/var/lib/gate/journal', uploadUrl: 'https://afc-backoffice.example/api/v1/journal', uploadToken: 'REPLACE-WITH-THIS-GATE-S-BACK-OFFICE-TOKEN' },
  backoffice: { url: 'https://afc-backoffice.example/healthz' },
  health: { host: '127.0.0.1', port: 9464 },
  log: { level: 'info' },
};

export const INSTALL_SH = `#!/bin/sh
# Install or upgrade the fare-gate runtime from this bundle. Run as root on the edge box:
#   tar -xzf gate-*.tar.gz && sudo ./gate-*/install.sh
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=\${PREFIX:-/opt/gate}

want_arch=$(sed -n 's/.*"arch": *"\\([^"]*\\)".*/\\1/p' "$HERE/manifest.json")
want_abi=$(sed -n 's/.*"nodeModulesAbi": *"\\([^"]*\\)".*/\\1/p' "$HERE/manifest.json")
case "$(uname -m)" in aarch64|arm64) arch=arm64 ;; x86_64|amd64) arch=x64 ;; armv7l) arch=arm ;; *) arch=$(uname -m) ;; esac
if [ "$arch" != "$want_arch" ]; then
  echo "this bundle was built for $want_arch, this box is $arch: build the bundle on (or for) $arch (see deploy/README.md)" >&2
  exit 1
fi
if ! command -v node >/dev/null 2>&1; then
  echo "node is not installed: install Node.js 20 (see deploy/README.md, 'Node.js')" >&2
  exit 1
fi
abi=$(node -p process.versions.modules)
if [ "$abi" != "$want_abi" ]; then
  echo "native addons were built for Node ABI $want_abi, this box's node has $abi ($(node -v)): install the same Node major as the build machine" >&2
  exit 1
fi

# A system user with no login; device access comes from groups (the unit adds them too).
getent group gate >/dev/null || groupadd --system gate
getent passwd gate >/dev/null || useradd --system --gid gate --home-dir /var/lib/gate --no-create-home --shell /usr/sbin/nologin gate
for g in dialout plugdev video; do getent group "$g" >/dev/null && usermod -aG "$g" gate; done

install -d -o gate -g gate -m 0750 /var/lib/gate /var/lib/gate/journal /var/lib/gate/lists
install -d -m 0755 /etc/gate
if [ ! -f /etc/gate/lane.json ]; then
  install -m 0640 -g gate "$HERE/lane.sample.json" /etc/gate/lane.json
  echo "wrote /etc/gate/lane.json from the sample: edit it for this lane"
fi

# Unpack next to the old version, then swap: the old one stays in $PREFIX.previous for a rollback.
rm -rf "$PREFIX.new"
mkdir -p "$PREFIX.new"
cp -a "$HERE/dist" "$HERE/node_modules" "$HERE/deploy" "$HERE/package.json" "$HERE/manifest.json" "$HERE/lane.sample.json" "$PREFIX.new/"
if [ -d "$PREFIX" ]; then rm -rf "$PREFIX.previous"; mv "$PREFIX" "$PREFIX.previous"; fi
mv "$PREFIX.new" "$PREFIX"

cat > /usr/local/bin/gate <<EOF
#!/bin/sh
exec node $PREFIX/dist/firmware/cli/gate.js "\\$@"
EOF
chmod 0755 /usr/local/bin/gate

install -m 0644 "$HERE/deploy/gate.service" /etc/systemd/system/gate.service
install -m 0644 "$HERE/deploy/99-gate-serial.rules" /etc/udev/rules.d/99-gate-serial.rules
if command -v udevadm >/dev/null 2>&1; then udevadm control --reload || true; udevadm trigger --subsystem-match=usb-serial || true; fi
if command -v systemctl >/dev/null 2>&1; then systemctl daemon-reload || true; fi

echo "installed $(sed -n 's/.*"version": *"\\([^"]*\\)".*/\\1/p' "$HERE/manifest.json") to $PREFIX"
echo "next: gate doctor --config /etc/gate/lane.json && systemctl enable --now gate"
`;

export interface PackOptions {
  /** Project root (package.json, package-lock.json, dist/, node_modules/). */
  root: string;
  /** Output tarball; default gate-<version>-linux-<arch>.tar.gz in the root. */
  out?: string;
  /** Compile TypeScript first (tsc -p tsconfig.build.json). */
  build?: boolean;
  /** Also ship back-office-only packages (better-sqlite3). */
  withBackoffice?: boolean;
  log?: (line: string) => void;
}

export interface PackResult {
  file: string;
  /** Top folder inside the tarball, e.g. gate-0.1.0-linux-arm64. */
  prefix: string;
  packages: string[];
}

function sh(cmd: string, args: string[], cwd: string): void {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${cmd} could not run: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 3).join(' ')} ... failed (${r.status}):\n${(r.stderr || r.stdout).slice(-2000)}`);
}

export function pack(opts: PackOptions): PackResult {
  const root = resolve(opts.root);
  const log = opts.log ?? (() => {});
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  const prefix = `gate-${pkg.version}-${process.platform}-${process.arch}`;
  const out = resolve(opts.out ?? join(root, `${prefix}.tar.gz`));

  if (opts.build) {
    log('building dist/ (tsc -p tsconfig.build.json)');
    sh(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], root);
  }
  const entry = join(root, 'dist/firmware/cli/gate.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing: build first (npm run build) or pass --build`);

  const packages = productionPackages(root, opts.withBackoffice ? [] : BACKOFFICE_ONLY);
  log(`${packages.length} production packages`);

  const stage = mkdtempSync(join(tmpdir(), 'gate-pack-'));
  try {
    const top = join(stage, prefix);
    mkdirSync(join(top, 'deploy'), { recursive: true });
    const deploy = join(root, 'firmware/deploy');
    for (const f of ['gate.service', '99-gate-serial.rules', 'README.md']) copyFileSync(join(deploy, f), join(top, 'deploy', f));
    copyFileSync(join(root, 'package.json'), join(top, 'package.json'));
    writeFileSync(join(top, 'lane.sample.json'), JSON.stringify(SAMPLE_CONFIG, null, 2) + '\n');
    writeFileSync(join(top, 'install.sh'), INSTALL_SH);
    chmodSync(join(top, 'install.sh'), 0o755);
    const manifest = {
      name: 'fare-gate-runtime',
      version: pkg.version,
      platform: process.platform,
      arch: process.arch,
      node: process.version,
      nodeModulesAbi: process.versions.modules,
      builtAt: new Date().toISOString(),
      packages: packages.length,
      backofficePackages: !!opts.withBackoffice,
    };
    writeFileSync(join(top, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');

    mkdirSync(dirname(out), { recursive: true });
    // Files from the project are renamed into the top folder as tar reads them, so node_modules is
    // never copied to a staging area. The bench and test builds are not needed on a box.
    sh(
      'tar',
      [
        '-czf', out,
        '--owner=0', '--group=0', '--numeric-owner',
        '--exclude=dist/test', '--exclude=*.tsbuildinfo', '--exclude=node_modules/.bin', '--exclude=node_modules/*/.bin',
        '--exclude=.package-lock.json',
        '-C', stage, prefix,
        '-C', root, `--transform=s,^\\(dist\\|node_modules\\),${prefix}/\\1,`,
        'dist', ...packages,
      ],
      root,
    );
    log(`wrote ${out}`);
    return { file: out, prefix, packages };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}
