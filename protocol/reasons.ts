// Every gate decision carries one reason code. The rider display turns it into a message in
// Chinese and English; the journal, metrics and the back office keep the code.

export interface ReasonInfo {
  /** Numeric id sent to the barrier board's display (DISPLAY text id) and stored in the journal. */
  id: number;
  grant: boolean;
  zh: string;
  en: string;
}

export const REASONS = {
  // granted
  ok: { id: 1, grant: true, zh: '请通行', en: 'Please pass' },
  'ok-free-passage': { id: 2, grant: true, zh: '自由通行', en: 'Free passage' },
  // granted under the enforcement schedule (protocol/policy-schedule.ts): registration and status not yet
  // checked for this kind of credential; or checked, and the rider asked to register by the enforcement
  // date (the display puts the date in: adviseMessage(decision.registerByMs))
  'not-enforced': { id: 3, grant: true, zh: '请通行', en: 'Please pass' },
  'advise-register': { id: 4, grant: true, zh: '请通行，请尽快完成乘车码升级或卡片登记', en: 'Please pass, and please register your card or ride code soon' },
  // status and registration
  'not-registered': { id: 10, grant: false, zh: '请先完成乘车码升级或卡片登记', en: 'Please register your card or ride code first' },
  'status-yellow': { id: 11, grant: false, zh: '健康码状态非绿码，暂不能进站', en: 'Your status is not green: entry not allowed' },
  'status-red': { id: 12, grant: false, zh: '健康码状态非绿码，暂不能进站', en: 'Your status is not green: entry not allowed' },
  blocked: { id: 13, grant: false, zh: '此卡已挂失或停用，请到服务台', en: 'This card is blocked: please go to the service desk' },
  passback: { id: 14, grant: false, zh: '已进站，请勿重复进站', en: 'Already entered: please exit first' },
  'wrong-direction': { id: 15, grant: false, zh: '此通道不可用，请走其他通道', en: 'Wrong direction: please use another lane' },
  // card faults (rider can act)
  'tap-again': { id: 20, grant: false, zh: '请重新刷卡', en: 'Please tap again' },
  'card-not-supported': { id: 21, grant: false, zh: '不支持此卡', en: 'Card not supported' },
  'card-expired': { id: 22, grant: false, zh: '卡片已过期', en: 'Card expired' },
  'card-not-yet-valid': { id: 23, grant: false, zh: '卡片尚未启用', en: 'Card not yet valid' },
  'card-unreadable': { id: 24, grant: false, zh: '无法读取卡片，请到服务台', en: 'Card cannot be read: please go to the service desk' },
  // QR code faults
  'qr-malformed': { id: 30, grant: false, zh: '无法识别乘车码', en: 'Ride code not recognised' },
  'qr-bad-signature': { id: 31, grant: false, zh: '乘车码无效', en: 'Ride code invalid' },
  'qr-unknown-issuer': { id: 32, grant: false, zh: '不支持此乘车码', en: 'Ride code issuer not accepted' },
  'qr-unknown-key': { id: 33, grant: false, zh: '乘车码无效，请更新应用', en: 'Ride code invalid: please update your app' },
  'qr-revoked-key': { id: 34, grant: false, zh: '乘车码无效，请更新应用', en: 'Ride code invalid: please update your app' },
  'qr-expired': { id: 35, grant: false, zh: '乘车码已过期，请刷新', en: 'Ride code expired: please refresh' },
  'qr-not-yet-valid': { id: 36, grant: false, zh: '乘车码时间异常，请校准手机时间', en: 'Ride code not yet valid: check your phone clock' },
  'qr-replayed': { id: 37, grant: false, zh: '乘车码已使用，请刷新', en: 'Ride code already used: please refresh' },
  // lane
  'lane-busy': { id: 40, grant: false, zh: '请稍候再刷', en: 'Please wait, then tap again' },
  'list-too-old': { id: 41, grant: false, zh: '设备维护中，请走其他通道', en: 'Gate under maintenance: please use another lane' },
  'out-of-service': { id: 42, grant: false, zh: '暂停服务，请走其他通道', en: 'Out of service: please use another lane' },
  'station-closed': { id: 43, grant: false, zh: '车站已关闭', en: 'Station closed' },
  'journal-unavailable': { id: 44, grant: false, zh: '设备故障，请走其他通道', en: 'Gate fault: please use another lane' },
  'credential-invalid': { id: 45, grant: false, zh: '无法识别，请重试', en: 'Not recognised: please try again' },
  // normally-open flaps: closed in front of a body that may not pass, not an answer to a tap (BODY_REASONS)
  'no-tap': { id: 50, grant: false, zh: '请先刷卡或扫码', en: 'Please tap your card or scan your code first' },
  'too-fast': { id: 51, grant: false, zh: '请稍候，正在核验', en: 'Too fast: please wait, still checking' },
  'wrong-way': { id: 52, grant: false, zh: '禁止逆行，请走其他通道', en: 'Wrong way: please use another lane' },
  // QR: the code was signed by an issuer key outside its scheduled validity (rotated out, or not yet in service)
  'qr-key-expired': { id: 38, grant: false, zh: '乘车码无效，请更新应用', en: 'Ride code invalid: please update your app' },
  // fares (protocol/fares.ts, protocol/tunion-purse.ts): the exit debits the card's e-purse
  'insufficient-balance': { id: 60, grant: false, zh: '余额不足，请充值', en: 'Balance too low: please top up' },
  'fare-ticket-office': { id: 61, grant: false, zh: '请到票务中心补票', en: 'Please see the ticket office to pay your fare' },
  'fare-unavailable': { id: 62, grant: false, zh: '设备故障，请走其他通道', en: 'Gate fault: please use another lane' },
  'card-invalid': { id: 63, grant: false, zh: '卡片无效，请到服务台', en: 'Card not valid: please go to the service desk' },
  'ok-fare-waived': { id: 5, grant: true, zh: '请通行（免费）', en: 'Please pass (no fare)' },
} as const satisfies Record<string, ReasonInfo>;

export type ReasonCode = keyof typeof REASONS;

export const REASON_CODES = Object.keys(REASONS) as ReasonCode[];

/**
 * Reasons a normally-open lane shows when it closes the flaps in front of a body (no tap seen, the decision
 * not durable in time, walking the wrong way): they speak of the body, not of a credential, so they are
 * never a decision and never journaled as one.
 */
export const BODY_REASONS: ReadonlySet<ReasonCode> = new Set<ReasonCode>(['no-tap', 'too-fast', 'wrong-way']);

export function riderMessage(code: ReasonCode): { zh: string; en: string } {
  const r = REASONS[code];
  return { zh: r.zh, en: r.en };
}

const BY_ID = new Map<number, ReasonCode>(REASON_CODES.map((c) => [REASONS[c].id, c]));
export function reasonById(id: number): ReasonCode | undefined {
  return BY_ID.get(id);
}
