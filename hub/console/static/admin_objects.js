// Administration of objects (sites): the list with search; create, edit and deactivate (after a
// confirmation naming the object); on one object its contacts (the call list, in order, with
// when each may be called), the procedure per alarm type (ordered steps), its panels, its recorder
// secrets (added here, revealed on the Objects page as before) and its documents (uploaded,
// downloaded and deleted here). Contacts, procedures, secrets and documents are deleted after a
// confirmation naming them. Route: #/admin-objects[/<id>|/new].
import * as API from "./api.js";
import { el } from "./queue.js";
import { Field, Form, changed, confirmAction } from "./forms.js";
import { documentTable } from "./documents.js";

// hub/alarms/classify.py: the alarm types a procedure can be for.
export const ALARM_TYPES = ["BURGLARY", "TAMPER", "FIRE", "PANIC", "TROUBLE", "TEMPERATURE", "LINK", "ROBOT", "SYSTEM", "OPEN_CLOSE"];
const MAX_CALL_ORDER = 100;       // ContactIn.call_order
const MAX_STEPS_CHARS = 4000;     // ProcedureIn.steps
const MAX_TITLE_CHARS = 200;      // hub/api/documents_api.py MAX_TITLE
const DOCUMENT_TYPES = ".pdf,.png,.jpg,.jpeg,.webp";  // what hub/documents.py keeps
const STALE = "Data changed — refreshed";

const $ = (id) => document.getElementById(id);

// The object's fields with ObjectIn's rules.
function objectFields(o = {}) {
  return [
    new Field({ name: "name", label: "Name", required: true, maxLength: 200, value: o.name }),
    new Field({ name: "address", label: "Address", maxLength: 500, value: o.address }),
    new Field({ name: "type", label: "Type", required: true, maxLength: 50, value: o.type ?? "GENERIC" }),
    new Field({ name: "lat", label: "Latitude", type: "number", min: -90, max: 90, value: o.lat }),
    new Field({ name: "lon", label: "Longitude", type: "number", min: -180, max: 180, value: o.lon }),
  ];
}

// A contact's fields with ContactIn's rules (availability: when they may be called), labelled by their place `n` in the call list
// (none: the row that adds one).
function contactFields(c = {}, n = null) {
  const who = n ? `Contact ${n}` : "New contact";
  return [
    new Field({ name: "name", label: `${who} name`, compact: true, required: true, maxLength: 200, value: c.name }),
    new Field({ name: "role", label: `${who} role`, compact: true, maxLength: 100, value: c.role }),
    new Field({ name: "phone", label: `${who} phone`, compact: true, type: "tel", maxLength: 50, value: c.phone }),
    new Field({ name: "email", label: `${who} email`, compact: true, maxLength: 200, value: c.email }),
    new Field({ name: "availability", label: `${who} availability notes`, compact: true, maxLength: 500, value: c.availability,
                placeholder: "when they may be called" }),
  ];
}

// Steps are stored as one text, a numbered line each ("1. Call the owner"), which is also how
// the operator's alarm view shows them.
export function parseSteps(text) {
  return (text || "").split("\n").map((l) => l.trim()).filter(Boolean).map((l) => l.replace(/^\d+[.)]\s*/, ""));
}

export function joinSteps(steps) {
  return steps.map((s) => s.trim()).filter(Boolean).map((s, i) => `${i + 1}. ${s}`).join("\n");
}

const moveButton = (label, text, onclick) => el("button", { type: "button", class: "move", "aria-label": label, title: label, onclick }, text);

// Delete one of the object's records: asks `question` (naming it), DELETEs `path`, then `after()`
// redraws. A record already gone (404) is simply redrawn away.
async function confirmDelete(name, question, path, after, toast) {
  if (!await confirmAction(question, `Delete ${name}`)) return;
  try {
    await API.del(path);
    toast(`${name} deleted`, "info");
  } catch (e) {
    if (e.status !== 404) toast(e.message, "error");
  }
  await after();
}

const deleteButton = (name, question, path, after, toast) => el("button", {
  type: "button", class: "danger delete", "aria-label": `Delete ${name}`,
  onclick: () => confirmDelete(name, question, path, after, toast) }, "Delete…");

