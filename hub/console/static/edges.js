// The Edges page (ADMIN, MASTER): each edge with its object, enrolled key, leaf connection, last
// status report (journal backlog, links, clock, epoch), its catch-up after an outage ("catching up:
// N events, ~T s left") and refused segments; create an edge (its token is shown once) and revoke one. Old data is never shown as current: a disconnected edge's
// report and a table that could not be refreshed say how old they are.
import * as API from "./api.js";
import { el, fmtTime } from "./queue.js";

const REFRESH_MS = 10_000;
const SKEW_WARN_S = 120;
const FIELD_OF_CODE = { edge_active: "edge_id", enrolment_refused: "edge_id" };

const $ = (id) => document.getElementById(id);

// "45 s", "12 min", "3 h 5 min"
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function backlogText(lane) {
  const rows = `${lane.rows} ${lane.rows === 1 ? "row" : "rows"}`;
  return lane.rows && lane.oldest_age_s !== null && lane.oldest_age_s !== undefined
    ? `${rows}, oldest ${duration(lane.oldest_age_s)}` : rows;
}

// "catching up: 12,000 events, ~25 s left" from GET /api/v1/edges' `catching_up`.
export function catchUpText(c) {
  const events = `${c.events.toLocaleString("en")} ${c.events === 1 ? "event" : "events"}`;
  const left = c.eta_s === null || c.eta_s === undefined ? "time left not known yet" : `~${duration(c.eta_s)} left`;
  return `catching up: ${events}, ${left}`;
}

function skewText(seconds) {
  const abs = Math.abs(seconds);
  if (abs < 0.05) return "0.0 s";
  const sign = seconds < 0 ? "−" : "+";
  return abs < 60 ? `${sign}${abs.toFixed(1)} s` : `${sign}${duration(abs)}`;
}

const ERROR_SLOTS = { edge_id: "edge-id-error", object_id: "edge-object-error", ttl_s: "edge-ttl-error" };

function clearErrors() {
  for (const id of [...Object.values(ERROR_SLOTS), "edge-form-error"]) $(id).textContent = "";
}

export class EdgesPage {
  constructor({ toast }) {
    this.toast = toast;
    this.timer = null;
    this.items = [];
    this.loadedAt = null;
    this.loading = 0;
    $("edge-new").addEventListener("click", () => this.openCreate());
    $("edge-form").addEventListener("submit", (e) => { e.preventDefault(); this.create(); });
    $("edge-cancel").addEventListener("click", () => this.closeCreate());
    $("edge-done").addEventListener("click", () => this.closeCreate());
    $("edge-dialog").addEventListener("close", () => this.forgetToken());
    $("edge-copy-command").addEventListener("click", () => this.copy("edge-command"));
    $("edge-copy-token").addEventListener("click", () => this.copy("edge-token"));
    $("revoke-cancel").addEventListener("click", () => $("revoke-dialog").close());
  }

  show() {
    this.load();
    if (!this.timer) this.timer = setInterval(() => this.load(), REFRESH_MS);
  }

  hide() {
    clearInterval(this.timer);
    this.timer = null;
  }

  async load() {
    const n = ++this.loading;
    try {
      const page = await API.get("/api/v1/edges");
      if (n !== this.loading) return;
      this.items = page.items;
      this.loadedAt = Date.now();
      this.render();
      $("edges-stale").hidden = true;
      $("edges").classList.remove("stale-table");
    } catch (e) {
      if (n !== this.loading) return;
      // What is on screen is older than it looks: say so, and since when.
      const since = this.loadedAt ? `table from ${fmtTime(new Date(this.loadedAt).toISOString())}` : "no data";
      $("edges-stale").textContent = `⚠ Not refreshed (${e.message}): ${since}`;
      $("edges-stale").hidden = false;
      $("edges").classList.add("stale-table");
    }
  }

  render() {
    $("edges-body").replaceChildren(...this.items.map((e) => this.row(e)));
    $("edges-empty").hidden = this.items.length > 0;
    $("edges-count").textContent = `(${this.items.length})`;
  }

  row(e) {
    const r = e.report;
    const stale = !!r && !e.connected;
    const asOf = () => (stale ? el("span", { class: "stale-tag" }, `stale, as of ${fmtTime(r.received_at)}`) : null);
    const lanes = r ? Object.entries(r.lanes).map(([lane, b]) => el("div", { class: "lane", dataset: { lane, rows: b.rows } },
      `${lane}: ${backlogText(b)}`)) : [el("span", { class: "muted" }, "—")];
    const links = r ? r.links.map((l) => el("div", { class: "edge-link", dataset: { state: l.state } },
      `${l.kind} ${l.id} ${l.state}`, l.since ? el("span", { class: "muted" }, ` since ${fmtTime(l.since)}`) : null))
      : [];
    const skew = r ? r.clock_skew_s : e.clock_skew_s;
    const epoch = (r && r.epoch) || e.epoch;
    return el("tr", { dataset: { edge: e.edge_id, connected: e.connected, stale }, class: stale ? "stale-row" : "" },
      el("td", { class: "mono edge-id" }, e.edge_id),
      el("td", {}, e.object ? e.object.name : el("span", { class: "muted" }, "—")),
      el("td", { class: "mono" }, e.key_id || el("span", { class: "muted" }, "—"),
         e.enrolled_at ? el("div", { class: "muted" }, `enrolled ${fmtTime(e.enrolled_at)}`) : null),
      el("td", { class: "connection" }, this.connection(e)),
      el("td", {}, fmtTime(e.last_seen_at) || el("span", { class: "muted" }, "never")),
      el("td", { class: "backlog" }, asOf(),
         e.catching_up ? el("div", { class: "catching-up", title: e.catching_up.forwarded_per_s === null ? ""
           : `${e.catching_up.forwarded_per_s} rows/s acknowledged by the hub` }, catchUpText(e.catching_up)) : null,
         ...lanes),
      el("td", { class: "links" }, ...(links.length ? [asOf(), ...links] : [el("span", { class: "muted" }, "—")])),
      el("td", { class: `skew${skew !== null && skew !== undefined && Math.abs(skew) > SKEW_WARN_S ? " warn" : ""}` },
         skew === null || skew === undefined ? "—" : skewText(skew),
         r ? el("div", { class: "muted" }, `edge clock ${fmtTime(r.reported_at)}`) : null),
      el("td", { class: "mono", title: epoch || "" }, epoch ? epoch.slice(0, 8) : "—"),
      el("td", { class: `num refused${e.refused_segments ? " bad" : ""}`,
                 title: "segments held in the hub's quarantine" }, e.refused_segments),
      el("td", { class: "edge-actions" }, ...this.actions(e)));
  }

