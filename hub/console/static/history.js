// Alarm history (alarms.view): search past alarms by object, type, priority, status, time, operator
// and resolution, newest first and paged; open one (#/history/<id>, linkable) with its whole
// timeline grouped by kind, each entry with who and when. Also what the Reports and Audit pages
// share: RecordPage, times in the reader's zone with UTC on hover, typed times read in that zone.
import * as API from "./api.js";
import { ALARM_TYPES } from "./admin_objects.js";
import { timeEl } from "./dates.js";
import { Field, Form } from "./forms.js";
import { PRIORITIES, el, personEl } from "./queue.js";

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 50;
const STATUSES = ["CLOSED", "RESOLVED", "ACK", "IN_PROGRESS", "CLAIMING", "NEW"];
const KINDS = [["event", "Events"], ["transition", "Lifecycle"], ["dispatch", "Dispatch log"]];

// ---------- shared by the record pages

// The zone a user reads times in: their own, else the hub's default.
export const zoneOf = (me) => (me && (me.time_zone || me.hub_time_zone)) || undefined;

// A time for a person: in their zone, the UTC time on hover, the instant itself in `datetime`.
export const when = (iso, me) => (iso ? timeEl(iso, { timeZone: zoneOf(me) }) : "—");

// Which zone the page's times are in, said once above them.
export const zoneNote = (zone) => el("p", { class: "muted zone-note" },
  zone === "UTC" ? "Times are in UTC." : `Times are in ${zone || "your browser's time zone"}; hover over one for UTC.`);


// The wall-clock fields of the instant `ms` in `timeZone`.
export function wallParts(ms, timeZone) {
  const parts = new Intl.DateTimeFormat("en-US", { timeZone, hourCycle: "h23", year: "numeric", month: "numeric",
    day: "numeric", hour: "numeric", minute: "numeric", second: "numeric" }).formatToParts(ms);
  const get = (type) => Number((parts.find((p) => p.type === type) || {}).value);
  return { year: get("year"), month: get("month"), day: get("day"), hour: get("hour"), minute: get("minute"),
           second: get("second") };
}

function offsetMs(ms, timeZone) {
  const p = wallParts(ms, timeZone);
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - Math.floor(ms / 1000) * 1000;
}

// A day ("2026-03-04") or a time ("2026-03-04 15:05") typed by a person, read as the wall clock
// of `timeZone`: the instant as a UTC ISO string; null when it is not one.
export function wallToIso(local, timeZone) {
  const m = /^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d))?$/.exec(local || "");
  if (!m) return null;
  const [year, month, day, hour, minute] = m.slice(1).map((x) => Number(x || 0));
  const wall = Date.UTC(year, month - 1, day, hour, minute);
  // Date.UTC rolls 30 February over into March: such a date is refused, not moved.
  const back = new Date(wall);
  if (back.getUTCMonth() !== month - 1 || back.getUTCDate() !== day || hour > 23 || minute > 59) return null;
  // The zone's offset at the instant itself, which across a DST change differs from the wall time's.
  const first = wall - offsetMs(wall, timeZone);
  return new Date(wall - offsetMs(first, timeZone)).toISOString();
}

// Typed times and days: year first and 24 h whatever the browser's locale, which the native date
// pickers would follow (month first, AM/PM in en-US). `extra.check` runs once the value is a real time.
function typedTime(name, label, form, pattern, { check, ...extra }) {
  return new Field({ name, label, placeholder: form, maxLength: form.length, pattern, patternMessage: `As ${form}`,
                     check: (v) => (wallToIso(v, "UTC") ? (check ? check(v) : "") : "No such date or time"), ...extra });
}
export const timeInput = (name, label, extra = {}) => typedTime(name, label, "YYYY-MM-DD HH:MM", /^\d{4}-\d\d-\d\d \d\d:\d\d$/, extra);
export const dayInput = (name, label, extra = {}) => typedTime(name, label, "YYYY-MM-DD", /^\d{4}-\d\d-\d\d$/, extra);

// A query string from `params`: empty values left out, arrays repeated.
export function queryString(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    for (const item of Array.isArray(v) ? v : [v]) if (item !== null && item !== undefined && item !== "") q.append(k, item);
  }
  return q.toString();
}

// Who may be named as the operator: every user for those who may list users, else the people
// who claimed alarms in the reports (what this role can see).
export async function operatorOptions(me) {
  if ((me.permissions || []).includes("users.manage")) {
    const users = await API.get("/api/v1/users");
    return users.map((u) => [String(u.id), u.display_name ? `${u.display_name} (${u.email})` : u.email]);
  }
  const report = await API.get("/api/v1/reports/response-times");
  return report.items.filter((r) => /^user:\d+$/.test(r.operator))
    .map((r) => [r.operator.slice(5), r.operator_email || r.operator]);
}

