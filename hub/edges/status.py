"""Edges' status reports at the hub: verified like segments, kept as one latest row per edge in
`edge_status`, never in `events` (shared/edge_status.py, docs/architecture.md §4).

Every hub process subscribes to `vigil.edge.*.status` in one queue group, so each report is taken
once. A report that is not signed by its edge's enrolled key, comes from an unknown or revoked edge,
names another edge than its subject, or does not decode is dropped with a log line (at most one a
minute per edge and reason) and a count in `vigil_edge_status_dropped_total` — never stored. A
stored report, or one older than the stored one, is answered, so the edge knows it was heard.

The stored reports also give each edge's journal backlog as of now (`lane_backlogs`), which
hub.db_gauges exports.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

import asyncpg
import msgspec
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import Counter

from hub.db.errors import DB_ERRORS
from hub.ingest.edge_keys import EdgeKeyCache
from hub.ingest.verify import EdgeKey
from shared import subjects
from shared.edge_status import EdgeStatusReport, StatusAnswer, decode_report, encode_answer, signature_valid

log = logging.getLogger("vigil.hub.edges.status")

QUEUE_GROUP = "hub-edge-status"
# Reports waiting for this process at most (the subscription's bounded queue); beyond it the NATS
# client drops them as a slow consumer and says so through the connection's error callback.
PENDING_REPORTS = 4096
DROP_LOG_EVERY_S = 60.0

DROP_REASONS = ("bad_subject", "missing_header", "unknown_edge", "revoked_edge", "unknown_key", "bad_signature",
                "malformed", "edge_mismatch", "store_failed")

RECEIVED = Counter("vigil_edge_status_received_total", "Edge status reports taken: stored, or older than the stored one",
                   ["outcome"])
DROPPED = Counter("vigil_edge_status_dropped_total", "Edge status reports dropped unstored", ["reason"])

# Newer means a later (run, n) of the same journal epoch, or another epoch (a new journal): never
# the edge's clock, which may have been stepped back.
SQL_STORE = """
INSERT INTO edge_status AS s (edge_id, epoch, run, report_n, interval_s, report, reported_at, received_at)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, now())
ON CONFLICT (edge_id) DO UPDATE
SET epoch = excluded.epoch, run = excluded.run, report_n = excluded.report_n, interval_s = excluded.interval_s,
    report = excluded.report, reported_at = excluded.reported_at, received_at = excluded.received_at
WHERE s.epoch <> excluded.epoch OR (excluded.run, excluded.report_n) > (s.run, s.report_n)
RETURNING edge_id
"""
# Each enrolled edge's backlog per lane from its latest report, and how long ago the hub took that
# report. Only the lanes the hub knows: a report's lane names are the edge's to choose.
SQL_BACKLOGS = """
SELECT s.edge_id, l.lane, (l.backlog->>'rows')::int8 AS rows, (l.backlog->>'oldest_age_s')::float8 AS oldest_age_s,
       greatest(0, extract(epoch FROM $1::timestamptz - s.received_at))::float8 AS since_s,
       (s.report->>'interval_s')::float8 AS interval_s
FROM edge_status s
JOIN edges e ON e.edge_id = s.edge_id AND e.revoked_at IS NULL
CROSS JOIN LATERAL jsonb_each(s.report->'lanes') AS l(lane, backlog)
WHERE l.lane = ANY($2::text[])
ORDER BY s.edge_id, l.lane
"""


@dataclass(frozen=True)
class LaneBacklogNow:
    """One lane of an edge's journal as the hub sees it now: rows waiting, and the age of the
    oldest of them (0 with none waiting)."""

    edge: str
    lane: str
    rows: int
    oldest_age_s: float


async def lane_backlogs(pool: asyncpg.Pool | asyncpg.Connection, now: datetime) -> list[LaneBacklogNow]:
    """Every enrolled edge's backlog per lane, from its latest report, aged by `backlog_age`."""
    return [LaneBacklogNow(r["edge_id"], r["lane"], r["rows"],
                           backlog_age(r["rows"], r["oldest_age_s"], r["since_s"], r["interval_s"]))
            for r in await pool.fetch(SQL_BACKLOGS, now, list(subjects.LANES))]


def backlog_age(rows: int, oldest_age_s: float | None, since_s: float, interval_s: float | None) -> float:
    """The age of a lane's oldest unforwarded row as the hub can tell it, `since_s` after the
    edge's latest report. With rows waiting then: their age then plus the time since, so an edge
    cut off with rows waiting keeps ageing. With none: 0 while the reports come; once the next one
    is overdue (a WAN cut, a dead box), whatever the edge journaled since the last report is
    unseen, so it counts as waiting since the report that did not come — else an edge that kept up
    until its WAN was cut would show no backlog for the whole cut (chaos CH-05)."""
    if rows > 0 and oldest_age_s is not None:
        return oldest_age_s + since_s
    return max(0.0, since_s - interval_s) if interval_s else 0.0


