"""Robots at the hub's API (issue 15), on a real PostgreSQL with robot events through the real
commit path: the registry and what the robot reports, metadata that never touches robot-owned
data, object scope, leases with fencing tokens, commands under the caller's lease (estop without),
their outbox rows and the RobotCommand published to the edge, acks, cancelling, the hub's own
TIMEOUT, desired vs reported settings, telemetry ranges, and telemetry throttled per live client."""
from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import nats.errors
import pytest
from aiohttp.test_utils import TestClient

from hub.commands.publisher import CommandPublisher, ensure_commands_stream
from hub.db.outbox import OutboxItem, write_outbox
from hub.housekeeping import robot_deadlines, run_housekeeping
from shared import subjects
from shared.clock import FakeClock
from shared.robots import H_COMMAND_KIND, ROBOT_COMMAND_KIND, AckStatus, RobotState, decode_command
from support import robots as rb
from support.api import as_role, json_of
from support.site import Site
from support.topology import Topology
from support.waiting import wait_until
from test_stream_helpers import FAST, read_ws, running_hub

OP1, OP2 = as_role("OPERATOR", 11), as_role("OPERATOR", 12)
MASTER = as_role("MASTER", 13)
ROBOT = "/api/v1/robots/RB-001"
SQL_OUTBOX = "SELECT topic, payload::text AS payload FROM outbox ORDER BY sequence_id"


@pytest.fixture
async def site(db: asyncpg.Pool) -> Site:
    """An edge on object "Warehouse" whose robot RB-001 said who it is, what it can do and how it is."""
    s, _ = await rb.robot_site(db, "site-r", "Warehouse")
    await s.ingest(rb.identity(s, "RB-001", name="Gate patrol"), rb.capability(s, "RB-001"),
                   rb.status(s, "RB-001", RobotState.IDLE, 81.5), rb.connection(s, "RB-001", "ONLINE"))
    return s


async def _call(client: TestClient, method: str, url: str, headers: dict[str, str], body: Any = None
                ) -> tuple[int, Any]:
    resp = await client.request(method, url, headers=headers, json=body)
    return resp.status, (await json_of(resp) if resp.status != 204 else None)


async def _lease(client: TestClient, headers: dict[str, str], body: dict[str, Any] | None = None) -> dict[str, Any]:
    status, lease = await _call(client, "POST", f"{ROBOT}/lease", headers, body or {})
    assert status in (200, 201), lease
    return lease


async def _give(client: TestClient, headers: dict[str, str], command_type: str, payload: dict[str, Any] | None = None,
                lease_id: str | None = None, extra: dict[str, str] | None = None) -> tuple[int, Any]:
    body: dict[str, Any] = {"commandType": command_type, "payload": payload or {}}
    if lease_id is not None:
        body["leaseId"] = lease_id
    return await _call(client, "POST", f"{ROBOT}/commands", headers | (extra or {}), body)


async def _outbox(db: asyncpg.Pool, topic: str) -> list[dict[str, Any]]:
    return [json.loads(r["payload"]) for r in await db.fetch(SQL_OUTBOX) if r["topic"] == topic]


async def test_the_list_and_the_detail_show_what_the_robot_reports(api_client: TestClient, site: Site) -> None:
    status, page = await _call(api_client, "GET", "/api/v1/robots", OP1)
    assert status == 200 and page["total"] == 1
    [robot] = page["items"]
    assert (robot["robotId"], robot["objectName"], robot["edgeId"], robot["state"], robot["batteryPct"],
            robot["connection"]["state"], robot["lease"]) == ("RB-001", "Warehouse", "site-r", "IDLE", 81.5, "ONLINE",
                                                             None)
    status, detail = await _call(api_client, "GET", ROBOT, OP1)
    assert status == 200 and detail["identity"]["identity"]["name"] == "Gate patrol"
    assert detail["capability"]["capability"]["commands"][0] == "goto" and detail["status"]["charging"] is False
    status, identity = await _call(api_client, "GET", f"{ROBOT}/identity?history=1", OP1)
    assert status == 200 and identity["latest"]["identity"]["serialNumber"] == "SN-RB-001"
    assert len(identity["history"]) == 1
    status, capability = await _call(api_client, "GET", f"{ROBOT}/capability", OP1)
    assert status == 200 and "history" not in capability and capability["latest"]["capability"]["heartbeatIntervalS"] == 5
    assert (await _call(api_client, "GET", "/api/v1/robots/RB-404", OP1))[0] == 404


