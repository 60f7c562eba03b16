"""Robots in PostgreSQL for the API, the command publisher and housekeeping: reading the
registry and its snapshots, leases, commands (command row, outbox row and audit row in the
caller's transaction), cancelling, desired settings, metadata, and the hub's own deadlines.
Rules come from `hub.robots.domain`; live updates are returned as outbox items for the caller to
write last (hub.db.outbox)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from hub.auth.audit import audit
from hub.db.outbox import OutboxItem
from hub.robots.domain import CommandStatus, LeaseView, TakeDecision
from hub.robots.views import command_update, lease_update
from shared import subjects
from shared.robots import RobotCommand, Settings, encode_command

# A robot with its object's name, its edge's revocation, and its current lease (open and not past
# its expiry at $1).
SQL_ROBOTS = """
SELECT r.*, o.name AS object_name, e.revoked_at AS edge_revoked_at,
       l.id AS lease_id, l.holder_id AS lease_holder_id, l.holder_name AS lease_holder_name,
       l.fencing_token AS lease_fencing_token, l.expires_at AS lease_expires_at
FROM robots r JOIN edges e ON e.edge_id = r.edge_id LEFT JOIN objects o ON o.id = r.object_id
LEFT JOIN robot_leases l ON l.robot_id = r.robot_id AND l.released_at IS NULL AND l.expires_at > $1
"""
SQL_ROBOT = SQL_ROBOTS + "WHERE r.robot_id = $2"
SQL_ROBOTS_BY_ID = SQL_ROBOTS + "WHERE r.robot_id = ANY($2::text[]) ORDER BY r.robot_id"
SQL_LIST = f"""
SELECT x.*, count(*) OVER () AS total FROM ({SQL_ROBOTS}
    WHERE ($2::int8[] IS NULL OR r.object_id = ANY($2)) AND ($3::int8 IS NULL OR r.object_id = $3)
      AND ($4::text IS NULL OR r.edge_id = $4)) x
ORDER BY x.robot_id LIMIT $5 OFFSET $6
"""
# Who may command it, held still while a lease or a command is decided (a force-take and a command
# under the lease it ends are serialised here).
SQL_LOCK = """
SELECT r.robot_id, r.edge_id, r.object_id, r.enabled, e.revoked_at AS edge_revoked_at
FROM robots r JOIN edges e ON e.edge_id = r.edge_id WHERE r.robot_id = $1 FOR UPDATE OF r
"""
SQL_OPEN_LEASE = "SELECT * FROM robot_leases WHERE robot_id = $1 AND released_at IS NULL FOR UPDATE"
SQL_RENEW = "UPDATE robot_leases SET expires_at = $2 WHERE id = $1 RETURNING *"
SQL_END_LEASE = """
UPDATE robot_leases SET released_at = $2, ended_how = $3, forced_by = $4, force_reason = $5 WHERE id = $1 RETURNING *
"""
SQL_NEXT_TOKEN = "UPDATE robots SET fencing_seq = fencing_seq + 1 WHERE robot_id = $1 RETURNING fencing_seq"
SQL_INSERT_LEASE = """
INSERT INTO robot_leases (id, robot_id, holder_id, holder_actor, holder_name, fencing_token, taken_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *
"""
SQL_LEASE = "SELECT * FROM robot_leases WHERE id = $1 AND robot_id = $2 FOR UPDATE"
# Leases past their expiry that nothing closed yet (no take since): closed now, for the live stream.
SQL_EXPIRE_LEASES = """
UPDATE robot_leases l SET released_at = l.expires_at, ended_how = 'EXPIRED'
FROM robots r
WHERE r.robot_id = l.robot_id AND l.released_at IS NULL AND l.expires_at <= $1
RETURNING l.*, r.object_id
"""

SQL_LATEST = {
    table: f"SELECT * FROM {table} WHERE robot_id = $1 ORDER BY ord DESC, id DESC LIMIT $2"
    for table in ("robot_identity", "robot_capability", "robot_settings_reported")
}
SQL_DESIRED = "SELECT * FROM robot_settings_desired WHERE robot_id = $1"
SQL_SET_DESIRED = """
INSERT INTO robot_settings_desired (robot_id, settings, command_id, set_by, set_by_name, set_at)
VALUES ($1, $2::jsonb, $3, $4, $5, $6)
ON CONFLICT (robot_id) DO UPDATE SET settings = excluded.settings, command_id = excluded.command_id,
    set_by = excluded.set_by, set_by_name = excluded.set_by_name, set_at = excluded.set_at
RETURNING *
"""
SQL_TELEMETRY = """
SELECT * FROM robot_telemetry WHERE robot_id = $1 AND at >= $2 AND at < $3 ORDER BY at, event_id LIMIT $4
"""
SQL_METADATA = """
UPDATE robots SET display_name = coalesce($2, display_name), tags = coalesce($3, tags), notes = coalesce($4, notes),
                  enabled = coalesce($5, enabled), updated_at = $6
WHERE robot_id = $1
"""

SQL_INSERT_COMMAND = """
INSERT INTO robot_commands (id, robot_id, edge_id, object_id, kind, command_type, args, settings, fencing_token,
                            lease_id, cancel_of, requested_by, requested_name, reason, created_at, expires_at,
                            updated_at, request_id)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $13, $14, $15, $16, $15, $17)
