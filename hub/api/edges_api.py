"""The edges: what each is tied to, whether it is connected now, what it last reported of itself
(journal backlog, links, clock, epoch), and its ingest status: journal epochs, contiguous seq, gaps,
clock skew and refused segments."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import msgspec

from hub.api.app import deps
from hub.api.common import iso
from hub.api.permissions import object_filter
from hub.api.routing import Call, Router
from shared.edge_status import LaneBacklog, LinkReport, decode_report

router = Router()

# A report is due every interval_s; one missed is not yet a disconnection, two and a half are.
CONNECTED_INTERVALS = 2.5

SQL_EDGES = """
SELECT e.edge_id, e.key_id, e.created_at, e.enrolled_at, e.revoked_at, e.last_event_at, e.clock_skew_s,
       e.object_id, o.name AS object_name,
       s.epoch, s.contiguous_seq, s.highest_seq, s.missing,
       st.report, st.reported_at, st.received_at,
       extract(epoch FROM st.reported_at - st.received_at)::float8 AS report_clock_skew_s,
       extract(epoch FROM now() - st.received_at)::float8 AS report_age_s,
       (e.revoked_at IS NULL AND st.received_at > now() - make_interval(secs => $2 * st.interval_s))
           IS TRUE AS connected,
       greatest(e.last_event_at, st.received_at) AS last_seen_at,
       (SELECT count(*) FROM ingest_quarantine q WHERE q.status = 'HELD' AND q.edge_header = e.edge_id) AS refused,
       -- One box can run panels of several objects: an assigned-only caller sees the report's links
       -- of their objects' panels only (NULL: every link).
       CASE WHEN $1::int8[] IS NULL THEN NULL
            ELSE ARRAY(SELECT p.source FROM panels p WHERE p.edge_id = e.edge_id AND p.object_id = ANY($1))
       END AS visible_links
FROM edges e
JOIN edge_seq_status s USING (edge_id)
LEFT JOIN objects o ON o.id = e.object_id
LEFT JOIN edge_status st ON st.edge_id = e.edge_id
WHERE $1::int8[] IS NULL OR e.object_id = ANY($1)
ORDER BY e.edge_id
"""
SQL_EPOCHS = """
SELECT edge_id, epoch, ordinal, start_seq, first_seen_at, last_event_at, contiguous_seq, highest_seq, missing
FROM edge_epoch_status ORDER BY edge_id, ordinal
"""


class EdgeObject(msgspec.Struct):
    id: int
    name: str


class EdgeReport(msgspec.Struct):
    """The edge's latest status report, as the hub received it."""

    reported_at: str  # the edge's clock when it sent the report
    received_at: str  # the hub's (database's) clock when it stored it
    age_s: float  # how long ago the hub received it
    clock_skew_s: float  # edge clock minus hub clock, at that report (transit time included)
    interval_s: float  # the edge sends one this often
    epoch: str
    run: int
    n: int
    lanes: dict[str, LaneBacklog]  # journal rows waiting for the hub, per lane, and the oldest's age
    links: list[LinkReport]
    journal_bytes: int
    version: str


class CatchUp(msgspec.Struct):
    """A connected edge still sending what its journal held: how much, how fast, how long."""

    events: int  # rows waiting in its journal at its last report, both lanes
    forwarded_per_s: float | None  # rows the hub acknowledged per second over the report's interval
    eta_s: float | None  # ~seconds left from now at that rate (None: no rate known yet, or nothing moves)


def catch_up(lanes: dict[str, LaneBacklog], age_s: float) -> CatchUp | None:
    """What a connected edge's report says of its catch-up; None when nothing waits. The time left
    is the report's own estimate less its age, never below zero."""
    events = sum(b.rows for b in lanes.values())
    if not events:
        return None
    rates = [b.forwarded_per_s for b in lanes.values() if b.forwarded_per_s is not None]
    rate = round(sum(rates), 1) if rates else None
    eta = round(max(0.0, events / rate - age_s), 1) if rate else None
    return CatchUp(events=events, forwarded_per_s=rate, eta_s=eta)


