// `npm run bench`: every section in one run, each figure beside its peer. `--only a,b` picks sections
// (`journal` is the journal part of `lists` alone, which `lists` runs too).
import { BenchReport } from './report.js';

type Section = { name: string; load: () => Promise<{ run: (r: BenchReport) => Promise<void> }> };

const sections: Section[] = [
  { name: 'decision', load: () => import('./decision.js') },
  { name: 'card', load: () => import('./card.js') },
  { name: 'fares', load: () => import('./fares.js') },
  { name: 'barrier', load: () => import('./barrier.js') },
  { name: 'qr', load: () => import('./qr.js') },
  { name: 'lists', load: () => import('./lists.js') },
  { name: 'journal', load: () => import('./journal.js') },
  { name: 'fleet', load: () => import('./fleet.js') },
  { name: 'array', load: () => import('./array.js') },
  { name: 'station', load: () => import('./station.js') },
  { name: 'flaps', load: () => import('./flaps.js') },
  { name: 'sync', load: () => import('./sync-tls.js') },
  { name: 'rollout', load: () => import('./rollout.js') },
  { name: 'journal-integrity', load: () => import('./journal-integrity.js') },
  { name: 'replay', load: () => import('./replay.js') },
  { name: 'sim', load: () => import('./sim.js') },
];

const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1].split(',') : undefined;
const report = new BenchReport();
for (const s of sections) {
  if (only ? !only.includes(s.name) : s.name === 'journal') continue;
  console.log(`\n== ${s.name} ==`);
  try {
    const m = await s.load();
    await m.run(report);
  } catch (e) {
    console.log(`[${s.name}] FAILED: ${(e as Error).stack ?? e}`);
    process.exitCode = 1;
  }
}
console.log('\nBENCH_JSON ' + JSON.stringify(report.rows));
