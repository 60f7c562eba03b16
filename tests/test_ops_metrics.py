"""The seed's metrics (docs/operations.md) against the real database: alarm response times at
claim and ack, the reaper's reverts, the gauges refreshed from PostgreSQL by their supervised loop
(open bundles, stale CRITICAL bundles, outboxes, quarantine, edge backlogs), ingest lag, and the
live stream's replay from PostgreSQL and its overflows."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import msgspec
import pytest
from prometheus_client import REGISTRY

from hub import db_gauges
from hub.alarms import repository as alarms
from hub.alarms.lifecycle import VersionConflict
from hub.edges.status import backlog_age, store_report
from hub.housekeeping import run_housekeeping
from shared.backoff import Backoff
from shared.clock import FakeClock
from shared.edge_status import EdgeStatusReport, LaneBacklog, encode_report
from shared.envelope import Priority
from shared.supervise import Supervisor
from support.site import T0, Site
from support.waiting import wait_until
from test_stream_helpers import FAST, read_ws, running_hub, write_rows


def sample(name: str, **labels: str) -> float:
    """A sample's value now; 0 for one not exported (yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def site(db: asyncpg.Pool) -> Site:
    return await Site(db).setup({"panel-1": "Bank"})


async def _bundle(site: Site, ts: datetime) -> asyncpg.Record:
    await site.ingest(site.env("satel.zone.alarm", {"zone": 1}, ts))
    return await site.pool.fetchrow("SELECT id, version, first_event_at FROM bundle_alarms ORDER BY id DESC LIMIT 1")


def _response(stage: str) -> tuple[float, float, float, float]:
    """count, sum, and the buckets either side of the p95 alert's 5 minutes."""
    name = "vigil_alarm_response_time_seconds"
    return (sample(f"{name}_count", stage=stage), sample(f"{name}_sum", stage=stage),
            sample(f"{name}_bucket", stage=stage, le="300.0"), sample(f"{name}_bucket", stage=stage, le="600.0"))


async def test_claim_and_ack_are_observed_from_the_first_event_once_committed(site: Site) -> None:
    claim, ack = _response("claim"), _response("ack")
    b = await _bundle(site, T0)
    async with site.pool.acquire() as conn:
        v = (await alarms.transition(conn, b["id"], "claim", "ann", b["version"], T0 + timedelta(seconds=40)))["version"]
        with pytest.raises(VersionConflict):  # refused: no response observed
            await alarms.transition(conn, b["id"], "start", "ann", v - 1, T0 + timedelta(seconds=50))
        v = (await alarms.transition(conn, b["id"], "start", "ann", v, T0 + timedelta(seconds=50)))["version"]
        await alarms.transition(conn, b["id"], "ack", "ann", v, T0 + timedelta(seconds=400), note="guard sent")
    # One claim after 40 s (within 5 minutes), one ack after 400 s (past them); the refused move
    # and the start are not observed.
    assert [b - a for a, b in zip(claim, _response("claim"))] == pytest.approx([1, 40, 1, 1])
    assert [b - a for a, b in zip(ack, _response("ack"))] == pytest.approx([1, 400, 0, 1])


async def test_the_reaper_counts_each_claim_it_reverts(site: Site) -> None:
    b = await _bundle(site, T0)
    async with site.pool.acquire() as conn:
        await alarms.transition(conn, b["id"], "claim", "ann", b["version"], T0)
    before = sample("vigil_claiming_timeout_reverts_total")
    stop = asyncio.Event()
    clock = FakeClock(T0 + timedelta(seconds=31))  # the 30 s claim has lapsed
    task = asyncio.create_task(run_housekeeping(site.pool, stop, clock, sweep_interval_s=0.01))
    try:
        await wait_until(lambda: sample("vigil_claiming_timeout_reverts_total") == before + 1, timeout=10,
                         what="the reaper's revert counted")
        assert await site.pool.fetchval("SELECT status FROM bundle_alarms WHERE id = $1", b["id"]) == "NEW"
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


async def _add_bundle(db: asyncpg.Pool, priority: str, status: str, created_at: datetime, edge: str = "site-1") -> None:
    await db.execute(
        "INSERT INTO bundle_alarms (group_key, alarm_type, status, priority, first_event_at, last_event_at, edge_id, "
        "source, created_at) VALUES ('object:1', 'BURGLARY', $1, $2, $3, $3, $4, 'panel-1', $3)",
        status, priority, created_at, edge)


