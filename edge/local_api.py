"""The edge's local page and API for the installer and the site's guards: health, status, metrics,
the Satel links (status, diagnostics, DLOADX release, control commands), the robots (status and
diagnostics, read only: robots are commanded from the hub, under a lease) and the site accounts.

It listens on `http_host` (127.0.0.1 by default; a LAN interface where the site wants the page on
its network). Everything but `/healthz` and `/metrics` needs a login (edge.local_auth): a site
account's session cookie (HttpOnly, SameSite=Strict), or the on-box tools' bearer token; without
one the answer is 401 `login_required`, and `/` shows the login form. Those two stay open because
monitoring scrapes them and they hold no site data or control. What each account may do is
`edge.local_auth.may`; a command is journaled with the account's name as `who`.

On top of the login: a web page open on the site's LAN cannot drive it through a logged-in
browser (every state-changing request, the login included, must be JSON from this origin; a
cross-site form post is refused), and no command runs without the user code the person typed —
the edge keeps no code to fall back on.
Errors use the project's one shape: `{"error": {"code", "message", "request_id", "details"}}`.
"""
from __future__ import annotations

import asyncio
import html
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edge import console
from edge.journal import Journal, JournalError
from edge.links.robots import RobotLink
from edge.links.robots import diagnostics as robot_diagnostics
from edge.links.satel import CommandOutcome, CommandResult, SatelLink, diagnostics
from edge.local_auth import (
    SESSION_COOKIE, Action, BadCredentials, LocalAuth, NotLoggedIn, Principal, TooManyAttempts, may,
)
from edge.site_accounts import AccountExists, AccountStoreError, NoSuchAccount
from shared.backoff import sleep_or_stop
from shared.bodies.local import LOCAL_ACK_KIND
from shared.clock import SYSTEM_CLOCK, Clock
from shared.error_shape import error_response
from shared.subjects import LANES

log = logging.getLogger("vigil.edge.local_api")

STATUS_KEY = web.AppKey("status", Callable[[], dict])
READY_KEY = web.AppKey("ready", Callable[[], Awaitable[dict]])
SATEL_KEY = web.AppKey("satel_links", Mapping[str, SatelLink])
ROBOTS_KEY = web.AppKey("robot_link", RobotLink)
AUTH_KEY = web.AppKey("local_auth", LocalAuth)
JOURNAL_KEY = web.AppKey("journal", Journal)
CLOCK_KEY = web.AppKey("clock", Clock)
CLOSING_KEY = web.AppKey("closing", asyncio.Event)
PRINCIPAL_KEY = web.RequestKey("principal", Principal)
#: How often the console's stream sends the state; the page calls it stale after a few misses.
STREAM_INTERVAL_S = 1.0

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# HTTP status and error code for each command outcome that is not an ACK.
_OUTCOME_ERRORS: dict[CommandResult, tuple[int, str]] = {
    CommandResult.NACK: (409, "command_refused"),
    CommandResult.TIMEOUT: (504, "command_timeout"),
    CommandResult.UNAVAILABLE: (503, "link_unavailable"),
}

# The login page is self-contained (no external resources): it must work with the site offline.
_STYLE = """<style>body{font-family:system-ui,sans-serif;margin:2em}label{display:block;margin:.5em 0}#error{color:#b00}</style>"""

LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Vigil edge: log in</title>""" + _STYLE + """
</head><body><h1>Vigil edge</h1><form id="login">
<label>Account <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button>Log in</button><p id="error" role="alert"></p></form>
<script>
document.getElementById('login').addEventListener('submit', async e => {
  e.preventDefault();
  const form = e.target, button = form.querySelector('button'), error = document.getElementById('error');
  button.disabled = true;
  error.textContent = '';
  try {
    const r = await fetch('/api/v1/login', {method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({username: form.username.value, password: form.password.value})});
    if (r.ok) { location.reload(); return; }
    error.textContent = (await r.json()).error.message;
  } catch (x) { error.textContent = 'the edge did not answer: ' + x; }
  button.disabled = false;
});
</script></body></html>"""



class ApiError(Exception):
    """A request the API refuses, with its HTTP status, error code, details and extra headers."""

    def __init__(self, status: int, code: str, message: str, details: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})


def _error(status: int, code: str, message: str, request_id: str, details: Mapping[str, Any] | None = None,
           headers: Mapping[str, str] | None = None) -> web.Response:
    return error_response(status, code, message, request_id, dict(details or {}),
                          {**(headers or {}), "X-Request-Id": request_id})


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@web.middleware
async def same_origin_json(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """A state-changing request must come from this page's own origin and carry JSON.

    A browser lets any page send a "simple" cross-site POST (a form, or fetch with text/plain)
    without asking first, with the session cookie it holds for this page (SameSite=Strict
    aside), and sends its Origin; it only sends `application/json` cross-site after a preflight
    this API never grants. So a foreign Origin, or a body that is not JSON, is refused: that is
    what stops a page on the site's LAN from disarming the panel through a logged-in browser, or
    logging it in to an account of the attacker's. Tools without a browser (curl, `python -m edge
    release`) send no Origin. The rule holds for bearer requests too, though they need it less:
    a browser never adds that header by itself."""
    if request.method in _SAFE_METHODS:
        return await handler(request)
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise ApiError(403, "cross_origin", f"requests from {origin} may not change anything here")
    if request.content_type != "application/json":
        raise ApiError(403, "json_required", "send the request body as JSON (Content-Type: application/json)")
    return await handler(request)


@web.middleware
async def error_shape(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Every error leaves in the one error shape, with a request id."""
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc.status, exc.code, exc.message, request_id, exc.details, exc.headers)
    except AccountStoreError as exc:
        return _error(503, "accounts_unavailable", str(exc), request_id)
    except ValueError as exc:
        return _error(400, "bad_request", str(exc), request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason, request_id)


# Open without a login: the login itself, the page (it shows the login form until then), and
# what monitoring scrapes.
_OPEN_PATHS = frozenset({"/", "/healthz", "/readyz", "/metrics", "/api/v1/login", "/api/v1/logout"})


async def _authenticate(request: web.Request) -> Principal:
    try:
        return await request.app[AUTH_KEY].authenticate(request.headers.get("Authorization"),
                                                        request.cookies.get(SESSION_COOKIE))
    except NotLoggedIn as exc:
        raise ApiError(401, exc.code, exc.message) from None


@web.middleware
async def require_login(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Every route not open needs a session or the on-box token (401 otherwise): a route added
    later, or a path no route matches, is closed until someone opens it on purpose. Decided by
    the route the router matched, not by the path's text, so no spelling of a path gets past."""
    resource = request.match_info.route.resource
    if resource is None or resource.canonical not in _OPEN_PATHS:
        request[PRINCIPAL_KEY] = await _authenticate(request)
    return await handler(request)


def _allowed(action: Action, handler: _Handler) -> _Handler:
    """`handler`, for the accounts that may do `action` (403 `forbidden` for the others)."""
    async def guarded(request: web.Request) -> web.StreamResponse:
        principal = request[PRINCIPAL_KEY]
        if not may(principal.role, action):
            raise ApiError(403, "forbidden", f"a {principal.role.value} account may not do this ({action.value})")
        return await handler(request)

    return guarded


def _refusal_banner(text: str | None) -> str:
    """The red banner (see edge.refusals), in the served page itself: it shows even before, or
    without, the script's first refresh."""
    hidden = "" if text else " hidden"
    return f'<div id="refused" role="alert"{hidden}>{html.escape(text or "")}</div>'


# The login form's script and style are inline (it must work before any login); nothing else.
_LOGIN_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; " \
             "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"


async def page(request: web.Request) -> web.Response:
    """The login form, or once logged in the local console (edge.console)."""
    try:
        principal = await _authenticate(request)
    except ApiError:
        return web.Response(text=LOGIN_PAGE, content_type="text/html", headers={"Content-Security-Policy": _LOGIN_CSP})
    banner = (request.app[STATUS_KEY]().get("refusal") or {}).get("banner")
    text = console.index_html().replace("<!--refusal-->", _refusal_banner(banner)).replace(
        "<!--who-->", html.escape(principal.who))
    return web.Response(text=text, content_type="text/html",
                        headers={"Content-Security-Policy": console.CSP, "Cache-Control": "no-store"})


async def console_file(request: web.Request) -> web.Response:
    """The console's script and style (behind the login like everything else)."""
    found = console.static_file(request.match_info["name"])
    if found is None:
        raise ApiError(404, "not_found", "no such console file")
    body, content_type = found
    return web.Response(body=body, content_type=content_type,
                        headers={"Content-Security-Policy": console.CSP, "Cache-Control": "no-cache"})


def _journal(app: web.Application) -> Journal:
    journal = app.get(JOURNAL_KEY)
    if journal is None:
        raise ApiError(503, "journal_unavailable", "this page was started without the journal")
    return journal


async def _console_state(app: web.Application) -> dict[str, Any]:
    """Everything the console shows but the alarm list: the agent's whole status (what other
    parts add to it is shown generically), whether the hub answers, the backlog per lane, and
    each panel's partitions, zones and outputs."""
    status = app[STATUS_KEY]()
    now = app[CLOCK_KEY].now()
    journal = app.get(JOURNAL_KEY)
    backlog = None
    if journal is not None:
        oldest = {lane: await journal.oldest_unforwarded(lane) for lane in LANES}
        backlog = console.backlog(journal.unforwarded, oldest, now)
    return {"at": now.isoformat(), "hub_reachable": console.hub_reachable(status), "backlog": backlog,
            "panels": [console.panel_view(link) for link in app[SATEL_KEY].values()], "status": status}


async def _alarms(app: web.Application) -> list[dict[str, Any]]:
    return console.alarm_list(await _journal(app).recent_alarms(console.ALARM_LIMIT, (LOCAL_ACK_KIND,)))


async def console_state(request: web.Request) -> web.Response:
    return web.json_response(await _console_state(request.app), dumps=_dumps)


async def console_alarms(request: web.Request) -> web.Response:
    return web.json_response(await _alarms(request.app), dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def _sse(event: str, data: Any) -> bytes:
    """One server-sent event (json.dumps writes no newline, so the data is one line)."""
    return f"event: {event}\ndata: {_dumps(data)}\n\n".encode()


async def console_stream(request: web.Request) -> web.StreamResponse:
    """The console's live feed (server-sent events): `state` every STREAM_INTERVAL_S, `alarms`
    whenever the journal has grown, `logout` (and the end) once the session has ended. It ends
    when the agent stops, so a stop does not wait for open pages."""
    app = request.app
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    sent_seq: int | None = None
    journal = app.get(JOURNAL_KEY)
    try:
        while True:
            await response.write(_sse("state", await _console_state(app)))
            if journal is not None and journal.last_seq != sent_seq:
                sent_seq = journal.last_seq
                await response.write(_sse("alarms", await _alarms(app)))
            if await sleep_or_stop(STREAM_INTERVAL_S, app[CLOSING_KEY]):
                break
            try:
                await _authenticate(request)  # a logout or a disabled account ends the stream at once
            except ApiError as exc:
                await response.write(_sse("logout", {"code": exc.code, "message": exc.message}))
                break
    except ConnectionResetError:
        pass  # the page went away
    return response


async def console_ack(request: web.Request) -> web.Response:
    """Acknowledge a journaled alarm on site with a note: journals a NORMAL `edge.local.ack`
    (who, when, note, which alarm). The hub shows it on the alarm's bundle and keeps the
    bundle's status its own: this changes nothing but the record."""
    journal = _journal(request.app)
    note = console.check_note((await _body(request)).get("note"))
    alarm_id = request.match_info["alarm_id"]
    alarm = next((a for a in await _alarms(request.app) if a["id"] == alarm_id), None)
    if alarm is None:
        raise ApiError(404, "not_found", f"no recent alarm {alarm_id!r} in this edge's journal")
    who = _who(request)
    envelope = console.local_ack(alarm, who, note, request.app[CLOCK_KEY])
    try:
        seq = await journal.append(envelope)
    except JournalError as exc:
        raise ApiError(503, "journal_unavailable", f"the acknowledgement was not journaled: {exc}") from None
    log.info("alarm acknowledged on site", extra={"alarm": alarm_id, "kind": alarm["kind"], "who": who, "seq": seq})
    return web.json_response({"id": str(envelope.id), "seq": seq, "acked_id": alarm_id, "who": who, "note": note},
                             status=201)


async def status(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATUS_KEY]())


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when the box can journal and forward (edge.readiness), else 503 naming what fails;
    without a readiness source (an agent still starting), 503."""
    ready = request.app.get(READY_KEY)
    if ready is None:
        return web.json_response({"status": "not_ready", "failing": {"agent": "starting"}}, status=503)
    body = await ready()
    return web.json_response(body, status=200 if body["status"] == "ready" else 503)


async def metrics(_request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


# --- login and accounts -------------------------------------------------------------------------


def _strings(body: Mapping[str, Any], *keys: str) -> list[str]:
    values = [body.get(key) for key in keys]
    if not all(isinstance(value, str) for value in values):
        raise ValueError(f"{' and '.join(keys)} must be strings")
    return values  # type: ignore[return-value]


async def login(request: web.Request) -> web.Response:
    """Log in with a site account: 200 with the session cookie, 401 `invalid_credentials` (and no
    cookie), 429 `too_many_attempts` after repeated failures from this address."""
    username, password = _strings(await _body(request), "username", "password")
    try:
        principal, token = await request.app[AUTH_KEY].login(username, password, request.remote or "unknown")
    except BadCredentials:
        raise ApiError(401, "invalid_credentials", "wrong account name or password") from None
    except TooManyAttempts as exc:
        wait = max(1, round(exc.retry_after_s))
        raise ApiError(429, "too_many_attempts", f"too many failed logins from your address; try again in {wait} s",
                       {"retry_after_s": wait}, {"Retry-After": str(wait)}) from None
    response = web.json_response(principal.as_dict())
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict", path="/", secure=request.secure)
    return response


async def logout(request: web.Request) -> web.Response:
    request.app[AUTH_KEY].logout(request.cookies.get(SESSION_COOKIE))
    response = web.json_response({"logged_out": True})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    return web.json_response(request[PRINCIPAL_KEY].as_dict())


async def accounts_list(request: web.Request) -> web.Response:
    return web.json_response([account.public() for account in await request.app[AUTH_KEY].accounts()])


async def accounts_add(request: web.Request) -> web.Response:
    username, password, role = _strings(await _body(request), "username", "password", "role")
    try:
        account = await request.app[AUTH_KEY].add_account(username, password, role, request[PRINCIPAL_KEY])
    except AccountExists as exc:
        raise ApiError(409, "account_exists", str(exc)) from None
    return web.json_response(account.public(), status=201)


async def accounts_disable(request: web.Request) -> web.Response:
    try:
        account = await request.app[AUTH_KEY].disable_account(request.match_info["name"], request[PRINCIPAL_KEY])
    except NoSuchAccount as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    return web.json_response(account.public())


# --- Satel links --------------------------------------------------------------------------------


def _link(request: web.Request) -> SatelLink:
    panel = request.match_info["panel"]
    link = request.app[SATEL_KEY].get(panel)
    if link is None:
        raise ApiError(404, "not_found", f"no Satel panel {panel!r} on this edge")
    return link


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise ValueError(f"request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("request body must be a JSON object")
    return body


def _numbers(body: Mapping[str, Any], key: str) -> list[int]:
    value = body.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(n, int) and not isinstance(n, bool) for n in value):
        raise ValueError(f"{key} must be a non-empty list of numbers")
    return value


def _flag(body: Mapping[str, Any], key: str, default: bool | None = None) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false")
    return value


def _code(body: Mapping[str, Any]) -> str:
    code = body.get("code")
    if code is None:
        raise ApiError(400, "user_code_required", "type the user code: every command needs the code of the person "
                       "giving it (the edge keeps none)")
    if not isinstance(code, str):
        raise ValueError("code must be a string of digits")
    return code


def _who(request: web.Request) -> str:
    """Who gave a command: the logged-in account (`installer:jan`), or `local-cli`."""
    return request[PRINCIPAL_KEY].who


def _outcome(outcome: CommandOutcome) -> web.Response:
    if outcome.ok:
        return web.json_response(outcome.as_dict())
    status_code, code = _OUTCOME_ERRORS[outcome.result]
    raise ApiError(status_code, code, outcome.reason, outcome.as_dict())


async def satel_links(request: web.Request) -> web.Response:
    return web.json_response([link.status() for link in request.app[SATEL_KEY].values()])


async def satel_diagnostics(request: web.Request) -> web.Response:
    return web.json_response(diagnostics(_link(request)))


async def satel_release(request: web.Request) -> web.Response:
    link = _link(request)
    body = await _body(request)
    minutes, named, why = body.get("minutes"), body.get("who"), body.get("why")
    if isinstance(minutes, bool) or not isinstance(minutes, int | float):
        raise ValueError("minutes must be a number: how long the installer needs the panel")
    if not isinstance(why, str):
        raise ValueError("why must be a string: why the panel is released (e.g. the work order)")
    if named is not None and not isinstance(named, str):
        raise ValueError("who must be a string: the person releasing the panel")
    # The account is who the edge knows; a name given besides (the person at the shared on-box
    # token, say) is kept with it, never instead of it.
    who = f"{_who(request)} ({named.strip()})" if named and named.strip() else _who(request)
    release = await link.release(minutes, who, why)
    return web.json_response({"panel": link.panel_id, "released": release.as_dict(), "state": link.link_state.value})


async def satel_resume(request: web.Request) -> web.Response:
    link = _link(request)
    if not link.resume():
        raise ApiError(409, "not_released", f"Satel panel {link.panel_id} is not released")
    return web.json_response({"panel": link.panel_id, "resumed": True})


async def satel_arm(request: web.Request) -> web.Response:
    link, body = _link(request), await _body(request)
    mode = body.get("mode", 0)
    if isinstance(mode, bool) or not isinstance(mode, int):
        raise ValueError("mode must be 0, 1, 2 or 3")
    outcome = await link.arm(_numbers(body, "partitions"), mode=mode, force=_flag(body, "force", False), code=_code(body),
                             who=_who(request))
    return _outcome(outcome)


async def satel_disarm(request: web.Request) -> web.Response:
    link, body = _link(request), await _body(request)
    return _outcome(await link.disarm(_numbers(body, "partitions"), code=_code(body), who=_who(request)))


async def satel_clear_alarm(request: web.Request) -> web.Response:
    link, body = _link(request), await _body(request)
    return _outcome(await link.clear_alarm(_numbers(body, "partitions"), code=_code(body), who=_who(request)))


async def satel_outputs(request: web.Request) -> web.Response:
    link, body = _link(request), await _body(request)
    return _outcome(await link.switch_outputs(_numbers(body, "outputs"), on=_flag(body, "on"), code=_code(body),
                                              who=_who(request)))


async def satel_bypass(request: web.Request) -> web.Response:
    link, body = _link(request), await _body(request)
    return _outcome(await link.bypass(_numbers(body, "zones"), bypass=_flag(body, "bypass", True), code=_code(body),
                                      who=_who(request)))


def _robots(request: web.Request) -> RobotLink:
    link = request.app.get(ROBOTS_KEY)
    if link is None:
        raise ApiError(404, "no_robots", "no robots are configured on this edge")
    return link


async def robots_status(request: web.Request) -> web.Response:
    return web.json_response(_robots(request).status())


async def robots_diagnostics(request: web.Request) -> web.Response:
    return web.json_response(robot_diagnostics(_robots(request)))


def build_app(status_fn: Callable[[], dict], auth: LocalAuth,
              satel: Mapping[str, SatelLink] | None = None, robots: RobotLink | None = None,
              journal: Journal | None = None, clock: Clock = SYSTEM_CLOCK,
              ready: Callable[[], Awaitable[dict]] | None = None) -> web.Application:
    """The local page and API; `auth` holds the logins and sessions, `satel` maps panel id → its
    running link, `robots` is the robot link (None: no robots configured), `journal` the agent's
    journal (the console's alarm list and acks; None: those answer 503), `ready` what /readyz
    answers (edge.readiness)."""
    app = web.Application(middlewares=[error_shape, same_origin_json, require_login])
    app[STATUS_KEY] = status_fn
    app[AUTH_KEY] = auth
    app[SATEL_KEY] = dict(satel or {})
    app[CLOCK_KEY] = clock
    app[CLOSING_KEY] = asyncio.Event()
    if robots is not None:
        app[ROBOTS_KEY] = robots
    if journal is not None:
        app[JOURNAL_KEY] = journal
    if ready is not None:
        app[READY_KEY] = ready

    async def closing(app: web.Application) -> None:
        app[CLOSING_KEY].set()

    app.on_shutdown.append(closing)
    app.router.add_get("/", page)
    app.router.add_get("/console/{name}", _allowed(Action.VIEW, console_file))
    app.router.add_get("/api/v1/console/state", _allowed(Action.VIEW, console_state))
    app.router.add_get("/api/v1/console/stream", _allowed(Action.VIEW, console_stream))
    app.router.add_get("/api/v1/console/alarms", _allowed(Action.VIEW, console_alarms))
    app.router.add_post("/api/v1/console/alarms/{alarm_id}/ack", _allowed(Action.ARM_DISARM, console_ack))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/api/v1/login", login)
    app.router.add_post("/api/v1/logout", logout)
    app.router.add_get("/api/v1/me", _allowed(Action.VIEW, me))
    app.router.add_get("/api/v1/accounts", _allowed(Action.MANAGE_ACCOUNTS, accounts_list))
    app.router.add_post("/api/v1/accounts", _allowed(Action.MANAGE_ACCOUNTS, accounts_add))
    app.router.add_post("/api/v1/accounts/{name}/disable", _allowed(Action.MANAGE_ACCOUNTS, accounts_disable))
    app.router.add_get("/api/v1/status", _allowed(Action.VIEW, status))
    app.router.add_get("/api/v1/links/satel", _allowed(Action.VIEW, satel_links))
    base = "/api/v1/links/satel/{panel}"
    app.router.add_get(f"{base}/diagnostics", _allowed(Action.VIEW, satel_diagnostics))
    app.router.add_post(f"{base}/release", _allowed(Action.RELEASE, satel_release))
    app.router.add_post(f"{base}/resume", _allowed(Action.RELEASE, satel_resume))
    app.router.add_post(f"{base}/arm", _allowed(Action.ARM_DISARM, satel_arm))
    app.router.add_post(f"{base}/disarm", _allowed(Action.ARM_DISARM, satel_disarm))
    app.router.add_post(f"{base}/clear-alarm", _allowed(Action.ARM_DISARM, satel_clear_alarm))
    app.router.add_post(f"{base}/outputs", _allowed(Action.OUTPUTS, satel_outputs))
    app.router.add_post(f"{base}/bypass", _allowed(Action.BYPASS, satel_bypass))
    app.router.add_get("/api/v1/links/robots", _allowed(Action.VIEW, robots_status))
    app.router.add_get("/api/v1/links/robots/diagnostics", _allowed(Action.VIEW, robots_diagnostics))
    return app
