// The edge's local console (docs/architecture.md §7): live state over the agent's SSE stream,
// the alarms journaled on site (with a sound while the hub is away), local acks, panel commands.
// Everything comes from this box: no external resources, no user code kept anywhere.
'use strict';
const $ = id => document.getElementById(id);
const STALE_AFTER_MS = 4000;      // the stream sends every second: a few misses mean it is down
const BACKOFF_MAX_MS = 30000;
let source = null, backoff = 500, lastMessage = null, lastState = null, alarms = [], reachable = null;
let audio = null, beepTimer = null;

function esc(s) { return String(s ?? '').replace(/[&<>"']/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c])); }
function time(iso) { return iso ? new Date(iso).toLocaleString() : ''; }
function age(s) { return s == null ? '' : s < 120 ? Math.round(s) + ' s' : s < 7200 ? Math.round(s / 60) + ' min' : (s / 3600).toFixed(1) + ' h'; }

// --- the stream ----------------------------------------------------------------------------------
function connect() {
  source = new EventSource('/api/v1/console/stream');
  source.addEventListener('state', e => { received(); renderState(JSON.parse(e.data)); });
  source.addEventListener('alarms', e => { received(); alarms = JSON.parse(e.data); renderAlarms(); });
  source.addEventListener('logout', () => location.reload());
  source.onerror = () => {
    source.close();
    markStale();
    // Backing off: an agent restarting is not hammered; a login that ended shows the form.
    setTimeout(async () => {
      try { if ((await fetch('/api/v1/me')).status === 401) { location.reload(); return; } } catch (x) { /* still down */ }
      connect();
    }, backoff);
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
  };
}
function received() { lastMessage = new Date(); backoff = 500; }
function markStale() {
  // Never show old data as current: the whole view dims and says since when it is old.
  if (!document.body.classList.contains('stale')) {
    document.body.classList.add('stale');
    $('stale').hidden = false;
    $('stale').textContent = 'Connection to the agent lost: what you see is stale since ' +
      (lastMessage ? lastMessage.toLocaleTimeString() : 'the page opened') + '. Reconnecting…';
    reachable = null;
    $('wan').className = 'unknown'; $('wan').textContent = 'hub: not known (stale)';
    sound();
  }
}
setInterval(() => { if (!lastMessage || Date.now() - lastMessage > STALE_AFTER_MS) markStale(); }, 1000);

// --- rendering -----------------------------------------------------------------------------------
function renderState(s) {
  document.body.classList.remove('stale');
  $('stale').hidden = true;
  lastState = s;
  const st = s.status || {};
  $('edge').textContent = st.edge_id || '';
  reachable = s.hub_reachable;
  $('wan').className = reachable ? 'ok' : 'bad';
  $('wan').textContent = reachable ? 'hub reachable' : 'HUB UNREACHABLE: alarms are kept here';
  const banner = $('refused'), refusal = st.refusal || {};
  banner.hidden = !refusal.banner; banner.textContent = refusal.banner || '';
  $('backlog').innerHTML = s.backlog ? Object.entries(s.backlog).map(([lane, b]) =>
    `<span class="lane" data-lane="${esc(lane)}">${esc(lane)}: ${b.rows} waiting` +
    (b.oldest_age_s != null ? `, oldest ${age(b.oldest_age_s)}` : '') + '</span>').join(' · ') : '';
  renderPanels(s.panels || []);
  renderLinks(st);
  const named = new Set(['edge_id', 'links', 'robots', 'refusal']);
  $('other').textContent = JSON.stringify(Object.fromEntries(Object.entries(st).filter(([k]) => !named.has(k))), null, 1);
  sound();
}

function flags(o, names) { return names.filter(n => o[n]).map(n => `<span class="bad">${esc(n.replace('_', ' '))}</span>`).join(' '); }
function label(o, what) { return `${what} ${o.number}` + (o.name ? ` <b>${esc(o.name)}</b>` : ''); }

// A partition the edge knows nothing of yet (no name read, never armed) is commanded by number.
const typedPartition = {};
let shownPanels = '';
function renderPanels(panels) {
  const json = JSON.stringify(panels);
  if (json === shownPanels) return;  // unchanged: keep what is being typed
  shownPanels = json;
  $('panels').innerHTML = panels.map(p => `<div class="panel" data-panel="${esc(p.panel)}">
    <h3>Panel ${esc(p.panel)} <span class="${p.state === 'up' ? 'ok' : 'bad'}">${esc(p.state)}</span></h3>
    <table><tr><th>Partition</th><th>State</th><th></th></tr>${p.partitions.map(x => `<tr data-partition="${x.number}">
      <td>${label(x, 'partition')}</td><td class="pstate">${x.armed ? `<span class="warn">armed</span> (mode ${x.mode})` : 'disarmed'}
      ${flags(x, ['alarm', 'fire_alarm', 'entry_time', 'exit_time'])}</td>
      <td><button data-cmd="arm" data-n="${x.number}">Arm</button> <button data-cmd="disarm" data-n="${x.number}">Disarm</button>
      <button data-cmd="clear-alarm" data-n="${x.number}">Clear alarm</button></td></tr>`).join('')}
      <tr class="by-number"><td>partition <input class="pnum" type="number" min="1" max="32" value="${typedPartition[p.panel] || 1}"></td><td></td>
      <td><button data-cmd="arm" data-n="typed">Arm</button> <button data-cmd="disarm" data-n="typed">Disarm</button></td></tr></table>
    <table><tr><th>Zone</th><th>State</th></tr>${p.zones.map(z => `<tr data-zone="${z.number}"><td>${label(z, 'zone')}</td>
      <td>${flags(z, ['alarm', 'tamper', 'tamper_alarm', 'violated', 'bypassed']) || 'normal'}</td></tr>`).join('')}</table>
    <table><tr><th>Output</th><th>State</th><th></th></tr>${p.outputs.map(o => `<tr data-output="${o.number}"><td>${label(o, 'output')}</td>
      <td>${o.on ? 'on' : 'off'}</td><td><button data-cmd="outputs-on" data-n="${o.number}">On</button>
      <button data-cmd="outputs-off" data-n="${o.number}">Off</button></td></tr>`).join('')}</table></div>`).join('') ||
    '<p>No panels on this edge.</p>';
}

function renderLinks(st) {
  const links = st.links || {}, rows = [];
  for (const l of links.satel || []) rows.push(`<tr><td>panel ${esc(l.panel)}</td><td class="${l.state === 'up' ? 'ok' : 'bad'}">${esc(l.state)}</td><td>${esc(l.address)}, ${esc(l.mode)}${l.last_error && l.state !== 'up' ? ' (' + esc(l.last_error) + ')' : ''}</td></tr>`);
  for (const m of links.gsm || []) {
    const sms = m.last_sms ? `last SMS ${time(m.last_sms.at)} from ${esc(m.last_sms.sender)}: “${esc(m.last_sms.text)}” (${esc(m.last_sms.kind)})` : 'no SMS yet';
    rows.push(`<tr><td>GSM modem ${esc(m.modem)}</td><td class="${m.state === 'up' ? 'ok' : 'bad'}">${esc(m.state)}</td><td>signal ${m.rssi ?? '?'}${m.rssi === 99 ? ' (not known)' : ''}, ${m.registered ? 'registered' : 'not registered'}; ${sms}</td></tr>`);
  }
  for (const r of (st.robots && st.robots.robots) || []) rows.push(`<tr><td>robot ${esc(r.id)} ${esc(r.name)}</td><td class="${r.connection === 'ONLINE' ? 'ok' : 'bad'}">${esc(r.connection)}</td><td>${esc(r.state)}, battery ${r.battery_pct ?? '?'} %${r.alarms && r.alarms.length ? ' <span class="bad">' + esc(r.alarms.join(', ')) + '</span>' : ''}</td></tr>`);
  $('links').innerHTML = rows.join('') || '<tr><td>no device links configured</td></tr>';
}

function alarmText(a) {
  const b = a.body || {}, bits = [];
  for (const k of ['partition', 'zone', 'output', 'robot', 'sensor']) if (b[k] != null) bits.push(`${k} ${esc(b[k])}`);
  if (b.name) bits.push(`<b>${esc(b.name)}</b>`);
  if (b.text) bits.push(esc(b.text));
  return `${esc(a.kind)} from ${esc(a.source)} ${bits.join(' ')}`;
}

function renderAlarms() {
  $('no-alarms').hidden = alarms.length > 0;
  $('alarms').innerHTML = alarms.map(a => `<li data-id="${esc(a.id)}" class="${a.acks.length ? 'acked' : ''}">
    <span class="${a.priority === 'CRITICAL' ? 'bad' : 'warn'}">${esc(a.priority)}</span> ${time(a.ts)} ${alarmText(a)}
    <span class="fwd">${a.forwarded ? 'at the hub' : 'not yet at the hub'}</span>
    ${a.acks.map(k => `<span class="ack">acknowledged on site by ${esc(k.who)} at ${time(k.at)}: ${esc(k.note)}</span>`).join('')}
    <form class="ackform"><input name="note" placeholder="note: what you found or did" maxlength="1000" required>
    <button>Acknowledge</button></form></li>`).join('');
  sound();
}

// --- sound ---------------------------------------------------------------------------------------
function sound() {
  const wanted = reachable !== true && alarms.some(a => a.acks.length === 0);
  $('sound').hidden = !wanted;
  if (wanted && !beepTimer) { beep(); beepTimer = setInterval(beep, 2000); }
  if (!wanted && beepTimer) { clearInterval(beepTimer); beepTimer = null; }
}
function beep() {
  try {
    audio = audio || new AudioContext();
    if (audio.state === 'suspended') { audio.resume(); $('enable-sound').hidden = false; }
    else $('enable-sound').hidden = true;
    const osc = audio.createOscillator(), gain = audio.createGain();
    osc.frequency.value = 880; gain.gain.value = 0.3;
    osc.connect(gain); gain.connect(audio.destination);
    osc.start(); osc.stop(audio.currentTime + 0.4);
    document.body.dataset.beeps = String(Number(document.body.dataset.beeps || 0) + 1);
  } catch (x) { $('enable-sound').hidden = false; }
}
$('enable-sound').addEventListener('click', () => { if (audio) audio.resume(); $('enable-sound').hidden = true; });

// --- actions -------------------------------------------------------------------------------------
async function post(path, body) {
  const r = await fetch(path, {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
  if (r.status === 401) { location.reload(); return null; }
  const data = await r.json();
  if (!r.ok) throw new Error(data.error ? data.error.message : r.statusText);
  return data;
}

$('alarms').addEventListener('submit', async e => {
  e.preventDefault();
  const li = e.target.closest('li'), note = e.target.note.value;
  try { await post(`/api/v1/console/alarms/${encodeURIComponent(li.dataset.id)}/ack`, {note}); $('result').textContent = 'Acknowledged.'; }
  catch (x) { $('result').textContent = 'Not acknowledged: ' + x.message; }
});

$('panels').addEventListener('click', async e => {
  const button = e.target.closest('button[data-cmd]');
  if (!button) return;
  const panel = button.closest('.panel').dataset.panel, cmd = button.dataset.cmd;
  const n = Number(button.dataset.n === 'typed' ? button.closest('tr').querySelector('.pnum').value : button.dataset.n);
  const code = $('code').value;
  $('code').value = '';  // typed for this command only
  if (!code) { $('result').textContent = 'Type the user code first.'; return; }
  const base = `/api/v1/links/satel/${encodeURIComponent(panel)}/`;
  const [path, body] = cmd.startsWith('outputs') ? [base + 'outputs', {outputs: [n], on: cmd === 'outputs-on', code}]
    : [base + cmd, {partitions: [n], code}];
  $('result').textContent = 'Sending…';
  try { const r = await post(path, body); if (r) $('result').textContent = `${cmd} ${n}: ${r.result || 'done'}`; }
  catch (x) { $('result').textContent = `${cmd} ${n} refused: ${x.message}`; }
});

$('panels').addEventListener('input', e => {
  if (e.target.classList.contains('pnum')) typedPartition[e.target.closest('.panel').dataset.panel] = e.target.value;
});
$('logout').addEventListener('click', async () => { await post('/api/v1/logout', {}); location.reload(); });
connect();
