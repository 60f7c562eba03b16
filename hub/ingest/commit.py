"""Writes one ingest batch in one transaction: the accepted events, their lifecycle effects, the
quarantined segments, and the outbox rows, in that order (the outbox last; see hub.db.outbox).

De-duplication is by identity only (docs/architecture.md §6): an envelope is a duplicate when its
(edge, journal epoch, seq) is already committed, or its id is stored; one physical occurrence
that arrives by two paths (an `occurrence` key) is stored once. Clocks never decide.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import msgspec
from prometheus_client import Gauge

from hub.alarms.apply import IngestedEvent, apply_lifecycle, raise_system_alarms
from hub.alarms.classify import Meaning, classify
from hub.commands.repository import ResultEvent, apply_results
from hub.db.bulk import rows_json
from hub.db.outbox import OutboxItem, write_outbox
from hub.probe import probe_outbox
from hub.ingest.partitions import Fence, PartitionLost
from hub.robots.ingest import PREFIX as ROBOT_PREFIX, RobotEvent, apply_robot_events
from hub.sms import archive as sms_archive
from hub.ingest.verify import Accepted, Rejected
from shared.bodies.gsm import RAW_KIND
from shared.commands import RESULT_KIND, CommandResult
from shared.envelope import Envelope

log = logging.getLogger("vigil.hub.ingest.commit")

INGEST_LAG = Gauge("vigil_ingest_lag_seconds",
                   "Per edge, its latest batch: commit time minus the ts of its oldest envelope in the batch", ["edge"])

# Order keys: the journal epoch's ordinal in the high bits, the seq below (2^40 seqs an epoch is
# 35 years at 1,000 events/s).
EPOCH_SHIFT = 40
# How far an edge's ts may be from the hub's receive time before the hub stops trusting it for
# windows and partition placement.
DEFAULT_CLOCK_TOLERANCE = timedelta(minutes=5)

# An advisory lock on one bigint key shows in pg_locks as classid = high 32 bits, objid = low.
SQL_FENCE = """
SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $2
               AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1)
"""
# Edge rows are locked in a fixed order first: two lanes' batches touching the same edges would
# otherwise lock them in arbitrary order and could deadlock.
SQL_LOCK_EDGES = "SELECT edge_id FROM edges WHERE edge_id = ANY($1::text[]) ORDER BY edge_id FOR UPDATE"

# The batch's journal epochs, creating the ones seen for the first time (numbered after the
# edge's newest, in the order the batch carries them; the edge rows are locked, so no race).
SQL_EPOCHS = """
WITH wanted AS (
    SELECT * FROM json_to_recordset($1::json) AS w(edge_id text, epoch text, start_seq int8, pos int4)
), created AS (
    INSERT INTO edge_epochs (edge_id, epoch, ordinal, start_seq, first_seen_at)
    SELECT w.edge_id, w.epoch,
           coalesce((SELECT max(x.ordinal) FROM edge_epochs x WHERE x.edge_id = w.edge_id), 0)
             + row_number() OVER (PARTITION BY w.edge_id ORDER BY w.pos),
           w.start_seq, $2
    FROM wanted w
    WHERE NOT EXISTS (SELECT 1 FROM edge_epochs x WHERE x.edge_id = w.edge_id AND x.epoch = w.epoch)
    RETURNING edge_id, epoch, ordinal, start_seq
)
SELECT edge_id, epoch, ordinal, start_seq, true AS created FROM created
UNION ALL
SELECT x.edge_id, x.epoch, x.ordinal, x.start_seq, false FROM edge_epochs x JOIN wanted w USING (edge_id, epoch)
"""
SQL_AUDIT_EPOCH = """
INSERT INTO audit_log (at, actor, action, target_type, target_id, details)
VALUES ($1, 'system:ingest', 'edge.epoch.started', 'edge', $2,
        jsonb_build_object('epoch', $3::text, 'ordinal', $4::int, 'start_seq', $5::int8))
