// The rider pages the back office serves without a token: `/register` (a card, a phone NFC card or a
// commemorative ticket, step by step: type → details → number → terms → submit, then a status page) and
// `/link` (an issuer app's one-step authorisation of a QR ride-code account). Self-contained (no CDN, no
// fonts or images fetched), mobile-first, Chinese by default with an English switch. The page's live
// checks mirror validate.ts; the back office re-checks everything on submit and its error, in both
// languages, is shown beside the field it names. The forms post JSON to `/register/submit` and
// `/link/submit`, handled server-side by the same store methods as the API, so no token reaches a browser.

import { createHash } from 'node:crypto';
import { QR_ISSUERS } from '../../protocol/credential.js';
import type { BackofficeStore } from './store.js';

/** An error the page shows beside `field`, in both languages. */
export interface PageError {
  error: string;
  field: string;
  zh: string;
  en: string;
}

/** Split a back-office message `English / 中文` into its two languages (a message in one language is used for both). */
export function splitMessage(message: string): { zh: string; en: string } {
  const i = message.lastIndexOf(' / ');
  return i < 0 ? { zh: message, en: message } : { en: message.slice(0, i), zh: message.slice(i + 3) };
}

export type PageAnswer = { status: number; body: Record<string, unknown> };

/** POST /register/submit: the registration API's checks, and what the status page shows. */
export function registerFromPage(store: BackofficeStore, body: unknown): PageAnswer {
  const r = store.register(body);
  if (!r.ok) {
    const err: PageError = { error: r.error, field: r.field ?? 'number', ...splitMessage(r.message) };
    return { status: r.http, body: err as unknown as Record<string, unknown> };
  }
  // The next published version carries the change: the gates know it once they have synced it.
  return { status: 201, body: { registered: true, key: maskKey(r.key), status: r.status, fromListVersion: store.latestVersion() + 1 } };
}

const LINK_ERRORS: Record<string, { field: string; zh: string }> = {
  'unknown-issuer': { field: 'issuer', zh: '请选择乘车码应用' },
  'invalid-account': { field: 'account', zh: '账户号应为1至64位字母、数字、下划线或连字符' },
  duplicate: { field: 'account', zh: '该账户已授权关联' },
};

/** POST /link/submit: the issuer app's one-step authorisation, through the QR-link API's checks. */
export function linkFromPage(store: BackofficeStore, body: unknown): PageAnswer {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  if (b.consent !== true) return { status: 400, body: { error: 'missing-consent', field: 'consent', zh: '请阅读并同意授权条款', en: 'please read and agree to authorise the link' } };
  // The browser never chooses a status: the health-status feed does.
  const r = store.linkQrAccount({ issuer: b.issuer, account: b.account });
  if (!r.ok) {
    const m = LINK_ERRORS[r.error] ?? { field: 'account', zh: '授权失败' };
    return { status: r.http, body: { error: r.error, field: m.field, zh: m.zh, en: r.message } };
  }
  return { status: 201, body: { linked: true, key: maskKey(r.key), fromListVersion: store.latestVersion() + 1 } };
}

/** card:3104…1234 style: enough for the rider to recognise, not the whole number. */
export function maskKey(key: string): string {
  const i = key.indexOf(':');
  const kind = key.slice(0, i);
  const rest = key.slice(i + 1);
  if (kind === 'qr') {
    const j = rest.indexOf(':');
    const acct = rest.slice(j + 1);
    return `qr:${rest.slice(0, j)}:${acct.length > 4 ? '…' + acct.slice(-4) : acct}`;
  }
  return `${kind}:${rest.slice(0, 4)}…${rest.slice(-4)}`;
}

// ---------------------------------------------------------------------------------------------
// The pages

