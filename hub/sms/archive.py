"""The raw SMS archive (docs/architecture.md §5 "SMS archive"). Ingest moves each `sms.raw`
event's body (the text and the full sender) here, in the batch's transaction, and leaves in
`events` only the message's SHA-256; reading it back is MASTER's, and every read is audited
and counted (`vigil_sms_raw_archive_access_total`)."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from prometheus_client import Counter

from hub.auth.audit import audit
from hub.db.bulk import rows_json
from shared.bodies.gsm import RawSms

log = logging.getLogger("vigil.hub.sms")

ACCESS = Counter("vigil_sms_raw_archive_access_total", "Reads of the raw SMS archive, by what was read", ["what"])

SQL_ARCHIVE = """
INSERT INTO sms_raw_archive (event_id, edge_id, source, sha256, sender, text, pdus, quality, trusted, smsc_time,
                             received_at)
SELECT u.event_id, u.edge_id, u.source, u.sha256, u.sender, u.text, u.pdus, u.quality, u.trusted, u.smsc_time, $2
FROM json_to_recordset($1::json) AS u(event_id uuid, edge_id text, source text, sha256 text, sender text, text text,
                                      pdus text[], quality text, trusted bool, smsc_time timestamptz)
ON CONFLICT (event_id) DO NOTHING
"""
SQL_LIST = """
SELECT event_id, edge_id, source, sha256, sender, text, quality, trusted, smsc_time, received_at,
       count(*) OVER () AS total
FROM sms_raw_archive
WHERE ($1::text IS NULL OR edge_id = $1) AND ($2::text IS NULL OR sha256 = $2)
  AND ($3::timestamptz IS NULL OR received_at >= $3) AND ($4::timestamptz IS NULL OR received_at < $4)
ORDER BY received_at DESC, event_id LIMIT $5 OFFSET $6
"""
SQL_ONE = "SELECT * FROM sms_raw_archive WHERE event_id = $1"


def redact(row: dict[str, Any]) -> dict[str, Any] | None:
    """For an `sms.raw` event row about to be stored: its archive row (None when the body is not a
    RawSms), and the row's body replaced by the message's digest alone, so `events` never holds the
    text or the full number."""
    try:
        body = msgspec.json.decode(bytes(row["body"]), type=RawSms)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("edge %s: an sms.raw event with an unreadable body; stored without it (%s)", row["edge_id"], exc,
                    extra={"edge": row["edge_id"], "event_id": row["id"]})
        row["body"] = msgspec.Raw(b'{"archived": false}')
        return None
    row["body"] = msgspec.Raw(msgspec.json.encode({"sha256": body.sha256, "archived": True}))
    return {"event_id": row["id"], "edge_id": row["edge_id"], "source": row["source"], "sha256": body.sha256,
            "sender": body.sender, "text": body.text.replace("\x00", "\ufffd"), "pdus": body.pdus,
            "quality": body.quality, "trusted": body.trusted, "smsc_time": body.smsc_time}


async def archive(conn: asyncpg.Connection, rows: list[dict[str, Any]], now: datetime) -> None:
    """Keep the archive rows of the batch's stored `sms.raw` events (inside its transaction)."""
    if rows:
        await conn.execute(SQL_ARCHIVE, rows_json(rows), now)


async def read_list(conn: asyncpg.Connection, *, actor: str, ip: str | None, now: datetime, edge: str | None,
                    sha256: str | None, since: datetime | None, until: datetime | None, limit: int,
                    offset: int) -> tuple[list[Any], int]:
    """A page of the archive, newest first, audited as one read naming what was asked and how
    many messages it showed."""
    rows = await conn.fetch(SQL_LIST, edge, sha256, since, until, limit, offset)
    await audit(conn, now, actor, "sms_archive.read", "sms_archive", sha256 or edge or "*", ip,
                filters={"edge": edge, "sha256": sha256, "since": since, "until": until},
                shown=[str(r["event_id"]) for r in rows])
    ACCESS.labels("list").inc()
    return rows, (rows[0]["total"] if rows else 0)


async def read_one(conn: asyncpg.Connection, event_id: Any, *, actor: str, ip: str | None, now: datetime) -> Any:
    """One archived message (None when there is none), its read audited."""
    row = await conn.fetchrow(SQL_ONE, event_id)
    if row is not None:
        await audit(conn, now, actor, "sms_archive.read", "sms_archive", str(event_id), ip, shown=[str(event_id)])
        ACCESS.labels("one").inc()
    return row
