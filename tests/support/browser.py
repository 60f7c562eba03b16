"""Browser tests of the console: headless Debian Chromium driven by Playwright (its pip wheel
brings the driver; no browser download)."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import asynccontextmanager
from collections.abc import Callable
from typing import Any, AsyncIterator

import pytest

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required"]

def chromium_path() -> str | None:
    """Chromium's executable: $VIGIL_CHROMIUM, else the first Debian/Ubuntu path present."""
    explicit = os.environ.get("VIGIL_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return next((p for p in CHROMIUM_CANDIDATES if os.access(p, os.X_OK)), None)


def require_browser() -> str:
    """Chromium's path and Playwright importable, or skip the test with the reason."""
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium: install it (apt-get install -y chromium) or set VIGIL_CHROMIUM")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    return path


@asynccontextmanager
async def browser_page(viewport: dict[str, int] | None = None) -> AsyncIterator[Any]:
    """A fresh page in a fresh headless Chromium (its own temporary profile)."""
    from playwright.async_api import async_playwright

    executable = require_browser()
    profile = tempfile.mkdtemp(prefix="vigil-chromium-")
    try:
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                profile, executable_path=executable, headless=True, args=CHROMIUM_ARGS,
                viewport=viewport or {"width": 1366, "height": 768})
            try:
                page = context.pages[0] if context.pages else await context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                # A CSP violation means the console needs something the policy forbids.
                page.on("console", lambda msg: errors.append(msg.text)
                        if "Content Security Policy" in msg.text else None)
                page.js_errors = errors  # type: ignore[attr-defined]
                yield page
            finally:
                await context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class StreamCut:
    """The console's live stream passed through a relay the test controls: once `dropping`, the
    messages `keep_from_page` picks are held back (kept in `dropped`) instead of reaching the page,
    and `cut` drops the connection so the page must reconnect with the ticket route refused, as a
    lost replay would leave it."""

    def __init__(self, keep_from_page: Callable[[str], bool]) -> None:
        self.keep_from_page = keep_from_page
        self.dropping = False
        self.dropped: list[str] = []
        self.sockets: list[Any] = []

    async def install(self, page: Any) -> None:
        """Relay the page's stream socket through this object."""
        def relay(ws: Any) -> None:
            server = ws.connect_to_server()

            def forward(message: str | bytes) -> None:
                if self.dropping and self.keep_from_page(str(message)):
                    self.dropped.append(str(message))
                else:
                    ws.send(message)

            server.on_message(forward)
            self.sockets.append(ws)

        await page.route_web_socket(re.compile(r".*/api/v1/ws\b.*"), relay)

    async def cut(self, page: Any) -> None:
        """Refuse new stream tickets, start dropping, close the socket, and wait for the banner
        that says the page is offline; `restore` lets it back."""
        await page.route(TICKET_ROUTE, _refuse)
        self.dropping = True
        await self.sockets[-1].close()
        await page.wait_for_selector("#banner:not([hidden])", timeout=10000)

    async def restore(self, page: Any) -> None:
        """Let the page reconnect and wait until its banner is gone."""
        await page.unroute(TICKET_ROUTE, _refuse)
        await page.wait_for_selector("#banner", state="hidden", timeout=30000)


TICKET_ROUTE = "**/api/v1/auth/ws-ticket"


async def _refuse(route: Any) -> None:
    await route.abort()
