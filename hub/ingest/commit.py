"""Writes one ingest batch in one transaction: the accepted events, their lifecycle effects, the
refused segments, and the outbox rows, in that order (the outbox last; see hub.db.outbox)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import asyncpg
import msgspec

from hub.alarms.apply import IngestedEvent, apply_lifecycle
from hub.db.bulk import rows_json
from hub.alarms.classify import NOTHING, classify, dedup_key
from hub.db.outbox import write_outbox
from hub.ingest.verify import Accepted, Rejected

# Edge rows are locked in a fixed order first: two lanes' batches touching the same edges would
# otherwise lock them in arbitrary order and could deadlock.
SQL_LOCK_EDGES = "SELECT edge_id FROM edges WHERE edge_id = ANY($1::text[]) ORDER BY edge_id FOR UPDATE"

# Duplicates (same id, a seq this edge already committed, or the same alarm reported twice in a
# minute) are skipped; RETURNING lists what was new.
SQL_INSERT_EVENTS = """
INSERT INTO events (id, edge_id, seq, ts, minute, kind, source, priority, corr, body, lane, dedup_key)
SELECT x.id, x.edge_id, x.seq, x.ts, x.minute, x.kind, x.source, x.priority, x.corr, x.body, x.lane, x.dedup_key
FROM json_to_recordset($1::json) AS x(id uuid, edge_id text, seq int8, ts timestamptz, minute timestamptz, kind text,
                                      source text, priority text, corr text, body jsonb, lane text, dedup_key text)
ON CONFLICT DO NOTHING
RETURNING id::text
"""

# Every seq the batch carried is now handled (stored, or dropped as a duplicate), so all of them
# join the edge's committed ranges: a dropped duplicate must not look like a gap.
SQL_COMMITTED = """
UPDATE edges e SET committed = e.committed + agg.mr, last_event_at = greatest(e.last_event_at, agg.last_ts)
FROM (SELECT edge_id, range_agg(int8range(seq, seq, '[]')) AS mr, max(ts) AS last_ts
      FROM json_to_recordset($1::json) AS u(edge_id text, seq int8, ts timestamptz) GROUP BY edge_id) agg
WHERE e.edge_id = agg.edge_id
"""

# A refused segment is a security event: recorded for ingest, and in the audit log.
SQL_INSERT_REJECT = """
WITH r AS (
    INSERT INTO ingest_rejects (subject, edge_header, key_id, seq_range, reason, detail, payload_size, stream_seq)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    RETURNING id
)
INSERT INTO audit_log (actor, action, target_type, target_id, details)
SELECT 'system:ingest', 'envelope.rejected', 'edge', coalesce($2, '?'),
       jsonb_build_object('reject_id', r.id, 'reason', $5::text, 'subject', $1::text, 'key_id', $3::text,
                          'seq', $4::text)
FROM r
"""

# Kinds the lifecycle may care about; others (demo ticks, telemetry) skip body decoding.
_LIFECYCLE_PREFIXES = ("satel.", "sms.", "edge.link.", "robot.alarm")


@dataclass(frozen=True)
class RejectRecord:
    subject: str
    rejected: Rejected
    payload_size: int
    stream_seq: int | None


def _minute(ts: datetime) -> datetime:
    return ts.astimezone(timezone.utc).replace(second=0, microsecond=0)


async def commit_batch(
    conn: asyncpg.Connection, accepted: list[Accepted], rejects: list[RejectRecord], now: datetime | None = None
) -> int:
    """Insert the accepted envelopes, apply the lifecycle to the new ones, record the rejects and
    write the outbox, all in one transaction; returns how many envelopes were new."""
    now = now or datetime.now(timezone.utc)
    rows: list[dict[str, Any]] = []
    pending: dict[str, IngestedEvent] = {}
    for seg in accepted:
        for env in seg.envelopes:
            event_id = str(env.id)
            minute = _minute(env.ts)
            meaning = NOTHING
            if env.kind.startswith(_LIFECYCLE_PREFIXES):
                try:
                    body = msgspec.json.decode(env.body)
                except msgspec.DecodeError:
                    body = {}
                meaning = classify(env.kind, body if isinstance(body, dict) else {})
            rows.append({
                "id": event_id, "edge_id": seg.edge_id, "seq": env.seq, "ts": env.ts, "minute": minute, "kind": env.kind,
                "source": env.source, "priority": env.priority.value, "corr": env.corr, "body": env.body,
                "lane": seg.lane, "dedup_key": dedup_key(event_id, seg.edge_id, env.source, env.kind, meaning, minute),
            })
            pending[event_id] = IngestedEvent(event_id, seg.edge_id, env.seq, env.ts, env.kind, env.source,
                                            env.priority.value, meaning)
    inserted: list[IngestedEvent] = []
    async with conn.transaction():
        outbox = []
        if pending:
            await conn.execute(SQL_LOCK_EDGES, sorted({s.edge_id for s in accepted}))
            payload = rows_json(rows)
            inserted = [pending[r["id"]] for r in await conn.fetch(SQL_INSERT_EVENTS, payload)]
            await conn.execute(SQL_COMMITTED, payload)
            outbox = await apply_lifecycle(conn, inserted, now)
        if rejects:
            await conn.executemany(
                SQL_INSERT_REJECT,
                [
                    (r.subject, r.rejected.edge_header, r.rejected.key_id, r.rejected.seq_range,
                     r.rejected.reason, r.rejected.detail[:1000], r.payload_size, r.stream_seq)
                    for r in rejects
                ],
            )
        await write_outbox(conn, outbox)
    return len(inserted)