const STYLE = `
*{box-sizing:border-box}
html{font-family:"Noto Sans CJK SC","Noto Sans SC","PingFang SC","Microsoft YaHei",system-ui,sans-serif;color:#1a1a1a;background:#fff;font-size:17px;line-height:1.5}
body{margin:0;padding:0 16px 32px;max-width:560px;margin-inline:auto}
header{display:flex;justify-content:space-between;align-items:center;padding:12px 0;border-bottom:2px solid #0b4f8a}
h1{font-size:1.25rem;margin:0;color:#0b4f8a}
h2{font-size:1.1rem;margin:16px 0 8px}
button,.btn{font:inherit;min-height:48px;padding:10px 18px;border-radius:8px;border:2px solid #0b4f8a;background:#0b4f8a;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#0b4f8a}
button:focus-visible,input:focus-visible,select:focus-visible,a:focus-visible{outline:3px solid #b35c00;outline-offset:2px}
label{display:block;font-weight:600;margin:12px 0 4px}
input[type=text],input[type=tel],select{font:inherit;width:100%;min-height:48px;padding:8px 10px;border:2px solid #555;border-radius:6px;background:#fff;color:#1a1a1a}
input[aria-invalid=true]{border-color:#b00020}
fieldset{border:0;padding:0;margin:0}
legend{font-weight:700;font-size:1.1rem;margin:12px 0 4px}
.choice{display:flex;align-items:center;gap:10px;min-height:48px;padding:8px 10px;border:2px solid #555;border-radius:8px;margin:8px 0;font-weight:400}
.choice input{width:22px;height:22px;margin:0}
.hint{color:#3d3d3d;font-size:.92rem;margin:4px 0}
.err{color:#b00020;font-size:.95rem;margin:4px 0;min-height:0}
.err:empty{display:none}
.err .en,.live .en{display:block}
.live{font-size:.92rem;margin:4px 0}
.live.ok{color:#1b5e20}.live.bad{color:#b00020}
.steps{display:flex;gap:4px;margin:12px 0;padding:0;list-style:none;font-size:.8rem}
.steps li{flex:1;border-top:4px solid #bbb;padding-top:4px;color:#3d3d3d}
.steps li[aria-current=step]{border-color:#0b4f8a;color:#0b4f8a;font-weight:700}
.nav{display:flex;gap:10px;justify-content:space-between;margin-top:20px}
.terms{border:1px solid #555;border-radius:6px;padding:8px 12px;max-height:40vh;overflow:auto;font-size:.92rem}
.status{display:inline-block;padding:6px 14px;border-radius:6px;font-weight:700}
.status.green{background:#1b5e20;color:#fff}.status.yellow{background:#ffd54f;color:#1a1a1a}.status.red{background:#b00020;color:#fff}
[hidden]{display:none!important}
.en-only{display:none}
html[lang=en] .zh-only{display:none}
html[lang=en] .en-only{display:inline}
html[lang=en] div.en-only,html[lang=en] p.en-only,html[lang=en] li.en-only,html[lang=en] span.en-block{display:block}
`;

/** A text in both languages: shown in the page's language. */
const t = (zh: string, en: string) => `<span class="zh-only" lang="zh-CN">${zh}</span><span class="en-only" lang="en">${en}</span>`;

