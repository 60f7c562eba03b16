// One robot (#/robots/<id>; docs/architecture.md §5 "Robots"): what it is and can do, how it is,
// where it is (robot_plan.js), its battery and speed over time, its lease, commands and settings,
// kept live from the stream and read again after a reconnect.
//
// Commanding goes under the robot's lease: the reader takes it (the hub answers 409 naming who
// holds it), it is renewed while this page is open and theirs, and released or taken over (MASTER,
// with a reason). A command names the lease and carries an Idempotency-Key kept across a lost
// answer (forms.js), so pressing again gives it once; its row follows the robot's word live
// (REQUESTED → SENT → ACKED → RUNNING → FINISHED, FAILED, TIMEOUT or CANCELLED, with the robot's
// exact ackStatus and detail). EMERGENCY STOP needs no lease. Desired settings sit beside what the
// robot reports, the difference marked until they agree. What the reader's role cannot do is not
// shown; the emergency stop is, disabled.
import * as API from "./api.js";
import { Field, Form } from "./forms.js";
import { notify } from "./notices.js";
import { el, fields, fmtTime, timeEl } from "./queue.js";
import { PositionView, planPicker, telemetryCharts } from "./robot_plan.js";
import { STALE_AFTER_MS, batteryText, can, connectionEl, estopButton, holderText, isStale, robotLabel, robotName, seenEl,
         stateEl, tickAges } from "./robots.js";

const $ = (id) => document.getElementById(id);
const TICK_MS = 1000;
// The telemetry read on opening: the last 30 minutes, or less when that is more than one answer holds.
const WINDOWS_MIN = [30, 5, 1];
const COMMAND_LIMIT = 20;
const EARLY_MAX = 200;  // live messages kept while the robot is being read
// A lease held here is renewed this often (a third of what is left, within these bounds).
const RENEW_MIN_MS = 2000;
const RENEW_MAX_MS = 20_000;
// Commands the form gives (estop has its own button, cancel is on each open command).
const FORM_COMMANDS = { goto: "Go to a point", patrol: "Patrol", dock: "Dock", pause: "Pause", resume: "Resume",
                        reset: "Reset (after a stop or an error)" };
const ARGS = { goto: ["x", "y", "theta"], patrol: ["loops"] };
const RANK = { REQUESTED: 0, SENT: 1, ACKED: 2, RUNNING: 3 };  // every final status ranks 4
const OPEN = new Set(Object.keys(RANK));
const UNCANCELLABLE = new Set(["estop", "cancel"]);
const SETTINGS = { maxSpeedMps: "Max speed", cameraOn: "Camera", patrolRoute: "Patrol route" };
const LINE = /^\s*(-?\d+(?:\.\d+)?)\s*[,;]\s*(-?\d+(?:\.\d+)?)\s*(?:[,;]\s*(.+?))?\s*$/;

const rank = (c) => RANK[c.status] ?? 4;
const short = (id) => String(id || "").slice(0, 8);

// A setting's value in words: "1.5 m/s", "on", "3 points: (0, 0) (10, 0) (10, 5)".
export function settingText(name, value) {
  if (value === null || value === undefined) return "—";
  if (name === "maxSpeedMps") return `${value} m/s`;
  if (name === "cameraOn") return value ? "on" : "off";
  if (name === "patrolRoute" && Array.isArray(value)) {
    const points = value.slice(0, 4).map((p) => `(${p.x}, ${p.y}${p.name ? ` ${p.name}` : ""})`).join(" ");
    return `${value.length} point${value.length === 1 ? "" : "s"}: ${points}${value.length > 4 ? " …" : ""}`;
  }
  return JSON.stringify(value);
}

// "Go to x 4, y 6", "Patrol, 3 loops", "Settings: max speed 1.5 m/s".
export function describeCommand(c) {
  const p = c.payload || {};
  if (c.commandType === "goto") {
    return `Go to x ${p.x}, y ${p.y}${p.theta !== undefined && p.theta !== null ? `, heading ${p.theta} rad` : ""}`;
  }
  if (c.commandType === "patrol") {
    return p.loops ? `Patrol, ${p.loops} loop${p.loops === 1 ? "" : "s"}` : "Patrol until told otherwise";
  }
  if (c.commandType === "estop") return "EMERGENCY STOP";
  if (c.commandType === "cancel") return `Cancel ${short(p.commandId)}`;
  if (c.kind === "settings.desired") {
    const each = Object.entries(c.settings || {}).map(([k, v]) => `${(SETTINGS[k] || k).toLowerCase()} ${settingText(k, v)}`);
    return `Settings: ${each.join(", ")}`;
  }
  return (FORM_COMMANDS[c.commandType] || c.commandType).replace(/ \(.*\)$/, "");
}

