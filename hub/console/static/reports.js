// Reports (alarms.view, object-scoped by the hub): for a range of days in the reader's zone, the
// alarms per day as a bar chart with its table, the alarm history, each operator's time to claim
// and to acknowledge (p50, p90) as a table and a chart, how the alarms ended, and the morning report
// of auto-arm failures and open/close supervision alarms; each with CSV and PDF exports that carry
// the same filters (also on the Audit page), fetched by API.download.
import * as API from "./api.js";
import { barChart } from "./chart.js";
import { fmtTime } from "./dates.js";
import { Field, Form } from "./forms.js";
import { el } from "./queue.js";
import { RecordPage, dayInput, objectOptions, queryString, resolutionOptions, wallParts, wallToIso, when, zoneOf } from "./history.js";

const $ = (id) => document.getElementById(id);
const DEFAULT_DAYS = 30;
const SHOWN_ROWS = 200;  // the alarm table on screen; the exports carry every row
// Gridline steps for durations, in seconds: round seconds, minutes and hours.
const DURATION_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
// The morning report's rows in words: a run's outcome or a supervision alarm's kind.
const AUTO_ARM_WHAT = { FAILED: "Auto-arm failed", MISSED: "Auto-arm missed (no hub ran)",
                        FAILED_TO_CLOSE: "Failed to close", FAILED_TO_OPEN: "Failed to open",
                        UNEXPECTED_OPENING: "Unexpected opening" };
const RESPONSE_SERIES = [["p50_seconds_to_claim", "Claim p50"], ["p90_seconds_to_claim", "Claim p90"],
                         ["p50_seconds_to_ack", "Ack p50"], ["p90_seconds_to_ack", "Ack p90"]];

// ---------- shared with the Audit page

