// The console: login, the live alarm queue, alarm and object details. Every value reaches the
// DOM through textContent (see el() in queue.js), never as HTML markup.
import * as API from "./api.js";
import { LiveStream } from "./stream.js";
import { AlarmStore, Siren, renderQueue, actionsFor, el, age, fmtTime, offlineNote, ACTION_LABEL, NEXT_ACTION } from "./queue.js";
import { EdgesPage } from "./edges.js";
import { AdminPages, ADMIN_ROLES } from "./admin.js";
import { HistoryPage } from "./history.js";
import { ReportsPage } from "./reports.js";
import { AuditPage } from "./audit.js";

const $ = (id) => document.getElementById(id);
const WORK_ROLES = new Set(["OPERATOR", "MASTER"]);
const ALARM_VIEW_ROLES = new Set(["OPERATOR", "TECHNICIAN", "ADMIN", "MASTER"]);
const EDGE_ROLES = new Set(["ADMIN", "MASTER"]);
const OPEN_STATUSES = ["NEW", "CLAIMING", "IN_PROGRESS", "ACK", "RESOLVED"];
const STALE_MSG = "Data changed — refreshed";

const state = {
  me: null,
  store: new AlarmStore(),
  siren: new Siren(),
  stream: null,
  everConnected: false,
  view: null,
  alarmId: null,          // the alarm detail on screen
  objectId: null,         // the object detail on screen
  panelIds: new Set(),    // panels whose live state is on screen
  objectNames: new Map(),
};

// ---------- small helpers

const edges = new EdgesPage({ toast });
const admin = new AdminPages({ toast, showView });
// The record pages, by route (#/history[/<id>], #/reports, #/audit), each shown to the roles it allows.
const records = { history: new HistoryPage({ toast, showView }), reports: new ReportsPage({ toast, showView }),
                  audit: new AuditPage({ toast, showView }) };

let toastTimer = null;
function toast(message, kind = "info") {
  const t = $("toast");
  t.textContent = message;
  t.dataset.kind = kind;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 6000);
}

const hhmmss = (ms) => fmtTime(ms, { part: "time" });

function fields(dl, pairs) {
  dl.replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "")]));
}