// The robot's (or its edge's) last word on a command: "RUNNING 50 %", "FAILED: blocked" (the
// progress of an ended command is the last one it reported while running: left out).
export function ackText(c) {
  const progress = OPEN.has(c.status) && c.progress !== null && c.progress !== undefined;
  const word = [c.ackStatus, progress ? `${Math.round(c.progress * 100)} %` : null,
                c.ackBy === "edge" ? "(edge)" : null].filter(Boolean).join(" ");
  return [word, c.detail].filter(Boolean).join(": ");
}

// A patrol route typed one point a line ("12.5, 3" or "12.5, 3, gate"): the waypoints, or a
// message naming the line that is not one.
export function parseRoute(text) {
  const points = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i].trim()) continue;
    const m = LINE.exec(lines[i]);
    if (!m) return { error: `Line ${i + 1}: give x, y in metres (e.g. 12.5, 3), optionally a name after them` };
    points.push({ x: Number(m[1]), y: Number(m[2]), ...(m[3] ? { name: m[3] } : {}) });
  }
  return { points };
}

// A refusal of desired settings names `settings`; the setting itself is in the validator's path.
function settingsError(err) {
  const d = err.details || {};
  const m = /`\$\.(\w+)/.exec(err.message || "");
  if (d.field === "settings" && m) err.details = { field: m[1], reason: err.message.replace(/^settings: /, "") };
  return err;
}

// The hub's refusal of a lease in words: who holds it and until when.
function leaseRefusal(err) {
  const d = err.details || {};
  if (err.code === "lease_held" && d.holder) {
    return `${d.holder.name || `user ${d.holder.id}`} holds this robot's lease until ${fmtTime(d.expiresAt)}`;
  }
  return err.message;
}

// A reason asked in a dialog before `act(reason)` runs; the dialog stays open with the hub's refusal.
function reasonDialog(title, okLabel, act) {
  const reason = new Field({ name: "reason", label: "Reason (kept in the audit log)", type: "textarea", required: true,
                             maxLength: 500, rows: 2 });
  const cancel = el("button", { type: "button", class: "cancel" }, "Cancel");
  let dialog = null;
  const form = new Form([reason], { submitLabel: okLabel, extra: [cancel], onSubmit: async (v) => {
    await act(v.reason.trim());
    dialog.close();
  } });
  dialog = el("dialog", { id: "robot-reason-dialog" }, el("h3", {}, title), form.element);
  cancel.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  reason.input.focus();
}

const card = (id, title, ...children) => el("div", { class: "card", id }, el("h3", {}, title), ...children);

export class RobotDetail {
  constructor({ toast, showView }) {
    this.toast = toast;
    this.showView = showView;
    this.reset();
  }

  reset() {
    this.id = null;           // the robot on screen
    this.me = null;
    this.robot = null;        // GET /api/v1/robots/{id}, merged with the stream's summaries
    this.lease = null;        // its current lease as last heard
    this.ended = new Set();   // ids of leases known to have ended: a late word about one is old
    this.commands = new Map();
    this.samples = [];        // telemetry, oldest first
    this.windowMin = WINDOWS_MIN[0];
    this.plan = undefined;    // the object's site plan (null: none; undefined: not read yet)
    this.position = null;
    this.forms = null;
    this.early = [];          // live messages that came before the robot was first read
    this.loads = 0;
    this.robotLoads = 0;
    this.timer = null;
    this.renewTimer = null;
  }

  get shown() { return this.id !== null; }
  get base() { return `/api/v1/robots/${encodeURIComponent(this.id)}`; }

  async open(id, me) {
    this.leave();
    this.id = id;
    this.me = me;
    this.showView("robot");
    this.build();
    this.timer = setInterval(() => this.tick(), TICK_MS);
    await this.load();
  }

  leave() {
    clearInterval(this.timer);
    clearTimeout(this.renewTimer);
    if (this.id !== null) $("robot-body").replaceChildren();
    this.reset();
  }

  build() {
    $("robot-title").textContent = this.id;
    // One button for the page's life: a redraw must never swallow a press on it.
    $("robot-estop-slot").replaceChildren(estopButton(() => this.robot || { robotId: this.id }, this.me, this.toast, {
      attrs: { id: "robot-estop" }, onSent: (c) => { if (this.mergeCommand(c)) this.drawCommands(); } }));
    const positionBox = el("div", { class: "position-box" });
    this.position = new PositionView(positionBox);
    $("robot-body").replaceChildren(el("div", { class: "columns robot-columns" },
      el("div", {},
        card("robot-facts", "Robot", el("dl", { class: "fields facts" }, el("dt", {}, "Loading…"))),
        card("robot-lease", "Lease", el("div", { class: "lease-state" }), el("div", { class: "actions lease-actions" }),
             el("p", { class: "error lease-error", role: "alert" })),
        card("robot-commands", "Commands", el("div", { class: "command-form-slot" }),
             el("div", { class: "command-list-slot" })),
        card("robot-settings", "Settings", el("div", { class: "settings-table-slot" }),
             el("div", { class: "settings-form-slot" }))),
      el("div", {},
        card("robot-position", "Position", positionBox, el("div", { class: "plan-picker-slot" })),
        card("robot-telemetry", "Battery and speed", el("div", { class: "telemetry-slot muted" }, "Loading…")),
        card("robot-identity", "Identity and capability", el("dl", { class: "fields identity" })),
        card("robot-metadata", "Name, tags and notes", el("div", { class: "metadata-slot" })))));
  }