const COMMON_SCRIPT = `
var lang='zh-CN';
function setLang(l){lang=l;document.documentElement.lang=l;var b=document.getElementById('lang');b.textContent=l==='en'?'中文':'English';b.setAttribute('aria-label',l==='en'?'切换到中文':'Switch to English');}
document.getElementById('lang').addEventListener('click',function(){setLang(lang==='en'?'zh-CN':'en');});
function showErr(field,zh,en){var e=document.querySelector('[data-err-for="'+field+'"]')||document.querySelector('[data-err-for="(form)"]');
 e.textContent='';var a=document.createElement('span');a.className='zh';a.lang='zh-CN';a.textContent=zh;var b=document.createElement('span');b.className='en';b.lang='en';b.textContent=en;e.appendChild(a);e.appendChild(b);
 var input=document.querySelector('[data-field="'+field+'"]');if(input){input.setAttribute('aria-invalid','true');}return input;}
function clearErrs(){document.querySelectorAll('[data-err-for]').forEach(function(e){e.textContent='';});document.querySelectorAll('[aria-invalid]').forEach(function(i){i.removeAttribute('aria-invalid');});}
function post(url,body){return fetch(url,{method:'POST',headers:{'content-type':'application/json'},body:JSON.stringify(body)}).then(function(r){return r.json().then(function(j){return {status:r.status,body:j};},function(){return {status:r.status,body:{error:'bad-answer',field:'(form)',zh:'服务暂不可用，请稍后再试',en:'service unavailable: please try again later'}};});},function(){return {status:0,body:{error:'network',field:'(form)',zh:'网络错误，请稍后再试',en:'network error: please try again'}};});}
`;

const REGISTER_SCRIPT = `
function luhn(n){var s=0;for(var i=0;i<19;i++){var d=n.charCodeAt(18-i)-48;if(i%2===1){d*=2;if(d>9)d-=9;}s+=d;}return s%10===0;}
var form=document.getElementById('reg');var step=0;var sections=form.querySelectorAll('section[data-step]');var crumbs=document.querySelectorAll('.steps li');
function go(n){step=n;sections.forEach(function(s,i){s.hidden=i!==n;});crumbs.forEach(function(c,i){if(i===n)c.setAttribute('aria-current','step');else c.removeAttribute('aria-current');});var h=sections[n].querySelector('h2');if(h){h.focus();}}
form.querySelectorAll('[data-next]').forEach(function(b){b.addEventListener('click',function(){go(step+1);});});
form.querySelectorAll('[data-back]').forEach(function(b){b.addEventListener('click',function(){go(step-1);});});
function type(){var r=form.querySelector('input[name=credentialType]:checked');return r?r.value:'';}
function help(){var ty=type();document.querySelectorAll('[data-help]').forEach(function(h){h.hidden=h.getAttribute('data-help')!==ty;});}
form.querySelectorAll('input[name=credentialType]').forEach(function(r){r.addEventListener('change',function(){help();check();});});
var num=document.getElementById('number');var live=document.getElementById('number-live');
function check(){var raw=num.value.replace(/[\\s-]/g,'').toUpperCase();var ty=type();var zh='',en='',ok=false;
 if(raw===''){live.textContent='';live.className='live';return;}
 if(ty==='commemorative-ticket'){if(/^[A-Z0-9]{8,20}$/.test(raw)){ok=true;zh='票号格式正确';en='ticket number format is right';}else{zh='纪念票号应为8至20位字母或数字（已输入'+raw.length+'位）';en='ticket number must be 8-20 letters or digits ('+raw.length+' so far)';}}
 else if(!/^[0-9]*$/.test(raw)){zh='卡号只能包含数字';en='a card number holds digits only';}
 else if(raw.length!==19){zh='卡号应为19位数字（已输入'+raw.length+'位）';en='card number must be 19 digits ('+raw.length+' so far)';}
 else if(!luhn(raw)){zh='卡号校验失败，请核对卡号';en='check digit does not match: please check the number';}
 else{ok=true;zh='卡号校验通过';en='card number checks out';}
 live.className='live '+(ok?'ok':'bad');live.textContent='';var a=document.createElement('span');a.className='zh';a.lang='zh-CN';a.textContent=(ok?'✓ ':'✗ ')+zh;var b=document.createElement('span');b.className='en';b.lang='en';b.textContent=en;live.appendChild(a);live.appendChild(b);}
num.addEventListener('input',check);
var STEP_OF={'credentialType':0,'rider.name':1,'rider.phone':1,'rider.idNumber':1,'number':2,'consent':3,'(body)':3,'(form)':3};
form.addEventListener('submit',function(ev){ev.preventDefault();clearErrs();var btn=document.getElementById('submit');btn.disabled=true;
 var rider={name:document.getElementById('name').value,phone:document.getElementById('phone').value.trim()};var id=document.getElementById('idNumber').value.trim().toUpperCase();if(id!=='')rider.idNumber=id;
 post('/register/submit',{credentialType:type(),rider:rider,number:num.value,consent:document.getElementById('consent').checked}).then(function(r){btn.disabled=false;
  if(r.status===201){var d=r.body;document.getElementById('reg').hidden=true;document.querySelector('.steps').hidden=true;var s=document.getElementById('done');s.hidden=false;
   document.getElementById('done-key').textContent=d.key;var st=document.getElementById('done-status');st.className='status '+d.status;st.setAttribute('data-status',d.status);
   document.querySelectorAll('[data-status-text]').forEach(function(e){e.hidden=e.getAttribute('data-status-text')!==d.status;});
   document.querySelectorAll('.done-version').forEach(function(e){e.textContent=String(d.fromListVersion);});document.getElementById('done-title').focus();return;}
  var e=r.body;if(e.field==='number'){live.textContent='';live.className='live';}var input=showErr(e.field,e.zh,e.en);go(STEP_OF[e.field]===undefined?3:STEP_OF[e.field]);if(input&&input.focus)input.focus();});});
help();go(0);
`;

