// Form fields for the administration pages. Every field has a <label> (or, in a table row, an
// aria-label) and an error slot beside it; a form checks the API's own rules before it sends, and
// shows the API's refusals (`details.field`, a named constraint, or the error code) next to the
// field they concern, anything else under the form. Values reach the DOM as text only (el()).
import { el } from "./queue.js";

let serial = 0;
const ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

// Random text from the browser's CSPRNG (never Math.random): Idempotency-Keys, temporary passwords.
export function randomText(length) {
  let out = "";
  while (out.length < length) {
    for (const b of crypto.getRandomValues(new Uint8Array(length * 2))) {
      // Bytes past the last whole multiple of the alphabet would favour its first letters.
      if (b < 256 - (256 % ALPHABET.length) && out.length < length) out += ALPHABET[b % ALPHABET.length];
    }
  }
  return out;
}

// The field an API error is about: its `details.field` path's first step, else a constraint or
// code this form maps to a field.
export function errorField(err, map = {}) {
  const d = err.details || {};
  if (typeof d.field === "string" && d.field) return d.field.split(/[.[]/)[0];
  if (d.constraint && map[d.constraint]) return map[d.constraint];
  return map[err.code] || null;
}

// A validator's reason as a person reads it: without its JSON path and code quotes.
export const plainReason = (reason) => reason.replace(/ - at `\$[^`]*`$/, "").replace(/`/g, "");

// What to say about an API error: the validator's reason, else the message.
export function errorText(err) {
  const d = err.details || {};
  return typeof d.reason === "string" && d.reason ? plainReason(d.reason) : err.message;
}

function makeInput(spec, id) {
  const common = { id, name: spec.name, disabled: spec.disabled, autocomplete: spec.autocomplete || "off",
                   "aria-required": spec.required ? "true" : undefined };
  if (spec.type === "select" || spec.type === "multiselect") {
    const select = el("select", { ...common, multiple: spec.type === "multiselect", size: spec.size },
      ...(spec.options || []).map(([value, text]) => el("option", { value }, text)));
    return select;
  }
  if (spec.type === "textarea") return el("textarea", { ...common, rows: spec.rows || 3, maxlength: spec.maxLength });
  return el("input", {
    ...common, type: spec.type || "text", maxlength: spec.maxLength, min: spec.min, max: spec.max,
    step: spec.type === "number" ? (spec.integer ? 1 : "any") : undefined, accept: spec.accept,
    placeholder: spec.placeholder,
  });
}

// One labelled input with its error slot. spec: {name, label, type (text | number | password |
// email | textarea | select | multiselect | checkbox | file), value, options [[value, text]],
// numeric (select values are numbers), required, minLength, maxLength, min, max, integer,
// pattern + patternMessage, check(value) → message, hint, disabled, compact (in a table row)}.
export class Field {
  constructor(spec) {
    this.spec = spec;
    const id = `f-${spec.name}-${++serial}`;
    this.input = makeInput(spec, id);
    this.error = el("span", { class: "error field-error", id: `${id}-error`, role: "alert" });
    this.input.setAttribute("aria-describedby", this.error.id);
    if (spec.compact) {
      this.input.setAttribute("aria-label", spec.label);
      this.element = el("span", { class: `field compact field-${spec.type || "text"}` }, this.input, this.error);
    } else if (spec.type === "checkbox") {
      this.element = el("div", { class: "field field-checkbox" },
        el("label", { for: id, class: "inline" }, this.input, ` ${spec.label}`), this.error);
    } else {
      this.element = el("div", { class: `field field-${spec.type || "text"}` }, el("label", { for: id }, spec.label), this.input,
        spec.hint ? el("small", { class: "muted hint" }, spec.hint) : null, this.error);
    }
    if (spec.value !== undefined) this.value = spec.value;
  }

