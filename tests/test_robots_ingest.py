"""Robot events through the hub's real commit path (issue 15): the registry made by the first
event, never moved between edges; identity, capability and reported settings kept with their
history; status and connection by order key; telemetry in its partitions, pruned by retention;
acks settling commands (final stays final, a late word replaces the hub's TIMEOUT, only the owning
edge's counts); robot alarms as ROBOT bundles, one per robot, ended by their restore; unreadable
events counted and left alone."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest
from prometheus_client import REGISTRY

from hub.db.roles import prepare_database
from hub.housekeeping import prune_telemetry
from hub.robots import repository
from hub.robots.views import robot_summary
from provisioning.db_roles import ensure_runtime_role
from shared.robots import AckStatus, RobotState
from support import robots as rb
from support.site import Site

SQL_ROBOT = "SELECT * FROM robots WHERE robot_id = $1"
SQL_OUTBOX = "SELECT topic, object_id, payload::text AS payload FROM outbox ORDER BY sequence_id"
SQL_COMMAND = """
INSERT INTO robot_commands (id, robot_id, edge_id, object_id, kind, command_type, requested_by, status, created_at,
                            expires_at, updated_at, sent_at)
VALUES ($1, $2, $3, $4, 'cmd', 'goto', 'user:1', 'SENT', $5::timestamptz, $5::timestamptz + interval '30 seconds', $5, $5)
"""


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _topics(db: asyncpg.Pool) -> list[str]:
    return [r["topic"] for r in await db.fetch(SQL_OUTBOX)]


@pytest.fixture
async def site(db: asyncpg.Pool) -> Site:
    return (await rb.robot_site(db, "site-r", "Warehouse"))[0]


async def test_a_robot_appears_with_its_first_event_on_its_edge_and_object(db: asyncpg.Pool, site: Site) -> None:
    object_id = await db.fetchval("SELECT object_id FROM edges WHERE edge_id = 'site-r'")
    assert await site.ingest(rb.identity(site, "RB-001", name="Front gate")) == 1
    robot = await db.fetchrow(SQL_ROBOT, "RB-001")
    assert (robot["edge_id"], robot["object_id"], robot["enabled"], robot["connection"]) == (
        "site-r", object_id, True, "UNKNOWN")
    [identity] = await db.fetch("SELECT identity FROM robot_identity WHERE robot_id = 'RB-001'")
    assert json.loads(identity["identity"])["serialNumber"] == "SN-RB-001"
    [update] = [r for r in await db.fetch(SQL_OUTBOX) if r["topic"] == "robot.updated"]
    payload = json.loads(update["payload"])
    assert update["object_id"] == object_id and payload["robot"]["robotId"] == "RB-001"
    assert payload["changed"] == ["identity", "registered"]
    await site.ingest(rb.status(site, "RB-001"), rb.telemetry(site, "RB-001", 1.0, 1.0))
    assert [json.loads(r["payload"])["changed"] for r in await db.fetch(SQL_OUTBOX) if r["topic"] == "robot.updated"] \
        == [["identity", "registered"], ["status"]]


async def test_a_robot_another_edge_owns_is_stored_as_an_event_but_never_moved(db: asyncpg.Pool, site: Site) -> None:
    other, _ = await rb.robot_site(db, "site-x", "Elsewhere")
    await site.ingest(rb.status(site, "RB-001", RobotState.IDLE, 80))
    before = _metric("vigil_robot_foreign_events_total", edge="site-x")
    stored = await other.ingest(rb.status(other, "RB-001", RobotState.MOVING, 10), rb.identity(other, "RB-001"))
    assert stored == 2  # the events are kept as any
    robot = await db.fetchrow(SQL_ROBOT, "RB-001")
    assert robot["edge_id"] == "site-r" and json.loads(robot["status"])["state"] == "IDLE"
    assert await db.fetchval("SELECT count(*) FROM robot_identity") == 0
    assert _metric("vigil_robot_foreign_events_total", edge="site-x") == before + 2


async def test_snapshots_keep_their_history_and_the_newest_is_the_latest(db: asyncpg.Pool, site: Site) -> None:
    await site.ingest(rb.identity(site, "RB-001", firmware="1.0"), rb.capability(site, "RB-001"))
    await site.ingest(rb.identity(site, "RB-001", firmware="1.1"),
                      rb.settings_reported(site, "RB-001", {"maxSpeedMps": 1.0, "cameraOn": True}))
    history = await repository.snapshots(db, "robot_identity", "RB-001", 10)
    assert [json.loads(r["identity"])["firmwareVersion"] for r in history] == ["1.1", "1.0"]
    capability = await repository.latest(db, "robot_capability", "RB-001")
    assert json.loads(capability["capability"])["heartbeatIntervalS"] == 5.0
    reported = await repository.latest(db, "robot_settings_reported", "RB-001")
    assert json.loads(reported["settings"]) == {"maxSpeedMps": 1.0, "cameraOn": True}


async def test_status_and_connection_go_by_order_key_not_by_arrival(db: asyncpg.Pool, site: Site) -> None:
    older = rb.status(site, "RB-001", RobotState.MOVING, 70)
    newer = rb.status(site, "RB-001", RobotState.CHARGING, 65)
    broken = rb.connection(site, "RB-001", "CONNECTION_BROKEN", "no heartbeat for 15 s")
    await site.ingest(newer, broken)
    await site.ingest(older)  # the other lane's older status, arriving last, changes nothing
    robot = await db.fetchrow(SQL_ROBOT, "RB-001")
    assert json.loads(robot["status"])["state"] == "CHARGING" and json.loads(robot["status"])["faults"] == []
    assert (robot["connection"], robot["connection_reason"]) == ("CONNECTION_BROKEN", "no heartbeat for 15 s")
    await site.ingest(rb.connection(site, "RB-001", "ONLINE"))
    assert (await db.fetchrow(SQL_ROBOT, "RB-001"))["connection"] == "ONLINE"


async def test_telemetry_is_stored_and_sent_live_and_retention_drops_whole_days(db: asyncpg.Pool, site: Site) -> None:
    today = datetime.now(timezone.utc)
    await site.ingest(rb.telemetry(site, "RB-001", 1.0, 2.0, at=today), rb.telemetry(site, "RB-001", 1.5, 2.5, at=today))
    rows = await repository.telemetry(db, "RB-001", today - timedelta(minutes=1), today + timedelta(minutes=1), 10)
    assert [(r["x"], r["y"]) for r in rows] == [(1.0, 2.0), (1.5, 2.5)]
    live = [json.loads(r["payload"]) for r in await db.fetch(SQL_OUTBOX) if r["topic"] == "robot.telemetry"]
    assert [s["pose"]["x"] for s in live] == [1.0, 1.5] and live[0]["robotId"] == "RB-001"
    # A sample dated far back waits in the default partition until its day's partition is made.
    old = today - timedelta(days=40)
    await site.ingest(rb.telemetry(site, "RB-001", 9.0, 9.0, at=old), now=old)
    async with db.acquire() as conn:
        assert await repository.ensure_telemetry_partitions(conn, old, 1) == 1
        assert await db.fetchval(f"SELECT count(*) FROM robot_telemetry_{old:%Y_%m_%d}") == 1
    assert await prune_telemetry(db, today, timedelta(days=30)) == 1
    assert await db.fetchval("SELECT to_regclass($1)", f"robot_telemetry_{old:%Y_%m_%d}") is None
    assert await db.fetchval("SELECT count(*) FROM robot_telemetry") == 2


async def test_the_list_shows_the_battery_and_position_the_robot_reported_last(db: asyncpg.Pool, site: Site) -> None:
    """A status comes on a change only, samples every second: the battery shown is the newer one's."""
    start = datetime.now(timezone.utc)
    await site.ingest(rb.identity(site, "RB-001"), rb.status(site, "RB-001", RobotState.IDLE, battery=80.0, at=start))
    await site.ingest(rb.telemetry(site, "RB-001", 1.0, 2.0, battery=77.0, at=start + timedelta(seconds=1)),
                      rb.telemetry(site, "RB-001", 3.0, 4.0, battery=76.5, at=start + timedelta(seconds=2)))
    shown = robot_summary(await repository.robot(db, "RB-001", start))
    assert (shown["batteryPct"], shown["pose"]["x"]) == (76.5, 3.0)
    assert datetime.fromisoformat(shown["lastSeenAt"]) >= start + timedelta(seconds=2)
    await site.ingest(rb.status(site, "RB-001", RobotState.PATROLLING, battery=76.0, at=start + timedelta(seconds=3)))
    assert robot_summary(await repository.robot(db, "RB-001", start))["batteryPct"] == 76.0