async def test_metadata_is_edited_and_robot_owned_data_never_is(api_client: TestClient, db: asyncpg.Pool,
                                                                  site: Site) -> None:
    before = await db.fetchrow("SELECT status, connection FROM robots")
    status, robot = await _call(api_client, "PUT", ROBOT, OP1, {"displayName": " Gate 1 ", "tags": ["gate", "gate", "north"],
                                                                "notes": "charges at dock B", "enabled": False})
    assert status == 200, robot
    assert (robot["displayName"], robot["tags"], robot["notes"], robot["enabled"]) == (
        "Gate 1", ["gate", "north"], "charges at dock B", False)
    assert robot["identity"]["identity"]["name"] == "Gate patrol" and robot["state"] == "IDLE"
    assert await db.fetchrow("SELECT status, connection FROM robots") == before
    for body, code in (({"identity": {"name": "x"}}, "robot_owned"), ({"status": {"state": "IDLE"}}, "robot_owned"),
                       ({"displayName": "ok", "batteryPct": 100}, "robot_owned"),
                       ({"edgeId": "site-x"}, "not_editable"), ({"robotId": "RB-002"}, "not_editable")):
        status, answer = await _call(api_client, "PUT", ROBOT, OP1, body)
        assert status == 400 and answer["error"]["code"] == code, (body, answer)
    assert (await _call(api_client, "PUT", ROBOT, OP1, {"tags": "not a list"}))[0] == 422
    assert (await _call(api_client, "GET", ROBOT, OP1))[1]["displayName"] == "Gate 1"
    [audit] = await db.fetch("SELECT actor, details FROM audit_log WHERE action = 'robot.edit'")
    assert audit["actor"] == "user:11" and json.loads(audit["details"])["enabled"] is False
    assert (await _outbox(db, "robot.updated"))[-1]["robot"]["displayName"] == "Gate 1"
    # A disabled robot takes no command and no lease, but it can always be stopped.
    status, answer = await _call(api_client, "POST", f"{ROBOT}/lease", OP1, {})
    assert status == 409 and answer["error"]["code"] == "robot_disabled"
    assert (await _give(api_client, OP1, "estop"))[0] == 202


async def test_a_technician_sees_the_robots_of_assigned_objects_only(api_client: TestClient, db: asyncpg.Pool,
                                                                       site: Site) -> None:
    object_id = await db.fetchval("SELECT object_id FROM edges WHERE edge_id = 'site-r'")
    other, other_object = await rb.robot_site(db, "site-o", "Office")
    await other.ingest(rb.status(other, "RB-009"))
    mine, outside = as_role("TECHNICIAN", 21, [object_id]), as_role("TECHNICIAN", 22, [other_object])
    assert [r["robotId"] for r in (await _call(api_client, "GET", "/api/v1/robots", mine))[1]["items"]] == ["RB-001"]
    assert [r["robotId"] for r in (await _call(api_client, "GET", "/api/v1/robots", OP1))[1]["items"]] == [
        "RB-001", "RB-009"]
    hidden = await _call(api_client, "GET", ROBOT, outside)
    missing = await _call(api_client, "GET", "/api/v1/robots/RB-404", outside)
    assert hidden[0] == missing[0] == 404 and hidden[1]["error"]["message"] == missing[1]["error"]["message"]
    for path in ("/identity", "/capability", "/lease", "/commands", "/settings/reported"):
        assert (await _call(api_client, "GET", ROBOT + path, outside))[0] == 404, path
        assert (await _call(api_client, "GET", ROBOT + path, mine))[0] == 200, path
    assert (await _call(api_client, "POST", f"{ROBOT}/lease", mine, {}))[0] == 403
    assert (await _call(api_client, "GET", "/api/v1/robots", as_role("FIELD_WORKER", 23, [object_id])))[0] == 403