  // Everything, from REST: on opening, and after the live stream reconnects.
  async load() {
    const n = ++this.loads;
    let robot;
    try { robot = await API.get(this.base); } catch (e) {
      if (n !== this.loads) return;
      this.failed(e);
      return;
    }
    if (n !== this.loads) return;
    const [commands, plan, samples] = await Promise.all([
      API.get(`${this.base}/commands?limit=${COMMAND_LIMIT}`).catch((e) => ({ error: e })),
      robot.objectId ? API.get(`/api/v1/objects/${robot.objectId}/robot-plan`).then((a) => a.plan).catch(() => null)
        : Promise.resolve(null),
      this.readTelemetry().catch((e) => ({ error: e }))]);
    if (n !== this.loads) return;
    if (!$("robot-facts")) {  // the robot could not be read before: the page is drawn afresh
      this.build();
      this.forms = null;
      this.plan = undefined;
    }
    this.setRobot(robot, true);
    if (commands.error) this.toast(`Commands: ${commands.error.message}`, "error");
    else for (const c of commands.items) this.mergeCommand(c);
    if (samples.error) this.toast(`Telemetry: ${samples.error.message}`, "error");
    else for (const s of samples) this.addSample(s, { draw: false });
    this.setPlan(plan);
    if (!this.forms) this.buildForms();
    this.drawAll();
    this.scheduleRenew();
    // What the stream said while the first answers were on their way may be newer than them.
    for (const msg of this.early.splice(0)) this.changed(msg);
  }

  // Reading the robot failed: a robot on screen stays (what could not be read again is said), one
  // never read, or gone, makes way for why.
  failed(e) {
    if (this.robot && e.status !== 404) { this.toast(`The robot could not be read again: ${e.message}`, "error"); return; }
    const text = e.status === 404 ? `No robot ${this.id}, or not one of your objects'.`
      : `The robot could not be read: ${e.message}`;
    this.robot = null;
    $("robot-body").replaceChildren(el("p", { class: "error", id: "robot-error" }, text));
  }

  // The newest samples: the last 30 minutes, or a shorter window when the hub cuts that answer short.
  async readTelemetry() {
    for (const minutes of WINDOWS_MIN) {
      const since = new Date(Date.now() - minutes * 60_000).toISOString();
      const page = await API.get(`${this.base}/telemetry?since=${encodeURIComponent(since)}`);
      if (!page.truncated || minutes === WINDOWS_MIN[WINDOWS_MIN.length - 1]) {
        this.windowMin = minutes;
        return page.items;
      }
    }
    return [];
  }

  // The robot as REST answered; its lease too when `withLease` (a full read: on opening and after a
  // reconnect). Otherwise leases follow the stream and this page's own answers, which are newer than
  // a read that may have begun before them.
  setRobot(robot, withLease = false) {
    this.robot = robot;
    if (withLease) this.setLeaseQuietly(robot.lease);
  }

  // ---------- live

  // A live message about robots (app.js routes robot.* here).
  changed(msg) {
    if (!this.shown) return;
    const p = msg.payload || {};
    if (!this.robot) {
      const about = p.robotId || (p.robot && p.robot.robotId) || (p.command && p.command.robotId);
      if (about === this.id || msg.topic === "robot.plan.updated") this.early.push(msg);
      if (this.early.length > EARLY_MAX) this.early.shift();
      return;
    }
    if (msg.topic === "robot.updated" && p.robot && p.robot.robotId === this.id) this.robotUpdated(p.robot);
    else if (msg.topic === "robot.telemetry" && p.robotId === this.id) this.addSample(p);
    else if (msg.topic === "robot.command.updated" && p.command && p.command.robotId === this.id) {
      this.commandUpdated(p.command);
    } else if (msg.topic === "robot.lease.updated" && p.robotId === this.id) this.leaseUpdated(p);
    else if (msg.topic === "robot.plan.updated" && p.objectId === this.robot.objectId) {
      this.setPlan(p.plan);
      this.drawPosition();
    }
  }

  // A summary from the stream: shown at once, then the whole robot read again (identity,
  // capability and settings come only with the detail).
  async robotUpdated(summary) {
    const { lease: _lease, ...rest } = summary;  // leases follow robot.lease.updated
    this.robot = { ...this.robot, ...rest };
    this.drawFacts();
    const n = ++this.robotLoads;
    let robot;
    try { robot = await API.get(this.base); } catch { return; }
    if (n !== this.robotLoads || !this.shown) return;
    this.setRobot(robot);
    this.drawAll();
  }

