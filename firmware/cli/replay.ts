// `gate replay DIR`: a lane recording (gate run --record, gate sim --record) through the same gate machine:
// every decision, checked against what the lane decided; with --config / --lists, which decisions another
// version would make otherwise, and why. Exit 0: replayed as recorded; 1: the recording (or its key) was
// refused; 2: bad options or config; 4: the replay went otherwise than the lane did.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { GateErrorCode, isGateError } from '../../protocol/errors.js';
import { loadRecordingKey } from '../recording/recorder.js';
import { RecordingError, RecordingReader, findRecordings } from '../recording/segment-files.js';
import { otherVersionFrom } from '../recording/other-version.js';
import { iso, replayRecording, type LaneReplayReport, type ReplayedDecision } from '../recording/replay.js';
import type { Outcome } from '../recording/records.js';

interface ReplayCliOptions {
  recordKey?: string;
  lane?: string;
  config?: string;
  lists?: string;
  allowTruncated: boolean;
  differences: boolean;
  quiet: boolean;
  json: boolean;
}

export function register(program: Command): void {
  program
    .command('replay')
    .description("replay a lane recording through the same gate machine: every decision; with --config/--lists, which decisions another version makes otherwise and why")
    .argument('<dir>', 'the recording directory (gate run --record DIR, gate sim --record DIR)')
    .option('--record-key <file>', 'the operator key it was recorded with (default: DIR/record.key when there, as gate sim writes it)')
    .option('--lane <id>', 'replay this lane only')
    .option('-c, --config <file>', "another lane config: its policy, lane direction and enforcement schedule decide each recorded presentation beside the lane's")
    .option('--lists <file>', "another signed list snapshot: each recorded credential looked up there (signature checked with --config's lists.publicKeys)")
    .option('--allow-truncated', 'replay what verifies of a recording cut short (a lane that lost power) instead of refusing it', false)
    .option('--differences', 'print only the decisions the other version makes otherwise', false)
    .option('--quiet', 'print no line per decision, only the summary', false)
    .option('--json', 'one JSON object per decision line, then one summary object', false)
    .action(async (dir: string, o: ReplayCliOptions) => {
      try {
        process.exitCode = await replayCommand(dir, o);
      } catch (e) {
        if (isGateError(e, GateErrorCode.Config)) {
          console.error(`gate replay: ${e.message}`);
          process.exitCode = 2;
        } else if (isGateError(e)) {
          console.error(`gate replay: ${e.message}`);
          if (o.json) console.log(JSON.stringify({ refused: { code: e.code, ...e.context, message: e.message } }));
          process.exitCode = 1;
        } else throw e;
      }
    });
}

async function replayCommand(dir: string, o: ReplayCliOptions): Promise<number> {
  const recordings = findRecordings(dir, o.lane);
  const keyFile = o.recordKey ?? (existsSync(join(dir, 'record.key')) ? join(dir, 'record.key') : undefined);
  if (keyFile === undefined) {
    throw new RecordingError('no-key', `the recording's presentations are encrypted: give the operator key with --record-key FILE (the one record.keyFile named when it was recorded)`);
  }
  const key = await loadRecordingKey(keyFile, '--record-key');
  const compared = await otherVersionFrom({ config: o.config, lists: o.lists });
  const other = compared?.other;
  if (!o.json) for (const n of compared?.notes ?? []) console.log(`note: ${n}`);
  // Refuse a damaged recording before a line is printed: every recording is read and authenticated first.
  for (const r of recordings) new RecordingReader(r, { key, allowTruncated: o.allowTruncated }).verify();

  const reports: LaneReplayReport[] = [];
  const print = (d: ReplayedDecision) => {
    const differs = d.other !== undefined && (d.other.grant !== d.replayed.grant || d.other.reason !== d.replayed.reason);
    if (o.quiet || (o.differences && !differs)) return;
    if (o.json) console.log(JSON.stringify({ decision: d }));
    else console.log(decisionLine(d, differs));
  };
  const t0 = performance.now();
  for (const r of recordings) reports.push(await replayRecording(r, { key, allowTruncated: o.allowTruncated, other, onDecision: print }));
  const seconds = (performance.now() - t0) / 1000;
  const decisions = reports.reduce((a, r) => a + r.decisions, 0);
  const diverged = reports.reduce((a, r) => a + r.diverged, 0);
  const differing = reports.reduce((a, r) => a + r.differing, 0);
  if (o.json) {
    console.log(JSON.stringify({ summary: { lanes: reports, decisions, diverged, differing, other: other?.label, notes: compared?.notes ?? [], wallSeconds: Math.round(seconds * 1000) / 1000 } }));
  } else {
    console.log('');
    for (const r of reports) console.log(laneSummary(r, other?.label));
    console.log(`${decisions} decisions replayed in ${seconds.toFixed(2)} s; ${diverged === 0 ? 'all as recorded' : `${diverged} places where the replay went otherwise than the lane (see above)`}${other ? `; ${differing} decisions differ under ${other.label}` : ''}`);
  }
  return diverged > 0 ? 4 : 0;
}

const said = (x: Outcome) => `${x.grant ? 'grant' : 'refuse'} ${x.reason}`;

function decisionLine(d: ReplayedDecision, differs: boolean): string {
  let line = `${d.laneId} ${iso(d.at)} #${d.n} ${d.side} ${d.replayed.ref} ${said(d.replayed)}`;
  if (!d.faithful) line += ` (recorded: ${d.recorded ? said(d.recorded) : 'nothing'})`;
  if (d.other) line += differs ? `  ≠ other: ${said(d.other)} — ${(d.why ?? []).join('; ')}` : '  = other';
  return line;
}

function laneSummary(r: LaneReplayReport, other: string | undefined): string {
  const lines = [
    `lane ${r.laneId} (station ${r.station}), recording ${r.recording}: ${r.shape.segments} segment${r.shape.segments === 1 ? '' : 's'}, ${iso(r.fromMs)} to ${iso(r.toMs)}`,
    `  ${r.decisions} decisions, ${r.asRecorded} as recorded; ${r.events} events, ${r.timers} timers; list versions ${r.listVersions.join(', ')}; ends in ${r.finalState}`,
  ];
  if (other) lines.push(`  under ${other}: ${r.differing} differ (${r.nowGranted} let in that the lane refused, ${r.nowRefused} refused that the lane let in)`);
  if (r.shape.startsLate) lines.push(`  note: ${r.shape.startsLate}`);
  if (r.shape.truncated) lines.push(`  note: truncated (--allow-truncated): ${r.shape.truncated}`);
  if (r.shape.stoppedEarly) lines.push(`  note: the recorder stopped early: ${r.shape.stoppedEarly}`);
  for (const d of r.divergences) lines.push(`  diverged: ${d}`);
  if (r.diverged > r.divergences.length) lines.push(`  … and ${r.diverged - r.divergences.length} more`);
  return lines.join('\n');
}
