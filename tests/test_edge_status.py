"""Edges report their status to the hub every 30 s (issue 10): a real agent's report lands in
`edge_status` and in GET /api/v1/edges with the backlog its journal holds, at the interval it is
given, again soon after a WAN cut; a forged, misdirected, revoked or malformed report is dropped,
counted and logged, never stored; an older report never overwrites a newer one; and reports never
grow the events table."""
from __future__ import annotations

import logging
import sqlite3
import statistics
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import asyncpg
import msgspec
import nats
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from edge.config import load_edge_config
from edge.journal import Journal
from edge.status_report import StatusReporter
from hub.api.server import build_http
from hub.edges.status import DROP_REASONS, Dropped, listen_for_status, store_report, verify_report
from hub.edges.registry import revoke_edge
from hub.ingest.edge_keys import EdgeKeyCache, add_edge
from hub.ingest.verify import EdgeKey
from hub.secret_box import SecretBox
from shared import subjects
from shared.bodies import DemoTick
from shared.clock import FakeClock
from shared.config import ConfigError
from shared.edge_status import EdgeStatusReport, LaneBacklog, LinkReport, encode_report, report_headers
from shared.envelope import Priority, new_envelope
from shared.signing import Signer, b64url
from support.api import HeaderAuthenticator, as_role, json_of, start_client
from support.topology import Topology
from support.waiting import wait_until

pytestmark = pytest.mark.slow

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def _report(edge: str = "site-1", *, epoch: str = "e1", run: int = 1, n: int = 1, interval_s: float = 30.0,
            rows: int = 0, sent_at: datetime = NOW) -> EdgeStatusReport:
    return EdgeStatusReport(
        edge=edge, epoch=epoch, run=run, n=n, sent_at=sent_at, interval_s=interval_s,
        lanes={"evt": LaneBacklog(rows, 61.5 if rows else None), "alarm": LaneBacklog(0)},
        links=[LinkReport("satel", "panel-1", "up", NOW - timedelta(hours=1))], journal_bytes=4096, version="0.1.0")


def _signed(report: EdgeStatusReport, signer: Signer) -> tuple[bytes, dict[str, str]]:
    payload = encode_report(report)
    return payload, report_headers(signer, payload)


def _counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _dropped(reason: str) -> float:
    return _counter("vigil_edge_status_dropped_total", reason=reason)


def _unanswered() -> float:
    return _counter("vigil_edge_status_reports_total", outcome="unanswered")


async def _events(db: asyncpg.Pool) -> int:
    return await db.fetchval("SELECT count(*) FROM events")


@pytest.fixture
async def api(db: asyncpg.Pool) -> AsyncIterator[TestClient]:
    client = await start_client(build_http(db, HeaderAuthenticator(), [], SecretBox.generate()))
    try:
        yield client
    finally:
        await client.close()


async def _edge_item(api: TestClient, edge_id: str = "site-1") -> dict[str, Any]:
    body = await json_of(await api.get("/api/v1/edges", headers=as_role("ADMIN")))
    return next(item for item in body["items"] if item["edge_id"] == edge_id)


async def _listen(topology: Topology, db: asyncpg.Pool) -> tuple[nats.NATS, Any]:
    """The hub's status listener on its own connection to the hub's NATS (no ingest, no stream)."""
    nc = await topology.connect_hub()
    return nc, await listen_for_status(nc, db, EdgeKeyCache(db))


# ---------- pure: the wire and the checks