// An ordered list of steps, each its own labelled input with move up/down and remove; a field
// a Form can hold (value, problem, setError).
class StepsField {
  constructor(name, label, text) {
    this.spec = { name, label };
    this.steps = parseSteps(text);
    if (!this.steps.length) this.steps.push("");
    this.list = el("ol", { class: "steps" });
    this.error = el("span", { class: "error field-error", role: "alert" });
    const add = el("button", { type: "button", class: "add-step" }, "Add step");
    add.addEventListener("click", () => { this.sync(); this.steps.push(""); this.render(); this.list.lastChild.querySelector("input").focus(); });
    this.element = el("fieldset", { class: "field steps-field" }, el("legend", {}, label), this.list, add, this.error);
    this.render();
  }

  sync() { this.steps = [...this.list.querySelectorAll("input")].map((i) => i.value); }

  move(i, by) {
    this.sync();
    const j = i + by;
    if (j < 0 || j >= this.steps.length) return;
    [this.steps[i], this.steps[j]] = [this.steps[j], this.steps[i]];
    this.render();
  }

  render() {
    const last = this.steps.length - 1;
    this.list.replaceChildren(...this.steps.map((text, i) => {
      const n = i + 1;
      const input = el("input", { type: "text", class: "step", "aria-label": `${this.spec.label} step ${n}`, maxlength: MAX_STEPS_CHARS });
      input.value = text;
      return el("li", {}, input,
        moveButton(`Move step ${n} up`, "↑", () => this.move(i, -1)), moveButton(`Move step ${n} down`, "↓", () => this.move(i, 1)),
        moveButton(`Remove step ${n}`, "✕", () => { this.sync(); this.steps.splice(i, 1); if (!this.steps.length) this.steps.push(""); this.render(); }));
    }));
    this.list.querySelector("li:first-child button.move").disabled = true;
    this.list.children[last].querySelectorAll("button.move")[1].disabled = true;
  }

  get value() { this.sync(); return joinSteps(this.steps); }

  problem() {
    const v = this.value;
    if (!v) return "Give at least one step";
    return v.length > MAX_STEPS_CHARS ? `At most ${MAX_STEPS_CHARS} characters in all` : "";
  }

  setError(message) { this.error.textContent = message || ""; }
}

