// The panel editor: a panel's owning edge and its id there (fixed once the panel exists: its
// events arrive under that pair), model and address, the integration key (write-only: sent when
// typed, cleared by its button, and only "set" or "not set" is ever shown), and its partitions,
// zones (name, partition, priority override) and outputs as tables edited in place; its auto-arm
// schedules, open/close supervision and stored user codes (panel_schedules.js). Routes:
// #/admin-panel/<id>, #/admin-panel/new/<object id>.
import * as API from "./api.js";
import { el } from "./queue.js";
import { Field, Form, changed, confirmAction } from "./forms.js";
import { PanelSchedules } from "./panel_schedules.js";

const PRIORITIES = ["CRITICAL", "HIGH", "NORMAL", "LOW"];
const EDGE_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;   // PanelIn.edge_id
const KEY_CHARS = /^[\x00-\x7f]*$/;              // the ETHM-1's integration key: ASCII, at most 12
const ANY_KIND = "*";                           // a zone override for every event kind
const STALE = "Data changed — refreshed";

const $ = (id) => document.getElementById(id);

// PanelIn's fields; `panel` given: the fields PanelPatch cannot change are shown, not sent.
function panelFields(edges, panel = null) {
  const fixed = panel !== null;
  const p = panel || {};
  const edgeOptions = edges.map((e) => [e.edge_id, e.object ? `${e.edge_id} (${e.object.name})` : e.edge_id]);
  if (fixed && !edgeOptions.some(([id]) => id === p.edge_id)) edgeOptions.push([p.edge_id, p.edge_id]);
  return [
    new Field({ name: "edge_id", label: "Owning edge", type: "select", required: true, disabled: fixed, value: p.edge_id,
                options: [["", "— choose —"], ...edgeOptions], pattern: EDGE_ID,
                patternMessage: "lower-case letters, digits and dashes", hint: fixed ? "Fixed: the panel's events arrive under this edge." : null }),
    new Field({ name: "source", label: "Panel id on the edge", required: true, maxLength: 200, disabled: fixed, value: p.source,
                placeholder: "panel-1", hint: fixed ? "Fixed, like the edge." : "As in the edge's configuration (satel.panels[].id)." }),
    new Field({ name: "model", label: "Model", maxLength: 100, value: p.model, placeholder: "INTEGRA 64 + ETHM-1" }),
    new Field({ name: "host", label: "Host (as the edge reaches it)", maxLength: 255, value: p.host }),
    new Field({ name: "port", label: "Port", type: "number", integer: true, min: 1, max: 65535, value: p.port }),
    // Write-only: the hub never returns the key, so the field starts empty and empty sends nothing.
    new Field({ name: "integration_key", label: "Integration key (write-only)", type: "password", maxLength: 12,
                pattern: KEY_CHARS, patternMessage: "ASCII characters only (no Polish letters)",
                autocomplete: "new-password",
                hint: fixed ? "Type a new key to replace it; leave empty to keep it." : "Optional: as set in the ETHM-1 module." }),
  ];
}

const priorityOptions = (none) => [...(none ? [["", none]] : []), ...PRIORITIES.map((p) => [p, p])];

// GET /panels/{id} answers a zone's priority_override as the JSON text PostgreSQL holds: parsed
// here, so it compares and edits as the object it is.
function withParsedOverrides(panel) {
  for (const z of panel.zones) {
    if (typeof z.priority_override === "string") z.priority_override = JSON.parse(z.priority_override);
  }
  return panel;
}

export class PanelEditor {
  constructor({ toast }) {
    this.toast = toast;
    this.panel = null;
    this.loading = 0;
    this.schedules = null;
  }

  // The page is left: an open user-code dialog closes, wiping what was typed.
  leave() { if (this.schedules) this.schedules.closeCodeDialog(); }

  async show(parts, me) {
    this.leave();
    const n = ++this.loading;
    const body = $("admin-panel-body");
    body.replaceChildren(el("p", { class: "muted" }, "Loading…"));
    let edges = [];
    try { edges = (await API.get("/api/v1/edges")).items; } catch (e) { this.toast(`Edges could not be loaded: ${e.message}`, "error"); }
    if (parts[0] === "new") {
      let o;
      try { o = await API.get(`/api/v1/objects/${Number(parts[1])}`); } catch (e) { this.toast(e.message, "error"); return; }
      if (n !== this.loading) return;
      this.panel = null;
      this.schedules = null;
      this.drawNew(o, edges);
      return;
    }
    let panel;
    try { panel = withParsedOverrides(await API.get(`/api/v1/panels/${Number(parts[0])}`)); } catch (e) { this.toast(e.message, "error"); return; }
    if (n !== this.loading) return;
    this.edges = edges;
    this.panel = panel;
    this.cards = Object.fromEntries(["panel", "partitions", "zones", "outputs", "auto-arm", "supervision", "user-codes"]
      .map((k) => [k, el("div", { class: "card", id: `panel-${k}-card` })]));
    body.replaceChildren(...Object.values(this.cards));
    $("admin-panel-back").href = `#/admin-objects/${panel.object_id}`;
    $("admin-panel-title").textContent = `Panel #${panel.id} — ${panel.edge_id} / ${panel.source}`;
    this.drawPanel();
    this.drawPartitions();
    this.drawZones();
    this.drawOutputs();
    this.schedules = new PanelSchedules({ panel, me, toast: this.toast });
    this.drawSchedules();
  }

