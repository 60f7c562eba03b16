"""Alarm bundles: list and history search, detail with events in words, checklist, contacts and
dispatch log, the merged timeline, lifecycle transitions, checklist ticks and supervisor
take-over (docs/architecture.md §5)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from hub.alarms import history
from hub.alarms import repository as alarms
from hub.alarms.apply import iso_or_none
from hub.alarms.checklist import MAX_STEPS, NotWorked
from hub.alarms.describe import describe_call, tel_uri
from hub.alarms.lifecycle import (AlreadyHolder, IllegalTransition, LifecycleError, NoteRequired, NotClaimant,
                                  ReasonRequired, UnknownResolution, VersionConflict)
from hub.alarms.outcomes import CallOutcome, ResolutionCode, resolution_label
from hub.alarms.people import Who, people, who
from hub.alarms.repository import claimant_join
from hub.api.app import deps
from hub.auth.audit import audit
from hub.api.common import Page, PageQuery, record
from hub.api.errors import ApiError, conflict, forbidden, invalid, not_found
from hub.api.permissions import ASSIGNED_ONLY, allowed, object_filter, require_object
from hub.api.principal import Role
from hub.api.routing import Call, Router
from hub.db.outbox import OutboxItem, write_outbox
from shared.clock import SYSTEM_CLOCK
from shared.logs import request_id

router = Router()

Status = Literal["NEW", "CLAIMING", "IN_PROGRESS", "ACK", "RESOLVED", "CLOSED"]
PriorityName = Literal["CRITICAL", "HIGH", "NORMAL", "LOW"]
AlarmType = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class AlarmQuery(PageQuery, forbid_unknown_fields=True):
    """The queue and the history search: every filter is optional and they combine."""

    status: list[Status] = []
    priority: list[PriorityName] = []
    object_id: int | None = None
    since: datetime | None = None  # the bundle's last event at or after
    until: datetime | None = None  # the bundle's first event before
    alarm_type: list[AlarmType] = []
    resolution: list[ResolutionCode] = []
    operator: Id | None = None  # a user who holds it, or claimed, started, acknowledged or resolved it
    order: Literal["urgency", "newest"] = "urgency"  # urgency: the queue; newest: history, newest first


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
    claimed_by_user: Who | None = None
    resolution: str | None = None  # a hub.alarms.outcomes.RESOLUTIONS code, set at resolve
    resolution_label: str | None = None
    resolution_note: str | None = None
    escalated_at: str | None = None  # stayed NEW past its priority's threshold (alarms.escalate_after_s)


class ChecklistStep(msgspec.Struct):
    index: int  # from 1, the step's number
    text: str
    done_at: str | None
    done_by: Who | None


class DispatchEntry(msgspec.Struct):
    id: int
    bundle_id: int | None
    object_id: int | None
    author: Who | None
    entry: str
    at: str
    contact_id: int | None = None
    contact_name: str | None = None  # as it was when called
    contact_phone: str | None = None
    outcome: str | None = None  # ANSWERED, NO_ANSWER, WRONG_NUMBER, BUSY, VOICEMAIL
    outcome_label: str | None = None


class Contact(msgspec.Struct):
    id: int
    name: str
    role: str
    phone: str
    email: str
    call_order: int
    availability: str  # when they may be called, read before dialling
    tel_uri: str | None  # tel:+48600100200, for a click-to-call link; None without a number


class AlarmDetail(Alarm):
    events: list[dict[str, Any]] = []  # each with `text`: the event in words
    events_truncated: bool = False  # more than hub.alarms.history.MAX_EVENTS events
    dispatch_log: list[DispatchEntry] = []
    checklist: list[ChecklistStep] = []
    contacts: list[Contact] = []  # the object's, in call order


class TimelineItem(msgspec.Struct):
    at: str
    kind: str  # event, transition, checklist, dispatch
    text: str
    who: Who | None
    details: dict[str, Any]


class Timeline(msgspec.Struct):
    bundle_id: int
    items: list[TimelineItem]
    events_truncated: bool


Note = Annotated[str, msgspec.Meta(max_length=4000)]


class TransitionBody(msgspec.Struct, forbid_unknown_fields=True):
    version: Annotated[int, msgspec.Meta(ge=1)]
    note: Note | None = None


class ResolveBody(msgspec.Struct, forbid_unknown_fields=True):
    version: Annotated[int, msgspec.Meta(ge=1)]
    resolution: ResolutionCode
    note: Note | None = None


class TakeOverBody(msgspec.Struct, forbid_unknown_fields=True):
    version: Annotated[int, msgspec.Meta(ge=1)]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    to_user_id: Id | None = None  # absent: the caller takes it


class DispatchEntryBody(msgspec.Struct, forbid_unknown_fields=True):
    entry: Note = ""  # may be empty for a call: the call in words is written then
    contact_id: Id | None = None
    outcome: CallOutcome | None = None


_LIST = """
SELECT b.*, o.name AS object_name, cu.email AS claimed_by_email, cu.display_name AS claimed_by_name,
       count(*) OVER () AS total
