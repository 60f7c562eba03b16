// The alarm's procedure as a checklist (docs/architecture.md §5 "Working an alarm"): each step
// with a Done button while the alarm is worked, and once ticked, when and by whom. The hub keeps
// the first tick; a second one changes nothing.
import * as API from "./api.js";
import { actionButton, el, personEl, timeEl } from "./queue.js";

const TICKABLE = new Set(["IN_PROGRESS", "ACK"]);

// Whether `me` may tick `a`'s steps now: while it is worked, as its holder or a supervisor who
// works alarms (the hub checks the same).
function canTick(a, me) {
  return !!me && me.canWork && TICKABLE.has(a.status) && (a.claimed_by === me.actor || me.canSupervise);
}

// Render `a.checklist` into the list `ol`; `onTicked(step)` runs after a tick the hub took, and
// `onError(err)` after one it refused.
export function renderChecklist(ol, a, me, { onTicked, onError }) {
  const steps = a.checklist || [];
  if (!steps.length) {
    ol.replaceChildren(el("li", { class: "muted empty" }, `No procedure for ${a.alarm_type}.`));
    return;
  }
  const tickable = canTick(a, me);
  ol.replaceChildren(...steps.map((s) => {
    let state;
    if (s.done_at) {
      state = el("span", { class: "step-done" }, "✓ done ", timeEl(s.done_at, { part: "time" }), " by ", personEl(s.done_by));
    } else if (tickable) {
      const button = actionButton({ class: "tick", dataset: { step: s.index }, "aria-label": `Step ${s.index} done: ${s.text}` },
        "Done");
      button.addEventListener("click", async () => {
        button.disabled = true;
        try { onTicked(await API.post(`/api/v1/alarms/${a.id}/checklist/${s.index}`)); } catch (e) {
          button.disabled = false;
          onError(e);
        }
      });
      state = button;
    } else {
      state = el("span", { class: "step-state muted" }, "not done");
    }
    return el("li", { class: s.done_at ? "step done" : "step", dataset: { step: s.index } },
      el("span", { class: "step-text" }, s.text), state);
  }));
}
