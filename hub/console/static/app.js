// The console: login, the live alarm queue, alarm and object details. Every value reaches the
// DOM through textContent (see el() in queue.js), never as HTML markup.
import * as API from "./api.js";
import { LiveStream } from "./stream.js";
import { AlarmStore, Siren, renderQueue, bindQueueKeys, el, age, fields, serviceModeText, setLinkUp, timeEl } from "./queue.js";
import { setTimeZone } from "./dates.js";
import { AlarmDetail } from "./alarm_detail.js";
import { PanelStates } from "./panel_state.js";
import { clearNotices } from "./notices.js";
import { openSettings } from "./settings.js";
import { EdgesPage } from "./edges.js";
import { AdminPages, ADMIN_ROLES } from "./admin.js";
import { HistoryPage } from "./history.js";
import { ReportsPage } from "./reports.js";
import { AuditPage } from "./audit.js";
import { documentTable } from "./documents.js";
import { drawObjectSchedules } from "./panel_schedules.js";
import { RobotsPage } from "./robots.js";
import { RobotDetail } from "./robot_detail.js";
import { SystemMode } from "./system_mode.js";

const $ = (id) => document.getElementById(id);
const WORK_ROLES = new Set(["OPERATOR", "MASTER"]);
const ALARM_VIEW_ROLES = new Set(["OPERATOR", "TECHNICIAN", "ADMIN", "MASTER"]);
const EDGE_ROLES = new Set(["ADMIN", "MASTER"]);
const OPEN_STATUSES = ["NEW", "CLAIMING", "IN_PROGRESS", "ACK", "RESOLVED"];
const CLOSED_SHOWN_MS = 24 * 3600 * 1000;  // "show resolved" also lists alarms closed within this

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
const panels = new PanelStates(state.panelIds, { me: () => state.me, toast });
const detail = new AlarmDetail({ store: state.store, siren: state.siren, me: () => state.me, showView, toast, panels,
                                 state });
const showAlarm = (id, options) => detail.open(id, options);
const act = (alarm, action) => detail.act(alarm, action);

// ---------- small helpers

const edges = new EdgesPage({ toast });
const admin = new AdminPages({ toast, showView });
// The record pages, by route (#/history[/<id>], #/reports, #/audit), each shown to the roles it allows.
const records = { history: new HistoryPage({ toast, showView }), reports: new ReportsPage({ toast, showView }),
                  audit: new AuditPage({ toast, showView }) };
// The robots (#/robots) and one robot (#/robots/<id>).
const robots = new RobotsPage({ toast, showView });
const robot = new RobotDetail({ toast, showView });
const systemMode = new SystemMode({ toast });

let toastTimer = null;
function toast(message, kind = "info") {
  const t = $("toast");
  t.textContent = message;
  t.dataset.kind = kind;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 6000);
}