async def test_leases_take_renew_refuse_release_expire_and_force_with_rising_tokens(
        api_client: TestClient, db: asyncpg.Pool, site: Site) -> None:
    first = await _lease(api_client, OP1)
    assert first["fencingToken"] == 1 and first["holder"] == {"id": 11, "name": "user11@test"}
    status, renewed = await _call(api_client, "POST", f"{ROBOT}/lease", OP1, {})
    assert status == 200 and (renewed["leaseId"], renewed["fencingToken"]) == (first["leaseId"], 1)
    assert renewed["expiresAt"] >= first["expiresAt"]
    status, held = await _call(api_client, "POST", f"{ROBOT}/lease", OP2, {})
    assert status == 409 and held["error"]["code"] == "lease_held"
    assert held["error"]["details"]["holder"]["name"] == "user11@test" and "user11@test" in held["error"]["message"]
    assert (await _call(api_client, "GET", f"{ROBOT}/lease", OP2))[1]["lease"]["leaseId"] == first["leaseId"]
    status, answer = await _call(api_client, "DELETE", f"{ROBOT}/lease/{first['leaseId']}", OP2)
    assert status == 409 and answer["error"]["code"] == "not_lease_holder"
    assert (await _call(api_client, "DELETE", f"{ROBOT}/lease/{first['leaseId']}", OP1))[0] == 204
    assert (await _call(api_client, "DELETE", f"{ROBOT}/lease/{first['leaseId']}", OP1))[0] == 204  # again: no change
    assert (await _call(api_client, "DELETE", f"{ROBOT}/lease/{uuid.uuid4()}", OP1))[0] == 404
    assert (await _call(api_client, "GET", f"{ROBOT}/lease", OP2))[1]["lease"] is None
    second = await _lease(api_client, OP2)
    assert second["fencingToken"] == 2
    # It runs out: nobody swept it, yet it is over, and the next take ends it as EXPIRED.
    await db.execute("UPDATE robot_leases SET expires_at = now() - interval '1 second' WHERE id = $1",
                     uuid.UUID(second["leaseId"]))
    assert (await _call(api_client, "GET", f"{ROBOT}/lease", OP1))[1]["lease"] is None
    third = await _lease(api_client, OP1)
    assert third["fencingToken"] == 3
    assert await db.fetchval("SELECT ended_how FROM robot_leases WHERE id = $1", uuid.UUID(second["leaseId"])) == "EXPIRED"
    # Force: MASTER only, with a reason; the holder's lease ends, audited.
    status, answer = await _call(api_client, "POST", f"{ROBOT}/lease", OP2, {"force": True, "reason": "mine now"})
    assert status == 403 and answer["error"]["code"] == "forbidden"
    status, answer = await _call(api_client, "POST", f"{ROBOT}/lease", MASTER, {"force": True})
    assert status == 400 and answer["error"]["details"]["field"] == "reason"
    status, held = await _call(api_client, "POST", f"{ROBOT}/lease", MASTER, {})
    assert status == 409
    forced = await _lease(api_client, MASTER, {"force": True, "reason": "robot blocking the fire exit"})
    assert forced["fencingToken"] == 4 and forced["holder"]["id"] == 13
    ended = await db.fetchrow("SELECT ended_how, forced_by, force_reason FROM robot_leases WHERE id = $1",
                              uuid.UUID(third["leaseId"]))
    assert tuple(ended) == ("FORCED", "user:13", "robot blocking the fire exit")
    [audit] = await db.fetch("SELECT actor, details FROM audit_log WHERE action = 'robot.lease.force'")
    details = json.loads(audit["details"])
    assert audit["actor"] == "user:13" and details["previous_holder"] == "user:11"
    assert details["reason"] == "robot blocking the fire exit"
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'robot.lease.take'") == 3
    tokens = [r["fencing_token"] for r in await db.fetch("SELECT fencing_token FROM robot_leases ORDER BY taken_at")]
    assert tokens == [1, 2, 3, 4]
    changes = await _outbox(db, "robot.lease.updated")
    assert changes[-1]["lease"]["fencingToken"] == 4 and changes[-1]["ended"]["endedHow"] == "FORCED"


