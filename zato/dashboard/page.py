"""The dashboard's HTML: a login form and the overview page with its small inline script.
No framework and nothing fetched from the network; every value is inserted as text."""

from __future__ import annotations

import html

ALIVE_EVERY = 3.0  # seconds between the "alive" events of the page's stream while nothing changes
SILENCE = 3 * ALIVE_EVERY  # seconds without a word after which an open page says it heard none

STYLE = """
body{font:14px system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#1f3a5f;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}
header h1{font-size:18px;margin:0;flex:1} header button{cursor:pointer}
main{padding:12px 16px;display:grid;grid-template-columns:1fr 1fr;gap:12px}
section{background:#fff;border-radius:6px;padding:8px 12px;box-shadow:0 1px 2px #0002}
section.wide{grid-column:1/3} h2{font-size:15px;margin:4px 0 8px}
table{border-collapse:collapse;width:100%} th,td{text-align:left;padding:3px 6px;border-bottom:1px solid #eee}
th{font-weight:600;color:#555} .ok{color:#137333;font-weight:600} .bad{color:#b3261e;font-weight:600}
.warn{color:#a56300;font-weight:600}
#errors{background:#fce8e6;color:#b3261e;padding:8px 16px;display:none}
#message{padding:6px 16px;color:#1f3a5f;position:sticky;top:0;z-index:1;background:#fff;
box-shadow:0 1px 2px #0002} #message:empty{display:none}
#message div{color:#1f3a5f;font-weight:normal} #message div.bad{color:#b3261e;font-weight:600}
#message div.warn{color:#a56300;font-weight:600}
.muted{color:#888} svg{background:#fafbfc;border:1px solid #eee}
form.login{max-width:320px;margin:80px auto;background:#fff;padding:24px;border-radius:6px;
box-shadow:0 1px 3px #0003}
form.login input{display:block;width:100%;margin:6px 0 12px;padding:6px;box-sizing:border-box}
"""

LOGIN = """<!doctype html><html><head><meta charset="utf-8">
<link rel="icon" href="data:,"><title>Zato dashboard: log in</title>
<style>{style}</style></head><body>
<form class="login" method="post" action="login"><h2>Zato cluster {cluster}</h2>
<p class="bad" id="login-error">{error}</p>
<label>User <input name="username" id="username" autofocus></label>
<label>Password <input name="password" id="password" type="password"></label>
<button type="submit" id="login">Log in</button></form></body></html>"""


def login_page(cluster: str, error: str = "") -> str:
    return LOGIN.format(style=STYLE, cluster=html.escape(cluster), error=html.escape(error))


OVERVIEW = """<!doctype html><html><head><meta charset="utf-8">
<link rel="icon" href="data:,"><title>Zato dashboard: {cluster}</title>
<meta name="csrf" content="{csrf}"><style>{style}</style></head><body>
<header><h1>Zato cluster <span id="cluster">{cluster}</span></h1>
<span id="live" class="muted">connecting...</span><span>{user}</span>
<form method="post" action="logout" id="logout-form"><input type="hidden" name="csrf" value="{csrf}">
<button id="logout">Log out</button></form></header>
<div id="errors"></div><div id="message"></div>
<main>
<section class="wide"><h2>Servers</h2><table id="servers"><thead><tr><th>name</th><th>state</th>
<th>address</th><th>pid</th><th>since</th><th>role</th><th>req/s</th><th>LB</th><th></th></tr></thead>
<tbody></tbody></table></section>
<section><h2>Connector-server lease</h2><p>holder <b id="lease-holder">-</b>, epoch <b id="lease-epoch">-</b>,
since <span id="lease-since">-</span></p>
<h2>Takeovers</h2><svg id="takeover-chart" width="100%" height="60"></svg>
<table id="takeovers"><thead><tr><th>time (UTC)</th><th>holder</th><th>epoch</th><th>took</th></tr></thead>
<tbody></tbody></table></section>
<section><h2>Requests/s per server (last minute)</h2><svg id="rps-chart" width="100%" height="140"></svg>
<div id="rps-legend"></div></section>
<section class="wide"><h2>Connectors</h2><table id="connectors"><thead><tr><th>name</th><th>kind</th>
<th>state</th><th>pid</th><th>restarts</th><th>in</th><th>out</th>
<th title="an outgoing connection's messages yet to go out: waiting in Redis and being sent
(zato_outgoing_queue_depth, list waiting and processing)">waiting</th>
<th title="messages its process parked since it started">parked since start</th>
<th title="messages that wait parked now: an AMQP channel's parking queue, an outgoing
connection's parked list in Redis">parked now</th>
<th>last error</th><th></th>
</tr></thead><tbody></tbody></table>
<p id="connectors-note" class="bad"></p>
<p id="async">invoke_async: <b id="async-queued">-</b> queued, <b id="async-parked">-</b> parked
<span id="async-actions"></span></p></section>
<section><h2>Load balancer backends</h2><p id="lb-note" class="muted"></p><table id="lb"><thead><tr>
<th>server</th><th>address</th><th>state</th><th>check</th><th>sessions</th></tr></thead><tbody></tbody></table>
</section>
<section><h2>Deploy a service module</h2><input type="file" id="deploy-file" accept=".py">
<button id="deploy">Deploy</button></section>
<section><h2>Deployed services</h2><table id="services"><thead><tr><th>service</th><th>module</th>
<th></th></tr>
</thead><tbody></tbody></table>
<p>User config deployed to the cluster (self.config.NAME): <span id="user-config">-</span></p></section>
<section><h2>HTTP channels</h2><table id="channels"><thead><tr><th>name</th><th>path</th><th>method</th>
<th>service</th><th>security</th><th>active</th></tr></thead><tbody></tbody></table></section>
</main>
<script>{script}</script></body></html>"""

