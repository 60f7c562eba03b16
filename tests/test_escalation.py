"""Escalation (issue 12): a bundle still NEW past its priority's threshold is marked once by the
housekeeping sweep, on the housekeeping's clock, audited, without a version bump, and announced
on the live stream as `alarm.escalated` (the supervisor notice)."""
from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import ClientWebSocketResponse
from aiohttp.test_utils import TestClient

from hub.alarms import repository as alarms
from hub.housekeeping import run_housekeeping
from shared.clock import FakeClock
from shared.envelope import Priority
from support.operator_work import ANN, assert_error, audit, get, outbox, post, scene
from support.site import T0
from support.waiting import wait_until
from test_stream_helpers import read_ws, running_hub, write_rows

AFTER = {"CRITICAL": timedelta(seconds=60), "HIGH": timedelta(seconds=180)}


async def _escalate(db: asyncpg.Pool, seconds: float, after: dict[str, timedelta] = AFTER) -> int:
    async with db.acquire() as conn:
        return await alarms.escalate(conn, T0 + timedelta(seconds=seconds), after)


async def test_each_priority_escalates_once_at_its_threshold(db: asyncpg.Pool) -> None:
    s = await scene(db, people=False)
    critical = await s.alarm(priority=Priority.CRITICAL)
    trouble = s.site.env("satel.trouble.on", {"part": 1, "bit": 8, "trouble": "ac"}, T0, Priority.HIGH)
    normal = s.site.env("satel.zone.tamper", {"zone": 4}, T0, Priority.NORMAL)
    await s.site.ingest(trouble, normal)
    by_type = {r["alarm_type"]: r for r in await db.fetch("SELECT * FROM bundle_alarms")}
    assert (by_type["BURGLARY"]["priority"], by_type["TROUBLE"]["priority"], by_type["TAMPER"]["priority"]) == (
        "CRITICAL", "HIGH", "NORMAL")
    versions = {r["id"]: r["version"] for r in by_type.values()}

    assert await _escalate(db, 59.9) == 0
    assert await _escalate(db, 60) == 1
    assert await _escalate(db, 61) == 0  # once
    assert await _escalate(db, 179) == 0
    assert await _escalate(db, 180) == 1
    assert await _escalate(db, 86_400) == 0  # NORMAL never, by default
    rows = {r["alarm_type"]: r for r in await db.fetch("SELECT * FROM bundle_alarms")}
    assert rows["BURGLARY"]["escalated_at"] == T0 + timedelta(seconds=60)
    assert rows["TROUBLE"]["escalated_at"] == T0 + timedelta(seconds=180)
    assert rows["TAMPER"]["escalated_at"] is None
    assert {r["id"]: r["version"] for r in rows.values()} == versions  # no version bump: no 409 for a claimer
    assert [(e["actor"], e["target_id"], e["details"]) for e in await audit(db, "alarm.escalated")] == [
        ("system", str(critical), {"priority": "CRITICAL", "after_s": 60.0}),
        ("system", str(rows["TROUBLE"]["id"]), {"priority": "HIGH", "after_s": 180.0})]
    [first, second] = await outbox(db, "alarm.escalated")
    assert (first["object_id"], first["payload"]["bundle"]["id"], first["payload"]["escalated_after_s"]) == (
        s.object_id, critical, 60.0)
    assert first["payload"]["bundle"]["escalated_at"] == (T0 + timedelta(seconds=60)).isoformat()
    assert second["payload"]["bundle"]["alarm_type"] == "TROUBLE"
    # Configured thresholds reach NORMAL too.
    assert await _escalate(db, 86_400, {"NORMAL": timedelta(minutes=10)}) == 1


async def test_a_claimed_or_service_mode_bundle_is_never_escalated(db: asyncpg.Pool, api_client: TestClient) -> None:
    s = await scene(db)
    bundle_id = await s.alarm()
    await post(api_client, f"/api/v1/alarms/{bundle_id}/claim", {"version": 1}, ANN)
    assert await _escalate(db, 3600) == 0
    await db.execute("UPDATE bundle_alarms SET status = 'NEW', claimed_by = NULL, service_mode = true")
    assert await _escalate(db, 3600) == 0
    # A claim that lapsed back to NEW keeps counting from when the alarm came in.
    await db.execute("UPDATE bundle_alarms SET service_mode = false")
    assert await _escalate(db, 3600) == 1