FROM bundle_alarms b LEFT JOIN objects o ON o.id = b.object_id
""" + claimant_join("b") + """
WHERE (cardinality($1::text[]) = 0 OR b.status = ANY($1))
  AND (cardinality($2::text[]) = 0 OR b.priority = ANY($2))
  AND ($3::int8 IS NULL OR b.object_id = $3)
  AND ($4::timestamptz IS NULL OR b.last_event_at >= $4)
  AND ($5::timestamptz IS NULL OR b.first_event_at < $5)
  AND ($6::int8[] IS NULL OR b.object_id = ANY($6))
  AND (cardinality($9::text[]) = 0 OR b.alarm_type = ANY($9))
  AND (cardinality($10::text[]) = 0 OR b.resolution = ANY($10))
  AND ($11::text IS NULL OR b.claimed_by = $11 OR EXISTS (
      SELECT 1 FROM audit_log a WHERE a.target_type = 'bundle_alarm' AND a.target_id = b.id::text AND a.actor = $11
        AND a.action IN ('alarm.claim', 'alarm.start', 'alarm.ack', 'alarm.resolve')))
"""
SQL_LIST: dict[str, str] = {
    # The queue: most urgent first, then oldest.
    "urgency": _LIST + """ORDER BY array_position(ARRAY['CRITICAL','HIGH','NORMAL','LOW'], b.priority),
                                  b.first_event_at, b.id LIMIT $7 OFFSET $8""",
    "newest": _LIST + " ORDER BY b.first_event_at DESC, b.id DESC LIMIT $7 OFFSET $8",
}
SQL_CONTACTS = "SELECT * FROM object_contacts WHERE object_id = $1 ORDER BY call_order, id"
SQL_CONTACT = "SELECT name, phone FROM object_contacts WHERE id = $1 AND object_id = $2"
SQL_ADD_DISPATCH = """
INSERT INTO dispatch_log (object_id, bundle_id, author, entry, at, contact_id, contact_name, contact_phone, outcome)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *
"""
SQL_ASSIGNEE = """
SELECT u.role, u.active, EXISTS (SELECT 1 FROM user_object_assignments a WHERE a.user_id = u.id AND a.object_id = $2)
       AS assigned
FROM users u WHERE u.id = $1
"""


def alarm_out(row: Any) -> Alarm:
    """A bundle row (with object_name and the claimant's email and name) as the API shows it."""
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
        summary=row["summary"], claimed_by_user=who(row["claimed_by"], row["claimed_by_email"], row["claimed_by_name"]),
        resolution=row["resolution"], resolution_label=resolution_label(row["resolution"]),
        resolution_note=row["resolution_note"], escalated_at=iso_or_none(row["escalated_at"]),
    )


_STATUS_FOR: dict[type[LifecycleError], int] = {
    VersionConflict: 409, IllegalTransition: 409, NotClaimant: 409, NoteRequired: 422, alarms.BundleNotFound: 404,
    UnknownResolution: 422, ReasonRequired: 422, AlreadyHolder: 409, NotWorked: 409, alarms.StepNotFound: 404,
}
# The request field a refusal is about, for the form to point at.
_FIELD_OF: dict[type[LifecycleError], str] = {UnknownResolution: "resolution", ReasonRequired: "reason",
                                              NoteRequired: "note"}


def _refused(exc: LifecycleError) -> ApiError:
    """A lifecycle refusal as the API's error."""
    if isinstance(exc, VersionConflict):
        return conflict("Data changed — refreshed", {"reason": str(exc)})
    field = _FIELD_OF.get(type(exc))
    return ApiError(_STATUS_FOR.get(type(exc), 409), exc.code, str(exc), {"field": field} if field else None)


@router.get("/api/v1/alarms", query=AlarmQuery, response=Page[Alarm], permission="alarms.view", tags=("alarms",))
async def list_alarms(call: Call) -> Page[Alarm]:
    """Alarm bundles, filtered: the queue (most urgent and oldest first) or, with `order=newest`,
    the history search over closed ones too."""
    q: AlarmQuery = call.query
    operator = f"user:{q.operator}" if q.operator is not None else None
    rows = await deps(call).pool.fetch(SQL_LIST[q.order], q.status, q.priority, q.object_id, q.since, q.until,
                                       object_filter(call.user), q.capped_limit, q.offset, q.alarm_type,
                                       q.resolution, operator)
    return Page([alarm_out(r) for r in rows], rows[0]["total"] if rows else 0, q.capped_limit, q.offset)