"""

# Envelopes whose (edge, epoch, seq) is committed are skipped before anything else; then each
# occurrence key is claimed, and an envelope whose key another event holds is merged into it
# (counted on the occurrence row, not stored again). Returns how many envelopes were not
# duplicates, and the ids of those stored (the rest were merged).
SQL_INSERT_EVENTS = """
WITH x AS (
    SELECT * FROM json_to_recordset($1::json) AS x(id uuid, edge_id text, epoch text, seq int8, ts timestamptz,
        kind text, source text, priority text, corr text, body jsonb, lane text, occurrence text, ts_suspect bool,
        merged bool)
), fresh AS (
    SELECT x.* FROM x JOIN edge_epochs ep ON ep.edge_id = x.edge_id AND ep.epoch = x.epoch
    WHERE NOT ep.committed @> x.seq
), claimed AS (
    INSERT INTO event_occurrences (edge_id, occurrence, event_id)
    SELECT edge_id, occurrence, id FROM fresh WHERE occurrence IS NOT NULL AND NOT merged
    ON CONFLICT (edge_id, occurrence) DO UPDATE SET merged = event_occurrences.merged + 1
    RETURNING edge_id, occurrence, event_id
), stored AS (
    INSERT INTO events (id, edge_id, epoch, seq, ts, minute, kind, source, priority, corr, body, lane, occurrence,
                        ts_suspect, received_at)
    SELECT f.id, f.edge_id, f.epoch, f.seq, f.ts,
           -- the partition key: the minute of the window time (hub.ingest.commit.window_time)
           date_trunc('minute', CASE WHEN f.ts_suspect THEN $2 ELSE f.ts END, 'UTC'),
           f.kind, f.source, f.priority, f.corr, f.body, f.lane, f.occurrence, f.ts_suspect, $2
    FROM fresh f LEFT JOIN claimed c ON c.edge_id = f.edge_id AND c.occurrence = f.occurrence
    WHERE NOT f.merged AND (f.occurrence IS NULL OR c.event_id = f.id)
    ON CONFLICT DO NOTHING
    RETURNING id
)
-- Counts and ids only: matching `stored` back to `fresh` row by row would cost O(n²) on CTE scans.
SELECT (SELECT count(*) FROM fresh) AS fresh, (SELECT coalesce(array_agg(id::text), '{}') FROM stored) AS stored
"""

# Every seq the batch carried is now handled (stored, merged, or dropped as a duplicate), so all of
# them join their epoch's committed ranges: a dropped duplicate must not look like a gap.
# The seqs travel as the few runs they form (hub.ingest.commit.seq_runs), not one row each.
SQL_COMMITTED = """
UPDATE edge_epochs ep SET committed = ep.committed + agg.mr, last_event_at = greatest(ep.last_event_at, $2)
FROM (SELECT edge_id, epoch, range_agg(int8range(lo, hi, '[]')) AS mr
      FROM json_to_recordset($1::json) AS u(edge_id text, epoch text, lo int8, hi int8)
      GROUP BY edge_id, epoch) agg
WHERE ep.edge_id = agg.edge_id AND ep.epoch = agg.epoch
"""
SQL_EDGE_SEEN = """
UPDATE edges e SET last_event_at = greatest(e.last_event_at, u.last_at), clock_skew_s = u.skew
FROM json_to_recordset($1::json) AS u(edge_id text, last_at timestamptz, skew float8)
WHERE e.edge_id = u.edge_id
"""

# What people did to a panel through an edge (a command given, a DLOADX release) is audited at the
# hub too, under the edge and the person it names.
AUDITED_KINDS = {"satel.command": "panel.command", RESULT_KIND: "panel.command",
                 "edge.link.released": "panel.released"}
SQL_AUDIT_EDGE_ACTIONS = """
INSERT INTO audit_log (at, actor, action, target_type, target_id, details)
SELECT $1, u.actor, u.action, 'panel', u.target, u.details
FROM json_to_recordset($2::json) AS u(actor text, action text, target text, details jsonb)
"""

# A refused segment (or one envelope no table would take) is kept whole in the quarantine with
# its headers and reason, for `python -m hub quarantine replay` once the cause is fixed; it is a
# security event, so it is audited too.
SQL_QUARANTINE = """
WITH q AS (
    INSERT INTO ingest_quarantine (at, subject, edge_header, key_id, seq_range, reason, detail, payload_size,
                                   stream_seq, headers, payload, envelope_seq)
    VALUES ($9, $1, $2, $3, $4, $5, $6, $7, $8, $10::jsonb, $11, $12)
    RETURNING id
), a AS (
    INSERT INTO audit_log (at, actor, action, target_type, target_id, details)
    SELECT $9, 'system:ingest', 'envelope.rejected', 'edge', coalesce($2, '?'),
           jsonb_build_object('quarantine_id', q.id, 'reason', $5::text, 'subject', $1::text, 'key_id', $3::text,
                              'seq', $4::text, 'envelope_seq', $12::int8)
    FROM q
)
SELECT id FROM q
"""

# Kinds the lifecycle may care about; others (demo ticks, telemetry) skip body decoding.
_LIFECYCLE_PREFIXES = ("satel.", "sms.", "edge.link.", "edge.local.ack", "edge.journal.refused", "robot.alarm.",
                       "robot.restore.")
_NUL = "\x00"
_REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class RejectRecord:
    """A segment to quarantine: the verdict, and everything needed to replay it."""

    subject: str
    rejected: Rejected
    payload: bytes
    headers: dict[str, str]
    stream_seq: int | None
    envelope_seq: int | None = None  # set when one envelope of an accepted segment was unstorable


@dataclass
class BatchResult:
    """What one committed batch did."""

    stored: int = 0
    duplicates: int = 0
    merged: int = 0
    quarantine_ids: list[int] = field(default_factory=list)


def _text(value: str) -> str:
    """PostgreSQL text holds no NUL: a device's stray NUL must not make an event unstorable."""
    return value.replace(_NUL, _REPLACEMENT) if _NUL in value else value


