// Registration form checks: what the rider typed → a list key, or an error naming the field and why
// (in Chinese and English, as the registration page shows it).

export type RegistrationError = 'invalid-json' | 'unknown-type' | 'invalid-number' | 'missing-consent' | 'invalid-details';

export const CREDENTIAL_TYPES = ['commemorative-ticket', 'yikatong-card', 'phone-nfc-card'] as const;
export type RegistrationType = (typeof CREDENTIAL_TYPES)[number];

export interface RegistrationOk {
  ok: true;
  key: string;
  kind: 'card' | 'ticket';
  rider: { name: string; phone: string; idLast4?: string };
}
export type RegistrationCheck = RegistrationOk | { ok: false; error: { error: RegistrationError; field: string; message: string } };

const bad = (error: RegistrationError, field: string, en: string, zh: string): RegistrationCheck => ({ ok: false, error: { error, field, message: `${en} / ${zh}` } });

/**
 * The check digit we define for 19-digit Yikatong / T-Union card numbers: the last digit is the Luhn
 * (mod 10) check digit over the first 18. It catches every single-digit typo and most swaps.
 */
export function cardNumberValid(n: string): boolean {
  if (!/^\d{19}$/.test(n)) return false;
  let sum = 0;
  for (let i = 0; i < 19; i++) {
    let d = n.charCodeAt(18 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** Complete 18 digits with their check digit (for test data and the simulator). */
export function withCheckDigit(first18: string): string {
  for (let d = 0; d < 10; d++) if (cardNumberValid(first18 + d)) return first18 + d;
  throw new Error('unreachable');
}

/**
 * Characters a name may not hold: controls (Cc, NUL among them), invisible formatting (Cf: zero-width
 * characters and the bidi embeddings, overrides and isolates U+202A–U+202E, U+2066–U+2069 that make a
 * name read differently on a screen than in the database), lone surrogates (Cs) and line/paragraph
 * separators (Zl, Zp).
 */
export const UNSAFE_TEXT = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u;

export function checkRegistration(body: unknown): RegistrationCheck {
  if (typeof body !== 'object' || body === null) return bad('invalid-json', '(body)', 'request must be a JSON object', '请求格式错误');
  const b = body as Record<string, unknown>;
  if (!CREDENTIAL_TYPES.includes(b.credentialType as RegistrationType)) {
    return bad('unknown-type', 'credentialType', `credential type must be one of ${CREDENTIAL_TYPES.join(', ')}`, '请选择凭证类型：纪念票或一卡通');
  }
  const r = (b.rider ?? {}) as Record<string, unknown>;
  if (typeof r.name !== 'string' || r.name.trim().length === 0 || r.name.length > 64) return bad('invalid-details', 'rider.name', 'please enter your name', '请填写姓名');
  if (UNSAFE_TEXT.test(r.name)) return bad('invalid-details', 'rider.name', 'a name may not hold control, invisible or text-direction characters', '姓名不能包含控制字符或不可见字符');
  if (typeof r.phone !== 'string' || !/^1\d{10}$/.test(r.phone)) return bad('invalid-details', 'rider.phone', 'phone must be an 11-digit mobile number', '请填写11位手机号');
  if (r.idNumber !== undefined && (typeof r.idNumber !== 'string' || !/^\d{17}[\dX]$/.test(r.idNumber))) {
    return bad('invalid-details', 'rider.idNumber', 'ID number must be 18 characters', '身份证号应为18位');
  }
  const raw = typeof b.number === 'string' ? b.number.replace(/[\s-]/g, '').toUpperCase() : '';
  let key: string;
  let kind: 'card' | 'ticket';
  if (b.credentialType === 'commemorative-ticket') {
    if (!/^[A-Z0-9]{8,20}$/.test(raw)) return bad('invalid-number', 'number', 'ticket number must be 8-20 letters or digits as printed on the ticket', '纪念票号应为8至20位字母或数字');
    key = `ticket:${raw}`;
    kind = 'ticket';
  } else {
    if (!/^\d{19}$/.test(raw)) return bad('invalid-number', 'number', 'card number must be the 19 digits printed on the card (or shown in the phone wallet)', '卡号应为19位数字');
    if (!cardNumberValid(raw)) return bad('invalid-number', 'number', 'card number check digit does not match: please check the number', '卡号校验失败，请核对卡号');
    key = `card:${raw}`;
    kind = 'card';
  }
  if (b.consent !== true) return bad('missing-consent', 'consent', 'please agree to the terms to register', '请阅读并同意相关条款');
  const idLast4 = typeof r.idNumber === 'string' ? r.idNumber.slice(-4) : undefined;
  return { ok: true, key, kind, rider: { name: r.name.trim(), phone: r.phone, idLast4 } };
}