RETURNING *
"""
SQL_INSERT_OUTBOX = """
INSERT INTO robot_command_outbox (command_id, subject, payload, created_at) VALUES ($1, $2, $3, $4)
"""
SQL_COMMAND = "SELECT * FROM robot_commands WHERE id = $1 AND robot_id = $2"
SQL_COMMANDS = """
SELECT *, count(*) OVER () AS total FROM robot_commands WHERE robot_id = $1
ORDER BY created_at DESC, id LIMIT $2 OFFSET $3
"""
# A command not yet published is cancelled by taking its outbox row away: SKIP LOCKED, so one the
# publisher is sending right now counts as in flight (the publisher locks the outbox row, then the
# command; so does this, and neither waits for the other's second lock).
SQL_CANCEL_UNSENT = """
WITH gone AS (
    DELETE FROM robot_command_outbox
    WHERE command_id = (SELECT command_id FROM robot_command_outbox WHERE command_id = $1 FOR UPDATE SKIP LOCKED)
    RETURNING command_id
)
UPDATE robot_commands c SET status = 'CANCELLED', detail = $3, finished_at = $2, updated_at = $2
FROM gone WHERE c.id = gone.command_id AND c.status = 'REQUESTED'
RETURNING c.*
"""

# The publisher's side (hub.commands.publisher): rows to send, and marking one sent.
SQL_TAKE = """
SELECT o.command_id, o.subject, o.payload, c.edge_id, c.expires_at
FROM robot_command_outbox o JOIN robot_commands c ON c.id = o.command_id
ORDER BY o.created_at LIMIT $1
FOR UPDATE OF o SKIP LOCKED
"""
SQL_SENT = """
WITH gone AS (DELETE FROM robot_command_outbox WHERE command_id = $1)
UPDATE robot_commands SET status = CASE WHEN status = 'REQUESTED' THEN 'SENT' ELSE status END,
                          sent_at = coalesce(sent_at, $2), updated_at = $2