def _body(raw: msgspec.Raw) -> bytes:
    """The body as JSON PostgreSQL's jsonb accepts: `\\u0000` escapes are replaced likewise."""
    data = bytes(raw)
    return data.replace(b"\\u0000", b"\\ufffd") if b"\\u0000" in data else data


def window_time(ts: datetime, received_at: datetime, tolerance: timedelta) -> tuple[datetime, bool]:
    """The time the hub files an event under (bundling windows, partition) and whether its ts is
    suspect: the edge's ts, unless it is further than `tolerance` from the hub's receive time."""
    suspect = abs(ts - received_at) > tolerance
    return (received_at if suspect else ts), suspect


def seq_runs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows' seqs per (edge, epoch) as runs of consecutive seqs, `lo`..`hi` inclusive: a
    batch is almost always one run per edge, so committing it costs one range, not a row each."""
    runs: list[dict[str, Any]] = []
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:  # in stream order: each edge's seqs rising, so a batch is a run or a few
        key = (r["edge_id"], r["epoch"])
        run = last.get(key)
        if run is not None and run["hi"] + 1 == r["seq"]:
            run["hi"] = r["seq"]
        else:
            last[key] = run = {"edge_id": key[0], "epoch": key[1], "lo": r["seq"], "hi": r["seq"]}
            runs.append(run)
    return runs


def order_key(ordinal: int, seq: int) -> int:
    """The order of an edge's events across journal epochs: epoch first, then seq."""
    return (ordinal << EPOCH_SHIFT) + seq