def test_verify_report_takes_a_signed_report_and_names_every_refusal() -> None:
    site1, site2, stranger = Signer.generate(), Signer.generate(), Signer.generate()
    keys = {"site-1": EdgeKey("site-1", site1.key_id, site1.public_raw, False),
            "site-2": EdgeKey("site-2", site2.key_id, site2.public_raw, False),
            "site-3": EdgeKey("site-3", stranger.key_id, stranger.public_raw, True)}
    payload, headers = _signed(_report(), site1)
    assert verify_report(subjects.edge_status("site-1"), headers, payload, keys) == _report()

    def reason(subject: str, payload: bytes, headers: dict[str, str] | None) -> str:
        result = verify_report(subject, headers, payload, keys)
        assert isinstance(result, Dropped), result
        return result.reason

    forged = report_headers(stranger, payload)
    seen = {
        reason("vigil.edge.site-1.evt", payload, headers),
        reason(subjects.edge_status("site-1"), payload, None),
        reason(subjects.edge_status("site-1"), payload, {subjects.H_KEY: site1.key_id}),
        reason(subjects.edge_status("site-9"), payload, headers),
        reason(subjects.edge_status("site-3"), *_signed(_report("site-3"), stranger)),
        reason(subjects.edge_status("site-1"), payload, forged),  # another key's id
        reason(subjects.edge_status("site-1"), payload, {**forged, subjects.H_KEY: site1.key_id}),  # wrong signature
        reason(subjects.edge_status("site-2"), payload, headers),  # site-1's report replayed on site-2's subject
        reason(subjects.edge_status("site-2"), *_signed(_report("site-1"), site2)),  # site-2 speaking for site-1
        reason(subjects.edge_status("site-1"), b"{}", report_headers(site1, b"{}")),
    }
    assert seen | {"store_failed"} == set(DROP_REASONS)
    assert reason(subjects.edge_status("site-2"), *_signed(_report("site-1"), site2)) == "edge_mismatch"
    assert reason(subjects.edge_status("site-1"), payload, {**headers, subjects.H_SIG: "not base64!"}) == "bad_signature"
    # A signature over the bare bytes (as a segment is signed) is not a report's signature.
    bare = {subjects.H_KEY: site1.key_id, subjects.H_SIG: b64url(site1.sign(payload))}
    assert reason(subjects.edge_status("site-1"), payload, bare) == "bad_signature"
    # Bounds: a naive time, a negative backlog, a zero interval do not decode.
    for bad in (payload.replace(b'+00:00"', b'"').replace(b'Z"', b'"'),
                payload.replace(b'"rows":0', b'"rows":-1'), payload.replace(b'"interval_s":30.0', b'"interval_s":0')):
        assert bad != payload
        assert reason(subjects.edge_status("site-1"), bad, report_headers(site1, bad)) == "malformed"


def test_status_subjects_and_settings() -> None:
    assert subjects.edge_status("site-1") == "vigil.edge.site-1.status"
    assert subjects.parse_status_subject("vigil.edge.site-1.status") == "site-1"
    for subject in ("vigil.edge.site-1.evt", "vigil.edge.Site.status", "vigil.edge.site-1.status.x", "x.edge.a.status"):
        assert subjects.parse_status_subject(subject) is None
    # The hub's status subjects are not the events stream's: a report can never become an event.
    assert all(not s.endswith(".status") for s in subjects.EVENTS_STREAM_SUBJECTS)

    config = load_edge_config(env={}, overrides={"edge_id": "site-1"})
    assert (config.status_report.interval_s, config.status_report.retry_s) == (30.0, 5.0)
    for bad in ({"interval_s": 0}, {"interval_s": 10, "retry_s": 11}, {"retry_s": 0.01}):
        with pytest.raises(ConfigError, match="status_report"):
            load_edge_config(env={}, overrides={"edge_id": "site-1", "status_report": bad})


async def test_journal_reports_its_oldest_waiting_row_per_lane_and_counts_runs(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = await Journal.open(path, max_bytes=1 << 20, retention_s=3600)
    assert await journal.oldest_unforwarded("evt") is None
    old, newer = FakeClock(NOW - timedelta(minutes=10)), FakeClock(NOW - timedelta(minutes=4))
    first = await journal.append(new_envelope("demo.tick", "t", Priority.LOW, DemoTick(1), clock=old))
    await journal.append(new_envelope("demo.tick", "t", Priority.LOW, DemoTick(2), clock=newer))
    await journal.append(new_envelope("demo.tick", "t", Priority.HIGH, DemoTick(3), clock=newer))
    assert await journal.oldest_unforwarded("evt") == old.now()
    assert await journal.oldest_unforwarded("alarm") == newer.now()
    await journal.mark_forwarded("evt", first, first)
    assert await journal.oldest_unforwarded("evt") == newer.now()
    assert [await journal.next_run(), await journal.next_run()] == [1, 2]
    await journal.close()

    journal = await Journal.open(path, max_bytes=1 << 20, retention_s=3600)
    assert await journal.next_run() == 3  # durable: a restart is a later run
    await journal.close()
    with sqlite3.connect(path) as conn:  # the query is answered from the partial index, not a scan
        plan = " ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN SELECT ts FROM journal WHERE lane = 'evt' "
                                                   "AND forwarded_at IS NULL ORDER BY seq LIMIT 1"))
    assert "journal_unforwarded" in plan, plan