  get value() {
    const { type, numeric } = this.spec;
    const num = (v) => (v === "" ? null : Number(v));
    if (type === "checkbox") return this.input.checked;
    if (type === "file") return this.input.files[0] || null;
    if (type === "multiselect") return [...this.input.selectedOptions].map((o) => (numeric ? Number(o.value) : o.value));
    if (type === "number") return num(this.input.value.trim());
    if (type === "select") return numeric ? num(this.input.value) : this.input.value;
    if (type === "password" || type === "textarea") return this.input.value;
    return this.input.value.trim();
  }

  set value(v) {
    const { type } = this.spec;
    if (type === "checkbox") this.input.checked = !!v;
    else if (type === "multiselect") {
      const wanted = new Set((v || []).map(String));
      for (const o of this.input.options) o.selected = wanted.has(o.value);
    } else if (type !== "file") this.input.value = v === null || v === undefined ? "" : String(v);
  }

  // The API's rule for this field broken by the current value, as a sentence; "" when none is.
  problem() {
    const s = this.spec;
    if (s.disabled) return "";
    const v = this.value;
    const raw = typeof this.input.value === "string" ? this.input.value.trim() : "";
    if (s.type === "number" && raw !== "" && !Number.isFinite(v)) return "Give a number";
    const empty = v === null || v === "" || (Array.isArray(v) && !v.length);
    if (empty) return s.required ? (s.type === "select" ? "Choose one" : s.type === "file" ? "Choose a file" : "Required") : "";
    if (typeof v === "string") {
      if (s.minLength && v.length < s.minLength) return `At least ${s.minLength} characters`;
      if (s.maxLength && v.length > s.maxLength) return `At most ${s.maxLength} characters`;
      if (s.pattern && !s.pattern.test(v)) return s.patternMessage || "Not in the expected form";
    }
    if (typeof v === "number") {
      if (s.integer && !Number.isInteger(v)) return "Give a whole number";
      if ((s.min !== undefined && v < s.min) || (s.max !== undefined && v > s.max)) return `Between ${s.min} and ${s.max}`;
    }
    return s.check ? s.check(v) || "" : "";
  }

  setError(message) {
    this.error.textContent = message || "";
    if (message) this.input.setAttribute("aria-invalid", "true");
    else this.input.removeAttribute("aria-invalid");
  }
}

const newKey = () => randomText(32);

// Fields that are sent together. A stacked form is a <form>; a row form (`row: true`) is a table
// row whose cells hold `lead` (e.g. a number shown, not edited), the fields, the button, `extra`
// buttons and the form's error. onSubmit(values, headers)
// sends; `headers` carries an Idempotency-Key that is kept only across network failures, so a
// retry after a lost answer cannot create a second record, and a corrected form is a new request.
// `errorFields` maps constraint names and error codes to fields; `onStale` runs on a version 409.
export class Form {
  constructor(fields, { onSubmit, submitLabel = "Save", errorFields = {}, onStale = null, row = false, lead = [],
                        extra = [] }) {
    this.fields = new Map(fields.map((f) => [f.spec.name, f]));
    this.onSubmit = onSubmit;
    this.errorFields = errorFields;
    this.onStale = onStale;
    this.key = newKey();
    this.error = el("span", { class: "error form-error", role: "alert" });
    this.button = el("button", { type: row ? "button" : "submit", class: "submit" }, submitLabel);
    if (row) {
      this.button.addEventListener("click", () => this.submit());
      this.element = el("tr", { class: "row-form" }, ...lead.map((node) => el("td", {}, node)),
        ...fields.map((f) => el("td", {}, f.element)),
        el("td", { class: "row-actions" }, this.button, ...extra, this.error));
      this.element.addEventListener("keydown", (e) => {
        if (e.key === "Enter" && e.target.tagName === "INPUT") { e.preventDefault(); this.submit(); }
      });
    } else {
      this.element = el("form", { novalidate: true, class: "admin-form" }, ...fields.map((f) => f.element),
        el("p", { class: "form-error-line" }, this.error), el("div", { class: "actions" }, this.button, ...extra));
      this.element.addEventListener("submit", (e) => { e.preventDefault(); this.submit(); });
    }
  }

