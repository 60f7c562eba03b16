// The alarm detail and the work on an alarm (docs/architecture.md §5 "Working an alarm"): its
// lifecycle moves (ack asks for a note, resolve for how it ended), the procedure as a checklist,
// the object's contacts in call order with click-to-call and a call outcome logged to the
// dispatch log, the log with who wrote it, the events in words, and a supervisor's take-over.
// What the live stream says about an alarm lands here too: the detail redraws (a new dispatch-log
// entry only redraws the log), and a take-over or an escalation that concerns the reader becomes
// a notice.
import * as API from "./api.js";
import { callOutcomes, canTakeOver, resolveDialog, takeOverDialog, takeOverNotice } from "./alarm_dialogs.js";
import { renderChecklist } from "./checklist.js";
import { notify } from "./notices.js";
import { ACTION_LABEL, actionButton, actionsFor, el, escalatedMark, fields, holderName, isEscalated, offlineNote,
         offlineUtc, personEl, serviceModeText, timeEl } from "./queue.js";

const $ = (id) => document.getElementById(id);
const STALE_MSG = "Data changed — refreshed";

// Without its events, log, checklist and contacts: what the queue keeps of a detail.
const rowOf = ({ events, dispatch_log, checklist, contacts, ...row }) => row;

const byTime = (x, y) => (Date.parse(x.at) - Date.parse(y.at)) || (x.id - y.id);  // as the hub orders the log

function askNote(alarm) {
  return new Promise((resolve) => {
    const dlg = $("note-dialog");
    $("note-title").textContent = `Acknowledge ${alarm.alarm_type} — ${alarm.object_name || ""}`;
    $("note-hint").textContent = alarm.requires_note ? "A note is required for this alarm." : "Note (optional).";
    $("note-text").value = "";
    $("note-text").required = !!alarm.requires_note;
    const done = (value) => { dlg.close(); resolve(value); };
    $("note-cancel").onclick = () => done(null);
    $("note-form").onsubmit = (e) => {
      e.preventDefault();
      const note = $("note-text").value.trim();
      if (alarm.requires_note && !note) { $("note-hint").textContent = "A note is required for this alarm."; return; }
      done(note);
    };
    dlg.showModal();
    $("note-text").focus();
  });
}

export class AlarmDetail {
  // `store`: the queue's AlarmStore; `me()`: the signed-in user; `showView(name)`; `toast(text,
  // kind)`; `panels`: a PanelStates for the object's panels; `state`: the console's, whose
  // `alarmId` names the alarm on screen (the router clears it when another page shows).
  constructor({ store, siren, me, showView, toast, panels, state }) {
    Object.assign(this, { store, siren, me, showView, toast, panels, state });
    this.objectId = null;   // whose object card and panels are drawn
    this.loads = 0;
    this.current = null;
    // Dispatch-log entries the stream brought for the alarm on screen, by id: merged into every
    // draw, so a load that began before one was written cannot draw the log without it.
    this.liveLog = new Map();
    $("log-form").addEventListener("submit", (e) => { e.preventDefault(); this.logEntry(); });
    $("alarm-back").addEventListener("click", () => { location.hash = "#/queue"; });
  }

  get id() { return this.state.alarmId; }
  set id(value) { this.state.alarmId = value; }

  // Show alarm `id` (`quiet`: redraw in place, without switching the view).
  async open(id, { quiet = false } = {}) {
    const n = ++this.loads;
    if (this.id !== id) this.liveLog = new Map();
    this.id = id;
    if (!quiet) {
      // Until the alarm is read, offer nothing: the log form and the actions depend on it and on
      // the caller's rights, and a form shown for a moment to someone who may not use it misleads.
      $("log-form").hidden = true;
      $("alarm-actions").replaceChildren();
      this.showView("alarm");
      $("alarm-title").textContent = `Alarm #${id}`;
    }
    let full;
    try { full = await API.get(`/api/v1/alarms/${id}`); } catch (e) { this.toast(e.message, "error"); return; }
    if (n !== this.loads || this.id !== id) return;
    this.store.upsert(rowOf(full));
    this.render(full);
    if (!quiet || this.objectId !== full.object_id) this.loadObject(full);
  }

