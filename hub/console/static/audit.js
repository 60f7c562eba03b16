// The audit log (MASTER only; the hub refuses everyone else): filter by actor, action, target and
// time, newest first and paged, and export what the filters select as CSV or PDF.
import * as API from "./api.js";
import { Field, Form } from "./forms.js";
import { el } from "./queue.js";
import { RecordPage, queryString, timeInput, when, zoneNote, zoneOf } from "./history.js";
import { exportLinks } from "./reports.js";

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 100;

export class AuditPage extends RecordPage {
  constructor(ctx) {
    super(ctx, "audit.view", ["audit-filters", "audit-body", "audit-pager", "audit-exports"]);
    this.people = new Map();  // actor ("user:5") → email, to read the actor column by
  }

  async show(_parts, me) {
    this.showView("audit");
    if (this.me === me && this.form) return;
    this.me = me;
    this.buildForm();
    try {
      this.people = new Map((await API.get("/api/v1/users")).map((u) => [`user:${u.id}`, u.email]));
    } catch { this.people = new Map(); }
    await this.form.submit();
  }

  // On sign-out the log leaves the screen with the user who could read it.
  leave() {
    super.leave();
    this.people = new Map();
  }

  buildForm() {
    const zone = zoneOf(this.me);
    const text = (name, label, maxLength, hint) => new Field({ name, label, maxLength, hint });
    const since = timeInput("since", `From (${zone || "local"})`);
    this.form = new Form([
      text("actor", "Actor", 200, "user:<id>, system, edge:<id>"), text("action", "Action", 200, "e.g. alarm.claim"),
      text("target_type", "Target type", 100, "e.g. bundle_alarm, user"), text("target_id", "Target id", 200),
      since,
      timeInput("until", `To (${zone || "local"})`, { check: (v) => (since.value && v <= since.value ? "After From" : "") }),
    ], { submitLabel: "Filter", onSubmit: (values) => this.search(0, values) });
    this.form.element.id = "audit-form";
    this.form.element.classList.add("filters");
    $("audit-filters").replaceChildren(this.form.element, zoneNote(zone));
  }

  async search(offset, values = this.query) {
    const n = ++this.load;
    this.query = values;
    const filters = this.utcTimes(values);
    const page = await API.get(`/api/v1/audit?${queryString({ ...filters, limit: PAGE_SIZE, offset })}`);
    if (n !== this.load) return;
    $("audit-exports").replaceChildren(exportLinks("/api/v1/audit", filters, "audit-log", this.toast));
    $("audit-body").replaceChildren(...page.items.map((a) => el("tr", { dataset: { id: a.id, action: a.action } },
      el("td", { class: "nowrap" }, when(a.at, this.me)),
      el("td", {}, a.actor, this.people.has(a.actor) ? el("div", { class: "muted" }, this.people.get(a.actor)) : ""),
      el("td", {}, a.action), el("td", {}, `${a.target_type} ${a.target_id}`),
      el("td", { class: "mono details" }, JSON.stringify(a.details)), el("td", { class: "mono muted" }, a.request_id || ""))));
    $("audit-empty").hidden = page.items.length > 0;
    // The log answers no total: a full page may have a next one.
    const more = page.items.length === PAGE_SIZE;
    const go = (to) => this.search(to).catch((e) => this.toast(e.message, "error"));
    $("audit-pager").replaceChildren(
      el("button", { type: "button", id: "audit-prev", disabled: offset === 0,
                     onclick: () => go(Math.max(0, offset - PAGE_SIZE)) }, "← Newer"),
      el("span", { class: "muted" }, page.items.length ? `${offset + 1}–${offset + page.items.length}` : ""),
      el("button", { type: "button", id: "audit-next", disabled: !more, onclick: () => go(offset + PAGE_SIZE) }, "Older →"));
  }
}
