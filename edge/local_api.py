"""The edge's local page and API for the installer: health, status, metrics, and the Satel links
(status, diagnostics, DLOADX release, control commands).

It listens on the box itself (127.0.0.1 by default) and has no login of its own yet, so
`http_host` must stay a local or management address. What it does hold against: a web page open
on the site's LAN cannot drive it (every state-changing request must be JSON from this origin, a
cross-site form post is refused), and no command runs without the user code the person typed —
the edge keeps no code to fall back on.
Errors use the project's one shape: `{"error": {"code", "message", "request_id", "details"}}`.
"""
from __future__ import annotations

import html
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edge.links.satel import CommandOutcome, CommandResult, SatelLink, diagnostics
from shared.error_shape import error_response

STATUS_KEY = web.AppKey("status", Callable[[], dict])
SATEL_KEY = web.AppKey("satel_links", Mapping[str, SatelLink])

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# HTTP status and error code for each command outcome that is not an ACK.
_OUTCOME_ERRORS: dict[CommandResult, tuple[int, str]] = {
    CommandResult.NACK: (409, "command_refused"),
    CommandResult.TIMEOUT: (504, "command_timeout"),
    CommandResult.UNAVAILABLE: (503, "link_unavailable"),
}

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Vigil edge</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}td{padding:.2em 1em}.ok{color:#080}.bad{color:#b00}.warn{color:#a60}
#refused{background:#b00;color:#fff;font-weight:bold;font-size:1.2em;padding:1em;margin-bottom:1em}[hidden]{display:none}</style>
</head><body><!--refusal--><h1>Vigil edge <span id="edge"></span></h1><table id="t"></table>
<h2>Links</h2><table id="links"></table>
<script>
function esc(s){ return String(s ?? '').replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c])); }
async function load(){
  const s = await (await fetch('/api/v1/status')).json();
  document.getElementById('edge').textContent = s.edge_id;
  const banner = document.getElementById('refused'), refusal = s.refusal || {};
  banner.hidden = !refusal.banner;
  banner.textContent = refusal.banner || '';
  const rows = [
    ['hub link', s.nats.connected ? '<span class=ok>connected</span>' : '<span class=bad>down</span>'],
    ['unforwarded (evt / alarm)', s.journal.unforwarded.evt + ' / ' + s.journal.unforwarded.alarm],
    ['last seq', s.journal.last_seq],
    ['journal bytes', s.journal.bytes + ' of ' + s.journal.max_bytes],
    ['forwarder', esc(JSON.stringify(s.forwarder.lanes))],
    ['last error', esc(JSON.stringify(s.forwarder.last_error))],
  ];
  document.getElementById('t').innerHTML = rows.map(r => '<tr><td>'+r[0]+'</td><td>'+r[1]+'</td></tr>').join('');
  const links = (s.links && s.links.satel) || [];
  document.getElementById('links').innerHTML = links.length ? links.map(l => {
    const cls = l.state === 'up' ? 'ok' : (l.state === 'released' ? 'warn' : 'bad');
    const rel = l.released ? ' until ' + esc(l.released.until) + ' by ' + esc(l.released.who) + ': ' + esc(l.released.why) : '';
    const err = l.last_error && l.state !== 'up' ? ' (' + esc(l.last_error) + ')' : '';
    return '<tr><td>satel ' + esc(l.panel) + '</td><td>' + esc(l.address) + '</td><td class=' + cls + '>'
      + esc(l.state) + rel + err + '</td><td>' + esc(l.mode) + ', module ' + esc(l.module_version) + '</td></tr>';
  }).join('') : '<tr><td>no device links configured</td></tr>';
}
load(); setInterval(load, 2000);
</script></body></html>"""


class ApiError(Exception):
    """A request the API refuses, with its HTTP status, error code and details."""

    def __init__(self, status: int, code: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})


def _error(status: int, code: str, message: str, request_id: str, details: Mapping[str, Any] | None = None) -> web.Response:
    return error_response(status, code, message, request_id, dict(details or {}), {"X-Request-Id": request_id})


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@web.middleware
async def same_origin_json(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """A state-changing request must come from this page's own origin and carry JSON.

    A browser lets any page send a "simple" cross-site POST (a form, or fetch with text/plain)
    without asking first, and sends its Origin; it only sends `application/json` cross-site after
    a preflight this API never grants. So a foreign Origin, or a body that is not JSON, is refused:
    that is what stops a page on the site's LAN from disarming the panel through a visitor's
    browser. Tools without a browser (curl, `python -m edge release`) send no Origin."""
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
        return _error(exc.status, exc.code, exc.message, request_id, exc.details)
    except ValueError as exc:
        return _error(400, "bad_request", str(exc), request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason, request_id)


def _refusal_banner(text: str | None) -> str:
    """The red banner (see edge.refusals), in the served page itself: it shows even before, or
    without, the script's first refresh."""
    hidden = "" if text else " hidden"
    return f'<div id="refused" role="alert"{hidden}>{html.escape(text or "")}</div>'


async def page(request: web.Request) -> web.Response:
    banner = (request.app[STATUS_KEY]().get("refusal") or {}).get("banner")
    return web.Response(text=PAGE.replace("<!--refusal-->", _refusal_banner(banner)), content_type="text/html")


async def status(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATUS_KEY]())


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics(_request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


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
    """Who gave a command, as far as this page can tell until it has a login."""
    return f"local API from {request.remote or 'unknown address'}"


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
    minutes, who, why = body.get("minutes"), body.get("who"), body.get("why")
    if isinstance(minutes, bool) or not isinstance(minutes, int | float):
        raise ValueError("minutes must be a number: how long the installer needs the panel")
    if not isinstance(who, str) or not isinstance(why, str):
        raise ValueError("who and why must be strings: who releases the panel, and why")
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


def build_app(status_fn: Callable[[], dict], satel: Mapping[str, SatelLink] | None = None) -> web.Application:
    """The local page and API; `satel` maps panel id → its running link."""
    app = web.Application(middlewares=[error_shape, same_origin_json])
    app[STATUS_KEY] = status_fn
    app[SATEL_KEY] = dict(satel or {})
    app.router.add_get("/", page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/links/satel", satel_links)
    base = "/api/v1/links/satel/{panel}"
    app.router.add_get(f"{base}/diagnostics", satel_diagnostics)
    app.router.add_post(f"{base}/release", satel_release)
    app.router.add_post(f"{base}/resume", satel_resume)
    app.router.add_post(f"{base}/arm", satel_arm)
    app.router.add_post(f"{base}/disarm", satel_disarm)
    app.router.add_post(f"{base}/clear-alarm", satel_clear_alarm)
    app.router.add_post(f"{base}/outputs", satel_outputs)
    app.router.add_post(f"{base}/bypass", satel_bypass)
    return app