  // Auto-arm, supervision and stored codes name partitions: drawn again when those change.
  drawSchedules() {
    this.schedules.panel = this.panel;
    this.schedules.drawAutoArm(this.cards["auto-arm"]);
    this.schedules.drawSupervision(this.cards.supervision);
    this.schedules.drawCodes(this.cards["user-codes"]);
  }

  drawNew(o, edges) {
    $("admin-panel-back").href = `#/admin-objects/${o.id}`;
    $("admin-panel-title").textContent = `New panel for ${o.name}`;
    const form = new Form(panelFields(edges), {
      submitLabel: "Add panel",
      errorFields: { panels_edge_id_source_key: "source", panels_edge_id_fkey: "edge_id" },
      // No Idempotency-Key: the hub refuses one here, as the body may carry the integration key.
      // A retry after a lost answer is still safe: (edge, source) is unique, so it is a 409.
      onSubmit: async (values) => {
        const { integration_key: key, ...body } = values;
        const made = await API.post("/api/v1/panels", { ...body, object_id: o.id, ...(key ? { integration_key: key } : {}) });
        this.toast(`Panel #${made.id} added`, "info");
        location.hash = `#/admin-panel/${made.id}`;
      },
    });
    form.element.id = "panel-form";
    $("admin-panel-body").replaceChildren(el("div", { class: "card" }, el("h3", {}, "Panel"),
      edges.length ? null : el("p", { class: "warn" }, "No edge exists yet: create one on the Edges page first."),
      form.element, this.keyState(false)));
  }

  // "set" or "not set"; for a saved panel with a key, the button that clears it.
  keyState(set, panel = null) {
    const clear = set && panel ? el("button", { type: "button", id: "panel-key-clear", class: "danger",
      onclick: () => this.clearKey(panel) }, "Clear") : null;
    return el("p", {}, "Integration key: ", el("strong", { id: "panel-key-state", dataset: { set } }, set ? "set" : "not set"),
      clear ? " " : null, clear);
  }

  async clearKey(p) {
    if (!await confirmAction(`Clear the integration key of panel #${p.id}? The hub forgets it.`, "Clear key")) return;
    try {
      await API.patch(`/api/v1/panels/${p.id}`, { version: p.version, integration_key: null });
      this.toast("Integration key cleared", "info");
    } catch (e) {
      if (e.status === 409) { this.stale("panel"); return; }
      this.toast(e.message, "error");
      return;
    }
    await this.refresh("panel");
  }

  async refresh(...cards) {
    try { this.panel = withParsedOverrides(await API.get(`/api/v1/panels/${this.panel.id}`)); } catch (e) { this.toast(e.message, "error"); return; }
    for (const card of cards) this[`draw${card[0].toUpperCase()}${card.slice(1)}`]();
  }

  stale(card) {
    this.toast(STALE, "warn");
    this.refresh(card);
  }

  drawPanel() {
    const p = this.panel;
    const form = new Form(panelFields(this.edges, p), {
      submitLabel: "Save panel", onStale: () => this.stale("panel"),
      onSubmit: async (values) => {
        const { integration_key: key, ...rest } = values;
        const diff = { ...changed(rest, p), ...(key ? { integration_key: key } : {}) };
        if (!Object.keys(diff).length) { this.toast("Nothing changed", "info"); return; }
        await API.patch(`/api/v1/panels/${p.id}`, { version: p.version, ...diff });
        this.toast("Panel saved", "info");
        await this.refresh("panel");
      },
    });
    form.element.id = "panel-form";
    this.cards.panel.replaceChildren(el("h3", {}, "Panel"), form.element, this.keyState(p.has_integration_key, p));
  }

