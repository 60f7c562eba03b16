// The centre's system mode in the header (docs/architecture.md §5 "System modes"): nothing shown
// when NORMAL; DEGRADED names what fails (alarms still flow); MAINTENANCE shows who set it and why
// in a banner, since the console then takes no work. Admins start and end maintenance from here.
import * as API from "./api.js";
import { confirmAction } from "./forms.js";

const POLL_MS = 15000;

export class SystemMode {
  constructor({ toast }) {
    this.toast = toast;
    this.timer = null;
    this.mode = null;
    this.canSwitch = false;
    document.getElementById("mode-toggle").addEventListener("click", () => this.toggle());
    const dialog = document.getElementById("mode-dialog");
    document.getElementById("mode-cancel").addEventListener("click", () => dialog.close());
    document.getElementById("mode-form").addEventListener("submit", (e) => {
      e.preventDefault();
      dialog.close();
      this.send(true, document.getElementById("mode-reason").value.trim());
    });
  }

  start(me) {
    this.canSwitch = (me.permissions || []).includes("system.maintenance");
    this.stop();
    this.refresh();
    this.timer = setInterval(() => this.refresh(), POLL_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.draw(null);
  }

  async refresh() {
    try {
      this.draw(await API.get("/api/v1/system/mode"));
    } catch (e) {
      if (e.status !== 401) this.draw(null);
    }
  }

  draw(found) {
    this.mode = found;
    const badge = document.getElementById("system-mode");
    const banner = document.getElementById("mode-banner");
    const toggle = document.getElementById("mode-toggle");
    const mode = found ? found.mode : "NORMAL";
    badge.hidden = mode === "NORMAL";
    badge.dataset.mode = mode;
    badge.textContent = mode;
    const failing = found ? Object.entries(found.degraded) : [];
    badge.title = failing.map(([name, why]) => `${name}: ${why}`).join("\n");
    const m = found && found.maintenance;
    banner.hidden = mode !== "MAINTENANCE";
    if (mode === "MAINTENANCE") {
      banner.textContent = `Maintenance: the console is read-only. ${m.reason} (set by ${m.set_by} at ` +
        `${new Date(m.set_at).toLocaleString()})`;
    }
    document.body.classList.toggle("maintenance", mode === "MAINTENANCE");
    toggle.hidden = !this.canSwitch || !found;
    toggle.textContent = mode === "MAINTENANCE" ? "End maintenance" : "Start maintenance…";
  }

  async toggle() {
    if (this.mode && this.mode.mode === "MAINTENANCE") {
      if (await confirmAction("End maintenance? The console takes work again.", "End maintenance")) this.send(false, null);
      return;
    }
    document.getElementById("mode-reason").value = "";
    document.getElementById("mode-dialog").showModal();
  }

  async send(on, reason) {
    try {
      this.draw(await API.put("/api/v1/system/mode", { maintenance: on, reason }));
      this.toast(on ? "Maintenance started: the console is read-only" : "Maintenance ended");
    } catch (e) {
      this.toast(e.message, "error");
    }
  }
}
