// The administration area (ADMIN, MASTER). The hub enforces every rule; these pages only keep
// what a role cannot use out of sight. Routes: #/admin-objects[/<id>|/new], #/admin-panel/<id>,
// #/admin-panel/new/<object id>, #/admin-users[/<id>|/new], #/admin-import, #/admin-holidays; the
// Edges page (edges.js, #/edges) sits in the same menu. Each route's page is the section view-<route>.
import { ObjectsAdmin } from "./admin_objects.js";
import { PanelEditor } from "./admin_panels.js";
import { UsersAdmin } from "./admin_users.js";
import { ImportAdmin } from "./admin_import.js";
import { HolidaysAdmin } from "./admin_holidays.js";

export const ADMIN_ROLES = new Set(["ADMIN", "MASTER"]);

export class AdminPages {
  constructor({ toast, showView }) {
    this.showView = showView;
    const ctx = { toast };
    this.pages = { "admin-objects": new ObjectsAdmin(ctx), "admin-panel": new PanelEditor(ctx),
                   "admin-users": new UsersAdmin(ctx), "admin-import": new ImportAdmin(ctx),
                   "admin-holidays": new HolidaysAdmin(ctx) };
    // The menu closes once an entry is chosen, or on a click anywhere else.
    const menu = document.getElementById("nav-admin");
    menu.addEventListener("click", (e) => { if (e.target.closest("button")) menu.open = false; });
    document.addEventListener("click", (e) => { if (menu.open && !menu.contains(e.target)) menu.open = false; });
  }

  // Show the admin page `parts` names (the hash's path) for `me`; false when it names none, or
  // `me` may not administer. Pages left behind drop what they must not keep on screen.
  route(parts, me) {
    const name = me && ADMIN_ROLES.has(me.role) && parts[0] in this.pages ? parts[0] : null;
    for (const [key, page] of Object.entries(this.pages)) if (key !== name && page.leave) page.leave();
    if (!name) return false;
    this.showView(name);
    // The panel editor belongs to the objects' administration.
    if (name === "admin-panel") document.getElementById("nav-admin-objects").classList.add("active");
    this.pages[name].show(parts.slice(1), me);
    return true;
  }

  hide() { this.route([], null); }
}
