// An object's documents (GET /api/v1/objects/{id}/documents, newest first) as a table: title, file
// name, type, size, who uploaded it and when, a Download button (fetched with the session's token:
// a plain link would carry none) and, for who may edit the object, a Delete button. Shared by the
// operator's object view (app.js) and the administration's object page (admin_objects.js).
import * as API from "./api.js";
import { el } from "./queue.js";
import { timeEl } from "./dates.js";

// hub/documents.py: the kinds the hub keeps, as a person names them.
const KINDS = { "application/pdf": "PDF", "image/png": "PNG image", "image/jpeg": "JPEG image", "image/webp": "WebP image" };
const KB = 1024;
const MB = 1024 * 1024;

// A size as a person reads it: "840 KB", "3.2 MB" (never "0 KB" for a small file).
export function fmtSize(bytes) {
  if (bytes < MB) return `${Math.max(1, Math.round(bytes / KB))} KB`;
  return `${(bytes / MB).toFixed(1)} MB`;
}

// The table of `docs`, or a line saying there are none. `onDelete(doc)`, when given, adds a Delete
// button to each row; `toast` reports a failed download.
export function documentTable(docs, { id, toast, onDelete = null }) {
  if (!docs.length) return el("p", { class: "muted", id }, "No documents.");
  const rows = docs.map((d) => {
    const download = el("button", { type: "button", class: "download", "aria-label": `Download ${d.filename}`,
      onclick: () => API.download(d.url, d.filename).catch((e) => toast(e.message, "error")) }, "Download");
    const remove = onDelete && el("button", { type: "button", class: "danger delete", "aria-label": `Delete ${d.filename}`,
      onclick: () => onDelete(d) }, "Delete…");
    return el("tr", { dataset: { document: d.id } },
      el("td", {}, d.title || "—"), el("td", { class: "filename" }, d.filename), el("td", {}, KINDS[d.media_type] || d.media_type),
      el("td", { class: "num" }, fmtSize(d.size_bytes)), el("td", {}, d.uploaded_by_email || d.uploaded_by),
      el("td", {}, timeEl(d.uploaded_at)), el("td", { class: "row-actions" }, download, remove));
  });
  return el("table", { class: "grid small", id },
    el("thead", {}, el("tr", {}, ...["Title", "File", "Type", "Size", "Uploaded by", "When", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows));
}
