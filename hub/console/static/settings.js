// The signed-in user's own settings: the time zone the console shows times in (an IANA name from
// the browser's list, or the hub's default). Saved with PATCH /api/v1/auth/me/settings; the hub
// checks the name against its own zone list and the refusal shows beside the field.
import * as API from "./api.js";
import { Field, Form } from "./forms.js";
import { el, timeEl } from "./queue.js";

// The IANA zones the browser knows, with `keep` (the current setting) even when it does not.
export function zoneNames(keep) {
  const names = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  return keep && !names.includes(keep) ? [keep, ...names] : names;
}

// Open the settings dialog for `me`; `onSaved(me)` gets the hub's answer (GET /auth/me's shape).
export function openSettings(me, onSaved) {
  const zone = new Field({
    name: "time_zone", label: "Time zone", type: "select",
    options: [["", `Hub default (${me.hub_time_zone})`], ...zoneNames(me.time_zone).map((z) => [z, z])],
    hint: "Times are shown in this zone; point at a time to see it in UTC.",
  });
  zone.value = me.time_zone || "";
  const cancel = el("button", { type: "button", class: "cancel" }, "Cancel");
  const heading = el("h3", { id: "settings-title" }, "Settings");
  const preview = el("p", { class: "muted", id: "settings-now" });
  let dialog = null;
  const form = new Form([zone], {
    submitLabel: "Save", extra: [cancel],
    onSubmit: async (values) => {
      const saved = await API.patch("/api/v1/auth/me/settings", { time_zone: values.time_zone || null });
      dialog.close();
      onSaved(saved);
    },
  });
  form.element.id = "settings-form";
  const showNow = () => preview.replaceChildren("Now: ",
    timeEl(Date.now(), { timeZone: zone.value || me.hub_time_zone }));
  zone.input.addEventListener("change", showNow);
  showNow();
  dialog = el("dialog", { id: "settings-dialog", "aria-labelledby": heading.id }, heading, form.element, preview);
  cancel.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  zone.input.focus();
}
