// Where a robot is, for the robot detail: on its object's site plan when one is set (an image of
// the object with the area it shows in metres and the site coordinates of its bottom-left corner:
// the pose's metres become the picture's points, y up), else as x, y and heading; and its battery
// and speed over time (chart.js). For who edits objects, the picker that chooses the plan
// (PUT /api/v1/objects/{id}/robot-plan). Values reach the DOM as text or attributes only.
import * as API from "./api.js";
import { lineChart, svg } from "./chart.js";
import { Field, Form, confirmAction } from "./forms.js";
import { el, fmtTime } from "./queue.js";

const PLAN_PX = 600;        // the longer side of a drawn plan
const MARKER_PX = 8;
const HEADING_PX = 20;
const CHART_POINTS = 600;   // more samples than this are thinned for drawing (the newest always kept)
export const PLAN_TYPES = new Set(["image/png", "image/jpeg", "image/webp"]);

// The drawn size of a plan: its longer side PLAN_PX, its shape the metres it shows.
export function planBox(plan) {
  const ratio = plan.heightM / plan.widthM;
  return ratio <= 1 ? { width: PLAN_PX, height: PLAN_PX * ratio } : { width: PLAN_PX / ratio, height: PLAN_PX };
}

// A pose (metres, y up) as a point of the drawn plan (`box`: planBox; y down), and whether it
// lies on the plan.
export function toPlan(pose, plan, box = planBox(plan)) {
  const fx = (pose.x - plan.originXM) / plan.widthM;
  const fy = (pose.y - plan.originYM) / plan.heightM;
  return { x: fx * box.width, y: box.height - fy * box.height, inside: fx >= 0 && fx <= 1 && fy >= 0 && fy <= 1 };
}

const metres = (v) => `${Number(v).toFixed(2)} m`;

// "x 2.00 m, y 3.00 m, heading 29° (0.50 rad)"
export function poseText(pose) {
  const degrees = Math.round((pose.theta * 180) / Math.PI);
  return `x ${metres(pose.x)}, y ${metres(pose.y)}, heading ${degrees}° (${Number(pose.theta).toFixed(2)} rad)`;
}

// Images already read, by document and content: a plan is fetched (and its download audited) once
// per session, not at every redraw.
const images = new Map();

function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

// The plan's image as a data: URL (the console's policy allows those; the file needs the token).
function planImage(plan) {
  const key = `${plan.url}#${plan.sha256}`;
  if (!images.has(key)) {
    images.set(key, API.blob(plan.url).then(dataUrl).catch((e) => { images.delete(key); throw e; }));
  }
  return images.get(key);
}

// The position card's drawing: the plan with the robot's marker, or its coordinates alone.
export class PositionView {
  constructor(box) {
    this.box = box;
    this.plan = null;
    this.sample = null;
    this.stale = false;
    this.drawing = null;   // {root, marker, size} of the plan on screen
    this.loads = 0;
  }

  // Draw on `plan` (null: none), for the object named `objectName`.
  setPlan(plan, objectName) {
    this.plan = plan;
    this.drawing = null;
    const n = ++this.loads;
    const note = el("p", { class: "muted plan-note" });
    const pose = el("p", { id: "robot-pose", class: "pose" });
    if (!plan) {
      note.textContent = `No site plan for ${objectName || "this object"}: the position is shown as coordinates.`;
      this.box.replaceChildren(pose, note);
      this.draw();
      return;
    }
    const size = planBox(plan);
    const image = svg("image", { x: 0, y: 0, width: size.width, height: size.height, preserveAspectRatio: "none" });
    const marker = svg("g", { id: "robot-marker", class: "marker" },
      svg("circle", { r: MARKER_PX }), svg("line", { class: "heading", x1: 0, y1: 0, x2: HEADING_PX, y2: 0 }));
    const root = svg("svg", { id: "robot-plan", class: "site-plan", viewBox: `0 0 ${size.width} ${size.height}`,
                              role: "img", "aria-label": `Site plan ${plan.filename}`, "data-document": plan.documentId },
      svg("rect", { class: "plan-frame", x: 0, y: 0, width: size.width, height: size.height }), image, marker);
    note.textContent = `Plan: ${plan.title || plan.filename}, ${metres(plan.widthM)} × ${metres(plan.heightM)}, ` +
      `bottom-left corner at x ${metres(plan.originXM)}, y ${metres(plan.originYM)}.`;
    this.box.replaceChildren(root, pose, note);
    this.drawing = { root, marker, size };
    planImage(plan).then((url) => {
      if (n !== this.loads) return;
      image.setAttribute("href", url);
      root.dataset.loaded = "true";
    }).catch((e) => {
      if (n !== this.loads) return;
      note.textContent = `The plan's image could not be read (${e.message}): the position is shown as coordinates.`;
      note.classList.add("warn");
      root.remove();
      this.drawing = null;
    });
    this.draw();
  }

  // The newest sample (or null) and whether it is old.
  setPose(sample, stale) {
    this.sample = sample;
    this.stale = stale;
    this.draw();
  }

