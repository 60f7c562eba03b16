"""Panels with their zones, partitions and outputs, their write-only integration keys, and the
panels' live state and history."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from firmware_bridges.satel.protocol.crypto import derive_aes_key
from hub.api.app import deps
from hub.api.common import NonEmpty, PageQuery, record
from hub.api.crud import Table, audit, insert, provided, update
from hub.api.errors import invalid, not_found
from hub.api.objects_api import visible_object
from hub.api.permissions import require_object
from hub.api.routing import Call, Router
from hub.api.secrets_api import SECRET_BOX_KEY
from hub.secret_box import SecretBox

router = Router()

PANELS = Table("panels", ("object_id", "edge_id", "source", "model", "host", "port"), "panel")
ZONES = Table("zones", ("panel_id", "number", "name", "partition_number", "default_priority", "priority_override"), "zone")
PARTITIONS = Table("partitions", ("panel_id", "number", "name"), "partition")
OUTPUTS = Table("outputs", ("panel_id", "number", "name"), "output")

PriorityName = Literal["CRITICAL", "HIGH", "NORMAL", "LOW"]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]


class PanelIn(msgspec.Struct, forbid_unknown_fields=True):
    object_id: int
    edge_id: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    source: NonEmpty
    model: Annotated[str, msgspec.Meta(max_length=100)] = ""
    host: Annotated[str, msgspec.Meta(max_length=255)] = ""
    port: Port | None = None
    # Write-only: sealed at rest, never answered; "" or null is no key. Checked in the handler
    # (checked_key) so the refusal names the rule and never echoes the value.
    integration_key: str | None = None


class PanelPatch(msgspec.Struct, forbid_unknown_fields=True):
    version: Annotated[int, msgspec.Meta(ge=1)]
    model: Annotated[str, msgspec.Meta(max_length=100)] | UnsetType = UNSET
    host: Annotated[str, msgspec.Meta(max_length=255)] | UnsetType = UNSET
    port: Port | None | UnsetType = UNSET
    integration_key: str | None | UnsetType = UNSET  # "" or null clears it; absent keeps it


class ZoneIn(msgspec.Struct, forbid_unknown_fields=True):
    number: Annotated[int, msgspec.Meta(ge=1, le=256)]
    name: Annotated[str, msgspec.Meta(max_length=100)] = ""
    partition_number: Annotated[int, msgspec.Meta(ge=1, le=32)] | None = None
    default_priority: PriorityName = "NORMAL"
    priority_override: dict[str, PriorityName] = {}


class ZonePatch(msgspec.Struct, forbid_unknown_fields=True):
    version: Annotated[int, msgspec.Meta(ge=1)]
    name: Annotated[str, msgspec.Meta(max_length=100)] | UnsetType = UNSET
    partition_number: Annotated[int, msgspec.Meta(ge=1, le=32)] | None | UnsetType = UNSET
    default_priority: PriorityName | UnsetType = UNSET
    priority_override: dict[str, PriorityName] | UnsetType = UNSET


class PartIn(msgspec.Struct, forbid_unknown_fields=True):
    number: Annotated[int, msgspec.Meta(ge=1, le=256)]
    name: Annotated[str, msgspec.Meta(max_length=100)] = ""


class PartPatch(msgspec.Struct, forbid_unknown_fields=True):
    version: Annotated[int, msgspec.Meta(ge=1)]
    name: Annotated[str, msgspec.Meta(max_length=100)] | UnsetType = UNSET


class HistoryQuery(PageQuery, forbid_unknown_fields=True):
    element: Literal["partition", "zone", "output"] | None = None
    since: datetime | None = None
    until: datetime | None = None


SQL_PANEL = """
SELECT id, object_id, edge_id, source, model, host, port, link_status, link_changed_at, version,
       integration_key_enc IS NOT NULL AS has_integration_key
FROM panels WHERE id = $1
"""
SQL_CHILDREN = "SELECT * FROM {table} WHERE panel_id = $1 ORDER BY number"
SQL_STATE = "SELECT element, number, state, updated_at FROM panel_state WHERE panel_id = $1 ORDER BY element, number"
SQL_HISTORY = """
SELECT element, number, kind, state, at, event_id::text AS event_id, count(*) OVER () AS total
FROM panel_state_history
WHERE panel_id = $1 AND ($2::text IS NULL OR element = $2)
  AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4)