export async function objectOptions() {
  const page = await API.get("/api/v1/objects?limit=500");
  return page.items.map((o) => [String(o.id), o.name]);
}

export async function resolutionOptions() {
  return (await API.get("/api/v1/meta/resolutions")).map((r) => [r.code, r.label]);
}

const any = (label) => [["", label]];

// What the History, Reports and Audit pages share: the role check, and forgetting on sign-out.
// `permission`: what the user's role must hold (GET /auth/me's permissions); `slots`: the ids of
// the elements the page fills, emptied on sign-out so nothing of one user stays for the next.
export class RecordPage {
  constructor({ toast, showView }, permission, slots) {
    this.toast = toast;
    this.showView = showView;
    this.permission = permission;
    this.slots = slots;
    this.me = null;      // who the page was built for
    this.form = null;
    this.query = null;   // the last search's filters
    this.load = 0;       // answers to superseded requests are dropped
  }

  allowed(me) { return !!me && (me.permissions || []).includes(this.permission); }

  leave() {
    this.me = null;
    this.form = null;
    this.query = null;
    for (const id of this.slots) $(id).replaceChildren();
  }

  // A form's values as the API's query: its From and To typed in the reader's zone, sent in UTC.
  utcTimes(values) {
    const zone = zoneOf(this.me);
    return { ...values, since: wallToIso(values.since, zone), until: wallToIso(values.until, zone) };
  }
}

// ---------- the page

export class HistoryPage extends RecordPage {
  constructor(ctx) {
    super(ctx, "alarms.view", ["history-filters", "history-body", "history-pager", "history-alarm-body"]);
  }

  async show(parts, me) {
    const fresh = this.me !== me;
    this.me = me;
    if (fresh || !this.form) await this.buildForm();
    if (parts[0]) {
      this.showView("history-alarm");
      $("nav-history").classList.add("active");
      await this.showAlarm(Number(parts[0]));
      return;
    }
    this.showView("history");
    if (fresh || !this.query) await this.search(0);
  }

  async buildForm() {
    const zone = zoneOf(this.me);
    const [objects, operators, resolutions] = await Promise.all([
      objectOptions().catch(() => []), operatorOptions(this.me).catch(() => []), resolutionOptions().catch(() => [])]);
    const fields = [
      new Field({ name: "object_id", label: "Object", type: "select", options: [...any("Any object"), ...objects] }),
      new Field({ name: "alarm_type", label: "Type", type: "select",
                  options: [...any("Any type"), ...ALARM_TYPES.map((t) => [t, t])] }),
      new Field({ name: "priority", label: "Priority", type: "select",
                  options: [...any("Any priority"), ...PRIORITIES.map((p) => [p, p])] }),
      new Field({ name: "status", label: "Status", type: "select", value: "CLOSED",
                  options: [...any("Any status"), ...STATUSES.map((s) => [s, s])] }),
      timeInput("since", `From (${zone || "local"})`),
      timeInput("until", `To (${zone || "local"})`,
                { check: (v) => (this.form.field("since").value && v <= this.form.field("since").value ? "After From" : "") }),
      new Field({ name: "operator", label: "Operator", type: "select", options: [...any("Anyone"), ...operators] }),
      new Field({ name: "resolution", label: "Resolution", type: "select", options: [...any("Any resolution"), ...resolutions] }),
    ];
    const clear = el("button", { type: "button", class: "clear" }, "Clear");
    this.form = new Form(fields, { submitLabel: "Search", extra: [clear], onSubmit: (values) => this.search(0, values) });
    this.form.element.id = "history-form";
    this.form.element.classList.add("filters");
    clear.addEventListener("click", () => {
      for (const f of this.form.fields.values()) f.value = "";
      this.form.submit();
    });
    $("history-filters").replaceChildren(this.form.element, zoneNote(zone));
  }

  async search(offset, values = this.query || this.form.values()) {
    const n = ++this.load;
    this.query = values;
    const qs = queryString({ ...this.utcTimes(values), order: "newest", limit: PAGE_SIZE, offset });
    const page = await API.get(`/api/v1/alarms?${qs}`);  // a refusal reaches the form, beside its field
    if (n !== this.load) return;
    this.render(page);
  }

