// List sync round trips over TLS beside the same over plain HTTP, in one run against two real back offices
// on loopback (same process, same data): an up-to-date poll (the deltas request answered 204 with its
// signed freshness statement, verified by the gate) on a kept-alive connection and on a new connection
// each time (a poll every 30 s outlives the back office's 5 s keep-alive, so on a box each poll pays the
// handshake), and a small delta (10 changes: fetched, verified, merged, appended to the delta log).
// Rounds alternate the two transports so a load change on the machine hits both alike; medians reported.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListSync } from '../../firmware/lists/list-sync.js';
import { dropConnections, loadTlsTrust } from '../../firmware/platform/https-client.js';
import { trustedListKey } from '../../protocol/lists/index.js';
import { Backoffice } from '../../simulator/backoffice/server.js';
import { withCheckDigit } from '../../simulator/backoffice/validate.js';
import { makePki } from '../support/certs.js';
import { type BenchReport, percentile } from './report.js';

const ROUNDS = 6;
const PER_ROUND = 25;
const WARMUP = 5;
const ENTRIES = 10_000;
const DELTA_CHANGES = 10;

type Kind = 'warm' | 'cold' | 'delta';
type Side = { name: 'tls' | 'http'; bo: Backoffice; sync: ListSync; samples: Record<Kind, number[]> };

const card = (i: number) => withCheckDigit(`310430${String(i).padStart(12, '0')}`);

export async function run(report: BenchReport): Promise<void> {
  const pki = makePki();
  const dir = mkdtempSync(join(tmpdir(), 'bench-sync-tls-'));
  const sides: Side[] = [];
  try {
    for (const name of ['tls', 'http'] as const) {
      const bo = new Backoffice({ db: ':memory:', tls: name === 'tls' ? { cert: pki.cert, key: pki.key } : undefined });
      const { url } = await bo.listen(0);
      bo.importEntries(Array.from({ length: ENTRIES }, (_, i) => [`card:${card(i)}`, 'green'] as [string, 'green']));
      bo.publish();
      const sync = await ListSync.open({ url, dir: join(dir, name), trustedKeys: [trustedListKey(bo.publicKeyPem)], tls: name === 'tls' ? loadTlsTrust({ caFile: pki.caFile }) : undefined });
      const first = await sync.syncOnce();
      if (first.kind !== 'applied') throw new Error(`${name}: first sync ${JSON.stringify(first)}`);
      sides.push({ name, bo, sync, samples: { warm: [], cold: [], delta: [] } });
    }
    let next = ENTRIES;
    const measure = async (s: Side, kind: Kind) => {
      for (let i = 0; i < PER_ROUND + WARMUP; i++) {
        if (kind === 'cold') dropConnections();
        if (kind === 'delta') {
          s.bo.importEntries(Array.from({ length: DELTA_CHANGES }, () => [`card:${card(next++)}`, 'red'] as [string, 'red']));
          s.bo.publish();
          // The merge of the previous delta has settled: the round trip measured is this one alone.
          await (s.sync.current() as { settled?: Promise<unknown> }).settled;
        }
        const t0 = process.hrtime.bigint();
        const r = await s.sync.syncOnce();
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        const want = kind === 'delta' ? 'applied' : 'up-to-date';
        if (r.kind !== want) throw new Error(`${s.name} ${kind}: ${JSON.stringify(r)}`);
        if (i >= WARMUP) s.samples[kind].push(ms);
      }
    };
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? sides : [...sides].reverse();
      for (const kind of ['warm', 'cold', 'delta'] as const) for (const s of order) await measure(s, kind);
    }
    const [tls, plain] = sides;
    const what: Record<Kind, string> = {
      warm: 'up-to-date poll with its freshness statement, kept-alive connection',
      cold: 'up-to-date poll with its freshness statement, new connection (TCP + TLS handshake)',
      delta: `small delta (${DELTA_CHANGES} changes on ${ENTRIES} entries): fetch, verify, merge, log append (fsync)`,
    };
    for (const kind of ['warm', 'cold', 'delta'] as const) {
      report.row({
        section: 'sync',
        metric: `${what[kind]}, median over TLS`,
        value: percentile(tls.samples[kind], 50),
        unit: 'ms',
        peer: { name: 'plain HTTP', value: percentile(plain.samples[kind], 50) },
        note: `${tls.samples[kind].length} each, ${ROUNDS} alternating rounds; p90 ${percentile(tls.samples[kind], 90).toFixed(2)} vs ${percentile(plain.samples[kind], 90).toFixed(2)} ms; gate and back office in one process`,
      });
    }
    report.row({ section: 'sync', metric: 'freshness statements signed by the TLS back office', value: tls.bo.counters.statements, unit: 'statements', note: `gate refused ${tls.sync.status().counters.freshnessRefused}` });
  } finally {
    for (const s of sides) {
      await s.sync.stop();
      await s.bo.close();
    }
    dropConnections();
    rmSync(dir, { recursive: true, force: true });
    pki.remove();
  }
}