ORDER BY at DESC, id DESC LIMIT $5 OFFSET $6
"""
SQL_PANEL_OF = "SELECT panel_id FROM {table} WHERE id = $1"
SQL_SET_KEY = "UPDATE panels SET integration_key_enc = $2 WHERE id = $1"


def integration_key_aad(panel_id: int) -> bytes:
    """The associated data a panel's integration key is sealed with: a sealed key copied to another
    panel's row does not open."""
    return f"panel_integration_key:{panel_id}".encode()


def checked_key(value: str | None) -> str | None:
    """The integration key to store, None for none ("" or null); 422 naming the field for a key the
    ETHM-1 would not take (firmware_bridges.satel.protocol.crypto: 1-12 ASCII characters)."""
    if not value:
        return None
    try:
        derive_aes_key(value)
    except ValueError as exc:  # its message states the rule, never the key
        raise invalid(str(exc), {"field": "integration_key"}) from None
    return value


def _sealed_key(call: Call, panel_id: int, key: str | None) -> bytes | None:
    box: SecretBox = deps(call).extra[SECRET_BOX_KEY]
    return None if key is None else box.encrypt(key.encode("ascii"), integration_key_aad(panel_id))


def _key_audit(key: str | None) -> dict[str, str]:
    # The audit row says what happened to the key, never what it is.
    return {"integration_key": "set" if key is not None else "cleared"}


def _panel_json(row: Any) -> dict[str, Any]:
    return record(row)


async def _visible_panel(call: Call, panel_id: int) -> Any:
    row = await deps(call).pool.fetchrow(SQL_PANEL, panel_id)
    if row is None:
        raise not_found("panel")
    require_object(call.user, row["object_id"], "panel")
    return row


# carries_secret: the body may hold the integration key, and a replay key would keep the body's
# unsalted SHA-256 (hub.api.idempotency), against which a 12-character key can be guessed offline.
# A retry after a lost answer still creates nothing twice: (edge_id, source) is unique (409).
@router.post("/api/v1/panels", body=PanelIn, permission="objects.edit", status=201, carries_secret=True,
             tags=("panels",))
async def create_panel(call: Call) -> dict[str, Any]:
    """Add a panel to an object, naming the edge that owns it and its id there, optionally with
    its integration key (write-only). Refuses Idempotency-Key (400 idempotency_not_allowed)."""
    body: PanelIn = call.body
    await visible_object(call, body.object_id)
    key = checked_key(body.integration_key)
    async with deps(call).pool.acquire() as conn, conn.transaction():
        row = await insert(conn, PANELS, msgspec.structs.asdict(body))
        details: dict[str, Any] = {"object_id": row["object_id"]}
        if key is not None:
            await conn.execute(SQL_SET_KEY, row["id"], _sealed_key(call, row["id"], key))
            details |= _key_audit(key)
        await audit(conn, call, "panel.create", "panel", row["id"], details)
    return _panel_json(await deps(call).pool.fetchrow(SQL_PANEL, row["id"]))


@router.get("/api/v1/panels/{id}", permission="objects.view", tags=("panels",))
async def get_panel(call: Call) -> dict[str, Any]:
    """A panel with its partitions, zones and outputs (never its integration key)."""
    panel_id = call.path_int("id")
    row = await _visible_panel(call, panel_id)
    pool = deps(call).pool
    out = _panel_json(row)
    for table in ("partitions", "zones", "outputs"):
        out[table] = [record(r) for r in await pool.fetch(SQL_CHILDREN.format(table=table), panel_id)]
    return out


@router.patch("/api/v1/panels/{id}", body=PanelPatch, permission="objects.edit", tags=("panels",))
async def update_panel(call: Call) -> dict[str, Any]:
    """Change a panel's model, address or integration key (write-only; "" or null clears it)
    (versioned)."""
    panel_id = call.path_int("id")
    body: PanelPatch = call.body
    values = provided(body, ("model", "host", "port"))
    details: dict[str, Any] = {"fields": sorted(values)}
    changes_key = body.integration_key is not UNSET
    key = checked_key(body.integration_key) if changes_key else None  # type: ignore[arg-type]
    async with deps(call).pool.acquire() as conn, conn.transaction():
        # Checks the version and bumps it once, with or without other fields; the key follows
        # under the row lock that update took.
        await update(conn, PANELS, panel_id, body.version, values)
        if changes_key:
            await conn.execute(SQL_SET_KEY, panel_id, _sealed_key(call, panel_id, key))
            details = {"fields": sorted([*values, "integration_key"]), **_key_audit(key)}
        await audit(conn, call, "panel.update", "panel", panel_id, details)
    return _panel_json(await deps(call).pool.fetchrow(SQL_PANEL, panel_id))