async def _add_panel_command(site: Site, at: datetime) -> None:
    command_id = uuid.uuid4()
    await site.pool.execute(
        "INSERT INTO satel_commands (id, panel_id, object_id, edge_id, type, source, requested_by, reason, code_from, "
        "created_at, expires_at) VALUES ($1, $2, $3, $4, 'arm', 'MANUAL', 'user:1', 'test', 'TYPED', $5, $6)",
        command_id, site.panels["panel-1"], site.objects["Bank"], site.edge_id, at, at + timedelta(minutes=1))
    await site.pool.execute("INSERT INTO command_outbox (command_id, subject, payload, created_at) "
                            "VALUES ($1, 'vigil.cmd.site-1', '\\x00'::bytea, $2)", command_id, at)


async def _add_quarantined(db: asyncpg.Pool, status: str) -> None:
    await db.execute("INSERT INTO ingest_quarantine (subject, reason, payload_size, payload, status) "
                     "VALUES ('vigil.edge.x.alarm.0', 'bad_signature', 1, '\\x00'::bytea, $1)", status)


async def _report(site: Site, alarm_rows: int, alarm_age_s: float | None, received_at: datetime) -> None:
    report = EdgeStatusReport(edge=site.edge_id, epoch="e1", run=1, n=1, sent_at=received_at, interval_s=5.0,
                              lanes={"alarm": LaneBacklog(alarm_rows, alarm_age_s), "evt": LaneBacklog(0),
                                     "bogus": LaneBacklog(9, 9.0)},
                              links=[], journal_bytes=0, version="test")
    assert await store_report(site.pool, report, encode_report(report))
    await site.pool.execute("UPDATE edge_status SET received_at = $1", received_at)


async def test_the_gauges_from_postgresql_are_refreshed_by_their_supervised_loop(site: Site) -> None:
    db = site.pool
    now = T0 + timedelta(days=2)
    for priority, status in (("CRITICAL", "NEW"), ("CRITICAL", "ACK"), ("HIGH", "IN_PROGRESS"), ("HIGH", "RESOLVED"),
                             ("LOW", "CLOSED")):
        await _add_bundle(db, priority, status, now - timedelta(hours=1))
    await _add_bundle(db, "CRITICAL", "CLAIMING", now - timedelta(hours=25))  # stale
    await _add_bundle(db, "CRITICAL", "RESOLVED", now - timedelta(hours=30))  # old but not open
    await _add_bundle(db, "HIGH", "NEW", now - timedelta(hours=30))  # open long, not CRITICAL
    await _add_panel_command(site, now)
    await _add_panel_command(site, now)
    await _add_quarantined(db, "HELD")
    await _add_quarantined(db, "DROPPED")
    await db.execute("UPDATE outbox_counter SET value = 7")
    await _report(site, 3, 10.0, now - timedelta(seconds=30))
    await db.execute("UPDATE panels SET link_status = 'DISCONNECTED', link_changed_at = $1", now - timedelta(minutes=7))

    stop = asyncio.Event()
    supervisor = Supervisor(stop, backoff=lambda: Backoff(base=0.01, cap=0.02))
    head = [5]
    task = supervisor.spawn("db-gauges", lambda: db_gauges.run_db_gauges(
        db, stop, interval_s=0.05, clock=FakeClock(now), stream_head=lambda: head[0]))
    try:
        await wait_until(lambda: sample("vigil_alarms_active", priority="CRITICAL") == 3, what="the first refresh")
        assert {p: sample("vigil_alarms_active", priority=p) for p in ("CRITICAL", "HIGH", "NORMAL", "LOW")} == \
            {"CRITICAL": 3, "HIGH": 2, "NORMAL": 0, "LOW": 0}
        assert sample("vigil_stale_alarm_report_bundles") == 1
        assert sample("vigil_outbox_pending_count", outbox="panel_commands") == 2
        assert sample("vigil_outbox_pending_count", outbox="robot_commands") == 0
        assert sample("vigil_outbox_pending_count", outbox="stream") == 2  # committed 7, this feed read 5
        assert sample("vigil_ingest_quarantine_held") == 1
        assert sample("vigil_edge_backlog_rows", edge="site-1", lane="alarm") == 3
        # The report said 10 s, and the hub took it 30 s ago.
        assert sample("vigil_edge_backlog_oldest_age_seconds", edge="site-1", lane="alarm") == pytest.approx(40)
        assert sample("vigil_edge_backlog_rows", edge="site-1", lane="evt") == 0
        # None waiting then, but the next report (every 5 s) is 25 s overdue: unseen rows may wait.
        assert sample("vigil_edge_backlog_oldest_age_seconds", edge="site-1", lane="evt") == pytest.approx(25)
        assert REGISTRY.get_sample_value("vigil_edge_backlog_rows", {"edge": "site-1", "lane": "bogus"}) is None
        assert sample("vigil_panel_links_down") == 1
        assert sample("vigil_panel_link_down_oldest_seconds") == pytest.approx(420)

        # The loop goes on: the next refreshes follow the database, a revoked edge's series go.
        await db.execute("UPDATE bundle_alarms SET status = 'CLOSED' WHERE priority = 'CRITICAL'")
        await db.execute("DELETE FROM command_outbox")
        await db.execute("UPDATE ingest_quarantine SET status = 'REPLAYED'")
        head[0] = 7
        await db.execute("UPDATE panels SET link_status = 'CONNECTED', link_changed_at = $1", now)
        await db.execute("UPDATE edges SET revoked_at = $1", now)
        await wait_until(lambda: sample("vigil_alarms_active", priority="CRITICAL") == 0, what="a later refresh")
        await wait_until(lambda: REGISTRY.get_sample_value(
            "vigil_edge_backlog_rows", {"edge": "site-1", "lane": "alarm"}) is None, what="the revoked edge gone")
        assert sample("vigil_stale_alarm_report_bundles") == 0
        assert sample("vigil_outbox_pending_count", outbox="panel_commands") == 0
        assert sample("vigil_outbox_pending_count", outbox="stream") == 0
        assert sample("vigil_ingest_quarantine_held") == 0
        assert sample("vigil_panel_links_down") == 0 and sample("vigil_panel_link_down_oldest_seconds") == 0
        assert supervisor.health()["db-gauges"]["restarts"] == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


