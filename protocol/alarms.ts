// One alarm vocabulary for the whole runtime: what the lane, its drivers, its lists and its journal raise.
// Each alarm carries the detail a technician needs to act (which command, which port or reader, which
// file), as fields, not prose. `alarmText()` renders the one-line detail the journal and logs keep.
import type { BarrierCommand } from './barrier.js';
import type { Direction } from './credential.js';

export type Alarm =
  // The barrier board and its link
  | { alarm: 'barrier-fault'; code: number }
  | { alarm: 'barrier-command-failed'; command: BarrierCommand['type']; port?: string; detail: string }
  | { alarm: 'open-failed'; command?: 'OPEN'; port?: string; detail?: string }
  | { alarm: 'flap-stuck' }
  | { alarm: 'not-passed' }
  | { alarm: 'unexpected-passage'; direction: Direction }
  | { alarm: 'intrusion'; direction: Direction }
  | { alarm: 'tailgating' }
  | { alarm: 'obstruction' }
  /**
   * Normally open: the flaps closed in front of a body that had no authorisation. `why`: no tap seen for it,
   * a second body behind an authorised one, its decision not durable in time, walking in the wrong way, or
   * it reached open flaps unauthorised (the close came late: the board then reports whether it crossed).
   */
  | { alarm: 'body-stopped'; direction: Direction; why: 'no-tap' | 'second-body' | 'too-fast' | 'wrong-way' | 'at-flaps' }
  /** The board refused the normally-open regime (NACK): the lane serves normally closed. */
  | { alarm: 'flap-regime-refused'; detail: string }
  | { alarm: 'power'; state: 'mains' | 'battery' | 'low-battery' }
  | { alarm: 'fire-alarm' }
  | { alarm: 'fire-alarm-cleared' }
  | { alarm: 'emergency-button' }
  | { alarm: 'emergency-reset' }
  // Credential sources (card reader, camera, scan engine)
  | { alarm: 'reader-fault'; source: string; detail: string }
  // The decision path
  | { alarm: 'decision-timeout' }
  // Lists and the issuer trust list
  | { alarm: 'list-rejected'; error?: string; file?: string; detail: string }
  | { alarm: 'list-write-failed'; file: string; detail: string }
  | { alarm: 'list-sync-failing'; failures: number; detail: string }
  | { alarm: 'trust-list-rejected'; detail: string }
  // The enforcement schedule (protocol/policy-schedule.ts): a bad, older or wrongly signed one; the old one stays
  | { alarm: 'schedule-rejected'; error: string; seq?: number; detail: string }
  // The fare table (protocol/fares.ts): a bad, older or wrongly signed one; the old one stays
  | { alarm: 'fare-table-rejected'; error: string; seq?: number; detail: string }
  // The journal
  | { alarm: 'journal-corrupt'; file: string; detail: string }
  | { alarm: 'journal-disk-full'; dir: string; detail: string }
  | { alarm: 'journal-io-error'; file: string; code?: string; detail: string }
  | { alarm: 'journal-ok'; dir: string }
  | { alarm: 'journal-upload-failing'; url: string; detail: string }
  | { alarm: 'journal-upload-conflict'; detail: string };

export type AlarmName = Alarm['alarm'];

/** Every alarm name, for dashboards, metrics labels and tests. */
export const ALARM_NAMES = [
  'barrier-fault', 'barrier-command-failed', 'open-failed', 'flap-stuck', 'not-passed', 'unexpected-passage',
  'intrusion', 'tailgating', 'obstruction', 'body-stopped', 'flap-regime-refused', 'power', 'fire-alarm', 'fire-alarm-cleared', 'emergency-button',
  'emergency-reset', 'reader-fault', 'decision-timeout', 'list-rejected', 'list-write-failed',
  'list-sync-failing', 'trust-list-rejected', 'schedule-rejected', 'fare-table-rejected', 'journal-corrupt', 'journal-disk-full', 'journal-io-error',
  'journal-ok', 'journal-upload-failing', 'journal-upload-conflict',
] as const satisfies readonly AlarmName[];

/** The alarm's details as one line (journal record `detail`, log line); undefined when it has none. */
export function alarmText(a: Alarm): string | undefined {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(a)) {
    if (k === 'alarm' || k === 'detail' || v === undefined) continue;
    parts.push(`${k} ${String(v)}`);
  }
  const detail = 'detail' in a ? a.detail : undefined;
  if (detail) parts.push(detail);
  return parts.length ? parts.join(', ') : undefined;
}