const LINK_SCRIPT = `
var form=document.getElementById('link');
form.addEventListener('submit',function(ev){ev.preventDefault();clearErrs();var btn=document.getElementById('authorise');btn.disabled=true;
 post('/link/submit',{issuer:document.getElementById('issuer').value,account:document.getElementById('account').value.trim(),consent:document.getElementById('consent').checked}).then(function(r){btn.disabled=false;
  if(r.status===201){form.hidden=true;var s=document.getElementById('done');s.hidden=false;document.getElementById('done-key').textContent=r.body.key;document.querySelectorAll('.done-version').forEach(function(e){e.textContent=String(r.body.fromListVersion);});document.getElementById('done-title').focus();return;}
  var input=showErr(r.body.field,r.body.zh,r.body.en);if(input&&input.focus)input.focus();});});
`;

const sha = (s: string) => createHash('sha256').update(s).digest('base64');

function page(title: string, body: string, script: string): { html: string; csp: string } {
  const js = COMMON_SCRIPT + script;
  const html = `<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${title}</title><style>${STYLE}</style></head>
<body>
<header><h1>${body.match(/<!--title-->(.*?)<!--\/title-->/s)?.[1] ?? title}</h1><button type="button" id="lang" class="secondary" aria-label="Switch to English">English</button></header>
<main>${body.replace(/<!--title-->.*?<!--\/title-->/s, '')}</main>
<script>${js}</script>
</body></html>`;
  const csp = `default-src 'none'; script-src 'sha256-${sha(js)}'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'`;
  return { html, csp };
}

const TYPES: [value: string, zh: string, en: string][] = [
  ['yikatong-card', '北京一卡通', 'Beijing Yikatong card'],
  ['phone-nfc-card', '手机NFC一卡通', 'Phone NFC card'],
  ['commemorative-ticket', '轨道交通纪念票', 'Commemorative ticket'],
];

const err = (field: string) => `<div class="err" role="alert" data-err-for="${field}" id="err-${field.replace('.', '-')}"></div>`;