SCRIPT = r"""
const csrf = document.querySelector('meta[name=csrf]').content;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
function $(id) { return document.getElementById(id); }
function when(t) { return t ? new Date(t * 1000).toISOString().slice(11, 19) : '-'; }  // UTC
function cell(tr, value, cls) {
  const td = document.createElement('td');
  if (value instanceof Node) td.appendChild(value); else td.textContent = value == null ? '-' : value;
  if (cls) td.className = cls; tr.appendChild(td); return td;
}
function button(label, question, url) {
  const b = document.createElement('button'); b.textContent = label;
  b.title = question;  // also what tells two buttons apart in rows() below
  b.onclick = () => act(url, question, null); return b;
}
function rows(id, items, build) {
  // Only the cells that changed are replaced: a row rebuilt at every snapshot (twice a second
  // under traffic) took its buttons from under the mouse, and a click between the press and the
  // release was lost.
  const body = document.querySelector('#' + id + ' tbody'), old = Array.from(body.children);
  const fresh = items.map((item, i) => {
    const tr = document.createElement('tr'); build(tr, item);
    const was = old[i];
    if (!was || was.cells.length !== tr.cells.length || was.dataset.name !== tr.dataset.name) return tr;
    Array.from(tr.cells).forEach((td, j) => {
      if (was.cells[j].outerHTML !== td.outerHTML) was.replaceChild(td, was.cells[j]);
    });
    return was;
  });
  fresh.forEach((tr, i) => { if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null); });
  while (body.children.length > fresh.length) body.lastChild.remove();
}
function line() {
  // A line of the bar for one click, and what sets its text: the answers to the clicks before
  // go, those still working stay until their own answer comes (before, one text for all: a
  // second click's answer replaced the first's "working", and the first's answer, when it came,
  // the second's, a refusal included).
  const message = $('message');
  Array.from(message.children).forEach(e => { if (e.className !== 'warn') e.remove(); });
  const mine = document.createElement('div'); message.appendChild(mine);
  return (text, cls) => {
    mine.textContent = text; mine.className = cls;
    const all = Array.from(message.children).map(e => e.className);
    message.className = all.includes('bad') ? 'bad' : (all.includes('warn') ? 'warn' : '');
  };
}
async function act(url, question, body) {
  if (!confirm(question)) return;
  // What runs now (a replay may take a while), then its result: sticky at the top of the window,
  // in view however far down the button was (before, at the top of the page, out of view).
  const say = line();
  say('working (sent ' + when(Date.now() / 1000) + ' UTC): ' + question.replace(/\?$/, ''), 'warn');
  let r;
  try {
    r = await fetch(url, {method: 'POST', headers: {'X-CSRF-Token': csrf}, body: body,
                          credentials: 'same-origin'});
  } catch (e) {  // the dashboard or the network is away: nothing was said before
    say('failed: no answer from the dashboard (' + e.message + ')', 'bad'); return;
  }
  let text; try { const j = await r.json(); text = j.result || j.error; } catch (e) { text = r.statusText; }
  // 4xx: the request was refused; 5xx: something it needs could not be reached, or refused it
  say((r.ok ? '' : (r.status >= 500 ? 'failed: ' : 'refused: ')) + text, r.ok ? '' : 'bad');
}
function lbState(s, lb) {
  const b = (lb.servers || []).find(x => x.name === s.name); return b ? b.state : '-';
}
let shownAt = null;  // the time of the snapshot on the page
function render(s) {
  shownAt = s.time;
  $('live').textContent = 'live, updated ' + when(s.time); $('live').className = 'ok';
  const errs = $('errors'); errs.textContent = (s.errors || []).join(' | ');
  errs.style.display = (s.errors || []).length ? 'block' : 'none';
  rows('servers', s.servers || [], (tr, x) => {
    tr.dataset.name = x.name;
    cell(tr, x.name);
    cell(tr, x.live === true ? 'live' : (x.live === false ? 'gone' : 'unknown'),
         x.live === true ? 'ok' : 'bad');
    cell(tr, x.address); cell(tr, x.pid); cell(tr, when(x.since)); cell(tr, x.role || '');
    cell(tr, x.rps);
    // an operator's drain hold, whatever this host's LB shows (none here: "-"; before, nothing
    // on the page said a server was held drained)
    const lbSays = lbState(x, s.lb || {});
    const held = x.drain_held ? (lbSays === '-' ? 'drain' : lbSays) + ' (held)' : lbSays;
    const shownLb = cell(tr, held, x.drain_held ? 'warn' : '');
    if (x.drain_held) {
      shownLb.title = 'drained by an operator: the load balancers send it no new requests until Ready';
    }
    const span = document.createElement('span');
    span.appendChild(button('Drain', 'Drain ' + x.name + ' in the load balancer?',
                            'api/servers/' + encodeURIComponent(x.name) + '/drain'));
    span.appendChild(button('Ready', 'Make ' + x.name + ' ready in the load balancer?',
                            'api/servers/' + encodeURIComponent(x.name) + '/ready'));
    if (x.live === false) {  // gone: taken out for good, the operator may drop it from the list
      span.appendChild(button('Forget', 'Remove ' + x.name + ' from the cluster\'s list for good?',
                              'api/servers/' + encodeURIComponent(x.name) + '/forget'));
    }
    cell(tr, span);
  });
  const lease = s.lease || {};
  // Redis could not be read: who holds the lease, and which connectors run, is not known (before,
  // "holder nobody" and no connectors: as if the cluster had stopped all its connectors)
  const unread = s.redis_ok === false;
  $('lease-holder').textContent = lease.holder || (unread ? 'unknown (Redis could not be read)' : 'nobody');
  $('connectors-note').textContent = unread ? 'not known while Redis cannot be read' : '';
  $('lease-epoch').textContent = lease.epoch == null ? '-' : lease.epoch;
  $('lease-since').textContent = when(lease.since);
  rows('takeovers', s.takeovers || [], (tr, t) => {
    cell(tr, when(t.at)); cell(tr, t.holder); cell(tr, t.epoch);
    cell(tr, t.duration_s == null ? 'first holder' : t.duration_s.toFixed(2) + ' s');
  });
  rows('connectors', s.connectors || [], (tr, c) => {
    cell(tr, c.name); cell(tr, c.kind);
    const busy = c.state === 'RUNNING' &&
      ['reconnecting', 'blocked', 'refused', 'silent'].includes(c.activity);
    const took = c.activity_for ? ' ' + c.activity_for + ' s' : '';  // how long, by its own clock
    cell(tr, busy ? c.state + '/' + c.activity + took : c.state,
         c.state === 'RUNNING' && !busy ? 'ok' : (c.state === 'FATAL' ? 'bad' : 'warn'));
    cell(tr, c.pid); cell(tr, c.restarts); cell(tr, c.messages_in); cell(tr, c.messages_out);
    cell(tr, c.waiting);
    cell(tr, c.parked); cell(tr, c.parked_now, c.parked_now ? 'bad' : '');
    cell(tr, c.last_error || '');
    const span = document.createElement('span');
    if (c.state !== 'NOT_RUNNING' && c.state !== 'INACTIVE') {  // no process to restart
      span.appendChild(button('Restart', 'Restart connector ' + c.name + '?',
                              'api/connectors/' + encodeURIComponent(c.name) + '/restart'));
    }
    const [kind, name] = c.name.split(/:(.*)/s);
    if (kind.endsWith('-outgoing') && c.parked_now > 0) {  // only while some wait parked
      const q = kind.slice(0, -'-outgoing'.length);
      span.appendChild(button('Re-send parked', 'Queue the ' + c.parked_now + ' parked message(s) of ' +
                              name + ' again?',
                              'api/outgoing/' + q + '/' + encodeURIComponent(name) + '/resend'));
    }
    if (kind === 'amqp-channel' && c.parked_now > 0) {
      span.appendChild(button('Replay parked', 'Put the ' + c.parked_now + ' message(s) parked by ' +
                              name + ' back on its queue, for its service to run again?',
                              'api/channels/amqp/' + encodeURIComponent(name) + '/replay'));
    }
    cell(tr, span);
  });
  const calls = s.async || {};
  $('async-queued').textContent = calls.queued == null ? '-' : calls.queued;
  $('async-parked').textContent = calls.parked == null ? '-' : calls.parked;
  $('async-parked').className = calls.parked ? 'bad' : '';
  // Kept while its question stays the same, as a row's buttons are (rows() above): made anew at
  // every snapshot, it was replaced between the press and the release of a click, which was lost.
  const requeue = calls.parked ?
    'Queue the ' + calls.parked + ' parked invoke_async call(s) again? (workers died running them)' : '';
  const shownButton = $('async-actions').firstChild;
  if (!requeue) $('async-actions').replaceChildren();
  else if (!shownButton || shownButton.title !== requeue) {
    $('async-actions').replaceChildren(button('Run parked again', requeue, 'api/async/requeue'));
  }
  const lb = s.lb || {};
  $('lb-note').textContent = !lb.configured ? 'no load balancer on this host ([lb] dir)' :
    (lb.error ? 'HAProxy: ' + lb.error :
     (lb.running ? 'HAProxy running at ' + lb.url : 'HAProxy not running'));
  rows('lb', lb.servers || [], (tr, b) => {
    cell(tr, b.name); cell(tr, b.address);
    cell(tr, b.state, (b.state || '').startsWith('UP') ? 'ok' : (b.state === 'DRAIN' ? 'warn' : 'bad'));
    cell(tr, b.check); cell(tr, b.sessions);
  });
  let shown = '';  // one Undeploy button per module, on its first service's row
  const services = (s.services || []).slice().sort((a, b) => a.module.localeCompare(b.module));
  rows('services', services, (tr, x) => {
    cell(tr, x.name); cell(tr, x.module);
    const span = document.createElement('span');
    if (x.module && x.module !== shown) {
      const question = 'Remove module ' + x.module + ' and its services from every server?';
      span.appendChild(button('Undeploy', question,
                              'api/modules/' + encodeURIComponent(x.module) + '/undeploy'));
    }
    shown = x.module; cell(tr, span);
  });
  $('user-config').textContent = (s.user_config || []).join(', ') || 'none';
  rows('channels', s.channels || [], (tr, c) => {
    cell(tr, c.name); cell(tr, c.url_path); cell(tr, c.method); cell(tr, c.service);
    cell(tr, c.security || 'open'); cell(tr, c.is_active ? 'yes' : 'no');
  });
  drawRates(s.rps_history || {}); drawTakeovers(s.takeovers || []);
}
function svgEl(tag, attrs) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]); return e;
}
function drawRates(history) {
  const svg = $('rps-chart'), w = svg.clientWidth || 400, h = 140; svg.replaceChildren();
  const names = Object.keys(history).sort((a, b) => a.localeCompare(b, undefined, {numeric: true}));
  let max = 1; for (const n of names) for (const v of history[n]) if (v != null && v > max) max = v;
  const legend = $('rps-legend'); legend.replaceChildren();
  names.forEach((n, i) => {
    const pts = history[n], color = COLORS[i % COLORS.length], step = w / 119;
    const coords = pts.map((v, j) => v == null ? null :
      ((w - (pts.length - 1 - j) * step).toFixed(1) + ',' + (h - 4 - (v / max) * (h - 14)).toFixed(1)))
      .filter(x => x);
    if (coords.length) svg.appendChild(svgEl('polyline', {points: coords.join(' '), fill: 'none',
                                                          stroke: color, 'stroke-width': 2}));
    const tag = document.createElement('span'); tag.style.color = color; tag.style.marginRight = '12px';
    const last = pts.length ? pts[pts.length - 1] : null;
    tag.textContent = n + ': ' + (last == null ? '-' : last) + ' req/s'; legend.appendChild(tag);
  });
  const top = svgEl('text', {x: 4, y: 12, 'font-size': 10, fill: '#888'}); top.textContent = max.toFixed(0);
  svg.appendChild(top);
}
function drawTakeovers(list) {
  const svg = $('takeover-chart'), w = svg.clientWidth || 400, h = 60; svg.replaceChildren();
  const items = list.slice(0, 20).reverse();
  let max = 0.5; for (const t of items) if (t.duration_s > max) max = t.duration_s;
  const bw = w / 20;
  items.forEach((t, i) => {
    const v = t.duration_s || 0, bh = Math.max(2, (v / max) * (h - 14));
    const bar = svgEl('rect', {x: i * bw + 2, y: h - bh, width: bw - 4, height: bh,
                               fill: t.duration_s == null ? '#bbb' : '#d62728'});
    const tip = svgEl('title', {}); tip.textContent = t.holder + ' epoch ' + t.epoch +
      (t.duration_s == null ? ' (first holder)' : ': ' + v.toFixed(2) + ' s');
    bar.appendChild(tip); svg.appendChild(bar);
  });
}
$('deploy').onclick = async () => {
  const f = $('deploy-file').files[0];
  if (!f) { line()('choose a .py file first', 'bad'); return; }
  // Read now: a file edited (or removed) since it was chosen cannot be sent, and the browser's
  // upload failed before the request left; the page said "no answer from the dashboard".
  let data;
  try { data = await f.arrayBuffer(); } catch (e) {
    line()('not sent: ' + f.name + ' cannot be read (' + e.name + '): it was changed or removed since it' +
           ' was chosen; choose it again', 'bad');
    return;
  }
  const body = new FormData(); body.append('module', new Blob([data]), f.name);
  act('api/deploy', 'Deploy ' + f.name + ' to every server of the cluster?', body);
};
fetch('api/state', {credentials: 'same-origin'}).then(r => r.json()).then(render);
const events = new EventSource('api/events');
// A dashboard that hangs (stopped, its process blocked) keeps the stream open and sends nothing:
// no error comes, and before, the page read "live" for ever. It sends an "alive" event every
// ALIVE_EVERY s while nothing changes; heard from for none of SILENCE_MS, the page says so.
let heard = Date.now();
events.onmessage = e => { heard = Date.now(); render(JSON.parse(e.data)); };
events.addEventListener('alive', () => {
  heard = Date.now();
  $('live').textContent = 'live, updated ' + when(shownAt); $('live').className = 'ok';
});
setInterval(() => {
  const quiet = Date.now() - heard;
  if (quiet < __SILENCE_MS__ || events.readyState !== EventSource.OPEN) return;  // closed: onerror says
  $('live').textContent = 'no word from the dashboard for ' + Math.round(quiet / 1000) +
    ' s (hung, or the network?): the page shows the cluster as of ' + when(shownAt) + ' UTC';
  $('live').className = 'bad';
}, 1000);
events.onerror = () => {
  // what the page shows stays, and may be old: say as of when (before, "reconnecting..." alone
  // hid the time, and every row still read "live")
  $('live').textContent = 'reconnecting... (the page shows the cluster as of ' + when(shownAt) + ' UTC)';
  $('live').className = 'bad';
  // The session may be gone (the dashboard restarted, the session expired, a logout in another
  // tab): the stream then answers 401 and the browser stops trying; back to the login form.
  fetch('api/state', {credentials: 'same-origin'})
    .then(r => { if (r.status === 401) location.href = 'login'; }).catch(() => {});
};
"""


def overview_page(cluster: str, user: str, csrf: str) -> str:
    return OVERVIEW.format(
        style=STYLE,
        script=SCRIPT.replace("__SILENCE_MS__", str(int(SILENCE * 1000))),
        cluster=html.escape(cluster),
        user=html.escape(user),
        csrf=html.escape(csrf, quote=True),
    )