  addSample(s, { draw = true } = {}) {
    const last = this.samples[this.samples.length - 1];
    if (last && Date.parse(s.at) <= Date.parse(last.at)) return;
    this.samples.push({ at: s.at, pose: s.pose, batteryPct: s.batteryPct, speedMps: s.speedMps, state: s.state });
    const since = Date.now() - this.windowMin * 60_000;
    while (this.samples.length > 1 && Date.parse(this.samples[0].at) < since) this.samples.shift();
    if (this.robot && (!this.robot.lastSeenAt || Date.parse(s.at) > Date.parse(this.robot.lastSeenAt))) {
      this.robot.lastSeenAt = s.at;
    }
    if (draw) { this.drawFacts(); this.drawPose(); this.drawCharts(); }
  }

  commandUpdated(c) {
    const known = this.commands.has(c.commandId);
    if (!this.mergeCommand(c)) return;
    this.drawCommands();
    // Someone's new desired settings: read them with the reported ones.
    if (!known && c.kind === "settings.desired") this.reloadSettings();
  }

  // Merge `c`; false when it says nothing new (a late REST answer, a replay after a reconnect).
  mergeCommand(c) {
    const old = this.commands.get(c.commandId);
    if (old && (rank(c) < rank(old) || (rank(c) === rank(old) && Date.parse(c.updatedAt) <= Date.parse(old.updatedAt)))) {
      return false;
    }
    this.commands.set(c.commandId, c);
    return true;
  }

  async reloadSettings() {
    try { this.robot.settings = await API.get(`${this.base}/settings/desired`); } catch { return; }
    this.drawSettings();
  }

  leaseUpdated(p) {
    const ended = p.ended;
    if (ended && this.me && ended.holder && ended.holder.id === this.me.id && ended.endedHow === "FORCED") {
      const by = p.lease ? holderText(p.lease) : ended.forcedBy;
      notify(`Your lease on ${robotLabel(this.robot)} was taken over by ${by}: ${ended.forceReason || "no reason given"}`,
             { kind: "warn", dataset: { notice: "lease", robot: this.id } });
    }
    if (ended) this.ended.add(ended.leaseId);
    this.setLease(p.lease);
  }

  // ---------- the lease

  // The lease unless it has run out.
  liveLease() {
    return this.lease && Date.parse(this.lease.expiresAt) > Date.now() ? this.lease : null;
  }

  mine(lease) { return !!lease && !!this.me && lease.holder && lease.holder.id === this.me.id; }

  setLeaseQuietly(lease) {
    if (lease && this.ended.has(lease.leaseId)) return;
    // A renewal's answer and its stream message may cross: the later expiry of one lease stands.
    if (lease && this.lease && lease.leaseId === this.lease.leaseId &&
        Date.parse(lease.expiresAt) < Date.parse(this.lease.expiresAt)) return;
    this.lease = lease || null;
  }

  setLease(lease) {
    this.setLeaseQuietly(lease);
    this.drawLease();
    this.scheduleRenew();
  }

  // While the lease is the reader's and this page is open, it is renewed before it runs out.
  scheduleRenew() {
    clearTimeout(this.renewTimer);
    const lease = this.liveLease();
    if (!this.mine(lease)) return;
    const left = Date.parse(lease.expiresAt) - Date.now();
    this.renewTimer = setTimeout(() => this.renew(), Math.min(RENEW_MAX_MS, Math.max(RENEW_MIN_MS, left / 3)));
  }

  async renew() {
    if (!this.shown || !this.mine(this.liveLease())) return;  // gone by time, or no longer the reader's
    try {
      this.setLease(await API.post(`${this.base}/lease`, {}));
    } catch (e) {
      if (e.status === 0) { this.scheduleRenew(); return; }  // the hub is out of reach: again while it lasts
      this.leaseError(`Your lease could not be renewed: ${leaseRefusal(e)}`);
      try { this.setLease((await API.get(`${this.base}/lease`)).lease); } catch { this.setLease(null); }
    }
  }

  async takeLease(body = {}) {
    this.leaseError("");
    try {
      this.setLease(await API.post(`${this.base}/lease`, body));
    } catch (e) {
      if (body.force) throw e;
      this.leaseError(leaseRefusal(e));
    }
  }

  async releaseLease() {
    const lease = this.liveLease();
    if (!lease) return;
    this.leaseError("");
    try {
      await API.del(`${this.base}/lease/${encodeURIComponent(lease.leaseId)}`);
      this.ended.add(lease.leaseId);
      this.setLease(null);
    } catch (e) {
      this.leaseError(leaseRefusal(e));
    }
  }

  leaseError(text) {
    const line = document.querySelector("#robot-lease .lease-error");
    if (line) line.textContent = text;
  }

  // ---------- forms (built once per robot shown, so typing survives live redraws)