@dataclass(frozen=True)
class Dropped:
    """Why a report is not stored; `reason` is one of DROP_REASONS."""

    reason: str
    detail: str


def verify_report(subject: str, headers: Mapping[str, str] | None, payload: bytes,
                  keys: Mapping[str, EdgeKey]) -> EdgeStatusReport | Dropped:
    """Check one report against the enrolled keys: pure, so every reason is tested with values."""
    edge = subjects.parse_status_subject(subject)
    if edge is None:
        return Dropped("bad_subject", f"not an edge status subject: {subject[:200]}")
    headers = headers or {}
    key_h, sig_h = headers.get(subjects.H_KEY), headers.get(subjects.H_SIG)
    if not (key_h and sig_h):
        return Dropped("missing_header", "a status report needs Vigil-Key and Vigil-Sig")
    key = keys.get(edge)
    if key is None:
        return Dropped("unknown_edge", f"edge {edge!r} is not enrolled")
    if key.revoked:
        return Dropped("revoked_edge", f"edge {edge!r} is revoked")
    if key.key_id != key_h:
        return Dropped("unknown_key", f"key {key_h[:60]!r} is not edge {edge!r}'s enrolled key {key.key_id!r}")
    if not signature_valid(key.public_key, sig_h, payload):
        return Dropped("bad_signature", "signature does not match the report bytes")
    try:
        report = decode_report(payload)
    except msgspec.DecodeError as exc:  # ValidationError is one too
        return Dropped("malformed", str(exc))
    if report.edge != edge:
        return Dropped("edge_mismatch", f"report names edge {report.edge[:80]!r}, published on {edge!r}'s subject")
    return report


async def store_report(pool: asyncpg.Pool | asyncpg.Connection, report: EdgeStatusReport, payload: bytes) -> bool:
    """Keep `report` as its edge's latest; False when the stored one is newer (nothing changes)."""
    stored = await pool.fetchval(SQL_STORE, report.edge, report.epoch, report.run, report.n, report.interval_s,
                                 payload.decode(), report.sent_at)
    return stored is not None


class StatusListener:
    """Takes the reports one subscription delivers, in order."""

    def __init__(self, pool: asyncpg.Pool, keys: EdgeKeyCache) -> None:
        self._pool = pool
        self._keys = keys
        self._logged: dict[tuple[str, str], float] = {}

    async def handle(self, msg: Msg) -> None:
        """Verify, store and answer one report; a bad one is dropped, counted and logged."""
        edge = subjects.parse_status_subject(msg.subject)
        try:
            keys = await self._keys.keys_for({edge}) if edge else {}
            result = verify_report(msg.subject, msg.headers, msg.data, keys)
            if isinstance(result, Dropped):
                self._drop(edge, result)
                return
            stored = await store_report(self._pool, result, msg.data)
        except DB_ERRORS as exc:
            # Not answered: the edge sends it again shortly.
            self._drop(edge, Dropped("store_failed", f"{type(exc).__name__}: {exc}"))
            return
        RECEIVED.labels("stored" if stored else "older").inc()
        if msg.reply:
            try:
                await msg.respond(encode_answer(StatusAnswer(datetime.now(timezone.utc))))
            except nats.errors.Error as exc:  # stored all the same; the edge only sends it again
                log.info("could not answer edge %s's status report: %s", edge, exc, extra={"edge": edge})

    def _drop(self, edge: str | None, dropped: Dropped) -> None:
        DROPPED.labels(dropped.reason).inc()
        key = (edge or "?", dropped.reason)
        now = time.monotonic()
        if now - self._logged.get(key, float("-inf")) < DROP_LOG_EVERY_S:
            return
        if len(self._logged) > 10_000:  # bounded: forget old entries rather than grow
            self._logged.clear()
        self._logged[key] = now
        log.warning("status report of edge %s dropped (%s): %s", edge or "?", dropped.reason, dropped.detail,
                    extra={"edge": edge, "reason": dropped.reason})


async def listen_for_status(nc: NatsClient, pool: asyncpg.Pool, keys: EdgeKeyCache) -> Subscription:
    """Subscribe this hub process to every edge's status reports (in the queue group); draining
    the connection at shutdown finishes the reports already received."""
    listener = StatusListener(pool, keys)
    return await nc.subscribe(subjects.EDGE_STATUS_SUBJECTS, queue=QUEUE_GROUP, cb=listener.handle,
                              pending_msgs_limit=PENDING_REPORTS)