  render(page) {
    $("history-body").replaceChildren(...page.items.map((a) => el("tr", {
      class: "clickable", dataset: { id: a.id }, onclick: () => { location.hash = `#/history/${a.id}`; } },
    el("td", {}, el("a", { href: `#/history/${a.id}` }, `#${a.id}`)), el("td", {}, when(a.first_event_at, this.me)),
    el("td", {}, a.object_name || (a.object_id ? `#${a.object_id}` : a.summary || a.source)), el("td", {}, a.alarm_type),
    el("td", {}, a.priority), el("td", {}, a.status), el("td", {}, a.resolution_label || "—"),
    el("td", {}, personEl(a.claimed_by_user)))));
    $("history-empty").hidden = page.items.length > 0;
    $("history-count").textContent = `(${page.total})`;
    const last = Math.min(page.offset + page.items.length, page.total);
    const go = (offset) => this.search(offset).catch((e) => this.toast(e.message, "error"));
    const prev = el("button", { type: "button", id: "history-prev", disabled: page.offset === 0,
                                onclick: () => go(Math.max(0, page.offset - PAGE_SIZE)) }, "← Newer");
    const next = el("button", { type: "button", id: "history-next", disabled: last >= page.total,
                                onclick: () => go(page.offset + PAGE_SIZE) }, "Older →");
    $("history-pager").replaceChildren(prev, el("span", { class: "muted", id: "history-range" },
      page.total ? `${page.offset + 1}–${last} of ${page.total}` : ""), next);
  }

  async showAlarm(id) {
    const n = ++this.load;
    $("history-alarm-title").textContent = `Alarm #${id}`;
    $("history-alarm-body").replaceChildren(el("p", { class: "muted" }, "Loading…"));
    let alarm, timeline;
    try {
      [alarm, timeline] = await Promise.all([API.get(`/api/v1/alarms/${id}`), API.get(`/api/v1/alarms/${id}/timeline`)]);
    } catch (e) {
      if (n === this.load) $("history-alarm-body").replaceChildren(el("p", { class: "error", role: "alert" }, e.message));
      return;
    }
    if (n !== this.load) return;
    $("history-alarm-title").textContent =
      `Alarm #${alarm.id}: ${alarm.priority} ${alarm.alarm_type} — ${alarm.object_name || alarm.source}`;
    const pairs = [["Status", alarm.status], ["Priority", alarm.priority], ["Type", alarm.alarm_type],
      ["Object", alarm.object_name || "—"], ["First event", when(alarm.first_event_at, this.me)],
      ["Last event", when(alarm.last_event_at, this.me)], ["Events", alarm.event_count],
      ["Claimed by", personEl(alarm.claimed_by_user)], ["Ack note", alarm.ack_note || "—"],
      ["Resolution", alarm.resolution_label || "—"], ["Resolution note", alarm.resolution_note || "—"],
      ["Source", `${alarm.edge_id} / ${alarm.source}`],
      ...(alarm.summary ? [["About", alarm.summary]] : []),
      ...(alarm.escalated_at ? [["Escalated", when(alarm.escalated_at, this.me)]] : [])];
    const cards = [el("div", { class: "card" }, el("h3", {}, "Alarm"), el("dl", { class: "fields", id: "history-alarm-fields" },
      ...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "")])))];
    if (timeline.events_truncated) {
      cards.push(el("p", { class: "warn" }, "Only the first events are listed: this alarm has more than the timeline shows."));
    }
    for (const [kind, title] of KINDS) {
      const items = timeline.items.filter((i) => i.kind === kind);
      cards.push(this.kindCard(kind, `${title} (${items.length})`,
        items.map((i) => [when(i.at, this.me), personEl(i.who), i.text])));
      // The checklist beside the moves: every step, done (who, when) or not.
      if (kind === "transition") {
        const steps = alarm.checklist || [];
        cards.push(this.kindCard("checklist", `Checklist (${steps.filter((c) => c.done_at).length} of ${steps.length} done)`,
          steps.map((c) => [c.done_at ? when(c.done_at, this.me) : "—", personEl(c.done_by),
                            `${c.done_at ? "☑" : "☐"} ${c.index}. ${c.text}`]), steps.map((c) => (c.done_at ? "yes" : "no"))));
      }
    }
    $("history-alarm-body").replaceChildren(el("div", { class: "history-alarm" }, ...cards));
  }

  // One kind of the timeline as a table of [when, who, what] rows, oldest first.
  kindCard(kind, title, rows, done = []) {
    return el("div", { class: "card timeline", dataset: { kind } }, el("h3", {}, title), rows.length
      ? el("table", { class: "grid small" },
        el("thead", {}, el("tr", {}, ...["When", "Who", "What"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, ...rows.map(([at, who, what], i) => el("tr", { dataset: done[i] ? { kind, done: done[i] } : { kind } },
          el("td", { class: "nowrap" }, at), el("td", { class: "nowrap" }, who), el("td", {}, what)))))
      : el("p", { class: "muted" }, "None."));
  }
}
