"""Browser tests of the console: headless Debian Chromium driven by Playwright (its pip wheel
brings the driver; no browser download)."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import asynccontextmanager
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
