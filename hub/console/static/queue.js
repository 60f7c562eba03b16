// The alarm queue: the model (merged from REST and the live stream by version), the table, and
// the alarm sound for unclaimed CRITICAL alarms.
import { fmtTime } from "./dates.js";

export const PRIORITIES = ["CRITICAL", "HIGH", "NORMAL", "LOW"];
export const NEXT_ACTION = { NEW: "claim", CLAIMING: "start", IN_PROGRESS: "ack", ACK: "resolve", RESOLVED: "close" };
export const ACTION_LABEL = { claim: "Claim", start: "Start", ack: "Ack", resolve: "Resolve", close: "Close" };
const NEEDS_CLAIMANT = new Set(["start", "ack", "resolve"]);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = String(v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// Times reach the reader through one helper (dates.js); re-exported for the pages that import it here.
export { fmtTime };

export function age(iso) {
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d`;
}

export function compareAlarms(a, b) {
  const pa = PRIORITIES.indexOf(a.priority), pb = PRIORITIES.indexOf(b.priority);
  if (pa !== pb) return pa - pb;
  const ta = Date.parse(a.first_event_at), tb = Date.parse(b.first_event_at);
  if (ta !== tb) return ta - tb;
  return a.id - b.id;
}

// Which actions this user may take on `a` now (the server decides; this only hides the useless).
export function actionsFor(a, me) {
  if (!me || !me.canWork) return [];
  const next = NEXT_ACTION[a.status];
  if (!next) return [];
  if (NEEDS_CLAIMANT.has(next) && a.claimed_by && a.claimed_by !== me.actor) return [];
  return [next];
}

export class AlarmStore {
  constructor() {
    this.alarms = new Map();
    this.listeners = new Set();
  }
  subscribe(fn) { this.listeners.add(fn); }
  emit(ids) { for (const fn of this.listeners) fn(ids); }

  // Merge one alarm (a REST row or a stream payload); older versions never win.
  upsert(a, { force = false } = {}) {
    const old = this.alarms.get(a.id);
    if (old && !force && old.version > a.version) return false;
    const merged = { ...(old || {}), ...a };
    if (merged.status === "CLOSED") this.alarms.delete(a.id);
    else this.alarms.set(a.id, merged);
    this.emit([a.id]);
    return true;
  }

  replaceAll(items) {
    const next = new Map();
    for (const a of items) {
      const old = this.alarms.get(a.id);
      next.set(a.id, old && old.version > a.version ? old : { ...(old || {}), ...a });
    }
    this.alarms = next;
    this.emit(null);
  }

  get(id) { return this.alarms.get(id); }
  sorted(showResolved) {
    return [...this.alarms.values()].filter((a) => showResolved || a.status !== "RESOLVED").sort(compareAlarms);
  }
  // CRITICAL, unclaimed, not in service mode: these sound.
  sounding() {
    return [...this.alarms.values()].some((a) => a.priority === "CRITICAL" && a.status === "NEW" && !a.service_mode);
  }
}

// A short two-tone beep from WebAudio, repeated while something sounds. Browsers allow audio
// only after a user gesture: the login click counts.
export class Siren {
  constructor() { this.ctx = null; this.timer = null; this.enabled = true; }
  unlock() {
    try {
      const AC = window.AudioContext || window.webkitAudioContext;
      if (AC && !this.ctx) this.ctx = new AC();
      if (this.ctx && this.ctx.state === "suspended") this.ctx.resume();
    } catch { this.ctx = null; }
  }
  beep() {
    if (!this.ctx || !this.enabled) return;
    const t = this.ctx.currentTime;
    for (const [i, f] of [[0, 880], [1, 660]]) {
      const osc = this.ctx.createOscillator();
      const gain = this.ctx.createGain();
      osc.type = "square";
      osc.frequency.value = f;
      gain.gain.setValueAtTime(0.08, t + i * 0.18);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + i * 0.18 + 0.16);
      osc.connect(gain).connect(this.ctx.destination);
      osc.start(t + i * 0.18);
      osc.stop(t + i * 0.18 + 0.17);
    }
  }
  set(on) {
    if (on && !this.timer) { this.beep(); this.timer = setInterval(() => this.beep(), 1500); }
    else if (!on && this.timer) { clearInterval(this.timer); this.timer = null; }
    document.body.classList.toggle("sounding", !!on);
  }
}

// An alarm read back from the panel's event log after an outage: when it happened, when we heard.
export function offlineNote(a) {
  const hm = (iso) => fmtTime(iso, { part: "hm" });
  return `happened ${hm(a.happened_offline_at)}, reported ${hm(a.reported_at)}`;
}

// Render the queue table; `act(alarm, action)` runs a transition, `open(alarm)` the detail.
export function renderQueue(tbody, list, me, { act, open }) {
  const rows = list.map((a) => {
    const classes = ["alarm", `p-${a.priority.toLowerCase()}`, `s-${a.status.toLowerCase()}`];
    if (a.service_mode) classes.push("service");
    else if (a.priority === "CRITICAL" && a.status === "NEW") classes.push("flash");
    const buttons = actionsFor(a, me).map((action) =>
      el("button", { type: "button", class: `act act-${action}`, dataset: { action },
                     onclick: (e) => { e.stopPropagation(); act(a, action); } }, ACTION_LABEL[action]));
    return el("tr", { class: classes.join(" "), dataset: { id: a.id, status: a.status, version: a.version },
                      onclick: () => open(a) },
      el("td", { class: "prio" }, a.service_mode ? "🔧 " : "", a.priority),
      el("td", {}, a.object_name || (a.object_id ? `#${a.object_id}` : a.summary || a.source || "—")),
      el("td", {}, a.alarm_type, a.restored ? " (restored)" : "", a.requires_note ? " ✎" : "",
         a.happened_offline_at ? el("span", { class: "offline" }, ` ${offlineNote(a)}`) : ""),
      el("td", { class: "status" }, a.status),
      el("td", { class: "num" }, a.event_count),
      el("td", { class: "age", dataset: { since: a.first_event_at } }, age(a.first_event_at)),
      el("td", {}, a.claimed_by_email || a.claimed_by || ""),
      el("td", { class: "actions" }, ...buttons));
  });
  tbody.replaceChildren(...rows);
}