  buildForms() {
    this.forms = {};
    if (can(this.me, "robots.command")) {
      this.forms.command = this.commandForm();
      this.forms.settings = this.settingsForm();
      document.querySelector("#robot-commands .command-form-slot").replaceChildren(this.forms.command.element);
      document.querySelector("#robot-settings .settings-form-slot").replaceChildren(
        el("h4", {}, "Set desired settings"), this.forms.settings.element);
    }
    if (can(this.me, "robots.edit")) {
      this.forms.metadata = this.metadataForm();
      document.querySelector("#robot-metadata .metadata-slot").replaceChildren(this.forms.metadata.element);
    }
  }

  // A command under the reader's lease, for the commands the robot says it takes.
  commandForm() {
    const offered = (((this.robot.capability || {}).capability || {}).commands) || Object.keys(FORM_COMMANDS);
    const types = Object.keys(FORM_COMMANDS).filter((t) => offered.includes(t));
    const type = new Field({ name: "commandType", label: "Command", type: "select", required: true,
                             options: types.map((t) => [t, FORM_COMMANDS[t]]) });
    const inputs = [
      type,
      new Field({ name: "x", label: "x (m)", type: "number", required: true }),
      new Field({ name: "y", label: "y (m)", type: "number", required: true }),
      new Field({ name: "theta", label: "Heading (rad, optional)", type: "number" }),
      new Field({ name: "loops", label: "Loops (0: until told otherwise)", type: "number", integer: true, min: 0, max: 1000,
                  value: 0 }),
      new Field({ name: "reason", label: "Reason (kept with the command and in the audit log)", type: "textarea",
                  required: true, maxLength: 500, rows: 2 }),
    ];
    const form = new Form(inputs, { submitLabel: "Send command", onSubmit: (v, headers) => this.give(v, headers, form) });
    form.element.id = "robot-command-form";
    form.element.prepend(el("p", { class: "muted lease-hint" }));
    // Only the chosen command's arguments are shown, checked and sent.
    const relevant = () => {
      for (const name of ["x", "y", "theta", "loops"]) {
        const f = form.field(name);
        const on = (ARGS[type.value] || []).includes(name);
        f.spec.disabled = !on;
        f.input.disabled = !on;
        f.element.hidden = !on;
        if (!on) f.setError("");
      }
    };
    type.input.addEventListener("change", relevant);
    relevant();
    return form;
  }

  async give(values, headers, form) {
    const lease = this.liveLease();
    if (!this.mine(lease)) throw new Error("Take the lease first: every command but the emergency stop goes under it");
    const payload = {};
    for (const name of ARGS[values.commandType] || []) {
      if (values[name] !== null && values[name] !== undefined) payload[name] = values[name];
    }
    const body = { commandType: values.commandType, payload, leaseId: lease.leaseId, reason: values.reason.trim() };
    const command = await API.post(`${this.base}/commands`, body, headers);
    this.mergeCommand(command);
    this.drawCommands();
    form.field("reason").value = "";
    this.toast(`${describeCommand(command)}: sent to ${robotName(this.robot)}, waiting for the robot`, "info");
  }

  async cancel(c) {
    try {
      const answer = await API.post(`${this.base}/commands/${encodeURIComponent(c.commandId)}/cancel`, {});
      this.mergeCommand(answer.command);
      if (answer.cancelCommand) this.mergeCommand(answer.cancelCommand);
      this.drawCommands();
      this.toast(answer.cancelCommand ? `Cancelling ${describeCommand(c)}: waiting for the robot`
        : `${describeCommand(c)} cancelled before it was sent`, "info");
    } catch (e) {
      this.toast(`Cancel refused: ${e.message}`, "error");
    }
  }

  settingsForm() {
    const specs = new Map((((this.robot.capability || {}).capability || {}).settings || []).map((s) => [s.name, s]));
    const speed = specs.get("maxSpeedMps");
    const range = speed && speed.min !== undefined && speed.max !== undefined
      ? `The robot takes ${speed.min}–${speed.max} ${speed.unit || "m/s"}. ` : "";
    const inputs = [
      new Field({ name: "maxSpeedMps", label: "Max speed (m/s)", type: "number", hint: `${range}Empty: leave as it is.` }),
      new Field({ name: "cameraOn", label: "Camera", type: "select",
                  options: [["", "Leave as it is"], ["true", "On"], ["false", "Off"]] }),
      new Field({ name: "patrolRoute", label: "Patrol route (one point a line: x, y in metres, optionally a name)",
                  type: "textarea", rows: 3, maxLength: 20_000, placeholder: "0, 0, gate\n25, 0\n25, 12",
                  check: (v) => parseRoute(v).error || "", hint: "Empty: leave as it is." }),
      new Field({ name: "reason", label: "Reason (optional)", maxLength: 500 }),
    ];
    const form = new Form(inputs, { submitLabel: "Send settings", onSubmit: (v) => this.sendSettings(v, form) });
    form.element.id = "robot-settings-form";
    return form;
  }

