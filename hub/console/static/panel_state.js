// Panels and their live state, as the alarm and object details show them: every zone, partition
// and output by its number and configured name ("Zone 3 Biuro"), what is active on it in words,
// since when, and UNKNOWN while the panel's link is down (its old state is not the truth then).
// A partition with an arm or disarm on its way shows ARMING or DISARMING until the command's
// result; whoever may give commands (panels.command) has them beside each element; everyone sees
// the panel's recent commands (panel_commands.js).
import * as API from "./api.js";
import { actionButton, el, timeEl } from "./queue.js";
import { notify } from "./notices.js";
import { COMMAND_PERMISSION, CommandBook, ELEMENT_ACTIONS, ACTIONS, commandDialog, commandTable, describe, isOpen,
         outcomeText } from "./panel_commands.js";

const ELEMENT_WORD = { zone: "Zone", partition: "Partition", output: "Output" };
const NAME_LISTS = { zone: "zones", partition: "partitions", output: "outputs" };
const ELEMENT_ORDER = ["partition", "zone", "output"];

// "Zone 3 Biuro"; "Zone 3" while it has no name.
function elementName(element, number, name) {
  return [ELEMENT_WORD[element] || element, number, name || ""].join(" ").trim();
}

// What is active on an element ("violated, bypassed", "armed, mode 1"); "normal" when nothing is.
function stateText(s) {
  if (s === null || s === undefined) return "";
  if (typeof s !== "object") return String(s);
  const words = (k) => k.replace(/_/g, " ");
  const value = (v) => (typeof v === "object" ? Object.entries(v).map(([k, x]) => `${words(k)} ${x}`).join(", ") : v);
  const active = Object.entries(s).filter(([, v]) => v !== false && v !== null && v !== undefined)
    .map(([k, v]) => (v === true ? words(k) : `${words(k)} ${value(v)}`));
  return active.length ? active.join(", ") : "normal";
}

export class PanelStates {
  // `ids`: the set of panel ids on screen (the live stream refreshes those); `me()`: the signed-in
  // user; `toast(text, kind)`: a passing message.
  constructor(ids, { me, toast }) {
    this.ids = ids;
    this.me = me;
    this.toast = toast;
    this.box = null;         // where the panels are on screen
    this.panels = new Map(); // panel id → {panel, site}; kept, so a result names its site after the page changed
    this.names = new Map();  // panel id → Map("zone:3" → "Biuro")
    this.configured = new Map(); // panel id → ["partition:1", …] from the panel's configuration
    this.states = new Map(); // panel id → its last GET /state
    this.book = new CommandBook();
  }

  // Show `panels` of the object `site` (its name) in `box`, each with its state table and commands.
  render(box, panels, site) {
    // One place shows panels at a time: the other view's copies go, so ids stay unique.
    if (this.box && this.box !== box) this.box.replaceChildren();
    this.box = box;
    this.ids.clear();
    this.states.clear();  // read afresh: an earlier visit's state is not drawn meanwhile
    box.replaceChildren(...(panels || []).map((p) => {
      this.ids.add(p.id);
      this.panels.set(p.id, { panel: p, site: site || `object #${p.object_id}` });
      return el("div", { class: "panel", id: `panel-${p.id}` },
        el("div", {}, el("strong", {}, `Panel #${p.id} `), `${p.model || ""} ${p.edge_id}/${p.source} `,
           el("span", { class: "link", dataset: { link: p.link_status } }, p.link_status)),
        el("div", { class: "elements" }, "loading…"),
        el("div", { class: "commands" }, el("h4", {}, "Commands"), el("div", { class: "command-body muted" }, "loading…")));
    }));
    if (!panels || !panels.length) box.append(el("p", { class: "muted" }, "No panels"));
    this.book.keep(this.ids);
    for (const p of panels || []) {
      this.loadNames(p.id).then(() => this.refresh(p.id));
      this.loadCommands(p.id);
    }
  }

  async loadNames(id) {
    const names = new Map();
    const configured = [];
    try {
      const panel = await API.get(`/api/v1/panels/${id}`);
      for (const [element, list] of Object.entries(NAME_LISTS)) {
        for (const item of panel[list] || []) {
          configured.push(`${element}:${item.number}`);
          if (item.name) names.set(`${element}:${item.number}`, item.name);
        }
      }
    } catch { /* numbers alone, then */ }
    this.names.set(id, names);
    this.configured.set(id, configured);
  }

  nameOf(id) {
    const names = this.names.get(id) || new Map();
    return (element, number) => elementName(element, number, names.get(`${element}:${number}`));
  }

  // Read the panel's commands (on showing it; `reread`: the live stream is back after a cut, and
  // what ended meanwhile is told as it would have been live).
  async loadCommands(id, { reread = false } = {}) {
    let commands;
    try { commands = await this.book.fetch(id); } catch (e) {
      const body = document.querySelector(`#panel-${id} .command-body`);
      if (body) body.replaceChildren(el("span", { class: "error" }, `Commands: ${e.message}`));
      return;
    }
    for (const c of commands) {
      if (reread) this.commandUpdated(c, { reread });
      else this.book.put(c);
    }
    this.draw(id);
    this.drawCommands(id);
  }

