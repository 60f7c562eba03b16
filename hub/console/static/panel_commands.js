// Panel commands from the console (issue 13): the buttons' actions, the confirmation dialog that
// names the site and the element, the panel's recent commands (REST and the live stream's
// `command.updated`), and what an open command means for the element it names (ARMING while an
// arm is on its way). The user code typed in the dialog lives only in its input while the dialog
// is open: it is sent inside the one request and never stored by the console.
import * as API from "./api.js";
import { Field, Form } from "./forms.js";
import { el, fields, timeEl } from "./queue.js";

export const COMMAND_PERMISSION = "panels.command";
const LIST_LIMIT = 20;
// How far a command has come; a message never moves one back (a late REST answer after the
// stream's result, a replay after a reconnect). Every settled status ranks last: an edge's late
// result may still replace a TIMEOUT the hub set.
const RANK = { PENDING: 0, SENT: 1 };
const rank = (c) => RANK[c.status] ?? 2;
export const isOpen = (c) => c.status === "PENDING" || c.status === "SENT";

// Per command type: the element it acts on, its button, and the verb of its sentence.
export const ACTIONS = {
  arm: { element: "partition", button: "Arm", verb: "Arm" },
  disarm: { element: "partition", button: "Disarm", verb: "Disarm" },
  clear_alarm: { element: "partition", button: "Clear alarm", verb: "Clear the alarm of" },
  outputs_on: { element: "output", button: "On", verb: "Switch on" },
  outputs_off: { element: "output", button: "Off", verb: "Switch off" },
  bypass: { element: "zone", button: "Bypass", verb: "Bypass" },
  unbypass: { element: "zone", button: "Unbypass", verb: "Stop bypassing" },
};
export const ELEMENT_ACTIONS = {
  partition: ["arm", "disarm", "clear_alarm"], zone: ["bypass", "unbypass"], output: ["outputs_on", "outputs_off"],
};
const ITEMS = { partition: "partitions", zone: "zones", output: "outputs" };
const MODES = [[0, "Mode 0 (full)"], [1, "Mode 1"], [2, "Mode 2"], [3, "Mode 3"]];
// A failed outcome in words, for the notice.
const FAILED = { NACK: "was refused", TIMEOUT: "got no answer in time", EXPIRED: "expired before it was carried out" };
const CODE = /^\d{4,8}$/;

// A UUID v4 from the CSPRNG (crypto.randomUUID exists only in secure contexts).
function uuid() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// "Arm Partition 1 Parter, mode 0, forced"; `nameOf(element, number)` names an element.
export function describe(c, nameOf) {
  const action = ACTIONS[c.type];
  if (!action) return c.type;
  const items = (c[ITEMS[action.element]] || []).map((n) => nameOf(action.element, n)).join(", ");
  const arm = c.type === "arm" ? `, mode ${c.mode ?? 0}${c.force ? ", forced" : ""}` : "";
  return `${action.verb} ${items}${arm}`;
}

// The commands of the panels on screen, merged from REST and the live stream by how far each has come.
export class CommandBook {
  constructor() { this.byPanel = new Map(); }  // panel id → Map(command id → command)

  // Forget every panel but `ids` (those on screen now).
  keep(ids) {
    for (const id of [...this.byPanel.keys()]) if (!ids.has(id)) this.byPanel.delete(id);
  }

  // What is known of command `c` (by its panel and id), or undefined.
  get(c) { return (this.byPanel.get(c.panel_id) || new Map()).get(c.id); }

  // Merge `c`; false when it says nothing new.
  put(c) {
    if (!this.byPanel.has(c.panel_id)) this.byPanel.set(c.panel_id, new Map());
    const known = this.byPanel.get(c.panel_id);
    const old = known.get(c.id);
    if (old && (rank(c) < rank(old) || (old.status === c.status && old.result_at === c.result_at))) return false;
    known.set(c.id, c);
    return true;
  }

  // The panel's recent commands and every open one (an open one may be older than the recent
  // page), for the caller to merge: read on showing the panel and after the live stream reconnects.
  async fetch(panelId) {
    const base = `/api/v1/panels/${panelId}/commands`;
    const pages = await Promise.all([`${base}?limit=${LIST_LIMIT}`, `${base}?status=SENT`, `${base}?status=PENDING`]
      .map((path) => API.get(path)));
    if (!this.byPanel.has(panelId)) this.byPanel.set(panelId, new Map());
    return pages.flatMap((page) => page.items);
  }

  // Newest first, at most LIST_LIMIT.
  recent(panelId) {
    return [...(this.byPanel.get(panelId) || new Map()).values()]
      .sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at)).slice(0, LIST_LIMIT);
  }

  // The open commands naming `element` `number` of the panel, oldest first.
  openFor(panelId, element, number) {
    return [...(this.byPanel.get(panelId) || new Map()).values()]
      .filter((c) => isOpen(c) && ACTIONS[c.type] && ACTIONS[c.type].element === element &&
              (c[ITEMS[element]] || []).includes(number))
      .sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at));
  }
}