async def _visible_bundle(call: Call, bundle_id: int) -> Any:
    row = await deps(call).pool.fetchrow(alarms.SQL_ONE, bundle_id)
    if row is None:
        raise not_found("alarm")
    require_object(call.user, row["object_id"], "alarm")
    return row


def _contact_out(row: Any) -> Contact:
    return Contact(row["id"], row["name"], row["role"], row["phone"], row["email"], row["call_order"],
                   row["availability"], tel_uri(row["phone"]))


@router.get("/api/v1/alarms/{id}", response=AlarmDetail, permission="alarms.view", tags=("alarms",))
async def get_alarm(call: Call) -> AlarmDetail:
    """One bundle with its events in words, checklist, the object's contacts and the dispatch log."""
    bundle_id = call.path_int("id")
    row = await _visible_bundle(call, bundle_id)
    pool = deps(call).pool
    events, truncated = await history.events(pool, bundle_id)
    log = await history.dispatch_log(pool, bundle_id)
    steps = await alarms.checklist(pool, row)
    who_is = await people(pool, [*(d["author"] for d in log), *(s["done_by"] for s in steps)])
    contacts = await pool.fetch(SQL_CONTACTS, row["object_id"]) if row["object_id"] is not None else []
    base = alarm_out(row)
    return AlarmDetail(
        **{f: getattr(base, f) for f in base.__struct_fields__},
        events=[record(e) for e in events], events_truncated=truncated,
        dispatch_log=[DispatchEntry(**history.dispatch_out(d, who_is)) for d in log],
        checklist=[ChecklistStep(**history.step_out(s, who_is)) for s in steps],
        contacts=[_contact_out(c) for c in contacts])


@router.get("/api/v1/alarms/{id}/timeline", response=Timeline, permission="alarms.view", tags=("alarms",))
async def get_timeline(call: Call) -> Timeline:
    """Everything that happened to a bundle, oldest first: events, lifecycle moves with who and
    when, checklist ticks and dispatch entries."""
    bundle_id = call.path_int("id")
    row = await _visible_bundle(call, bundle_id)
    pool = deps(call).pool
    items, truncated = await history.timeline(pool, bundle_id, await alarms.checklist(pool, row))
    return Timeline(bundle_id, [TimelineItem(**i) for i in items], truncated)


def _transition_route(action: str, body_type: type) -> None:
    async def handler(call: Call) -> Alarm:
        bundle_id = call.path_int("id")
        if object_filter(call.user) is not None:  # only assigned-object roles need the extra look
            await _visible_bundle(call, bundle_id)
        body = call.body
        async with deps(call).pool.acquire() as conn:
            try:
                row = await alarms.transition(conn, bundle_id, action, call.user.actor, body.version,
                                              SYSTEM_CLOCK.now(), note=body.note, request_id=request_id.get(),
                                              resolution=getattr(body, "resolution", None))
            except LifecycleError as exc:
                raise _refused(exc) from None
        return alarm_out(row)

    handler.__name__ = f"{action}_alarm"
    router.post(f"/api/v1/alarms/{{id}}/{action}", body=body_type, response=Alarm, permission="alarms.work",
                summary=f"{action.capitalize()} an alarm bundle (optimistic lock on version)", tags=("alarms",))(handler)


for _action in ("claim", "start", "ack", "close"):
    _transition_route(_action, TransitionBody)
_transition_route("resolve", ResolveBody)  # with its resolution code (hub.alarms.outcomes)


async def _assignee(call: Call, user_id: int, object_id: int | None) -> str:
    """The actor a supervisor hands a bundle to: an active user whose role works alarms and who
    may see the bundle's object; 422 naming `to_user_id` otherwise."""
    row = await deps(call).pool.fetchrow(SQL_ASSIGNEE, user_id, object_id)
    if row is None:
        raise invalid(f"there is no user {user_id}", {"field": "to_user_id"})
    if not row["active"]:
        raise invalid(f"user {user_id} is deactivated", {"field": "to_user_id"})
    if not allowed(Role(row["role"]), "alarms.work"):
        raise invalid(f"user {user_id} is a {row['role']}, who does not work alarms", {"field": "to_user_id"})
    if Role(row["role"]) in ASSIGNED_ONLY and not row["assigned"]:
        raise invalid(f"user {user_id} may not see this alarm's object", {"field": "to_user_id"})
    return f"user:{user_id}"


@router.post("/api/v1/alarms/{id}/take-over", body=TakeOverBody, response=Alarm, permission="alarms.supervise",
             tags=("alarms",))