async def test_commands_need_the_callers_current_lease_but_estop_never_does(
        api_client: TestClient, db: asyncpg.Pool, site: Site) -> None:
    status, answer = await _give(api_client, OP1, "goto", {"x": 1, "y": 2})
    assert status == 409 and answer["error"]["code"] == "lease_required"
    lease = await _lease(api_client, OP1)
    status, command = await _give(api_client, OP1, "goto", {"x": 1, "y": 2}, lease["leaseId"])
    assert status == 202 and command["status"] == "REQUESTED" and command["fencingToken"] == 1
    status, answer = await _give(api_client, OP2, "goto", {"x": 1, "y": 2}, lease["leaseId"])
    assert status == 409 and answer["error"]["code"] == "lease_lost"  # the lease is not OP2's
    await _lease(api_client, MASTER, {"force": True, "reason": "taking over the patrol"})
    status, answer = await _give(api_client, OP1, "patrol", {"loops": 2}, lease["leaseId"])
    assert status == 409 and answer["error"]["code"] == "lease_lost"
    assert answer["error"]["details"]["holder"]["id"] == 13 and "user13@test" in answer["error"]["message"]
    status, estop = await _give(api_client, OP2, "estop")
    assert status == 202 and estop["fencingToken"] is None and estop["leaseId"] is None
    for command_type, payload, field in (("fly", {}, "commandType"), ("goto", {"x": 1}, "payload"),
                                         ("goto", {"x": 1, "y": 2, "z": 3}, "payload"),
                                         ("report_identity", {}, "commandType")):
        status, answer = await _give(api_client, MASTER, command_type, payload, lease["leaseId"])
        assert status == 400 and answer["error"]["code"] == "bad_command", answer
        assert answer["error"]["details"]["field"] == field
    assert await db.fetchval("SELECT count(*) FROM robot_commands") == 2
    assert (await _call(api_client, "POST", f"{ROBOT}/commands", as_role("TECHNICIAN", 21),
                        {"commandType": "estop"}))[0] == 403
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'robot.command'") == 2


async def test_a_command_is_written_with_its_outbox_row_audit_and_live_update(
        api_client: TestClient, db: asyncpg.Pool, site: Site) -> None:
    lease = await _lease(api_client, OP1)
    status, command = await _give(api_client, OP1, "goto", {"x": 3.5, "y": -1, "theta": 1.57}, lease["leaseId"])
    assert status == 202
    row = await db.fetchrow("SELECT subject, payload FROM robot_command_outbox")
    wire = decode_command(bytes(row["payload"]))
    assert row["subject"] == subjects.edge_commands("site-r")
    assert (wire.id, wire.edge, wire.robot, wire.kind, wire.command_type, wire.args, wire.fencing_token) == (
        command["commandId"], "site-r", "RB-001", "cmd", "goto", {"x": 3.5, "y": -1.0, "theta": 1.57}, 1)
    assert wire.who == "user:user11@test" and wire.expires_at - wire.issued_at == timedelta(seconds=30)
    [audit] = await db.fetch("SELECT details FROM audit_log WHERE action = 'robot.command'")
    assert json.loads(audit["details"])["command_id"] == command["commandId"]
    [update] = await _outbox(db, "robot.command.updated")
    assert update["command"]["commandId"] == command["commandId"] and update["command"]["status"] == "REQUESTED"
    assert (await _call(api_client, "GET", f"{ROBOT}/commands/{command['commandId']}", OP2))[1]["payload"]["x"] == 3.5
    assert (await _call(api_client, "GET", f"{ROBOT}/commands", OP2))[1]["total"] == 1
    assert (await _call(api_client, "GET", f"{ROBOT}/commands/{uuid.uuid4()}", OP2))[0] == 404
    assert (await _call(api_client, "GET", f"{ROBOT}/commands/nonsense", OP2))[0] == 404


