"""Objects (monitored sites) with their contacts and procedures, and service mode."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from hub.api.app import deps
from hub.api.common import NonEmpty, Page, PageQuery, VersionBody, record
from hub.api.crud import Table, audit, delete_owned, insert, provided, update
from hub.api.errors import invalid, not_found
from hub.api.permissions import object_filter, require_object
from hub.api.routing import Call, Router
from hub.db.outbox import OutboxItem, write_outbox

router = Router()

OBJECTS = Table("objects", ("name", "address", "type", "lat", "lon", "status", "service_mode_until",
                            "service_mode_reason"), "object")
CONTACTS = Table("object_contacts", ("object_id", "name", "role", "phone", "email", "call_order", "availability"),
                 "contact")
PROCEDURES = Table("object_procedures", ("object_id", "alarm_type", "steps"), "procedure")

Lat = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Lon = Annotated[float, msgspec.Meta(ge=-180, le=180)]
ObjectStatus = Literal["ACTIVE", "SERVICE", "CLOSED"]


class ObjectIn(msgspec.Struct, forbid_unknown_fields=True):
    name: NonEmpty
    address: Annotated[str, msgspec.Meta(max_length=500)] = ""
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=50)] = "GENERIC"
    lat: Lat | None = None
    lon: Lon | None = None


class ObjectPatch(msgspec.Struct, forbid_unknown_fields=True):
    version: Annotated[int, msgspec.Meta(ge=1)]
    name: NonEmpty | UnsetType = UNSET
    address: Annotated[str, msgspec.Meta(max_length=500)] | UnsetType = UNSET
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=50)] | UnsetType = UNSET
    lat: Lat | None | UnsetType = UNSET
    lon: Lon | None | UnsetType = UNSET


class ObjectOut(msgspec.Struct):
    id: int
    name: str
    address: str
    type: str
    lat: float | None
    lon: float | None
    status: str
    service_mode_until: str | None
    service_mode_reason: str | None
    version: int


class ObjectDetail(ObjectOut):
    contacts: list[dict[str, Any]] = []
    procedures: list[dict[str, Any]] = []
    panels: list[dict[str, Any]] = []


class ObjectQuery(PageQuery, forbid_unknown_fields=True):
    q: Annotated[str, msgspec.Meta(max_length=200)] = ""
    status: list[ObjectStatus] = []


class ServiceModeBody(msgspec.Struct, forbid_unknown_fields=True):
    version: Annotated[int, msgspec.Meta(ge=1)]
    on: bool
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""
    until: datetime | None = None


class ContactIn(msgspec.Struct, forbid_unknown_fields=True):
    name: NonEmpty
    role: Annotated[str, msgspec.Meta(max_length=100)] = ""
    phone: Annotated[str, msgspec.Meta(max_length=50)] = ""
    email: Annotated[str, msgspec.Meta(max_length=200)] = ""
    call_order: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    availability: Annotated[str, msgspec.Meta(max_length=500)] = ""  # when this contact may be called


class ContactPatch(msgspec.Struct, forbid_unknown_fields=True):
    version: Annotated[int, msgspec.Meta(ge=1)]
    name: NonEmpty | UnsetType = UNSET
    role: Annotated[str, msgspec.Meta(max_length=100)] | UnsetType = UNSET
    phone: Annotated[str, msgspec.Meta(max_length=50)] | UnsetType = UNSET
    email: Annotated[str, msgspec.Meta(max_length=200)] | UnsetType = UNSET
    call_order: Annotated[int, msgspec.Meta(ge=1, le=100)] | UnsetType = UNSET
    availability: Annotated[str, msgspec.Meta(max_length=500)] | UnsetType = UNSET


class ProcedureIn(msgspec.Struct, forbid_unknown_fields=True):
    alarm_type: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
    steps: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]


class ProcedurePatch(msgspec.Struct, forbid_unknown_fields=True):
    version: Annotated[int, msgspec.Meta(ge=1)]
    steps: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)] | UnsetType = UNSET


SQL_LIST = """
SELECT *, count(*) OVER () AS total FROM objects
WHERE ($1 = '' OR name ILIKE '%' || $1 || '%' OR address ILIKE '%' || $1 || '%')
  AND (cardinality($2::text[]) = 0 OR status = ANY($2))
  AND ($3::int8[] IS NULL OR id = ANY($3))
ORDER BY lower(name), id LIMIT $4 OFFSET $5
"""
SQL_ONE = "SELECT * FROM objects WHERE id = $1"
SQL_CONTACTS = "SELECT * FROM object_contacts WHERE object_id = $1 ORDER BY call_order, id"
SQL_PROCEDURES = "SELECT * FROM object_procedures WHERE object_id = $1 ORDER BY alarm_type"
SQL_PANELS = """
SELECT id, edge_id, source, model, host, port, link_status, link_changed_at, version,
       integration_key_enc IS NOT NULL AS has_integration_key
