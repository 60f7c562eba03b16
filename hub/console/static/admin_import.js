// Import of objects from a CSV or XLSX file (POST /api/v1/admin/import/objects): every row is
// checked first and then all are imported or none; a refused file shows each bad row with its
// column and reason. Route: #/admin-import.
import * as API from "./api.js";
import { el } from "./queue.js";
import { Field, Form, plainReason } from "./forms.js";

const TYPES = { csv: "text/csv", xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" };
const MAX_BYTES = 1024 * 1024;   // hub/api/routing.py MAX_BODY_BYTES

const $ = (id) => document.getElementById(id);
const extension = (file) => (file.name.match(/\.([^.]+)$/) || [])[1]?.toLowerCase();

export class ImportAdmin {
  constructor({ toast }) {
    this.toast = toast;
    this.form = new Form([
      new Field({ name: "file", label: "CSV or XLSX file", type: "file", required: true, accept: ".csv,.xlsx",
                  hint: "A header row naming the columns name, address, type, lat, lon; CSV in UTF-8, XLSX its first sheet.",
                  check: (file) => (!TYPES[extension(file)] ? "Choose a .csv or .xlsx file"
                    : file.size > MAX_BYTES ? `At most ${MAX_BYTES / 1024 / 1024} MiB` : "") }),
    ], {
      submitLabel: "Upload and import", onSubmit: (values, headers) => this.upload(values.file, headers),
      // Refusals of the file as a whole belong beside it; a row report goes under the form.
      errorFields: { invalid: "file", file_too_large: "file", body_too_large: "file", unsupported_media_type: "file" },
    });
    this.form.element.id = "import-form";
    $("import-card").append(this.form.element);
  }

  show() {
    this.form.clearErrors();
    $("import-result").replaceChildren();
  }

  async upload(file, headers) {
    $("import-result").replaceChildren();
    // A header carries Latin-1 only; the name is just for the import log.
    const name = file.name.replace(/[^\x20-\x7e]/g, "_").slice(0, 200);
    try {
      const r = await API.upload("/api/v1/admin/import/objects", file, TYPES[extension(file)], { ...headers, "X-Filename": name });
      $("import-result").replaceChildren(el("p", { class: "ok", id: "import-ok" },
        `Imported ${r.rows_ok} object${r.rows_ok === 1 ? "" : "s"} from ${file.name} (import #${r.import_id}).`));
      this.toast("Import done", "info");
    } catch (e) {
      if (e.code === "import_rejected" && e.details) this.report(e.details);
      throw e;
    }
  }

  report(d) {
    const rows = d.errors.map((x) => el("tr", { dataset: { row: x.row } },
      el("td", { class: "num" }, x.row), el("td", {}, x.field || "—"), el("td", {}, plainReason(x.reason))));
    $("import-result").replaceChildren(el("div", { class: "card" },
      el("h3", {}, `Nothing imported: ${d.errors.length} of ${d.rows_total} rows refused (import #${d.import_id})`),
      el("table", { class: "grid small", id: "import-errors" },
        el("caption", {}, "Row numbers count the header as row 1. Fix these rows and upload the whole file again."),
        el("thead", {}, el("tr", {}, el("th", {}, "Row"), el("th", {}, "Column"), el("th", {}, "Problem"))),
        el("tbody", {}, ...rows))));
  }
}
