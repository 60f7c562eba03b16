"""Serving the operator console: `/` redirects to `/console/`, and `/console/{tail}` serves the
static files (no build step) with a strict Content-Security-Policy and `Cache-Control: no-cache`."""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from hub.api.errors import error_response

STATIC_DIR = Path(__file__).resolve().parent / "static"
CSP = ("default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; "
       "script-src 'self'; media-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".json": "application/json",
}
HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _resolve(tail: str) -> Path | None:
    """The file for `tail` inside STATIC_DIR, or None (missing, hidden, or outside it)."""
    if tail in ("", "/"):
        tail = "index.html"
    if any(part.startswith(".") for part in tail.split("/")):
        return None
    path = (STATIC_DIR / tail).resolve()
    if STATIC_DIR not in path.parents or not path.is_file() or path.suffix not in CONTENT_TYPES:
        return None
    return path


async def console_file(request: web.Request) -> web.StreamResponse:
    path = _resolve(request.match_info.get("tail", ""))
    if path is None:
        return error_response(404, "not_found", "no such console file")
    return web.Response(body=path.read_bytes(), headers={**HEADERS, "Content-Type": CONTENT_TYPES[path.suffix]})


async def root_redirect(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/")


async def console_redirect(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/")


def console_routes(app: web.Application) -> None:
    """Add `GET /` (redirect) and `GET /console/{tail}` (the static console) to `app`."""
    app.router.add_get("/", root_redirect)
    app.router.add_get("/console", console_redirect)
    app.router.add_get("/console/{tail:.*}", console_file)
