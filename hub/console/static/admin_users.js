// Users: the list; create with a temporary password (made here from the browser's CSPRNG, shown
// once, to be changed at first sign-in), role and object assignments; change name and role;
// deactivate and reactivate; force a password change (a new temporary password, shown once).
// The hub keeps its rules (hub/auth/users.py): only a MASTER touches a MASTER, the last active
// MASTER stays, and only TECHNICIAN and FIELD_WORKER users have object assignments.
// Route: #/admin-users[/<id>|/new].
import * as API from "./api.js";
import { el, fmtTime } from "./queue.js";
import { Field, Form, changed, confirmAction, errorText, randomText, showOnce } from "./forms.js";
import { zoneNames } from "./settings.js";

const ROLES = ["MASTER", "ADMIN", "OPERATOR", "TECHNICIAN", "FIELD_WORKER"];
const ASSIGNED_ONLY = new Set(["TECHNICIAN", "FIELD_WORKER"]);
const EMAIL = /^[^@\s]+@[^@\s]+$/;        // hub/auth/users.py EMAIL_RE
const TEMP_PASSWORD_CHARS = 20;           // ~117 bits; the policy asks for at least 12 characters
const STALE = "Data changed — refreshed";

const $ = (id) => document.getElementById(id);

export class UsersAdmin {
  constructor({ toast }) {
    this.toast = toast;
    this.users = [];
    this.objects = [];
    this.me = null;
    this.onceFor = null;   // the user whose temporary password is on screen
    $("user-new").addEventListener("click", () => { location.hash = "#/admin-users/new"; });
  }

  // The temporary password leaves the page with the user it belongs to.
  leave() {
    $("user-once").replaceChildren();
    this.onceFor = null;
  }

  async show(parts, me) {
    this.me = me;
    if (parts[0] !== String(this.onceFor)) this.leave();
    await this.load();
    if (parts[0] === "new") this.openNew();
    else if (parts[0]) this.open(Number(parts[0]));
    else $("user-pane").replaceChildren(el("p", { class: "muted" }, "Choose a user, or create one."));
  }

  async load() {
    try {
      const [users, objects] = await Promise.all([API.get("/api/v1/users"), API.get("/api/v1/objects?limit=500")]);
      this.users = users;
      this.objects = objects.items;
    } catch (e) { this.toast(e.message, "error"); }
    const names = new Map(this.objects.map((o) => [o.id, o.name]));
    $("users-body").replaceChildren(...this.users.map((u) => el("tr", {
      class: `clickable${u.active ? "" : " inactive"}`, dataset: { user: u.id, email: u.email },
      onclick: () => { location.hash = `#/admin-users/${u.id}`; } },
    el("td", {}, el("a", { href: `#/admin-users/${u.id}` }, u.email)), el("td", {}, u.display_name), el("td", {}, u.role),
    el("td", {}, u.active ? "active" : "deactivated", u.must_change_password ? el("div", { class: "muted" }, "must change password") : null),
    el("td", {}, ASSIGNED_ONLY.has(u.role) ? (u.objects.map((id) => names.get(id) || `#${id}`).join(", ") || "none") : "all"),
    el("td", {}, u.locked_until ? `delayed until ${fmtTime(u.locked_until)}` : ""))));
    $("users-count").textContent = `(${this.users.length})`;
  }

  roleOptions(current) {
    // Only a MASTER may make a MASTER; a MASTER shown to an ADMIN stays listed (read-only).
    return ROLES.filter((r) => r !== "MASTER" || this.me.role === "MASTER" || current === "MASTER").map((r) => [r, r]);
  }

  objectsField(selected, disabled) {
    return new Field({ name: "object_ids", label: "Assigned objects", type: "multiselect", numeric: true, size: 6, disabled,
                       options: this.objects.map((o) => [o.id, o.status === "CLOSED" ? `${o.name} (closed)` : o.name]),
                       value: selected, hint: "TECHNICIAN and FIELD_WORKER users see only these; other roles see every object." });
  }

  // The assignment list is only for roles that have one: it follows the role select.
  followRole(roleField, objectsField) {
    const sync = () => {
      const off = !ASSIGNED_ONLY.has(roleField.value);
      objectsField.spec.disabled = off;
      objectsField.input.disabled = off;
    };
    roleField.input.addEventListener("change", sync);
    sync();
  }

  openNew() {
    const role = new Field({ name: "role", label: "Role", type: "select", required: true,
                             options: [["", "— choose —"], ...this.roleOptions(null)] });
    const objects = this.objectsField([], true);
    const form = new Form([
      new Field({ name: "email", label: "Email", type: "email", required: true, maxLength: 254, pattern: EMAIL,
                  patternMessage: "not an email address" }),
      new Field({ name: "display_name", label: "Display name", maxLength: 200 }),
      role, objects,
    ], {
      submitLabel: "Create user",
      errorFields: { email_taken: "email" },
      onSubmit: async (values, headers) => {
        const password = randomText(TEMP_PASSWORD_CHARS);
        const { object_ids: objectIds, ...body } = values;
        let made = await API.post("/api/v1/users", { ...body, password }, headers);
        if (objectIds && objectIds.length) {
          try {
            made = await API.put(`/api/v1/users/${made.id}/objects`, { version: made.version, object_ids: objectIds });
          } catch (e) {
            this.toast(`User created, but the objects were not assigned: ${e.message}`, "error");
          }
        }
        this.showPassword(made, password, "created");
        location.hash = `#/admin-users/${made.id}`;
      },
    });
    this.followRole(role, objects);
    form.element.id = "user-form";
    $("user-pane").replaceChildren(el("div", { class: "card" }, el("h3", {}, "New user"),
      el("p", { class: "muted" }, "A temporary password is made for the user and shown once; they must change it at their first sign-in."),
      form.element));
    form.field("email").input.focus();
  }

