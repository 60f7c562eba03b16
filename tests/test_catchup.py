"""Catch-up after an outage (issue 16): the evt lane is paced by its rate cap and the alarm lane
never is (the hub's bounded pulls: tests/test_ingest_pull.py), and the
edge's status report says how fast its backlog drains so GET /api/v1/edges can show "catching up:
N events, ~T s left" (docs/architecture.md §3 "Catch-up", §4 "Status reports", §6.7)."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import nats
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from edge.config import load_edge_config
from edge.forwarder import RateCap
from edge.journal import Journal
from edge.status_report import StatusReporter, drain_rates
from hub.api.edges_api import CatchUp, catch_up
from hub.config import load_hub_config
from hub.edges.status import store_report
from hub.ingest.consumer import ensure_streams
from hub.ingest.edge_keys import add_edge
from shared.bodies import DemoTick
from shared.clock import FakeClock
from shared.config import ConfigError
from shared.edge_status import EdgeStatusReport, LaneBacklog, encode_report
from shared.envelope import Priority, new_envelope
from shared.signing import Signer
from support.api import as_role, json_of
from support.topology import EdgeHarness, Topology
from support.waiting import wait_until

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def _paced_seconds(lane: str) -> float:
    return REGISTRY.get_sample_value("vigil_forwarder_paced_seconds_total", {"lane": lane}) or 0.0


# ---------- pure: the rate cap, the drain rate, the catch-up estimate


def test_rate_cap_lets_a_burst_through_then_holds_to_its_rate() -> None:
    cap = RateCap(rate=100.0, burst=200.0)
    assert cap.take(150, now=10.0) == 0.0  # within the burst saved up
    assert cap.take(50, now=10.0) == 0.0  # the burst is spent exactly
    assert cap.take(100, now=10.0) == pytest.approx(1.0)  # 100 owed at 100/s
    # Half a second later 50 came back, but 100 were owed: another 100 must wait 1.5 s.
    assert cap.take(100, now=10.5) == pytest.approx(1.5)
    # Idle for a long time: saved up again, never beyond the burst.
    assert cap.take(200, now=100.0) == 0.0
    assert cap.take(1, now=100.0) == pytest.approx(0.01)
    for rate, burst in ((0, 10), (10, 0), (-1, 10)):
        with pytest.raises(ValueError):
            RateCap(rate, burst)


def test_drain_rate_is_rows_acknowledged_per_second_since_the_last_report() -> None:
    assert drain_rates(None, 5.0, {"evt": 100, "alarm": 0}) == {"evt": None, "alarm": None}
    assert drain_rates((5.0, {"evt": 100, "alarm": 0}), 7.0, {"evt": 4100, "alarm": 3}) == {"evt": 2000.0, "alarm": 1.5}
    # No time between two samples (a fake clock), or a count that went back (a new forwarder): no
    # division by zero, no negative rate.
    assert drain_rates((5.0, {"evt": 1}), 5.0, {"evt": 9}) == {"evt": None}
    assert drain_rates((5.0, {"evt": 50}), 6.0, {"evt": 10}) == {"evt": 0.0}


def test_catch_up_estimate_adds_the_lanes_and_counts_the_reports_age() -> None:
    lanes = {"evt": LaneBacklog(9_000, 600.0, 1_800.0), "alarm": LaneBacklog(1_000, 30.0, 200.0)}
    assert catch_up(lanes, age_s=0.0) == CatchUp(events=10_000, forwarded_per_s=2_000.0, eta_s=5.0)
    assert catch_up(lanes, age_s=2.0) == CatchUp(events=10_000, forwarded_per_s=2_000.0, eta_s=3.0)
    assert catch_up(lanes, age_s=60.0).eta_s == 0.0  # an old report's estimate is spent, never negative
    # No rate yet (the run's first report) or none moving: the time left is not known.
    assert catch_up({"evt": LaneBacklog(5)}, 0.0) == CatchUp(events=5, forwarded_per_s=None, eta_s=None)
    assert catch_up({"evt": LaneBacklog(5, 1.0, 0.0)}, 0.0) == CatchUp(events=5, forwarded_per_s=0.0, eta_s=None)
    assert catch_up({"evt": LaneBacklog(0, None, 3000.0), "alarm": LaneBacklog(0)}, 0.0) is None


def test_pacing_and_batch_bounds_are_checked_settings() -> None:
    config = load_edge_config(env={}, overrides={"edge_id": "site-1"})
    assert config.forwarder.evt_events_per_s == 5_000.0 and config.status_report.catchup_interval_s == 5.0
    assert load_edge_config(env={}, overrides={"edge_id": "site-1", "forwarder": {"evt_events_per_s": 0}}) \
        .forwarder.evt_events_per_s == 0  # unpaced, by choice
    for bad in ({"forwarder": {"evt_events_per_s": 5}}, {"forwarder": {"evt_events_per_s": -1}},
                {"status_report": {"catchup_interval_s": 0}}):
        with pytest.raises(ConfigError):
            load_edge_config(env={}, overrides={"edge_id": "site-1", **bad})
    assert load_hub_config(env={}, overrides={}).ingest.batch_max_bytes == 1024 * 1024
    for bad_bytes in (1024, 1 << 30):
        with pytest.raises(ConfigError, match="batch_max_bytes"):
            load_hub_config(env={}, overrides={"ingest": {"batch_max_bytes": bad_bytes}})


async def test_a_report_says_how_fast_its_lanes_drain_and_comes_sooner_while_rows_wait(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db", max_bytes=1 << 20, retention_s=3600)
    clock = FakeClock(NOW)
    forwarded = {"evt": 0, "alarm": 0}
    settings = load_edge_config(env={}, overrides={"edge_id": "site-1"}).status_report
    # build() never touches the connection: an unconnected client is enough.
    reporter = StatusReporter("site-1", journal, Signer.generate(), nats.NATS(), lambda: [], settings, clock=clock,
                              forwarded=lambda: forwarded)
    try:
        await reporter.start()
        quiet = await reporter.build()
        assert quiet.interval_s == 30.0 and quiet.lanes["evt"].forwarded_per_s is None
        for i in range(4):
            await journal.append(new_envelope("demo.tick", "t", Priority.LOW, DemoTick(i), clock=clock))
        clock.advance(5.0)
        forwarded["evt"] = 1_000
        busy = await reporter.build()
        assert busy.lanes["evt"] == LaneBacklog(4, 5.0, 200.0)
        assert busy.lanes["alarm"] == LaneBacklog(0, None, 0.0)
        assert busy.interval_s == reporter.next_interval_s == 5.0  # the next one comes sooner, and says so
        await journal.mark_forwarded("evt", 1, 4)
        clock.advance(5.0)
        drained = await reporter.build()
        assert drained.interval_s == 30.0 and drained.lanes["evt"].rows == 0
        # The field is on the wire, and a report without it (an older edge) still decodes.
        assert msgspec.json.decode(encode_report(busy))["lanes"]["evt"]["forwarded_per_s"] == 200.0
        old = encode_report(busy).replace(b',"forwarded_per_s":200.0', b"")
        assert msgspec.json.decode(old, type=EdgeStatusReport).lanes["evt"].forwarded_per_s is None
    finally:
        await journal.close()


# ---------- GET /api/v1/edges


def _report(edge: str, lanes: dict[str, LaneBacklog]) -> EdgeStatusReport:
    return EdgeStatusReport(edge=edge, epoch="e1", run=1, n=1, sent_at=datetime.now(timezone.utc), interval_s=5.0,
                            lanes=lanes, links=[], journal_bytes=4096, version="0.1.0")


@pytest.mark.slow
async def test_edges_api_shows_a_connected_edges_catch_up_and_not_a_silent_ones(
        db: asyncpg.Pool, api_client: TestClient) -> None:
    async with db.acquire() as conn:
        for edge in ("site-1", "site-2", "site-3"):
            await add_edge(conn, edge, Signer.generate().public_raw)
    reports = {
        "site-1": _report("site-1", {"evt": LaneBacklog(12_000, 3600.0, 2_000.0), "alarm": LaneBacklog(0, None, 0.0)}),
        "site-2": _report("site-2", {"evt": LaneBacklog(0, None, 0.0), "alarm": LaneBacklog(0, None, 0.0)}),
        "site-3": _report("site-3", {"evt": LaneBacklog(500, 60.0, 100.0), "alarm": LaneBacklog(0)}),
    }
    for report in reports.values():
        await store_report(db, report, encode_report(report))
    # site-3 has been silent for a minute (reports due every 5 s while catching up): not connected,
    # so not "catching up" either, whatever its last report said.
    await db.execute("UPDATE edge_status SET received_at = now() - interval '1 minute' WHERE edge_id = 'site-3'")
    body = await json_of(await api_client.get("/api/v1/edges", headers=as_role("ADMIN")))
    items: dict[str, Any] = {item["edge_id"]: item for item in body["items"]}
    one = items["site-1"]["catching_up"]
    assert one["events"] == 12_000 and one["forwarded_per_s"] == 2_000.0
    assert 5.0 <= one["eta_s"] <= 6.0  # 6 s at the report, less its age
    assert items["site-1"]["report"]["lanes"]["evt"]["forwarded_per_s"] == 2_000.0
    assert items["site-2"]["catching_up"] is None
    assert items["site-3"]["connected"] is False and items["site-3"]["catching_up"] is None
    assert items["site-3"]["report"]["lanes"]["evt"]["rows"] == 500  # the stale report is still shown as such
    spec = await json_of(await api_client.get("/api/v1/openapi.json", headers=as_role("ADMIN")))
    assert "CatchUp" in str(spec)


# ---------- real NATS: the paced forwarder, the bounded pull


@pytest.mark.slow
async def test_the_evt_lane_keeps_to_its_rate_and_an_alarm_overtakes_it(topology: Topology) -> None:
    await ensure_streams(await topology.connect_hub())
    config = topology.edge_config()
    signer = await topology.enrol(config)
    rate, backlog = 500.0, 2_500
    site = await EdgeHarness(topology, config, signer, evt_events_per_s=rate, segment_max_events=100, window=2).start()
    try:
        assert site.forwarder is not None and site.journal is not None
        forwarder, journal = site.forwarder, site.journal
        paced_before = {lane: _paced_seconds(lane) for lane in ("evt", "alarm")}
        started = time.monotonic()
        await site.append(backlog)
        await wait_until(lambda: forwarder.forwarded["evt"] > 0, timeout=30, what="the backlog to start draining")
        await site.append(1, Priority.CRITICAL)
        await wait_until(lambda: forwarder.forwarded["alarm"] == 1, timeout=30, what="the alarm acknowledged")
        # The alarm went while the paced backlog still waited.
        assert journal.unforwarded["evt"] > 0
        assert await journal.oldest_unforwarded("alarm") is None
        await wait_until(lambda: journal.unforwarded["evt"] == 0, timeout=60, what="the backlog drained")
        elapsed = time.monotonic() - started
        # A burst of `rate` envelopes, then `rate` a second: a lower bound a busy machine cannot break.
        assert elapsed >= (backlog - rate) / rate * 0.95, elapsed
        assert forwarder.forwarded == {"evt": backlog, "alarm": 1}
        assert _paced_seconds("evt") > paced_before["evt"] and _paced_seconds("alarm") == paced_before["alarm"]
    finally:
        await site.close()