function showView(name) {
  state.view = name;
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${name}`;
  for (const b of document.querySelectorAll("button.nav")) b.classList.toggle("active", b.dataset.view === name ||
    (name === "alarm" && b.dataset.view === "queue") || (name === "robot" && b.dataset.view === "robots"));
}

// ---------- session

API.onSessionEnd(() => { endSession(); });

function endSession() {
  edges.hide();
  admin.hide();
  for (const page of Object.values(records)) page.leave();
  robots.leave();
  robot.leave();
  systemMode.stop();
  if (state.stream) state.stream.stop();
  state.stream = null;
  state.me = null;
  setLinkUp(false);
  clearNotices();
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
               canManageEdges: EDGE_ROLES.has(me.role), canSupervise: (me.permissions || []).includes("alarms.supervise") };
  setTimeZone(me.time_zone || me.hub_time_zone);
  API.startSession();
  $("whoami").textContent = `${me.display_name || me.email} (${me.role})`;
  $("topbar").hidden = false;
  $("nav-queue").hidden = !state.me.canViewAlarms;
  $("nav-edges").hidden = !state.me.canManageEdges;
  $("nav-robots").hidden = !robots.allowed(me);
  $("nav-admin").hidden = !ADMIN_ROLES.has(me.role);
  for (const [name, page] of Object.entries(records)) $(`nav-${name}`).hidden = !page.allowed(me);
  document.body.classList.toggle("can-work", state.me.canWork);
  systemMode.start(me);
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
// Times follow the new zone at once: the page on screen is drawn again.
$("settings").addEventListener("click", () => openSettings(state.me, (me) => {
  Object.assign(state.me, { time_zone: me.time_zone, hub_time_zone: me.hub_time_zone });
  setTimeZone(me.time_zone || me.hub_time_zone);
  toast(`Times are shown in ${me.time_zone || `the hub's zone (${me.hub_time_zone})`}`);
  route();
}));
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
  // Back after a cut: an open command may have settled meanwhile, robots moved on.
  if (connected && state.everConnected && $("conn").dataset.state !== "up") {
    panels.reloadCommands();
    reloadRobots();
  }
  if (connected) state.everConnected = true;
  const banner = $("banner");
  banner.hidden = connected;
  banner.textContent = state.everConnected ? "Reconnecting…" : "Connecting…";
  $("conn").dataset.state = connected ? "up" : "down";
  $("conn").title = connected ? "Live" : "Disconnected";
  setLinkUp(connected);
  const s = $("stale");
  s.hidden = !stale;
  if (stale) s.replaceChildren("⚠ data from ", timeEl(lastMessageAt, { part: "time" }));
  document.body.classList.toggle("is-stale", stale || !connected);
}

async function onReload() {
  const jobs = [];
  if (state.me && state.me.canViewAlarms) jobs.push(loadAlarms());
  if (state.view === "alarm" && state.alarmId) jobs.push(showAlarm(state.alarmId, { quiet: true }));
  if (state.view === "objects" && state.objectId) jobs.push(showObject(state.objectId));
  jobs.push(reloadRobots());
  await Promise.all(jobs);
}

// The robots on screen, read again: what the stream said while it was cut is not replayed in full
// (telemetry never is).
function reloadRobots() {
  return Promise.all([robots.shown ? robots.load() : null, robot.shown ? robot.load() : null]);
}

function onChange(msg) {
  const p = msg.payload || {};
  if ((msg.topic === "alarm.new" || msg.topic === "alarm.updated" || msg.topic === "alarm.escalated") && p.bundle) {
    const b = p.bundle;
    if (!b.object_name && b.object_id && state.objectNames.has(b.object_id)) b.object_name = state.objectNames.get(b.object_id);
    const known = state.store.get(b.id);
    if (!b.object_name && known && known.object_name) b.object_name = known.object_name;
    state.store.upsert(b);
    if (!b.object_name && b.object_id) fillName(b.id);
    detail.changed(msg);
  } else if (msg.topic === "panel.state" || msg.topic === "panel.link") {
    if (state.panelIds.has(p.panel_id)) panels.refresh(p.panel_id);
  } else if (msg.topic === "command.updated" && p.command) {
    panels.commandUpdated(p.command);
  } else if (msg.topic === "object.updated") {
    if (state.view === "objects" && state.objectId === msg.object_id) showObject(msg.object_id);
  } else if (msg.topic.startsWith("robot.")) {
    robots.changed(msg);
    robot.changed(msg);
  }
}

async function fillName(id) {
  try {
    const full = await API.get(`/api/v1/alarms/${id}`);
    if (full.object_name) state.objectNames.set(full.object_id, full.object_name);
    const { events, dispatch_log, checklist, contacts, ...row } = full;
    state.store.upsert(row);
  } catch { /* the row shows the object id meanwhile */ }
}

// ---------- alarm queue

// The open alarms; with "show resolved" also those closed in the last CLOSED_SHOWN_MS.
async function loadAlarms() {
  const qs = OPEN_STATUSES.map((s) => `status=${s}`).join("&");
  const showClosed = $("show-resolved").checked;
  const since = new Date(Date.now() - CLOSED_SHOWN_MS).toISOString();
  const [page, closed] = await Promise.all([API.get(`/api/v1/alarms?${qs}&limit=500`), showClosed
    ? API.get(`/api/v1/alarms?status=CLOSED&order=newest&since=${encodeURIComponent(since)}&limit=200`) : { items: [] }]);
  const items = [...page.items, ...closed.items];
  for (const a of items) if (a.object_name) state.objectNames.set(a.object_id, a.object_name);
  state.store.replaceAll(items);
}

function drawQueue() {
  const showResolved = $("show-resolved").checked;
  const list = state.store.sorted(showResolved);
  renderQueue($("queue-body"), list, state.me, { act, open: (a) => { location.hash = `#/alarm/${a.id}`; } });
  $("queue-count").textContent = `(${list.length})`;
  $("queue-empty").hidden = list.length > 0;
  $("queue-empty").textContent = showResolved ? "No alarms, open or recently closed." : "No open alarms.";
  state.siren.set(state.store.sounding());
}

