// A panel's auto-arm schedules (with each one's recent runs), its open/close supervision and its
// stored user codes (issue 13; docs/architecture.md §5 "Auto-arm and open/close supervision").
// Whoever may give panel commands (panels.command) adds, edits and deletes schedules and
// supervision and sets or removes stored codes; everyone else sees the schedules and supervision
// read-only and no codes. A stored code is write-only: typed into a dialog's password input, sent
// in the one PUT and wiped from the input when the dialog closes; the hub never returns it.
import * as API from "./api.js";
import { Field, Form, changed, confirmAction } from "./forms.js";
import { el, timeEl } from "./queue.js";
import { COMMAND_PERMISSION } from "./panel_commands.js";

const DAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];  // ISO weekdays 1..7
const CLOCK = /^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$/;                // schedules_api.ClockTime
const CODE = /^\d{4,8}$/;
const MODES = [[0, "Mode 0 (full)"], [1, "Mode 1"], [2, "Mode 2"], [3, "Mode 3"]];
const RUNS_READ = 100;   // the panel's newest runs, shared out among its schedules
const ZONE_LIST_ID = "time-zone-names";
const STALE = "Data changed — refreshed";
let serial = 0;
// How a run ended, in words.
const OUTCOMES = { ARMED: "armed", ALREADY_ARMED: "already armed", HOLIDAY: "holiday", PENDING: "waiting for the panel",
                   FAILED: "FAILED", MISSED: "MISSED (no hub ran)" };

export const mayCommand = (me) => !!me && (me.permissions || []).includes(COMMAND_PERMISSION);

// ISO weekdays as people read them: "Every day", "Mon–Fri", "Mon, Wed, Sat–Sun".
export function daysText(days) {
  const set = [...new Set(days)].sort((a, b) => a - b);
  if (set.length === 7) return "Every day";
  const runs = [];
  for (const d of set) {
    const last = runs[runs.length - 1];
    if (last && d === last[1] + 1) last[1] = d;
    else runs.push([d, d]);
  }
  return runs.map(([a, b]) => (a === b ? DAY_NAMES[a - 1] : b === a + 1 ? `${DAY_NAMES[a - 1]}, ${DAY_NAMES[b - 1]}`
    : `${DAY_NAMES[a - 1]}–${DAY_NAMES[b - 1]}`)).join(", ");
}

// The IANA zone names the browser knows, offered as the time zone field's suggestions (the hub
// judges the name against its own list).
function zoneList() {
  if (!document.getElementById(ZONE_LIST_ID)) {
    const names = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
    document.body.append(el("datalist", { id: ZONE_LIST_ID }, ...names.map((n) => el("option", { value: n }))));
  }
  return ZONE_LIST_ID;
}

// ISO weekdays as seven labelled checkboxes; a field a Form can hold (value, problem, setError).
class DaysField {
  constructor(name, label, days = []) {
    this.spec = { name, label };
    this.error = el("span", { class: "error field-error", id: `${name}-error-d${++serial}`, role: "alert" });
    this.boxes = DAY_NAMES.map((_d, i) => el("input", { type: "checkbox", name, value: i + 1, "aria-describedby": this.error.id }));
    this.input = this.boxes[0];
    this.element = el("fieldset", { class: "field days-field" }, el("legend", {}, label),
      ...this.boxes.map((box, i) => el("label", { class: "inline day" }, box, ` ${DAY_NAMES[i]}`)), this.error);
    this.value = days;
  }

  get value() { return this.boxes.filter((b) => b.checked).map((b) => Number(b.value)); }

  set value(days) {
    const wanted = new Set(days || []);
    for (const b of this.boxes) b.checked = wanted.has(Number(b.value));
  }

  problem() { return this.value.length ? "" : "Choose at least one day"; }

  setError(message) {
    this.error.textContent = message || "";
    for (const b of this.boxes) {
      if (message) b.setAttribute("aria-invalid", "true");
      else b.removeAttribute("aria-invalid");
    }
  }
}

const clockField = (name, label, value) => new Field({ name, label, required: true, maxLength: 8, pattern: CLOCK,
  patternMessage: "As HH:MM, 24 h", placeholder: "HH:MM", value });

function zoneField(value) {
  const f = new Field({ name: "time_zone", label: "Time zone (IANA name)", required: true, maxLength: 64, value,
                        placeholder: "Europe/Warsaw" });
  f.input.setAttribute("list", zoneList());
  return f;
}

// A table: `headers`, then `rows` (elements); `empty` said instead when there are none.
function grid(id, headers, rows, empty) {
  if (!rows.length) return el("p", { class: "muted empty", id }, empty);
  return el("table", { class: "grid small", id },
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))), el("tbody", {}, ...rows));
}