# ---------- the hub's store


async def test_the_newest_report_wins_by_run_and_number_never_by_clock(db: asyncpg.Pool) -> None:
    signer = Signer.generate()
    async with db.acquire() as conn:
        await add_edge(conn, "site-1", signer.public_raw)

    async def current() -> tuple[str, int, int, int]:
        row = await db.fetchrow("SELECT epoch, run, report_n, report FROM edge_status WHERE edge_id = 'site-1'")
        report = msgspec.json.decode(row["report"])
        return row["epoch"], row["run"], row["report_n"], report["lanes"]["evt"]["rows"]

    def store(report: EdgeStatusReport) -> Any:
        return store_report(db, report, encode_report(report))

    assert await store(_report(n=5, rows=7))
    assert not await store(_report(n=4, rows=99, sent_at=NOW + timedelta(hours=1)))  # older, though its clock is later
    assert not await store(_report(n=5, rows=99))  # the same report again
    assert await current() == ("e1", 1, 5, 7)
    assert await store(_report(n=6, rows=3, sent_at=NOW - timedelta(hours=1)))  # newer, though its clock went back
    assert await store(_report(run=2, n=1, rows=2))  # the agent restarted
    assert not await store(_report(run=1, n=7, rows=99))  # a late report of the run before
    assert await current() == ("e1", 2, 1, 2)
    assert await store(_report(epoch="e2", run=1, n=1, rows=1))  # a new journal (reinstalled box)
    assert await current() == ("e2", 1, 1, 1)
    assert await db.fetchval("SELECT count(*) FROM edge_status") == 1
    assert await _events(db) == 0


# ---------- GET /api/v1/edges


async def test_edges_api_shows_object_connection_report_and_refusals(db: asyncpg.Pool, api: TestClient) -> None:
    bank = await db.fetchval("INSERT INTO objects (name) VALUES ('Bank') RETURNING id")
    depot = await db.fetchval("INSERT INTO objects (name) VALUES ('Depot') RETURNING id")
    signers = {e: Signer.generate() for e in ("site-1", "site-3", "site-4")}
    async with db.acquire() as conn:
        for edge, signer in signers.items():
            await add_edge(conn, edge, signer.public_raw)
        await revoke_edge(conn, "site-3", "user:1", datetime.now(timezone.utc), None)
    await db.execute("UPDATE edges SET object_id = $1 WHERE edge_id = 'site-1'", bank)
    await db.execute("INSERT INTO edges (edge_id, object_id, created_at) VALUES ('site-2', $1, now())", depot)
    now = datetime.now(timezone.utc)
    for edge in signers:
        await store_report(db, _report(edge, rows=3, sent_at=now), encode_report(_report(edge, rows=3, sent_at=now)))
    # site-4's last report came 2 minutes ago, with reports due every 30 s: not connected any more.
    await db.execute("UPDATE edge_status SET received_at = now() - interval '2 minutes' WHERE edge_id = 'site-4'")
    await db.execute("UPDATE edges SET last_event_at = now() + interval '1 minute' WHERE edge_id = 'site-1'")
    for status in ("HELD", "HELD", "DROPPED"):
        await db.execute("INSERT INTO ingest_quarantine (subject, edge_header, reason, payload_size, status) "
                         "VALUES ('vigil.edge.site-1.evt.0', 'site-1', 'unknown_key', 10, $1)", status)

    body = await json_of(await api.get("/api/v1/edges", headers=as_role("ADMIN")))
    items = {item["edge_id"]: item for item in body["items"]}
    assert list(items) == ["site-1", "site-2", "site-3", "site-4"]
    one = items["site-1"]
    assert one["object"] == {"id": bank, "name": "Bank"} and one["key_id"] == signers["site-1"].key_id
    assert one["connected"] is True and one["refused_segments"] == 2 and one["revoked"] is False
    assert one["last_seen_at"] == one["last_event_at"]  # the later of its last event and its last report
    report = one["report"]
    assert report["lanes"] == {"evt": {"rows": 3, "oldest_age_s": 61.5, "forwarded_per_s": None},
                               "alarm": {"rows": 0, "oldest_age_s": None, "forwarded_per_s": None}}
    assert report["links"] == [{"kind": "satel", "id": "panel-1", "state": "up",
                                "since": (NOW - timedelta(hours=1)).isoformat().replace("+00:00", "Z")}]
    assert (report["epoch"], report["run"], report["n"], report["interval_s"]) == ("e1", 1, 1, 30.0)
    assert datetime.fromisoformat(report["reported_at"]) == now
    assert 0 <= report["age_s"] < 30 and abs(report["clock_skew_s"]) < 30
    pending = items["site-2"]
    assert (pending["key_id"], pending["enrolled_at"], pending["connected"], pending["report"]) == (None, None, False, None)
    assert pending["object"] == {"id": depot, "name": "Depot"} and pending["last_seen_at"] is None
    assert items["site-3"]["revoked"] is True and items["site-3"]["connected"] is False  # a fresh report, but revoked
    four = items["site-4"]
    assert four["connected"] is False and four["report"]["age_s"] >= 119
    assert four["last_seen_at"] == four["report"]["received_at"]

    # Roles that see only assigned objects see only those objects' edges.
    body = await json_of(await api.get("/api/v1/edges", headers=as_role("TECHNICIAN", objects=[bank])))
    assert [item["edge_id"] for item in body["items"]] == ["site-1"]
    body = await json_of(await api.get("/api/v1/edges", headers=as_role("FIELD_WORKER", objects=[])))
    assert body["items"] == []
    spec = await json_of(await api.get("/api/v1/openapi.json", headers=as_role("ADMIN")))
    assert "EdgeList" in str(spec["paths"]["/api/v1/edges"]["get"]["responses"])