WHERE id = $1 RETURNING *
"""
SQL_FAILED = "UPDATE robot_command_outbox SET attempts = attempts + 1, last_error = $2 WHERE command_id = $1"
SQL_COUNT = "SELECT count(*) FROM robot_command_outbox"

# SENT with no word from the edge by expires_at + grace: the edge hands nothing over after its
# expiry and reports TIMEOUT itself for a robot that never answered; the grace covers that report's
# way. ACKED and RUNNING commands are the robot's to end: the hub does not time them out.
NO_WORD = ("no word from the edge in time: the robot may or may not have acted; "
           "the edge's own word replaces this when it arrives")
SQL_OVERDUE = """
UPDATE robot_commands SET status = 'TIMEOUT', settled_by_hub = true, detail = $3, finished_at = $1, updated_at = $1
WHERE status = 'SENT' AND expires_at < $2
RETURNING *
"""
NOT_SENT = "not sent: it expired before the hub could hand it to NATS"
SQL_UNSENT_EXPIRED = """
WITH gone AS (
    DELETE FROM robot_command_outbox o USING robot_commands c
    WHERE o.command_id = c.id AND c.status = 'REQUESTED' AND c.expires_at <= $2 AND ($3::uuid IS NULL OR c.id = $3)
)
UPDATE robot_commands SET status = 'TIMEOUT', settled_by_hub = true, detail = $4, finished_at = $1, updated_at = $1
WHERE status = 'REQUESTED' AND expires_at <= $2 AND ($3::uuid IS NULL OR id = $3)
RETURNING *
"""
SQL_ENSURE_TELEMETRY = "SELECT ensure_robot_telemetry_partitions($1::timestamptz, $2)"
SQL_PRUNE_TELEMETRY = "SELECT drop_robot_telemetry_before($1::timestamptz)"


@dataclass(frozen=True)
class Who:
    """Who acts: the user id, the actor string the audit log uses, a readable name, what the edge
    is told (`user:<login>`), and the request's id and address."""

    user_id: int
    actor: str
    name: str
    wire: str
    ip: str | None = None
    request_id: str | None = None


class Gone(Exception):
    """No such robot, lease or command (or not the caller's to see)."""


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _jsonb(value: Any) -> str | None:
    return msgspec.json.encode(value).decode() if value is not None else None


# ---- reading ----------------------------------------------------------------------------------

async def robot(conn: asyncpg.Connection | asyncpg.Pool, robot_id: str, now: datetime) -> Any | None:
    """One robot with its current lease, or None."""
    return await conn.fetchrow(SQL_ROBOT, now, robot_id)


async def robots_by_id(conn: asyncpg.Connection, robot_ids: list[str], now: datetime) -> list[Any]:
    """These robots with their current leases, by id."""
    return await conn.fetch(SQL_ROBOTS_BY_ID, now, sorted(robot_ids))


async def list_robots(conn: asyncpg.Connection | asyncpg.Pool, now: datetime, scope: list[int] | None,
                      object_id: int | None, edge_id: str | None, limit: int, offset: int) -> tuple[list[Any], int]:
    """Robots within `scope` (None: all), optionally of one object or edge, by id; and how many match."""
    rows = await conn.fetch(SQL_LIST, now, scope, object_id, edge_id, limit, offset)
    return rows, (rows[0]["total"] if rows else 0)


async def lock(conn: asyncpg.Connection, robot_id: str) -> Any:
    """The robot's row, locked for a lease or command decision; Gone when there is none."""
    row = await conn.fetchrow(SQL_LOCK, robot_id)
    if row is None:
        raise Gone("robot")
    return row


async def snapshots(conn: asyncpg.Connection | asyncpg.Pool, table: str, robot_id: str, limit: int = 1) -> list[Any]:
    """The newest `limit` reports of `table` (robot_identity, robot_capability,
    robot_settings_reported), newest first."""
    return await conn.fetch(SQL_LATEST[table], robot_id, limit)


async def latest(conn: asyncpg.Connection | asyncpg.Pool, table: str, robot_id: str) -> Any | None:
    rows = await snapshots(conn, table, robot_id)
    return rows[0] if rows else None


async def desired(conn: asyncpg.Connection | asyncpg.Pool, robot_id: str) -> Any | None:
    return await conn.fetchrow(SQL_DESIRED, robot_id)


