// The alarm queue: the model (merged from REST and the live stream by version), the table, its
// keys, and the alarm sound for unclaimed CRITICAL alarms (louder for escalated ones).
import { fmtTime, timeEl } from "./dates.js";

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
export { fmtTime, timeEl };

// A definition list of [term, value] pairs; a value may be an element.
export function fields(dl, pairs) {
  dl.replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "")]));
}

// An object's service mode in words, with its end as a time.
export const serviceModeText = (o) => (o.service_mode_until
  ? el("span", {}, "until ", timeEl(o.service_mode_until), ` ${o.service_mode_reason || ""}`) : "off");

// A person from the API (`{id, email, name}`) as people know them: the name, else the email.
export function personName(who) {
  if (!who) return "";
  return who.name || who.email || (who.id ? `user ${who.id}` : "");
}

// A person as an element: the name, with the email on hover when the name is shown instead.
export function personEl(who) {
  return el("span", { class: "person", title: who && who.name && who.email ? who.email : null }, personName(who) || "—");
}

// Whoever holds an alarm, as people know them (stream payloads of new alarms carry no person).
export const holderName = (a) => personName(a.claimed_by_user) || a.claimed_by_email || a.claimed_by || "";

// Action buttons act on what the console shows, which may be stale while the live stream is down:
// they are disabled then, and enabled again once it is back (setLinkUp, from the stream's state).
let linkUp = false;

export function actionButton(attrs, ...children) {
  return el("button", { type: "button", ...attrs, "data-live": "", disabled: !linkUp }, ...children);
}

export function setLinkUp(up) {
  if (up === linkUp) return;
  linkUp = up;
  for (const b of document.querySelectorAll("[data-live]")) b.disabled = !up;
}

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

  // Merge one alarm (a REST row or a stream payload); older versions never win. A CLOSED alarm
  // stays, for "show resolved": the queue leaves it out otherwise.
  upsert(a, { force = false } = {}) {
    const old = this.alarms.get(a.id);
    if (old && !force && old.version > a.version) return false;
    this.alarms.set(a.id, { ...(old || {}), ...a });
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
  // The queue's rows; `showResolved`: RESOLVED and CLOSED ones too.
  sorted(showResolved) {
    return [...this.alarms.values()].filter((a) => showResolved || !ENDED.has(a.status)).sort(compareAlarms);
  }
  // What sounds: "escalated" while an escalated alarm is still unclaimed, else "normal" for an
  // unclaimed CRITICAL one, else null. Service mode never sounds.
  sounding() {
    const waiting = [...this.alarms.values()].filter((a) => a.status === "NEW" && !a.service_mode);
    if (waiting.some(isEscalated)) return "escalated";
    return waiting.some((a) => a.priority === "CRITICAL") ? "normal" : null;
  }
  // The most urgent alarm `me` can claim now (the queue's top one), or undefined.
  topClaimable(me) {
    return this.sorted(false).find((a) => actionsFor(a, me).includes("claim"));
  }
}

const ENDED = new Set(["RESOLVED", "CLOSED"]);
export const isEscalated = (a) => !!a.escalated_at && a.status === "NEW";

// The siren's patterns: a short two-tone beep for an unclaimed CRITICAL alarm; for an escalated
// one, higher, louder, longer and more often.
const PATTERNS = {
  normal: { tones: [880, 660], gain: 0.08, every: 1500 },
  escalated: { tones: [1320, 880, 1320, 880], gain: 0.3, every: 800 },
};

// Beeps from WebAudio, repeated while something sounds. Browsers allow audio only after a user
// gesture: the login click counts.
export class Siren {
  constructor() { this.ctx = null; this.timer = null; this.enabled = true; this.level = null; }
  unlock() {
    try {
      const AC = window.AudioContext || window.webkitAudioContext;
      if (AC && !this.ctx) this.ctx = new AC();
      if (this.ctx && this.ctx.state === "suspended") this.ctx.resume();
    } catch { this.ctx = null; }
  }
  beep() {
    const pattern = PATTERNS[this.level];
    if (!this.ctx || !this.enabled || !pattern) return;
    const t = this.ctx.currentTime;
    pattern.tones.forEach((f, i) => {
      const osc = this.ctx.createOscillator();
      const gain = this.ctx.createGain();
      osc.type = "square";
      osc.frequency.value = f;
      gain.gain.setValueAtTime(pattern.gain, t + i * 0.18);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + i * 0.18 + 0.16);
      osc.connect(gain).connect(this.ctx.destination);
      osc.start(t + i * 0.18);
      osc.stop(t + i * 0.18 + 0.17);
    });
  }
  // `level`: null (silent), "normal" or "escalated" (AlarmStore.sounding()).
  set(level) {
    const next = PATTERNS[level] ? level : null;
    if (next !== this.level) {
      clearInterval(this.timer);
      this.timer = null;
      this.level = next;
      if (next) { this.beep(); this.timer = setInterval(() => this.beep(), PATTERNS[next].every); }
    }
    document.body.classList.toggle("sounding", !!next);
    if (next) document.body.dataset.siren = next;
    else delete document.body.dataset.siren;
  }
}