const yesNo = (v) => (v ? "yes" : "no");
// The parts of a card that are there (replaceChildren would write a null as "null").
const present = (...nodes) => nodes.filter((n) => n !== null);

// actor ("user:3") → the person's name, for those who may list users; empty for others.
export async function actorNames(me) {
  if (!me || !(me.permissions || []).includes("users.manage")) return new Map();
  try {
    return new Map((await API.get("/api/v1/users")).map((u) => [`user:${u.id}`, u.display_name || u.email]));
  } catch { return new Map(); }
}

export class PanelSchedules {
  // `panel`: GET /panels/{id} (its partitions name the rows); `me`: the signed-in user;
  // `editable`: forms and buttons for whoever may command panels (false: read-only for anyone).
  constructor({ panel, me, toast, editable = true }) {
    this.panel = panel;
    this.me = me;
    this.toast = toast;
    this.editable = editable && mayCommand(me);
    this.codeDialog = null;
  }

  partitionName(n) {
    const p = (this.panel.partitions || []).find((x) => x.number === n);
    return p && p.name ? `Partition ${n} ${p.name}` : `Partition ${n}`;
  }

  // The zone a new schedule starts in: the reader's, else the hub's.
  defaultZone() { return (this.me && (this.me.time_zone || this.me.hub_time_zone)) || "UTC"; }

  // The partition to act on: the panel's configured ones by name, else a number 1..32.
  partitionField(value, disabled = false) {
    const options = (this.panel.partitions || []).map((p) => [String(p.number), this.partitionName(p.number)]);
    if (value && !options.some(([n]) => Number(n) === value)) options.push([String(value), this.partitionName(value)]);
    if (!options.length) {
      return new Field({ name: "partition", label: "Partition", type: "number", integer: true, required: true, min: 1,
                         max: 32, value, disabled });
    }
    return new Field({ name: "partition", label: "Partition", type: "select", numeric: true, required: true, disabled,
                       options: [["", "— choose —"], ...options], value });
  }

  // Delete `path` after a confirmation asking `question`; then `after()` redraws.
  async remove(question, okLabel, path, done, after) {
    if (!await confirmAction(question, okLabel)) return;
    try {
      await API.del(path);
      this.toast(done, "info");
    } catch (e) {
      if (e.status !== 404) this.toast(e.message, "error");
    }
    await after();
  }

  // The form that adds a record, or edits `current` (then with Cancel); `box` holds it.
  formBox(box, { id, title, fields, create, update, current, after, errorFields = {} }) {
    const cancel = current ? el("button", { type: "button", class: "cancel" }, "Cancel") : null;
    const form = new Form(fields, {
      submitLabel: current ? "Save" : title, extra: cancel ? [cancel] : [], errorFields,
      onStale: () => { this.toast(STALE, "warn"); after(); },
      onSubmit: async (values, headers) => {
        if (current) {
          const diff = changed(values, current);
          if (!Object.keys(diff).length) { this.toast("Nothing changed", "info"); return; }
          await update({ version: current.version, ...diff });
        } else {
          await create(values, headers);
        }
        await after();
      },
    });
    form.element.id = id;
    if (current) form.element.dataset.editing = current.id;
    const holder = el("div", { class: "schedule-form-box" }, el("h4", {}, current ? `Edit ${title.replace(/^Add /, "")}` : title),
      form.element);
    if (cancel) cancel.addEventListener("click", () => after());
    box.replaceChildren(holder);
    return form;
  }

  // ---------- auto-arm