async def telemetry(conn: asyncpg.Connection | asyncpg.Pool, robot_id: str, since: datetime, until: datetime,
                    limit: int) -> list[Any]:
    """Samples with since <= at < until, oldest first, at most `limit`."""
    return await conn.fetch(SQL_TELEMETRY, robot_id, since, until, limit)


async def command(conn: asyncpg.Connection | asyncpg.Pool, robot_id: str, command_id: str) -> Any | None:
    """One command of this robot, or None."""
    key = _uuid(command_id)
    return await conn.fetchrow(SQL_COMMAND, key, robot_id) if key is not None else None


async def commands(conn: asyncpg.Connection | asyncpg.Pool, robot_id: str, limit: int, offset: int
                   ) -> tuple[list[Any], int]:
    """A robot's commands, newest first, and how many it has."""
    rows = await conn.fetch(SQL_COMMANDS, robot_id, limit, offset)
    return rows, (rows[0]["total"] if rows else 0)


# ---- leases -----------------------------------------------------------------------------------

def lease_view(row: Any | None) -> LeaseView | None:
    if row is None:
        return None
    return LeaseView(str(row["id"]), row["holder_id"], row["holder_name"], row["fencing_token"], row["expires_at"])


async def open_lease(conn: asyncpg.Connection, robot_id: str) -> Any | None:
    """The robot's open lease row (maybe past its expiry), locked; the robot must be locked first."""
    return await conn.fetchrow(SQL_OPEN_LEASE, robot_id)


async def take_lease(conn: asyncpg.Connection, robot_row: Any, current: Any | None, decision: TakeDecision,
                     who: Who, now: datetime, force_reason: str | None) -> tuple[Any, Any | None, list[OutboxItem]]:
    """Carry out `decision` (hub.robots.domain.decide_take) on the locked robot: renew the caller's
    lease, or end the open one (EXPIRED or FORCED) and make a new lease with the robot's next
    fencing token; audited (not a renewal). Returns the lease, the one ended, and the live update."""
    robot_id = robot_row["robot_id"]
    if decision.action == "renew":
        assert current is not None
        lease = await conn.fetchrow(SQL_RENEW, current["id"], decision.expires_at)
        return lease, None, [lease_update(robot_id, robot_row["object_id"], lease, None)]
    ended = None
    if current is not None and decision.ends == "EXPIRED":
        ended = await conn.fetchrow(SQL_END_LEASE, current["id"], current["expires_at"], "EXPIRED", None, None)
    elif current is not None:
        ended = await conn.fetchrow(SQL_END_LEASE, current["id"], now, "FORCED", who.actor, force_reason)
    token = await conn.fetchval(SQL_NEXT_TOKEN, robot_id)
    lease = await conn.fetchrow(SQL_INSERT_LEASE, uuid.uuid4(), robot_id, who.user_id, who.actor, who.name, token, now,
                                decision.expires_at)
    forced = decision.ends == "FORCED" and ended is not None
    await audit(conn, now, who.actor, "robot.lease.force" if forced else "robot.lease.take", "robot", robot_id, who.ip,
                lease_id=str(lease["id"]), fencing_token=token, expires_at=decision.expires_at.isoformat(),
                **({"previous_holder": ended["holder_actor"], "previous_lease_id": str(ended["id"]),
                    "reason": force_reason} if forced and ended is not None else {}))
    return lease, ended, [lease_update(robot_id, robot_row["object_id"], lease, ended)]


class NotHolder(Exception):
    """Someone releases a lease that is not theirs."""

    def __init__(self, lease: Any) -> None:
        super().__init__(f"this lease is {lease['holder_name']}'s, not yours")
        self.lease = lease


