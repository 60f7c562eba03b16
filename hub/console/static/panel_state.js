// Panels and their live state, as the alarm and object details show them: every zone, partition
// and output by its number and configured name ("Zone 3 Biuro"), what is active on it in words,
// since when, and UNKNOWN while the panel's link is down (its old state is not the truth then).
import * as API from "./api.js";
import { el, timeEl } from "./queue.js";

const ELEMENT_WORD = { zone: "Zone", partition: "Partition", output: "Output" };
const NAME_LISTS = { zone: "zones", partition: "partitions", output: "outputs" };

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
  // `ids`: the set of panel ids on screen (the live stream refreshes those).
  constructor(ids) {
    this.ids = ids;
    this.names = new Map();  // panel id → Map("zone:3" → "Biuro")
  }

  // Show `panels` in `box`, each with its state table; reads their element names once.
  render(box, panels) {
    this.ids.clear();
    box.replaceChildren(...(panels || []).map((p) => {
      this.ids.add(p.id);
      return el("div", { class: "panel", id: `panel-${p.id}` },
        el("div", {}, el("strong", {}, `Panel #${p.id} `), `${p.model || ""} ${p.edge_id}/${p.source} `,
           el("span", { class: "link", dataset: { link: p.link_status } }, p.link_status)),
        el("div", { class: "elements" }, "loading…"));
    }));
    if (!panels || !panels.length) box.append(el("p", { class: "muted" }, "No panels"));
    for (const p of panels || []) this.loadNames(p.id).then(() => this.refresh(p.id));
  }

  async loadNames(id) {
    const names = new Map();
    try {
      const panel = await API.get(`/api/v1/panels/${id}`);
      for (const [element, list] of Object.entries(NAME_LISTS)) {
        for (const item of panel[list] || []) if (item.name) names.set(`${element}:${item.number}`, item.name);
      }
    } catch { /* numbers alone, then */ }
    this.names.set(id, names);
  }

  // Read panel `id`'s state again and redraw it (when it is on screen).
  async refresh(id) {
    const box = document.getElementById(`panel-${id}`);
    if (!box) return;
    let st;
    try { st = await API.get(`/api/v1/panels/${id}/state`); } catch { return; }
    const names = this.names.get(id) || new Map();
    const unknown = st.stale || st.link_status !== "CONNECTED";
    const link = box.querySelector(".link");
    link.textContent = st.link_status;
    link.dataset.link = st.link_status;
    const rows = (st.elements || []).map((e) => el("tr", { class: unknown ? "unknown" : "" },
      el("td", {}, elementName(e.element, e.number, names.get(`${e.element}:${e.number}`))),
      el("td", {}, unknown ? "UNKNOWN" : stateText(e.state)),
      el("td", { class: "muted" }, unknown ? "" : timeEl(e.updated_at))));
    box.querySelector(".elements").replaceChildren(
      unknown ? el("p", { class: "warn" }, `Link ${st.link_status}: states UNKNOWN`) : "",
      rows.length ? el("table", { class: "grid small" },
        el("thead", {}, el("tr", {}, el("th", {}, "Element"), el("th", {}, "State"), el("th", {}, "Since"))),
        el("tbody", {}, ...rows))
        : el("span", { class: "muted" }, "No state yet"));
  }
}
