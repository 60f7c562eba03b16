"""Panel commands in PostgreSQL: creating one (command row, outbox row, audit row and the live
update in one transaction), reading them, settling them from the edges' results, and the hub's
own deadlines. Domain rules come from `hub.commands.domain`; errors stay domain errors."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from hub.auth.audit import audit
from hub.commands.domain import CommandError, CommandRequest, Status, settle, transitional
from hub.db.outbox import OutboxItem, write_outbox
from shared import subjects
from shared.commands import ITEMS_OF, CommandResult, PanelCommand, Source, encode_command
from shared.sealing import seal

SQL_PANEL = """
SELECT p.id, p.object_id, p.edge_id, p.source, o.name AS object_name, e.public_key, e.revoked_at
FROM panels p JOIN objects o ON o.id = p.object_id JOIN edges e ON e.edge_id = p.edge_id
WHERE p.id = $1
"""
SQL_INSERT = """
INSERT INTO satel_commands (id, panel_id, object_id, edge_id, type, partitions, zones, outputs, mode, force, source,
                            requested_by, requested_name, reason, code_from, created_at, expires_at, request_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
RETURNING *
"""
SQL_INSERT_OUTBOX = """
INSERT INTO command_outbox (command_id, subject, payload, created_at) VALUES ($1, $2, $3, $4)
"""
SQL_GET = "SELECT * FROM satel_commands WHERE id = $1"
SQL_LIST = """
SELECT *, count(*) OVER () AS total FROM satel_commands
WHERE panel_id = $1 AND ($2::text[] IS NULL OR status = ANY($2))
ORDER BY created_at DESC, id LIMIT $3 OFFSET $4
"""
# An edge settles only its own commands; the first result of the edge wins (result_event set).
SQL_FOR_RESULT = "SELECT * FROM satel_commands WHERE id = $1 AND edge_id = $2 FOR UPDATE"
SQL_SETTLE = """
UPDATE satel_commands SET status = $2, late = $3, result_at = $4, result_code = $5, result_reason = $6,
                          result_event = $7
WHERE id = $1 RETURNING *
"""
# A SENT command with no result by expires_at + grace: the edge executes nothing after its expiry,
# and what it started ends within its link's command timeout, which the grace covers.
SQL_OVERDUE = """
UPDATE satel_commands SET status = 'TIMEOUT', result_at = $1,
    result_reason = 'no result from the edge in time: it may or may not have been carried out; '
                    'the edge''s own result replaces this when it arrives'
WHERE status = 'SENT' AND expires_at < $2
RETURNING *
"""
# PENDING commands expired by $2 (one, with $3): never sent now, their outbox rows go with them.
NOT_SENT = "not sent: it expired before the hub could hand it to NATS"
SQL_UNSENT_EXPIRED = """
WITH gone AS (
    DELETE FROM command_outbox o USING satel_commands c
    WHERE o.command_id = c.id AND c.status = 'PENDING' AND c.expires_at <= $2 AND ($3::uuid IS NULL OR c.id = $3)
)
UPDATE satel_commands SET status = 'EXPIRED', result_at = $1, result_reason = $4
WHERE status = 'PENDING' AND expires_at <= $2 AND ($3::uuid IS NULL OR id = $3)
RETURNING *
"""
@dataclass(frozen=True)
class Requester:
    """Who gives the command: the actor string the audit log uses, a readable name, and the
    request id of the API call (None for the scheduler)."""

    actor: str
    name: str
    source: Source = Source.MANUAL
    request_id: str | None = None
    ip: str | None = None


class PanelGone(CommandError):
    """The panel does not exist (or is not the caller's to see)."""


class EdgeRevoked(CommandError):
    """The panel's edge is revoked: nothing can reach it."""


def command_json(row: Any) -> dict[str, Any]:
    """What the API and the live stream show of a command: never a code."""
    return {
        "id": str(row["id"]), "panel_id": row["panel_id"], "object_id": row["object_id"], "edge_id": row["edge_id"],
        "type": row["type"], "partitions": list(row["partitions"]), "zones": list(row["zones"]),
        "outputs": list(row["outputs"]), "mode": row["mode"] if row["type"] == "arm" else None,
        "force": row["force"], "source": row["source"], "requested_by": row["requested_by"],
        "requested_name": row["requested_name"], "reason": row["reason"], "code_from": row["code_from"],
        "status": row["status"], "transitional": transitional(row["type"]) if Status(row["status"]).open else None,
        "created_at": row["created_at"].isoformat(), "expires_at": row["expires_at"].isoformat(),
        "sent_at": _iso(row["sent_at"]), "result_at": _iso(row["result_at"]), "result_code": row["result_code"],
        "result_reason": row["result_reason"], "late": row["late"],
    }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def command_update(row: Any) -> OutboxItem:
    """The live update (`command.updated`) for a command row."""
    return OutboxItem("command.updated", row["object_id"], {"command": command_json(row)})


async def panel_facts(conn: asyncpg.Connection | asyncpg.Pool, panel_id: int) -> Any:
    """The panel with its object and edge key; PanelGone when there is none."""
    row = await conn.fetchrow(SQL_PANEL, panel_id)
    if row is None:
        raise PanelGone("no such panel")
    return row


async def create_command(conn: asyncpg.Connection, panel: Any, req: CommandRequest, code: str, code_from: str,
                         who: Requester, now: datetime) -> Any:
    """Write the command, its outbox row (the command sealed to the panel's edge), its audit row
    and its live update, in the caller's transaction; returns the command row. `req` is checked
    (hub.commands.domain.check_request) and `code` resolved by the caller."""
    if panel["revoked_at"] is not None:
        raise EdgeRevoked(f"edge {panel['edge_id']} is revoked: no command can reach it")
    command_id = str(uuid.uuid4())
    expires_at = now + timedelta(seconds=req.expires_in_s)
    row = await conn.fetchrow(
        SQL_INSERT, uuid.UUID(command_id), panel["id"], panel["object_id"], panel["edge_id"], req.type,
        list(req.partitions), list(req.zones), list(req.outputs), req.mode or 0, req.force, who.source.value,
        who.actor, who.name, req.reason, code_from, now, expires_at, who.request_id)
    wire = PanelCommand(
        id=command_id, edge=panel["edge_id"], panel=panel["source"], type=req.type, source=who.source,  # type: ignore[arg-type]
        who=who.actor, issued_at=now, expires_at=expires_at,
        sealed_code=seal(bytes(panel["public_key"]), code.encode("ascii"), command_id.encode()),
        partitions=list(req.partitions), zones=list(req.zones), outputs=list(req.outputs), mode=req.mode or 0,
        force=req.force)
    await conn.execute(SQL_INSERT_OUTBOX, row["id"], subjects.edge_commands(panel["edge_id"]), encode_command(wire), now)
    # Who asked what of which panel and why; never the code, only where it came from.
    await audit(conn, now, who.actor, "panel.command.requested", "panel", panel["id"], who.ip,
                command_id=command_id, type=req.type, items={ITEMS_OF[req.type]: list(req.items)},
                mode=req.mode, force=req.force, reason=req.reason, source=who.source.value, code_from=code_from)
    await write_outbox(conn, [command_update(row)])
    return row


async def get_command(conn: asyncpg.Connection | asyncpg.Pool, command_id: str) -> Any | None:
    """One command row, or None."""
    try:
        key = uuid.UUID(command_id)
    except ValueError:
        return None
    return await conn.fetchrow(SQL_GET, key)


async def list_commands(conn: asyncpg.Connection | asyncpg.Pool, panel_id: int, statuses: list[str] | None,
                        limit: int, offset: int) -> tuple[list[Any], int]:
    """A panel's commands, newest first, and how many match in all."""
    rows = await conn.fetch(SQL_LIST, panel_id, statuses, limit, offset)
    return rows, (rows[0]["total"] if rows else 0)


@dataclass(frozen=True)
class ResultEvent:
    """A stored `cmd.result` event: which edge sent it, its id and body."""

    edge_id: str
    event_id: str
    at: datetime
    body: CommandResult


async def apply_results(conn: asyncpg.Connection, results: list[ResultEvent], now: datetime) -> list[OutboxItem]:
    """Settle commands from their edges' results, inside the ingest batch's transaction; returns
    the live updates. A result for another edge's command, or for no command, changes nothing."""
    items: list[OutboxItem] = []
    for r in results:
        try:
            key = uuid.UUID(r.body.command_id)
        except ValueError:
            continue
        row = await conn.fetchrow(SQL_FOR_RESULT, key, r.edge_id)
        if row is None:
            continue
        settled = settle(Status(row["status"]), row["result_event"] is not None, r.body.outcome)
        if settled is None:
            continue
        updated = await conn.fetchrow(SQL_SETTLE, key, settled.status.value, settled.late, r.at, r.body.code,
                                      r.body.reason, uuid.UUID(r.event_id))
        items.append(command_update(updated))
    return items


async def time_out_overdue(conn: asyncpg.Connection, now: datetime, settle_grace: timedelta) -> list[OutboxItem]:
    """SENT commands past their result deadline become TIMEOUT (the edge's result, if it comes,
    replaces it), and PENDING ones the publisher never sent become EXPIRED, so no command stays
    open (and no partition ARMING) for ever; returns the live updates for the caller to write."""
    rows = await conn.fetch(SQL_OVERDUE, now, now - settle_grace)
    # The publisher could not send these (NATS down, or the publisher itself failing).
    rows += await expire_unsent(conn, now, now - settle_grace)
    return [command_update(r) for r in rows]


async def expire_unsent(conn: asyncpg.Connection, now: datetime, expired_by: datetime,
                        command_id: uuid.UUID | None = None) -> list[Any]:
    """End as EXPIRED the PENDING commands (or the one `command_id`) whose expiry is at or before
    `expired_by`, dropping their outbox rows: they are never sent. Returns the commands ended."""
    return await conn.fetch(SQL_UNSENT_EXPIRED, now, expired_by, command_id, NOT_SENT)