// An alarm read back from the panel's event log after an outage: when it happened, when we heard.
export function offlineNote(a) {
  const hm = (iso) => fmtTime(iso, { part: "hm" });
  return `happened ${hm(a.happened_offline_at)}, reported ${hm(a.reported_at)}`;
}

// The same in UTC, for hover.
export function offlineUtc(a) {
  const utc = (iso) => `${fmtTime(iso, { timeZone: "UTC" })} UTC`;
  return `happened ${utc(a.happened_offline_at)}, reported ${utc(a.reported_at)}`;
}

// The escalation mark: when it happened, in the reader's zone (UTC on hover).
export const escalatedMark = (a) => el("span", { class: "escalated-tag" }, "⚠ escalated ", timeEl(a.escalated_at, { part: "time" }));

// Render the queue table; `act(alarm, action)` runs a transition, `open(alarm)` the detail. Rows
// take the keyboard focus (Enter opens one); a focused row keeps it across redraws.
export function renderQueue(tbody, list, me, { act, open }) {
  const focused = tbody.contains(document.activeElement) ? document.activeElement.closest("tr") : null;
  const rows = list.map((a) => {
    const classes = ["alarm", `p-${a.priority.toLowerCase()}`, `s-${a.status.toLowerCase()}`];
    if (a.service_mode) classes.push("service");
    else if (isEscalated(a)) classes.push("escalated", "flash");
    else if (a.priority === "CRITICAL" && a.status === "NEW") classes.push("flash");
    const buttons = actionsFor(a, me).map((action) =>
      actionButton({ class: `act act-${action}`, dataset: { action },
                     onclick: (e) => { e.stopPropagation(); act(a, action); } }, ACTION_LABEL[action]));
    return el("tr", { class: classes.join(" "), dataset: { id: a.id, status: a.status, version: a.version },
                      tabindex: 0, onclick: () => open(a),
                      onkeydown: (e) => { if (e.key === "Enter" && e.target === e.currentTarget) open(a); } },
      el("td", { class: "prio" }, a.service_mode ? "🔧 " : "", a.priority),
      el("td", {}, a.object_name || (a.object_id ? `#${a.object_id}` : a.summary || a.source || "—")),
      el("td", {}, a.alarm_type, a.restored ? " (restored)" : "", a.requires_note ? " ✎" : "",
         a.happened_offline_at ? el("span", { class: "offline", title: offlineUtc(a) }, ` ${offlineNote(a)}`) : ""),
      el("td", { class: "status" }, a.status, isEscalated(a) ? escalatedMark(a) : ""),
      el("td", { class: "num" }, a.event_count),
      el("td", { class: "age", dataset: { since: a.first_event_at } }, age(a.first_event_at)),
      el("td", { class: "holder" }, a.claimed_by_user ? personEl(a.claimed_by_user) : holderName(a)),
      el("td", { class: "actions" }, ...buttons));
  });
  tbody.replaceChildren(...rows);
  if (focused) {
    const again = tbody.querySelector(`tr[data-id="${focused.dataset.id}"]`);
    if (again) again.focus();
  }
}

// The queue's keys, while `active()` and no field, dialog or modifier is in play: `c` claims the
// top alarm (`claim()`), ↑/↓ (or k/j) move between rows, Enter opens the focused one.
export function bindQueueKeys(tbody, { active, claim }) {
  document.addEventListener("keydown", (e) => {
    if (!active() || e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    if (e.target.closest("input, select, textarea, dialog, [contenteditable]")) return;
    const rows = [...tbody.querySelectorAll("tr")];
    const at = rows.indexOf(document.activeElement);
    if (e.key === "c" || e.key === "C") {
      e.preventDefault();
      claim();
    } else if ((e.key === "ArrowDown" || e.key === "j") && rows.length) {
      e.preventDefault();
      rows[Math.min(rows.length - 1, at + 1)].focus();
    } else if ((e.key === "ArrowUp" || e.key === "k") && rows.length) {
      e.preventDefault();
      rows[Math.max(0, at < 0 ? 0 : at - 1)].focus();
    }
  });
}