FROM panels WHERE object_id = $1 ORDER BY id
"""


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def object_out(row: Any) -> ObjectOut:
    return ObjectOut(row["id"], row["name"], row["address"], row["type"], row["lat"], row["lon"], row["status"],
                     row["service_mode_until"].isoformat() if row["service_mode_until"] else None,
                     row["service_mode_reason"], row["version"])


async def visible_object(call: Call, object_id: int) -> Any:
    """The object row, or 404 when it does not exist or the caller may not see it."""
    require_object(call.user, object_id)
    row = await deps(call).pool.fetchrow(SQL_ONE, object_id)
    if row is None:
        raise not_found("object")
    return row


@router.get("/api/v1/objects", query=ObjectQuery, response=Page[ObjectOut], permission="objects.view", tags=("objects",))
async def list_objects(call: Call) -> Page[ObjectOut]:
    """Objects, searchable by name or address."""
    q: ObjectQuery = call.query
    rows = await deps(call).pool.fetch(SQL_LIST, _escape_like(q.q), q.status, object_filter(call.user),
                                       q.capped_limit, q.offset)
    return Page([object_out(r) for r in rows], rows[0]["total"] if rows else 0, q.capped_limit, q.offset)


@router.get("/api/v1/objects/{id}", response=ObjectDetail, permission="objects.view", tags=("objects",))
async def get_object(call: Call) -> ObjectDetail:
    """One object with its contacts, procedures and panels."""
    object_id = call.path_int("id")
    row = await visible_object(call, object_id)
    pool = deps(call).pool
    base = object_out(row)
    return ObjectDetail(
        **{f: getattr(base, f) for f in base.__struct_fields__},
        contacts=[record(r) for r in await pool.fetch(SQL_CONTACTS, object_id)],
        procedures=[record(r) for r in await pool.fetch(SQL_PROCEDURES, object_id)],
        panels=[record(r) for r in await pool.fetch(SQL_PANELS, object_id)],
    )


@router.post("/api/v1/objects", body=ObjectIn, response=ObjectOut, permission="objects.edit", status=201, tags=("objects",))
async def create_object(call: Call) -> ObjectOut:
    """Create an object."""
    async with deps(call).pool.acquire() as conn, conn.transaction():
        row = await insert(conn, OBJECTS, msgspec.structs.asdict(call.body))
        await audit(conn, call, "object.create", "object", row["id"], {"name": row["name"]})
    return object_out(row)


@router.patch("/api/v1/objects/{id}", body=ObjectPatch, response=ObjectOut, permission="objects.edit", tags=("objects",))
async def update_object(call: Call) -> ObjectOut:
    """Change an object; `version` must be the one you read (409 otherwise)."""
    object_id = call.path_int("id")
    values = provided(call.body, OBJECTS.writable)
    async with deps(call).pool.acquire() as conn, conn.transaction():
        row = await update(conn, OBJECTS, object_id, call.body.version, values)
        await audit(conn, call, "object.update", "object", object_id, {"fields": sorted(values)})
    return object_out(row)


@router.post("/api/v1/objects/{id}/deactivate", body=VersionBody, response=ObjectOut, permission="objects.edit", tags=("objects",))
async def deactivate_object(call: Call) -> ObjectOut:
    """Close an object: it stays in history, takes no new configuration."""
    object_id = call.path_int("id")
    async with deps(call).pool.acquire() as conn, conn.transaction():
        row = await update(conn, OBJECTS, object_id, call.body.version, {"status": "CLOSED"})
        await audit(conn, call, "object.deactivate", "object", object_id)
    return object_out(row)


@router.post("/api/v1/objects/{id}/service-mode", body=ServiceModeBody, response=ObjectOut, permission="objects.edit",
             tags=("objects",))
async def set_service_mode(call: Call) -> ObjectOut:
    """Service mode on (with reason and optional end) or off. Alarms keep arriving, silenced."""
    object_id = call.path_int("id")
    body: ServiceModeBody = call.body
    if body.on and len(body.reason.strip()) < 3:
        raise invalid("say why the object goes into service mode", {"field": "reason"})
    if body.until is not None and body.until.tzinfo is None:
        raise invalid("`until` needs a time zone (UTC: a trailing Z)", {"field": "until"})
    values = ({"status": "SERVICE", "service_mode_reason": body.reason.strip(), "service_mode_until": body.until}
              if body.on else {"status": "ACTIVE", "service_mode_reason": None, "service_mode_until": None})
    async with deps(call).pool.acquire() as conn, conn.transaction():
        current = await conn.fetchrow(SQL_ONE, object_id)
        if current is not None and current["status"] == "CLOSED":
            raise invalid("a closed object cannot change service mode")
        row = await update(conn, OBJECTS, object_id, body.version, values)
        await audit(conn, call, "object.service_mode", "object", object_id,
                    {"on": body.on, "reason": body.reason, "until": body.until.isoformat() if body.until else None})
        await write_outbox(conn, [OutboxItem("object.updated", object_id, {"object": msgspec.to_builtins(object_out(row))})])
    return object_out(row)


@router.get("/api/v1/objects/{id}/contacts", permission="objects.view", tags=("objects",))
async def list_contacts(call: Call) -> list[dict[str, Any]]:
    """The object's contacts in call order."""
    object_id = call.path_int("id")
    await visible_object(call, object_id)
    return [record(r) for r in await deps(call).pool.fetch(SQL_CONTACTS, object_id)]