const REGISTER_BODY = `<!--title-->${t('北京地铁票务升级服务', 'Beijing Metro ticket upgrade')}<!--/title-->
<ol class="steps" aria-label="步骤 / Steps">
<li>${t('凭证类型', 'Type')}</li><li>${t('个人信息', 'Details')}</li><li>${t('卡号/票号', 'Number')}</li><li>${t('条款', 'Terms')}</li></ol>
<form id="reg" novalidate>
<section data-step="0" aria-labelledby="h-type"><h2 id="h-type" tabindex="-1">${t('第一步：选择登记的乘车方式', 'Step 1: what do you ride with?')}</h2>
<fieldset data-field="credentialType" aria-describedby="err-credentialType"><legend>${t('凭证类型', 'Credential type')}</legend>
${TYPES.map(([v, zh, en], i) => `<label class="choice"><input type="radio" name="credentialType" value="${v}" id="type-${v}"${i === 0 ? ' checked' : ''}>${t(zh, en)}</label>`).join('\n')}
</fieldset>${err('credentialType')}
<div class="nav"><span></span><button type="button" data-next>${t('下一步', 'Next')}</button></div></section>

<section data-step="1" aria-labelledby="h-details" hidden><h2 id="h-details" tabindex="-1">${t('第二步：完善个人信息', 'Step 2: your details')}</h2>
<label for="name">${t('姓名', 'Name')}</label><input type="text" id="name" name="name" data-field="rider.name" autocomplete="name" maxlength="64" aria-describedby="err-rider-name">${err('rider.name')}
<label for="phone">${t('手机号', 'Mobile number')}</label><input type="tel" id="phone" name="phone" data-field="rider.phone" autocomplete="tel" inputmode="numeric" maxlength="11" aria-describedby="err-rider-phone">${err('rider.phone')}
<label for="idNumber">${t('身份证号（选填）', 'ID number (optional)')}</label><input type="text" id="idNumber" name="idNumber" data-field="rider.idNumber" maxlength="18" autocomplete="off" aria-describedby="err-rider-idNumber">${err('rider.idNumber')}
<div class="nav"><button type="button" class="secondary" data-back>${t('上一步', 'Back')}</button><button type="button" data-next>${t('下一步', 'Next')}</button></div></section>

<section data-step="2" aria-labelledby="h-number" hidden><h2 id="h-number" tabindex="-1">${t('第三步：绑定卡号或票号', 'Step 3: the number')}</h2>
<label for="number">${t('卡号或票号', 'Card or ticket number')}</label>
<input type="text" id="number" name="number" data-field="number" autocomplete="off" inputmode="text" maxlength="40" aria-describedby="number-help number-live err-number">
<div id="number-help">
<p class="hint" data-help="yikatong-card">${t('卡号为卡片背面印刷的19位数字，最后一位为校验位。', 'The 19 digits printed on the back of the card; the last one is a check digit.')}</p>
<p class="hint" data-help="phone-nfc-card" hidden>${t('在手机钱包中打开北京一卡通，卡片详情页显示19位卡号。', 'Open the Beijing card in your phone wallet: its details page shows the 19-digit number.')}</p>
<p class="hint" data-help="commemorative-ticket" hidden>${t('票号印在纪念票背面，为8至20位字母或数字。', 'Printed on the back of the ticket: 8 to 20 letters or digits.')}</p>
</div>
<div id="number-live" class="live" aria-live="polite"></div>${err('number')}
<div class="nav"><button type="button" class="secondary" data-back>${t('上一步', 'Back')}</button><button type="button" data-next>${t('下一步', 'Next')}</button></div></section>

<section data-step="3" aria-labelledby="h-terms" hidden><h2 id="h-terms" tabindex="-1">${t('第四步：阅读并同意条款', 'Step 4: read and agree')}</h2>
<div class="terms" tabindex="0" role="region" aria-label="条款 / Terms">
<p class="zh-only" lang="zh-CN">登记后，您的乘车凭证将与您的健康信息状态关联，乘客过闸时自动核验。个人信息仅用于乘车核验，不作他用。</p>
<p class="en-only" lang="en">Once registered, your credential is linked to your health-information status, which the gates check automatically. Your details are used for ride checks only.</p>
</div>
<label class="choice" for="consent"><input type="checkbox" id="consent" name="consent" data-field="consent" aria-describedby="err-consent">${t('我已阅读并同意', 'I have read and agree')}</label>${err('consent')}
${err('(body)')}${err('(form)')}
<div class="nav"><button type="button" class="secondary" data-back>${t('上一步', 'Back')}</button><button type="submit" id="submit">${t('提交', 'Submit')}</button></div></section>
</form>

<section id="done" hidden aria-labelledby="done-title"><h2 id="done-title" tabindex="-1">${t('登记成功', 'Registered')}</h2>
<p>${t('凭证', 'Credential')}: <strong id="done-key"></strong></p>
<p>${t('当前状态', 'Current status')}: <span id="done-status" class="status">
<span data-status-text="green" hidden>${t('绿码', 'green')}</span><span data-status-text="yellow" hidden>${t('黄码', 'yellow')}</span><span data-status-text="red" hidden>${t('红码', 'red')}</span></span></p>
<p id="done-when">${t('闸机自名单版本 <strong class="done-version"></strong> 起识别（下次名单同步后）。', 'Gates will know it from list version <strong class="done-version"></strong> (after their next list sync).')}</p>
</section>`;