  field(name) { return this.fields.get(name); }

  values() {
    return Object.fromEntries([...this.fields].filter(([, f]) => !f.spec.disabled).map(([name, f]) => [name, f.value]));
  }

  clearErrors() {
    for (const f of this.fields.values()) f.setError("");
    this.error.textContent = "";
  }

  // Every field's rule checked at once, so all problems show together; true when none broke one.
  validate() {
    let ok = true;
    for (const f of this.fields.values()) {
      const problem = f.problem();
      f.setError(problem);
      if (problem) ok = false;
    }
    return ok;
  }

  showError(err) {
    const name = errorField(err, this.errorFields);
    const f = name && this.fields.get(name);
    if (f && !f.spec.disabled) f.setError(errorText(err));
    else this.error.textContent = err.message + (name ? ` (${name})` : "");
  }

  async submit() {
    this.clearErrors();
    if (!this.validate()) return false;
    this.button.disabled = true;
    try {
      await this.onSubmit(this.values(), { "Idempotency-Key": this.key });
      this.key = newKey();
      return true;
    } catch (err) {
      if (err.status !== 0) this.key = newKey();
      this.showError(err);
      if (err.status === 409 && err.details && err.details.current_version !== undefined && this.onStale) this.onStale();
      return false;
    } finally {
      this.button.disabled = false;
    }
  }
}

// JSON with object keys sorted: equal values give equal text whatever order their keys came in.
const canonical = (v) => JSON.stringify(v ?? null, (_k, x) =>
  (x && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort()) : x));

// Only the values that differ from `record` (what the user changed): an update names just those.
export function changed(values, record) {
  return Object.fromEntries(Object.entries(values).filter(([k, v]) => canonical(v) !== canonical(record[k])));
}

// A yes/no question in a modal dialog; resolves true only for the named action.
let confirmBox = null;
export function confirmAction(text, okLabel) {
  if (!confirmBox) {
    const ok = el("button", { type: "button", class: "danger", id: "confirm-ok" });
    const cancel = el("button", { type: "button", id: "confirm-cancel" }, "Cancel");
    confirmBox = el("dialog", { id: "confirm-dialog" }, el("p", { id: "confirm-text" }), el("div", { class: "actions" }, cancel, ok));
    ok.addEventListener("click", () => confirmBox.close("ok"));
    cancel.addEventListener("click", () => confirmBox.close("cancel"));
    document.body.append(confirmBox);
  }
  confirmBox.querySelector("#confirm-text").textContent = text;
  confirmBox.querySelector("#confirm-ok").textContent = okLabel;
  confirmBox.returnValue = "";
  return new Promise((resolve) => {
    confirmBox.addEventListener("close", () => resolve(confirmBox.returnValue === "ok"), { once: true });
    confirmBox.showModal();
  });
}

// A credential shown once (a temporary password): in `box` until Done is pressed or the page
// changes, with a copy button; never stored anywhere else.
export function showOnce(box, title, secret, note, toast) {
  const value = el("pre", { class: "token once-secret" }, secret);
  const copy = el("button", { type: "button", class: "copy-once" }, "Copy");
  copy.addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(secret); toast("Copied", "info"); } catch {
      const range = document.createRange();
      range.selectNodeContents(value);
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      toast("Selected: press Ctrl+C to copy", "warn");
    }
  });
  const done = el("button", { type: "button", class: "done-once" }, "Done");
  done.addEventListener("click", () => box.replaceChildren());
  box.replaceChildren(el("div", { class: "card once" }, el("h3", {}, title),
    el("p", { class: "warn" }, "Shown this once: copy it now and hand it over in person. It is not stored anywhere it can be read again."),
    value, el("p", { class: "muted" }, note), el("div", { class: "actions" }, copy, done)));
}