function showView(name) {
  state.view = name;
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${name}`;
  for (const b of document.querySelectorAll("button.nav")) b.classList.toggle("active", b.dataset.view === name ||
    (name === "alarm" && b.dataset.view === "queue"));
}

// ---------- session

API.onSessionEnd(() => { endSession(); });

function endSession() {
  edges.hide();
  admin.hide();
  for (const page of Object.values(records)) page.leave();
  if (state.stream) state.stream.stop();
  state.stream = null;
  state.me = null;
  state.everConnected = false;
  state.siren.set(false);
  state.store.replaceAll([]);
  $("topbar").hidden = true;
  $("banner").hidden = true;
  $("stale").hidden = true;
  $("login-password").value = "";
  showView("login");
}

async function afterLogin() {
  const t = API.tokens();
  if (!t) return endSession();
  if (t.mustChange) { $("topbar").hidden = true; showView("password"); return; }
  let me;
  try { me = await API.get("/api/v1/auth/me"); } catch (e) {
    if (e.status === 401) return endSession();
    if (e.status === 403) { showView("password"); return; }
    toast(e.message, "error");
    return;
  }
  if (me.must_change_password) { showView("password"); return; }
  state.me = { ...me, actor: `user:${me.id}`, canWork: WORK_ROLES.has(me.role), canViewAlarms: ALARM_VIEW_ROLES.has(me.role),
               canManageEdges: EDGE_ROLES.has(me.role) };
  API.startSession();
  $("whoami").textContent = `${me.display_name || me.email} (${me.role})`;
  $("topbar").hidden = false;
  $("nav-queue").hidden = !state.me.canViewAlarms;
  $("nav-edges").hidden = !state.me.canManageEdges;
  $("nav-admin").hidden = !ADMIN_ROLES.has(me.role);
  for (const [name, page] of Object.entries(records)) $(`nav-${name}`).hidden = !page.allowed(me);
  document.body.classList.toggle("can-work", state.me.canWork);
  startStream();
  route();
  if (state.me.canViewAlarms) loadAlarms().catch((e) => toast(e.message, "error"));
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  state.siren.unlock();
  $("login-error").textContent = "";
  $("login-submit").disabled = true;
  try {
    await API.login($("login-email").value.trim(), $("login-password").value);
    $("login-password").value = "";
    await afterLogin();
  } catch (err) {
    $("login-error").textContent = err.message || "Sign-in failed";
  } finally {
    $("login-submit").disabled = false;
  }
});

$("password-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("password-error").textContent = "";
  if ($("pw-new").value !== $("pw-repeat").value) { $("password-error").textContent = "The new passwords differ"; return; }
  try {
    await API.changePassword($("pw-current").value, $("pw-new").value);
    for (const id of ["pw-current", "pw-new", "pw-repeat"]) $(id).value = "";
    await afterLogin();
  } catch (err) {
    $("password-error").textContent = err.message;
  }
});

$("logout").addEventListener("click", () => API.logout());
$("sound-toggle").addEventListener("click", () => {
  state.siren.unlock();
  state.siren.enabled = !state.siren.enabled;
  $("sound-toggle").textContent = state.siren.enabled ? "Sound on" : "Sound off";
});
document.addEventListener("click", () => state.siren.unlock(), { once: true });

// ---------- live stream and connection state

function startStream() {
  if (state.stream) state.stream.stop();
  state.stream = new LiveStream({ onChange, onReload, onState });
  state.stream.start(null);
}

function onState({ connected, lastMessageAt, stale }) {
  if (connected) state.everConnected = true;
  const banner = $("banner");
  banner.hidden = connected;
  banner.textContent = state.everConnected ? "Reconnecting…" : "Connecting…";
  $("conn").dataset.state = connected ? "up" : "down";
  $("conn").title = connected ? "Live" : "Disconnected";
  const s = $("stale");
  s.hidden = !stale;
  if (stale) s.textContent = `⚠ data from ${hhmmss(lastMessageAt)}`;
  document.body.classList.toggle("is-stale", stale || !connected);
}

async function onReload() {
  const jobs = [];
  if (state.me && state.me.canViewAlarms) jobs.push(loadAlarms());
  if (state.view === "alarm" && state.alarmId) jobs.push(showAlarm(state.alarmId, { quiet: true }));
  if (state.view === "objects" && state.objectId) jobs.push(showObject(state.objectId));
  await Promise.all(jobs);
}

function onChange(msg) {
  const p = msg.payload || {};
  if ((msg.topic === "alarm.new" || msg.topic === "alarm.updated") && p.bundle) {
    const b = p.bundle;
    if (!b.object_name && b.object_id && state.objectNames.has(b.object_id)) b.object_name = state.objectNames.get(b.object_id);
    const known = state.store.get(b.id);
    if (!b.object_name && known && known.object_name) b.object_name = known.object_name;
    state.store.upsert(b);
    if (!b.object_name && b.object_id) fillName(b.id);
    if (state.view === "alarm" && state.alarmId === b.id) showAlarm(b.id, { quiet: true });
  } else if (msg.topic === "panel.state" || msg.topic === "panel.link") {
    if (state.panelIds.has(p.panel_id)) refreshPanel(p.panel_id);
  } else if (msg.topic === "object.updated") {
    if (state.view === "objects" && state.objectId === msg.object_id) showObject(msg.object_id);
  }
}

async function fillName(id) {
  try {
    const full = await API.get(`/api/v1/alarms/${id}`);
    if (full.object_name) state.objectNames.set(full.object_id, full.object_name);
    const { events, dispatch_log, ...row } = full;
    state.store.upsert(row);
  } catch { /* the row shows the object id meanwhile */ }
}

// ---------- alarm queue

async function loadAlarms() {
  const qs = OPEN_STATUSES.map((s) => `status=${s}`).join("&");
  const page = await API.get(`/api/v1/alarms?${qs}&limit=500`);
  for (const a of page.items) if (a.object_name) state.objectNames.set(a.object_id, a.object_name);
  state.store.replaceAll(page.items);
}

function drawQueue() {
  const list = state.store.sorted($("show-resolved").checked);
  renderQueue($("queue-body"), list, state.me, { act, open: (a) => { location.hash = `#/alarm/${a.id}`; } });
  $("queue-count").textContent = `(${list.length})`;
  $("queue-empty").hidden = list.length > 0;
  state.siren.set(state.store.sounding());
}

state.store.subscribe(() => { if (state.me) drawQueue(); });
$("show-resolved").addEventListener("change", drawQueue);
setInterval(() => {
  for (const td of document.querySelectorAll("td.age")) td.textContent = age(td.dataset.since);
}, 1000);