  async reload(id) {
    try {
      const full = await API.get(`/api/v1/alarms/${id}`);
      this.store.upsert(rowOf(full), { force: true });
      if (this.id === id) this.render(full);
    } catch (e) {
      if (e.status === 404) this.store.upsert({ ...this.store.get(id), status: "CLOSED" }, { force: true });
    }
  }

  // The hub took a move on `row`: the queue and (if shown) the detail follow.
  took(row) {
    this.store.upsert(row);
    if (this.id === row.id) this.open(row.id, { quiet: true });
  }

  async refused(e, id) {
    if (e.status === 409) {
      this.toast(e.message === STALE_MSG ? STALE_MSG : `${e.message} — refreshed`, "warn");
      await this.reload(id);
    } else {
      this.toast(e.message, "error");
    }
  }

  // Run lifecycle move `action` on `alarm` (from the queue or the detail).
  async act(alarm, action) {
    this.siren.unlock();
    const current = () => this.store.get(alarm.id) || alarm;
    const handlers = { onDone: (row) => this.took(row), onConflict: (e) => this.refused(e, alarm.id) };
    if (action === "resolve") {
      try { await resolveDialog(current(), current, handlers); } catch (e) { this.toast(e.message, "error"); }
      return;
    }
    const body = { version: current().version };
    if (action === "ack") {
      const note = await askNote(current());
      if (note === null) return;
      if (note) body.note = note;
      body.version = current().version;
    }
    try {
      this.took(await API.post(`/api/v1/alarms/${alarm.id}/${action}`, body));
    } catch (e) {
      await this.refused(e, alarm.id);
    }
  }

  async takeOver(a) {
    const current = () => this.store.get(a.id) || a;
    try {
      await takeOverDialog(current(), this.me(), current,
        { onDone: (row) => this.took(row), onConflict: (e) => this.refused(e, a.id) });
    } catch (e) { this.toast(e.message, "error"); }
  }

  render(a) {
    const me = this.me();
    this.current = a;
    $("alarm-title").textContent = `${a.service_mode ? "🔧 " : ""}${a.priority} ${a.alarm_type} — ${a.object_name || a.source}`;
    fields($("alarm-fields"), [
      ["Status", el("span", { class: "status" }, a.status, isEscalated(a) ? escalatedMark(a) : "")],
      ["Priority", a.priority], ["Type", a.alarm_type], ["Events", a.event_count],
      ["First", timeEl(a.first_event_at)], ["Last", timeEl(a.last_event_at)], ["Restored", a.restored ? "yes" : "no"],
      ["Held by", a.claimed_by_user ? personEl(a.claimed_by_user) : holderName(a) || "—"],
      ["Ack note", a.ack_note || "—"],
      ...(a.resolution ? [["Resolution", `${a.resolution_label || a.resolution}${a.resolution_note ? ` — ${a.resolution_note}` : ""}`]] : []),
      ...(a.escalated_at ? [["Escalated", timeEl(a.escalated_at)]] : []),
      ["Source", `${a.edge_id} / ${a.source}`], ["Version", a.version],
      ...(a.summary ? [["About", a.summary]] : []),
      ...(a.happened_offline_at ? [["While offline", el("span", { title: offlineUtc(a) }, offlineNote(a))]] : []),
    ]);
    const acts = actionsFor(a, me).map((action) => actionButton({ class: `act act-${action}`, dataset: { action },
      onclick: () => this.act(this.store.get(a.id) || a, action) }, ACTION_LABEL[action]));
    if (canTakeOver(a, me)) {
      acts.push(actionButton({ class: "act act-take-over", onclick: () => this.takeOver(a) }, "Take over / reassign…"));
    }
    $("alarm-actions").replaceChildren(...acts);
    renderChecklist($("alarm-checklist"), a, me, {
      onTicked: () => this.open(a.id, { quiet: true }), onError: (e) => this.refused(e, a.id) });
    this.renderEvents(a);
    this.renderLog(a);
    this.renderContacts(a);
    $("log-form").hidden = !(me && me.canWork);
  }

