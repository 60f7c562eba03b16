// The alarm's dialogs that need more than a note: resolve (how it ended, from the hub's fixed
// list, and a note) and a supervisor's take-over or reassignment (a reason, and to whom). Fields
// are labelled (forms.js) and the hub's refusals show beside the field they concern.
import * as API from "./api.js";
import { Field, Form } from "./forms.js";
import { el, holderName, personName } from "./queue.js";

const WORKING_ROLES = new Set(["OPERATOR", "MASTER"]);  // the roles holding alarms.work
const terms = new Map();  // meta path → its [{code, label}], read once

async function vocabulary(path) {
  if (!terms.has(path)) terms.set(path, await API.get(path));
  return terms.get(path);
}

const resolutions = () => vocabulary("/api/v1/meta/resolutions");
export const callOutcomes = () => vocabulary("/api/v1/meta/call-outcomes");

// A modal dialog around `form` (a forms.js Form), titled `title`; it removes itself once closed.
function modal(id, title, form, cancel) {
  const heading = el("h3", { id: `${id}-title` }, title);
  const dialog = el("dialog", { id, "aria-labelledby": heading.id }, heading, form.element);
  cancel.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

// A version conflict is the caller's to handle (refresh, say so); anything else is the form's.
async function sending(dialog, request, { onDone, onConflict }) {
  try {
    const row = await request();
    dialog.close();
    onDone(row);
  } catch (e) {
    if (e.status !== 409) throw e;
    dialog.close();
    await onConflict(e);
  }
}

// Ask how alarm `a` ended and resolve it at the version `current()` holds. `onDone(row)` gets the
// resolved alarm; `onConflict(err)` a 409.
export async function resolveDialog(a, current, handlers) {
  const codes = await resolutions();
  const resolution = new Field({ name: "resolution", label: "How did it end?", type: "select", required: true,
                                 options: [["", "Choose…"], ...codes.map((c) => [c.code, c.label])] });
  const note = new Field({ name: "note", label: "Note (optional)", type: "textarea", maxLength: 4000, rows: 3 });
  const cancel = el("button", { type: "button", class: "cancel" }, "Cancel");
  let dialog = null;
  const form = new Form([resolution, note], {
    submitLabel: "Resolve", extra: [cancel],
    onSubmit: (values, headers) => sending(dialog, () => API.post(`/api/v1/alarms/${a.id}/resolve`, {
      version: current().version, resolution: values.resolution,
      ...(values.note.trim() ? { note: values.note.trim() } : {}) }, headers), handlers),
  });
  form.element.id = "resolve-form";
  resolution.input.addEventListener("change", () => resolution.setError(""));  // the refusal no longer applies
  dialog = modal("resolve-dialog", `Resolve ${a.alarm_type} — ${a.object_name || a.source}`, form, cancel);
  resolution.input.focus();
}

// The people a bundle may be handed to: active users whose role works alarms, except its holder
// and `me` (who is offered as "Me"); [] when `me` may not list users.
async function assignees(a, me) {
  if (!me.permissions.includes("users.manage")) return [];
  const users = await API.get("/api/v1/users");
  return users.filter((u) => u.active && WORKING_ROLES.has(u.role) && `user:${u.id}` !== a.claimed_by && u.id !== me.id)
    .sort((x, y) => (x.display_name || x.email).localeCompare(y.display_name || y.email));
}

// Whether `me` has anyone to give `a` to: themselves (when they work alarms and do not hold it),
// or another person (when they may list users).
export function canTakeOver(a, me) {
  return !!me && me.canSupervise && ["CLAIMING", "IN_PROGRESS", "ACK"].includes(a.status) &&
    ((me.canWork && a.claimed_by !== me.actor) || me.permissions.includes("users.manage"));
}

// A supervisor takes `a` over, or gives it to another operator, with a reason (audited by the hub).
export async function takeOverDialog(a, me, current, handlers) {
  const others = await assignees(a, me);
  const self = me.canWork && a.claimed_by !== me.actor;
  const options = [...(self ? [["", `Me (${me.display_name || me.email})`]] : []),
                   ...(self ? [] : [["", "Choose…"]]),
                   ...others.map((u) => [String(u.id), `${u.display_name || u.email} (${u.role})`])];
  const to = new Field({ name: "to_user_id", label: "Give it to", type: "select", numeric: true, options,
                         required: !self });
  const reason = new Field({ name: "reason", label: "Reason (kept in the audit log)", type: "textarea", required: true,
                             maxLength: 1000, rows: 3 });
  const cancel = el("button", { type: "button", class: "cancel" }, "Cancel");
  let dialog = null;
  const form = new Form([to, reason], {
    submitLabel: "Take over", extra: [cancel],
    onSubmit: (values, headers) => sending(dialog, () => API.post(`/api/v1/alarms/${a.id}/take-over`, {
      version: current().version, reason: values.reason.trim(),
      ...(values.to_user_id ? { to_user_id: values.to_user_id } : {}) }, headers), handlers),
  });
  form.element.id = "take-over-form";
  to.input.addEventListener("change", () => { form.button.textContent = to.value ? "Reassign" : "Take over"; });
  form.button.textContent = self ? "Take over" : "Reassign";
  dialog = modal("take-over-dialog", `Take over ${a.alarm_type} — ${a.object_name || a.source}`, form, cancel);
  dialog.querySelector("h3").after(el("p", { class: "muted" }, `Held by ${holderName(a) || "nobody"}.`));
  reason.input.focus();
}

// What the live stream's take-over means to `me`, as a sentence; null when it is not about them.
export function takeOverNotice(a, move, me) {
  const mine = (who) => !!who && who.id === me.id;
  if (!move || mine(move.by)) return null;
  const what = `Alarm #${a.id} (${a.alarm_type} — ${a.object_name || a.source})`;
  const reason = move.reason ? `: ${move.reason}` : "";
  if (mine(move.previous)) {
    const to = move.to && move.to.id !== move.by.id ? ` and given to ${personName(move.to)}` : "";
    return `${what} was taken over by ${personName(move.by)}${to}${reason}`;
  }
  if (mine(move.to)) return `${what} was given to you by ${personName(move.by)}${reason}`;
  return null;
}