function askNote(alarm) {
  return new Promise((resolve) => {
    const dlg = $("note-dialog");
    $("note-title").textContent = `Acknowledge ${alarm.alarm_type} — ${alarm.object_name || ""}`;
    $("note-hint").textContent = alarm.requires_note ? "A note is required for this alarm." : "Note (optional).";
    $("note-text").value = "";
    $("note-text").required = !!alarm.requires_note;
    const done = (value) => { dlg.close(); resolve(value); };
    $("note-cancel").onclick = () => done(null);
    $("note-form").onsubmit = (e) => {
      e.preventDefault();
      const note = $("note-text").value.trim();
      if (alarm.requires_note && !note) { $("note-hint").textContent = "A note is required for this alarm."; return; }
      done(note);
    };
    dlg.showModal();
    $("note-text").focus();
  });
}

async function reloadAlarm(id) {
  try {
    const full = await API.get(`/api/v1/alarms/${id}`);
    const { events, dispatch_log, ...row } = full;
    state.store.upsert(row, { force: true });
    if (state.view === "alarm" && state.alarmId === id) renderAlarm(full);
  } catch (e) {
    if (e.status === 404) state.store.upsert({ ...state.store.get(id), status: "CLOSED" }, { force: true });
  }
}

async function act(alarm, action) {
  state.siren.unlock();
  const current = state.store.get(alarm.id) || alarm;
  let note;
  if (action === "ack") {
    note = await askNote(current);
    if (note === null) return;
  }
  const body = { version: current.version };
  if (note) body.note = note;
  try {
    if (action === "resolve") {
      // Interim picker until the console's resolution dialog (issue 12): the API requires a code.
      const codes = (await API.get("/api/v1/meta/resolutions")).map((r) => r.code);
      const code = window.prompt(`How did it end? One of: ${codes.join(", ")}`, "");
      if (!code) return;
      body.resolution = code.trim().toUpperCase();
    }
    const row = await API.post(`/api/v1/alarms/${alarm.id}/${action}`, body);
    state.store.upsert(row);
    if (state.view === "alarm" && state.alarmId === alarm.id) showAlarm(alarm.id, { quiet: true });
  } catch (e) {
    if (e.status === 409) {
      toast(e.message === STALE_MSG ? STALE_MSG : `${e.message} — refreshed`, "warn");
      await reloadAlarm(alarm.id);
    } else {
      toast(e.message, "error");
    }
  }
}

// ---------- alarm detail

let alarmLoad = 0;
async function showAlarm(id, { quiet = false } = {}) {
  const n = ++alarmLoad;
  state.alarmId = id;
  if (!quiet) {
    showView("alarm");
    $("alarm-title").textContent = `Alarm #${id}`;
  }
  let full;
  try { full = await API.get(`/api/v1/alarms/${id}`); } catch (e) { toast(e.message, "error"); return; }
  if (n !== alarmLoad) return;
  const { events, dispatch_log, ...row } = full;
  state.store.upsert(row);
  renderAlarm(full);
  if (!quiet || state.alarmObject !== full.object_id) loadAlarmObject(full);
}

function renderAlarm(a) {
  $("alarm-title").textContent = `${a.service_mode ? "🔧 " : ""}${a.priority} ${a.alarm_type} — ${a.object_name || a.source}`;
  fields($("alarm-fields"), [
    ["Status", a.status], ["Priority", a.priority], ["Type", a.alarm_type], ["Events", a.event_count],
    ["First", fmtTime(a.first_event_at)], ["Last", fmtTime(a.last_event_at)], ["Restored", a.restored ? "yes" : "no"],
    ["Claimed by", a.claimed_by_email || a.claimed_by || "—"], ["Ack note", a.ack_note || "—"], ["Source", `${a.edge_id} / ${a.source}`],
    ["Version", a.version],
    ...(a.summary ? [["About", a.summary]] : []),
    ...(a.happened_offline_at ? [["While offline", offlineNote(a)]] : []),
  ]);
  const acts = actionsFor(a, state.me).map((action) =>
    el("button", { type: "button", class: `act act-${action}`, dataset: { action },
                   onclick: () => act(state.store.get(a.id) || a, action) }, ACTION_LABEL[action]));
  $("alarm-actions").replaceChildren(...acts);
  $("alarm-events").replaceChildren(...(a.events || []).map((e) => el("tr", {},
    el("td", {}, fmtTime(e.ts)), el("td", {}, e.kind, e.restore ? " (restore)" : ""), el("td", {}, e.source),
    el("td", {}, e.priority), el("td", { class: "mono" }, JSON.stringify(e.body)))));
  $("alarm-log").replaceChildren(...(a.dispatch_log || []).map((d) =>
    el("li", {}, el("span", { class: "muted" }, `${fmtTime(d.at)} ${d.author}: `), d.entry)));
  $("log-form").hidden = !(state.me && state.me.canWork);
  state.currentAlarm = a;
}

