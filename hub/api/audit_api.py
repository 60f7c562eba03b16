"""The audit log, for MASTER only: filtered queries, CSV and PDF export."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from hub.api.app import deps
from hub.api.common import PageQuery, record
from hub.api.pdf_export import export_file
from hub.api.routing import Call, Router

router = Router()


class AuditQuery(PageQuery, forbid_unknown_fields=True):
    actor: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    action: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    target_type: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    target_id: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    since: datetime | None = None
    until: datetime | None = None
    format: Literal["json", "csv", "pdf"] = "json"


SQL_AUDIT = """
SELECT id, at, actor, action, target_type, target_id, details::text AS details, request_id
FROM audit_log
WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR action = $2)
  AND ($3::text IS NULL OR target_type = $3) AND ($4::text IS NULL OR target_id = $4)
  AND ($5::timestamptz IS NULL OR at >= $5) AND ($6::timestamptz IS NULL OR at < $6)
ORDER BY at DESC, id DESC
"""
COLUMNS = ("id", "at", "actor", "action", "target_type", "target_id", "details", "request_id")


@router.get("/api/v1/audit", query=AuditQuery, permission="audit.view", tags=("audit",))
async def audit_log(call: Call) -> web.StreamResponse | dict[str, Any]:
    """Audit entries, newest first; `format=csv` streams them all."""
    q: AuditQuery = call.query
    args = (q.actor, q.action, q.target_type, q.target_id, q.since, q.until)
    if (file := await export_file(call, "audit-log", "Audit log", COLUMNS, SQL_AUDIT, *args)) is not None:
        return file
    rows = await deps(call).pool.fetch(SQL_AUDIT + " LIMIT $7 OFFSET $8", *args, q.capped_limit, q.offset)
    return {"items": [record(r) | {"details": msgspec.json.decode(r["details"])} for r in rows],
            "limit": q.capped_limit, "offset": q.offset}
