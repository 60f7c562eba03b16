"""The lifecycle against real PostgreSQL: bundling in the ingest transaction, versioned
transitions, concurrent claims, the reaper, service mode, and the outbox's commit order."""
from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest

from hub.alarms import lifecycle
from hub.alarms import repository as alarms
from hub.db.outbox import OutboxItem, write_outbox
from shared.envelope import Envelope, Priority
from support.site import T0, Site


@pytest.fixture
async def site(db: asyncpg.Pool) -> Site:
    return await Site(db).setup({"panel-1": "Bank", "panel-2": "Bank", "panel-3": "Shop"})


async def _bundles(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM bundle_alarms ORDER BY id")


def _zone_alarm(site: Site, ts: datetime, zone: int = 1, **kw: Any) -> Envelope:
    return site.env("satel.zone.alarm", {"zone": zone}, ts, **kw)


async def test_window_edges_14_59_joins_15_01_does_not(site: Site) -> None:
    await site.ingest(_zone_alarm(site, T0))
    await site.ingest(_zone_alarm(site, T0 + timedelta(minutes=14, seconds=59), zone=2))
    await site.ingest(_zone_alarm(site, T0 + timedelta(minutes=30, seconds=1), zone=3))
    rows = await _bundles(site.pool)
    assert [(r["event_count"], r["alarm_type"]) for r in rows] == [(2, "BURGLARY"), (1, "BURGLARY")]
    assert rows[0]["object_id"] == site.objects["Bank"]
    linked = await site.pool.fetchval("SELECT count(*) FROM bundle_events")
    assert linked == 3


async def test_same_object_other_panel_joins_other_object_does_not(site: Site) -> None:
    await site.ingest(_zone_alarm(site, T0), _zone_alarm(site, T0, source="panel-2", zone=5),
                      _zone_alarm(site, T0, source="panel-3"))
    counts = {r["object_id"]: r["event_count"] for r in await _bundles(site.pool)}
    assert counts == {site.objects["Bank"]: 2, site.objects["Shop"]: 1}


async def test_retrigger_after_resolved_opens_a_new_bundle(site: Site) -> None:
    await site.ingest(_zone_alarm(site, T0))
    [b] = await _bundles(site.pool)
    async with site.pool.acquire() as conn:
        v = b["version"]
        for action in ("claim", "start", "ack", "resolve"):
            v = (await alarms.transition(conn, b["id"], action, "ann", v, T0, note="checked",
                                         resolution="FALSE_ALARM"))["version"]
    await site.ingest(_zone_alarm(site, T0 + timedelta(minutes=1)))
    rows = await _bundles(site.pool)
    assert [r["status"] for r in rows] == ["RESOLVED", "NEW"]


async def test_restore_updates_but_never_opens(site: Site) -> None:
    await site.ingest(site.env("satel.zone.restore", {"zone": 1}, T0, Priority.LOW))
    assert await _bundles(site.pool) == []
    await site.ingest(_zone_alarm(site, T0))
    await site.ingest(site.env("satel.zone.alarm_cleared", {"zone": 1}, T0 + timedelta(seconds=5), Priority.LOW))
    [b] = await _bundles(site.pool)
    assert b["event_count"] == 2 and b["restored_ord"] > b["last_alarm_ord"] and b["status"] == "NEW"


async def test_a_late_low_restore_never_overrides_a_newer_alarm(site: Site) -> None:
    """The restore (seq 1, evt lane) is committed after the alarm (seq 2, alarm lane)."""
    alarm = _zone_alarm(site, T0 + timedelta(seconds=1), seq=2)
    restore = site.env("satel.zone.alarm_cleared", {"zone": 1}, T0, Priority.LOW, seq=1)
    await site.ingest(alarm)
    await site.ingest(restore)
    [b] = await _bundles(site.pool)
    assert b["restored_ord"] < b["last_alarm_ord"]
    state = await site.pool.fetchval("SELECT state FROM panel_state WHERE element = 'zone' AND number = 1")
    assert msgspec.json.decode(state) == {"alarm": True}


async def test_zone_priority_override_and_temperature_note(site: Site) -> None:
    await site.pool.execute("INSERT INTO zones (panel_id, number, priority_override) VALUES ($1, 7, $2)",
                            site.panels["panel-1"], '{"satel.zone.alarm": "CRITICAL"}')
    await site.ingest(_zone_alarm(site, T0, zone=7, priority=Priority.HIGH),
                      site.env("sms.temp.alarm", {"sensor": "F1", "celsius": 9.5}, T0, Priority.HIGH))
    rows = {r["alarm_type"]: r for r in await _bundles(site.pool)}
    assert rows["BURGLARY"]["priority"] == "CRITICAL"
    assert rows["TEMPERATURE"]["requires_note"] is True
    b = rows["TEMPERATURE"]
    async with site.pool.acquire() as conn:
        v = (await alarms.transition(conn, b["id"], "claim", "ann", b["version"], T0))["version"]
        v = (await alarms.transition(conn, b["id"], "start", "ann", v, T0))["version"]
        with pytest.raises(lifecycle.NoteRequired):
            await alarms.transition(conn, b["id"], "ack", "ann", v, T0)
        assert (await alarms.transition(conn, b["id"], "ack", "ann", v, T0, note="door shut"))["status"] == "ACK"


async def test_service_mode_suppresses_then_normal_handling_returns(site: Site) -> None:
    bank = site.objects["Bank"]
    await site.pool.execute("UPDATE objects SET status = 'SERVICE', service_mode_reason = 'maintenance' WHERE id = $1", bank)
    await site.ingest(_zone_alarm(site, T0, priority=Priority.CRITICAL))
    [b] = await _bundles(site.pool)
    assert (b["priority"], b["service_mode"]) == ("LOW", True)
    await site.pool.execute("UPDATE objects SET status = 'ACTIVE' WHERE id = $1", bank)
    await site.ingest(_zone_alarm(site, T0 + timedelta(minutes=1), priority=Priority.CRITICAL))
    [b] = await _bundles(site.pool)
    assert (b["priority"], b["service_mode"]) == ("CRITICAL", False)
    # service_mode_until in the future counts as service mode too.
    await site.pool.execute("UPDATE objects SET service_mode_until = $2 WHERE id = $1", bank, T0 + timedelta(hours=1))
    await site.ingest(_zone_alarm(site, T0 + timedelta(minutes=2), source="panel-3", priority=Priority.CRITICAL))
    await site.pool.execute("UPDATE objects SET service_mode_until = $2 WHERE id = $1", site.objects["Shop"], T0 + timedelta(hours=1))
    await site.ingest(site.env("satel.zone.tamper", {"zone": 2}, T0 + timedelta(minutes=3), source="panel-3"))
    tamper = await site.pool.fetchrow("SELECT * FROM bundle_alarms WHERE alarm_type = 'TAMPER'")
    assert (tamper["priority"], tamper["service_mode"]) == ("LOW", True)


async def test_transitions_check_versions_and_write_audit_and_outbox(site: Site) -> None:
    await site.ingest(_zone_alarm(site, T0))
    [b] = await _bundles(site.pool)
    async with site.pool.acquire() as conn:
        with pytest.raises(lifecycle.IllegalTransition):
            await alarms.transition(conn, b["id"], "ack", "ann", b["version"], T0, note="x")
        with pytest.raises(lifecycle.IllegalTransition):
            await alarms.transition(conn, b["id"], "resolve", "ann", b["version"], T0, resolution="FALSE_ALARM")
        claimed = await alarms.transition(conn, b["id"], "claim", "ann", b["version"], T0, request_id="req-1")
        with pytest.raises(lifecycle.VersionConflict):
            await alarms.transition(conn, b["id"], "start", "ann", b["version"], T0)
        with pytest.raises(alarms.BundleNotFound):
            await alarms.transition(conn, 999999, "claim", "ann", 1, T0)
    assert claimed["status"] == "CLAIMING" and claimed["claimed_by"] == "ann"
    audit = await site.pool.fetch("SELECT actor, action, request_id FROM audit_log WHERE action LIKE 'alarm.%'")
    assert [(a["actor"], a["action"], a["request_id"]) for a in audit] == [("ann", "alarm.claim", "req-1")]
    topics = [r["topic"] for r in await site.pool.fetch("SELECT topic FROM outbox ORDER BY sequence_id")]
    assert topics == ["alarm.new", "panel.state", "alarm.updated"] or topics == ["panel.state", "alarm.new", "alarm.updated"]
    # Refused transitions changed nothing.
    assert (await site.pool.fetchval("SELECT version FROM bundle_alarms")) == b["version"] + 1


async def test_the_claimant_is_named_by_email_in_the_row_the_api_and_outbox_get(site: Site) -> None:
    await site.ingest(_zone_alarm(site, T0))
    [b] = await _bundles(site.pool)
    user_id = await site.pool.fetchval(
        "INSERT INTO users (email, role, password_hash, must_change_password, active, created_at, updated_at) "
        "VALUES ('ann@arc.example', 'OPERATOR', 'x', false, true, $1, $1) RETURNING id", T0)
    async with site.pool.acquire() as conn:
        claimed = await alarms.transition(conn, b["id"], "claim", f"user:{user_id}", b["version"], T0)
    assert (claimed["claimed_by"], claimed["claimed_by_email"]) == (f"user:{user_id}", "ann@arc.example")
    payload = msgspec.json.decode(await site.pool.fetchval(
        "SELECT payload FROM outbox WHERE topic = 'alarm.updated' ORDER BY sequence_id DESC LIMIT 1"))
    assert payload["bundle"]["claimed_by_email"] == "ann@arc.example"
    await site.ingest(_zone_alarm(site, T0, zone=2, source="panel-3"))
    other = await site.pool.fetchval("SELECT id FROM bundle_alarms WHERE id <> $1", b["id"])
    async with site.pool.acquire() as conn:  # an actor that is not a user names no one
        by_system = await alarms.transition(conn, other, "claim", "system", 1, T0)
    assert (by_system["claimed_by"], by_system["claimed_by_email"]) == ("system", None)


async def test_ten_concurrent_claims_exactly_one_wins(site: Site, db_dsn: str) -> None:
    await site.ingest(_zone_alarm(site, T0))
    [b] = await _bundles(site.pool)
    conns = [await asyncpg.connect(db_dsn) for _ in range(10)]
    try:
        async def try_claim(i: int, conn: asyncpg.Connection) -> str:
            try:
                await alarms.transition(conn, b["id"], "claim", f"op{i}", b["version"], T0)
                return "won"
            except lifecycle.VersionConflict:
                return "conflict"

        results = await asyncio.gather(*(try_claim(i, c) for i, c in enumerate(conns)))
    finally:
        for c in conns:
            await c.close()
    assert sorted(results) == ["conflict"] * 9 + ["won"]


async def test_reaper_and_auto_closer_with_explicit_time(site: Site) -> None:
    await site.ingest(_zone_alarm(site, T0), site.env("satel.trouble.on", {"part": 1, "bit": 8}, T0, Priority.NORMAL))
    by_type = {r["alarm_type"]: r for r in await _bundles(site.pool)}
    burglary, trouble = by_type["BURGLARY"], by_type["TROUBLE"]
    async with site.pool.acquire() as conn:
        await alarms.transition(conn, burglary["id"], "claim", "ann", burglary["version"], T0)
        v = trouble["version"]
        for action in ("claim", "start", "ack", "resolve"):
            v = (await alarms.transition(conn, trouble["id"], action, "bob", v, T0, note="fixed",
                                         resolution="TECHNICAL_FAULT"))["version"]
        assert await alarms.sweep(conn, T0 + timedelta(seconds=29)) == alarms.Swept()
        assert await alarms.sweep(conn, T0 + timedelta(seconds=30)) == alarms.Swept(reaped=1)
        assert await alarms.sweep(conn, T0 + timedelta(minutes=30)) == alarms.Swept(closed=1)
    rows = {r["alarm_type"]: r for r in await _bundles(site.pool)}
    assert (rows["BURGLARY"]["status"], rows["BURGLARY"]["claimed_by"]) == ("NEW", None)
    assert rows["TROUBLE"]["status"] == "CLOSED"
    actions = [r["action"] for r in await site.pool.fetch("SELECT action FROM audit_log WHERE actor = 'system' ORDER BY id")]
    assert actions == ["alarm.reaped", "alarm.auto_closed"]


async def test_only_one_sweeper_at_a_time(site: Site, db_dsn: str) -> None:
    holder = await asyncpg.connect(db_dsn)
    try:
        async with holder.transaction():
            await holder.execute("SELECT pg_advisory_xact_lock($1)", alarms.SWEEP_LOCK_KEY)
            await site.ingest(_zone_alarm(site, T0))
            [b] = await _bundles(site.pool)
            async with site.pool.acquire() as conn:
                await alarms.transition(conn, b["id"], "claim", "ann", b["version"], T0)
                assert await alarms.sweep(conn, T0 + timedelta(minutes=1)) == alarms.Swept()  # the other holds it
    finally:
        await holder.close()


async def test_link_and_panel_state(site: Site) -> None:
    await site.ingest(site.env("edge.link.down", {"link": "satel", "reason": "timeout"}, T0),
                      site.env("satel.partition.armed", {"partition": 1, "mode": 0}, T0, Priority.LOW))
    assert await site.pool.fetchval("SELECT link_status FROM panels WHERE id = $1", site.panels["panel-1"]) == "DISCONNECTED"
    await site.ingest(site.env("edge.link.up", {"link": "satel"}, T0 + timedelta(seconds=5), Priority.LOW),
                      site.env("satel.partition.disarmed", {"partition": 1}, T0 + timedelta(seconds=6), Priority.LOW))
    assert await site.pool.fetchval("SELECT link_status FROM panels WHERE id = $1", site.panels["panel-1"]) == "CONNECTED"
    state = await site.pool.fetchval("SELECT state FROM panel_state WHERE element = 'partition' AND number = 1")
    assert msgspec.json.decode(state) == {"armed": False, "mode": None}
    history = [r["kind"] for r in await site.pool.fetch("SELECT kind FROM panel_state_history ORDER BY at")]
    assert history == ["satel.partition.armed", "satel.partition.disarmed"]
    link_bundle = await site.pool.fetchrow("SELECT * FROM bundle_alarms WHERE alarm_type = 'LINK'")
    assert link_bundle["restored_ord"] > link_bundle["last_alarm_ord"]


def _snapshot(**active: Any) -> dict[str, Any]:
    """A satel.snapshot body as the edge encodes it (map keys become strings in JSON)."""
    body: dict[str, Any] = {
        "module_version": "ETHM-1 Plus 2.07", "panel_type": 0x3, "panel_version": "1.21", "wide": False,
        "push": False, "violated": [], "tamper": [], "alarm": [], "tamper_alarm": [], "bypassed": [], "armed": {},
        "entry_time": [], "exit_time": [], "partition_alarm": [], "fire_alarm": [], "outputs_on": [], "troubles": [],
        "service_mode": False, "panel_clock": None, "zone_names": {}, "partition_names": {}, "output_names": {}}
    body.update(active)
    return body


async def _states(site: Site) -> dict[tuple[str, int], dict[str, Any]]:
    rows = await site.pool.fetch("SELECT element, number, state FROM panel_state WHERE panel_id = $1",
                                 site.panels["panel-1"])
    return {(r["element"], r["number"]): msgspec.json.decode(r["state"]) for r in rows}


async def test_a_snapshot_sets_what_it_names_and_returns_the_rest_to_normal(site: Site) -> None:
    await site.ingest(site.env("satel.zone.violation", {"zone": 5}, T0, Priority.LOW),
                      site.env("satel.partition.armed", {"partition": 2, "mode": 1}, T0, Priority.LOW),
                      site.env("satel.output.on", {"output": 4}, T0, Priority.LOW))
    cursor = await site.pool.fetchval("SELECT max(sequence_id) FROM outbox")
    snap = site.env("satel.snapshot", _snapshot(violated=[1], bypassed=[1], armed={"1": 0}, exit_time=[1],
                                                 zone_names={"1": "Front door", "7": "Hall"}), T0, Priority.LOW)
    assert await site.ingest(snap) == 1
    states = await _states(site)
    normal_zone = {"violated": False, "tamper": False, "alarm": False, "tamper_alarm": False, "bypassed": False}
    assert states[("zone", 1)] == {**normal_zone, "violated": True, "bypassed": True}
    assert states[("zone", 7)] == normal_zone
    assert states[("zone", 5)] == {**normal_zone}  # restored while the link was down: the snapshot says so
    assert states[("partition", 1)] == {"armed": True, "mode": 0, "entry_time": False, "exit_time": True,
                                        "alarm": False, "fire_alarm": False}
    assert states[("partition", 2)]["armed"] is False and states[("partition", 2)]["mode"] is None
    assert states[("output", 4)] == {"on": False}
    assert await site.pool.fetchval("SELECT count(*) FROM bundle_alarms") == 0  # state, not alarms
    # Live clients get every element that changed, the reset ones included.
    [payload] = [msgspec.json.decode(r["payload"]) for r in await site.pool.fetch(
        "SELECT payload FROM outbox WHERE sequence_id > $1 AND topic = 'panel.state'", cursor)]
    changed = {(c["element"], c["number"]) for c in payload["changes"]}
    assert changed == {("zone", 1), ("zone", 7), ("zone", 5), ("partition", 1), ("partition", 2), ("output", 4)}


async def test_an_older_snapshot_never_undoes_a_newer_event(site: Site) -> None:
    # The alarm lane can deliver a zone violation before the event lane delivers the snapshot
    # the edge took earlier.
    older = site.env("satel.snapshot", _snapshot(armed={"1": 0}), T0, Priority.LOW)
    newer = site.env("satel.zone.violation", {"zone": 3}, T0 + timedelta(seconds=1), Priority.LOW)
    await site.ingest(newer)
    await site.ingest(older)
    states = await _states(site)
    assert states[("zone", 3)] == {"violated": True}
    assert states[("partition", 1)]["armed"] is True


async def test_outbox_ids_follow_commit_order_across_concurrent_writers(db: asyncpg.Pool, db_dsn: str) -> None:
    """Writers commit in random order after random delays; a reader polling `> cursor` must only
    ever see a contiguous run from its cursor, never a hole that fills later."""
    writers = [await asyncpg.connect(db_dsn) for _ in range(8)]
    reader = await asyncpg.connect(db_dsn)
    done = asyncio.Event()
    rng = random.Random(4)

    async def write(conn: asyncpg.Connection) -> None:
        for _ in range(25):
            async with conn.transaction():
                await write_outbox(conn, [OutboxItem("test", None, {"n": 1})] * rng.randint(1, 3))
                await asyncio.sleep(rng.random() / 200)  # hold the transaction open a little

    seen: list[int] = []

    async def read() -> None:
        cursor = 0
        while True:
            finished = done.is_set()
            rows = await reader.fetch("SELECT sequence_id FROM outbox WHERE sequence_id > $1 ORDER BY sequence_id", cursor)
            ids = [r["sequence_id"] for r in rows]
            assert ids == list(range(cursor + 1, cursor + 1 + len(ids))), f"hole after {cursor}: {ids[:10]}"
            seen.extend(ids)
            cursor = ids[-1] if ids else cursor
            if finished:
                return
            await asyncio.sleep(0)

    reading = asyncio.create_task(read())
    try:
        await asyncio.gather(*(write(c) for c in writers))
        done.set()
        await reading
    finally:
        for c in [*writers, reader]:
            await c.close()
    assert seen == list(range(1, len(seen) + 1)) and len(seen) >= 200