  async drawAutoArm(card) {
    const id = this.panel.id;
    let schedules;
    let runs = [];
    try {
      [schedules, runs] = await Promise.all([API.get(`/api/v1/panels/${id}/auto-arm`),
        API.get(`/api/v1/panels/${id}/auto-arm/runs?limit=${RUNS_READ}`).then((p) => p.items)]);
    } catch (e) { card.replaceChildren(el("h3", {}, "Auto-arm"), el("p", { class: "error" }, e.message)); return; }
    const bySchedule = new Map();
    for (const r of runs) {
      if (!bySchedule.has(r.schedule_id)) bySchedule.set(r.schedule_id, []);
      bySchedule.get(r.schedule_id).push(r);
    }
    const formBox = el("div", { class: "form-box" });
    const redraw = () => this.drawAutoArm(card);
    const edit = (s) => this.scheduleForm(formBox, s, redraw);
    const headers = ["Partition", "Time", "Days", "Time zone", "Mode", "Force on violation", "Enabled", "Next", "Last run",
                     ...(this.editable ? [""] : [])];
    const rows = schedules.flatMap((s) => {
      const mine = bySchedule.get(s.id) || [];
      const last = mine[0];
      const row = el("tr", { dataset: { schedule: s.id, version: s.version } },
        el("td", {}, this.partitionName(s.partition)), el("td", { class: "at-time" }, s.at_time),
        el("td", { class: "days" }, daysText(s.days)), el("td", {}, s.time_zone), el("td", {}, String(s.mode)),
        el("td", {}, yesNo(s.force_on_violation)), el("td", { class: "enabled" }, yesNo(s.enabled)),
        el("td", { class: "nowrap" }, s.next_due_at ? timeEl(s.next_due_at) : "—"),
        el("td", { class: "last-run", dataset: { outcome: last ? last.outcome : "" } }, last ? OUTCOMES[last.outcome] || last.outcome : "—"),
        this.editable ? el("td", { class: "row-actions" },
          el("button", { type: "button", class: "edit", "aria-label": `Edit the schedule of ${this.partitionName(s.partition)} at ${s.at_time}`,
                         onclick: () => edit(s) }, "Edit"),
          el("button", { type: "button", class: "danger delete",
                         "aria-label": `Delete the schedule of ${this.partitionName(s.partition)} at ${s.at_time}`,
                         onclick: () => this.remove(`Delete the auto-arm of ${this.partitionName(s.partition)} at ${s.at_time} ` +
                           `(${daysText(s.days)}, ${s.time_zone})? Its past runs stay in the record.`, "Delete schedule",
                         `/api/v1/auto-arm/${s.id}`, "Schedule deleted", redraw) }, "Delete…")) : null);
      return [row, el("tr", { class: "runs-row", dataset: { runsOf: s.id } },
        el("td", { colspan: headers.length }, this.runsList(mine, `Recent runs (${mine.length})`)))];
    });
    const orphans = bySchedule.get(null) || [];
    card.replaceChildren(...present(el("h3", {}, "Auto-arm"),
      el("p", { class: "muted" }, "Arms a partition at a local time on the chosen days, except on holidays; " +
        "skipped when it is armed already. Uses the stored user code."),
      grid(`auto-arm-${id}`, headers, rows, "No auto-arm schedules."),
      orphans.length ? this.runsList(orphans, `Runs of deleted schedules (${orphans.length})`) : null,
      this.editable ? formBox : null));
    if (this.editable) this.scheduleForm(formBox, null, redraw);
  }

