"""The quarantine of refused segments: list, replay once the cause is fixed, or drop.

Ingest never destroys a segment it refuses (hub.ingest.commit keeps it whole with its headers and
reason). Replaying verifies it again against the keys enrolled now and commits it like any
batch; identity de-duplication makes that idempotent (the rest of a segment one envelope of which
was quarantined alone is dropped as already committed). Every replay and drop is audited.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from hub.ingest.commit import commit_batch
from hub.ingest.edge_keys import SQL_ALL_KEYS
from hub.ingest.verify import EdgeKey, Rejected, verify_segment

log = logging.getLogger("vigil.hub.ingest.quarantine")

SQL_LIST = """
SELECT id, at, status, subject, edge_header, key_id, seq_range, envelope_seq, reason, detail, payload_size,
       resolved_at, resolved_by
FROM ingest_quarantine
WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR edge_header = $2)
ORDER BY id LIMIT $3
"""
SQL_HELD = """
SELECT id, subject, headers, payload FROM ingest_quarantine
WHERE status = 'HELD' AND payload IS NOT NULL AND ($1::int8[] IS NULL OR id = ANY($1))
  AND ($2::text IS NULL OR edge_header = $2)
ORDER BY id
FOR UPDATE SKIP LOCKED
"""
SQL_RESOLVE = """
WITH q AS (
    UPDATE ingest_quarantine SET status = $2, resolved_at = $3, resolved_by = $4
    WHERE id = $1 AND status = 'HELD'
    RETURNING id, edge_header, reason
)
INSERT INTO audit_log (at, actor, action, target_type, target_id, details)
SELECT $3, $4, 'quarantine.' || lower($2), 'edge', coalesce(q.edge_header, '?'),
       jsonb_build_object('quarantine_id', q.id, 'reason', q.reason, 'note', $5::text)
FROM q
RETURNING 1
"""
SQL_STILL_REFUSED = "UPDATE ingest_quarantine SET reason = $2, detail = $3 WHERE id = $1"


class QuarantineError(Exception):
    """A quarantine command cannot be carried out; the message says why."""


@dataclass(frozen=True)
class ReplayOutcome:
    """What one quarantined segment did on replay."""

    id: int
    replayed: bool
    stored: int
    reason: str | None  # why it is still refused


async def list_quarantine(conn: asyncpg.Connection, *, status: str | None = "HELD", edge: str | None = None,
                          limit: int = 100) -> list[dict[str, Any]]:
    """Quarantined segments, oldest first (default: those still held)."""
    return [dict(r) for r in await conn.fetch(SQL_LIST, status, edge, limit)]


async def replay(conn: asyncpg.Connection, *, ids: list[int] | None, edge: str | None, actor: str,
                 now: datetime) -> list[ReplayOutcome]:
    """Verify the held segments again and commit those that pass; the others stay held with their
    new reason. `ids` None means every held segment (of `edge`, if given)."""
    keys = {r["edge_id"]: EdgeKey(r["edge_id"], r["key_id"], bytes(r["public_key"]), r["revoked"])
            for r in await conn.fetch(SQL_ALL_KEYS)}
    outcomes = []
    async with conn.transaction():
        for row in await conn.fetch(SQL_HELD, ids, edge):
            headers = msgspec.json.decode(row["headers"])
            verdict = verify_segment(row["subject"], headers, bytes(row["payload"]), keys)
            if isinstance(verdict, Rejected):
                await conn.execute(SQL_STILL_REFUSED, row["id"], verdict.reason, verdict.detail[:1000])
                outcomes.append(ReplayOutcome(row["id"], False, 0, verdict.reason))
                continue
            result = await commit_batch(conn, [verdict], [], now)
            await conn.fetchval(SQL_RESOLVE, row["id"], "REPLAYED", now, actor, f"{result.stored} events stored")
            log.info("replayed quarantined segment %d: %d stored", row["id"], result.stored,
                     extra={"quarantine_id": row["id"], "edge": verdict.edge_id})
            outcomes.append(ReplayOutcome(row["id"], True, result.stored, None))
    return outcomes


async def drop(conn: asyncpg.Connection, quarantine_id: int, *, actor: str, note: str, now: datetime) -> bool:
    """Mark a held segment dropped (kept for the record, never replayed); False if not held."""
    if not note.strip():
        raise QuarantineError("say why the segment is dropped (--note)")
    return await conn.fetchval(SQL_RESOLVE, quarantine_id, "DROPPED", now, actor, note) is not None