# ---------- a real agent, real NATS servers


async def test_a_real_agents_report_carries_its_journals_backlog_and_never_grows_events(
        topology: Topology, db: asyncpg.Pool, api: TestClient) -> None:
    config = topology.edge_config(status_report={"interval_s": 0.5, "retry_s": 0.2})
    await topology.enrol(config)
    # Rows waiting in the box's journal, observed 10 and 4 minutes ago.
    observed = {"evt": datetime.now(timezone.utc) - timedelta(minutes=10),
                "alarm": datetime.now(timezone.utc) - timedelta(minutes=4)}
    journal = await Journal.open(config.journal_path, max_bytes=config.journal.max_bytes, retention_s=3600)
    for i in range(3):
        await journal.append(new_envelope("demo.tick", "t", Priority.LOW, DemoTick(i), clock=FakeClock(observed["evt"])))
    for i in range(2):
        await journal.append(new_envelope("demo.tick", "t", Priority.HIGH, DemoTick(i), clock=FakeClock(observed["alarm"])))
    await journal.close()

    # Only the hub's status listener runs: VIGIL_EVENTS does not exist yet, so nothing is forwarded.
    nc, sub = await _listen(topology, db)
    topology.run_edge(config)
    row = await wait_until(lambda: db.fetchrow("SELECT * FROM edge_status WHERE edge_id = 'site-1'"), timeout=30,
                           what="the agent's first status report")
    assert row["run"] == 1
    item = await _edge_item(api)
    report = item["report"]
    with sqlite3.connect(f"file:{config.journal_path}?mode=ro", uri=True) as conn:
        waiting = conn.execute("SELECT lane, count(*) FROM journal WHERE forwarded_at IS NULL GROUP BY lane").fetchall()
        epoch = conn.execute("SELECT id FROM journal_epoch").fetchone()[0]
    assert {lane: b["rows"] for lane, b in report["lanes"].items()} == dict(waiting) == {"evt": 3, "alarm": 2}
    sent_at = datetime.fromisoformat(report["reported_at"])
    for lane, at in observed.items():
        assert report["lanes"][lane]["oldest_age_s"] == pytest.approx((sent_at - at).total_seconds(), abs=0.002)
    assert report["epoch"] == epoch and report["links"] == [] and report["journal_bytes"] > 0
    assert item["connected"] is True and item["last_event_at"] is None
    assert item["last_seen_at"] == report["received_at"]
    assert abs(report["clock_skew_s"]) < 5
    await sub.unsubscribe()
    await nc.close()

    # The hub proper starts (its own listener, the stream, ingest): the backlog drains, and the
    # reports say so.
    await topology.run_hub(topology.hub_config())
    await topology.wait_events(5, timeout=60)

    async def drained() -> dict[str, Any] | None:
        found = await _edge_item(api)
        lanes = found["report"]["lanes"]
        return found if lanes["evt"]["rows"] == lanes["alarm"]["rows"] == 0 else None

    drained_item = await wait_until(drained, timeout=30, what="a report with nothing waiting")
    assert drained_item["report"]["lanes"]["evt"]["oldest_age_s"] is None
    n = drained_item["report"]["n"]
    await wait_until(lambda: db.fetchval("SELECT report_n >= $1 FROM edge_status", n + 3), timeout=30,
                     what="three more reports")
    assert await _events(db) == 5  # the five journal rows, and not one report
    assert await db.fetchval("SELECT count(*) FROM edge_status") == 1
    assert await db.fetchval("SELECT last_event_at IS NOT NULL FROM edges WHERE edge_id = 'site-1'")


