"""The console's static routes: content types, caching and CSP headers, the redirect, no path
escapes, and no external URL anywhere in the static files (the console works from the hub alone)."""
from __future__ import annotations

import re
from typing import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hub.console.routes import STATIC_DIR, console_routes

EXPECTED_TYPES = {
    "index.html": "text/html", "app.js": "text/javascript", "api.js": "text/javascript",
    "stream.js": "text/javascript", "queue.js": "text/javascript", "edges.js": "text/javascript", "style.css": "text/css",
    "dates.js": "text/javascript", "forms.js": "text/javascript", "admin.js": "text/javascript",
    "admin_objects.js": "text/javascript", "admin_panels.js": "text/javascript", "admin_users.js": "text/javascript",
    "admin_import.js": "text/javascript", "history.js": "text/javascript", "reports.js": "text/javascript",
    "audit.js": "text/javascript", "chart.js": "text/javascript", "alarm_detail.js": "text/javascript",
    "alarm_dialogs.js": "text/javascript", "checklist.js": "text/javascript", "notices.js": "text/javascript",
    "panel_state.js": "text/javascript", "settings.js": "text/javascript", "documents.js": "text/javascript",
    "panel_commands.js": "text/javascript",
    "panel_schedules.js": "text/javascript", "admin_holidays.js": "text/javascript",
    "robots.js": "text/javascript", "robot_detail.js": "text/javascript", "robot_plan.js": "text/javascript",
    "system_mode.js": "text/javascript",
}


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    app = web.Application()
    console_routes(app)
    async with TestClient(TestServer(app)) as c:
        yield c


@pytest.mark.parametrize("name", sorted(EXPECTED_TYPES))
async def test_each_file_is_served_with_its_type_no_cache_and_a_strict_csp(client: TestClient, name: str) -> None:
    resp = await client.get(f"/console/{name}")
    assert resp.status == 200
    assert resp.content_type == EXPECTED_TYPES[name]
    assert resp.headers["Cache-Control"] == "no-cache"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "connect-src 'self' ws: wss:" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert await resp.read() == (STATIC_DIR / name).read_bytes()


async def test_the_console_root_is_the_index(client: TestClient) -> None:
    resp = await client.get("/console/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert "<title>Vigil console</title>" in await resp.text()


@pytest.mark.parametrize("path", ["/", "/console"])
async def test_bare_paths_redirect_to_the_console(client: TestClient, path: str) -> None:
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/console/"


@pytest.mark.parametrize("path", ["/console/nope.js", "/console/../routes.py", "/console/%2e%2e/routes.py",
                                  "/console/..%2Froutes.py", "/console/.hidden", "/console/static"])
async def test_missing_and_escaping_paths_are_404(client: TestClient, path: str) -> None:
    resp = await client.get(path)
    assert resp.status == 404
    if resp.content_type == "application/json":  # ours; a path normalised out of /console/ is aiohttp's 404
        assert (await resp.json())["error"]["code"] == "not_found"
    assert "import" not in await resp.text()  # never the source of routes.py


def test_every_static_file_is_listed_here() -> None:
    assert sorted(p.name for p in STATIC_DIR.iterdir() if p.is_file()) == sorted(EXPECTED_TYPES)


# SVG's namespace name is an identifier createElementNS needs, never fetched.
URL = re.compile(r"https?://(?!www\.w3\.org/2000/svg\")|(?<![:\w])//[\w-]+(\.[\w-]+)+|\burl\(|@import|@font-face|\b(src|href)\s*=\s*[\"']?//")


@pytest.mark.parametrize("name", sorted(EXPECTED_TYPES))
def test_no_external_urls_fonts_or_inline_code(name: str) -> None:
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    found = [m.group(0) for m in URL.finditer(text)]
    assert found == [], f"{name} refers outside the hub: {found}"
    if name == "index.html":
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), "inline script (CSP forbids it)"
        assert " style=" not in text and "<style" not in text, "inline style (CSP forbids it)"
        assert not re.search(r"<[^>]*\son[a-z]+\s*=", text), "inline event handler (CSP forbids it)"


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED_TYPES if n.endswith(".js")))
def test_scripts_never_write_html_from_data(name: str) -> None:
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in text, f"{name} uses {sink}"
