"""Enrolled edges and their ingest status: journal epochs, contiguous seq, gaps and clock skew."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from hub.api.app import deps
from hub.api.routing import Call, Router

router = Router()

SQL_EDGE_STATUS = """
SELECT e.edge_id, e.key_id, e.revoked_at IS NOT NULL AS revoked, e.last_event_at, e.clock_skew_s,
       s.epoch, s.contiguous_seq, s.highest_seq, s.missing
FROM edges e JOIN edge_seq_status s USING (edge_id) ORDER BY e.edge_id
"""
SQL_EPOCHS = """
SELECT edge_id, epoch, ordinal, start_seq, first_seen_at, last_event_at, contiguous_seq, highest_seq, missing
FROM edge_epoch_status ORDER BY edge_id, ordinal
"""


def _iso(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {**row, **{k: row[k].isoformat() if row[k] else None for k in keys}}


@router.get("/api/v1/edges", permission="objects.view", tags=("edges",))
async def edges_status(call: Call) -> dict[str, Any]:
    """Every enrolled edge: its current journal epoch's highest contiguous committed seq, how many
    seqs are missing over all its epochs, its clock skew (seconds, edge minus hub), and its epochs."""
    pool = deps(call).pool
    epochs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in await pool.fetch(SQL_EPOCHS):
        epochs[r["edge_id"]].append(_iso({k: v for k, v in dict(r).items() if k != "edge_id"},
                                         "first_seen_at", "last_event_at"))
    rows = await pool.fetch(SQL_EDGE_STATUS)
    return {"items": [_iso(dict(r), "last_event_at") | {"epochs": epochs[r["edge_id"]]} for r in rows]}