// The panel's recent commands as a table: when, who, what, why, how it ended.
export function commandTable(panelId, commands, nameOf) {
  if (!commands.length) return el("p", { class: "muted command-empty" }, "No commands yet");
  const status = (c) => el("td", { class: "command-status", dataset: { status: c.status } }, c.status,
    c.late ? " (late)" : "", c.result_at ? el("span", { class: "muted" }, " ", timeEl(c.result_at, { part: "time" })) : "");
  return el("table", { class: "grid small command-list", id: `commands-${panelId}` },
    el("thead", {}, el("tr", {}, ...["When", "Who", "Command", "Reason", "Status", "Result"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...commands.map((c) => el("tr", { dataset: { id: c.id, status: c.status } },
      el("td", { class: "nowrap" }, timeEl(c.created_at)),
      el("td", {}, c.requested_name || c.requested_by, c.source === "AUTO_ARM" ? " (auto-arm)" : ""),
      el("td", {}, describe(c, nameOf)),
      el("td", {}, c.reason),
      status(c),
      el("td", { class: "command-result" }, c.result_reason || "")))));
}

// What a settled command means to the reader, or null when it needs no word: a failure always
// (a notice that stays), a success only to whoever gave it (a toast).
export function outcomeText(c, site, nameOf) {
  const what = `${describe(c, nameOf)} at ${site}`;
  if (FAILED[c.status]) return `${what} ${FAILED[c.status]}${c.result_reason ? `: ${c.result_reason}` : ""}`;
  if (c.status === "ACK") return `${what}: done${c.late ? " (after the hub had stopped waiting)" : ""}`;
  return null;
}

// The hub's refusal in words the person at the dialog can act on.
function explained(err, type) {
  const d = err.details || {};
  if (err.code === "user_code_required" && d.field === "user_code") {
    const where = ACTIONS[type].element === "partition" ? "this partition" : "this panel";
    err.message = `No code is stored for ${where}: type the user code`;
  } else if (err.status === 0) {
    err.message = "The hub cannot be reached: press the button again to retry (the command is given once)";
  } else if (err.status === 403) {
    err.message = "You may not give panel commands";
  } else if (err.status === 404) {
    err.message = "This panel no longer exists";
  }
  return err;
}

// The confirmation for `type` on `number` of `panel` at `site`: a reason (required), the user code
// (optional: the stored one otherwise), for arm the mode and force. `onDone(command)` gets the 202's command.
export function commandDialog({ type, panel, site, number, nameOf, onDone }) {
  const action = ACTIONS[type];
  const target = nameOf(action.element, number);
  const inputs = [];
  if (type === "arm") {
    inputs.push(new Field({ name: "mode", label: "Arming mode", type: "select", numeric: true, value: 0,
                            options: MODES.map(([v, t]) => [String(v), t]) }));
    inputs.push(new Field({ name: "force", label: "Force: arm even if a zone is violated", type: "checkbox" }));
  }
  const reason = new Field({ name: "reason", label: "Reason (kept with the command and in the audit log)",
                             type: "textarea", required: true, maxLength: 500, rows: 2 });
  const code = new Field({ name: "user_code", label: "User code", type: "password", pattern: CODE,
                           patternMessage: "4 to 8 digits", hint: "Leave empty to use the stored code." });
  code.input.setAttribute("inputmode", "numeric");
  inputs.push(reason, code);
  const cancel = el("button", { type: "button", class: "cancel" }, "Cancel");
  // One key per submission; kept when the answer was lost (or the first try is still running),
  // so pressing again cannot give the command twice.
  let key = uuid();
  let dialog = null;
  const form = new Form(inputs, {
    submitLabel: action.button, extra: [cancel],
    onSubmit: async (values) => {
      const body = { type, [ITEMS[action.element]]: [number], reason: values.reason.trim() };
      if (type === "arm") Object.assign(body, { mode: values.mode ?? 0, force: values.force });
      if (values.user_code) body.user_code = values.user_code;
      let command;
      try {
        command = await API.post(`/api/v1/panels/${panel.id}/commands`, body, { "Idempotency-Key": key });
      } catch (err) {
        if (err.status !== 0 && err.code !== "idempotency_in_flight") key = uuid();
        throw explained(err, type);
      }
      dialog.close();
      onDone(command);
    },
  });
  form.element.id = "command-form";
  const heading = el("h3", { id: "command-dialog-title" }, `${action.verb} ${target} — ${site}`);
  const facts = el("dl", { class: "fields command-facts" });
  fields(facts, [["Site", site], ["Panel", `#${panel.id} ${panel.model || ""} (${panel.edge_id}/${panel.source})`],
                 [action.element[0].toUpperCase() + action.element.slice(1), target]]);
  dialog = el("dialog", { id: "command-dialog", "aria-labelledby": heading.id, dataset: { type } }, heading, facts,
              form.element);
  cancel.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => { code.input.value = ""; dialog.remove(); });
  document.body.append(dialog);
  dialog.showModal();
  reason.input.focus();
  return dialog;
}
