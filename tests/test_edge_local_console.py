"""The edge's local console (issue 16): the live view, the alarms journaled on site, local acks
and panel commands, with the hub away. Pure parts as functions; the API with aiohttp's test
client in front of a real journal and a real Satel link to an emulated panel; the page in
Chromium with no hub, then the journal's rows committed at a real hub (PostgreSQL) as catch-up
would, where the ack shows on the alarm's bundle."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from edge import console
from edge.journal import Journal
from edge.links.satel import SatelLink
from edge.local_api import build_app
from edge.local_auth import LocalAuth
from edge.site_accounts import create_account
from firmware_bridges.satel.emulator import SAMPLE_USER_CODE, SatelEmulator
from hub.alarms import history
from shared.bodies.local import LOCAL_ACK_KIND, MAX_NOTE
from shared.clock import FakeClock
from shared.envelope import Priority, decode_envelope, encode_envelope, new_envelope
from shared.bodies.core import DemoTick
from support.browser import browser_page
from support.edge_login import PASSWORD
from support.site import Site
from support.panel_link import panel_link_up
from support.waiting import wait_until

CODE = SAMPLE_USER_CODE
NOW = datetime(2026, 11, 22, 14, 0, tzinfo=timezone.utc)


# --- pure --------------------------------------------------------------------------------------------


def test_the_hub_counts_as_reachable_only_when_it_answers() -> None:
    up = {"nats": {"connected": True}, "commands": {"pulling": True}, "forwarder": {"lanes": {"evt": "idle"}}}
    assert console.hub_reachable(up)
    assert not console.hub_reachable({**up, "commands": {"pulling": False}}), "the leaf is up, the hub is not"
    assert not console.hub_reachable({**up, "nats": {"connected": False}})
    assert not console.hub_reachable({**up, "forwarder": {"lanes": {"evt": "idle", "alarm": "backoff"}}})
    assert not console.hub_reachable({}), "not known: unreachable (the alarm sound is the safe side)"


def test_backlog_per_lane_with_the_oldest_rows_age() -> None:
    assert console.backlog({"evt": 3, "alarm": 0}, {"evt": NOW - timedelta(minutes=2), "alarm": None}, NOW) == {
        "evt": {"rows": 3, "oldest_age_s": 120.0}, "alarm": {"rows": 0, "oldest_age_s": None}}


def test_the_alarm_list_pairs_acks_and_leaves_out_a_row_that_does_not_decode(caplog: pytest.LogCaptureFixture) -> None:
    alarm = new_envelope("satel.zone.tamper", "p1", Priority.HIGH, DemoTick(1))
    ack = console.local_ack({"id": str(alarm.id), "kind": alarm.kind, "source": "p1"}, "guard:ola", "checked",
                            FakeClock(NOW))
    assert ack.priority is Priority.HIGH and ack.corr == str(alarm.id) and ack.kind == LOCAL_ACK_KIND
    rows = [(3, encode_envelope(ack), False), (2, b"not an envelope", False), (1, encode_envelope(alarm), True)]
    listed = console.alarm_list(rows)
    assert [a["id"] for a in listed] == [str(alarm.id)]
    assert listed[0]["forwarded"] is True and listed[0]["priority"] == "HIGH"
    assert listed[0]["acks"] == [{"who": "guard:ola", "at": NOW.isoformat(), "note": "checked", "forwarded": False}]
    assert "does not decode" in caplog.text


@pytest.mark.parametrize("note", [None, "", "   ", 5, "x" * (MAX_NOTE + 1)])
def test_a_note_must_say_something_and_not_too_much(note: Any) -> None:
    with pytest.raises(console.AckRefused):
        console.check_note(note)
    assert console.check_note("  window broken, police called ") == "window broken, police called"


# --- the API -----------------------------------------------------------------------------------------


@dataclass
class Site_:
    client: TestClient
    link: SatelLink
    journal: Journal
    emulator: SatelEmulator
    data_dir: Path
    status: dict[str, Any]

    @property
    def base(self) -> str:
        return f"/api/v1/links/satel/{self.link.panel_id}"

    async def get(self, path: str) -> tuple[int, Any]:
        response = await self.client.get(path)
        return response.status, await response.json()

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        response = await self.client.post(path, json=body)
        return response.status, await response.json()

    async def log_in(self, name: str = "ola", role: str = "guard") -> None:
        create_account(self.data_dir, name, PASSWORD, role)
        status, _ = await self.post("/api/v1/login", {"username": name, "password": PASSWORD})
        assert status == 200

    async def alarms(self) -> list[dict[str, Any]]:
        status, body = await self.get("/api/v1/console/alarms")
        assert status == 200, body
        return body


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site_]:
    async with panel_link_up(tmp_path) as (journal, emulator, link):
        data_dir = tmp_path / "edge"
        auth = LocalAuth.start(data_dir)
        # The hub is away: the leaf connection is down and no command pull reached it.
        status: dict[str, Any] = {"edge_id": "site-1", "refusal": {}, "nats": {"connected": False},
                                  "forwarder": {"lanes": {"evt": "backoff", "alarm": "backoff"}, "last_error": {}},
                                  "commands": {"pulling": False}, "links": {"satel": [link.status()], "gsm": []},
                                  "replica": {"lag_s": 3.5}}

        def status_fn() -> dict[str, Any]:
            return {**status, "journal": journal.stats(), "links": {"satel": [link.status()], "gsm": []}}

        app = build_app(status_fn, auth, {link.panel_id: link}, journal=journal)
        async with TestClient(TestServer(app)) as client:
            yield Site_(client, link, journal, emulator, data_dir, status)


async def test_the_console_routes_need_a_login(site: Site_) -> None:
    for path in ("/api/v1/console/state", "/api/v1/console/alarms", "/api/v1/console/stream", "/console/console.js"):
        status, body = await site.get(path)
        assert status == 401 and body["error"]["code"] == "login_required", path
    status, body = await site.post(f"/api/v1/console/alarms/{uuid.uuid4()}/ack", {"note": "x"})
    assert status == 401 and body["error"]["code"] == "login_required"
    page = await site.client.get("/")
    assert "form id=\"login\"" in await page.text() and "default-src 'none'" in page.headers["Content-Security-Policy"]


async def test_an_alarm_is_listed_and_acknowledged_on_site(site: Site_) -> None:
    await site.log_in()
    site.emulator.tamper_zone(3)
    await wait_until(lambda: site.journal.unforwarded["alarm"] > 0, what="the tamper journaled")
    alarms = await site.alarms()
    tamper = next(a for a in alarms if a["kind"] == "satel.zone.tamper")
    assert tamper["source"] == site.link.panel_id and tamper["body"]["zone"] == 3 and tamper["acks"] == []
    assert tamper["forwarded"] is False

    ack_path = f"/api/v1/console/alarms/{tamper['id']}/ack"
    for body, code in [({}, "bad_request"), ({"note": "  "}, "bad_request"), ({"note": "x" * (MAX_NOTE + 1)}, "bad_request"),
                       ([1], "bad_request")]:
        status, answer = await site.post(ack_path, body)
        assert status == 400 and answer["error"]["code"] == code, body
    status, answer = await site.post(f"/api/v1/console/alarms/{uuid.uuid4()}/ack", {"note": "checked"})
    assert status == 404 and answer["error"]["code"] == "not_found"
    response = await site.client.post(ack_path, data="note=x", headers={"Content-Type": "text/plain"})
    assert response.status == 403, "a cross-site form cannot ack"

    status, answer = await site.post(ack_path, {"note": "detector cover loose, refitted"})
    assert status == 201 and answer["who"] == "guard:ola"
    [row] = [r for r in await site.journal.recent_alarms(50, (LOCAL_ACK_KIND,)) if decode_envelope(r[1]).kind == LOCAL_ACK_KIND]
    env = decode_envelope(row[1])
    assert env.priority is Priority.HIGH and env.corr == tamper["id"] and str(env.id) == answer["id"]
    body = msgspec.json.decode(env.body)
    assert body["who"] == "guard:ola" and body["note"] == "detector cover loose, refitted"
    assert body["acked_id"] == tamper["id"] and body["acked_kind"] == "satel.zone.tamper"
    assert body["acked_source"] == site.link.panel_id
    listed = next(a for a in await site.alarms() if a["id"] == tamper["id"])
    assert [k["who"] for k in listed["acks"]] == ["guard:ola"]


async def test_the_state_shows_the_hub_away_the_backlog_and_the_panel(site: Site_) -> None:
    await site.log_in()
    site.emulator.tamper_zone(3)
    await wait_until(lambda: site.journal.unforwarded["alarm"] > 0, what="the tamper journaled")
    status, state = await site.get("/api/v1/console/state")
    assert status == 200 and state["hub_reachable"] is False
    assert state["backlog"]["alarm"]["rows"] >= 1 and state["backlog"]["alarm"]["oldest_age_s"] is not None
    [panel] = state["panels"]
    assert panel["panel"] == site.link.panel_id and panel["state"] == "up"
    zone3 = next(z for z in panel["zones"] if z["number"] == 3)
    assert zone3["tamper"] is True
    assert state["status"]["replica"] == {"lag_s": 3.5}, "what other parts add is passed on"


async def test_the_stream_sends_state_and_alarms_and_ends_at_logout(site: Site_) -> None:
    await site.log_in()
    response = await site.client.get("/api/v1/console/stream")
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    seen: list[str] = []

    async def read_events() -> None:
        while "event: state" not in seen or "event: alarms" not in seen:
            seen.append((await response.content.readline()).decode().strip())

    await asyncio.wait_for(read_events(), 10)
    await site.post("/api/v1/logout", {})

    async def until_end() -> None:
        while line := await response.content.readline():
            seen.append(line.decode().strip())

    await asyncio.wait_for(until_end(), 10)
    assert "event: logout" in seen


async def test_a_guard_may_not_switch_outputs_from_the_console(site: Site_) -> None:
    await site.log_in()
    status, body = await site.post(f"{site.base}/outputs", {"outputs": [1], "on": True, "code": CODE})
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = await site.post(f"{site.base}/arm", {"partitions": [1]})
    assert status == 400 and body["error"]["code"] == "user_code_required"


# --- in Chromium, with no hub; then catch-up at the hub -------------------------------------------------


async def test_the_console_works_with_no_hub_and_the_ack_reaches_the_bundle(site: Site_, db: asyncpg.Pool) -> None:
    create_account(site.data_dir, "ola", PASSWORD, "guard")
    async with browser_page() as page:
        await page.goto(str(site.client.make_url("/")))
        await page.fill("input[name=username]", "ola")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button")
        await page.wait_for_selector("#logout")
        # Waits are selectors, not page functions: the console's CSP forbids evaluating strings.
        await page.locator("#wan", has_text="UNREACHABLE").wait_for()
        await page.wait_for_selector(f".panel[data-panel='{site.link.panel_id}'] tr.by-number")
        assert site.link.panel_id in await page.text_content("#links")

        site.emulator.tamper_zone(3)
        item = page.locator("#alarms li", has_text="satel.zone.tamper").first
        await item.wait_for(timeout=10000)
        await page.wait_for_selector("#sound:not([hidden])")
        await page.wait_for_selector("body[data-beeps]", state="attached")
        assert "zone 3" in await item.text_content()
        await item.locator("input[name=note]").fill("cover loose, refitted")
        await item.locator("button").click()
        await page.locator("#alarms li .ack", has_text="acknowledged on site by guard:ola").wait_for()
        assert "cover loose, refitted" in await page.text_content("#alarms li .ack")

        await page.fill("#code", CODE)
        # Partition 2: zone 3's tamper keeps partition 1 from arming.
        await page.fill(f".panel[data-panel='{site.link.panel_id}'] tr.by-number .pnum", "2")
        await page.click(f".panel[data-panel='{site.link.panel_id}'] tr.by-number button[data-cmd=arm]")
        await page.locator("#result", has_text="ACK").wait_for()
        assert await page.input_value("#code") == "", "the code is not kept"
        await page.wait_for_selector(f".panel[data-panel='{site.link.panel_id}'] tr[data-partition='2'] .pstate span.warn")
        assert page.js_errors == []

    # The hub comes back: the journal's rows are committed through the real commit path.
    hub = await Site(db, "site-1").setup({site.link.panel_id: "Warehouse"})
    rows = await site.journal.read_unforwarded("alarm", 0, 1000, 1 << 24) + \
        await site.journal.read_unforwarded("evt", 0, 1000, 1 << 24)
    envs = [decode_envelope(r.envelope) for r in rows]
    await hub.commit(*envs, now=max(e.ts for e in envs))
    tamper = next(e for e in envs if e.kind == "satel.zone.tamper")
    bundle = await db.fetchrow("SELECT b.id, b.status FROM bundle_alarms b JOIN bundle_events be ON be.bundle_id = b.id "
                               "WHERE be.event_id = $1", tamper.id)
    events, _ = await history.events(db, bundle["id"])
    texts = [e["text"] for e in events if e["kind"] == LOCAL_ACK_KIND]
    assert texts == ["Acknowledged on site by guard:ola: cover loose, refitted"]
    assert bundle["status"] == "NEW", "the hub keeps the lifecycle: an ack on site moves nothing"