  draw() {
    const pose = this.box.querySelector("#robot-pose");
    if (!pose) return;
    const s = this.sample;
    pose.classList.toggle("stale", !!s && this.stale);
    const when = s && (this.stale ? el("span", { class: "stale-tag" }, ` as of ${fmtTime(s.at)}`)
      : el("span", { class: "muted" }, ` at ${fmtTime(s.at, { part: "time" })}`));
    pose.replaceChildren(...(s ? [poseText(s.pose), when] : ["No position reported lately"]));
    if (!this.drawing) return;
    const { marker, size } = this.drawing;
    if (!s) { marker.setAttribute("visibility", "hidden"); return; }
    const at = toPlan(s.pose, this.plan, size);
    marker.setAttribute("visibility", "visible");
    // The heading turns counter-clockwise from the x axis, and the drawing's y runs down.
    marker.setAttribute("transform", `translate(${at.x.toFixed(1)} ${at.y.toFixed(1)}) ` +
      `rotate(${(-s.pose.theta * 180 / Math.PI).toFixed(1)})`);
    Object.assign(marker.dataset, { px: at.x.toFixed(1), py: at.y.toFixed(1), x: s.pose.x, y: s.pose.y,
                                    inside: at.inside, stale: this.stale });
    marker.classList.toggle("stale", this.stale);
    if (!at.inside) pose.append(el("span", { class: "warn" }, " — outside the plan"));
  }
}

// At most `limit` of `points`, evenly spread, the newest kept.
function thin(points, limit) {
  if (points.length <= limit) return points;
  const step = points.length / limit;
  const kept = Array.from({ length: limit - 1 }, (_, i) => points[Math.floor(i * step)]);
  return [...kept, points[points.length - 1]];
}

// Battery and speed over the samples (oldest first), up to `until` (ms).
export function telemetryCharts(samples, until) {
  const at = (s) => Date.parse(s.at);
  const label = (ms) => fmtTime(ms, { part: "hm" });
  const battery = thin(samples.map((s) => [at(s), s.batteryPct]), CHART_POINTS);
  const speed = thin(samples.map((s) => [at(s), s.speedMps]), CHART_POINTS);
  return el("div", { class: "chart-pair even" },
    el("div", { class: "chart-box", id: "robot-battery-chart" }, lineChart({
      title: "Battery", points: battery, max: 100, until, timeLabel: label,
      format: (v) => `${Math.round(v)} %` })),
    el("div", { class: "chart-box", id: "robot-speed-chart" }, lineChart({
      title: "Speed", points: speed, until, timeLabel: label, format: (v) => `${v.toFixed(1)} m/s` })));
}

// For who edits objects: choose which of the object's images is its site plan, and the metres it
// shows; or remove it. `onSaved(plan)` gets the plan as the hub stored it (null once removed).
export async function planPicker({ objectId, plan, toast, onSaved }) {
  let docs;
  try { docs = await API.get(`/api/v1/objects/${objectId}/documents`); } catch (e) {
    return el("p", { class: "error" }, `The object's documents could not be read: ${e.message}`);
  }
  const images = docs.filter((d) => PLAN_TYPES.has(d.media_type));
  if (!images.length) {
    return el("p", { class: "muted", id: "robot-plan-picker" },
      "To draw robots on a site plan, upload an image of the site (PNG, JPEG or WebP) to the object first.");
  }
  const positive = (v) => (v !== null && v <= 0 ? "More than 0" : "");
  const fields = [
    new Field({ name: "documentId", label: "Image", type: "select", numeric: true, required: true,
                options: [["", "Choose an image"], ...images.map((d) => [String(d.id), d.title || d.filename])] }),
    new Field({ name: "widthM", label: "Width shown (m)", type: "number", required: true, max: 10000, check: positive }),
    new Field({ name: "heightM", label: "Height shown (m)", type: "number", required: true, max: 10000, check: positive }),
    new Field({ name: "originXM", label: "x of its bottom-left corner (m)", type: "number", min: -1000000, max: 1000000 }),
    new Field({ name: "originYM", label: "y of its bottom-left corner (m)", type: "number", min: -1000000, max: 1000000 }),
  ];
  const url = `/api/v1/objects/${objectId}/robot-plan`;
  const remove = plan ? el("button", { type: "button", class: "danger remove-plan" }, "Remove plan") : null;
  const form = new Form(fields, {
    submitLabel: "Save plan", extra: remove ? [remove] : [],
    onSubmit: async (v) => {
      const answer = await API.put(url, { documentId: v.documentId, widthM: v.widthM, heightM: v.heightM,
                                          originXM: v.originXM ?? 0, originYM: v.originYM ?? 0 });
      toast("Site plan saved", "info");
      onSaved(answer.plan);
    },
  });
  form.element.id = "robot-plan-form";
  if (plan) {
    for (const name of ["documentId", "widthM", "heightM", "originXM", "originYM"]) form.field(name).value = plan[name];
  }
  if (remove) {
    remove.addEventListener("click", async () => {
      if (!await confirmAction("Stop drawing this object's robots on the plan? The image stays with the object.",
                               "Remove plan")) return;
      try { await API.del(url); onSaved(null); toast("Site plan removed", "info"); } catch (e) { form.showError(e); }
    });
  }
  return el("details", { class: "plan-picker", id: "robot-plan-picker" }, el("summary", {}, "Site plan…"), form.element);
}
