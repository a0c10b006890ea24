// `gate sim --scenario rollout-2022`: Beijing's May 2022, as the seed article tells it, in virtual time.
// This file is the scenario's statement: the dates, the schedule the back office publishes, the riders and
// what each of them does, and the rule the judge applies — the scenario's own words, never the lanes'
// config. The run (back office, trips, judge, figures) is rollout-run.ts.
//
// The seed article: 新浪财经, "一步完成授权，北京地铁刷码升级指南来了！", 2022-05-18 10:50:48 GMT
// (/work/shared/mission/seed-article.txt, the project's mission seed):
// - QR ride codes (亿通行, 支付宝, 银联云闪付, 招商银行, and the Shanghai, Tianjin, Guangzhou and Hohhot metro
//   apps): "自5月23日零点起按照所使用APP自动弹窗提示，即可一步完成授权关联健康信息" — from 23 May 00:00 the app asks,
//   and one tap links the account.
// - Commemorative tickets: "自5月19日零点起可通过微信扫码或用微信小程序搜索，进入'北京地铁票务升级服务'小程序" —
//   from 19 May 00:00, through the mini program.
// - Yikatong cards and phone NFC: "未实现升级的一卡通实体卡或手机NFC的乘客可以通过'北京地铁票务升级服务'小程序完成升级"
//   — the same mini program, no date of their own: taken here as 19 May 00:00 too.
// - Enforcement: the article names no date from which gates refuse. The scenario's own assumption, said
//   here and in the summary: one week after each opening (cards, phone NFC, tickets: 26 May 00:00; QR ride
//   codes: 30 May 00:00). Before a kind's opening nothing is checked; from it, the gates advise.

import type { Credential, CredentialKind, Direction, QrIssuer } from '../../protocol/credential.js';
import { registerByDay, type EnforcementStage, type PolicySchedule } from '../../protocol/policy-schedule.js';
import type { ReasonCode } from '../../protocol/reasons.js';
import { withCheckDigit } from '../backoffice/validate.js';
import { DEFAULT_MIX, Random, type CredentialMixKind } from '../population.js';

/** Beijing time (UTC+8, no daylight saving) in 2022 → ms since the epoch. */
export const bj = (month: number, day: number, hour = 0, minute = 0): number => Date.UTC(2022, month - 1, day, hour - 8, minute);
const DAY_MS = 86_400_000;
/** The Beijing calendar day of an instant, YYYY-MM-DD. */
export const bjDay = (ms: number): string => new Date(ms + 8 * 3600_000).toISOString().slice(0, 10);
/** 00:00 Beijing time of the day holding `ms`. */
export const bjMidnight = (ms: number): number => Math.floor((ms + 8 * 3600_000) / DAY_MS) * DAY_MS - 8 * 3600_000;

export const SEED_ARTICLE = {
  title: '一步完成授权，北京地铁刷码升级指南来了！',
  source: '新浪财经',
  publishedAtMs: Date.UTC(2022, 4, 18, 10, 50, 48),
} as const;

const KINDS: readonly CredentialKind[] = ['card', 'phone-nfc', 'ticket', 'qr'];
/** Registration opens, and the gates start advising (the seed article's dates). */
export const OPENS: Readonly<Record<CredentialKind, number>> = { ticket: bj(5, 19), card: bj(5, 19), 'phone-nfc': bj(5, 19), qr: bj(5, 23) };
/** Enforcement begins: not in the seed article; the scenario's assumption, a week after each opening. */
export const ENFORCES: Readonly<Record<CredentialKind, number>> = { ticket: bj(5, 26), card: bj(5, 26), 'phone-nfc': bj(5, 26), qr: bj(5, 30) };
/** What the lanes were installed with: nothing checked, for every kind, until a schedule says otherwise. */
export const UNTIL_FURTHER_NOTICE = Date.UTC(2100, 0, 1, -8);

/** The schedule the lanes are provisioned with (seq 1, `policy.scheduleFile`) on 1 May. */
export const INSTALLED: PolicySchedule['kinds'] = Object.fromEntries(KINDS.map((k) => [k, { adviseFromMs: UNTIL_FURTHER_NOTICE, enforceFromMs: UNTIL_FURTHER_NOTICE }]));
/** The schedule the back office publishes (seq 2) when the article appears, 18 May 18:50 Beijing time. */
export const ANNOUNCED: PolicySchedule['kinds'] = Object.fromEntries(KINDS.map((k) => [k, { adviseFromMs: OPENS[k], enforceFromMs: ENFORCES[k] }]));
export const ANNOUNCED_AT = SEED_ARTICLE.publishedAtMs;
/** For an hour on 24 May, something between the back office and the lanes serves a tampered schedule (QR enforced at once). */
export const TAMPERED_FROM = bj(5, 24, 3);
export const TAMPERED_UNTIL = bj(5, 24, 4);

/** The stage of a kind at an instant, by the scenario's own schedule (the announced one once published; before it, the installed one). */
export function stageOf(kind: CredentialKind, atMs: number): EnforcementStage {
  const k = (atMs < ANNOUNCED_AT ? INSTALLED : ANNOUNCED)[kind]!;
  return atMs < k.adviseFromMs ? 'not-enforced' : atMs < k.enforceFromMs ? 'advise' : 'enforce';
}

/** What the back office holds of a rider's credential, as ground truth (once the change has had time to reach every lane). */
export type Standing = 'unregistered' | 'green' | 'yellow' | 'red' | 'blocked';