async function loadAlarmObject(a) {
  state.alarmObject = a.object_id;
  state.panelIds.clear();
  if (!a.object_id) {
    fields($("alarm-object"), [["Object", "— (no object for this source)"]]);
    $("alarm-procedure").textContent = "";
    $("alarm-contacts").replaceChildren();
    $("alarm-panels").replaceChildren();
    return;
  }
  let o;
  try { o = await API.get(`/api/v1/objects/${a.object_id}`); } catch (e) { toast(e.message, "error"); return; }
  fields($("alarm-object"), [["Name", o.name], ["Address", o.address], ["Type", o.type], ["Status", o.status],
    ["Service mode", o.service_mode_until ? `until ${fmtTime(o.service_mode_until)} ${o.service_mode_reason || ""}` : "off"]]);
  const proc = (o.procedures || []).find((p) => p.alarm_type === a.alarm_type);
  $("alarm-procedure").textContent = proc ? proc.steps : `No procedure for ${a.alarm_type}.`;
  renderContacts($("alarm-contacts"), o.contacts);
  renderPanels($("alarm-panels"), o.panels);
}

$("log-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const entry = $("log-entry").value.trim();
  if (!entry || !state.alarmId) return;
  try {
    await API.post(`/api/v1/alarms/${state.alarmId}/dispatch-log`, { entry });
    $("log-entry").value = "";
    showAlarm(state.alarmId, { quiet: true });
  } catch (err) { toast(err.message, "error"); }
});
$("alarm-back").addEventListener("click", () => { location.hash = "#/queue"; });

// ---------- contacts, panels (shared by both details)

function renderContacts(tbody, contacts) {
  const rows = (contacts || []).map((c) => el("tr", {},
    el("td", {}, c.call_order), el("td", {}, c.name), el("td", {}, c.role),
    el("td", {}, c.phone ? el("a", { href: `tel:${c.phone}` }, c.phone) : ""), el("td", {}, c.email)));
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "muted" }, "No contacts"))]));
}

function renderPanels(box, panels) {
  state.panelIds.clear();
  box.replaceChildren(...(panels || []).map((p) => {
    state.panelIds.add(p.id);
    return el("div", { class: "panel", id: `panel-${p.id}` },
      el("div", {}, el("strong", {}, `Panel #${p.id} `), `${p.model || ""} ${p.edge_id}/${p.source} `,
         el("span", { class: "link", dataset: { link: p.link_status } }, p.link_status)),
      el("div", { class: "elements" }, "loading…"));
  }));
  if (!panels || !panels.length) box.append(el("p", { class: "muted" }, "No panels"));
  for (const p of panels || []) refreshPanel(p.id);
}

// What is active on an element ("violated, bypassed", "armed, mode 1"); "normal" when nothing is.
function stateText(s) {
  if (s === null || s === undefined) return "";
  if (typeof s !== "object") return String(s);
  const active = Object.entries(s).filter(([, v]) => v !== false && v !== null && v !== undefined)
    .map(([k, v]) => (v === true ? k.replace(/_/g, " ") : `${k.replace(/_/g, " ")} ${typeof v === "object" ? JSON.stringify(v) : v}`));
  return active.length ? active.join(", ") : "normal";
}

async function refreshPanel(id) {
  const box = document.getElementById(`panel-${id}`);
  if (!box) return;
  let st;
  try { st = await API.get(`/api/v1/panels/${id}/state`); } catch (e) { return; }
  const unknown = st.stale || st.link_status === "DISCONNECTED" || st.link_status === "UNKNOWN" || st.link_status !== "CONNECTED";
  const link = box.querySelector(".link");
  link.textContent = st.link_status;
  link.dataset.link = st.link_status;
  const rows = (st.elements || []).map((e) => el("tr", { class: unknown ? "unknown" : "" },
    el("td", {}, e.element), el("td", { class: "num" }, e.number),
    el("td", {}, unknown ? "UNKNOWN" : stateText(e.state)), el("td", { class: "muted" }, unknown ? "" : fmtTime(e.updated_at))));
  box.querySelector(".elements").replaceChildren(
    unknown ? el("p", { class: "warn" }, `Link ${st.link_status}: states UNKNOWN`) : "",
    rows.length ? el("table", { class: "grid small" }, el("tbody", {}, ...rows)) : el("span", { class: "muted" }, "No state yet"));
}

// ---------- objects

