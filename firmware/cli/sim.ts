import type { Command } from 'commander';
export function register(program: Command): void {
  program.command('sim').description('(being built)').action(() => { console.error('not yet'); process.exitCode = 1; });
}