async def test_idempotency_key_gives_one_command(api_client: TestClient, db: asyncpg.Pool, site: Site) -> None:
    lease = await _lease(api_client, OP1)
    key = {"Idempotency-Key": "dock-1"}
    first = await _give(api_client, OP1, "dock", {}, lease["leaseId"], key)
    again = await _give(api_client, OP1, "dock", {}, lease["leaseId"], key)
    assert first[0] == again[0] == 202 and first[1]["commandId"] == again[1]["commandId"]
    assert await db.fetchval("SELECT count(*) FROM robot_commands") == 1


async def test_the_publisher_sends_a_robot_command_to_its_edge_marked_as_one(
        topology: Topology, api_client: TestClient, db: asyncpg.Pool, site: Site) -> None:
    lease = await _lease(api_client, OP1)
    _, command = await _give(api_client, OP1, "patrol", {"loops": 3}, lease["leaseId"])
    nc = await topology.connect_hub()
    try:
        # No VIGIL_COMMANDS yet: JetStream does not take it, and the row stays with the attempt.
        with pytest.raises((nats.errors.Error, asyncio.TimeoutError)):
            await CommandPublisher(nc, db).publish_once()
        row = await db.fetchrow("SELECT attempts, last_error FROM robot_command_outbox")
        assert row["attempts"] == 1 and row["last_error"]
        await ensure_commands_stream(nc)
        assert await CommandPublisher(nc, db).publish_once() is False
        assert await db.fetchval("SELECT status FROM robot_commands") == "SENT"
        assert await db.fetchval("SELECT count(*) FROM robot_command_outbox") == 0
        sub = await nc.jetstream().pull_subscribe(subjects.edge_commands("site-r"),
                                                  durable=subjects.command_consumer("site-r"),
                                                  stream=subjects.COMMANDS_STREAM)
        [msg] = await sub.fetch(1, timeout=5)
        assert msg.headers[H_COMMAND_KIND] == ROBOT_COMMAND_KIND
        assert msg.headers[subjects.H_MSG_ID] == command["commandId"]
        wire = decode_command(msg.data)
        assert (wire.robot, wire.command_type, wire.args, wire.fencing_token) == ("RB-001", "patrol", {"loops": 3}, 1)
        assert (await _outbox(db, "robot.command.updated"))[-1]["command"]["status"] == "SENT"
        # One that reaches the publisher past its expiry is never sent.
        _, stale = await _give(api_client, OP1, "dock", {}, lease["leaseId"])
        late = datetime.now(timezone.utc) + timedelta(seconds=31)
        assert await CommandPublisher(nc, db, now=lambda: late).publish_once() is False
        row = await db.fetchrow("SELECT status, detail, settled_by_hub FROM robot_commands WHERE id = $1",
                                uuid.UUID(stale["commandId"]))
        assert (row["status"], row["settled_by_hub"]) == ("TIMEOUT", True) and row["detail"].startswith("not sent")
        assert await db.fetchval("SELECT count(*) FROM robot_command_outbox") == 0
        assert (await nc.jetstream().stream_info(subjects.COMMANDS_STREAM)).state.messages == 1
    finally:
        await nc.close()