  renderEvents(a) {
    const events = a.events || [];
    // An acknowledgement a guard gave on the edge's local console (edge.local.ack) is a record on
    // the timeline: the bundle's status stays the operators'.
    $("alarm-events").replaceChildren(...(events.length ? events.map((e) => el("tr", e.kind === "edge.local.ack" ? { class: "local-ack" } : {},
      el("td", {}, timeEl(e.ts), e.ts_suspect ? el("span", { class: "warn", title: "The edge's clock was off: filed by the hub's receive time" }, " ⚠") : ""),
      el("td", {}, e.text || e.kind), el("td", {}, e.priority)))
      : [el("tr", {}, el("td", { class: "muted", colspan: 3 }, "No events."))]));
    const more = $("alarm-events-more");
    more.hidden = !a.events_truncated;
    more.textContent = a.events_truncated ? `Only the first ${events.length} of ${a.event_count} events are shown.` : "";
  }

  renderLog(a) {
    const loaded = a.dispatch_log || [];
    const ids = new Set(loaded.map((d) => d.id));
    const live = [...this.liveLog.values()].filter((d) => d.bundle_id === a.id && !ids.has(d.id));
    const log = live.length ? [...loaded, ...live].sort(byTime) : loaded;
    $("alarm-log").replaceChildren(...(log.length ? log.map((d) => el("li", { dataset: { id: d.id } },
      el("span", { class: "muted" }, timeEl(d.at), " "), personEl(d.author), el("span", { class: "muted" }, ": "),
      d.outcome && !d.entry.includes(d.contact_name || "")
        ? el("span", { class: "call-tag" }, `Call to ${d.contact_name}: ${d.outcome_label || d.outcome} `) : "",
      el("span", { class: "entry" }, d.entry)))
      : [el("li", { class: "muted empty" }, "Nothing logged yet.")]));
  }

  // The object's contacts in call order with click-to-call links, and the form that logs a call.
  renderContacts(a) {
    const me = this.me();
    const contacts = a.contacts || [];
    const form = $("alarm-call");
    $("alarm-contacts").replaceChildren(...(contacts.length ? contacts.map((c) => el("tr", { dataset: { id: c.id } },
      el("td", { class: "num" }, c.call_order),
      el("td", {}, el("strong", {}, c.name), c.role ? el("div", { class: "muted" }, c.role) : ""),
      el("td", {}, c.tel_uri ? el("a", { href: c.tel_uri, class: "call", onclick: () => this.pickContact(c.id) }, c.phone)
        : el("span", { class: "muted" }, c.phone || "no number")),
      el("td", {}, c.availability || "")))
      : [el("tr", {}, el("td", { class: "muted", colspan: 4 }, "No contacts."))]));
    if (!(me && me.canWork) || !contacts.length) { form.replaceChildren(); return; }
    const kept = form.querySelector("select[name=contact_id]");
    const keep = kept ? kept.value : "";
    callOutcomes().then((outcomes) => {
      if (this.current !== a) return;
      form.replaceChildren(this.callForm(a, contacts, outcomes));
      if (keep) this.pickContact(keep);
    }).catch((e) => this.toast(e.message, "error"));
  }

  pickContact(id) {
    const select = $("alarm-call").querySelector("select[name=contact_id]");
    if (select && [...select.options].some((o) => o.value === String(id))) select.value = String(id);
  }

