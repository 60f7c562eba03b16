// Notices that stay until read: an alarm taken out of the operator's hands, one given to them, an
// escalation for a supervisor. Unlike a toast they wait for "Dismiss", since they may arrive while
// nobody is looking. Text only (el()).
import { el } from "./queue.js";

let box = null;

function region() {
  if (!box) {
    box = el("div", { id: "notices", class: "notices", role: "status", "aria-live": "polite" });
    document.body.insertBefore(box, document.querySelector("main"));
  }
  return box;
}

// Show `text`; `kind` (info | warn) styles it, `open` ({label, onclick}) adds a button that acts
// on it and dismisses it. Returns the notice's element.
export function notify(text, { kind = "info", open = null, dataset = {} } = {}) {
  const notice = el("div", { class: "notice", dataset: { kind, ...dataset } }, el("span", { class: "notice-text" }, text));
  const dismiss = () => notice.remove();
  if (open) notice.append(el("button", { type: "button", class: "notice-open", onclick: () => { dismiss(); open.onclick(); } }, open.label));
  notice.append(el("button", { type: "button", class: "notice-dismiss", onclick: dismiss }, "Dismiss"));
  region().append(notice);
  return notice;
}

// Drop every notice (the session ended).
export function clearNotices() {
  if (box) box.replaceChildren();
}