async def release_lease(conn: asyncpg.Connection, robot_row: Any, lease_id: str, who: Who, now: datetime
                        ) -> list[OutboxItem]:
    """End the caller's lease; Gone for a lease this robot never had, NotHolder for another's.
    A lease already over is left as it is (releasing twice changes nothing)."""
    key = _uuid(lease_id)
    row = await conn.fetchrow(SQL_LEASE, key, robot_row["robot_id"]) if key is not None else None
    if row is None:
        raise Gone("lease")
    if row["holder_id"] != who.user_id:
        raise NotHolder(row)
    if row["released_at"] is not None or row["expires_at"] <= now:
        return []
    ended = await conn.fetchrow(SQL_END_LEASE, row["id"], now, "RELEASED", None, None)
    await audit(conn, now, who.actor, "robot.lease.release", "robot", robot_row["robot_id"], who.ip,
                lease_id=lease_id, fencing_token=row["fencing_token"])
    return [lease_update(robot_row["robot_id"], robot_row["object_id"], None, ended)]


async def expire_leases(conn: asyncpg.Connection, now: datetime) -> list[OutboxItem]:
    """Close the leases past their expiry (they ended by time already) and say so on the live
    stream; returns the updates for the caller to write."""
    return [lease_update(r["robot_id"], r["object_id"], None, r) for r in await conn.fetch(SQL_EXPIRE_LEASES, now)]


# ---- commands ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class NewCommand:
    """What to send a robot: a command (`kind` "cmd") or desired settings ("settings.desired")."""

    kind: str
    command_type: str
    args: dict[str, Any]
    settings: dict[str, Any] | None = None
    reason: str | None = None
    cancel_of: uuid.UUID | None = None


async def create_command(conn: asyncpg.Connection, robot_row: Any, new: NewCommand, lease: LeaseView | None,
                         who: Who, now: datetime, ttl: timedelta) -> tuple[Any, list[OutboxItem]]:
    """Write the command, its outbox row (the RobotCommand the publisher sends, with the lease's
    fencing token) and its audit row (`robot.command`) in the caller's transaction; returns the row
    and its live update."""
    command_id = uuid.uuid4()
    expires_at = now + ttl
    row = await conn.fetchrow(
        SQL_INSERT_COMMAND, command_id, robot_row["robot_id"], robot_row["edge_id"], robot_row["object_id"], new.kind,
        new.command_type, _jsonb(new.args), _jsonb(new.settings), lease.fencing_token if lease else None,
        _uuid(lease.lease_id) if lease else None, new.cancel_of, who.actor, who.name, new.reason, now, expires_at,
        who.request_id)
    wire = RobotCommand(
        id=str(command_id), edge=robot_row["edge_id"], robot=robot_row["robot_id"], kind=new.kind,  # type: ignore[arg-type]
        who=who.wire, issued_at=now, expires_at=expires_at,
        command_type=new.command_type if new.kind == "cmd" else "", args=new.args if new.kind == "cmd" else {},
        settings=msgspec.convert(new.settings, Settings) if new.settings is not None else None,
        fencing_token=lease.fencing_token if lease else None)
    await conn.execute(SQL_INSERT_OUTBOX, command_id, subjects.edge_commands(robot_row["edge_id"]),
                       encode_command(wire), now)
    await audit(conn, now, who.actor, "robot.command", "robot", robot_row["robot_id"], who.ip,
                command_id=str(command_id), kind=new.kind, command_type=new.command_type, payload=new.args,
                settings=new.settings, fencing_token=wire.fencing_token, lease_id=lease.lease_id if lease else None,
                reason=new.reason, cancel_of=str(new.cancel_of) if new.cancel_of else None)
    return row, [command_update(row)]


class AlreadyFinal(Exception):
    """A command that has ended cannot be cancelled."""


class EdgeRevoked(Exception):
    """The robot's edge is revoked: nothing reaches it."""


