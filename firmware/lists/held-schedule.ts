// The enforcement schedule a gate holds (`policy-schedule.json` in the list directory), kept by
// held-document.ts like the fare table. The schedule the lane was provisioned with (`policy.scheduleFile`)
// counts too: a stored one no newer than it is ignored; one newer replaces it. What a schedule relaxes is
// verify/'s business (firmware/verify/policy-schedule.ts); this only keeps the document.

import type { TrustedListKey } from '../../protocol/lists/index.js';
import { verifyPolicySchedule } from '../../protocol/policy-schedule.js';
import { HeldDocument, type HeldKind } from './held-document.js';

export { notPublished } from './held-document.js';

const SCHEDULE: HeldKind<'schedule-rejected'> = {
  alarm: 'schedule-rejected',
  what: 'enforcement schedule',
  verify: (bytes, keys) => {
    const r = verifyPolicySchedule(bytes, keys);
    return r.ok ? { ok: true, seq: r.schedule.seq } : r;
  },
};

export type HeldSchedule = HeldDocument<'schedule-rejected'>;
export const HeldSchedule = {
  /** `provisionedSeq`: the seq of the schedule the lane was provisioned with (-1: none). */
  open: (path: string, keys: readonly TrustedListKey[], provisionedSeq = -1) => HeldDocument.open(path, keys, SCHEDULE, provisionedSeq),
};