async def test_reports_keep_their_interval_and_the_hub_sees_a_wan_cut(
        topology: Topology, db: asyncpg.Pool, api: TestClient) -> None:
    interval = 0.5
    config = topology.edge_config(status_report={"interval_s": interval, "retry_s": 0.1})
    await topology.enrol(config)
    nc, _sub = await _listen(topology, db)
    topology.run_edge(config)
    sent: dict[int, datetime] = {}

    async def six_reports() -> bool:
        row = await db.fetchrow("SELECT report_n, reported_at FROM edge_status")
        if row is not None:
            sent.setdefault(row["report_n"], row["reported_at"])
        return len(sent) >= 6

    await wait_until(six_reports, timeout=30, interval=0.02, what="six status reports")
    gaps = [(sent[b] - sent[a]).total_seconds() for a, b in zip(sorted(sent), sorted(sent)[1:]) if b == a + 1]
    assert len(gaps) >= 3, sent
    assert min(gaps) >= interval - 0.01, gaps  # never sooner than the interval (timers may fire a hair early)
    assert statistics.median(gaps) < 2 * interval, gaps  # and not much later either

    assert topology.proxy is not None and topology.edge_nats is not None
    unanswered = _unanswered()
    topology.proxy.cut()
    await wait_until(lambda: not topology.edge_nats.leaf_connected(), what="the leaf link to drop")

    async def disconnected() -> dict[str, Any] | None:
        item = await _edge_item(api)
        return None if item["connected"] else item

    item = await wait_until(disconnected, timeout=15, what="the hub to see the edge disconnected")
    assert item["report"]["age_s"] >= 2.5 * interval  # the last report is there, and says how old it is
    await wait_until(lambda: _unanswered() > unanswered, timeout=15, what="an unanswered report at the edge")
    topology.proxy.restore()
    await wait_until(lambda: _connected(api), timeout=30, what="the edge connected again")
    await nc.close()


async def _connected(api: TestClient) -> bool:
    return bool((await _edge_item(api))["connected"])


async def test_a_report_the_hub_did_not_hear_is_sent_again_soon_after_the_link_returns(
        topology: Topology, db: asyncpg.Pool) -> None:
    # Reports are due every minute; the one sent at start is lost to a cut WAN. The hub has one
    # within seconds of the link's return, long before the next minute.
    config = topology.edge_config(status_report={"interval_s": 60, "retry_s": 0.2})
    await topology.enrol(config)
    nc, _sub = await _listen(topology, db)
    assert topology.proxy is not None and topology.edge_nats is not None
    topology.proxy.cut()
    await wait_until(lambda: not topology.edge_nats.leaf_connected(), what="the leaf link to drop")
    unanswered = _unanswered()
    started = time.monotonic()
    topology.run_edge(config)
    await wait_until(lambda: _unanswered() > unanswered, timeout=30, what="the first report to go unanswered")
    assert await db.fetchval("SELECT count(*) FROM edge_status") == 0
    topology.proxy.restore()
    row = await wait_until(lambda: db.fetchrow("SELECT run, report_n FROM edge_status"), timeout=30,
                           what="a report after the link returned")
    assert time.monotonic() - started < 60
    assert row["run"] == 1 and row["report_n"] >= 2  # a retry, not the first report
    await nc.close()


