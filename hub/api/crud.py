"""Versioned inserts, partial updates and deletes for the admin resources, and the audit entry that
goes with every change. Table and column names come from code, never from requests; values are always
parameters."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import asyncpg
import msgspec

from hub.api.errors import conflict, invalid, not_found
from hub.api.routing import Call
from shared.logs import request_id

SQL_AUDIT = """
INSERT INTO audit_log (actor, action, target_type, target_id, details, request_id)
VALUES ($1, $2, $3, $4, $5::jsonb, $6)
"""


@dataclass(frozen=True)
class Table:
    """A table the API edits: its name, what a request may set, and how to say it in messages."""

    name: str
    writable: tuple[str, ...]
    label: str


def provided(struct: msgspec.Struct, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The fields of a request body that were sent (UNSET ones left out) and may be written."""
    return {f: v for f in allowed if (v := getattr(struct, f, msgspec.UNSET)) is not msgspec.UNSET}


async def audit(conn: asyncpg.Connection, call: Call, action: str, target_type: str, target_id: Any,
                details: dict[str, Any] | None = None) -> None:
    """Append who changed what to the audit log, with the request id and client address."""
    payload = {**(details or {}), "ip": call.request.remote}
    await conn.execute(SQL_AUDIT, call.user.actor, action, target_type, str(target_id),
                       msgspec.json.encode(payload).decode(), request_id.get())


def _fk_error(exc: asyncpg.ForeignKeyViolationError) -> Exception:
    return invalid("a referenced record does not exist", {"constraint": exc.constraint_name})


@contextmanager
def _constraint_errors(table: Table) -> Iterator[None]:
    """A constraint PostgreSQL enforced, as the API error the client can act on."""
    try:
        yield
    except asyncpg.ForeignKeyViolationError as exc:
        raise _fk_error(exc) from None
    except asyncpg.UniqueViolationError as exc:
        raise conflict(f"this {table.label} already exists", {"constraint": exc.constraint_name}) from None
    except asyncpg.CheckViolationError as exc:
        raise invalid(f"the {table.label} is invalid", {"constraint": exc.constraint_name}) from None


async def insert(conn: asyncpg.Connection, table: Table, values: dict[str, Any]) -> asyncpg.Record:
    """Insert a row; 422 for a missing reference, 409 for a duplicate."""
    cols = [c for c in values if c in table.writable]
    sql = (f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES "
           f"({', '.join(f'${i + 1}' for i in range(len(cols)))}) RETURNING *")
    with _constraint_errors(table):
        return await conn.fetchrow(sql, *(values[c] for c in cols))


async def update(conn: asyncpg.Connection, table: Table, row_id: int, version: int,
                 values: dict[str, Any]) -> asyncpg.Record:
    """Update the given columns if `version` is current (bumping it); 404 if missing, 409 if stale."""
    cols = [c for c in values if c in table.writable]
    sets = [f"{c} = ${i + 3}" for i, c in enumerate(cols)] + ["version = version + 1"]
    if table.name == "objects":
        sets.append("updated_at = now()")
    sql = f"UPDATE {table.name} SET {', '.join(sets)} WHERE id = $1 AND version = $2 RETURNING *"
    with _constraint_errors(table):
        row = await conn.fetchrow(sql, row_id, version, *(values[c] for c in cols))
    if row is not None:
        return row
    current = await conn.fetchval(f"SELECT version FROM {table.name} WHERE id = $1", row_id)
    if current is None:
        raise not_found(table.label)
    raise conflict("Data changed — refreshed", {"current_version": current, "your_version": version})


async def delete_owned(conn: asyncpg.Connection, table: Table, row_id: int, objects: list[int] | None,
                       returning: tuple[str, ...]) -> asyncpg.Record:
    """Delete one row that belongs to an object (a contact, a procedure, a secret) and return
    `returning` of it for the audit entry; 404 when it does not exist or its object is outside
    `objects` (the caller's scope, hub.api.permissions.object_filter), alike."""
    sql = (f"DELETE FROM {table.name} WHERE id = $1 AND ($2::int8[] IS NULL OR object_id = ANY($2)) "
           f"RETURNING {', '.join(returning)}")
    # Nothing that references these rows blocks the delete: a dispatch entry keeps its copy of the
    # contact's name and number (its contact_id is set to NULL), a checklist its copy of the steps.
    row = await conn.fetchrow(sql, row_id, objects)
    if row is None:
        raise not_found(table.label)
    return row
