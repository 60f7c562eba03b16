// Bar and line charts drawn as SVG here: the console loads nothing from outside the hub, so no chart library.
// Every value reaches the DOM as an attribute or a text node, never as markup. A chart stands beside
// a table with the same numbers, which is what screen readers and exact readers use.
const NS = "http://www.w3.org/2000/svg";
const MIN_LABEL_PX = 44;  // narrower bands label only every n-th category, so labels never overlap
const MAX_BAR_PX = 48;    // a bar of a few categories stays a bar, not a wall

// An SVG element with its attributes and children (text nodes for anything that is not a node).
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

// The gridline step for about `ticks` lines up to `max`: the first of `steps` that is enough
// (durations: whole minutes, hours), else 1, 2 or 5 times a power of ten (whole numbers only when
// `integer`).
export function niceStep(max, ticks = 5, integer = false, steps = []) {
  if (!(max > 0)) return steps[0] || 1;
  const raw = max / ticks;
  const listed = steps.find((s) => s >= raw);
  if (listed) return listed;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  return integer ? Math.max(1, Math.round(step)) : step;
}

// A vertical bar chart, bars grouped per category when there are several series.
// categories: labels along the x axis; series: [{name, values}] (a null value draws no bar);
// format(value): hover text, tickFormat(value) the axis's (format by default); integer: whole-number
// ticks (counts); steps: the gridline steps to choose from (see niceStep).
export function barChart({ title, categories, series, xLabel = "", yLabel = "", format = String, tickFormat = format,
                           integer = false, steps = [], width = 720, height = 280 }) {
  const m = { left: 84, right: 16, top: series.length > 1 ? 30 : 14, bottom: 58 };
  const w = width - m.left - m.right, h = height - m.top - m.bottom;
  const values = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
  const step = niceStep(Math.max(0, ...values), 5, integer, steps);
  const top = Math.max(step, Math.ceil(Math.max(0, ...values) / step) * step);
  const y = (v) => m.top + h - (v / top) * h;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": title },
    svg("title", {}, title));

  for (let v = 0; v <= top + step / 2; v += step) {
    root.append(svg("line", { class: "grid-line", x1: m.left, x2: m.left + w, y1: y(v), y2: y(v) }),
      svg("text", { class: "tick y-tick", x: m.left - 6, y: y(v) + 4, "text-anchor": "end" }, tickFormat(v)));
  }
  const band = categories.length ? w / categories.length : w;
  const groupWidth = Math.min(band * 0.8, MAX_BAR_PX * series.length);
  const barWidth = groupWidth / Math.max(1, series.length);
  const every = Math.ceil(MIN_LABEL_PX / band);
  categories.forEach((category, i) => {
    const x0 = m.left + i * band + (band - groupWidth) / 2;
    series.forEach((s, j) => {
      const v = s.values[i];
      if (v === null || v === undefined) return;
      root.append(svg("rect", { class: `bar s${j}`, x: x0 + j * barWidth, y: y(v), width: Math.max(1, barWidth - 1),
                                height: Math.max(0, m.top + h - y(v)), "data-category": category, "data-series": s.name,
                                "data-value": v },
        svg("title", {}, `${category}${series.length > 1 ? ` — ${s.name}` : ""}: ${format(v)}`)));
    });
    if (i % every === 0) {
      root.append(svg("text", { class: "tick x-tick", x: m.left + i * band + band / 2, y: m.top + h + 16,
                                "text-anchor": "middle" }, category));
    }
  });
  root.append(svg("line", { class: "axis", x1: m.left, x2: m.left + w, y1: m.top + h, y2: m.top + h }),
    svg("line", { class: "axis", x1: m.left, x2: m.left, y1: m.top, y2: m.top + h }),
    svg("text", { class: "axis-label", x: m.left + w / 2, y: height - 8, "text-anchor": "middle" }, xLabel),
    svg("text", { class: "axis-label", transform: `translate(14 ${m.top + h / 2}) rotate(-90)`, "text-anchor": "middle" },
      yLabel));
  if (series.length > 1) {
    let x = m.left;
    series.forEach((s, j) => {
      root.append(svg("rect", { class: `legend-key s${j}`, x, y: 8, width: 12, height: 12 }),
        svg("text", { class: "legend", x: x + 16, y: 18 }, s.name));
      x += 26 + s.name.length * 7;
    });
  }
  return root;
}

// A line over time: `points` [[epoch ms, value]] oldest first, as one polyline. The y axis runs
// from 0 to `max`, else to a nice step above the highest value; the x axis from the first point to
// `until` (ms, the last point's time by default), its ends labelled with timeLabel(ms).
// format(value): the y ticks' text (with their unit) and the newest value's, said in the title.
export function lineChart({ title, points, format = String, timeLabel = String, max = null,
                            until = null, width = 520, height = 200 }) {
  const m = { left: 52, right: 14, top: 12, bottom: 30 };
  const w = width - m.left - m.right, h = height - m.top - m.bottom;
  const values = points.map(([, v]) => v);
  const step = niceStep(max ?? Math.max(0, ...values), 4);
  const top = max ?? Math.max(step, Math.ceil(Math.max(0, ...values) / step) * step);
  const t0 = points.length ? points[0][0] : 0;
  const t1 = Math.max(until ?? (points.length ? points[points.length - 1][0] : 0), t0 + 1);
  const x = (t) => m.left + ((t - t0) / (t1 - t0)) * w;
  const y = (v) => m.top + h - (Math.min(Math.max(v, 0), top) / top) * h;
  const newest = points.length ? format(points[points.length - 1][1]) : "no samples";
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart line-chart", role: "img",
                            "aria-label": `${title}: ${newest}` }, svg("title", {}, `${title}: ${newest}`));
  for (let v = 0; v <= top + step / 2; v += step) {
    root.append(svg("line", { class: "grid-line", x1: m.left, x2: m.left + w, y1: y(v), y2: y(v) }),
      svg("text", { class: "tick y-tick", x: m.left - 6, y: y(v) + 4, "text-anchor": "end" }, format(v)));
  }
  root.append(svg("line", { class: "axis", x1: m.left, x2: m.left + w, y1: m.top + h, y2: m.top + h }),
    svg("line", { class: "axis", x1: m.left, x2: m.left, y1: m.top, y2: m.top + h }));
  if (points.length) {
    root.append(svg("text", { class: "tick x-tick", x: m.left, y: m.top + h + 18, "text-anchor": "start" }, timeLabel(t0)),
      svg("text", { class: "tick x-tick", x: m.left + w, y: m.top + h + 18, "text-anchor": "end" }, timeLabel(t1)),
      svg("polyline", { class: "series s0-line", "data-count": points.length,
                        points: points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ") }));
    const [tn, vn] = points[points.length - 1];
    root.append(svg("circle", { class: "newest", cx: x(tn).toFixed(1), cy: y(vn).toFixed(1), r: 3 }));  // one sample shows too
  }
  return root;
}
