"""Alarm bundles: list, detail with events and dispatch log, lifecycle transitions."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from hub.alarms import repository as alarms
from hub.alarms.apply import iso_or_none
from hub.alarms.repository import CLAIMANT_JOIN
from hub.api.app import deps
from hub.api.common import Page, PageQuery, record
from hub.api.errors import ApiError, conflict, not_found
from hub.api.permissions import object_filter, require_object
from hub.api.routing import Call, Router
from hub.alarms.lifecycle import IllegalTransition, LifecycleError, NoteRequired, NotClaimant, VersionConflict
from shared.clock import SYSTEM_CLOCK
from shared.logs import request_id

router = Router()

Status = Literal["NEW", "CLAIMING", "IN_PROGRESS", "ACK", "RESOLVED", "CLOSED"]
PriorityName = Literal["CRITICAL", "HIGH", "NORMAL", "LOW"]


class AlarmQuery(PageQuery, forbid_unknown_fields=True):
    status: list[Status] = []
    priority: list[PriorityName] = []
    object_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


class Alarm(msgspec.Struct):
    id: int
    object_id: int | None
    object_name: str | None
    alarm_type: str
    status: str
    priority: str
    service_mode: bool
    requires_note: bool
    version: int
    event_count: int
    first_event_at: str
    last_event_at: str
    restored: bool
    claimed_by: str | None
    claimed_by_email: str | None  # the claimant as people know them; claimed_by is the actor id
    claim_expires_at: str | None
    ack_note: str | None
    edge_id: str
    source: str
    # For an alarm read back from the panel's event log after an outage: when the panel logged it
    # and when the hub heard of it ("happened 14:02, reported 14:09").
    happened_offline_at: str | None = None
    reported_at: str | None = None
    summary: str | None = None  # what a hub-raised alarm is about, in words


class AlarmDetail(Alarm):
    events: list[dict[str, Any]] = []
    dispatch_log: list[dict[str, Any]] = []


class TransitionBody(msgspec.Struct, forbid_unknown_fields=True):
    version: Annotated[int, msgspec.Meta(ge=1)]
    note: Annotated[str, msgspec.Meta(max_length=4000)] | None = None


class DispatchEntryBody(msgspec.Struct, forbid_unknown_fields=True):
    entry: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]


class DispatchEntry(msgspec.Struct):
    id: int
    bundle_id: int | None
    object_id: int | None
    author: str
    entry: str
    at: str


# Queue order: most urgent first, then oldest.
SQL_LIST = """
SELECT b.*, o.name AS object_name, cu.email AS claimed_by_email, count(*) OVER () AS total
FROM bundle_alarms b LEFT JOIN objects o ON o.id = b.object_id
""" + CLAIMANT_JOIN.format(b="b") + """
WHERE (cardinality($1::text[]) = 0 OR b.status = ANY($1))
  AND (cardinality($2::text[]) = 0 OR b.priority = ANY($2))
  AND ($3::int8 IS NULL OR b.object_id = $3)
  AND ($4::timestamptz IS NULL OR b.last_event_at >= $4)
  AND ($5::timestamptz IS NULL OR b.first_event_at < $5)
  AND ($6::int8[] IS NULL OR b.object_id = ANY($6))
ORDER BY array_position(ARRAY['CRITICAL','HIGH','NORMAL','LOW'], b.priority), b.first_event_at, b.id
LIMIT $7 OFFSET $8
"""
SQL_ONE = ("SELECT b.*, o.name AS object_name, cu.email AS claimed_by_email "
           "FROM bundle_alarms b LEFT JOIN objects o ON o.id = b.object_id "
           + CLAIMANT_JOIN.format(b="b") + " WHERE b.id = $1")
SQL_EVENTS = """
SELECT e.id::text AS id, e.epoch, e.seq, e.ts, e.received_at, e.ts_suspect, e.kind, e.source, e.priority, e.body,
       be.restore