  async sendSettings(values, form) {
    const settings = {};
    if (values.maxSpeedMps !== null) settings.maxSpeedMps = values.maxSpeedMps;
    if (values.cameraOn) settings.cameraOn = values.cameraOn === "true";
    if (values.patrolRoute) settings.patrolRoute = parseRoute(values.patrolRoute).points;
    if (!Object.keys(settings).length) throw new Error("Change at least one setting");
    const lease = this.liveLease();
    if (!this.mine(lease)) throw new Error("Take the lease first: settings are sent under it");
    let answer;
    try {
      answer = await API.put(`${this.base}/settings/desired`, { settings, leaseId: lease.leaseId,
                                                                ...(values.reason ? { reason: values.reason } : {}) });
    } catch (e) {
      throw settingsError(e);
    }
    const { command, desired, reported, pending } = answer;
    this.robot.settings = { desired, reported, pending };
    this.mergeCommand(command);
    this.drawSettings();
    this.drawCommands();
    for (const name of Object.keys(SETTINGS)) form.field(name).value = "";
    this.toast(`Settings sent to ${robotName(this.robot)}: pending until it reports running with them`, "info");
  }

  metadataForm() {
    const inputs = [
      new Field({ name: "displayName", label: "Display name", maxLength: 200 }),
      new Field({ name: "tags", label: "Tags (comma-separated)", maxLength: 2000,
                  check: (v) => (v.split(",").some((t) => t.trim().length > 64) ? "A tag is at most 64 characters" : "") }),
      new Field({ name: "notes", label: "Notes", type: "textarea", maxLength: 4000, rows: 3 }),
      new Field({ name: "enabled", type: "checkbox",
                  label: "Enabled (a disabled robot takes no lease, command or settings; it can still be stopped)" }),
    ];
    const form = new Form(inputs, { submitLabel: "Save", onSubmit: (v) => this.saveMetadata(v) });
    form.element.id = "robot-metadata-form";
    this.fillMetadata(form);
    return form;
  }

  fillMetadata(form) {
    form.field("displayName").value = this.robot.displayName;
    form.field("tags").value = (this.robot.tags || []).join(", ");
    form.field("notes").value = this.robot.notes;
    form.field("enabled").value = this.robot.enabled;
  }

  async saveMetadata(v) {
    const tags = v.tags.split(",").map((t) => t.trim()).filter(Boolean);
    const body = {};
    if (v.displayName !== this.robot.displayName) body.displayName = v.displayName;
    if (JSON.stringify(tags) !== JSON.stringify(this.robot.tags || [])) body.tags = tags;
    if (v.notes !== this.robot.notes) body.notes = v.notes;
    if (v.enabled !== this.robot.enabled) body.enabled = v.enabled;
    if (!Object.keys(body).length) { this.toast("Nothing changed", "info"); return; }
    this.setRobot(await API.put(this.base, body));
    this.fillMetadata(this.forms.metadata);
    this.drawAll();
    this.toast("Saved", "info");
  }

  // ---------- the site plan

  setPlan(plan) {
    const same = JSON.stringify(plan ?? null) === JSON.stringify(this.plan ?? null) && this.plan !== undefined;
    this.plan = plan ?? null;
    if (same) return;
    this.position.setPlan(this.plan, this.robot.objectName);
    this.drawPicker();
  }

  async drawPicker() {
    const slot = document.querySelector("#robot-position .plan-picker-slot");
    if (!slot || !can(this.me, "objects.edit") || !this.robot.objectId) return;
    const picker = await planPicker({ objectId: this.robot.objectId, plan: this.plan, toast: this.toast,
                                      onSaved: (plan) => { this.setPlan(plan); this.drawPosition(); } });
    if (slot.isConnected) slot.replaceChildren(picker);
  }

  // ---------- drawing

  drawAll() {
    this.drawFacts();
    this.drawLease();
    this.drawCommands();
    this.drawSettings();
    this.drawPosition();
    this.drawCharts();
    this.drawIdentity();
    this.drawMetadata();
  }

  stale() { return isStale(this.robot); }

  newest() { return this.samples[this.samples.length - 1] || null; }

  drawFacts() {
    const dl = document.querySelector("#robot-facts dl");
    if (!dl || !this.robot) return;
    const r = this.robot;
    const stale = this.stale();
    const sample = this.newest();
    // The newer of the status's battery and the last sample's: status is journaled on a change of state only.
    const sampled = sample && (!r.statusAt || Date.parse(sample.at) > Date.parse(r.statusAt));
    const battery = sampled ? sample.batteryPct : r.batteryPct;
    const status = r.status || {};
    $("robot-title").textContent = robotLabel(r);
    dl.dataset.stale = stale;
    dl.classList.toggle("stale", stale);
    fields(dl, [
      ["Robot", el("span", { class: "mono" }, r.robotId)],
      ["Object", r.objectName || "—"],
      ["Edge", el("span", { class: "mono" }, r.edgeId)],
      ["Enabled", r.enabled ? "yes" : el("span", { class: "warn" }, "no: it takes no lease, command or settings")],
      ["Connection", el("span", {}, connectionEl(r.connection), r.connection && r.connection.reason
        ? el("span", { class: "muted" }, ` ${r.connection.reason}`) : null)],
      ["State", el("span", { class: "robot-state-fact" }, stateEl(r.state, stale, r.lastSeenAt))],
      ["Battery", el("span", { class: "robot-battery" }, batteryText(battery, r.charging))],
      ["Faults", (r.faults || []).length ? el("span", { class: "warn" }, r.faults.join(", ")) : "none"],
      ["Current command", status.currentCommandId ? el("span", { class: "mono" }, short(status.currentCommandId)) : "—"],
      ["Last heard", seenEl(r.lastSeenAt)],
      ["Status reported", r.statusAt ? timeEl(r.statusAt) : "—"],
    ]);
  }