async def test_the_hubs_runtime_role_may_make_and_drop_telemetry_partitions(db_dsn: str, db: asyncpg.Pool) -> None:
    """Only the owner may attach or drop a partition: the functions run as the owner, and the
    runtime role is granted them (migration 0021)."""
    runtime = await ensure_runtime_role(db_dsn)
    await prepare_database(runtime, db_dsn)
    conn = await asyncpg.connect(runtime)
    try:
        far = datetime(2031, 5, 1, tzinfo=timezone.utc)
        assert await repository.ensure_telemetry_partitions(conn, far, 2) == 2
        assert await repository.prune_telemetry(conn, far + timedelta(days=3), timedelta(days=1)) >= 2
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DROP TABLE robot_telemetry_default")
    finally:
        await conn.close()


async def _command(db: asyncpg.Pool, site: Site, robot: str = "RB-001") -> str:
    await site.ingest(rb.status(site, robot))
    command_id = uuid.uuid4()
    await db.execute(SQL_COMMAND, command_id, robot, site.edge_id, None, datetime.now(timezone.utc))
    return str(command_id)


async def _state(db: asyncpg.Pool, command_id: str) -> tuple[str, str | None, bool]:
    row = await db.fetchrow("SELECT status, ack_status, late FROM robot_commands WHERE id = $1", uuid.UUID(command_id))
    return row["status"], row["ack_status"], row["late"]