class EdgeEpoch(msgspec.Struct):
    epoch: str
    ordinal: int
    start_seq: int
    first_seen_at: str | None
    last_event_at: str | None
    contiguous_seq: int
    highest_seq: int
    missing: int


class EdgeItem(msgspec.Struct):
    edge_id: str
    object: EdgeObject | None
    key_id: str | None  # None until the box enrols
    created_at: str
    enrolled_at: str | None
    revoked: bool
    revoked_at: str | None
    connected: bool
    last_seen_at: str | None
    last_event_at: str | None
    clock_skew_s: float | None  # from the freshest event of the newest batch
    epoch: str | None
    contiguous_seq: int
    highest_seq: int
    missing: int
    refused_segments: int
    report: EdgeReport | None
    catching_up: CatchUp | None  # connected with rows waiting in its journal (§3 "Catch-up")
    epochs: list[EdgeEpoch]


class EdgeList(msgspec.Struct):
    items: list[EdgeItem]


def _report(row: Any) -> EdgeReport | None:
    if row["report"] is None:
        return None
    r = decode_report(row["report"].encode())
    visible = row["visible_links"]
    links = r.links if visible is None else [link for link in r.links if link.id in visible]
    return EdgeReport(reported_at=row["reported_at"].isoformat(), received_at=row["received_at"].isoformat(),
                      age_s=round(row["report_age_s"], 3), clock_skew_s=round(row["report_clock_skew_s"], 3),
                      interval_s=r.interval_s, epoch=r.epoch, run=r.run, n=r.n, lanes=r.lanes, links=links,
                      journal_bytes=r.journal_bytes, version=r.version)


def _epoch(row: Any) -> EdgeEpoch:
    return EdgeEpoch(epoch=row["epoch"], ordinal=row["ordinal"], start_seq=row["start_seq"],
                     first_seen_at=iso(row["first_seen_at"]), last_event_at=iso(row["last_event_at"]),
                     contiguous_seq=row["contiguous_seq"], highest_seq=row["highest_seq"], missing=row["missing"])


@router.get("/api/v1/edges", permission="objects.view", response=EdgeList, tags=("edges",))
async def edges_status(call: Call) -> EdgeList:
    """Every edge (assigned-only roles: those of their objects, and of each report only the links
    of their objects' panels): its object, enrolled key and enrolment, whether it is connected,
    when last seen, its latest status report, how many of its segments wait in quarantine, its
    current journal epoch's highest contiguous committed seq, how many seqs are missing over all
    its epochs, and its epochs.

    `connected` means a status report arrived within 2.5 report intervals (and the edge is not
    revoked). Reports travel only over the edge's leaf link, so this is an honest "leaf link
    connected", not a guess from the last event. `last_seen_at` is the later of its last event and
    its last report. `catching_up` is set for a connected edge whose report has rows waiting: how
    many, the rate the hub acknowledged them at, and about how long is left."""
    pool = deps(call).pool
    epochs: dict[str, list[EdgeEpoch]] = defaultdict(list)
    for r in await pool.fetch(SQL_EPOCHS):
        epochs[r["edge_id"]].append(_epoch(r))
    items = []
    for r in await pool.fetch(SQL_EDGES, object_filter(call.user), CONNECTED_INTERVALS):
        report = _report(r)
        catching = catch_up(report.lanes, report.age_s) if report is not None and r["connected"] else None
        items.append(EdgeItem(
            edge_id=r["edge_id"],
            object=None if r["object_id"] is None else EdgeObject(r["object_id"], r["object_name"]),
            key_id=r["key_id"], created_at=r["created_at"].isoformat(), enrolled_at=iso(r["enrolled_at"]),
            revoked=r["revoked_at"] is not None, revoked_at=iso(r["revoked_at"]), connected=r["connected"],
            last_seen_at=iso(r["last_seen_at"]), last_event_at=iso(r["last_event_at"]),
            clock_skew_s=r["clock_skew_s"], epoch=r["epoch"], contiguous_seq=r["contiguous_seq"],
            highest_seq=r["highest_seq"], missing=r["missing"], refused_segments=r["refused"],
            report=report, catching_up=catching, epochs=epochs[r["edge_id"]]))
    return EdgeList(items)
