"""Writing the outbox: the changes live clients must see, in commit order.

Call `write_outbox` as the last statement of a transaction: it takes the outbox_counter row lock
(see migration 0002 for why that makes sequence ids follow commit order), and holding it only
from there to COMMIT keeps concurrent writers' wait short.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from hub.db.bulk import rows_json

SQL_WRITE_OUTBOX = """
WITH c AS (UPDATE outbox_counter SET value = value + $1 RETURNING value)
INSERT INTO outbox (sequence_id, topic, object_id, payload)
SELECT c.value - $1 + u.ord, u.topic, u.object_id, u.payload
FROM c, ROWS FROM (json_to_recordset($2::json) AS (topic text, object_id int8, payload jsonb))
     WITH ORDINALITY AS u(topic, object_id, payload, ord)
RETURNING sequence_id
"""


@dataclass(frozen=True)
class OutboxItem:
    """One change for live clients: `topic` is alarm.new, alarm.updated, panel.state or panel.link."""

    topic: str
    object_id: int | None
    payload: dict[str, Any]


async def write_outbox(conn: asyncpg.Connection, items: list[OutboxItem]) -> list[int]:
    """Append `items` to the outbox inside the caller's transaction; returns their sequence ids."""
    if not items:
        return []
    payload = rows_json({"topic": i.topic, "object_id": i.object_id, "payload": i.payload} for i in items)
    rows = await conn.fetch(SQL_WRITE_OUTBOX, len(items), payload)
    return [r["sequence_id"] for r in rows]