async def commit_batch(
    conn: asyncpg.Connection, accepted: list[Accepted], rejects: list[RejectRecord], now: datetime | None = None,
    *, clock_tolerance: timedelta = DEFAULT_CLOCK_TOLERANCE, fence: Fence | None = None,
) -> BatchResult:
    """Insert the accepted envelopes, apply the lifecycle to the new ones, quarantine the rejects
    and write the outbox, all in one transaction. With a `fence`, the transaction first checks
    that this process still holds the partition (raises PartitionLost, committing nothing)."""
    now = now or datetime.now(timezone.utc)
    result = BatchResult()
    async with conn.transaction():
        # A hub whose lock connection dropped may still be finishing a batch while another hub
        # took the partition over: it must not commit. (Identity de-duplication would keep the
        # data single anyway; the fence keeps the order of application single too.)
        if fence is not None and not await conn.fetchval(SQL_FENCE, fence.key, fence.pid):
            raise PartitionLost(f"the lock of this partition is no longer held by backend {fence.pid}")
        outbox: list[OutboxItem] = []
        if accepted:
            await conn.execute(SQL_LOCK_EDGES, sorted({s.edge_id for s in accepted}))
            epochs = await _epochs(conn, accepted, now)
            rows, pending, robot_events, skew = _rows(accepted, epochs, now, clock_tolerance)
            payload = rows_json(rows)
            outcome = await conn.fetchrow(SQL_INSERT_EVENTS, payload, now)
            stored = set(outcome["stored"])
            # The raw SMS text and full sender go to their archive only (hub.sms.archive).
            await sms_archive.archive(conn, [r["archive"] for r in rows if r.get("archive") and r["id"] in stored], now)
            await conn.execute(SQL_COMMITTED, rows_json(seq_runs(rows)), now)
            await conn.execute(SQL_EDGE_SEEN, rows_json(
                {"edge_id": edge, "last_at": now, "skew": s} for edge, s in skew.items()))
            audited = [_audit_row(r) for r in rows if r["kind"] in AUDITED_KINDS and r["id"] in stored]
            if audited:
                await conn.execute(SQL_AUDIT_EDGE_ACTIONS, now, rows_json(audited))
            inserted = [pending[i] for i in pending if i in stored]
            result.stored = len(stored)
            result.merged = outcome["fresh"] - result.stored
            result.duplicates = sum(len(s.envelopes) for s in accepted) - outcome["fresh"]
            outbox = await apply_lifecycle(conn, inserted, now)
            # A panel command's result settles the command it names (hub.commands).
            outbox += await apply_results(conn, [res for r in rows if r["kind"] == RESULT_KIND and r["id"] in stored
                                                 and (res := _command_result(r, now)) is not None], now)
            # Robots' registry, snapshots, telemetry and command acks (hub.robots.ingest).
            outbox += await apply_robot_events(conn, [e for e in robot_events if e.id in stored], now)
            # A probe edge's probe.tick, for the hub's own stream client only (hub.probe).
            outbox += await probe_outbox(conn, rows, stored)
        for r in rejects:
            result.quarantine_ids.append(await _quarantine(conn, r, now))
        outbox += await raise_system_alarms(
            conn, [(_opt_text(r.rejected.edge_header) or "?", f"segments refused ({r.rejected.reason})") for r in rejects],
            now)
        await write_outbox(conn, outbox)
    # Only once committed. A quarantine replay is a commit like any: it shows the age of what it
    # finally stored.
    for edge, lag in ingest_lags(accepted, now).items():
        INGEST_LAG.labels(edge).set(lag)
    return result


def ingest_lags(accepted: list[Accepted], now: datetime) -> dict[str, float]:
    """Per edge, `now` minus the ts of its oldest envelope among `accepted`: the longest any of
    them waited between the edge's journal and this commit. An edge clock ahead of the hub's
    would make it negative; it counts as no wait (vigil_edge_clock_skew_seconds shows the clock)."""
    lags: dict[str, float] = {}
    for seg in accepted:
        if seg.envelopes:
            oldest = min(env.ts for env in seg.envelopes)
            lags[seg.edge_id] = max(lags.get(seg.edge_id, 0.0), (now - oldest).total_seconds())
    return lags


async def _epochs(conn: asyncpg.Connection, accepted: list[Accepted], now: datetime) -> dict[tuple[str, str], int]:
    """Each (edge, epoch) of the batch → its ordinal; a new epoch is logged and audited."""
    wanted: dict[tuple[str, str], dict[str, Any]] = {}
    for pos, seg in enumerate(accepted):
        wanted.setdefault((seg.edge_id, seg.epoch.id),
                          {"edge_id": seg.edge_id, "epoch": seg.epoch.id, "start_seq": seg.epoch.start, "pos": pos})
    out = {}
    for r in await conn.fetch(SQL_EPOCHS, rows_json(wanted.values()), now):
        out[(r["edge_id"], r["epoch"])] = r["ordinal"]
        if r["created"]:
            await conn.execute(SQL_AUDIT_EPOCH, now, r["edge_id"], r["epoch"], r["ordinal"], r["start_seq"])
            log.warning("edge %s started journal epoch %s at seq %d", r["edge_id"], r["epoch"], r["start_seq"],
                        extra={"edge": r["edge_id"], "epoch": r["epoch"]})
    return out