export class ObjectsAdmin {
  constructor({ toast }) {
    this.toast = toast;
    this.object = null;
    this.searchTimer = null;
    this.loading = 0;
    $("admin-object-search").addEventListener("input", () => {
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => this.loadList(), 200);
    });
    $("admin-object-new").addEventListener("click", () => { location.hash = "#/admin-objects/new"; });
  }

  show(parts) {
    this.loadList();
    if (parts[0] === "new") this.openNew();
    else if (parts[0]) this.open(Number(parts[0]));
    else { this.object = null; $("admin-object-pane").replaceChildren(el("p", { class: "muted" }, "Choose an object, or create one.")); }
  }

  async loadList() {
    const q = $("admin-object-search").value.trim();
    let page;
    try { page = await API.get(`/api/v1/objects?q=${encodeURIComponent(q)}&limit=500`); } catch (e) { this.toast(e.message, "error"); return; }
    $("admin-object-list").replaceChildren(...page.items.map((o) => el("tr", {
      class: `clickable${this.object && this.object.id === o.id ? " selected" : ""}${o.status === "CLOSED" ? " closed" : ""}`,
      dataset: { id: o.id }, onclick: () => { location.hash = `#/admin-objects/${o.id}`; } },
    el("td", {}, el("a", { href: `#/admin-objects/${o.id}` }, o.name)), el("td", {}, o.address), el("td", {}, o.type), el("td", {}, o.status))));
    $("admin-objects-empty").hidden = page.items.length > 0;
  }

  openNew() {
    this.object = null;
    const form = new Form(objectFields(), {
      submitLabel: "Create object",
      onSubmit: async (values, headers) => {
        const made = await API.post("/api/v1/objects", values, headers);
        this.toast(`Object ${made.name} created`, "info");
        location.hash = `#/admin-objects/${made.id}`;
      },
    });
    form.element.id = "object-form";
    $("admin-object-pane").replaceChildren(el("div", { class: "card" }, el("h3", {}, "New object"), form.element));
    form.field("name").input.focus();
  }

  // One object: each card is drawn on its own, so saving one keeps unsaved edits in the others.
  async open(id) {
    const n = ++this.loading;
    let o;
    try { o = await API.get(`/api/v1/objects/${id}`); } catch (e) { this.toast(e.message, "error"); return; }
    if (n !== this.loading) return;
    this.object = o;
    this.cards = Object.fromEntries(["object", "contacts", "procedures", "panels", "secrets", "documents"].map((k) =>
      [k, el("div", { class: "card", id: `admin-object-${k}` })]));
    $("admin-object-pane").replaceChildren(...Object.values(this.cards));
    for (const tr of document.querySelectorAll("#admin-object-list tr")) tr.classList.toggle("selected", Number(tr.dataset.id) === id);
    this.drawObject();
    this.drawContacts();
    this.drawProcedures();
    this.drawPanels();
    this.drawSecrets();
    this.drawDocuments();
  }

  // Read the object again and redraw the named cards (the header always: its version moved).
  async refresh(...cards) {
    try { this.object = await API.get(`/api/v1/objects/${this.object.id}`); } catch (e) { this.toast(e.message, "error"); return; }
    for (const card of new Set(["object", ...cards])) this[`draw${card[0].toUpperCase()}${card.slice(1)}`]();
  }

  stale(...cards) {
    this.toast(STALE, "warn");
    this.refresh(...cards);
  }

  drawObject() {
    const o = this.object;
    const deactivate = el("button", { type: "button", class: "danger", id: "object-deactivate", disabled: o.status === "CLOSED" },
      o.status === "CLOSED" ? "Deactivated" : "Deactivate…");
    deactivate.addEventListener("click", () => this.deactivate());
    const form = new Form(objectFields(o), {
      submitLabel: "Save object", extra: [deactivate], onStale: () => this.stale(),
      onSubmit: async (values) => {
        const diff = changed(values, o);
        if (!Object.keys(diff).length) { this.toast("Nothing changed", "info"); return; }
        await API.patch(`/api/v1/objects/${o.id}`, { version: o.version, ...diff });
        this.toast("Object saved", "info");
        await this.refresh();
        this.loadList();
      },
    });
    form.element.id = "object-form";
    this.cards.object.replaceChildren(el("h3", {}, `Object #${o.id} — ${o.status}`), form.element);
  }

  async deactivate() {
    const o = this.object;
    const ok = await confirmAction(`Deactivate ${o.name}? It stays in the history with its alarms, takes no new ` +
      "configuration, and cannot be reactivated from the console.", `Deactivate ${o.name}`);
    if (!ok) return;
    try {
      await API.post(`/api/v1/objects/${o.id}/deactivate`, { version: o.version });
      this.toast(`${o.name} deactivated`, "info");
    } catch (e) {
      this.toast(e.status === 409 ? STALE : e.message, e.status === 409 ? "warn" : "error");
    }
    await this.refresh();
    this.loadList();
  }

  // ---------- contacts: the call list

  sortedContacts() {
    return [...(this.object.contacts || [])].sort((a, b) => a.call_order - b.call_order || a.id - b.id);
  }

  drawContacts() {
    const contacts = this.sortedContacts();
    const rows = contacts.map((c, i) => {
      const up = moveButton(`Move ${c.name} up`, "↑", () => this.moveContact(i, -1));
      const down = moveButton(`Move ${c.name} down`, "↓", () => this.moveContact(i, 1));
      up.disabled = i === 0;
      down.disabled = i === contacts.length - 1;
      const remove = deleteButton(`contact ${c.name}`, `Delete the contact ${c.name} from ${this.object.name}'s call list? ` +
        "Calls already logged to them keep their name and number.", `/api/v1/contacts/${c.id}`, () => this.refresh("contacts"), this.toast);
      const form = new Form(contactFields(c, i + 1), {
        row: true, submitLabel: "Save", lead: [String(i + 1)], extra: [up, down, remove], onStale: () => this.stale("contacts"),
        onSubmit: async (values) => {
          const diff = changed(values, c);
          if (!Object.keys(diff).length) { this.toast("Nothing changed", "info"); return; }
          await API.patch(`/api/v1/contacts/${c.id}`, { version: c.version, ...diff });
          this.toast(`Contact ${values.name} saved`, "info");
          await this.refresh("contacts");
        },
      });
      form.element.dataset.contact = c.id;
      return form.element;
    });
    const next = contacts.length ? Math.max(...contacts.map((c) => c.call_order)) + 1 : 1;
    const add = new Form(contactFields(), {
      row: true, submitLabel: "Add contact", lead: [String(contacts.length + 1)],
      onSubmit: async (values, headers) => {
        if (next > MAX_CALL_ORDER) throw new API.ApiError(422, "invalid", `at most ${MAX_CALL_ORDER} contacts`, null);
        await API.post(`/api/v1/objects/${this.object.id}/contacts`, { ...values, call_order: next }, headers);
        this.toast(`Contact ${values.name} added`, "info");
        await this.refresh("contacts");
      },
    });
    add.element.id = "contact-new";
    this.cards.contacts.replaceChildren(el("h3", {}, "Contacts — call list, in order"),
      el("table", { class: "grid small edit-table", id: "contacts-table" },
        el("thead", {}, el("tr", {}, ...["#", "Name", "Role", "Phone", "Email", "Availability", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...rows, add.element)),
      el("p", { class: "muted" }, "The operator calls them top to bottom."));
  }

  // Renumber the call list 1..n in the new order; only contacts whose place changed are written.
  async moveContact(i, by) {
    const list = this.sortedContacts();
    const j = i + by;
    if (j < 0 || j >= list.length) return;
    [list[i], list[j]] = [list[j], list[i]];
    try {
      for (const [k, c] of list.entries()) {
        if (c.call_order !== k + 1) await API.patch(`/api/v1/contacts/${c.id}`, { version: c.version, call_order: k + 1 });
      }
    } catch (e) {
      this.toast(e.status === 409 ? STALE : e.message, e.status === 409 ? "warn" : "error");
    }
    await this.refresh("contacts");
  }

  // ---------- procedures per alarm type

  drawProcedures() {
    const procs = [...(this.object.procedures || [])].sort((a, b) => ALARM_TYPES.indexOf(a.alarm_type) - ALARM_TYPES.indexOf(b.alarm_type));
    const blocks = procs.map((p) => {
      const remove = deleteButton(`${p.alarm_type} procedure`, `Delete the ${p.alarm_type} procedure of ${this.object.name}? ` +
        "Alarms already worked keep the checklist they copied from it.", `/api/v1/procedures/${p.id}`,
        () => this.refresh("procedures"), this.toast);
      const form = new Form([new StepsField("steps", p.alarm_type, p.steps)], {
        submitLabel: `Save ${p.alarm_type} steps`, extra: [remove], onStale: () => this.stale("procedures"),
        onSubmit: async (values) => {
          if (values.steps === p.steps) { this.toast("Nothing changed", "info"); return; }
          await API.patch(`/api/v1/procedures/${p.id}`, { version: p.version, steps: values.steps });
          this.toast(`${p.alarm_type} procedure saved`, "info");
          await this.refresh("procedures");
        },
      });
      form.element.dataset.procedure = p.alarm_type;
      return form.element;
    });
    const free = ALARM_TYPES.filter((t) => !procs.some((p) => p.alarm_type === t));
    const blocksOrNone = blocks.length ? blocks : [el("p", { class: "muted" }, "No procedures yet.")];
    if (!free.length) {
      this.cards.procedures.replaceChildren(el("h3", {}, "Procedures per alarm type"), ...blocksOrNone);
      return;
    }
    const add = new Form([
      new Field({ name: "alarm_type", label: "Alarm type", type: "select", required: true,
                  options: [["", "— choose —"], ...free.map((t) => [t, t])] }),
      new StepsField("steps", "New procedure", ""),
    ], {
      submitLabel: "Add procedure", errorFields: { object_procedures_object_id_alarm_type_key: "alarm_type" },
      onSubmit: async (values, headers) => {
        await API.post(`/api/v1/objects/${this.object.id}/procedures`, values, headers);
        this.toast(`${values.alarm_type} procedure added`, "info");
        await this.refresh("procedures");
      },
    });
    add.element.id = "procedure-new";
    this.cards.procedures.replaceChildren(el("h3", {}, "Procedures per alarm type"), ...blocksOrNone,
      el("h4", {}, "Add a procedure"), add.element);
  }

  // ---------- panels (edited on their own page)

  drawPanels() {
    const o = this.object;
    const rows = (o.panels || []).map((p) => el("tr", { dataset: { panel: p.id } },
      el("td", {}, el("a", { href: `#/admin-panel/${p.id}` }, `Panel #${p.id}`)),
      el("td", { class: "mono" }, `${p.edge_id} / ${p.source}`), el("td", {}, p.model || "—"),
      el("td", {}, p.host ? `${p.host}${p.port ? `:${p.port}` : ""}` : "—"),
      el("td", {}, el("span", { class: "link", dataset: { link: p.link_status } }, p.link_status)),
      el("td", {}, p.has_integration_key ? "key set" : "no key")));
    const add = el("button", { type: "button", id: "panel-add" }, "Add panel");
    add.addEventListener("click", () => { location.hash = `#/admin-panel/new/${o.id}`; });
    this.cards.panels.replaceChildren(el("h3", {}, "Panels"),
      rows.length ? el("table", { class: "grid small" }, el("thead", {}, el("tr", {},
        ...["Panel", "Edge / source", "Model", "Address", "Link", "Integration key"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...rows)) : el("p", { class: "muted" }, "No panels yet."),
      el("div", { class: "actions" }, add));
  }

  // ---------- recorder and camera secrets: added here, never shown back

  async drawSecrets() {
    const o = this.object;
    let secrets = [];
    try { secrets = await API.get(`/api/v1/objects/${o.id}/secrets`); } catch (e) { this.toast(e.message, "error"); }
    const form = new Form([
      new Field({ name: "label", label: "Label (e.g. NVR front door)", required: true, maxLength: 200 }),
      new Field({ name: "username", label: "User name", maxLength: 200 }),
      new Field({ name: "secret", label: "Password", type: "password", required: true, maxLength: 500, autocomplete: "new-password" }),
    ], {
      submitLabel: "Add secret",
      // No Idempotency-Key: the hub refuses one here, as the body carries the password.
      onSubmit: async (values) => {
        await API.post(`/api/v1/objects/${o.id}/secrets`, values);
        this.toast(`Secret ${values.label} stored`, "info");
        await this.drawSecrets();
      },
    });
    form.element.id = "secret-form";
    this.cards.secrets.replaceChildren(el("h3", {}, "Recorder and camera secrets"),
      secrets.length ? el("ul", { class: "plain", id: "secret-list" }, ...secrets.map((s) =>
        el("li", { dataset: { secret: s.id } }, el("strong", {}, s.label), s.username ? ` (${s.username}) ` : " ",
          deleteButton(`secret ${s.label}`, `Delete the secret ${s.label} of ${o.name}? Its password cannot be recovered.`,
                       `/api/v1/secrets/${s.id}`, () => this.drawSecrets(), this.toast))))
        : el("p", { class: "muted" }, "No secrets stored."),
      el("p", { class: "muted" }, "Stored encrypted; revealed for 60 s with a logged reason on the Objects page."),
      form.element);
  }

  // ---------- documents: schematics, photos and PDFs (multipart upload, streamed by the hub)

  async drawDocuments() {
    const o = this.object;
    let docs = [];
    try { docs = await API.get(`/api/v1/objects/${o.id}/documents`); } catch (e) { this.toast(e.message, "error"); }
    const form = new Form([
      new Field({ name: "file", label: "File (PDF, PNG, JPEG or WebP)", type: "file", required: true, accept: DOCUMENT_TYPES }),
      new Field({ name: "title", label: "Title", maxLength: MAX_TITLE_CHARS, placeholder: "e.g. Ground floor plan" }),
    ], {
      submitLabel: "Upload document",
      // The hub's refusals of the file (too big, a type it does not keep) belong beside it.
      errorFields: { file_too_large: "file", unsupported_media_type: "file", bad_multipart: "file" },
      onSubmit: async (values, headers) => {
        const body = new FormData();
        body.append("file", values.file);
        if (values.title) body.append("title", values.title);
        try {
          await API.postForm(`/api/v1/objects/${o.id}/documents`, body, headers);
        } catch (e) {
          if (e.code !== "file_too_large") throw e;
          const mb = Math.round(((e.details || {}).max_bytes || 0) / 1024 / 1024);
          throw new API.ApiError(e.status, e.code, `Too big: a document may be at most ${mb} MB`, { field: "file" });
        }
        this.toast(`${values.file.name} uploaded`, "info");
        await this.drawDocuments();
      },
    });
    form.element.id = "document-form";
    const remove = (d) => confirmDelete(d.filename, `Delete ${d.filename}${d.title ? ` (${d.title})` : ""} from ${o.name}? ` +
      "The file is removed for good; the audit log keeps its name.", d.url, () => this.drawDocuments(), this.toast);
    this.cards.documents.replaceChildren(el("h3", {}, "Documents"),
      documentTable(docs, { id: "document-list", toast: this.toast, onDelete: remove }),
      el("h4", {}, "Upload a document"), form.element);
  }
}