  showPassword(user, password, what) {
    this.onceFor = user.id;
    showOnce($("user-once"), `Temporary password for ${user.email}`, password,
      `Account ${what}. ${user.email} must change this password at the next sign-in.`, this.toast);
  }

  open(id) {
    const u = this.users.find((x) => x.id === id);
    if (!u) { $("user-pane").replaceChildren(el("p", { class: "muted" }, "No such user.")); return; }
    for (const tr of document.querySelectorAll("#users-body tr")) tr.classList.toggle("selected", Number(tr.dataset.user) === id);
    // An ADMIN sees a MASTER but may not change one: the hub refuses it (403), so nothing is offered.
    const locked = u.role === "MASTER" && this.me.role !== "MASTER";
    const stale = () => { this.toast(STALE, "warn"); this.reopen(id); };
    const role = new Field({ name: "role", label: "Role", type: "select", required: true, disabled: locked,
                             options: this.roleOptions(u.role), value: u.role });
    const account = new Form([
      new Field({ name: "display_name", label: "Display name", maxLength: 200, disabled: locked, value: u.display_name }),
      role,
      new Field({ name: "time_zone", label: "Time zone", type: "select", disabled: locked, value: u.time_zone || "",
                  options: [["", `Hub default (${this.me.hub_time_zone})`], ...zoneNames(u.time_zone).map((z) => [z, z])] }),
    ], {
      submitLabel: "Save user", errorFields: { last_master: "role" }, onStale: stale,
      onSubmit: async (values) => {
        // "" is the hub default, which the hub calls null.
        const diff = changed(values, { ...u, time_zone: u.time_zone || "" });
        if ("time_zone" in diff) diff.time_zone = diff.time_zone || null;
        if (!Object.keys(diff).length) { this.toast("Nothing changed", "info"); return; }
        await API.patch(`/api/v1/users/${u.id}`, { version: u.version, ...diff });
        this.toast(`${u.email} saved`, "info");
        await this.reopen(id);
      },
    });
    account.element.id = "user-form";
    account.button.disabled = locked;

    const objects = new Form([this.objectsField(u.objects, !ASSIGNED_ONLY.has(u.role))], {
      submitLabel: "Save assignments", onStale: stale,
      onSubmit: async (values) => {
        await API.put(`/api/v1/users/${u.id}/objects`, { version: u.version, object_ids: values.object_ids || [] });
        this.toast(`Objects of ${u.email} saved`, "info");
        await this.reopen(id);
      },
    });
    objects.element.id = "user-objects-form";
    objects.button.disabled = !ASSIGNED_ONLY.has(u.role);

    const actionError = el("p", { class: "error", id: "user-action-error", role: "alert" });
    const act = async (question, okLabel, body, after) => {
      actionError.textContent = "";
      if (!await confirmAction(question, okLabel)) return;
      try {
        const next = await API.patch(`/api/v1/users/${u.id}`, { version: u.version, ...body });
        if (after) after(next);
        await this.reopen(id);
      } catch (e) {
        actionError.textContent = errorText(e);
        if (e.status === 409 && e.details && e.details.current_version !== undefined) stale();
      }
    };
    const toggle = el("button", { type: "button", id: "user-toggle-active", class: u.active ? "danger" : "", disabled: locked },
      u.active ? "Deactivate…" : "Reactivate…");
    toggle.addEventListener("click", () => (u.active
      ? act(`Deactivate ${u.email}? Their sessions end at once and they cannot sign in until reactivated.`,
            `Deactivate ${u.email}`, { active: false }, () => this.toast(`${u.email} deactivated`, "info"))
      : act(`Reactivate ${u.email}?`, `Reactivate ${u.email}`, { active: true }, () => this.toast(`${u.email} reactivated`, "info"))));
    const force = el("button", { type: "button", id: "user-force-password", disabled: locked }, "Force password change…");
    force.addEventListener("click", () => {
      const password = randomText(TEMP_PASSWORD_CHARS);
      act(`Give ${u.email} a new temporary password? Their sessions end at once and they must choose a new password at the next sign-in.`,
          "Reset password", { password }, (next) => this.showPassword(next, password, "password reset"));
    });

    $("user-pane").replaceChildren(el("div", { class: "card", dataset: { user: u.id, version: u.version } },
      el("h3", {}, `${u.email} — ${u.role}${u.active ? "" : ", deactivated"}`),
      el("dl", { class: "fields" }, el("dt", {}, "Created"), el("dd", {}, fmtTime(u.created_at)),
        el("dt", {}, "Password"), el("dd", {}, u.must_change_password ? "temporary: must be changed at the next sign-in" : "chosen by the user"),
        ...(u.locked_until ? [el("dt", {}, "Sign-in delay"), el("dd", {}, `until ${fmtTime(u.locked_until)}`)] : [])),
      locked ? el("p", { class: "warn" }, "Only a MASTER may change a MASTER.") : null,
      account.element, el("h4", {}, "Object assignments"), objects.element,
      el("div", { class: "actions" }, toggle, force), actionError));
  }

  async reopen(id) {
    await this.load();
    this.open(id);
  }
}