state.store.subscribe(() => { if (state.me) drawQueue(); });
$("show-resolved").addEventListener("change", () => {
  drawQueue();
  if ($("show-resolved").checked) loadAlarms().catch((e) => toast(e.message, "error"));
});
bindQueueKeys($("queue-body"), {
  active: () => !!state.me && state.view === "queue",
  claim: () => {
    const top = state.store.topClaimable(state.me);
    if (top) act(top, "claim");
    else toast("No alarm to claim", "info");
  },
});
setInterval(() => {
  for (const td of document.querySelectorAll("td.age")) td.textContent = age(td.dataset.since);
}, 1000);

// ---------- contacts (the object detail's; the alarm detail has its own with call logging)

function renderContacts(tbody, contacts) {
  const rows = (contacts || []).map((c) => el("tr", {},
    el("td", {}, c.call_order), el("td", {}, c.name), el("td", {}, c.role),
    el("td", {}, c.phone ? el("a", { href: `tel:${c.phone}` }, c.phone) : ""), el("td", {}, c.email)));
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "muted" }, "No contacts"))]));
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
  const empty = el("tr", {}, el("td", { class: "muted empty", colspan: 3 }, q ? `No objects match “${q}”.` : "No objects yet."));
  $("object-list").replaceChildren(...(page.items.length ? [] : [empty]), ...page.items.map((o) => el("tr", {
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
    ["Service mode", serviceModeText(o)]]);
  renderContacts($("object-contacts"), o.contacts);
  panels.render($("object-panels"), o.panels, o.name);
  drawObjectSchedules($("object-schedules"), o.panels, { me: state.me, toast });
  let secrets = [];
  try { secrets = await API.get(`/api/v1/objects/${id}/secrets`); } catch { secrets = []; }
  $("object-secrets").replaceChildren(...(secrets.length ? secrets.map(secretRow) : [el("p", { class: "muted" }, "No secrets")]));
  let docs = [];
  try { docs = await API.get(`/api/v1/objects/${id}/documents`); } catch (e) { toast(e.message, "error"); }
  $("object-documents").replaceChildren(documentTable(docs, { id: "object-document-list", toast }));
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
  if (parts[0] !== "robots") { robots.leave(); robot.leave(); }
  if (admin.route(parts, state.me)) { edges.hide(); state.alarmId = null; state.panelIds.clear(); return; }
  if (parts[0] === "edges" && state.me.canManageEdges) {
    state.alarmId = null;
    state.panelIds.clear();
    showView("edges");
    edges.show();
    return;
  }
  edges.hide();
  if (parts[0] === "robots" && robots.allowed(state.me)) {
    state.alarmId = null;
    state.panelIds.clear();
    if (parts[1]) { robots.leave(); robot.open(decodeURIComponent(parts[1]), state.me); }
    else { robot.leave(); robots.show(state.me); }
    return;
  }
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