async def take_over_alarm(call: Call) -> Alarm:
    """A supervisor takes a CLAIMING, IN_PROGRESS or ACK bundle held by someone else, or reassigns
    it to `to_user_id`, with a reason (optimistic lock on version; audited)."""
    bundle_id = call.path_int("id")
    body: TakeOverBody = call.body
    row = await _visible_bundle(call, bundle_id)
    if body.to_user_id is not None:
        to = await _assignee(call, body.to_user_id, row["object_id"])
    elif allowed(call.user.role, "alarms.work"):
        to = call.user.actor
    else:
        raise forbidden(f"a {call.user.role.value} does not work alarms: reassign it with to_user_id")
    async with deps(call).pool.acquire() as conn:
        try:
            row = await alarms.take_over(conn, bundle_id, call.user.actor, to, body.version, SYSTEM_CLOCK.now(),
                                         body.reason, request_id.get())
        except LifecycleError as exc:
            raise _refused(exc) from None
    return alarm_out(row)


@router.post("/api/v1/alarms/{id}/checklist/{index}", response=ChecklistStep, permission="alarms.work",
             tags=("alarms",))
async def tick_step(call: Call) -> ChecklistStep:
    """Tick step `index` (from 1) of the bundle's checklist, while it is IN_PROGRESS or ACK, as its
    holder or a supervisor. Ticking a ticked step keeps the first tick and answers it."""
    bundle_id, index = call.path_int("id"), call.path_int("index")
    if object_filter(call.user) is not None:
        await _visible_bundle(call, bundle_id)
    if not 1 <= index <= MAX_STEPS:
        raise not_found("checklist step")
    pool = deps(call).pool
    async with pool.acquire() as conn:
        try:
            _, step, _ = await alarms.tick(conn, bundle_id, index, call.user.actor,
                                           allowed(call.user.role, "alarms.supervise"), SYSTEM_CLOCK.now(),
                                           request_id.get())
        except LifecycleError as exc:
            raise _refused(exc) from None
    return ChecklistStep(**history.step_out(dict(step), await people(pool, [step["done_by"]])))


@router.post("/api/v1/alarms/{id}/dispatch-log", body=DispatchEntryBody, response=DispatchEntry,
             permission="alarms.work", status=201, tags=("alarms",))
async def add_dispatch_entry(call: Call) -> DispatchEntry:
    """Add an operator journal entry to an alarm; with `contact_id` and `outcome`, a call to one of
    the object's contacts and how it went. Sent to every console as `alarm.updated` with
    `dispatch_log` (the entry)."""
    bundle_id = call.path_int("id")
    row = await _visible_bundle(call, bundle_id)
    body: DispatchEntryBody = call.body
    text = body.entry.strip()
    if (body.contact_id is None) != (body.outcome is None):
        missing = "outcome" if body.outcome is None else "contact_id"
        raise invalid("a call needs both contact_id and outcome", {"field": missing})
    pool = deps(call).pool
    contact = None
    if body.contact_id is not None:
        contact = await pool.fetchrow(SQL_CONTACT, body.contact_id, row["object_id"]) \
            if row["object_id"] is not None else None
        if contact is None:
            raise invalid(f"contact {body.contact_id} is not a contact of this alarm's object",
                          {"field": "contact_id"})
        text = text or describe_call(contact["name"], contact["phone"], body.outcome)  # type: ignore[arg-type]
    if not text:
        raise invalid("the entry is empty", {"field": "entry"})
    now = SYSTEM_CLOCK.now()
    async with pool.acquire() as conn, conn.transaction():
        entry = await conn.fetchrow(SQL_ADD_DISPATCH, row["object_id"], bundle_id, call.user.actor, text, now,
                                    body.contact_id, contact["name"] if contact else None,
                                    contact["phone"] if contact else None, body.outcome)
        details = {"entry_id": entry["id"], **({"contact_id": body.contact_id, "outcome": body.outcome}
                                               if contact else {})}
        await audit(conn, now, call.user.actor, "dispatch_log.add", "bundle_alarm", bundle_id, None, **details)
        out = history.dispatch_out(entry, await people(conn, [call.user.actor]))
        # The bundle as the outbox row carries it, share-locked so no lifecycle move commits
        # between this read and the row: a console never gets an older bundle after a newer one.
        bundle = await conn.fetchrow(alarms.SQL_ONE + " FOR SHARE OF b", bundle_id)
        await write_outbox(conn, [OutboxItem("alarm.updated", bundle["object_id"],
                                             {"bundle": alarms.payload(bundle), "dispatch_log": out})])
    return DispatchEntry(**out)
