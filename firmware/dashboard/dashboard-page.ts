// The dashboard's one page: HTML, CSS and script inline, nothing fetched from elsewhere, so it works on a
// station network with no internet. The script builds the DOM with textContent only (no HTML injection)
// and follows the server over server-sent events.

export interface PageOptions {
  prefix: string;
  station: string;
  /** Who may act (access.ts): the page shows a login form, a read-only note, or the demo-mode warning. */
  access: 'read-only' | 'supervisors' | 'loopback-demo';
  sim?: { kinds: readonly string[]; issuers: readonly string[]; stories: readonly string[] };
}

export function dashboardPage(o: PageOptions): string {
  // JSON inside <script>: escape "<" so no value can close the script element.
  const config = JSON.stringify(o).replace(/</g, '\\u003c');
  const title = escapeHtml(`${o.station} · 车站监控 Station dashboard`);
  return `<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>${CSS}</style>
</head>
<body data-control="off" data-access="${o.access}">
<header class="top">
  <h1><span class="zh">车站监控</span> Station dashboard <span id="station" class="station"></span></h1>
  <span id="conn" class="conn off">connecting…</span>
  <span id="totals" class="totals"></span>
  <span class="spacer"></span>
  <span id="station-controls" class="needs-control"></span>
  <span id="auth" class="auth">${authHtml(o.access)}</span>
</header>
<section id="simpanel" class="simpanel" hidden></section>
<main id="lanes" class="lanes"></main>
<section class="logpanel"><h2>Alarms and mode changes <span class="zh">报警与模式</span></h2><ol id="log" class="log"></ol></section>
<script>const DASH = ${config};</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

/** The header's access corner; the script fills in who is logged in. Static text only. */
function authHtml(access: PageOptions['access']): string {
  if (access === 'read-only') return '<span id="read-only" class="note" title="Supervisor actions are not enabled on this gate (dashboard.control in its config)">只读 Read-only view</span>';
  if (access === 'loopback-demo') return '<span id="demo-mode" class="note warn" title="Anyone on this machine can act: for demos only">演示模式 Demo mode: no login, loopback (127.0.0.1) only</span>';
  return `<form id="login" class="login" autocomplete="off" hidden>
    <input id="login-name" name="name" type="text" placeholder="supervisor 值班员" aria-label="supervisor name" autocomplete="username" required maxlength="64">
    <input id="login-password" name="password" type="password" placeholder="password 密码" aria-label="password" autocomplete="current-password" required maxlength="256">
    <button id="login-go" type="submit" class="ok">登录 Log in</button>
    <span id="login-status"></span>
  </form>
  <span id="whoami" hidden><span id="whoami-name"></span> <button id="logout" type="button">退出 Log out</button></span>`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const CSS = String.raw`
:root { --bg:#0f1419; --panel:#1a212b; --line:#2c3643; --text:#e6edf3; --dim:#8b98a5; --green:#2ea043; --red:#e5534b; --amber:#d29922; --blue:#4493f8; --grey:#6e7681; }
* { box-sizing: border-box; }
[hidden] { display:none !important; }
body { margin:0; background:var(--bg); color:var(--text); font:14px/1.35 system-ui, "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; }
.zh { font-family: "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif; }
header.top { display:flex; align-items:center; gap:12px; padding:10px 16px; background:var(--panel); border-bottom:1px solid var(--line); position:sticky; top:0; z-index:2; flex-wrap:wrap; }
h1 { font-size:18px; margin:0; font-weight:600; }
h1 .station { color:var(--dim); font-weight:400; margin-left:6px; }
h2 { font-size:14px; margin:0 0 6px; color:var(--dim); font-weight:600; }
.spacer { flex:1; }
.conn { padding:2px 8px; border-radius:10px; font-size:12px; }
.conn.on { background:#12361f; color:#7ee2a8; } .conn.off { background:#3d1d1d; color:#ff9b94; }
.totals { color:var(--dim); font-size:13px; }
button, select, input { font:inherit; color:var(--text); background:#222b36; border:1px solid var(--line); border-radius:5px; padding:3px 8px; }
button { cursor:pointer; } button:hover { border-color:var(--dim); } button:disabled { opacity:.4; cursor:default; }
button.danger { background:#4a1e1e; border-color:#7d2a2a; } button.warn { background:#3d2f10; border-color:#6b5115; } button.ok { background:#163320; border-color:#2a5f3a; }
.simpanel { margin:10px 16px 0; padding:8px 12px; background:var(--panel); border:1px dashed #5a4a1a; border-radius:8px; display:flex; flex-wrap:wrap; gap:8px; align-items:center; }
.simpanel .tag { color:var(--amber); font-weight:600; }
.simpanel label { color:var(--dim); font-size:12px; display:flex; gap:4px; align-items:center; }
.simpanel input[type=text] { width:190px; }
#tap-status { color:var(--dim); font-size:12px; min-width:200px; }
#tap-status.err { color:var(--red); }
.lanes { display:grid; grid-template-columns:repeat(auto-fill, minmax(330px, 1fr)); gap:10px; padding:10px 16px; }
.lane { background:var(--panel); border:1px solid var(--line); border-left:5px solid var(--grey); border-radius:8px; padding:8px 10px; display:flex; flex-direction:column; gap:6px; }
.lane[data-mode=normal] { border-left-color:var(--green); }
.lane[data-mode=freePassage] { border-left-color:var(--blue); }
.lane[data-mode=emergency] { border-left-color:var(--red); background:#2a1618; }
.lane[data-mode=outOfService] { border-left-color:var(--amber); }
.lane[data-mode=maintenance] { border-left-color:var(--amber); }
.lane[data-mode=closed] { border-left-color:#444c56; }
.lane .head { display:flex; align-items:center; gap:4px 8px; flex-wrap:wrap; }
.lane .head > * { white-space:nowrap; }
.lane .id { font-size:17px; font-weight:700; }
.lane .dir { color:var(--dim); font-size:12px; }
.badge { font-size:12px; padding:1px 7px; border-radius:9px; background:#30363d; }
.badge.normal { background:#12361f; color:#7ee2a8; } .badge.freePassage { background:#102a4c; color:#9cc7ff; }
.badge.emergency { background:var(--red); color:#fff; animation:blink 1s steps(2) infinite; }
.badge.outOfService, .badge.maintenance { background:#3d2f10; color:#f2cc60; } .badge.closed { background:#30363d; color:#adbac7; }
@keyframes blink { 50% { opacity:.55; } }
.lane .state { color:var(--dim); font-size:12px; margin-left:auto; font-family:ui-monospace, monospace; }
.mech { display:flex; align-items:center; gap:12px; }
.flaps { width:86px; height:26px; border:1px solid var(--line); border-radius:4px; position:relative; background:#11161c; }
.flaps i { position:absolute; top:5px; height:16px; background:#9aa7b4; border-radius:3px; transition:width .25s; width:40px; }
.flaps i.l { left:2px; } .flaps i.r { right:2px; }
.flaps[data-pos=open] i { width:6px; } .flaps[data-pos=opening] i, .flaps[data-pos=closing] i { width:22px; } .flaps[data-pos=unknown] i { background:#5a3b3b; }
.ind { font-size:22px; width:28px; text-align:center; }
.ind.green-arrow { color:var(--green); } .ind.red-cross { color:var(--red); } .ind.off { color:#444c56; }
.mech .lbl { color:var(--dim); font-size:12px; }
.display { background:#050805; border:2px solid #2b3a2b; border-radius:5px; padding:5px 8px; min-height:50px; }
.display .zh { color:#ffd166; font-size:16px; } .display .en { color:#9fd8a0; font-size:12px; }
.display.refuse .zh { color:#ff7b72; }
.health { display:flex; flex-wrap:wrap; gap:4px 10px; font-size:12px; color:var(--dim); }
.dot { display:inline-block; width:8px; height:8px; border-radius:50%; margin-right:4px; background:var(--green); }
.dot.bad { background:var(--red); }
.faults { color:#ff9b94; font-size:12px; }
.schedule { display:flex; flex-wrap:wrap; gap:2px 10px; font-size:12px; color:var(--dim); }
.schedule .stage.advise { color:#ffd166; } .schedule .stage.enforce { color:var(--green); }
ol.decisions { list-style:none; margin:0; padding:0; font-size:12px; font-family:ui-monospace, monospace; min-height:40px; }
ol.decisions li { display:grid; grid-template-columns:62px 16px 1fr auto; gap:4px; padding:1px 2px; border-radius:3px; }
ol.decisions li.fresh { animation:fresh 1.2s ease-out; }
@keyframes fresh { from { background:#3a4a1a; } to { background:transparent; } }
ol.decisions .g { color:var(--green); } ol.decisions .r { color:var(--red); }
ol.decisions .reason { color:var(--dim); }
.controls { display:flex; flex-wrap:wrap; gap:4px; align-items:center; border-top:1px solid var(--line); padding-top:6px; }
.controls button, .controls select { font-size:12px; padding:2px 6px; }
.controls .simc { display:flex; gap:5px; padding-left:6px; border-left:1px dashed #5a4a1a; }
.logpanel { margin:0 16px 16px; padding:8px 12px; background:var(--panel); border:1px solid var(--line); border-radius:8px; }
ol.log { list-style:none; margin:0; padding:0; max-height:180px; overflow:auto; font-size:12px; font-family:ui-monospace, monospace; }
ol.log li.alarm { color:#ff9b94; } ol.log li.mode { color:#adbac7; }
.empty { color:var(--dim); font-size:12px; }
body[data-control=off] .needs-control { display:none !important; }
.auth { display:flex; align-items:center; gap:6px; font-size:13px; }
.auth .note { padding:2px 8px; border-radius:10px; background:#30363d; color:#adbac7; font-size:12px; }
.auth .note.warn { background:#3d2f10; color:#f2cc60; }
.login { display:flex; gap:4px; align-items:center; }
.login input { width:130px; }
#login-status { color:var(--red); font-size:12px; }
#whoami-name { color:#7ee2a8; }
ol.log li.action { color:#9cc7ff; }
`;

// Plain ES2020, no template literals (this is itself inside one), DOM built with textContent.
const SCRIPT = String.raw`
(function () {
  'use strict';
  var base = DASH.prefix;
  var lanes = new Map();      // laneId -> { view, el, parts }
  var order = [];
  var decisions = new Map();  // laneId -> rows
  // Sequence numbers from the server, in order: a reconnect's hello replays rows already shown.
  var lastDecisionSeq = 0, lastLogSeq = 0;
  var totals = { grant: 0, refuse: 0 };
  var modeNames = { normal: '正常 normal', freePassage: '自由通行 free passage', emergency: '紧急 emergency', outOfService: '暂停服务 out of service', maintenance: '维护 maintenance', closed: '关闭 closed' };
  var operatorModes = [['normal', '正常 normal'], ['free', '自由通行 free passage'], ['maintenance', '维护 maintenance'], ['closed', '关闭 closed']];
  document.getElementById('station').textContent = DASH.station;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function btn(text, cls, onClick) {
    var b = el('button', cls, text);
    b.type = 'button';
    b.addEventListener('click', onClick);
    return b;
  }
  function two(n) { return (n < 10 ? '0' : '') + n; }
  // Station time is Beijing time (UTC+8), whatever the browser's zone.
  function hms(ms) { var d = new Date(ms + 8 * 3600000); return two(d.getUTCHours()) + ':' + two(d.getUTCMinutes()) + ':' + two(d.getUTCSeconds()); }
  // The enforcement schedule in Beijing time: its seq, each scheduled kind's stage and its next change.
  var stageNames = { 'not-enforced': '未检查 not enforced', advise: '提示登记 advise', enforce: '检查 enforce' };
  function bjMinute(ms) { var d = new Date(ms + 8 * 3600000); return d.getUTCFullYear() + '-' + two(d.getUTCMonth() + 1) + '-' + two(d.getUTCDate()) + ' ' + two(d.getUTCHours()) + ':' + two(d.getUTCMinutes()); }
  function renderSchedule(box, s) {
    box.textContent = '';
    box.dataset.seq = s ? String(s.seq) : '';
    if (!s) { box.append(el('span', null, 'schedule: none (every kind enforced)')); return; }
    box.append(el('span', null, 'schedule s' + s.seq + ':'));
    Object.keys(s.kinds).forEach(function (k) {
      var x = s.kinds[k];
      var span = el('span', 'stage ' + x.stage, k + ' ' + stageNames[x.stage] + (x.next ? ' → ' + x.next.stage + ' ' + bjMinute(x.next.atMs) : ''));
      span.dataset.kind = k; span.dataset.stage = x.stage;
      box.append(span);
    });
    box.append(el('span', null, '(other kinds enforced)'));
  }
  function age(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 120) return s + ' s';
    var m = Math.floor(s / 60);
    if (m < 120) return m + ' min';
    return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
  }
  // Who may act: the server says (GET /api/session); the CSRF token rides on every action.
  var session = { control: false, csrf: null, supervisor: null };
  function setSession(s) {
    session = { control: !!s.control, csrf: s.csrf || null, supervisor: s.supervisor || null };
    document.body.dataset.control = session.control ? 'on' : 'off';
    var form = document.getElementById('login'), who = document.getElementById('whoami');
    if (form) form.hidden = session.control;
    if (who) {
      who.hidden = !session.supervisor;
      document.getElementById('whoami-name').textContent = session.supervisor ? '值班员 ' + session.supervisor : '';
    }
  }
  function loadSession() {
    return fetch(base + '/api/session', { cache: 'no-store' }).then(function (r) { return r.json(); }).then(setSession);
  }
  function post(path, body) {
    var headers = { 'content-type': 'application/json' };
    if (session.csrf) headers['x-csrf-token'] = session.csrf;
    return fetch(base + path, { method: 'POST', headers: headers, body: JSON.stringify(body || {}) })
      .then(function (r) { return r.json().then(function (j) {
        if (r.status === 401 && path !== '/api/login') { setSession({ control: false }); loginStatus('Please log in again 请重新登录'); }
        if (!r.ok) throw new Error(j.error ? j.error.message : r.statusText);
        return j;
      }); });
  }
  function loginStatus(text) { var s = document.getElementById('login-status'); if (s) s.textContent = text; }
  function buildAuth() {
    var form = document.getElementById('login');
    if (form) form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var name = document.getElementById('login-name'), pw = document.getElementById('login-password');
      loginStatus('');
      post('/api/login', { name: name.value, password: pw.value })
        .then(function (r) { pw.value = ''; setSession({ control: true, csrf: r.csrf, supervisor: r.supervisor }); })
        .catch(function (e) { pw.value = ''; loginStatus(String(e.message || e)); });
    });
    var out = document.getElementById('logout');
    if (out) out.addEventListener('click', function () {
      post('/api/logout', {}).then(function () { setSession({ control: false }); }, function () { setSession({ control: false }); });
    });
  }
  function report(err) { var s = document.getElementById('tap-status'); if (s) { s.textContent = String(err.message || err); s.className = 'err'; } else alert(err.message || err); }

  function buildLane(v) {
    var root = el('section', 'lane');
    root.dataset.lane = v.laneId;
    var head = el('div', 'head');
    var id = el('span', 'id', v.laneId);
    var dir = el('span', 'dir', v.direction === 'entry' ? '进站 entry' : v.direction === 'exit' ? '出站 exit' : '双向 both ways');
    var badge = el('span', 'badge');
    var state = el('span', 'state');
    head.append(id, dir, badge, state);

    var mech = el('div', 'mech');
    var flaps = el('span', 'flaps'); flaps.append(el('i', 'l'), el('i', 'r'));
    var flapText = el('span', 'lbl');
    var ind = el('span', 'ind');
    mech.append(flaps, flapText, ind);

    var display = el('div', 'display');
    var dzh = el('div', 'zh'); var den = el('div', 'en');
    display.append(dzh, den);

    var health = el('div', 'health');
    var faults = el('div', 'faults');
    var schedule = el('div', 'schedule');
    var list = el('ol', 'decisions');

    var controls = el('div', 'controls needs-control');
    var sel = el('select', 'mode-select');
    operatorModes.forEach(function (m) { var o = el('option', null, m[1]); o.value = m[0]; sel.append(o); });
    sel.setAttribute('aria-label', 'mode for ' + v.laneId);
    var sw = btn('Switch…', 'warn switch-mode', function () {
      var cur = lanes.get(v.laneId).view.mode;
      var label = sel.options[sel.selectedIndex].textContent;
      if (!confirm('Switch lane ' + v.laneId + ' from ' + (modeNames[cur] || cur) + ' to ' + label + '?\n确认切换通道模式？')) return;
      post('/api/lanes/' + encodeURIComponent(v.laneId) + '/mode', { mode: sel.value, confirmed: true }).catch(report);
    });
    var reset = btn('Reset emerg.', 'danger reset-emergency', function () {
      if (!confirm('Reset emergency on lane ' + v.laneId + '? Only when the alarm is cleared.\n确认解除紧急模式？')) return;
      post('/api/lanes/' + encodeURIComponent(v.laneId) + '/reset-emergency', { confirmed: true }).catch(report);
    });
    sw.title = 'Switch lane ' + v.laneId + ' to the selected mode (asks for confirmation)';
    reset.title = 'Reset emergency on lane ' + v.laneId + ' (asks for confirmation)';
    controls.append(sel, sw, reset);
    if (DASH.sim) {
      var simc = el('span', 'simc');
      var faultOn = false, obstructed = false;
      var fault = btn('Fault', 'sim-fault', function () {
        faultOn = !faultOn; fault.textContent = faultOn ? 'Clear fault' : 'Fault';
        post('/api/sim/fault', { lane: v.laneId, code: faultOn ? 17 : 0 }).catch(report);
      });
      var obst = btn('Obstruct', 'sim-obstruct', function () {
        obstructed = !obstructed; obst.textContent = obstructed ? 'Unblock' : 'Obstruct';
        post('/api/sim/obstruct', { lane: v.laneId, active: obstructed }).catch(report);
      });
      var tail = btn('Tailgate', 'sim-tailgate', function () { post('/api/sim/tailgate', { lane: v.laneId }).catch(report); });
      simc.append(fault, obst, tail);
      controls.append(simc);
    }
    root.append(head, mech, display, health, schedule, faults, list, controls);
    var parts = { badge: badge, state: state, flaps: flaps, flapText: flapText, ind: ind, display: display, dzh: dzh, den: den, health: health, schedule: schedule, faults: faults, list: list, sel: sel, reset: reset };
    return { el: root, parts: parts, view: v };
  }

  function renderLane(v) {
    var L = lanes.get(v.laneId);
    if (!L) {
      L = buildLane(v);
      lanes.set(v.laneId, L);
      order.push(v.laneId);
      document.getElementById('lanes').append(L.el);
      decisions.set(v.laneId, decisions.get(v.laneId) || []);
      refreshLaneSelect();
    }
    L.view = v;
    var p = L.parts;
    L.el.dataset.mode = v.mode;
    L.el.dataset.state = v.state;
    p.badge.className = 'badge ' + v.mode;
    p.badge.textContent = modeNames[v.mode] || v.mode;
    p.state.textContent = v.state;
    p.reset.disabled = v.mode !== 'emergency';
    p.flaps.dataset.pos = v.flaps;
    p.flapText.textContent = 'flaps ' + v.flaps;
    p.ind.className = 'ind ' + v.indicator;
    p.ind.textContent = v.indicator === 'green-arrow' ? '➜' : v.indicator === 'red-cross' ? '✕' : '•';
    p.ind.title = 'indicator: ' + v.indicator;
    p.display.className = 'display' + (v.display !== 'idle' && v.indicator === 'red-cross' ? ' refuse' : '');
    p.display.title = 'rider display: ' + v.display;
    p.dzh.textContent = v.zh;
    p.den.textContent = v.en;
    p.health.textContent = '';
    var link = el('span'); var ld = el('span', 'dot' + (v.faults['barrier-link'] ? ' bad' : '')); link.append(ld, document.createTextNode('link'));
    p.health.append(link);
    v.sources.forEach(function (s) {
      var r = el('span'); r.append(el('span', 'dot' + (v.faults['source:' + s] ? ' bad' : '')), document.createTextNode(s)); p.health.append(r);
    });
    var b = el('span'); b.append(el('span', 'dot' + (v.faults['barrier-fault'] || v.faults['flap-stuck'] ? ' bad' : '')), document.createTextNode('barrier'));
    p.health.append(b);
    var lst = el('span'); lst.append(el('span', 'dot' + (v.faults['list-too-old'] ? ' bad' : '')), document.createTextNode('list v' + v.listVersion + ', ' + age(v.listAgeMs) + ' old'));
    p.health.append(lst);
    renderSchedule(p.schedule, v.schedule);
    var fs = Object.keys(v.faults).map(function (k) { return k + ': ' + v.faults[k]; });
    if (v.fireAlarm) fs.unshift('FIRE ALARM 火警');
    p.faults.textContent = fs.join(' · ');
    updateStationControls();
  }

  function renderDecision(d, fresh) {
    if (d.seq > lastDecisionSeq) {
      lastDecisionSeq = d.seq;
      if (d.grant) totals.grant++; else totals.refuse++;
    } else if (fresh) return;
    var rows = decisions.get(d.laneId) || [];
    rows.push(d);
    if (rows.length > 6) rows.shift();
    decisions.set(d.laneId, rows);
    var L = lanes.get(d.laneId);
    if (!L) return;
    var li = el('li', fresh ? 'fresh' : '');
    li.dataset.ref = d.ref;
    li.dataset.seq = String(d.seq);
    li.dataset.grant = String(d.grant);
    li.dataset.reason = d.reason;
    li.title = d.zh + ' / ' + d.en + ' (' + d.source + ', ' + d.direction + ', decided in ' + d.latencyMs + ' ms)';
    li.append(el('span', null, hms(d.atMs)), el('span', d.grant ? 'g' : 'r', d.grant ? '✓' : '✕'), el('span', 'ref', d.ref), el('span', 'reason', d.reason));
    L.parts.list.prepend(li);
    while (L.parts.list.children.length > 6) L.parts.list.lastChild.remove();
    document.getElementById('totals').textContent = 'admitted ' + totals.grant + ' · refused ' + totals.refuse;
  }

  function renderLog(r) {
    if (r.seq <= lastLogSeq) return;
    lastLogSeq = r.seq;
    var li = el('li', r.kind, hms(r.atMs) + '  ' + r.laneId + '  ' + r.text);
    var log = document.getElementById('log');
    log.prepend(li);
    while (log.children.length > 50) log.lastChild.remove();
  }

  var stationControls = null;
  function updateStationControls() {
    if (!stationControls) return;
    var anyEmergency = false, anyFire = false;
    lanes.forEach(function (L) { if (L.view.mode === 'emergency') anyEmergency = true; if (L.view.fireAlarm) anyFire = true; });
    stationControls.resetAll.disabled = !anyEmergency;
    if (stationControls.fire) { stationControls.fire.disabled = anyFire; stationControls.clear.disabled = !anyFire; }
  }
  function buildStationControls() {
    var box = document.getElementById('station-controls');
    var resetAll = btn('Reset emergency (all lanes)', 'danger', function () {
      if (!confirm('Reset emergency on every lane? Only when the alarm is cleared.\n确认解除全部通道紧急模式？')) return;
      post('/api/station/reset-emergency', { confirmed: true }).catch(report);
    });
    resetAll.id = 'reset-all';
    stationControls = { resetAll: resetAll };
    if (DASH.sim) {
      var fire = btn('火警 Fire alarm', 'danger', function () { post('/api/sim/fire-alarm', { active: true }).catch(report); });
      fire.id = 'fire-alarm';
      var clear = btn('Clear fire alarm', 'ok', function () { post('/api/sim/fire-alarm', { active: false }).catch(report); });
      clear.id = 'clear-fire-alarm';
      stationControls.fire = fire; stationControls.clear = clear;
      box.append(fire, clear);
    }
    box.append(resetAll);
  }

  // Simulator panel: tap a chosen credential at a chosen lane side.
  var tapLane = null, tapSide = null;
  function refreshLaneSelect() {
    if (!tapLane) return;
    var cur = tapLane.value;
    tapLane.textContent = '';
    order.forEach(function (id) { var o = el('option', null, id); o.value = id; tapLane.append(o); });
    if (cur) tapLane.value = cur;
    refreshSides();
  }
  function refreshSides() {
    if (!tapSide) return;
    var L = lanes.get(tapLane.value);
    var cur = tapSide.value;
    tapSide.textContent = '';
    (L ? L.view.sides : ['entry']).forEach(function (s) { var o = el('option', null, s === 'entry' ? '进 entry' : '出 exit'); o.value = s; tapSide.append(o); });
    if (cur && Array.prototype.some.call(tapSide.options, function (o) { return o.value === cur; })) tapSide.value = cur;
  }
  function labelled(text, input) { var l = el('label', null, text); l.append(input); return l; }
  function buildSimPanel() {
    var panel = document.getElementById('simpanel');
    panel.hidden = false;
    panel.classList.add('needs-control');
    panel.append(el('span', 'tag', '模拟 Simulator'));
    tapLane = el('select'); tapLane.id = 'tap-lane'; tapLane.addEventListener('change', refreshSides);
    tapSide = el('select'); tapSide.id = 'tap-side';
    var kind = el('select'); kind.id = 'tap-kind';
    var kindNames = { qr: '乘车码 QR ride code', card: '一卡通 card', 'phone-nfc': '手机NFC phone card', ticket: '纪念票 ticket' };
    DASH.sim.kinds.forEach(function (k) { var o = el('option', null, kindNames[k] || k); o.value = k; kind.append(o); });
    kind.value = 'card';
    var issuer = el('select'); issuer.id = 'tap-issuer';
    DASH.sim.issuers.forEach(function (k) { var o = el('option', null, k); o.value = k; issuer.append(o); });
    var story = el('select'); story.id = 'tap-story';
    var storyNames = { green: 'registered, green', yellow: 'registered, yellow', red: 'registered, red', blocked: 'blocked', unregistered: 'not registered', 'as-listed': 'as the lists say' };
    DASH.sim.stories.forEach(function (k) { var o = el('option', null, storyNames[k] || k); o.value = k; story.append(o); });
    var number = el('input'); number.type = 'text'; number.id = 'tap-number'; number.autocomplete = 'off';
    var walk = el('input'); walk.type = 'checkbox'; walk.checked = true; walk.id = 'tap-walk';
    var tail = el('input'); tail.type = 'checkbox'; tail.id = 'tap-tailgater';
    var issuerLabel = labelled('issuer', issuer);
    function kindChanged() {
      issuerLabel.hidden = kind.value !== 'qr';
      number.placeholder = kind.value === 'qr' ? 'account (blank: new)' : kind.value === 'ticket' ? 'ticket number (blank: new)' : '19-digit card number (blank: new)';
    }
    kind.addEventListener('change', kindChanged);
    kindChanged();
    var go = btn('Tap / show', 'ok', function () {
      var st = document.getElementById('tap-status');
      st.className = ''; st.textContent = 'sent…';
      post('/api/sim/tap', { lane: tapLane.value, side: tapSide.value, kind: kind.value, issuer: kind.value === 'qr' ? issuer.value : undefined, story: story.value, number: number.value || undefined, walk: walk.checked, tailgater: tail.checked })
        .then(function (r) { st.textContent = r.lane + ' ' + r.side + ': ' + r.ref; st.dataset.ref = r.ref; })
        .catch(report);
    });
    go.id = 'tap-go';
    var status = el('span'); status.id = 'tap-status';
    panel.append(labelled('lane', tapLane), labelled('side', tapSide), labelled('credential', kind), issuerLabel, labelled('story', story), labelled('number', number), labelled('walk through', walk), labelled('tailgater', tail), go, status);
  }

  function hello(s) {
    // Start over from the server's recent history (after a reconnect or a server restart).
    var maxSeq = s.decisions.reduce(function (m, d) { return Math.max(m, d.seq); }, 0);
    if (maxSeq < lastDecisionSeq) lastDecisionSeq = 0;
    lastLogSeq = 0;
    document.getElementById('log').textContent = '';
    lanes.forEach(function (L) { L.parts.list.textContent = ''; });
    decisions.forEach(function (rows) { rows.length = 0; });
    s.lanes.forEach(renderLane);
    s.decisions.sort(function (a, b) { return a.seq - b.seq; }).forEach(function (d) { renderDecision(d, false); });
    s.log.forEach(renderLog);
  }

  function connect() {
    var conn = document.getElementById('conn');
    var es = new EventSource(base + '/events');
    es.addEventListener('open', function () { conn.textContent = '● live'; conn.className = 'conn on'; });
    es.addEventListener('error', function () { conn.textContent = 'reconnecting…'; conn.className = 'conn off'; });
    es.addEventListener('hello', function (e) { hello(JSON.parse(e.data)); });
    es.addEventListener('lane', function (e) { renderLane(JSON.parse(e.data)); });
    es.addEventListener('decision', function (e) { renderDecision(JSON.parse(e.data), true); });
    es.addEventListener('log', function (e) { renderLog(JSON.parse(e.data)); });
  }

  buildAuth();
  buildStationControls();
  if (DASH.sim) buildSimPanel();
  loadSession().catch(function () {});
  connect();
})();
`;
