// REST client: tokens shared by every tab (localStorage), silent refresh before expiry with ONE
// refresh in flight across tabs (Web Locks when available, else a localStorage lease).
const TOKENS_KEY = "vigil.tokens";
const LEASE_KEY = "vigil.refresh-lease";
const REFRESH_MARGIN_MS = 60_000;   // refresh this long before the access token expires
const tabId = Math.random().toString(36).slice(2);

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

let inFlight = null;          // this tab's refresh promise
let refreshTimer = null;
const listeners = new Set();  // called with null when the session ends

export function onSessionEnd(fn) { listeners.add(fn); }

export function tokens() {
  try { return JSON.parse(localStorage.getItem(TOKENS_KEY)) || null; } catch { return null; }
}

function store(pair) {
  const t = {
    access: pair.access_token,
    refresh: pair.refresh_token,
    expiresAt: Date.now() + pair.expires_in * 1000,
    mustChange: !!pair.password_change_required,
  };
  localStorage.setItem(TOKENS_KEY, JSON.stringify(t));
  schedule();
  return t;
}

function clear() {
  localStorage.removeItem(TOKENS_KEY);
  clearTimeout(refreshTimer);
  for (const fn of listeners) fn(null);
}

// Another tab refreshed or logged out: follow it.
window.addEventListener("storage", (e) => {
  if (e.key !== TOKENS_KEY) return;
  if (e.newValue === null) { clearTimeout(refreshTimer); for (const fn of listeners) fn(null); }
  else schedule();
});

function schedule() {
  clearTimeout(refreshTimer);
  const t = tokens();
  if (!t) return;
  const due = Math.max(1000, t.expiresAt - Date.now() - REFRESH_MARGIN_MS);
  refreshTimer = setTimeout(() => { refresh().catch(() => {}); }, due);
}

// `extra`: more request headers, and `raw` (a Blob sent as is, with `contentType`; a FormData with
// none, since the browser writes the multipart boundary into it) instead of JSON.
async function rawJson(method, path, body, access, extra = {}) {
  const headers = { Accept: "application/json", ...(extra.headers || {}) };
  let payload;
  if (extra.raw !== undefined) { payload = extra.raw; if (extra.contentType) headers["Content-Type"] = extra.contentType; }
  else if (body !== undefined) { payload = JSON.stringify(body); headers["Content-Type"] = "application/json"; }
  if (access) headers.Authorization = `Bearer ${access}`;
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: payload, cache: "no-store", credentials: "same-origin" });
  } catch (e) {
    throw new ApiError(0, "network", "The hub cannot be reached", null);
  }
  if (resp.status === 204) return null;
  let data = null;
  try { data = await resp.json(); } catch { data = null; }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(resp.status, err.code || "http_" + resp.status, err.message || resp.statusText, err.details);
  }
  return data;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function withRefreshLock(fn) {
  if (navigator.locks && navigator.locks.request) {
    return navigator.locks.request("vigil-refresh", fn);
  }
  // Fallback lease in localStorage: good enough between tabs of one browser.
  const deadline = Date.now() + 15_000;
  for (;;) {
    const lease = JSON.parse(localStorage.getItem(LEASE_KEY) || "null");
    if (!lease || lease.until < Date.now() || lease.tab === tabId) {
      localStorage.setItem(LEASE_KEY, JSON.stringify({ tab: tabId, until: Date.now() + 10_000 }));
      await sleep(30);
      const mine = JSON.parse(localStorage.getItem(LEASE_KEY) || "null");
      if (mine && mine.tab === tabId) break;
    }
    if (Date.now() > deadline) break;
    await sleep(100);
  }
  try { return await fn(); } finally {
    const lease = JSON.parse(localStorage.getItem(LEASE_KEY) || "null");
    if (lease && lease.tab === tabId) localStorage.removeItem(LEASE_KEY);
  }
}

