// `gate pack`: one tarball with everything an edge box needs, built from this machine's install.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { pack } from '../operations/pack.js';

/** The project root: the folder with package.json above firmware/cli (works from the source and from dist/). */
function projectRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const up = here.includes(`${join('dist', 'firmware')}`) ? '../../..' : '../..';
  return join(here, up);
}

export function register(program: Command): void {
  program
    .command('pack')
    .description('build the offline install bundle (dist/, production node_modules, systemd unit, sample config, install.sh) for this CPU')
    .option('-o, --out <file>', 'output tarball (default gate-<version>-<platform>-<arch>.tar.gz in the project)')
    .option('--no-build', 'use dist/ as it is instead of compiling first')
    .option('--with-backoffice', 'also ship back-office-only packages (better-sqlite3)')
    .option('--root <dir>', 'project root', projectRoot())
    .action((opts: { out?: string; build: boolean; withBackoffice?: boolean; root: string }) => {
      try {
        const r = pack({ root: opts.root, out: opts.out, build: opts.build, withBackoffice: opts.withBackoffice, log: (l) => console.error(l) });
        console.log(r.file);
      } catch (e) {
        console.error(`gate pack: ${(e as Error).message}`);
        process.exitCode = 1;
      }
    });
}