async def test_cancel_before_sending_and_in_flight(api_client: TestClient, db: asyncpg.Pool, site: Site) -> None:
    lease = await _lease(api_client, OP1)
    _, waiting = await _give(api_client, OP1, "goto", {"x": 1, "y": 1}, lease["leaseId"])
    status, answer = await _call(api_client, "POST", f"{ROBOT}/commands/{waiting['commandId']}/cancel", OP2)
    assert status == 202 and answer["command"]["status"] == "CANCELLED" and answer["cancelCommand"] is None
    assert await db.fetchval("SELECT count(*) FROM robot_command_outbox") == 0  # never sent
    status, answer = await _call(api_client, "POST", f"{ROBOT}/commands/{waiting['commandId']}/cancel", OP2)
    assert status == 409 and answer["error"]["code"] == "already_final"
    _, moving = await _give(api_client, OP1, "goto", {"x": 2, "y": 2}, lease["leaseId"])
    await db.execute("DELETE FROM robot_command_outbox")
    await db.execute("UPDATE robot_commands SET status = 'SENT' WHERE id = $1", uuid.UUID(moving["commandId"]))
    status, answer = await _call(api_client, "POST", f"{ROBOT}/commands/{moving['commandId']}/cancel", OP2)
    assert status == 202 and answer["command"]["status"] == "SENT"
    cancel = answer["cancelCommand"]
    assert (cancel["commandType"], cancel["payload"], cancel["fencingToken"], cancel["cancelOf"]) == (
        "cancel", {"commandId": moving["commandId"]}, None, moving["commandId"])
    wire = decode_command(bytes(await db.fetchval("SELECT payload FROM robot_command_outbox")))
    assert wire.args == {"commandId": moving["commandId"]}
    await site.ingest(rb.ack(site, "RB-001", moving["commandId"], AckStatus.CANCELLED, detail="cancelled"))
    status, settled = await _call(api_client, "GET", f"{ROBOT}/commands/{moving['commandId']}", OP1)
    assert settled["status"] == "CANCELLED" and settled["ackStatus"] == "CANCELLED"
    assert (await _call(api_client, "POST", f"{ROBOT}/commands/{uuid.uuid4()}/cancel", OP2))[0] == 404


async def test_housekeeping_times_out_a_silent_command_and_closes_expired_leases(
        api_client: TestClient, db: asyncpg.Pool, site: Site) -> None:
    lease = await _lease(api_client, OP1)
    _, sent = await _give(api_client, OP1, "dock", {}, lease["leaseId"])
    await db.execute("DELETE FROM robot_command_outbox")
    await db.execute("UPDATE robot_commands SET status = 'SENT'")
    _, running = await _give(api_client, OP1, "patrol", {}, lease["leaseId"])
    await db.execute("DELETE FROM robot_command_outbox")
    await site.ingest(rb.ack(site, "RB-001", running["commandId"], AckStatus.RUNNING, progress=0.1))
    _, unsent = await _give(api_client, OP1, "goto", {"x": 0, "y": 0}, lease["leaseId"])  # NATS away meanwhile
    now = datetime.now(timezone.utc)
    assert await robot_deadlines(db, now, timedelta(seconds=30)) == (0, 0)
    # The sweep, two minutes on: past every expiry and grace.
    stop = asyncio.Event()
    sweeping = asyncio.create_task(run_housekeeping(db, stop, FakeClock(now + timedelta(minutes=2)),
                                                    sweep_interval_s=0.05))
    try:
        await wait_until(lambda: db.fetchval("SELECT count(*) FROM robot_commands WHERE status = 'TIMEOUT'"),
                         what="the silent commands timed out")
        await wait_until(lambda: db.fetchval("SELECT count(*) FROM robot_leases WHERE ended_how = 'EXPIRED'"),
                         what="the lease closed")
    finally:
        stop.set()
        await sweeping
    assert await robot_deadlines(db, now + timedelta(minutes=2), timedelta(seconds=30)) == (0, 0)
    statuses = {str(r["id"]): (r["status"], r["settled_by_hub"]) for r in await db.fetch(
        "SELECT id, status, settled_by_hub FROM robot_commands")}
    assert statuses == {sent["commandId"]: ("TIMEOUT", True), running["commandId"]: ("RUNNING", False),
                        unsent["commandId"]: ("TIMEOUT", True)}
    assert await db.fetchval("SELECT count(*) FROM robot_command_outbox") == 0  # never sent late
    assert (await _outbox(db, "robot.lease.updated"))[-1]["ended"]["endedHow"] == "EXPIRED"
    # The edge's late word replaces the hub's TIMEOUT.
    await site.ingest(rb.ack(site, "RB-001", sent["commandId"], AckStatus.FINISHED))
    settled = (await _call(api_client, "GET", f"{ROBOT}/commands/{sent['commandId']}", OP1))[1]
    assert (settled["status"], settled["late"]) == ("FINISHED", True)