@router.post("/api/v1/objects/{id}/contacts", body=ContactIn, permission="objects.edit", status=201, tags=("objects",))
async def create_contact(call: Call) -> dict[str, Any]:
    """Add a contact."""
    object_id = call.path_int("id")
    await visible_object(call, object_id)
    async with deps(call).pool.acquire() as conn, conn.transaction():
        row = await insert(conn, CONTACTS, {**msgspec.structs.asdict(call.body), "object_id": object_id})
        await audit(conn, call, "contact.create", "object", object_id, {"contact_id": row["id"]})
    return record(row)


@router.patch("/api/v1/contacts/{id}", body=ContactPatch, permission="objects.edit", tags=("objects",))
async def update_contact(call: Call) -> dict[str, Any]:
    """Change a contact (versioned)."""
    contact_id = call.path_int("id")
    values = provided(call.body, CONTACTS.writable)
    values.pop("object_id", None)
    async with deps(call).pool.acquire() as conn, conn.transaction():
        row = await update(conn, CONTACTS, contact_id, call.body.version, values)
        await audit(conn, call, "contact.update", "contact", contact_id, {"fields": sorted(values)})
    return record(row)


@router.get("/api/v1/objects/{id}/procedures", permission="objects.view", tags=("objects",))
async def list_procedures(call: Call) -> list[dict[str, Any]]:
    """What the operator must do, per alarm type."""
    object_id = call.path_int("id")
    await visible_object(call, object_id)
    return [record(r) for r in await deps(call).pool.fetch(SQL_PROCEDURES, object_id)]


@router.post("/api/v1/objects/{id}/procedures", body=ProcedureIn, permission="objects.edit", status=201, tags=("objects",))
async def create_procedure(call: Call) -> dict[str, Any]:
    """Add the procedure for one alarm type (one per type)."""
    object_id = call.path_int("id")
    await visible_object(call, object_id)
    async with deps(call).pool.acquire() as conn, conn.transaction():
        row = await insert(conn, PROCEDURES, {**msgspec.structs.asdict(call.body), "object_id": object_id})
        await audit(conn, call, "procedure.create", "object", object_id, {"alarm_type": row["alarm_type"]})
    return record(row)


@router.patch("/api/v1/procedures/{id}", body=ProcedurePatch, permission="objects.edit", tags=("objects",))
async def update_procedure(call: Call) -> dict[str, Any]:
    """Change a procedure's steps (versioned)."""
    procedure_id = call.path_int("id")
    values = provided(call.body, ("steps",))
    async with deps(call).pool.acquire() as conn, conn.transaction():
        row = await update(conn, PROCEDURES, procedure_id, call.body.version, values)
        await audit(conn, call, "procedure.update", "procedure", procedure_id)
    return record(row)


@router.delete("/api/v1/contacts/{id}", permission="objects.edit", status=204, tags=("objects",))
async def delete_contact(call: Call) -> None:
    """Remove a contact (a keyholder who left). Calls already logged keep the name and number they
    were made to; the audit entry keeps what the contact was."""
    contact_id = call.path_int("id")
    async with deps(call).pool.acquire() as conn, conn.transaction():
        row = await delete_owned(conn, CONTACTS, contact_id, object_filter(call.user), CONTACTS.writable)
        await audit(conn, call, "contact.delete", "contact", contact_id, dict(row))


@router.delete("/api/v1/procedures/{id}", permission="objects.edit", status=204, tags=("objects",))
async def delete_procedure(call: Call) -> None:
    """Remove a procedure. Alarms that copied its steps into their checklist keep them; the audit
    entry keeps the steps."""
    procedure_id = call.path_int("id")
    async with deps(call).pool.acquire() as conn, conn.transaction():
        row = await delete_owned(conn, PROCEDURES, procedure_id, object_filter(call.user), PROCEDURES.writable)
        await audit(conn, call, "procedure.delete", "procedure", procedure_id, dict(row))