  drawLease() {
    const box = document.getElementById("robot-lease");
    if (!box || !this.robot) return;
    const lease = this.liveLease();
    const mine = this.mine(lease);
    box.dataset.holder = lease ? holderText(lease) : "";
    box.dataset.mine = mine;
    box.querySelector(".lease-state").replaceChildren(...(lease ? [
      "Held by ", el("strong", { class: "lease-holder" }, holderText(lease)), mine ? " (you)" : "",
      " · fencing token ", el("span", { class: "fencing-token mono" }, lease.fencingToken),
      " · ", el("span", { class: "lease-expiry", dataset: { until: lease.expiresAt } }, this.countdown(lease)),
      " (", timeEl(lease.expiresAt, { part: "time" }), ")",
      mine ? el("div", { class: "muted" }, "Renewed automatically while this page is open.") : "",
    ] : [el("span", { class: "muted" }, "Nobody holds the lease.")]));
    const actions = [];
    if (can(this.me, "robots.command")) {
      if (!mine) {
        actions.push(el("button", { type: "button", class: "take-lease", onclick: () => this.takeLease() }, "Take lease"));
      } else {
        actions.push(el("button", { type: "button", class: "release-lease", onclick: () => this.releaseLease() }, "Release"));
      }
      if (lease && !mine && can(this.me, "robots.force")) {
        actions.push(el("button", { type: "button", class: "danger take-over", onclick: () => reasonDialog(
          `Take over the lease of ${robotName(this.robot)} from ${holderText(lease)}`, "Take over",
          (reason) => this.takeLease({ force: true, reason })) }, "Take over…"));
      }
    }
    box.querySelector(".lease-actions").replaceChildren(...actions);
    const hint = document.querySelector("#robot-command-form .lease-hint");
    if (hint) hint.textContent = mine ? `Sent under your lease (fencing token ${lease.fencingToken}).`
      : "Take the lease to command this robot; the emergency stop needs none.";
  }

  countdown(lease) {
    const left = Math.ceil((Date.parse(lease.expiresAt) - Date.now()) / 1000);
    return left > 0 ? `expires in ${left} s` : "expired";
  }