  // A table of a panel's parts: one row form per part, and the row that adds one.
  drawParts(card, { title, plural, headers, rowFor, newRow }) {
    const rows = this.panel[plural].map((part) => {
      const form = rowFor(part);
      Object.assign(form.element.dataset, { number: part.number, version: part.version });
      return form.element;
    });
    const add = newRow();
    add.element.id = `${plural}-new`;
    this.cards[card].replaceChildren(el("h3", {}, title),
      el("table", { class: "grid small edit-table", id: `${plural}-table` },
        el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))), el("tbody", {}, ...rows, add.element)));
  }

  // Partitions and outputs: a number (fixed once added) and a name.
  numberedParts(card, label, maxNumber) {
    const plural = card;
    const title = `${label[0].toUpperCase()}${label.slice(1)}s`;
    const errorFields = { [`${plural}_panel_id_number_key`]: "number", [`${plural}_number_check`]: "number" };
    this.drawParts(card, {
      title, plural, headers: ["Number", "Name", ""],
      rowFor: (part) => new Form([
        new Field({ name: "name", label: `${title} ${part.number} name`, compact: true, maxLength: 100, value: part.name }),
      ], {
        row: true, lead: [String(part.number)], onStale: () => this.stale(card),
        onSubmit: async (values) => {
          if (values.name === part.name) { this.toast("Nothing changed", "info"); return; }
          await API.patch(`/api/v1/${plural}/${part.id}`, { version: part.version, name: values.name });
          this.toast(`${label} ${part.number} saved`, "info");
          await this.refresh(card, ...(card === "partitions" ? ["schedules"] : []));
        },
      }),
      newRow: () => new Form([
        new Field({ name: "number", label: `New ${label} number`, compact: true, type: "number", integer: true, required: true, min: 1, max: maxNumber }),
        new Field({ name: "name", label: `New ${label} name`, compact: true, maxLength: 100 }),
      ], {
        row: true, submitLabel: `Add ${label}`, errorFields,
        onSubmit: async (values, headers) => {
          await API.post(`/api/v1/panels/${this.panel.id}/${plural}`, values, headers);
          this.toast(`${label} ${values.number} added`, "info");
          await this.refresh(card, ...(card === "partitions" ? ["zones", "schedules"] : []));
        },
      }),
    });
  }

  // The panel stores partitions 1..32 (its CHECK), whatever the request type would allow.
  drawPartitions() { this.numberedParts("partitions", "partition", 32); }

  drawOutputs() { this.numberedParts("outputs", "output", 256); }

  zoneFields(z, who) {
    const partitions = this.panel.partitions.map((p) => [p.number, p.name ? `${p.number} — ${p.name}` : String(p.number)]);
    if (z.partition_number && !partitions.some(([n]) => n === z.partition_number)) partitions.push([z.partition_number, String(z.partition_number)]);
    const override = (z.priority_override || {})[ANY_KIND] || "";
    return [
      new Field({ name: "name", label: `${who} name`, compact: true, maxLength: 100, value: z.name }),
      new Field({ name: "partition_number", label: `${who} partition`, compact: true, type: "select", numeric: true,
                  options: [["", "—"], ...partitions], value: z.partition_number }),
      new Field({ name: "default_priority", label: `${who} default priority`, compact: true, type: "select",
                  options: priorityOptions(null), value: z.default_priority || "NORMAL" }),
      new Field({ name: "priority_override", label: `${who} priority override`, compact: true, type: "select",
                  options: priorityOptions("— none —"), value: override }),
    ];
  }

  drawZones() {
    const errorFields = { zones_panel_id_number_key: "number", zones_number_check: "number" };
    // The override select sets the "*" entry; overrides for single event kinds are kept as they are.
    const overrideOf = (z, choice) => {
      const rest = Object.fromEntries(Object.entries((z && z.priority_override) || {}).filter(([k]) => k !== ANY_KIND));
      return choice ? { ...rest, [ANY_KIND]: choice } : rest;
    };
    this.drawParts("zones", {
      title: "Zones", plural: "zones", headers: ["Number", "Name", "Partition", "Default priority", "Priority override", ""],
      rowFor: (z) => {
        const others = Object.entries(z.priority_override || {}).filter(([k]) => k !== ANY_KIND);
        return new Form(this.zoneFields(z, `Zone ${z.number}`), {
          row: true, lead: [String(z.number)], onStale: () => this.stale("zones"),
          extra: others.length ? [el("span", { class: "muted" }, ` also ${others.map(([k, v]) => `${k}→${v}`).join(", ")}`)] : [],
          onSubmit: async (values) => {
            const wanted = { ...values, priority_override: overrideOf(z, values.priority_override) };
            const diff = changed(wanted, z);
            if (!Object.keys(diff).length) { this.toast("Nothing changed", "info"); return; }
            await API.patch(`/api/v1/zones/${z.id}`, { version: z.version, ...diff });
            this.toast(`Zone ${z.number} saved`, "info");
            await this.refresh("zones");
          },
        });
      },
      newRow: () => new Form([
        new Field({ name: "number", label: "New zone number", compact: true, type: "number", integer: true, required: true, min: 1, max: 256 }),
        ...this.zoneFields({}, "New zone"),
      ], {
        row: true, submitLabel: "Add zone", errorFields,
        onSubmit: async (values, headers) => {
          await API.post(`/api/v1/panels/${this.panel.id}/zones`,
            { ...values, priority_override: overrideOf(null, values.priority_override) }, headers);
          this.toast(`Zone ${values.number} added`, "info");
          await this.refresh("zones");
        },
      }),
    });
  }
}