/**
 * What a rider does about registering:
 * - `early`: registers in the first three nights after their kind opens;
 * - `later`: on some night before enforcement;
 * - `advised`: the night after a gate first advised them (or at the gate, once refused);
 * - `at-gate`: only once refused at a gate: registers there on the phone and comes back;
 * - `never`: never registers (refused at every entry once enforced);
 * - `lost-card`: registers early, then reports the card or ticket lost (blocked); someone who found it tries it;
 * - `status-change`: registers early; the status feed turns them yellow or red for a few days, then green again.
 */
export type Plan = 'early' | 'later' | 'advised' | 'at-gate' | 'never' | 'lost-card' | 'status-change';
const PLANS: readonly (readonly [Plan, number])[] = [['early', 45], ['later', 25], ['advised', 10], ['at-gate', 10], ['never', 5], ['lost-card', 2], ['status-change', 3]];

export interface RolloutRider {
  id: number;
  credential: Credential;
  plan: Plan;
  /** 00:00 of the day in whose small hours (00:30-04:00) the rider registers ahead of any gate (early, later, lost-card, status-change). */
  registerDay?: number;
  /** 00:00 of the day in whose small hours the card is reported lost, or the status changes (lost-card, status-change). */
  changeDay?: number;
  /** Days a changed status lasts (status-change). */
  changeDays: number;
  status: 'yellow' | 'red';
  /** Chance of riding on a working day (half of it at weekends and on the May Day holiday, 1-4 May). */
  ridesPerWorkday: number;
}

/** Riders with credentials the back office accepts (19-digit card numbers with their check digit). */
export function makeRolloutRiders(count: number, rng: Random): RolloutRider[] {
  const riders: RolloutRider[] = [];
  for (let i = 1; i <= count; i++) {
    const kind = rng.pick(DEFAULT_MIX.credentials as readonly (readonly [CredentialMixKind, number])[]);
    const n = String(i).padStart(8, '0');
    const credential: Credential =
      kind === 'qr' ? { kind: 'qr', issuer: rng.pick(DEFAULT_MIX.qrIssuers as readonly (readonly [QrIssuer, number])[]), account: `may${n}` }
      : kind === 'ticket' ? { kind: 'ticket', ticketNumber: `CT2022${n}` }
      : { kind, cardNumber: withCheckDigit(`${kind === 'card' ? '3104' : '3105'}1000${rng.digits(2)}${n}`) };
    let plan = rng.pick(PLANS);
    if (plan === 'lost-card' && kind === 'qr') plan = 'early';
    const opens = OPENS[credential.kind];
    const adviseDays = Math.round((ENFORCES[credential.kind] - opens) / DAY_MS);
    const registerDay = plan === 'later' ? opens + (1 + rng.int(adviseDays - 1)) * DAY_MS : plan === 'early' || plan === 'lost-card' || plan === 'status-change' ? opens + rng.int(3) * DAY_MS : undefined;
    const changeDay = registerDay !== undefined && (plan === 'lost-card' || plan === 'status-change') ? registerDay + (2 + rng.int(8)) * DAY_MS : undefined;
    riders.push({ id: i, credential, plan, registerDay, changeDay, changeDays: 2 + rng.int(3), status: rng.chance(0.6) ? 'yellow' : 'red', ridesPerWorkday: 0.5 + 0.4 * rng.next() });
  }
  return riders;
}

/** 1-4 May 2022: the Labour Day holiday; and weekends. */
export function isWorkday(dayStartMs: number): boolean {
  const d = new Date(dayStartMs + 8 * 3600_000);
  const wd = d.getUTCDay();
  return wd !== 0 && wd !== 6 && !(d.getUTCMonth() === 4 && d.getUTCDate() <= 4);
}

/** What the gate must answer: grant or refuse, its reason, and for an advise grant the day on the display. */
export interface Expected {
  grant: boolean;
  reason: ReasonCode;
  day?: string;
}

/**
 * The rule, as the operator states it for May 2022 (the judge's own copy): an exit admits everyone but a
 * blocked credential (no schedule traps a rider inside); an entry refuses a blocked credential always, a
 * second entry within two hours without an exit (passback), and — only once the presented kind is
 * enforced — an unregistered, yellow or red one. In the advise stage an unregistered rider passes and is
 * asked to register by the day before enforcement; yellow and red pass, unchecked.
 */
export const RULE = { antiPassbackSeconds: 7200 } as const;

export function expected(standing: Standing, kind: CredentialKind, direction: Direction, atMs: number, lastEntryMs: number | undefined): Expected {
  if (standing === 'blocked') return { grant: false, reason: 'blocked' };
  if (direction === 'exit') return { grant: true, reason: 'ok' };
  const stage = stageOf(kind, atMs);
  const checked = standing !== 'green';
  if (checked && stage === 'enforce') return { grant: false, reason: standing === 'unregistered' ? 'not-registered' : standing === 'yellow' ? 'status-yellow' : 'status-red' };
  if (lastEntryMs !== undefined && atMs - lastEntryMs < RULE.antiPassbackSeconds * 1000) return { grant: false, reason: 'passback' };
  if (!checked) return { grant: true, reason: 'ok' };
  if (standing === 'unregistered' && stage === 'advise') return { grant: true, reason: 'advise-register', day: registerByDay(ENFORCES[kind]) };
  return { grant: true, reason: 'not-enforced' };
}