def _child_routes(table: Table, body_in: type, body_patch: type, plural: str) -> None:
    async def list_children(call: Call) -> list[dict[str, Any]]:
        panel_id = call.path_int("id")
        await _visible_panel(call, panel_id)
        return [record(r) for r in await deps(call).pool.fetch(SQL_CHILDREN.format(table=table.name), panel_id)]

    async def create_child(call: Call) -> dict[str, Any]:
        panel_id = call.path_int("id")
        await _visible_panel(call, panel_id)
        values = msgspec.to_builtins(call.body)
        if "priority_override" in values:
            values["priority_override"] = msgspec.json.encode(values["priority_override"]).decode()
        async with deps(call).pool.acquire() as conn, conn.transaction():
            row = await insert(conn, table, {**values, "panel_id": panel_id})
            await audit(conn, call, f"{table.label}.create", "panel", panel_id, {"number": row["number"]})
        return record(row)

    async def update_child(call: Call) -> dict[str, Any]:
        child_id = call.path_int("id")
        values = provided(call.body, table.writable)
        values.pop("panel_id", None)
        if "priority_override" in values:
            values["priority_override"] = msgspec.json.encode(values["priority_override"]).decode()
        async with deps(call).pool.acquire() as conn, conn.transaction():
            row = await update(conn, table, child_id, call.body.version, values)
            await audit(conn, call, f"{table.label}.update", table.label, child_id, {"fields": sorted(values)})
        return record(row)

    for fn, verb in ((list_children, "list"), (create_child, "create"), (update_child, "update")):
        fn.__name__ = f"{verb}_{table.name}"
    router.get(f"/api/v1/panels/{{id}}/{plural}", permission="objects.view", summary=f"The panel's {plural}",
               tags=("panels",))(list_children)
    router.post(f"/api/v1/panels/{{id}}/{plural}", body=body_in, permission="objects.edit", status=201,
                summary=f"Add a {table.label}", tags=("panels",))(create_child)
    router.patch(f"/api/v1/{plural}/{{id}}", body=body_patch, permission="objects.edit",
                 summary=f"Change a {table.label} (versioned)", tags=("panels",))(update_child)


_child_routes(ZONES, ZoneIn, ZonePatch, "zones")
_child_routes(PARTITIONS, PartIn, PartPatch, "partitions")
_child_routes(OUTPUTS, PartIn, PartPatch, "outputs")


@router.get("/api/v1/panels/{id}/state", permission="objects.view", tags=("panels",))
async def panel_state(call: Call) -> dict[str, Any]:
    """The panel's current partition, zone and output states; UNKNOWN while its link is down."""
    panel_id = call.path_int("id")
    row = await _visible_panel(call, panel_id)
    rows = await deps(call).pool.fetch(SQL_STATE, panel_id)
    return {
        "panel_id": panel_id,
        "link_status": row["link_status"],
        "stale": row["link_status"] != "CONNECTED",
        "elements": [record(r) | {"state": msgspec.json.decode(r["state"])} for r in rows],
    }


@router.get("/api/v1/panels/{id}/history", query=HistoryQuery, permission="objects.view", tags=("panels",))
async def panel_history(call: Call) -> dict[str, Any]:
    """The state timeline of the panel's partitions, zones and outputs, newest first."""
    panel_id = call.path_int("id")
    await _visible_panel(call, panel_id)
    q: HistoryQuery = call.query
    rows = await deps(call).pool.fetch(SQL_HISTORY, panel_id, q.element, q.since, q.until, q.capped_limit, q.offset)
    return {
        "items": [{k: v for k, v in record(r).items() if k != "total"} | {"state": msgspec.json.decode(r["state"])}
                  for r in rows],
        "total": rows[0]["total"] if rows else 0, "limit": q.capped_limit, "offset": q.offset,
    }