def _rows(accepted: list[Accepted], epochs: dict[tuple[str, str], int], now: datetime, tolerance: timedelta
          ) -> tuple[list[dict[str, Any]], dict[str, IngestedEvent], list[RobotEvent], dict[str, float]]:
    """The batch's event rows, each envelope once (a segment delivered twice in one batch, or two
    envelopes of one occurrence, keep the first), the lifecycle's view of those it may care
    about, the robot events, and each edge's clock skew (ts − receive time of its freshest
    envelope)."""
    rows: list[dict[str, Any]] = []
    pending: dict[str, IngestedEvent] = {}
    robot_events: list[RobotEvent] = []
    seen_seqs: set[tuple[str, str, int]] = set()
    seen_occurrences: set[tuple[str, str]] = set()
    skew: dict[str, float] = {}
    for seg in accepted:
        ordinal = epochs[(seg.edge_id, seg.epoch.id)]
        freshest = max(env.ts for env in seg.envelopes)
        skew[seg.edge_id] = max(skew.get(seg.edge_id, float("-inf")), (freshest - now).total_seconds())
        for env in seg.envelopes:
            if (seg.edge_id, seg.epoch.id, env.seq) in seen_seqs:
                continue
            seen_seqs.add((seg.edge_id, seg.epoch.id, env.seq))
            occurrence = _opt_text(env.occurrence)
            # A second envelope of an occurrence already in this batch is merged like one whose
            # occurrence is stored: nothing stored, its seq committed like any other.
            merged = occurrence is not None and (seg.edge_id, occurrence) in seen_occurrences
            if occurrence is not None:
                seen_occurrences.add((seg.edge_id, occurrence))
            event_id = str(env.id)
            at, suspect = window_time(env.ts, now, tolerance)
            rows.append({
                "id": event_id, "edge_id": seg.edge_id, "epoch": seg.epoch.id, "seq": env.seq, "ts": env.ts,
                "kind": _text(env.kind), "source": _text(env.source), "priority": env.priority.value,
                "corr": _opt_text(env.corr), "body": msgspec.Raw(_body(env.body)), "lane": seg.lane,
                "occurrence": occurrence, "ts_suspect": suspect, "merged": merged,
            })
            if env.kind == RAW_KIND:
                rows[-1]["archive"] = sms_archive.redact(rows[-1])
            if not merged and env.kind.startswith(_LIFECYCLE_PREFIXES):
                pending[event_id] = IngestedEvent(event_id, seg.edge_id, order_key(ordinal, env.seq), at, env.kind,
                                                  env.source, env.priority.value, _meaning(env))
            if not merged and env.kind.startswith(ROBOT_PREFIX):
                robot_events.append(RobotEvent(event_id, seg.edge_id, order_key(ordinal, env.seq), at, rows[-1]["kind"],
                                               rows[-1]["source"], _body(env.body)))
    return rows, pending, robot_events, skew


def _meaning(env: Envelope) -> Meaning:
    try:
        body = msgspec.json.decode(env.body)
    except msgspec.DecodeError:
        body = {}
    return classify(env.kind, body if isinstance(body, dict) else {})


def _command_result(row: dict[str, Any], now: datetime) -> ResultEvent | None:
    """The `cmd.result` row as a typed result, or None when its body is not one (it stays stored
    as an event; it just settles nothing)."""
    try:
        body = msgspec.json.decode(bytes(row["body"]), type=CommandResult)
    except (msgspec.DecodeError, msgspec.ValidationError):
        log.warning("edge %s: a cmd.result event with an unreadable body", row["edge_id"],
                    extra={"edge": row["edge_id"], "event_id": row["id"]})
        return None
    # When the edge says it happened, unless its clock is off (then when the hub heard).
    return ResultEvent(row["edge_id"], row["id"], now if row["ts_suspect"] else row["ts"],
                       body)


def _audit_row(row: dict[str, Any]) -> dict[str, Any]:
    """The audit entry for an audited event row: the edge and who it says acted, on which panel."""
    try:
        body = msgspec.json.decode(row["body"])
    except msgspec.DecodeError:
        body = {}
    who = body.get("who") if isinstance(body, dict) and isinstance(body.get("who"), str) else "?"
    details = {"event_id": row["id"], "body": body if isinstance(body, dict) else {}}
    return {"actor": _text(f"edge:{row['edge_id']}:{who}"), "action": AUDITED_KINDS[row["kind"]],
            "target": f"{row['edge_id']}/{row['source']}", "details": details}


def _opt_text(value: str | None) -> str | None:
    return _text(value) if value is not None else None


async def _quarantine(conn: asyncpg.Connection, r: RejectRecord, now: datetime) -> int:
    """Keep a refused segment whole; its text fields come from anyone able to publish, so they
    are made storable first (a NUL must not turn a refusal into a stuck partition)."""
    v = r.rejected
    headers = {_text(k): _text(val) for k, val in r.headers.items()}
    return await conn.fetchval(
        SQL_QUARANTINE, _text(r.subject), _opt_text(v.edge_header), _opt_text(v.key_id), _opt_text(v.seq_range),
        v.reason, _text(v.detail[:1000]), len(r.payload), r.stream_seq, now,
        msgspec.json.encode(headers).decode(), r.payload, r.envelope_seq,
    )
