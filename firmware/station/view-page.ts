// The station view's one page: HTML, CSS and script inline (no CDN: a station network has no internet).
// The script builds the DOM with textContent only and follows the view over server-sent events.

export function stationViewPage(o: { station: string; modes: readonly string[]; fareModes: readonly string[] }): string {
  const config = JSON.stringify(o).replace(/</g, '\\u003c');
  const title = o.station.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · 车站总览 Station view</title>
<style>${CSS}</style>
</head>
<body>
<header><h1><span class="zh">车站总览</span> Station view <span id="station"></span></h1>
<span id="bus" class="pill off">broker ?</span><span class="spacer"></span><span id="who"></span>
<span id="station-actions" hidden>
  <button id="emergency-on" class="danger">Station emergency 全站紧急</button>
  <button id="emergency-off">Clear emergency input</button>
  <button id="reset-all" class="warn">Reset every lane</button>
  <span id="fare-modes" class="fare-modes" title="GB 50157 degraded modes, for every fare gate of the station"></span>
  <button id="fare-modes-go" class="warn">Set fare modes 票务降级</button>
  <button id="logout">Log out</button>
</span></header>
<form id="login" class="login">
  <h2>Supervisor login <span class="zh">值班站长登录</span></h2>
  <label>User <input id="user" name="user" autocomplete="username"></label>
  <label>Password <input id="password" name="password" type="password" autocomplete="current-password"></label>
  <button id="login-go" type="submit">Log in</button> <span id="login-error" class="err"></span>
</form>
<main id="lanes" class="lanes" hidden></main>
<section id="events-panel" hidden><h2>Alarms, commands, results</h2><ol id="events" class="events"></ol></section>
<script>const VIEW = ${config};</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

const CSS = String.raw`
body { margin:0; background:#0f1419; color:#e6edf3; font:14px/1.35 system-ui, "Noto Sans CJK SC", sans-serif; }
header { display:flex; gap:10px; align-items:center; padding:10px 16px; background:#1a212b; border-bottom:1px solid #2c3643; flex-wrap:wrap; }
h1 { font-size:18px; margin:0; } h2 { font-size:14px; color:#8b98a5; margin:0 0 8px; }
.spacer { flex:1; } [hidden] { display:none !important; }
.pill { padding:2px 8px; border-radius:10px; font-size:12px; } .pill.on { background:#12361f; color:#7ee2a8; } .pill.off { background:#3d1d1d; color:#ff9b94; }
button, select, input { font:inherit; color:#e6edf3; background:#222b36; border:1px solid #2c3643; border-radius:5px; padding:3px 8px; }
button.danger { background:#4a1e1e; } button.warn { background:#3d2f10; }
.login { margin:40px auto; max-width:360px; display:flex; flex-direction:column; gap:8px; background:#1a212b; padding:16px; border-radius:8px; }
.err { color:#e5534b; }
.lanes { display:grid; grid-template-columns:repeat(auto-fill, minmax(280px, 1fr)); gap:10px; padding:10px 16px; }
.lane { background:#1a212b; border:1px solid #2c3643; border-left:5px solid #6e7681; border-radius:8px; padding:8px 10px; display:flex; flex-direction:column; gap:4px; }
.lane[data-mode=normal] { border-left-color:#2ea043; } .lane[data-mode=emergency] { border-left-color:#e5534b; background:#2a1618; }
.lane[data-mode=maintenance], .lane[data-mode=outOfService] { border-left-color:#d29922; } .lane[data-mode=freePassage] { border-left-color:#4493f8; }
.lane[data-online=false] { opacity:.55; }
.lane .id { font-weight:700; font-size:16px; } .dim { color:#8b98a5; font-size:12px; }
.events { list-style:none; padding:0 16px; margin:0; font-size:13px; } .events li { padding:2px 0; border-bottom:1px solid #222; }
.events li[data-ok=false] { color:#ff9b94; }
`;

const SCRIPT = String.raw`
const $ = (id) => document.getElementById(id);
const lanes = new Map();
let es;
$('station').textContent = VIEW.station;
function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
async function api(path, body) {
  const r = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body || {}) });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((j.error && j.error.message) || r.statusText);
  return j;
}
function showLoggedIn(user) {
  $('login').hidden = true; $('lanes').hidden = false; $('events-panel').hidden = false; $('station-actions').hidden = false;
  $('who').textContent = user;
  connect();
}
function connect() {
  if (es) es.close();
  es = new EventSource('events');
  es.addEventListener('hello', (m) => { const s = JSON.parse(m.data); bus(s.bus); for (const l of s.lanes) lane(l); $('events').textContent = ''; for (const e of s.events) event(e); });
  es.addEventListener('lane', (m) => lane(JSON.parse(m.data)));
  es.addEventListener('event', (m) => event(JSON.parse(m.data)));
  es.addEventListener('bus', (m) => bus(JSON.parse(m.data).up));
}
function bus(up) { const b = $('bus'); b.textContent = up ? 'broker connected' : 'broker unreachable'; b.className = 'pill ' + (up ? 'on' : 'off'); }
function lane(l) {
  let s = lanes.get(l.id);
  if (!s) {
    s = el('section', 'lane'); s.dataset.lane = l.id;
    const head = el('div'); head.append(el('span', 'id', l.id), document.createTextNode(' '), el('span', 'mode'), document.createTextNode(' '), el('span', 'online dim'));
    const sel = el('select', 'mode-select'); for (const m of VIEW.modes) { const o = el('option', '', m); o.value = m; sel.append(o); }
    const go = el('button', 'mode-go', 'Set mode');
    go.onclick = () => { if (confirm('Set ' + l.id + ' to ' + sel.value + '?')) act('lanes/' + l.id + '/mode', { mode: sel.value, confirmed: true }); };
    const reset = el('button', 'reset warn', 'Reset emergency');
    reset.onclick = () => { if (confirm('Reset the emergency on ' + l.id + '?')) act('lanes/' + l.id + '/reset-emergency', { confirmed: true }); };
    const actions = el('div'); actions.append(sel, go, reset);
    s.append(head, el('div', 'health dim'), el('div', 'schedule dim'), el('div', 'fares dim'), el('div', 'open dim'), el('div', 'stats dim'), actions);
    const all = [...lanes.keys(), l.id].sort(); lanes.set(l.id, s);
    const next = all[all.indexOf(l.id) + 1]; $('lanes').insertBefore(s, next ? lanes.get(next) : null);
  }
  const st = l.state || {};
  s.dataset.online = String(l.online === true);
  s.dataset.mode = st.mode || 'unknown';
  s.querySelector('.mode').textContent = st.mode || '?';
  s.querySelector('.online').textContent = l.online === true ? 'online' : l.online === false ? 'offline (' + (l.cause || 'lost') + ')' : '';
  s.querySelector('.health').textContent = st.mode ? 'list v' + st.listVersion + ', ' + st.listAgeS + ' s old · barrier ' + st.link + ' · readers ' + Object.entries(st.readers).map(([k, v]) => k + ' ' + v).join(', ') : '';
  // The enforcement schedule the lane holds: its seq, each kind's stage and its next change (Beijing time).
  const sc = s.querySelector('.schedule');
  sc.dataset.seq = st.schedule ? String(st.schedule.seq) : '';
  sc.textContent = !st.mode ? '' : !st.schedule ? 'schedule: none (every kind enforced)' : 'schedule s' + st.schedule.seq + ': ' + Object.entries(st.schedule.kinds).map(([k, x]) => k + ' ' + x.stage + (x.next ? ' → ' + x.next + ' ' + new Date(x.nextAtMs + 8 * 3600000).toISOString().slice(0, 16).replace('T', ' ') : '')).join(' · ') + ' (other kinds enforced)';
  // A fare gate's degraded modes (absent: the lane has no fare gate).
  const fm = s.querySelector('.fares');
  fm.dataset.modes = st.fareModes ? st.fareModes.join(',') : '';
  fm.textContent = !st.fareModes ? '' : 'fares: ' + (st.fareModes.length ? st.fareModes.join(', ') : 'normal');
  s.querySelector('.open').textContent = st.open ? Object.keys(st.open).join(', ') : '';
  const x = l.stats; s.querySelector('.stats').textContent = x ? 'last minute: ' + x.granted + ' in, ' + x.refused + ' refused' : '';
}
function event(e) {
  const li = el('li', e.kind, new Date(e.atMs).toLocaleTimeString() + ' ' + e.lane + ' · ' + e.text);
  li.dataset.kind = e.kind; if (e.id) li.dataset.id = e.id; if (e.ok !== undefined) li.dataset.ok = String(e.ok);
  $('events').prepend(li);
  while ($('events').children.length > 100) $('events').lastChild.remove();
}
async function act(path, body) { try { await api('api/' + path, body); } catch (err) { event({ kind: 'error', lane: '', atMs: Date.now(), text: String(err.message), ok: false }); } }
$('login').onsubmit = async (ev) => {
  ev.preventDefault(); $('login-error').textContent = '';
  try { const r = await api('api/login', { user: $('user').value, password: $('password').value }); $('password').value = ''; showLoggedIn(r.name); }
  catch (err) { $('login-error').textContent = err.message; }
};
$('emergency-on').onclick = () => { if (confirm('Open every lane of the station (emergency)?')) act('station/emergency', { active: true, confirmed: true }); };
$('emergency-off').onclick = () => { if (confirm('Clear the station emergency input?')) act('station/emergency', { active: false, confirmed: true }); };
$('reset-all').onclick = () => { if (confirm('Reset the emergency on every lane?')) act('station/reset-emergency', { confirmed: true }); };
for (const m of VIEW.fareModes) { const l = el('label', 'dim'); const c = el('input'); c.type = 'checkbox'; c.value = m; l.append(c, document.createTextNode(' ' + m + ' ')); $('fare-modes').append(l); }
$('fare-modes-go').onclick = () => {
  const modes = [...$('fare-modes').querySelectorAll('input:checked')].map((c) => c.value);
  if (confirm('Fare modes for every fare gate of the station: ' + (modes.join(', ') || 'normal') + '?')) act('station/fare-modes', { modes, confirmed: true });
};
$('logout').onclick = async () => { await act('logout'); location.reload(); };
fetch('api/state').then((r) => r.ok ? r.json() : null).then((s) => { if (s) showLoggedIn(s.user); });
`;
