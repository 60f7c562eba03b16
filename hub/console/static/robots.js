// The Robots page (robots.view; docs/architecture.md §5 "Robots"): every robot the reader may see
// with its object, connection, state, battery, faults, when it was last heard from and who holds
// its lease, kept live from the stream (robot.updated, robot.telemetry, robot.lease.updated) and
// read again after a reconnect. A robot not heard from lately, or whose link the edge reports down,
// is greyed with the time its data is from: never shown as current. Also what the robot detail
// (robot_detail.js) shares: names, staleness, connection, battery, and the emergency stop, which
// needs no lease and is one click and a confirmation away.
import * as API from "./api.js";
import { confirmAction, randomText } from "./forms.js";
import { el, fmtTime, timeEl } from "./queue.js";

const $ = (id) => document.getElementById(id);

export const STALE_AFTER_MS = 60_000;  // nothing heard for this long: what is shown is old
const LIST_LIMIT = 500;
const TICK_MS = 1000;
const LINK_DOWN = new Set(["OFFLINE", "CONNECTION_BROKEN"]);
const ESTOP_REASON = "emergency stop from the console";

export const can = (me, permission) => !!me && (me.permissions || []).includes(permission);

// "Gate patrol", else the robot's id.
export const robotName = (r) => (r && (r.displayName || r.robotId)) || "";
// "Gate patrol (RB-001)", else the robot's id.
export const robotLabel = (r) => (r.displayName ? `${r.displayName} (${r.robotId})` : r.robotId);

// Not current: the edge says its link is down, or nothing was heard from it for STALE_AFTER_MS.
export function isStale(r, now = Date.now()) {
  const connection = r.connection && r.connection.state;
  if (LINK_DOWN.has(connection) || !r.lastSeenAt) return true;
  return now - Date.parse(r.lastSeenAt) > STALE_AFTER_MS;
}