  connection(e) {
    if (e.revoked) return el("span", { class: "conn-state", dataset: { state: "revoked" } }, `revoked ${fmtTime(e.revoked_at)}`);
    if (!e.key_id) return el("span", { class: "conn-state", dataset: { state: "pending" } }, "awaiting enrolment");
    if (e.connected) {
      return el("span", {}, el("span", { class: "conn-state", dataset: { state: "connected" } }, "● connected"),
        el("div", { class: "muted" }, `leaf link; report ${fmtTime(e.report.received_at)}`));
    }
    return el("span", {}, el("span", { class: "conn-state", dataset: { state: "disconnected" } }, "● disconnected"),
      el("div", { class: "muted" }, e.report ? `last report ${fmtTime(e.report.received_at)}` : "never reported"));
  }

  actions(e) {
    const out = [];
    if (!e.revoked) {
      out.push(el("button", { type: "button", class: "revoke", onclick: () => this.confirmRevoke(e) }, "Revoke"));
    }
    if (e.revoked || !e.key_id) {
      out.push(el("button", { type: "button", class: "new-token", onclick: () => this.openCreate(e) }, "New token"));
    }
    return out;
  }

  // ---------- create: the token is shown once

  async openCreate(edge = null) {
    this.forgetToken();
    clearErrors();
    $("edge-form").hidden = false;
    $("edge-created").hidden = true;
    $("edge-id").value = edge ? edge.edge_id : "";
    $("edge-ttl").value = "24";
    const select = $("edge-object");
    select.replaceChildren(el("option", { value: "" }, "— none —"));
    $("edge-dialog").showModal();
    try {
      const page = await API.get("/api/v1/objects?limit=500");
      select.append(...page.items.map((o) => el("option", { value: o.id }, o.name)));
      if (edge && edge.object) select.value = String(edge.object.id);
    } catch (err) {
      $("edge-object-error").textContent = `Objects could not be loaded: ${err.message}`;
    }
    $("edge-id").focus();
  }

  async create() {
    clearErrors();
    const hours = Number($("edge-ttl").value);
    if (!(hours > 0)) { $("edge-ttl-error").textContent = "Give the validity in hours"; return; }
    const body = { edge_id: $("edge-id").value.trim(), object_id: $("edge-object").value ? Number($("edge-object").value) : null,
                   ttl_s: Math.round(hours * 3600) };
    $("edge-submit").disabled = true;
    try {
      const made = await API.post("/api/v1/edges", body);
      $("edge-form").hidden = true;
      $("edge-created-title").textContent = `Edge ${made.edge_id}: enrolment token`;
      $("edge-token").textContent = made.token;
      $("edge-command").textContent = made.command;
      $("edge-expires").textContent = fmtTime(made.expires_at);
      $("edge-fingerprint").textContent = made.fingerprint;
      $("edge-created").hidden = false;
      this.load();
    } catch (err) {
      const field = (err.details && err.details.field) || FIELD_OF_CODE[err.code];
      const slot = ERROR_SLOTS[field] || "edge-form-error";
      $(slot).textContent = err.message;
    } finally {
      $("edge-submit").disabled = false;
    }
  }

  // The token leaves the page with its dialog: closed is gone.
  forgetToken() {
    $("edge-token").textContent = "";
    $("edge-command").textContent = "";
    $("edge-fingerprint").textContent = "";
  }

  // The token goes at once: the dialog's close event (which also covers Escape) comes a task later.
  closeCreate() {
    this.forgetToken();
    $("edge-dialog").close();
  }

  async copy(id) {
    const text = $(id).textContent;
    try {
      await navigator.clipboard.writeText(text);
      this.toast("Copied", "info");
    } catch {
      const range = document.createRange();
      range.selectNodeContents($(id));
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      this.toast("Selected: press Ctrl+C to copy", "warn");
    }
  }

  // ---------- revoke

  confirmRevoke(e) {
    $("revoke-text").textContent = `Revoke edge ${e.edge_id}${e.object ? ` (${e.object.name})` : ""}? Its leaf connection ` +
      "is dropped at once and its segments are refused (kept in quarantine) until it is enrolled again with a new token.";
    $("revoke-ok").textContent = `Revoke ${e.edge_id}`;
    $("revoke-ok").onclick = async () => {
      $("revoke-ok").disabled = true;
      try {
        await API.post(`/api/v1/edges/${encodeURIComponent(e.edge_id)}/revoke`);
        $("revoke-dialog").close();
        this.toast(`Edge ${e.edge_id} revoked`, "info");
        this.load();
      } catch (err) {
        this.toast(err.message, "error");
      } finally {
        $("revoke-ok").disabled = false;
      }
    };
    $("revoke-dialog").showModal();
  }
}