async def test_two_hubs_escalate_a_bundle_exactly_once(db: asyncpg.Pool) -> None:
    s = await scene(db, people=False)
    for minutes in range(0, 100, 20):  # five bundles, each past the bundling window of the last
        await s.alarm(T0 + timedelta(minutes=minutes))
    done = await asyncio.gather(*(_escalate(db, 7200) for _ in range(4)))
    assert sum(done) == 5
    assert await db.fetchval("SELECT count(*) FROM bundle_alarms WHERE escalated_at IS NOT NULL") == 5
    assert len(await audit(db, "alarm.escalated")) == 5 and len(await outbox(db, "alarm.escalated")) == 5


async def test_the_api_shows_it_and_the_version_seen_before_still_claims(db: asyncpg.Pool,
                                                                        api_client: TestClient) -> None:
    s = await scene(db)
    bundle_id = await s.alarm()
    seen = await get(api_client, f"/api/v1/alarms/{bundle_id}", ANN)
    assert seen["escalated_at"] is None
    await _escalate(db, 61)
    listed = await get(api_client, "/api/v1/alarms?status=NEW", ANN)
    assert listed["items"][0]["escalated_at"] == (T0 + timedelta(seconds=61)).isoformat()  # when the sweep saw it
    claimed = await post(api_client, f"/api/v1/alarms/{bundle_id}/claim", {"version": seen["version"]}, ANN)
    assert claimed["escalated_at"] == listed["items"][0]["escalated_at"] and claimed["status"] == "CLAIMING"
    timeline = await get(api_client, f"/api/v1/alarms/{bundle_id}/timeline", ANN)
    escalated = [i for i in timeline["items"] if i["details"].get("action") == "alarm.escalated"]
    assert [(i["text"], i["who"]) for i in escalated] == [
        ("Escalated: still NEW after 60 s (CRITICAL)", {"id": None, "email": None, "name": "Vigil hub"})]
    assert_error(await get(api_client, "/api/v1/alarms?order=loudest", ANN, status=422), "invalid", "order")


async def _until_topic(ws: ClientWebSocketResponse, topic: str, timeout: float = 15.0) -> dict[str, Any]:
    """The first change of `topic` the socket delivers."""
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.receive_json()
            if message["type"] == "change" and message["topic"] == topic:
                return message


async def test_housekeeping_escalates_on_its_clock_and_consoles_get_the_notice_live(
        db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    s = await scene(db, people=False)
    # A planned link stop long past its grace: the pass raises its LINK alarm after escalating,
    # so seeing that alarm means a whole pass ran.
    await db.execute("UPDATE panels SET link_status = 'DISCONNECTED', link_planned = true, link_changed_at = $2 "
                     "WHERE id = $1", s.panel_id, T0 - timedelta(hours=1))
    async with running_hub(db, db_dsn, tmp_path) as hub:
        operator = await hub.user("op@x.test")
        elsewhere = await hub.user("tech@x.test", "TECHNICIAN", [s.other_object_id])
        bundle_id = await s.alarm()
        head = await db.fetchval("SELECT value FROM outbox_counter")
        ws, ws_elsewhere = await hub.ws(operator, cursor=head), await hub.ws(elsewhere, cursor=head)
        clock = FakeClock(T0 + timedelta(seconds=30))
        stop = asyncio.Event()
        task = asyncio.create_task(run_housekeeping(db, stop, clock, sweep_interval_s=0.05))
        try:
            await wait_until(lambda: db.fetchval("SELECT count(*) FROM bundle_alarms WHERE alarm_type = 'LINK'"),
                             what="a whole housekeeping pass")
            # 30 s on the housekeeping's clock: not due, however late the real clock is.
            assert await db.fetchval("SELECT escalated_at FROM bundle_alarms WHERE id = $1", bundle_id) is None
            clock.advance(31)
            change = await _until_topic(ws, "alarm.escalated")
            assert change["object_id"] == s.object_id and change["payload"]["escalated_after_s"] == 60.0
            assert change["payload"]["bundle"]["id"] == bundle_id
            assert change["payload"]["bundle"]["escalated_at"] == (T0 + timedelta(seconds=61)).isoformat()
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Visibility follows the REST API: a technician of another object is not told.
        [marker] = await write_rows(db, 1, topic="alarm.updated", object_id=s.other_object_id)
        seen = [(m["cursor"], m["topic"]) for m in await read_ws(ws_elsewhere, marker) if m["type"] == "change"]
        assert seen == [(marker, "alarm.updated")]
        await ws.close()
        await ws_elsewhere.close()