// "12 s ago", "4 min ago", "3 h 5 min ago".
export function ago(iso, now = Date.now()) {
  if (!iso) return "";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

// When a robot was last heard from: how long ago (kept ticking by tickAges) and the time itself.
export function seenEl(iso) {
  if (!iso) return el("span", { class: "muted" }, "never");
  return el("span", { class: "seen" }, el("span", { class: "ago", dataset: { since: iso } }, ago(iso)), " · ", timeEl(iso));
}

export function tickAges(root) {
  for (const node of root.querySelectorAll(".ago[data-since]")) node.textContent = ago(node.dataset.since);
}

// The edge's word on the robot's link, coloured; since when and why on hover.
export function connectionEl(connection) {
  const state = (connection && connection.state) || "UNKNOWN";
  const since = connection && connection.since ? `since ${fmtTime(connection.since)}` : "";
  const title = [since, connection && connection.reason].filter(Boolean).join(": ");
  return el("span", { class: "robot-conn", dataset: { state }, title: title || null }, state);
}

export function batteryText(pct, charging) {
  if (pct === null || pct === undefined) return "—";
  return `${Number(pct).toFixed(Number.isInteger(pct) ? 0 : 1)} %${charging ? ", charging" : ""}`;
}

// What the robot is doing; with `stale`, greyed and said to be as of `since`.
export function stateEl(state, stale, since) {
  return el("span", { class: `robot-state${state === "EMERGENCY_STOP" || state === "ERROR" ? " alert" : ""}`,
                      dataset: { state: state || "" } }, state || "—",
    stale ? el("span", { class: "stale-tag" }, since ? ` as of ${fmtTime(since)}` : " no report") : null);
}

export const holderText = (lease) => (lease && lease.holder ? lease.holder.name || `user ${lease.holder.id}` : "");

// Idempotency-Keys of emergency stops whose answer was lost: pressing again sends the same one.
const estopKeys = new Map();

// Stop the robot now: a confirmation, then the `estop` command (no lease: stopping is always
// allowed). Resolves to the command given, or null when not confirmed or refused (`toast` says why).
export async function emergencyStop(robot, toast) {
  const where = robot.objectName ? ` at ${robot.objectName}` : "";
  const question = `Emergency stop ${robotLabel(robot)}${where}? It stops at once and stays stopped until ` +
    "someone resets it.";
  if (!await confirmAction(question, "EMERGENCY STOP")) return null;
  const key = estopKeys.get(robot.robotId) || randomText(32);
  estopKeys.set(robot.robotId, key);
  try {
    const command = await API.post(`/api/v1/robots/${encodeURIComponent(robot.robotId)}/commands`,
      { commandType: "estop", payload: {}, reason: ESTOP_REASON }, { "Idempotency-Key": key });
    estopKeys.delete(robot.robotId);
    toast(`Emergency stop sent to ${robotName(robot)}: waiting for the robot`, "warn");
    return command;
  } catch (e) {
    if (e.status !== 0) estopKeys.delete(robot.robotId);
    toast(e.status === 0 ? "The hub cannot be reached: press EMERGENCY STOP again (it is given once)"
      : `Emergency stop refused: ${e.message}`, "error");
    return null;
  }
}

// The EMERGENCY STOP button: there for everyone, usable by who may command robots. `robot`: the
// robot, or a function giving it as it is when the button is pressed; `onSent(command)` gets the
// command given.
export function estopButton(robot, me, toast, { attrs = {}, onSent = null } = {}) {
  const allowed = can(me, "robots.command");
  const current = typeof robot === "function" ? robot : () => robot;
  const press = async (e) => {
    e.stopPropagation();
    const command = await emergencyStop(current(), toast);
    if (command && onSent) onSent(command);
  };
  return el("button", { type: "button", class: "estop", ...attrs, disabled: !allowed, onclick: press,
                        title: allowed ? "Stop the robot at once (no lease needed)" : "Your role may not command robots" },
            "EMERGENCY STOP");
}

// ---------- the list

export class RobotsPage {
  constructor({ toast, showView }) {
    this.toast = toast;
    this.showView = showView;
    this.me = null;           // set while the page is on screen
    this.robots = new Map();  // robot id → its summary, as REST and the stream last said
    this.liveAt = new Map();  // robot id → when the stream last changed it (performance.now())
    this.loadedAt = null;
    this.loads = 0;
    this.timer = null;
  }

  allowed(me) { return can(me, "robots.view"); }

  async show(me) {
    this.me = me;
    this.showView("robots");
    if (!this.timer) this.timer = setInterval(() => this.tick(), TICK_MS);
    await this.load();
  }

  leave() {
    this.me = null;
    clearInterval(this.timer);
    this.timer = null;
  }

  get shown() { return this.me !== null; }

  // Read the list (on showing it, and after the live stream reconnects). A robot the stream changed
  // while the answer was on its way keeps the stream's newer word.
  async load() {
    const n = ++this.loads;
    const started = performance.now();
    try {
      const page = await API.get(`/api/v1/robots?limit=${LIST_LIMIT}`);
      if (n !== this.loads || !this.shown) return;
      const fresh = new Map(page.items.map((r) => [r.robotId, r]));
      for (const [id, r] of this.robots) if ((this.liveAt.get(id) || 0) > started && fresh.has(id)) fresh.set(id, r);
      this.robots = fresh;
      this.loadedAt = Date.now();
      $("robots-stale").hidden = true;
      $("robots").classList.remove("stale-table");
      this.render();
    } catch (e) {
      if (n !== this.loads || !this.shown) return;
      const since = this.loadedAt ? `list from ${fmtTime(new Date(this.loadedAt))}` : "no data";
      $("robots-stale").textContent = `⚠ Not refreshed (${e.message}): ${since}`;
      $("robots-stale").hidden = false;
      $("robots").classList.add("stale-table");
    }
  }

  // A live message about robots (app.js routes robot.* here).
  changed(msg) {
    const p = msg.payload || {};
    const id = p.robotId || (p.robot && p.robot.robotId);
    if (!id) return;
    if (msg.topic === "robot.updated" && p.robot) {
      // A new status carries the battery now; until then the samples' is newer than the old status's.
      const known = this.robots.get(id);
      const sampled = known && !(p.changed || []).includes("status") ? known.liveBattery : undefined;
      this.robots.set(id, { ...p.robot, liveBattery: sampled });
    } else if (msg.topic === "robot.telemetry" && this.robots.has(id)) {
      const r = this.robots.get(id);
      if (r.lastSeenAt && Date.parse(p.at) < Date.parse(r.lastSeenAt)) return;
      // Status is journaled on a change of state only: the samples carry the battery meanwhile.
      this.robots.set(id, { ...r, lastSeenAt: p.at, liveBattery: p.batteryPct });
    } else if (msg.topic === "robot.lease.updated" && this.robots.has(id)) {
      this.robots.set(id, { ...this.robots.get(id), lease: p.lease });
    } else {
      return;
    }
    this.liveAt.set(id, performance.now());
    if (this.shown) this.drawRow(id);
  }

  render() {
    const rows = [...this.robots.values()].sort((a, b) => a.robotId.localeCompare(b.robotId)).map((r) => this.row(r));
    $("robots-body").replaceChildren(...rows);
    $("robots-empty").hidden = rows.length > 0;
    $("robots-count").textContent = `(${rows.length})`;
    $("robots-actions-head").hidden = !can(this.me, "robots.command");
  }

  // Redraw one robot's row in place: its cells but the last, so a press on its EMERGENCY STOP is
  // never lost to a live update.
  drawRow(id) {
    const old = document.querySelector(`#robots-body tr[data-robot="${CSS.escape(id)}"]`);
    if (!old) { this.render(); return; }
    const fresh = this.row(this.robots.get(id));
    old.className = fresh.className;
    Object.assign(old.dataset, fresh.dataset);
    const keep = can(this.me, "robots.command") ? 1 : 0;
    // Each cell moves out of `fresh` as it replaces the old one: the next is always its first.
    [...old.cells].slice(0, old.cells.length - keep).forEach((cell) => cell.replaceWith(fresh.cells[0]));
  }

  row(r) {
    const stale = isStale(r);
    const battery = r.liveBattery ?? r.batteryPct;
    const lease = r.lease && Date.parse(r.lease.expiresAt) > Date.now() ? r.lease : null;
    const faults = r.faults || [];
    return el("tr", { class: `robot-row clickable${stale ? " stale-row" : ""}${r.enabled ? "" : " inactive"}`,
                      dataset: { robot: r.robotId, state: r.state || "", connection: (r.connection || {}).state || "",
                                 stale: stale ? "true" : "false", leaseUntil: lease ? lease.expiresAt : "" },
                      onclick: () => { location.hash = `#/robots/${encodeURIComponent(r.robotId)}`; } },
      el("td", { class: "robot-name" }, el("strong", {}, robotName(r)), el("div", { class: "mono muted" }, r.robotId),
         r.enabled ? null : el("div", { class: "muted" }, "disabled")),
      el("td", {}, r.objectName || el("span", { class: "muted" }, "—")),
      el("td", { class: "connection" }, connectionEl(r.connection)),
      el("td", { class: "state" }, stateEl(r.state, stale, r.lastSeenAt)),
      el("td", { class: "battery num" }, batteryText(battery, r.charging)),
      el("td", { class: `faults${faults.length ? " bad" : ""}` }, faults.length ? faults.join(", ") : "—"),
      el("td", { class: "last-seen" }, seenEl(r.lastSeenAt)),
      el("td", { class: "lease" }, lease ? `${holderText(lease)} until ${fmtTime(lease.expiresAt, { part: "time" })}`
        : el("span", { class: "muted" }, "—")),
      can(this.me, "robots.command") ? el("td", { class: "row-actions" },
        estopButton(() => this.robots.get(r.robotId) || r, this.me, this.toast)) : null);
  }

  // Every second: the ages move on, a robot that fell silent turns stale, a lease runs out.
  tick() {
    if (!this.shown) return;
    tickAges($("robots-body"));
    const now = Date.now();
    for (const row of document.querySelectorAll("#robots-body tr[data-robot]")) {
      const r = this.robots.get(row.dataset.robot);
      const leaseOver = row.dataset.leaseUntil && Date.parse(row.dataset.leaseUntil) <= now;
      if (r && (String(isStale(r, now)) !== row.dataset.stale || leaseOver)) this.drawRow(r.robotId);
    }
  }
}