FROM bundle_events be JOIN events e ON e.id = be.event_id AND e.minute = date_trunc('minute', be.ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
WHERE be.bundle_id = $1 ORDER BY e.ts, e.seq LIMIT 500
"""
SQL_DISPATCH = "SELECT * FROM dispatch_log WHERE bundle_id = $1 ORDER BY at, id"
SQL_ADD_DISPATCH = """
INSERT INTO dispatch_log (object_id, bundle_id, author, entry) VALUES ($1, $2, $3, $4) RETURNING *
"""
SQL_AUDIT = """
INSERT INTO audit_log (actor, action, target_type, target_id, details, request_id)
VALUES ($1, $2, $3, $4, $5::jsonb, $6)
"""


def alarm_out(row: Any) -> Alarm:
    return Alarm(
        id=row["id"], object_id=row["object_id"], object_name=row["object_name"], alarm_type=row["alarm_type"],
        status=row["status"], priority=row["priority"], service_mode=row["service_mode"],
        requires_note=row["requires_note"], version=row["version"], event_count=row["event_count"],
        first_event_at=row["first_event_at"].isoformat(), last_event_at=row["last_event_at"].isoformat(),
        restored=row["restored_ord"] > row["last_alarm_ord"], claimed_by=row["claimed_by"],
        claimed_by_email=row["claimed_by_email"],
        claim_expires_at=iso_or_none(row["claim_expires_at"]),
        ack_note=row["ack_note"], edge_id=row["edge_id"], source=row["source"],
        happened_offline_at=iso_or_none(row["offline_happened_at"]), reported_at=iso_or_none(row["offline_reported_at"]),
        summary=row["summary"],
    )



@router.get("/api/v1/alarms", query=AlarmQuery, response=Page[Alarm], permission="alarms.view", tags=("alarms",))
async def list_alarms(call: Call) -> Page[Alarm]:
    """Alarm bundles, most urgent and oldest first, filtered."""
    q: AlarmQuery = call.query
    rows = await deps(call).pool.fetch(SQL_LIST, q.status, q.priority, q.object_id, q.since, q.until,
                                       object_filter(call.user), q.capped_limit, q.offset)
    return Page([alarm_out(r) for r in rows], rows[0]["total"] if rows else 0, q.capped_limit, q.offset)


async def _visible_bundle(call: Call, bundle_id: int) -> Any:
    row = await deps(call).pool.fetchrow(SQL_ONE, bundle_id)
    if row is None:
        raise not_found("alarm")
    require_object(call.user, row["object_id"], "alarm")
    return row


@router.get("/api/v1/alarms/{id}", response=AlarmDetail, permission="alarms.view", tags=("alarms",))
async def get_alarm(call: Call) -> AlarmDetail:
    """One bundle with its events and dispatch log."""
    bundle_id = call.path_int("id")
    row = await _visible_bundle(call, bundle_id)
    pool = deps(call).pool
    events = [record(e) | {"body": msgspec.json.decode(e["body"])} for e in await pool.fetch(SQL_EVENTS, bundle_id)]
    log = [record(d) for d in await pool.fetch(SQL_DISPATCH, bundle_id)]
    base = alarm_out(row)
    return AlarmDetail(**{f: getattr(base, f) for f in base.__struct_fields__}, events=events, dispatch_log=log)


_STATUS_FOR: dict[type[LifecycleError], int] = {
    VersionConflict: 409, IllegalTransition: 409, NotClaimant: 409, NoteRequired: 422, alarms.BundleNotFound: 404,
}


def _transition_route(action: str) -> None:
    async def handler(call: Call) -> Alarm:
        bundle_id = call.path_int("id")
        if object_filter(call.user) is not None:  # only assigned-object roles need the extra look
            await _visible_bundle(call, bundle_id)
        body: TransitionBody = call.body
        async with deps(call).pool.acquire() as conn:
            try:
                row = await alarms.transition(conn, bundle_id, action, call.user.actor, body.version,
                                              SYSTEM_CLOCK.now(), note=body.note, request_id=request_id.get())
            except LifecycleError as exc:
                if isinstance(exc, VersionConflict):
                    raise conflict("Data changed — refreshed", {"reason": str(exc)}) from None
                raise ApiError(_STATUS_FOR.get(type(exc), 409), exc.code, str(exc)) from None
        return alarm_out(row)

    handler.__name__ = f"{action}_alarm"
    router.post(f"/api/v1/alarms/{{id}}/{action}", body=TransitionBody, response=Alarm, permission="alarms.work",
                summary=f"{action.capitalize()} an alarm bundle (optimistic lock on version)", tags=("alarms",))(handler)


for _action in ("claim", "start", "ack", "resolve", "close"):
    _transition_route(_action)


@router.post("/api/v1/alarms/{id}/dispatch-log", body=DispatchEntryBody, response=DispatchEntry,
             permission="alarms.work", status=201, tags=("alarms",))
async def add_dispatch_entry(call: Call) -> DispatchEntry:
    """Add an operator journal entry to an alarm."""
    bundle_id = call.path_int("id")
    row = await _visible_bundle(call, bundle_id)
    async with deps(call).pool.acquire() as conn, conn.transaction():
        entry = await conn.fetchrow(SQL_ADD_DISPATCH, row["object_id"], bundle_id, call.user.actor, call.body.entry)
        await conn.execute(SQL_AUDIT, call.user.actor, "dispatch_log.add", "bundle_alarm", str(bundle_id),
                           msgspec.json.encode({"entry_id": entry["id"]}).decode(), request_id.get())
    return DispatchEntry(entry["id"], entry["bundle_id"], entry["object_id"], entry["author"], entry["entry"],
                         entry["at"].isoformat())
