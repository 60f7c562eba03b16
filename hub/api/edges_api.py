"""Enrolled edges and their ingest status: contiguous seq and gaps."""
from __future__ import annotations

from typing import Any

from hub.api.app import deps
from hub.api.routing import Call, Router

router = Router()

SQL_EDGE_STATUS = """
SELECT e.edge_id, e.key_id, e.revoked_at IS NOT NULL AS revoked, e.last_event_at,
       s.contiguous_seq, s.highest_seq, s.missing
FROM edges e JOIN edge_seq_status s USING (edge_id) ORDER BY e.edge_id
"""


@router.get("/api/v1/edges", permission="objects.view", tags=("edges",))
async def edges_status(call: Call) -> dict[str, Any]:
    """Every enrolled edge with its highest contiguous committed seq and how many seqs are missing."""
    rows = await deps(call).pool.fetch(SQL_EDGE_STATUS)
    return {"items": [
        {**dict(r), "last_event_at": r["last_event_at"].isoformat() if r["last_event_at"] else None} for r in rows
    ]}