  runsList(runs, summary) {
    const body = runs.length ? el("table", { class: "grid small runs" },
      el("thead", {}, el("tr", {}, ...["Due", "Outcome", "Detail", "Decided"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...runs.map((r) => el("tr", { dataset: { run: r.id, outcome: r.outcome } },
        el("td", { class: "nowrap" }, timeEl(r.due_at)), el("td", { class: "outcome" }, OUTCOMES[r.outcome] || r.outcome),
        el("td", { class: "details" }, r.detail || ""), el("td", { class: "nowrap" }, r.decided_at ? timeEl(r.decided_at) : "—")))))
      : el("p", { class: "muted" }, "No runs yet.");
    return el("details", { class: "runs" }, el("summary", {}, summary), body);
  }

  scheduleForm(box, s, redraw) {
    const v = s || { days: [1, 2, 3, 4, 5], time_zone: this.defaultZone(), mode: 0, expires_in_s: 300, enabled: true };
    const fields = [
      this.partitionField(v.partition),
      clockField("at_time", "Arm at (local time)", v.at_time),
      new DaysField("days", "On days", v.days),
      zoneField(v.time_zone),
      new Field({ name: "mode", label: "Arming mode", type: "select", numeric: true, value: v.mode,
                  options: MODES.map(([n, t]) => [String(n), t]) }),
      new Field({ name: "expires_in_s", label: "Give up after (seconds)", type: "number", integer: true, required: true,
                  min: 5, max: 3600, value: v.expires_in_s }),
      new Field({ name: "force_on_violation", label: "On a violated zone, retry once with force", type: "checkbox",
                  value: v.force_on_violation }),
      new Field({ name: "enabled", label: "Enabled", type: "checkbox", value: v.enabled }),
    ];
    const form = this.formBox(box, {
      id: "schedule-form", title: "Add schedule", fields, current: s, after: redraw,
      create: async (values, headers) => {
        await API.post(`/api/v1/panels/${this.panel.id}/auto-arm`, values, headers);
        this.toast(`Auto-arm of ${this.partitionName(values.partition)} at ${values.at_time} added`, "info");
      },
      update: async (body) => {
        await API.patch(`/api/v1/auto-arm/${s.id}`, body);
        this.toast("Schedule saved", "info");
      },
    });
    if (s) form.field("at_time").input.focus();
  }

  // ---------- open/close supervision

  async drawSupervision(card) {
    const id = this.panel.id;
    let list;
    try { list = await API.get(`/api/v1/panels/${id}/supervision`); } catch (e) {
      card.replaceChildren(el("h3", {}, "Open/close supervision"), el("p", { class: "error" }, e.message));
      return;
    }
    const formBox = el("div", { class: "form-box" });
    const redraw = () => this.drawSupervision(card);
    const rows = list.map((v) => el("tr", { dataset: { supervision: v.id, version: v.version } },
      el("td", {}, this.partitionName(v.partition)), el("td", { class: "days" }, daysText(v.days)),
      el("td", { class: "open-window" }, `${v.open_from}–${v.open_until}`), el("td", { class: "close-by" }, v.close_by),
      el("td", {}, v.time_zone), el("td", { class: "enabled" }, yesNo(v.enabled)),
      this.editable ? el("td", { class: "row-actions" },
        el("button", { type: "button", class: "edit", "aria-label": `Edit the supervision of ${this.partitionName(v.partition)}`,
                       onclick: () => this.supervisionForm(formBox, v, redraw) }, "Edit"),
        el("button", { type: "button", class: "danger delete", "aria-label": `Delete the supervision of ${this.partitionName(v.partition)}`,
                       onclick: () => this.remove(`Stop supervising the opening and closing of ${this.partitionName(v.partition)}? ` +
                         "The alarms it raised stay.", "Stop supervising", `/api/v1/supervision/${v.id}`, "Supervision deleted",
                       redraw) }, "Delete…")) : null));
    card.replaceChildren(...present(el("h3", {}, "Open/close supervision"),
      el("p", { class: "muted" }, "On its days the partition should be disarmed (opened) within the open window and " +
        "armed (closed) by the deadline; otherwise an OPEN_CLOSE alarm is raised."),
      grid(`supervision-${id}`, ["Partition", "Days", "Open window", "Close by", "Time zone", "Enabled",
                                 ...(this.editable ? [""] : [])], rows, "No partition is supervised."),
      this.editable ? formBox : null));
    if (this.editable) this.supervisionForm(formBox, null, redraw);
  }

  supervisionForm(box, s, redraw) {
    const v = s || { days: [1, 2, 3, 4, 5], time_zone: this.defaultZone(), enabled: true };
    const fields = [
      // Fixed once supervised: the PATCH cannot move it to another partition.
      this.partitionField(v.partition, !!s),
      new DaysField("days", "On days", v.days),
      zoneField(v.time_zone),
      clockField("open_from", "Open window from", v.open_from),
      clockField("open_until", "Open window until", v.open_until),
      clockField("close_by", "Armed by", v.close_by),
      new Field({ name: "enabled", label: "Enabled", type: "checkbox", value: v.enabled }),
    ];
    const form = this.formBox(box, {
      id: "supervision-form", title: "Add supervision", fields, current: s, after: redraw,
      errorFields: { partition_supervision_panel_id_partition_key: "partition", partition_supervision_window: "close_by" },
      create: async (values, headers) => {
        await API.post(`/api/v1/panels/${this.panel.id}/supervision`, values, headers);
        this.toast(`${this.partitionName(values.partition)} supervised`, "info");
      },
      update: async (body) => {
        await API.patch(`/api/v1/supervision/${s.id}`, body);
        this.toast("Supervision saved", "info");
      },
    });
    if (s) form.field("open_from").input.focus();
  }

  // ---------- stored user codes (panels.command only)

  async drawCodes(card) {
    if (!this.editable) { card.replaceChildren(); card.hidden = true; return; }
    const id = this.panel.id;
    let codes;
    let people = new Map();
    try {
      [codes, people] = await Promise.all([API.get(`/api/v1/panels/${id}/user-codes`), actorNames(this.me)]);
    } catch (e) {
      card.replaceChildren(el("h3", {}, "Stored user codes"), el("p", { class: "error" }, e.message));
      return;
    }
    const redraw = () => this.drawCodes(card);
    const where = (n) => (n === 0 ? "Whole panel" : this.partitionName(n));
    const rows = codes.map((c) => el("tr", { dataset: { partition: c.partition } },
      el("td", {}, where(c.partition)), el("td", { class: "set-by" }, people.get(c.updated_by) || c.updated_by),
      el("td", { class: "nowrap" }, timeEl(c.updated_at)),
      el("td", { class: "row-actions" },
        el("button", { type: "button", class: "replace", "aria-label": `Replace the code of ${where(c.partition)}`,
                       onclick: () => this.openCodeDialog(c.partition, redraw) }, "Replace…"),
        el("button", { type: "button", class: "danger delete", "aria-label": `Remove the code of ${where(c.partition)}`,
                       onclick: () => this.remove(`Remove the stored user code of ${where(c.partition)} on panel #${id}? ` +
                         "Commands and auto-arm then need a typed code.", "Remove code",
                       `/api/v1/panels/${id}/user-codes/${c.partition}`, "Code removed", redraw) }, "Remove…"))));
    const add = el("button", { type: "button", id: "user-code-add", onclick: () => this.openCodeDialog(null, redraw) }, "Store a code…");
    card.hidden = false;
    card.replaceChildren(el("h3", {}, "Stored user codes"),
      el("p", { class: "muted" }, "Used by commands given without a typed code and by auto-arm. Kept encrypted; " +
        "never shown again. A partition's code comes before the whole panel's."),
      grid(`user-codes-${id}`, ["Where", "Set by", "When", ""], rows, "No code is stored."),
      el("div", { class: "actions" }, add));
  }

  // The dialog that stores a code for `partition` (null: chosen in it). The code lives only in its
  // input, wiped when the dialog closes however it closes.
  openCodeDialog(partition, after) {
    this.closeCodeDialog();
    const options = [["0", "Whole panel"], ...(this.panel.partitions || []).map((p) => [String(p.number), this.partitionName(p.number)])];
    if (partition && !options.some(([n]) => Number(n) === partition)) options.push([String(partition), this.partitionName(partition)]);
    const where = new Field({ name: "partition", label: "For", type: "select", numeric: true, required: true,
                              options, value: partition ?? 0, disabled: partition !== null });
    const code = new Field({ name: "code", label: "User code", type: "password", required: true, pattern: CODE,
                             patternMessage: "4 to 8 digits", autocomplete: "off" });
    code.input.setAttribute("inputmode", "numeric");
    const cancel = el("button", { type: "button", class: "cancel" }, "Cancel");
    let dialog = null;
    const form = new Form([where, code], {
      submitLabel: partition === null ? "Store code" : "Replace code", extra: [cancel],
      // No Idempotency-Key: the hub refuses one here, as the body is the code.
      onSubmit: async (values) => {
        const n = partition ?? values.partition;
        await API.put(`/api/v1/panels/${this.panel.id}/user-codes/${n}`, { code: values.code });
        dialog.close();
        this.toast(`Code stored for ${n === 0 ? "the whole panel" : this.partitionName(n)}`, "info");
        await after();
      },
    });
    form.element.id = "user-code-form";
    const heading = el("h3", { id: "user-code-title" },
      partition === null ? `Store a user code — panel #${this.panel.id}` : `Replace the code of ${partition === 0 ? "the whole panel" : this.partitionName(partition)}`);
    dialog = el("dialog", { id: "user-code-dialog", "aria-labelledby": heading.id }, heading, form.element);
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      code.input.value = "";
      dialog.remove();
      if (this.codeDialog === dialog) this.codeDialog = null;
    });
    document.body.append(dialog);
    this.codeDialog = dialog;
    dialog.showModal();
    (partition === null ? where : code).input.focus();
  }

  // Close the code dialog if it is open (wiping its input): the page is left.
  closeCodeDialog() { if (this.codeDialog) this.codeDialog.close(); }
}

// Read-only schedules and supervision of each of `panels` (the Objects page), with a link to the
// panel's administration for whoever may change them.
export async function drawObjectSchedules(box, panels, { me, toast }) {
  if (!panels || !panels.length) { box.replaceChildren(el("p", { class: "muted" }, "No panels")); return; }
  const blocks = panels.map((p) => {
    const autoArm = el("div", { class: "schedule-part" });
    const supervision = el("div", { class: "schedule-part" });
    const edit = mayCommand(me) ? el("a", { href: `#/admin-panel/${p.id}`, class: "edit-schedules" }, "Change them on the panel's page") : null;
    const block = el("div", { class: "panel-schedules", dataset: { panel: p.id } },
      el("h4", {}, `Panel #${p.id} `, edit), autoArm, supervision);
    API.get(`/api/v1/panels/${p.id}`).catch(() => p).then((panel) => {
      const view = new PanelSchedules({ panel, me, toast, editable: false });
      view.drawAutoArm(autoArm);
      view.drawSupervision(supervision);
    });
    return block;
  });
  box.replaceChildren(...blocks);
}
