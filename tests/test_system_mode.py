"""System modes (docs/architecture.md §5 "System modes"): NORMAL, DEGRADED while a dependency
fails (named, alarms still flowing), MAINTENANCE set by an admin with a reason, during which the
API is read-only: changing requests answer 503 `maintenance` and change nothing; reading, signing
in and out and ending maintenance go on."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import asyncpg
import pytest

from hub.api.server import build_http
from hub.secret_box import SecretBox
from hub.system.mode import Maintenance, MaintenanceError, Mode, switch, system_mode
from shared.supervise import Supervisor
from support.api import HeaderAuthenticator, as_role, json_of, start_client
from support.waiting import wait_until

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def test_the_mode_is_maintenance_then_degraded_then_normal() -> None:
    on = Maintenance(True, "PostgreSQL upgrade", "user:1", NOW)
    off = Maintenance(False, None, "user:1", NOW)
    assert system_mode(None, {}).mode is Mode.NORMAL
    assert system_mode(off, {}).mode is Mode.NORMAL
    degraded = system_mode(off, {"nats": "not connected (reconnecting)"})
    assert degraded.mode is Mode.DEGRADED and degraded.degraded == {"nats": "not connected (reconnecting)"}
    assert system_mode(on, {"nats": "down"}).mode is Mode.MAINTENANCE


def test_starting_maintenance_needs_a_reason() -> None:
    with pytest.raises(MaintenanceError, match="reason is required"):
        switch(True, "  ", "user:1", NOW)
    with pytest.raises(MaintenanceError, match="at most"):
        switch(True, "x" * 301, "user:1", NOW)
    assert switch(False, None, "user:1", NOW) == Maintenance(False, None, "user:1", NOW)
    assert switch(True, " upgrade ", "user:1", NOW).reason == "upgrade"


async def test_maintenance_makes_the_api_read_only_and_an_admin_ends_it(db: asyncpg.Pool) -> None:
    client = await start_client(build_http(db, HeaderAuthenticator(), [], SecretBox.generate()))
    admin, operator = as_role("ADMIN", 1), as_role("OPERATOR", 2)
    try:
        body = await json_of(await client.get("/api/v1/system/mode", headers=operator))
        assert body == {"mode": "NORMAL", "degraded": {}, "maintenance": None}
        resp = await client.put("/api/v1/system/mode", json={"maintenance": True, "reason": "x"}, headers=operator)
        assert resp.status == 403
        resp = await client.put("/api/v1/system/mode", json={"maintenance": True}, headers=admin)
        assert resp.status == 422 and (await json_of(resp))["error"]["details"]["field"] == "reason"

        resp = await client.put("/api/v1/system/mode", json={"maintenance": True, "reason": "PostgreSQL upgrade"},
                                headers=admin)
        body = await json_of(resp)
        assert resp.status == 200 and body["mode"] == "MAINTENANCE", body
        assert body["maintenance"]["reason"] == "PostgreSQL upgrade" and body["maintenance"]["set_by"] == "user:1"

        # Read-only: a change is refused and leaves nothing behind; reading goes on.
        resp = await client.post("/api/v1/objects", json={"name": "Depot"}, headers=admin)
        refused = await json_of(resp)
        assert resp.status == 503 and refused["error"]["code"] == "maintenance", refused
        assert await db.fetchval("SELECT count(*) FROM objects") == 0
        assert (await client.get("/api/v1/objects", headers=operator)).status == 200
        body = await json_of(await client.get("/api/v1/system/mode", headers=operator))
        assert body["mode"] == "MAINTENANCE"

        resp = await client.put("/api/v1/system/mode", json={"maintenance": False}, headers=admin)
        assert (await json_of(resp))["mode"] == "NORMAL"
        assert (await client.post("/api/v1/objects", json={"name": "Depot"}, headers=admin)).status == 201
        actions = [r["action"] for r in await db.fetch("SELECT action FROM audit_log WHERE target_type = 'system' "
                                                       "ORDER BY id")]
        assert actions == ["system.maintenance.start", "system.maintenance.end"]
    finally:
        await client.close()


async def test_a_failing_dependency_makes_the_mode_degraded_naming_it(db: asyncpg.Pool) -> None:
    stop = asyncio.Event()
    supervisor = Supervisor(stop, failure_threshold=1, window_s=600.0)
    runs = 0

    async def feed() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("feed exploded")
        await stop.wait()

    client = await start_client(build_http(db, HeaderAuthenticator(), [], SecretBox.generate(), supervisor=supervisor))
    task = supervisor.spawn("stream-pull", feed)
    try:
        await wait_until(lambda: runs >= 2, timeout=10, what="the task restarted")
        body = await json_of(await client.get("/api/v1/system/mode", headers=as_role("OPERATOR")))
        assert body["mode"] == "DEGRADED" and body["degraded"] == {"stream-pull": "RuntimeError: feed exploded"}, body
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await client.close()