async def test_ingest_lag_is_commit_time_minus_the_oldest_envelope_per_edge(site: Site) -> None:
    envs = [site.env("satel.zone.alarm", {"zone": 1}, T0 + timedelta(seconds=5)),
            site.env("satel.zone.violation", {"zone": 2}, T0, Priority.LOW)]
    await site.ingest(*envs, now=T0 + timedelta(seconds=42))
    assert sample("vigil_ingest_lag_seconds", edge="site-1") == pytest.approx(42)
    # An edge clock ahead of the hub's is no wait (its skew has its own gauge).
    await site.ingest(site.env("satel.zone.violation", {"zone": 3}, T0 + timedelta(minutes=5), Priority.LOW),
                      now=T0 + timedelta(minutes=4))
    assert sample("vigil_ingest_lag_seconds", edge="site-1") == 0


async def test_a_replay_from_postgresql_counts_its_queries_and_a_replay_overflow_counts_once(
        db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    settings = msgspec.structs.replace(FAST, ring_size=4, fetch_rows=7, horizon_rows=35)
    async with running_hub(db, db_dsn, tmp_path, settings) as hub:
        headers = await hub.user("op@example.com")
        await write_rows(db, 40)
        await wait_until(lambda: hub.stream.feed.head == 40, what="feed at 40")
        queries = sample("vigil_ws_replay_tier2_queries_total", transport="ws")
        overflows = sample("vigil_ws_replay_overflow_count_total", transport="ws")
        horizon = sample("vigil_stream_overflows_total", reason="horizon")

        ws = await hub.ws(headers, cursor=10)  # rows 11..40, past the ring of 4: pages of 7 from PostgreSQL
        assert [m["cursor"] for m in await read_ws(ws, until_cursor=40) if m["type"] == "change"] == \
            list(range(11, 41))
        await ws.close()
        assert sample("vigil_ws_replay_tier2_queries_total", transport="ws") == queries + 5  # 7+7+7+7+2 rows

        ws = await hub.ws(headers, cursor=38)  # within the ring: no query
        assert [m["cursor"] for m in await read_ws(ws, until_cursor=40) if m["type"] == "change"] == [39, 40]
        await ws.close()
        assert sample("vigil_ws_replay_tier2_queries_total", transport="ws") == queries + 5

        ws = await hub.ws(headers, cursor=1)  # 39 rows behind: past the horizon of 35
        assert (await read_ws(ws, until_cursor=40))[-1]["type"] == "replay_overflow"
        await ws.close()
        assert sample("vigil_ws_replay_overflow_count_total", transport="ws") == overflows + 1
        assert sample("vigil_stream_overflows_total", reason="horizon") == horizon + 1  # the same one, by reason


def test_a_backlog_ages_from_the_report_and_from_the_reports_that_stop() -> None:
    assert backlog_age(3, 10.0, 30.0, 5.0) == 40.0  # rows waiting: their age then, plus the time since
    assert backlog_age(0, None, 3.0, 5.0) == 0.0  # none waiting, the next report not yet due
    assert backlog_age(0, None, 605.0, 5.0) == 600.0  # a WAN cut after a clean report: unseen rows age
    assert backlog_age(0, None, 605.0, None) == 0.0  # an old report without its interval: nothing to go by