  // The live stream was cut and is back: what happened meanwhile to the commands on screen.
  reloadCommands() {
    for (const id of this.ids) this.loadCommands(id, { reread: true });
  }

  // Read panel `id`'s state again and redraw it (when it is on screen).
  async refresh(id) {
    if (!document.getElementById(`panel-${id}`)) return;
    try { this.states.set(id, await API.get(`/api/v1/panels/${id}/state`)); } catch { return; }
    this.draw(id);
  }

  // A command changed (the live stream's `command.updated`, or read again after a cut): merge it,
  // redraw its panel, and say how it ended to whoever gave it, or to anyone watching the panel
  // when it failed. `reread`: only the end of a command this console saw open is told.
  commandUpdated(c, { reread = false } = {}) {
    const before = this.book.get(c);
    if (!this.book.put(c)) return;
    const shown = this.ids.has(c.panel_id);
    if (shown) { this.draw(c.panel_id); this.drawCommands(c.panel_id); }
    if (isOpen(c) || (reread && !(before && isOpen(before)))) return;
    if (c.status === "ACK" && shown) this.refresh(c.panel_id);  // the state follows from panel.state; read it now too
    const me = this.me();
    const mine = !!me && c.requested_by === me.actor;
    const known = this.panels.get(c.panel_id);
    const text = outcomeText(c, known ? known.site : `object #${c.object_id}`, this.nameOf(c.panel_id));
    if (!text) return;
    if (c.status !== "ACK" && (mine || shown)) notify(text, { kind: "warn", dataset: { notice: "command", command: c.id } });
    else if (c.status === "ACK" && mine) this.toast(text, "info");
  }

  // Give a command: the dialog, then the command is shown open at once (its 202), before the stream says so.
  give(id, type, number) {
    const known = this.panels.get(id);
    commandDialog({ type, panel: known.panel, site: known.site, number, nameOf: this.nameOf(id), onDone: (c) => {
      this.commandUpdated(c);
      this.toast(`${describe(c, this.nameOf(id))} at ${known.site}: sent, waiting for the panel`, "info");
    } });
  }

  // The state table from the last read state and the open commands.
  draw(id) {
    const box = document.getElementById(`panel-${id}`);
    const st = this.states.get(id);
    if (!box || !st) return;
    const nameOf = this.nameOf(id);
    const unknown = st.stale || st.link_status !== "CONNECTED";
    const me = this.me();
    const canCommand = !!me && (me.permissions || []).includes(COMMAND_PERMISSION);
    const link = box.querySelector(".link");
    link.textContent = st.link_status;
    link.dataset.link = st.link_status;
    const byKey = new Map((st.elements || []).map((e) => [`${e.element}:${e.number}`, e]));
    for (const key of this.configured.get(id) || []) {
      if (!byKey.has(key)) {
        const [element, number] = key.split(":");
        byKey.set(key, { element, number: Number(number), state: null, updated_at: null });
      }
    }
    const elements = [...byKey.values()].sort((a, b) =>
      ELEMENT_ORDER.indexOf(a.element) - ELEMENT_ORDER.indexOf(b.element) || a.number - b.number);
    const rows = elements.map((e) => {
      const open = this.book.openFor(id, e.element, e.number);
      const moving = [...open].reverse().find((c) => c.transitional);  // the newest intent
      const real = unknown ? "UNKNOWN" : e.state === null ? "—" : stateText(e.state);
      const shown = moving
        ? el("span", { class: "transitional", title: `Until the panel answers; last known: ${real}` }, moving.transitional)
        : real;
      const waiting = open.filter((c) => !c.transitional)
        .map((c) => el("span", { class: "command-pending" }, ` ${ACTIONS[c.type].button}: ${c.status}`));
      const buttons = canCommand ? ELEMENT_ACTIONS[e.element].map((type) => actionButton({
        class: `cmd cmd-${type.replace("_", "-")}`, dataset: { type },
        onclick: () => this.give(id, type, e.number) }, ACTIONS[type].button)) : [];
      return el("tr", { class: unknown ? "unknown" : "",
                        dataset: { element: e.element, number: e.number, transitional: moving ? moving.transitional : "" } },
        el("td", {}, nameOf(e.element, e.number)),
        el("td", { class: "state" }, shown, ...waiting),
        el("td", { class: "muted" }, unknown ? "" : timeEl(e.updated_at)),
        canCommand ? el("td", { class: "actions cmd-actions" }, ...buttons) : null);
    });
    box.querySelector(".elements").replaceChildren(
      unknown ? el("p", { class: "warn" }, `Link ${st.link_status}: states UNKNOWN`) : "",
      rows.length ? el("table", { class: "grid small" },
        el("thead", {}, el("tr", {}, el("th", {}, "Element"), el("th", {}, "State"), el("th", {}, "Since"),
                           canCommand ? el("th", {}, "Commands") : null)),
        el("tbody", {}, ...rows))
        : el("span", { class: "muted" }, "No state yet"));
  }

  drawCommands(id) {
    const body = document.querySelector(`#panel-${id} .command-body`);
    if (!body) return;
    body.classList.remove("muted");
    body.replaceChildren(commandTable(id, this.book.recent(id), this.nameOf(id)));
  }
}