  drawCommands() {
    const slot = document.querySelector("#robot-commands .command-list-slot");
    if (!slot) return;
    const list = [...this.commands.values()].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))
      .slice(0, COMMAND_LIMIT);
    if (!list.length) { slot.replaceChildren(el("p", { class: "muted command-empty" }, "No commands yet")); return; }
    const canCancel = can(this.me, "robots.command");
    slot.replaceChildren(el("table", { class: "grid small command-list", id: "robot-command-list" },
      el("thead", {}, el("tr", {}, ...["When", "Who", "Command", "Reason", "Status", "The robot's word", ""]
        .map((h) => el("th", {}, h)))),
      el("tbody", {}, ...list.map((c) => el("tr", { dataset: { id: c.commandId, status: c.status, type: c.commandType } },
        el("td", { class: "nowrap" }, timeEl(c.createdAt, { part: "time" })),
        el("td", {}, c.requestedName || c.requestedBy),
        el("td", { class: "command-what" }, describeCommand(c),
           c.fencingToken !== null ? el("span", { class: "muted" }, ` · token ${c.fencingToken}`) : null),
        el("td", {}, c.reason || ""),
        el("td", { class: "command-status", dataset: { status: c.status } }, c.status,
           c.late ? el("span", { class: "late-tag", title: "The word came after the hub had stopped waiting" }, " late")
             : null),
        el("td", { class: "command-ack" }, ackText(c)),
        el("td", { class: "row-actions" }, canCancel && this.cancellable(c)
          ? el("button", { type: "button", class: "cancel-command", onclick: () => this.cancel(c) }, "Cancel") : null))))));
  }

  // An open command a person gave (a stop, or a cancel itself, is not taken back).
  cancellable(c) {
    return OPEN.has(c.status) && c.kind === "cmd" && !UNCANCELLABLE.has(c.commandType);
  }

  drawSettings() {
    const slot = document.querySelector("#robot-settings .settings-table-slot");
    if (!slot || !this.robot) return;
    const { desired, reported, pending } = this.robot.settings || {};
    const want = (desired && desired.settings) || {};
    const have = (reported && reported.settings) || {};
    const offered = new Set((((this.robot.capability || {}).capability || {}).settings || []).map((s) => s.name));
    const names = Object.keys(SETTINGS).filter((n) => offered.has(n) || n in want || n in have);
    const waiting = pending || {};
    const rows = (names.length ? names : Object.keys(SETTINGS)).map((name) => el("tr", {
      class: name in waiting ? "pending" : "", dataset: { setting: name, pending: name in waiting } },
      el("td", { class: "setting-name" }, SETTINGS[name]),
      el("td", { class: "desired" }, name in want ? settingText(name, want[name]) : el("span", { class: "muted" }, "—")),
      el("td", { class: "reported" }, name in have ? settingText(name, have[name]) : el("span", { class: "muted" }, "—")),
      el("td", { class: "pending-mark" }, name in waiting ? "not running yet" : "")));
    const notes = [];
    if (desired) notes.push(el("div", {}, `Desired by ${desired.setByName || desired.setBy}, `, timeEl(desired.setAt)));
    if (reported) notes.push(el("div", {}, "Reported by the robot ", timeEl(reported.sentAt)));
    const agreed = desired && !Object.keys(waiting).length;
    slot.replaceChildren(
      el("table", { class: "grid small settings-table", id: "robot-settings-table" },
        el("thead", {}, el("tr", {}, ...["Setting", "Desired", "Reported", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...rows)),
      el("p", { class: Object.keys(waiting).length ? "warn settings-summary" : "muted settings-summary" },
        Object.keys(waiting).length ? "The robot does not run with the marked settings yet."
          : agreed ? "The robot runs with the desired settings." : "No desired settings sent yet."),
      el("div", { class: "muted" }, ...notes));
  }

  drawPosition() {
    if (!this.position || this.plan === undefined) return;
    this.drawPose();
  }

  drawPose() {
    const sample = this.newest();
    const old = !!sample && (this.stale() || Date.now() - Date.parse(sample.at) > STALE_AFTER_MS);
    this.position.setPose(sample, old);
  }

  drawCharts() {
    const slot = document.querySelector("#robot-telemetry .telemetry-slot");
    if (!slot) return;
    slot.classList.remove("muted");
    if (!this.samples.length) {
      slot.replaceChildren(el("p", { class: "muted" }, `No telemetry in the last ${this.windowMin} minutes.`));
      return;
    }
    slot.replaceChildren(telemetryCharts(this.samples, Date.now()),
      el("p", { class: "muted" }, `The last ${this.windowMin} minutes, ${this.samples.length} samples; live.`));
  }

  drawIdentity() {
    const dl = document.querySelector("#robot-identity dl");
    if (!dl || !this.robot) return;
    const identity = this.robot.identity;
    const capability = this.robot.capability;
    const i = (identity && identity.identity) || {};
    const c = (capability && capability.capability) || {};
    const spec = (s) => `${s.name} (${s.type}${s.min !== undefined && s.max !== undefined ? ` ${s.min}–${s.max}` : ""}` +
      `${s.unit ? ` ${s.unit}` : ""})`;
    fields(dl, [
      ...(identity ? [["Manufacturer", i.manufacturer], ["Model", i.model], ["Serial number", i.serialNumber],
                      ["Firmware", i.firmwareVersion], ["Bridge", i.bridgeVersion], ["Its own name", i.name || "—"],
                      ["Identity reported", timeEl(identity.sentAt)]]
        : [["Identity", el("span", { class: "muted" }, "not reported yet")]]),
      ...(capability ? [["Commands", (c.commands || []).join(", ")],
                        ["Settings", (c.settings || []).map(spec).join(", ") || "—"],
                        ["Telemetry", (c.telemetry || []).join(", ") || "—"],
                        ["Heartbeat", `every ${c.heartbeatIntervalS} s`],
                        ["Capability reported", timeEl(capability.sentAt)]]
        : [["Capability", el("span", { class: "muted" }, "not reported yet")]]),
    ]);
  }

  drawMetadata() {
    if (this.forms && this.forms.metadata) return;
    const slot = document.querySelector("#robot-metadata .metadata-slot");
    if (!slot || !this.robot) return;
    const dl = el("dl", { class: "fields" });
    fields(dl, [["Display name", this.robot.displayName || "—"], ["Tags", (this.robot.tags || []).join(", ") || "—"],
                ["Notes", this.robot.notes || "—"]]);
    slot.replaceChildren(dl);
  }

  // Every second: ages, the lease's countdown, and whether what is shown has gone stale.
  tick() {
    if (!this.shown || !this.robot) return;
    tickAges($("robot-body"));
    const expiry = document.querySelector("#robot-lease .lease-expiry");
    if (this.lease && !this.liveLease()) this.setLease(null);  // over by time, whether or not anyone said so
    else if (expiry && this.lease) expiry.textContent = this.countdown(this.lease);
    const dl = document.querySelector("#robot-facts dl");
    if (dl && dl.dataset.stale !== String(this.stale())) { this.drawFacts(); this.drawPose(); }
  }
}
