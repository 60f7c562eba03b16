"""The raw SMS archive (docs/architecture.md §5 "SMS archive"): MASTER only, every read audited
and counted (hub.sms.archive)."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Annotated, Any

import msgspec

from hub.api.app import deps
from hub.api.common import PageQuery, record
from hub.api.errors import not_found
from hub.api.routing import Call, Router
from hub.sms import archive

router = Router()


class ArchiveQuery(PageQuery, forbid_unknown_fields=True):
    edge: Annotated[str, msgspec.Meta(max_length=63)] | None = None
    sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")] | None = None
    since: datetime | None = None
    until: datetime | None = None


def _message(row: Any) -> dict[str, Any]:
    return {k: v for k, v in record(row).items() if k != "total"}


@router.get("/api/v1/sms-archive", query=ArchiveQuery, permission="sms_archive.read", tags=("sms",))
async def list_archive(call: Call) -> dict[str, Any]:
    """Received SMS as they came (text, full sender, PDUs), newest first, by edge, digest or time;
    the read is audited with every message it showed."""
    q: ArchiveQuery = call.query
    async with deps(call).pool.acquire() as conn, conn.transaction():
        rows, total = await archive.read_list(
            conn, actor=call.user.actor, ip=call.request.remote, now=datetime.now(timezone.utc), edge=q.edge,
            sha256=q.sha256, since=q.since, until=q.until, limit=q.capped_limit, offset=q.offset)
    return {"items": [_message(r) for r in rows], "total": total, "limit": q.capped_limit, "offset": q.offset}


@router.get("/api/v1/sms-archive/{id}", permission="sms_archive.read", tags=("sms",))
async def one_message(call: Call) -> dict[str, Any]:
    """One archived SMS by its event id, with its PDUs; the read is audited."""
    try:
        event_id = uuid.UUID(call.path("id"))
    except ValueError:
        raise not_found("archived SMS") from None
    async with deps(call).pool.acquire() as conn, conn.transaction():
        row = await archive.read_one(conn, event_id, actor=call.user.actor, ip=call.request.remote,
                                     now=datetime.now(timezone.utc))
    if row is None:
        raise not_found("archived SMS")
    return _message(row)