// One refresh in flight (per tab by `inFlight`, across tabs by the lock). A tab that waited for
// the lock sees the refresh token another tab already spent and uses its result instead.
export function refresh() {
  if (inFlight) return inFlight;
  const before = tokens();
  inFlight = withRefreshLock(async () => {
    const now = tokens();
    if (!now) throw new ApiError(401, "unauthorized", "Signed out", null);
    if (before && now.refresh !== before.refresh) return now;       // another tab did it
    try {
      return store(await rawJson("POST", "/api/v1/auth/refresh", { refresh_token: now.refresh }));
    } catch (e) {
      if (e.status === 401 || e.status === 403 || e.status === 422) clear();
      throw e;
    }
  }).finally(() => { inFlight = null; });
  return inFlight;
}

export async function login(email, password) {
  return store(await rawJson("POST", "/api/v1/auth/login", { email, password }));
}

export async function logout() {
  const t = tokens();
  if (t) { try { await rawJson("POST", "/api/v1/auth/logout", { refresh_token: t.refresh }); } catch { /* gone anyway */ } }
  clear();
}

export async function changePassword(current, next) {
  const pair = await api("POST", "/api/v1/auth/password", { current_password: current, new_password: next });
  return store(pair);
}

// An authenticated call; refreshes first when the token is (nearly) expired, and once on a 401.
export async function api(method, path, body, extra = {}) {
  let t = tokens();
  if (!t) throw new ApiError(401, "unauthorized", "Signed out", null);
  if (t.expiresAt - Date.now() < 5000) t = await refresh();
  try {
    return await rawJson(method, path, body, t.access, extra);
  } catch (e) {
    if (e.status !== 401) throw e;
    t = await refresh();
    return rawJson(method, path, body, t.access, extra);
  }
}

export const get = (path) => api("GET", path);
export const post = (path, body, headers) => api("POST", path, body === undefined ? {} : body, { headers });
export const patch = (path, body) => api("PATCH", path, body);
export const put = (path, body) => api("PUT", path, body);
export const del = (path) => api("DELETE", path);
// A file as the request body, e.g. an import: `contentType` names its format.
export const upload = (path, blob, contentType, headers) => api("POST", path, undefined, { raw: blob, contentType, headers });
// A multipart/form-data body (FormData), e.g. a document with its title.
export const postForm = (path, form, headers) => api("POST", path, undefined, { raw: form, headers });

// The file's name from the answer's Content-Disposition (the exact UTF-8 one when given), else `fallback`.
function fileName(resp, fallback) {
  const header = resp.headers.get("Content-Disposition") || "";
  const exact = /filename\*=UTF-8''([^;]+)/i.exec(header);
  if (exact) { try { return decodeURIComponent(exact[1]); } catch { /* a malformed name: the plain one */ } }
  const plain = /filename="([^"]+)"/.exec(header);
  return plain ? plain[1] : fallback;
}

// Fetch a file with the session's token (a plain link would carry none): the response, once ok.
async function fetchFile(path) {
  const send = (t) => fetch(path, { headers: { Authorization: `Bearer ${t.access}` }, cache: "no-store" });
  let t = tokens();
  if (!t) throw new ApiError(401, "unauthorized", "Signed out", null);
  if (t.expiresAt - Date.now() < 5000) t = await refresh();
  let resp = await send(t);
  if (resp.status === 401) resp = await send(await refresh());
  if (!resp.ok) {
    const err = ((await resp.json().catch(() => null)) || {}).error || {};
    throw new ApiError(resp.status, err.code, err.message || resp.statusText, err.details);
  }
  return resp;
}

// A file's bytes (a Blob) read with the session's token, e.g. an image to draw.
export async function blob(path) { return (await fetchFile(path)).blob(); }

// A file handed to the browser as a download: report exports, object documents.
export async function download(path, fallback) {
  const resp = await fetchFile(path);
  const url = URL.createObjectURL(await resp.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = fileName(resp, fallback);
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function startSession() { schedule(); }