async def test_acks_move_a_command_and_a_final_word_stays_final(db: asyncpg.Pool, site: Site) -> None:
    command_id = await _command(db, site)
    await site.ingest(rb.ack(site, "RB-001", command_id, AckStatus.WAITING))
    assert await _state(db, command_id) == ("ACKED", "WAITING", False)
    await site.ingest(rb.ack(site, "RB-001", command_id, AckStatus.RUNNING, progress=0.4))
    await site.ingest(rb.ack(site, "RB-001", command_id, AckStatus.WAITING))  # never back
    row = await db.fetchrow("SELECT status, progress FROM robot_commands")
    assert (row["status"], row["progress"]) == ("RUNNING", 0.4)
    await site.ingest(rb.ack(site, "RB-001", command_id, AckStatus.REJECTED_STALE_TOKEN, detail="token 3 < 4"))
    assert await _state(db, command_id) == ("FAILED", "REJECTED_STALE_TOKEN", False)
    await site.ingest(rb.ack(site, "RB-001", command_id, AckStatus.FINISHED))
    assert await _state(db, command_id) == ("FAILED", "REJECTED_STALE_TOKEN", False)
    updates = [json.loads(r["payload"])["command"] for r in await db.fetch(SQL_OUTBOX)
               if r["topic"] == "robot.command.updated"]
    assert [u["status"] for u in updates] == ["ACKED", "RUNNING", "FAILED"]


