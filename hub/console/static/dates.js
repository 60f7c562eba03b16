// The one place the console turns a time into text for a person (docs/architecture.md §8.7: UTC
// everywhere, local time only in what a person reads). The browser's locale through Intl, always
// 24 h; where the locale puts the month before the day (en-US's 03/04/2026, and the year-first
// ones) the date reads year-month-day, so 03/04 is never read either way. `timeZone` is an IANA
// zone name; without one the reader's zone applies (setTimeZone: their setting, else the hub's).
const LAYOUTS = {
  datetime: { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" },
  date: { year: "numeric", month: "2-digit", day: "2-digit" },
  time: { hour: "2-digit", minute: "2-digit", second: "2-digit" },
  hm: { hour: "2-digit", minute: "2-digit" },
};
const formatters = new Map();
let readerZone;   // undefined: the browser's own zone, until setTimeZone names one

// The zone every time is shown in when the caller names none: the signed-in user's setting, else
// the hub's default (GET /api/v1/auth/me: time_zone, hub_time_zone).
export function setTimeZone(zone) { readerZone = zone || undefined; }

function formatter(part, timeZone) {
  const key = `${part}|${timeZone || ""}`;
  if (!formatters.has(key)) {
    formatters.set(key, new Intl.DateTimeFormat(undefined, { ...LAYOUTS[part], hourCycle: "h23", timeZone }));
  }
  return formatters.get(key);
}

// `value`: an ISO string, epoch milliseconds or a Date; `part`: datetime | date | time | hm.
export function fmtTime(value, { part = "datetime", timeZone = readerZone } = {}) {
  if (value === null || value === undefined || value === "") return "";
  const d = value instanceof Date ? value : new Date(value);
  if (isNaN(d)) return String(value);
  const parts = formatter(part, timeZone).formatToParts(d);
  const kinds = parts.map((p) => p.type);
  if (!kinds.includes("month") || kinds.indexOf("month") > kinds.indexOf("day")) {
    return parts.map((p) => p.value).join("");
  }
  const get = (type) => (parts.find((p) => p.type === type) || {}).value;
  const time = ["hour", "minute", "second"].map(get).filter(Boolean).join(":");
  return [`${get("year")}-${get("month")}-${get("day")}`, time].filter(Boolean).join(" ");
}

// A time as an element for a person: the text in their zone, the UTC time on hover (`title`) and
// the instant itself in `datetime`; empty text for no value. Options as fmtTime's.
export function timeEl(value, options = {}) {
  const node = document.createElement("time");
  const d = value === null || value === undefined || value === "" ? null : new Date(value);
  if (d && !isNaN(d)) {
    node.dateTime = d.toISOString();
    node.title = `${fmtTime(d, { timeZone: "UTC" })} UTC`;
  }
  node.textContent = fmtTime(value, options);
  return node;
}