async def cancel_command(conn: asyncpg.Connection, robot_row: Any, command_id: str, who: Who, now: datetime,
                         ttl: timedelta) -> tuple[Any, Any | None, list[OutboxItem]]:
    """Cancel a command: one not yet published is CANCELLED at once and never sent; one in flight
    gets a `cancel` robot command (its CANCELLED ack settles it). Returns the command, the cancel
    command sent (None when it was cancelled at once) and the live updates. Gone for a command
    this robot never had; AlreadyFinal for one that has ended."""
    target = await command(conn, robot_row["robot_id"], command_id)
    if target is None:
        raise Gone("command")
    if CommandStatus(target["status"]).final:
        raise AlreadyFinal(f"the command is {target['status']} already")
    cancelled = await conn.fetchrow(SQL_CANCEL_UNSENT, target["id"], now, f"cancelled by {who.name} before it was sent")
    if cancelled is not None:
        await audit(conn, now, who.actor, "robot.command.cancel", "robot", robot_row["robot_id"], who.ip,
                    command_id=command_id, sent=False)
        return cancelled, None, [command_update(cancelled)]
    if robot_row["edge_revoked_at"] is not None:
        raise EdgeRevoked(f"edge {robot_row['edge_id']} is revoked: no cancel can reach it")
    cancel, items = await create_command(
        conn, robot_row, NewCommand("cmd", "cancel", {"commandId": str(target["id"])}, cancel_of=target["id"]),
        None, who, now, ttl)
    return target, cancel, items


async def set_desired(conn: asyncpg.Connection, robot_id: str, settings: dict[str, Any], command_id: uuid.UUID,
                      who: Who, now: datetime) -> Any:
    """Record what the hub now wants the robot to run with, and the command carrying it."""
    return await conn.fetchrow(SQL_SET_DESIRED, robot_id, _jsonb(settings), command_id, who.actor, who.name, now)


async def edit_metadata(conn: asyncpg.Connection, robot_id: str, values: dict[str, Any], now: datetime) -> None:
    """Set the given metadata (display_name, tags, notes, enabled); absent ones stay."""
    await conn.execute(SQL_METADATA, robot_id, values.get("display_name"), values.get("tags"), values.get("notes"),
                       values.get("enabled"), now)


# ---- the publisher's and housekeeping's side ---------------------------------------------------

async def mark_sent(conn: asyncpg.Connection, command_id: uuid.UUID, now: datetime) -> list[OutboxItem]:
    """JetStream has the command: SENT (unless an ack came first), its outbox row gone."""
    row = await conn.fetchrow(SQL_SENT, command_id, now)
    return [command_update(row)] if row is not None else []


async def expire_unsent(conn: asyncpg.Connection, now: datetime, expired_by: datetime,
                        command_id: uuid.UUID | None = None) -> list[OutboxItem]:
    """End as TIMEOUT (not sent) the REQUESTED commands (or the one `command_id`) expired by
    `expired_by`, dropping their outbox rows: they are never sent."""
    return [command_update(r) for r in await conn.fetch(SQL_UNSENT_EXPIRED, now, expired_by, command_id, NOT_SENT)]


async def time_out_overdue(conn: asyncpg.Connection, now: datetime, settle_grace: timedelta) -> list[OutboxItem]:
    """SENT commands with no word by their expiry + grace become TIMEOUT (the edge's word, if it
    comes, replaces it), and REQUESTED ones the publisher never sent end likewise; returns the live
    updates for the caller to write."""
    rows = await conn.fetch(SQL_OVERDUE, now, now - settle_grace, NO_WORD)
    return [command_update(r) for r in rows] + await expire_unsent(conn, now, now - settle_grace)


async def ensure_telemetry_partitions(conn: asyncpg.Connection, now: datetime, days: int) -> int:
    """Make today's and the next days' telemetry partitions if missing; how many were made."""
    return await conn.fetchval(SQL_ENSURE_TELEMETRY, now, days)


async def prune_telemetry(conn: asyncpg.Connection, now: datetime, retention: timedelta) -> int:
    """Drop telemetry older than `retention` (whole days); how many daily partitions went."""
    return await conn.fetchval(SQL_PRUNE_TELEMETRY, now - retention)
