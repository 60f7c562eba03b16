"""The Edges page in headless Chromium (issue 10): an ADMIN sees each edge with its object, key,
leaf connection and reported backlog, as a real agent reports it through a real hub; creates an
edge and is shown its token once (copy, then gone); sees refusals next to the field they concern;
revokes an edge after a confirmation naming it; sees a silent edge turn "disconnected" with its
last report marked stale, and a table that cannot be refreshed say so. An OPERATOR has no Edges
page. Screenshots land in $VIGIL_CONSOLE_SCREENSHOTS, by default test-artifacts/console/."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import asyncpg
import pytest
from aiohttp import web

from hub.api.server import build_http
from hub.auth import build_auth
from hub.edges.status import store_report
from hub.ingest.edge_keys import add_edge
from hub.secret_box import SecretBox
from hub.stream import HubStream, stream_router
from shared.edge_status import EdgeStatusReport, LaneBacklog, encode_report
from shared.process import free_port
from shared.signing import Signer
from support.browser import browser_page, require_browser
from support.enrolment import EnrolmentSetup, enrolment_service
from support.topology import HOST, Topology
from support.waiting import wait_until
from test_auth_helpers import cheap_passwords
from test_console_browser import ADMIN_EMAIL, OPERATOR_EMAIL, add_user, log_in, shot

pytestmark = pytest.mark.slow


@dataclass
class EdgeConsole:
    base: str
    topology: Topology
    enrolment: EnrolmentSetup


@pytest.fixture
async def edge_console(topology: Topology, db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> AsyncIterator[EdgeConsole]:
    """A real hub (ingest, status reports) and, beside it on the same database, an HTTP server with
    the console, login, live stream and enrolment (a CA in a temp folder)."""
    require_browser()
    config = topology.hub_config()
    await topology.run_hub(config)
    box = SecretBox.from_file(Path(config.auth.secret_file))  # the hub's: its token signing keys are sealed with it
    auth = await build_auth(db, config.auth, box=box, passwords=cheap_passwords())
    stream = HubStream(db, db_dsn)
    await stream.start()
    setup = enrolment_service(tmp_path, f"https://{HOST}:{free_port()}")
    runner = web.AppRunner(build_http(db, auth.authenticator, [auth.router, stream_router(stream)], box,
                                      enrolment=setup.service), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, HOST, port).start()
    try:
        yield EdgeConsole(f"http://{HOST}:{port}", topology, setup)
    finally:
        await stream.close()
        await runner.cleanup()


async def text(page: Any, selector: str) -> str:
    return (await page.text_content(selector)) or ""


async def test_admin_sees_creates_and_revokes_edges_and_never_reads_old_data_as_current(
        edge_console: EdgeConsole, db: asyncpg.Pool) -> None:
    base, topology = edge_console.base, edge_console.topology
    bank = await db.fetchval("INSERT INTO objects (name, address) VALUES ('Bank <i>Vault</i>', '5 Vault Road') RETURNING id")
    await db.execute("INSERT INTO objects (name) VALUES ('Depot')")
    await add_user(db, ADMIN_EMAIL, "ADMIN")
    config = topology.edge_config(status_report={"interval_s": 1.0, "retry_s": 0.2})
    signer = await topology.enrol(config)
    await db.execute("UPDATE edges SET object_id = $1 WHERE edge_id = 'site-1'", bank)
    stop_agent = topology.run_edge(config)
    await wait_until(lambda: db.fetchval("SELECT count(*) FROM edge_status"), timeout=30, what="the agent's first report")
    # site-5 has just come back from an outage: 12,000 rows waiting, draining at 2,000 a second.
    async with db.acquire() as conn:
        await add_edge(conn, "site-5", Signer.generate().public_raw)
    returning = EdgeStatusReport(edge="site-5", epoch="e1", run=1, n=1, sent_at=datetime.now(timezone.utc),
                                 interval_s=60.0, lanes={"evt": LaneBacklog(12_000, 7200.0, 2_000.0),
                                                         "alarm": LaneBacklog(0, None, 0.0)},
                                 links=[], journal_bytes=4096, version="0.1.0")
    await store_report(db, returning, encode_report(returning))

    async with browser_page() as page:
        await page.clock.install()  # fake timers: the 10 s refresh comes when the test says
        await log_in(page, base, ADMIN_EMAIL)
        await page.click("#nav-admin > summary")  # the Edges page is in the Administration menu
        assert await page.locator("#nav-edges").is_visible()
        await page.click("#nav-edges")
        await page.wait_for_selector("#view-edges:not([hidden])", timeout=5000)
        row = page.locator("#edges-body tr[data-edge='site-1']")
        await row.wait_for(timeout=5000)
        assert await row.get_attribute("data-connected") == "true"
        assert "Bank <i>Vault</i>" in await row.text_content()  # data, never markup
        assert await page.locator("#edges-body i").count() == 0
        assert signer.key_id in await row.locator("td").nth(2).text_content()
        assert "● connected" in await row.locator("td.connection").text_content()
        backlog = await row.locator("td.backlog").text_content()
        assert "evt: 0 rows" in backlog and "alarm: 0 rows" in backlog and "stale" not in backlog
        assert await row.locator(".catching-up").count() == 0  # nothing waits: not catching up
        catching = page.locator("#edges-body tr[data-edge='site-5'] .catching-up")
        assert (await catching.text_content() or "").startswith("catching up: 12,000 events, ~")
        assert "left" in (await catching.text_content() or "")
        await shot(page, "edges")

        # Create: the token and the command are shown once, with a warning and copy buttons.
        await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        await page.click("#edge-new")
        await page.wait_for_selector("#edge-dialog[open]", timeout=5000)
        await page.wait_for_selector("#edge-object option:has-text('Depot')", state="attached", timeout=5000)
        await page.fill("#edge-id", "site-9")
        await page.select_option("#edge-object", str(bank))
        await page.fill("#edge-ttl", "48")
        await page.click("#edge-submit")
        await page.wait_for_selector("#edge-created:not([hidden])", timeout=5000)
        token = await text(page, "#edge-token")
        assert token.startswith("vet_")
        assert token in await text(page, "#edge-command")
        assert "shown this once and never again" in await text(page, "#edge-once")
        assert await text(page, "#edge-fingerprint") == edge_console.enrolment.service.fingerprint
        stored = await db.fetchrow("SELECT token_hash, expires_at FROM edge_enrolment_tokens WHERE edge_id = 'site-9'")
        assert bytes(stored["token_hash"]) == hashlib.sha256(token.encode()).digest()  # the token shown is the real one
        assert abs(stored["expires_at"] - datetime.now(timezone.utc) - timedelta(hours=48)) < timedelta(minutes=5)
        assert await db.fetchval("SELECT object_id FROM edges WHERE edge_id = 'site-9'") == bank
        await page.click("#edge-copy-token")
        assert await page.evaluate("navigator.clipboard.readText()") == token
        await shot(page, "edges-token-once")
        await page.click("#edge-done")
        await page.wait_for_selector("#edge-dialog", state="hidden", timeout=5000)
        assert token not in await page.content()  # gone from the page once closed
        pending = page.locator("#edges-body tr[data-edge='site-9']")
        await pending.wait_for(timeout=5000)
        assert "awaiting enrolment" in await pending.text_content()

        # Refusals appear next to the field they concern; nothing is shown as a token.
        await page.click("#edge-new")
        await page.wait_for_selector("#edge-dialog[open]", timeout=5000)
        assert await text(page, "#edge-token") == ""
        await page.fill("#edge-id", "site-1")
        await page.click("#edge-submit")
        await page.wait_for_function("() => document.querySelector('#edge-id-error').textContent.includes('revoke it first')",
                                     timeout=5000)
        await page.fill("#edge-id", "Bad Id")
        await page.click("#edge-submit")
        await page.wait_for_function("() => document.querySelector('#edge-id-error').textContent.includes('lower-case')",
                                     timeout=5000)
        await page.fill("#edge-id", "site-10")
        await page.fill("#edge-ttl", "0.01")  # 36 s: under the hub's 5-minute minimum
        await page.click("#edge-submit")
        await page.wait_for_function("() => document.querySelector('#edge-ttl-error').textContent.length > 0", timeout=5000)
        assert await text(page, "#edge-id-error") == ""
        assert await page.locator("#edge-created").is_hidden()
        await page.click("#edge-cancel")
        assert await db.fetchval("SELECT count(*) FROM edges WHERE edge_id IN ('site-10', 'bad id')") == 0

        # Revoke asks first, naming the edge; cancelling changes nothing.
        await pending.locator("button.revoke").click()
        await page.wait_for_selector("#revoke-dialog[open]", timeout=5000)
        assert "site-9" in await text(page, "#revoke-text") and await text(page, "#revoke-ok") == "Revoke site-9"
        await page.click("#revoke-cancel")
        assert await db.fetchval("SELECT revoked_at FROM edges WHERE edge_id = 'site-9'") is None
        await pending.locator("button.revoke").click()
        await page.click("#revoke-ok")
        await page.wait_for_function("() => document.querySelector(\"#edges-body tr[data-edge='site-9'] .conn-state\")"
                                     ".dataset.state === 'revoked'", timeout=5000)
        assert await db.fetchval("SELECT revoked_at IS NOT NULL FROM edges WHERE edge_id = 'site-9'")
        assert await pending.locator("button.new-token").count() == 1

        # The agent stops: within 2.5 intervals the hub says disconnected, and the next refresh
        # shows the last report as stale, with its time.
        stop_agent.set()
        await wait_until(lambda: db.fetchval("SELECT received_at < now() - interval '3 seconds' FROM edge_status "
                                             "WHERE edge_id = 'site-1'"), timeout=30, what="the reports to stop")
        await page.clock.fast_forward("00:10")
        await page.wait_for_selector("#edges-body tr[data-edge='site-1'][data-connected='false']", timeout=5000)
        assert "● disconnected" in await row.locator("td.connection").text_content()
        assert "stale, as of" in await row.locator("td.backlog").text_content()
        assert await row.get_attribute("data-stale") == "true"
        await shot(page, "edges-disconnected")

        # A refresh that fails says the table is old, and since when; the next good one clears it.
        await page.route("**/api/v1/edges", lambda route: route.abort())
        await page.clock.fast_forward("00:10")
        await page.wait_for_selector("#edges-stale:not([hidden])", timeout=5000)
        assert (await text(page, "#edges-stale")).startswith("⚠ Not refreshed (The hub cannot be reached): table from ")
        assert "stale-table" in (await page.get_attribute("#edges", "class") or "")
        await page.unroute("**/api/v1/edges")
        await page.clock.fast_forward("00:10")
        await page.wait_for_selector("#edges-stale", state="hidden", timeout=5000)
        assert page.js_errors == []


async def test_an_operator_has_no_edges_page(edge_console: EdgeConsole, db: asyncpg.Pool) -> None:
    await add_user(db, OPERATOR_EMAIL, "OPERATOR")
    async with browser_page() as page:
        await log_in(page, edge_console.base, OPERATOR_EMAIL)
        assert await page.locator("#nav-edges").is_hidden()
        await page.evaluate("location.hash = '#/edges'")
        await page.wait_for_function("() => location.hash === '#/edges'", timeout=5000)
        assert await page.locator("#view-edges").is_hidden()
        assert await page.locator("#view-queue").is_visible()
        assert page.js_errors == []
