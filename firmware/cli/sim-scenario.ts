// `gate sim --scenario <name>`: a scenario of the simulator played against real lanes in virtual time
// (firmware/composition/rollout-scenario.ts), its JSON summary or a line per day, exit code 3 when any
// answer disagreed with the scenario's ground truth.
import { ConfigError } from '../config/config.js';
import type { Logger } from '../config/log.js';
import { SCENARIOS, runRolloutScenario, type RolloutSimSummary } from '../composition/rollout-scenario.js';

export interface ScenarioArgs {
  scenario: string;
  lanes?: number;
  passengers?: number;
  seed: number;
  /** Beijing calendar days, both included (YYYY-MM-DD). */
  from?: string;
  to?: string;
  pollSeconds?: number;
  publishSeconds?: number;
  json: boolean;
  log: Logger;
}

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;
/** 00:00 Beijing time of a YYYY-MM-DD day. */
function bjDayStart(day: string, flag: string): number {
  const m = DAY.exec(day);
  const t = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), -8) : NaN;
  if (!m || Number.isNaN(t) || new Date(t + 8 * 3600_000).toISOString().slice(0, 10) !== day) throw new ConfigError(`${flag} must be a day YYYY-MM-DD, got ${JSON.stringify(day)}`);
  return t;
}

export async function runScenarioCommand(a: ScenarioArgs): Promise<void> {
  if (!(SCENARIOS as readonly string[]).includes(a.scenario)) throw new ConfigError(`unknown scenario "${a.scenario}"; known: ${SCENARIOS.join(', ')}`);
  const s = await runRolloutScenario({
    lanes: a.lanes,
    riders: a.passengers,
    seed: a.seed,
    fromMs: a.from === undefined ? undefined : bjDayStart(a.from, '--from'),
    toMs: a.to === undefined ? undefined : bjDayStart(a.to, '--to') + 86_400_000,
    pollEveryMs: a.pollSeconds === undefined ? undefined : a.pollSeconds * 1000,
    publishEveryMs: a.publishSeconds === undefined ? undefined : a.publishSeconds * 1000,
    log: a.log,
  });
  console.log(a.json ? JSON.stringify(s) : scenarioText(s));
  if (s.falseAccepts > 0 || s.falseRejects > 0 || s.unanswered > 0 || s.wrongReasons > 0 || s.ambiguous > 0) process.exitCode = 3;
}

function scenarioText(s: RolloutSimSummary): string {
  const stages = (d: RolloutSimSummary['days'][number]) => Object.entries(d.stages).map(([k, v]) => `${k} ${v}`).join(', ');
  const k = s.schedule.kinds;
  return [
    `${s.scenario}: ${s.lanes.length} lanes, ${s.riders} riders, ${s.from} → ${s.to} Beijing time (${s.virtualDays} days in ${s.wallSeconds} s)`,
    `schedule (${s.schedule.article.source} ${s.schedule.article.publishedAt}): advise cards/phone NFC/tickets from ${k.card.advise}, QR from ${k.qr.advise}; enforce ${k.card.enforce} and ${k.qr.enforce} (assumed: the article gives no enforcement date)`,
    ...s.days.map((d) => `${d.day}  ${String(d.presentations).padStart(5)} taps, ${String(d.refused).padStart(4)} refused, ${String(d.advised).padStart(4)} advised, ${String(d.registrations).padStart(4)} registered  [${stages(d)}]`),
    `admitted ${s.admitted}, refused ${s.refused}: ${Object.entries(s.byReason).sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r} ${n}`).join(', ')}`,
    `false accepts ${s.falseAccepts}, false rejects ${s.falseRejects}, wrong reasons ${s.wrongReasons}, unanswered ${s.unanswered}`,
    `registrations ${s.registrations.submitted} (${s.registrations.atGate} at a gate); submit → first admitting lane p50 ${s.syncLatencyS.p50} s, p99 ${s.syncLatencyS.p99} s (publish every ${s.syncLatencyS.publishEverySeconds} s, poll every ${s.syncLatencyS.pollSeconds} s)`,
    `lanes: ${s.lanes.map((l) => `${l.id} schedule s${l.scheduleSeq ?? '-'}${Object.keys(l.alarms).length ? ` (${Object.entries(l.alarms).map(([a, n]) => `${a} ${n}`).join(', ')})` : ''}`).join('; ')}`,
  ].join('\n');
}