async def test_forged_misdirected_and_older_reports_change_nothing(
        topology: Topology, db: asyncpg.Pool, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    site1, site2, site3, stranger = (Signer.generate() for _ in range(4))
    async with db.acquire() as conn:
        for edge, signer in (("site-1", site1), ("site-2", site2), ("site-3", site3)):
            await add_edge(conn, edge, signer.public_raw)
        await revoke_edge(conn, "site-3", "user:1", datetime.now(timezone.utc), None)
    nc, _sub = await _listen(topology, db)
    caplog.set_level(logging.INFO, logger="vigil")

    async def request(edge: str, report: EdgeStatusReport, signer: Signer) -> None:
        payload, headers = _signed(report, signer)
        await nc.request(subjects.edge_status(edge), payload, timeout=10, headers=headers)  # answered: taken

    async def dropped(reason: str, subject: str, payload: bytes, headers: dict[str, str] | None) -> None:
        before = _dropped(reason)
        await nc.publish(subject, payload, headers=headers)
        await wait_until(lambda: _dropped(reason) > before, timeout=10, what=f"a report dropped as {reason}")

    await request("site-1", _report(n=5, rows=7), site1)
    stored = await db.fetchrow("SELECT * FROM edge_status")

    genuine, headers = _signed(_report(n=9, rows=99), site1)
    forged = report_headers(stranger, genuine)
    await dropped("bad_signature", subjects.edge_status("site-1"), genuine, {**forged, subjects.H_KEY: site1.key_id})
    await dropped("bad_signature", subjects.edge_status("site-1"), genuine, {**forged, subjects.H_KEY: site1.key_id})
    await dropped("unknown_key", subjects.edge_status("site-1"), genuine, forged)
    await dropped("unknown_key", subjects.edge_status("site-2"), genuine, headers)  # site-1's report on site-2's subject
    await dropped("edge_mismatch", subjects.edge_status("site-2"), *_signed(_report("site-1", n=9, rows=99), site2))
    await dropped("revoked_edge", subjects.edge_status("site-3"), *_signed(_report("site-3", n=9), site3))
    await dropped("unknown_edge", subjects.edge_status("site-9"), *_signed(_report("site-9", n=9), stranger))
    await dropped("missing_header", subjects.edge_status("site-1"), genuine, None)
    await dropped("malformed", subjects.edge_status("site-1"), b"[1, 2]", report_headers(site1, b"[1, 2]"))
    assert [dict(r) for r in await db.fetch("SELECT * FROM edge_status")] == [dict(stored)]
    assert await db.fetchval("SELECT count(*) FROM edge_status WHERE edge_id <> 'site-1'") == 0

    # Dropped reports are logged, at most once a minute per edge and reason.
    lines = [r.getMessage() for r in caplog.records if r.name == "vigil.hub.edges.status"]
    assert sum("site-1 dropped (bad_signature)" in line for line in lines) == 1, lines
    assert any("site-2 dropped (edge_mismatch)" in line for line in lines), lines

    # An older report (a delayed message) is answered but does not overwrite the newer one.
    older = _counter("vigil_edge_status_received_total", outcome="older")
    await request("site-1", _report(n=4, rows=1), site1)
    assert _counter("vigil_edge_status_received_total", outcome="older") == older + 1
    assert [dict(r) for r in await db.fetch("SELECT * FROM edge_status")] == [dict(stored)]
    await request("site-1", _report(n=6, rows=2), site1)
    assert await db.fetchval("SELECT report_n FROM edge_status") == 6

    # The agent's own reporter, on this connection: answered; with its journal broken it says so
    # once and sends nothing it cannot vouch for.
    journal = await Journal.open(tmp_path / "journal.db", max_bytes=1 << 20, retention_s=3600)
    reporter = StatusReporter("site-1", journal, site1, nc, lambda: [], load_edge_config(
        env={}, overrides={"edge_id": "site-1"}).status_report)
    assert await reporter.send() == "answered"
    assert await db.fetchval("SELECT (run, report_n, epoch) = (1, 1, $1) FROM edge_status", journal.epoch.id)
    with sqlite3.connect(tmp_path / "journal.db") as conn:
        conn.execute("DROP TABLE journal")
    caplog.clear()
    assert [await reporter.send(), await reporter.send()] == ["failed", "failed"]
    assert sum("journal cannot be read" in r.getMessage() for r in caplog.records) == 1
    assert await db.fetchval("SELECT report_n FROM edge_status") == 1
    await journal.close()
    assert await _events(db) == 0
    await nc.close()
