// Holidays (issue 13): days on which no auto-arm schedule arms and no open/close supervision
// judges, for one object or for every object. Listed by day, added with a day, a name and whom
// it is for, deleted after a confirmation naming it. Route: #/admin-holidays.
import * as API from "./api.js";
import { Field, Form, confirmAction } from "./forms.js";
import { el } from "./queue.js";
import { dayInput, objectOptions } from "./history.js";
import { actorNames } from "./panel_schedules.js";

const LIST_LIMIT = 500;
const MAX_NAME = 200;  // HolidayIn.name

const $ = (id) => document.getElementById(id);

export class HolidaysAdmin {
  constructor({ toast }) {
    this.toast = toast;
    this.loading = 0;
  }

  // Nothing of one user's session stays for the next.
  leave() {
    this.me = null;
    $("holidays-body").replaceChildren();
  }

  async show(_parts, me) {
    if (me) this.me = me;
    const n = ++this.loading;
    let objects;
    let page;
    let people;
    try {
      [objects, page, people] = await Promise.all([objectOptions(), API.get(`/api/v1/holidays?limit=${LIST_LIMIT}`),
                                                   actorNames(this.me)]);
    } catch (e) { this.toast(e.message, "error"); return; }
    if (n !== this.loading) return;
    const names = new Map(objects.map(([id, name]) => [Number(id), name]));
    const objectOf = (h) => (h.object_id === null ? null : names.get(h.object_id) || `object #${h.object_id}`);
    const rows = page.items.map((h) => el("tr", { dataset: { holiday: h.id } },
      el("td", { class: "nowrap day" }, h.day), el("td", { class: "name" }, h.name || "—"),
      el("td", { class: "for" }, objectOf(h) ?? "Every object"), el("td", {}, people.get(h.created_by) || h.created_by),
      el("td", { class: "row-actions" }, el("button", {
        type: "button", class: "danger delete", "aria-label": `Delete the holiday ${h.day} ${h.name}`.trim(),
        onclick: () => this.remove(h, objectOf(h) ?? "every object") }, "Delete…"))));
    const list = rows.length ? el("table", { class: "grid small", id: "holidays-table" },
      el("thead", {}, el("tr", {}, ...["Day", "Name", "For", "Added by", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...rows)) : el("p", { class: "muted empty", id: "holidays-table" }, "No holidays yet.");
    const form = new Form([
      dayInput("day", "Day", { required: true }),
      new Field({ name: "name", label: "Name", maxLength: MAX_NAME, placeholder: "e.g. Christmas Day" }),
      new Field({ name: "object_id", label: "For", type: "select", numeric: true, options: [["", "Every object"], ...objects] }),
    ], {
      submitLabel: "Add holiday", errorFields: { holidays_object_id_day_key: "day", holidays_object_id_fkey: "object_id" },
      onSubmit: async (values, headers) => {
        await API.post("/api/v1/holidays", values, headers);
        this.toast(`Holiday ${values.day} added`, "info");
        await this.show();
      },
    });
    form.element.id = "holiday-form";
    $("holidays-body").replaceChildren(
      el("div", { class: "card" }, el("h3", {}, "Holidays"),
        el("p", { class: "muted" }, "On these days no auto-arm schedule arms and no opening or closing is judged. " +
          "A day is a calendar day in each schedule's own time zone."),
        list, page.total > page.items.length ? el("p", { class: "muted" }, `The first ${page.items.length} of ${page.total} are shown.`) : null),
      el("div", { class: "card" }, el("h3", {}, "Add a holiday"), form.element));
  }

  async remove(h, whom) {
    if (!await confirmAction(`Delete the holiday ${h.day}${h.name ? ` (${h.name})` : ""} for ${whom}? ` +
      "Schedules then arm on that day.", "Delete holiday")) return;
    try {
      await API.del(`/api/v1/holidays/${h.id}`);
      this.toast(`Holiday ${h.day} deleted`, "info");
    } catch (e) {
      if (e.status !== 404) this.toast(e.message, "error");
    }
    await this.show();
  }
}