let searchTimer = null;
$("object-search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(loadObjects, 200);
});

async function loadObjects() {
  const q = $("object-search").value.trim();
  let page;
  try { page = await API.get(`/api/v1/objects?q=${encodeURIComponent(q)}&limit=200`); } catch (e) { toast(e.message, "error"); return; }
  $("object-list").replaceChildren(...page.items.map((o) => el("tr", {
    class: o.id === state.objectId ? "selected" : "", dataset: { id: o.id },
    onclick: () => { location.hash = `#/objects/${o.id}`; } },
  el("td", {}, o.name), el("td", {}, o.address), el("td", {}, o.status))));
}

async function showObject(id) {
  state.objectId = id;
  let o;
  try { o = await API.get(`/api/v1/objects/${id}`); } catch (e) { toast(e.message, "error"); return; }
  $("object-detail").hidden = false;
  $("object-title").textContent = o.name;
  fields($("object-fields"), [["Address", o.address], ["Type", o.type], ["Status", o.status],
    ["Service mode", o.service_mode_until ? `until ${fmtTime(o.service_mode_until)} ${o.service_mode_reason || ""}` : "off"]]);
  renderContacts($("object-contacts"), o.contacts);
  renderPanels($("object-panels"), o.panels);
  let secrets = [];
  try { secrets = await API.get(`/api/v1/objects/${id}/secrets`); } catch { secrets = []; }
  $("object-secrets").replaceChildren(...(secrets.length ? secrets.map(secretRow) : [el("p", { class: "muted" }, "No secrets")]));
  for (const tr of document.querySelectorAll("#object-list tr")) tr.classList.toggle("selected", Number(tr.dataset.id) === id);
}

function secretRow(s) {
  const reason = el("input", { type: "text", maxlength: 500, placeholder: "Reason (logged)", class: "reason" });
  const out = el("span", { class: "secret mono" });
  const btn = el("button", { type: "button", class: "reveal" }, "Reveal");
  let timer = null;
  btn.addEventListener("click", async () => {
    if (!reason.value.trim()) { toast("Give a reason for the reveal", "warn"); reason.focus(); return; }
    btn.disabled = true;
    try {
      const r = await API.post(`/api/v1/secrets/${s.id}/reveal`, { reason: reason.value.trim() });
      // A deadline, not a tick count: a throttled background tab still hides it on time.
      const until = Date.now() + (r.expires_in || 60) * 1000;
      const draw = () => {
        const left = Math.ceil((until - Date.now()) / 1000);
        if (left <= 0 || !out.isConnected) {
          clearInterval(timer); out.replaceChildren(); btn.disabled = false; reason.value = "";
          return;
        }
        out.replaceChildren(el("code", {}, r.secret), el("span", { class: "countdown" }, ` hides in ${left}s`));
      };
      clearInterval(timer);
      draw();
      timer = setInterval(draw, 1000);
    } catch (e) { toast(e.message, "error"); btn.disabled = false; }
  });
  return el("div", { class: "secret-row" }, el("strong", {}, s.label), " ", s.username ? `(${s.username}) ` : "", reason, btn, out);
}

// ---------- routing

function route() {
  if (!state.me) return;
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  if (admin.route(parts, state.me)) { edges.hide(); state.alarmId = null; state.panelIds.clear(); return; }
  if (parts[0] === "edges" && state.me.canManageEdges) {
    state.alarmId = null;
    state.panelIds.clear();
    showView("edges");
    edges.show();
    return;
  }
  edges.hide();
  const record = Object.hasOwn(records, parts[0]) ? records[parts[0]] : null;
  if (record && record.allowed(state.me)) {
    state.alarmId = null;
    state.panelIds.clear();
    record.show(parts.slice(1), state.me).catch((e) => toast(e.message, "error"));
    return;
  }
  if (parts[0] === "alarm" && parts[1] && state.me.canViewAlarms) { showAlarm(Number(parts[1])); return; }
  state.alarmId = null;
  if (parts[0] === "objects" || !state.me.canViewAlarms) {
    showView("objects");
    loadObjects();
    if (parts[1]) showObject(Number(parts[1]));
    else { state.objectId = null; $("object-detail").hidden = true; state.panelIds.clear(); }
    return;
  }
  state.panelIds.clear();
  showView("queue");
  drawQueue();
}
window.addEventListener("hashchange", route);
for (const b of document.querySelectorAll("button.nav")) {
  b.addEventListener("click", () => { location.hash = `#/${b.dataset.view}`; });
}

// ---------- boot

if (API.tokens()) afterLogin(); else showView("login");