  callForm(a, contacts, outcomes) {
    const id = (name) => `call-${name}`;
    const select = (name, label, options) => el("div", { class: "field" }, el("label", { for: id(name) }, label),
      el("select", { id: id(name), name, required: true }, el("option", { value: "" }, "Choose…"),
        ...options.map(([value, text]) => el("option", { value }, text))));
    const note = el("input", { id: id("entry"), name: "entry", maxlength: 4000, autocomplete: "off" });
    const error = el("p", { class: "error", role: "alert" });
    const button = actionButton({ type: "submit", class: "log-call" }, "Log call");
    const form = el("form", { id: "call-form", class: "call-form", novalidate: true },
      el("h4", {}, "Log a call"),
      select("contact_id", "Contact", contacts.map((c) => [String(c.id), `${c.call_order}. ${c.name}${c.phone ? ` (${c.phone})` : ""}`])),
      select("outcome", "Outcome", outcomes.map((o) => [o.code, o.label])),
      el("div", { class: "field" }, el("label", { for: id("entry") }, "Note (optional)"), note),
      error, el("div", { class: "actions" }, button));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const contact = form.elements.contact_id.value;
      const outcome = form.elements.outcome.value;
      if (!contact || !outcome) { error.textContent = `Choose the ${contact ? "outcome" : "contact"}.`; return; }
      error.textContent = "";
      button.disabled = true;
      try {
        await API.post(`/api/v1/alarms/${a.id}/dispatch-log`,
                       { contact_id: Number(contact), outcome, ...(note.value.trim() ? { entry: note.value.trim() } : {}) });
        form.reset();
        this.open(a.id, { quiet: true });
      } catch (err) {
        error.textContent = err.message;
      } finally {
        button.disabled = false;
      }
    });
    return form;
  }

  async logEntry() {
    const entry = $("log-entry").value.trim();
    if (!entry || !this.id) return;
    try {
      await API.post(`/api/v1/alarms/${this.id}/dispatch-log`, { entry });
      $("log-entry").value = "";
      this.open(this.id, { quiet: true });
    } catch (err) { this.toast(err.message, "error"); }
  }

  async loadObject(a) {
    this.objectId = a.object_id;
    if (!a.object_id) {
      fields($("alarm-object"), [["Object", "— (no object for this source)"]]);
      this.panels.render($("alarm-panels"), []);
      return;
    }
    let o;
    try { o = await API.get(`/api/v1/objects/${a.object_id}`); } catch (e) { this.toast(e.message, "error"); return; }
    fields($("alarm-object"), [["Name", o.name], ["Address", o.address], ["Type", o.type], ["Status", o.status],
      ["Service mode", serviceModeText(o)]]);
    this.panels.render($("alarm-panels"), o.panels, o.name);
  }

  // A live-stream message about an alarm (already merged into the store): redraw the detail when
  // it shows that alarm, and tell the reader what concerns them.
  changed(msg) {
    const p = msg.payload || {};
    const a = this.store.get(p.bundle.id) || p.bundle;
    const me = this.me();
    if (this.id === a.id && p.dispatch_log) this.logged(p.dispatch_log);
    else if (this.id === a.id) this.open(a.id, { quiet: true });
    const moved = me && p.take_over ? takeOverNotice(a, p.take_over, me) : null;
    if (moved) notify(moved, { kind: "warn", dataset: { alarm: a.id, notice: "take-over" }, open: this.opener(a) });
    if (msg.topic === "alarm.escalated" && me && me.canSupervise && a.status === "NEW") {
      notify(`Escalated: ${a.priority} ${a.alarm_type} at ${a.object_name || a.source} still unclaimed after ` +
             `${Math.round(p.escalated_after_s || 0)} s`,
             { kind: "warn", dataset: { alarm: a.id, notice: "escalated" }, open: this.opener(a) });
    }
  }

  // A dispatch-log entry written on any console: only the log redraws, so a call or an entry
  // being typed here stays as it is.
  logged(entry) {
    this.liveLog.set(entry.id, entry);
    if (this.current && this.current.id === entry.bundle_id) this.renderLog(this.current);
  }

  opener(a) {
    return { label: "Open", onclick: () => { location.hash = `#/alarm/${a.id}`; } };
  }
}