async def test_the_edges_late_word_replaces_the_hubs_timeout(db: asyncpg.Pool, site: Site) -> None:
    command_id = await _command(db, site)
    async with db.acquire() as conn, conn.transaction():
        [timed_out] = await repository.time_out_overdue(conn, datetime.now(timezone.utc) + timedelta(minutes=5),
                                                        timedelta(seconds=30))
    assert timed_out.payload["command"]["status"] == "TIMEOUT"
    await site.ingest(rb.ack(site, "RB-001", command_id, AckStatus.FINISHED))
    assert await _state(db, command_id) == ("FINISHED", "FINISHED", True)


async def test_only_the_owning_edge_settles_its_robots_commands(db: asyncpg.Pool, site: Site) -> None:
    command_id = await _command(db, site)
    other, _ = await rb.robot_site(db, "site-x", None)
    await other.ingest(rb.ack(other, "RB-001", command_id, AckStatus.FINISHED))
    await site.ingest(rb.ack(site, "RB-001", str(uuid.uuid4()), AckStatus.FINISHED),
                      rb.ack(site, "RB-001", "not-a-uuid", AckStatus.FINISHED))
    assert await _state(db, command_id) == ("SENT", None, False)
    await site.ingest(rb.ack(site, "RB-001", command_id, AckStatus.TIMEOUT, by="edge", detail="no answer"))
    assert await _state(db, command_id) == ("TIMEOUT", "TIMEOUT", False)


async def test_robot_alarms_are_one_robot_bundle_per_robot_ended_by_their_restore(db: asyncpg.Pool, site: Site) -> None:
    object_id = await db.fetchval("SELECT object_id FROM edges WHERE edge_id = 'site-r'")
    await site.ingest(rb.alarm(site, "RB-001", "estop"), rb.alarm(site, "RB-002", "collision"),
                      rb.alarm(site, "RB-001", "stuck"))
    bundles = await db.fetch("SELECT id, alarm_type, group_key, object_id, source, event_count, priority, "
                             "restored_ord > last_alarm_ord AS restored FROM bundle_alarms ORDER BY source")
    assert [(b["alarm_type"], b["source"], b["event_count"], b["object_id"]) for b in bundles] == [
        ("ROBOT", "RB-001", 2, object_id), ("ROBOT", "RB-002", 1, object_id)]
    assert bundles[0]["priority"] == "CRITICAL" and bundles[0]["group_key"] == "robot:site-r/RB-001"
    await site.ingest(rb.alarm(site, "RB-002", "collision", restore=True))
    restored = {r["source"]: r["restored"] for r in await db.fetch(
        "SELECT source, restored_ord > last_alarm_ord AS restored FROM bundle_alarms")}
    assert restored == {"RB-001": False, "RB-002": True}
    assert {r["robot_id"] for r in await db.fetch("SELECT robot_id FROM robots")} == {"RB-001", "RB-002"}
    assert "alarm.new" in await _topics(db)


@pytest.mark.parametrize(("kind", "body", "source", "reason"), [
    ("robot.status", {"robot": "RB-001", "status": "broken"}, "RB-001", "bad_body"),
    ("robot.identity", {"robot": "RB-009", "message_id": "m", "sent_at": "2026-01-01T00:00:00Z",
                        "identity": {"manufacturer": "A", "model": "B", "serialNumber": "C", "firmwareVersion": "1",
                                     "bridgeVersion": "1"}}, "RB-001", "wrong_robot"),
    ("robot.frobnicate", {"robot": "RB-001"}, "RB-001", "unknown_kind"),
    ("robot.status", {"robot": "no such"}, "no such", "bad_robot_id"),
])
async def test_an_unreadable_robot_event_is_stored_counted_and_applied_to_nothing(
        db: asyncpg.Pool, site: Site, kind: str, body: dict, source: str, reason: str) -> None:
    before = _metric("vigil_robot_events_dropped_total", reason=reason)
    assert await site.ingest(site.env(kind, body, rb.now(), source=source)) == 1
    assert await db.fetchval("SELECT count(*) FROM robots") == 0
    assert _metric("vigil_robot_events_dropped_total", reason=reason) == before + 1