// Seconds as a person reads a duration: "12 s", "4 min 05 s", "2 h 03 min"; "—" when unknown.
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.round(seconds);
  const two = (n) => String(n).padStart(2, "0");
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${two(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${two(Math.floor((s % 3600) / 60))} min`;
}

// A round duration for an axis: "30 s", "15 min", "2 h", "1 h 30 min".
function shortDuration(seconds) {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return seconds % 60 ? duration(seconds) : `${seconds / 60} min`;
  return seconds % 3600 ? duration(seconds) : `${seconds / 3600} h`;
}

// CSV and PDF links for `path` with `query` (filters only: an export is never paged). The link's
// href is the API's address of the file; a click downloads it with the session's token.
export function exportLinks(path, query, name, toast) {
  return el("span", { class: "exports" }, ...["csv", "pdf"].map((format) => {
    const href = `${path}?${queryString({ ...query, format })}`;
    return el("a", { href, class: `export export-${format}`, dataset: { format },
                     onclick: (e) => {
                       e.preventDefault();
                       API.download(href, `${name}.${format}`).catch((err) => toast(err.message, "error"));
                     } }, `Export ${format.toUpperCase()}`);
  }));
}

// A table with a caption: `columns` [[header, cell(row)]]; numbers right-aligned by `num`.
export function table(id, caption, columns, rows) {
  return el("table", { class: "grid small", id },
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, ...columns.map(([header]) => el("th", { scope: "col" }, header)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...columns.map(([, cell, num]) => el("td", { class: num ? "num" : "" }, cell(r)))))));
}

// A calendar day ("2026-03-04") `days` later.
function addDays(day, days) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

// A calendar day as people read it: the one date formatter, at midnight UTC so no zone shifts it.
const dayText = (day) => fmtTime(`${day}T00:00:00Z`, { part: "date", timeZone: "UTC" });
const operatorName = (r) => r.operator_email || r.operator;

// ---------- the page

export class ReportsPage extends RecordPage {
  constructor(ctx) { super(ctx, "alarms.view", ["reports-filters", "reports-body"]); }

  async show(_parts, me) {
    this.showView("reports");
    if (this.me === me && this.form) return;
    this.me = me;
    await this.buildForm();
    await this.form.submit();
  }

  async buildForm() {
    const zone = zoneOf(this.me);
    const now = wallParts(Date.now(), zone);
    const today = `${now.year}-${String(now.month).padStart(2, "0")}-${String(now.day).padStart(2, "0")}`;
    const [objects, resolutions] = await Promise.all([objectOptions().catch(() => []), resolutionOptions().catch(() => [])]);
    const since = dayInput("since", "From day", { value: addDays(today, 1 - DEFAULT_DAYS), required: true });
    const fields = [
      since,
      dayInput("until", "To day (included)", { value: today, required: true,
                                               check: (v) => (since.value && v < since.value ? "Not before From" : "") }),
      new Field({ name: "object_id", label: "Object", type: "select", options: [["", "Any object"], ...objects] }),
      new Field({ name: "resolution", label: "Resolution", type: "select", options: [["", "Any resolution"], ...resolutions] }),
    ];
    this.form = new Form(fields, { submitLabel: "Show", onSubmit: (values) => this.run(values) });
    this.form.element.id = "reports-form";
    this.form.element.classList.add("filters");
    $("reports-filters").replaceChildren(this.form.element,
      el("p", { class: "muted zone-note" },
        `Days are calendar days in ${zone || "your browser's time zone"}; hover over a time for UTC.`));
  }

  async run(values) {
    const n = ++this.load;
    const zone = zoneOf(this.me);
    // The API's filters: from the first day's start to the start of the day after the last.
    const query = { since: wallToIso(values.since, zone), until: wallToIso(addDays(values.until, 1), zone),
                    object_id: values.object_id, resolution: values.resolution };
    const qs = queryString(query);
    // The morning report knows no resolution: it takes the range and the object only.
    const autoArmQuery = { since: query.since, until: query.until, object_id: query.object_id };
    const [alarms, times, ends, autoArm] = await Promise.all([
      API.get(`/api/v1/reports/alarms?${qs}&${queryString({ time_zone: zone || "UTC" })}`),
      API.get(`/api/v1/reports/response-times?${qs}`), API.get(`/api/v1/reports/resolutions?${qs}`),
      API.get(`/api/v1/reports/auto-arm?${queryString(autoArmQuery)}`)]);
    if (n !== this.load) return;
    $("reports-body").replaceChildren(this.perDayCard(alarms, query), this.alarmsCard(alarms),
      this.responseCard(times.items, query), this.resolutionsCard(ends.items, query),
      this.autoArmCard(autoArm, autoArmQuery, !!values.resolution));
  }

  perDayCard(report, query) {
    const days = report.per_day;
    const total = days.reduce((sum, d) => sum + d.alarms, 0);
    const body = days.length
      ? el("div", { class: "chart-pair" },
        el("div", { class: "chart-box", id: "reports-per-day-chart" }, barChart({
          title: "Alarms per day", categories: days.map((d) => dayText(d.day)),
          series: [{ name: "Alarms", values: days.map((d) => d.alarms) }], xLabel: "Day", yLabel: "Alarms", integer: true })),
        table("reports-per-day-table", "Alarms per day", [["Day", (d) => dayText(d.day)], ["Alarms", (d) => d.alarms, true]], days))
      : el("p", { class: "muted empty", id: "reports-empty" }, "No alarms in this period.");
    return el("div", { class: "card" }, el("div", { class: "card-head" }, el("h3", {}, `Alarms per day (${total})`),
      exportLinks("/api/v1/reports/alarms", query, "alarm-history", this.toast)), body);
  }

  alarmsCard(report) {
    const rows = report.items.slice(0, SHOWN_ROWS);
    const note = report.items.length > SHOWN_ROWS || report.truncated
      ? el("p", { class: "muted" }, `The first ${rows.length} alarms are shown; the exports hold them all.`) : "";
    return el("div", { class: "card" }, el("h3", {}, "Alarm history"), note, rows.length
      ? table("reports-alarms-table", "Alarms of the period, oldest first", [
        ["#", (r) => el("a", { href: `#/history/${r.id}` }, `#${r.id}`)], ["First event", (r) => when(r.first_event_at, this.me)],
        ["Object", (r) => r.object_name || "—"], ["Type", (r) => r.alarm_type], ["Priority", (r) => r.priority],
        ["Status", (r) => r.status], ["Claimed by", (r) => r.claimed_by_email || r.claimed_by || "—"],
        ["To claim", (r) => duration(r.seconds_to_claim), true], ["To ack", (r) => duration(r.seconds_to_ack), true],
        ["Resolution", (r) => r.resolution || "—"]], rows)
      : el("p", { class: "muted" }, "No alarms in this period."));
  }

  responseCard(items, query) {
    const head = el("div", { class: "card-head" }, el("h3", {}, "Operator response times"),
      exportLinks("/api/v1/reports/response-times", query, "response-times", this.toast));
    if (!items.length) return el("div", { class: "card" }, head, el("p", { class: "muted" }, "No alarm was claimed in this period."));
    return el("div", { class: "card" }, head, el("div", { class: "chart-pair even" },
      el("div", { class: "chart-box", id: "reports-response-chart" }, barChart({
        title: "Time to claim and to acknowledge per operator", categories: items.map(operatorName),
        series: RESPONSE_SERIES.map(([key, name]) => ({ name, values: items.map((r) => r[key]) })),
        xLabel: "Operator", yLabel: "From the first event", format: duration, tickFormat: shortDuration,
        steps: DURATION_STEPS })),
      table("reports-response-table", "Time from the first event, per operator", [
        ["Operator", operatorName], ["Alarms", (r) => r.alarms, true],
        ...RESPONSE_SERIES.map(([key, name]) => [name, (r) => duration(r[key]), true])], items)));
  }

  resolutionsCard(items, query) {
    return el("div", { class: "card" }, el("div", { class: "card-head" }, el("h3", {}, "How alarms ended"),
      exportLinks("/api/v1/reports/resolutions", query, "resolutions", this.toast)),
    table("reports-resolutions-table", "Alarms per resolution", [["Resolution", (r) => r.label], ["Alarms", (r) => r.alarms, true]],
      items));
  }

  // Auto-arm runs that FAILED or were MISSED and the supervision alarms, oldest first, with totals.
  // `unfiltered`: a resolution was chosen, which these rows have none of.
  autoArmCard(report, query, unfiltered) {
    const total = Object.values(report.totals).reduce((sum, n) => sum + n, 0);
    const head = el("div", { class: "card-head" }, el("h3", {}, `Auto-arm failures and open/close alarms (${total})`),
      exportLinks("/api/v1/reports/auto-arm", query, "auto-arm", this.toast));
    const note = unfiltered ? el("p", { class: "muted" }, "Not filtered by resolution.") : "";
    if (!report.items.length) {
      return el("div", { class: "card", id: "reports-auto-arm" }, head, note,
        el("p", { class: "muted empty" }, "No auto-arm failed and no opening or closing was missed in this period."));
    }
    const rows = report.items.slice(0, SHOWN_ROWS);
    const totals = Object.entries(report.totals).map(([what, n]) => `${AUTO_ARM_WHAT[what] || what}: ${n}`).join(" · ");
    return el("div", { class: "card", id: "reports-auto-arm" }, head, note, el("p", { class: "auto-arm-totals" }, totals),
      report.items.length > SHOWN_ROWS || report.truncated
        ? el("p", { class: "muted" }, `The first ${rows.length} are shown; the exports hold them all.`) : "",
      table("reports-auto-arm-table", "Auto-arm runs and supervision alarms, oldest first", [
        ["When", (r) => when(r.at, this.me)], ["What", (r) => AUTO_ARM_WHAT[r.what] || r.what],
        ["Priority", (r) => r.priority || "—"], ["Object", (r) => r.object_name || `#${r.object_id}`],
        ["Partition", (r) => `Panel #${r.panel_id}, partition ${r.partition}`], ["Detail", (r) => r.detail || ""],
        ["Alarm", (r) => (r.bundle_id ? el("a", { href: `#/history/${r.bundle_id}` }, `#${r.bundle_id}`) : "—")]], rows));
  }
}