async def test_nothing_is_sent_to_a_robot_whose_edge_is_revoked(api_client: TestClient, db: asyncpg.Pool,
                                                                  site: Site) -> None:
    lease = await _lease(api_client, OP1)
    _, moving = await _give(api_client, OP1, "goto", {"x": 1, "y": 1}, lease["leaseId"])
    await db.execute("DELETE FROM robot_command_outbox")
    await db.execute("UPDATE robot_commands SET status = 'SENT'")
    await db.execute("UPDATE edges SET revoked_at = now() WHERE edge_id = 'site-r'")
    for command_type in ("goto", "estop"):
        status, answer = await _give(api_client, OP1, command_type, {"x": 1, "y": 1} if command_type == "goto" else {},
                                     lease["leaseId"])
        assert status == 409 and answer["error"]["code"] == "edge_revoked", answer
    status, answer = await _call(api_client, "POST", f"{ROBOT}/commands/{moving['commandId']}/cancel", OP1)
    assert status == 409 and answer["error"]["code"] == "edge_revoked"
    assert await db.fetchval("SELECT count(*) FROM robot_commands") == 1


async def test_desired_settings_show_pending_until_the_robot_runs_with_them(
        api_client: TestClient, db: asyncpg.Pool, site: Site) -> None:
    url = f"{ROBOT}/settings/desired"
    status, answer = await _call(api_client, "PUT", url, OP1, {"settings": {"maxSpeedMps": 1.2}})
    assert status == 409 and answer["error"]["code"] == "lease_required"
    lease = await _lease(api_client, OP1)
    for settings in ({"maxSpeedMps": 20}, {"warpDrive": True}, {}, {"patrolRoute": []}):
        status, answer = await _call(api_client, "PUT", url, OP1, {"settings": settings, "leaseId": lease["leaseId"]})
        assert status == 400 and answer["error"]["details"]["field"] == "settings", answer
    status, answer = await _call(api_client, "PUT", url, OP1, {"settings": {"maxSpeedMps": 1.2, "cameraOn": True},
                                                               "leaseId": lease["leaseId"]})
    assert status == 202 and answer["command"]["kind"] == "settings.desired"
    assert answer["pending"] == {"cameraOn": {"desired": True, "reported": None},
                                 "maxSpeedMps": {"desired": 1.2, "reported": None}}
    wire = decode_command(bytes(await db.fetchval("SELECT payload FROM robot_command_outbox")))
    assert wire.kind == "settings.desired" and wire.settings.max_speed_mps == 1.2 and wire.fencing_token == 1
    await site.ingest(rb.settings_reported(site, "RB-001", {"maxSpeedMps": 1.2, "cameraOn": True}))
    reported = (await _call(api_client, "GET", f"{ROBOT}/settings/reported", OP2))[1]
    assert reported["pending"] == {} and reported["reported"]["settings"]["cameraOn"] is True
    await _call(api_client, "PUT", url, OP1, {"settings": {"maxSpeedMps": 1.5}, "leaseId": lease["leaseId"]})
    await site.ingest(rb.settings_reported(site, "RB-001", {"maxSpeedMps": 1.4, "cameraOn": True}))
    desired = (await _call(api_client, "GET", url, OP2))[1]
    assert desired["desired"]["settings"] == {"maxSpeedMps": 1.5} and desired["desired"]["setBy"] == "user:11"
    assert desired["pending"] == {"maxSpeedMps": {"desired": 1.5, "reported": 1.4}}
    assert (await _call(api_client, "GET", ROBOT, OP2))[1]["settings"]["pending"] == desired["pending"]