const ISSUER_NAMES: Record<string, [string, string]> = {
  yitongxing: ['亿通行', 'Yitongxing'],
  alipay: ['支付宝', 'Alipay'],
  unionpay: ['银联云闪付', 'UnionPay QuickPass'],
  cmb: ['招商银行', 'China Merchants Bank'],
  'shanghai-metro': ['上海地铁', 'Shanghai Metro'],
  'tianjin-metro': ['天津地铁', 'Tianjin Metro'],
  'guangzhou-metro': ['广州地铁', 'Guangzhou Metro'],
  'hohhot-metro': ['呼和浩特地铁', 'Hohhot Metro'],
};

const LINK_BODY = `<!--title-->${t('乘车码一步授权', 'Ride code: one-step link')}<!--/title-->
<form id="link" novalidate>
<p>${t('授权后，您的乘车码账户将关联健康信息，过闸自动核验。', 'Once you authorise, your ride-code account is linked to your health information and checked at the gates.')}</p>
<label for="issuer">${t('乘车码应用', 'Ride-code app')}</label>
<select id="issuer" name="issuer" data-field="issuer" aria-describedby="err-issuer">
${QR_ISSUERS.map((i) => `<option value="${i}">${ISSUER_NAMES[i]?.[0] ?? i} / ${ISSUER_NAMES[i]?.[1] ?? i}</option>`).join('')}
</select>${err('issuer')}
<label for="account">${t('账户号（应用内“我的”页面）', 'Account id (the app\'s "Me" page)')}</label>
<input type="text" id="account" name="account" data-field="account" maxlength="64" autocomplete="off" aria-describedby="err-account">${err('account')}
<label class="choice" for="consent"><input type="checkbox" id="consent" name="consent" data-field="consent" aria-describedby="err-consent">${t('已阅并同意', 'I have read and agree')}</label>${err('consent')}
${err('(form)')}
<div class="nav"><span></span><button type="submit" id="authorise">${t('授权', 'Authorise')}</button></div>
</form>
<section id="done" hidden aria-labelledby="done-title"><h2 id="done-title" tabindex="-1">${t('授权成功', 'Linked')}</h2>
<p>${t('账户', 'Account')}: <strong id="done-key"></strong></p>
<p>${t('闸机自名单版本 <strong class="done-version"></strong> 起识别（下次名单同步后）。', 'Gates will know it from list version <strong class="done-version"></strong> (after their next list sync).')}</p>
</section>`;

/** GET /register: the page and the Content-Security-Policy that lets only its own script run. */
export const REGISTER_PAGE = page('北京地铁票务升级服务 / Beijing Metro ticket upgrade', REGISTER_BODY, REGISTER_SCRIPT);
/** GET /link: the issuer app's authorisation page. */
export const LINK_PAGE = page('乘车码授权 / Ride code link', LINK_BODY, LINK_SCRIPT);