async def test_telemetry_is_read_by_range_bounded_and_a_bad_range_is_400(
        api_client: TestClient, site: Site) -> None:
    t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=10)
    for i in range(3):
        await site.ingest(rb.telemetry(site, "RB-001", float(i), 0.0, at=t0 + timedelta(minutes=i)),
                          now=t0 + timedelta(minutes=i))
    url = f"{ROBOT}/telemetry"
    q = {"since": t0.isoformat(), "until": (t0 + timedelta(seconds=90)).isoformat()}
    resp = await api_client.get(url, params=q, headers=OP1)
    page = await json_of(resp)
    assert resp.status == 200 and [s["pose"]["x"] for s in page["items"]] == [0.0, 1.0] and not page["truncated"]
    resp = await api_client.get(url, params={"since": t0.isoformat(), "limit": "2"}, headers=OP1)
    page = await json_of(resp)
    assert [s["pose"]["x"] for s in page["items"]] == [0.0, 1.0] and page["truncated"]
    for params in ({}, {"since": "yesterday"}, {"since": "2026-01-01T00:00:00"},
                   {"since": q["until"], "until": q["since"]}, {"since": "2020-01-01T00:00:00Z"}):
        resp = await api_client.get(url, params=params, headers=OP1)
        assert resp.status == 400 and (await json_of(resp))["error"]["code"] == "bad_range", params


async def _changes_until(ws: Any, done: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The stream's changes until `done(change)` holds for one of them."""
    changes: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while not changes or not done(changes[-1]):
            message = json.loads((await ws.receive()).data)
            if message["type"] == "change":
                changes.append(message)
    return changes


async def test_the_live_stream_throttles_telemetry_per_client_and_the_latest_wins(
        db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    async with running_hub(db, db_dsn, tmp_path, msgspec.structs.replace(FAST, telemetry_interval_s=0.5)) as hub:
        ws = await hub.ws(await hub.user("op@example.com", "OPERATOR"))
        try:
            await read_ws(ws, 0)  # the first heartbeat: live from here
            async with db.acquire() as conn, conn.transaction():
                ids = await write_outbox(conn, [OutboxItem("robot.telemetry", None, {"robotId": robot, "n": n})
                                                for robot, n in (("RB-1", 0), ("RB-1", 1), ("RB-2", 0), ("RB-1", 2),
                                                                 ("RB-1", 3))]
                                         + [OutboxItem("robot.updated", None, {"robot": {"robotId": "RB-1"}})])
            got = await _changes_until(ws, lambda m: m["payload"].get("n") == 3)
            # RB-1's first sample and RB-2's go at once; RB-1's next ones are held, and after the
            # interval only the newest of them goes, with the cursor the client had reached.
            assert [(m["topic"], m["payload"].get("robotId"), m["payload"].get("n"), m["cursor"]) for m in got] == [
                ("robot.telemetry", "RB-1", 0, ids[0]), ("robot.telemetry", "RB-2", 0, ids[2]),
                ("robot.updated", None, None, ids[5]), ("robot.telemetry", "RB-1", 3, ids[5])]
        finally:
            await ws.close()


async def test_a_role_without_robots_view_gets_no_robot_rows_on_the_stream(
        db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    async with running_hub(db, db_dsn, tmp_path) as hub:
        object_id = await db.fetchval("INSERT INTO objects (name) VALUES ('Depot') RETURNING id")
        ws = await hub.ws(await hub.user("fw@example.com", "FIELD_WORKER", [object_id]))
        try:
            await read_ws(ws, 0)
            async with db.acquire() as conn, conn.transaction():
                ids = await write_outbox(conn, [OutboxItem("robot.updated", object_id, {"robot": {}}),
                                                OutboxItem("panel.state", object_id, {"changes": []})])
            got = [m for m in await read_ws(ws, ids[-1]) if m["type"] == "change"]
            assert [m["topic"] for m in got] == ["panel.state"]
        finally:
            await ws.close()
