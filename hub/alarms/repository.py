"""The alarm repository: applies lifecycle transitions to PostgreSQL, one transaction each, with
the version guard, an audit entry and an outbox row; and the reaper/auto-closer sweep."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Callable

import asyncpg

from hub.alarms import lifecycle
from hub.alarms.apply import bundle_payload, iso_or_none
from hub.alarms.lifecycle import Bundle, LifecycleError, Status
from hub.db.outbox import OutboxItem, write_outbox

SQL_LOCK_BUNDLE = "SELECT * FROM bundle_alarms WHERE id = $1 FOR UPDATE"
# Who holds a bundle, for people: claimed_by is the actor (`user:<id>`, or `system`).
CLAIMANT_JOIN = "LEFT JOIN users cu ON cu.id = CASE WHEN {b}.claimed_by ~ '^user:[0-9]{{1,18}}$' " \
                "THEN substr({b}.claimed_by, 6)::int8 END"
# The change and its audit entry in one round trip; the object's name and the claimant's email
# come back for the API and the outbox.
SQL_APPLY = """
WITH u AS (
    UPDATE bundle_alarms SET status = $2, version = $3, claimed_by = $4, claim_expires_at = $5, ack_note = $6,
                             updated_at = $7
    WHERE id = $1 AND version = $8
    RETURNING *
), a AS (
    INSERT INTO audit_log (at, actor, action, target_type, target_id, details, request_id)
    SELECT $7, $9, $10, 'bundle_alarm', u.id::text, $11::jsonb, $12 FROM u
)
SELECT u.*, o.name AS object_name, cu.email AS claimed_by_email
FROM u LEFT JOIN objects o ON o.id = u.object_id
""" + CLAIMANT_JOIN.format(b="u")
# One sweeper at a time across hub processes: a transaction-scoped advisory lock, so a crashed
# sweeper's lock goes with its transaction.
SWEEP_LOCK_KEY = 0x56494732  # "VIG2"
SQL_DUE = """
SELECT * FROM bundle_alarms
WHERE (status = 'CLAIMING' AND claim_expires_at <= $1) OR (status = 'RESOLVED' AND updated_at <= $2)
ORDER BY id LIMIT $3
FOR UPDATE SKIP LOCKED
"""


class BundleNotFound(LifecycleError):
    code = "not_found"


def to_bundle(row: asyncpg.Record) -> Bundle:
    """The lifecycle's view of a bundle_alarms row."""
    return Bundle(
        id=row["id"], status=Status(row["status"]), version=row["version"], requires_note=row["requires_note"],
        claimed_by=row["claimed_by"], claim_expires_at=row["claim_expires_at"], ack_note=row["ack_note"],
        updated_at=row["updated_at"],
    )


def _payload(row: asyncpg.Record) -> dict[str, Any]:
    data = bundle_payload(dict(row))
    data.update(claimed_by=row["claimed_by"], claimed_by_email=row["claimed_by_email"], ack_note=row["ack_note"],
                claim_expires_at=iso_or_none(row["claim_expires_at"]))
    return data


Transition = Callable[..., Bundle]

ACTIONS: dict[str, Transition] = {
    "claim": lambda b, user, v, now, note: lifecycle.claim(b, user, v, now),
    "start": lambda b, user, v, now, note: lifecycle.start(b, user, v, now),
    "ack": lambda b, user, v, now, note: lifecycle.ack(b, user, v, now, note),
    "resolve": lambda b, user, v, now, note: lifecycle.resolve(b, user, v, now),
    "close": lambda b, user, v, now, note: lifecycle.close(b, user, v, now),
}


async def _store(conn: asyncpg.Connection, old: Bundle, new: Bundle, actor: str, action: str,
                 now: datetime, request_id: str | None, details: dict[str, Any]) -> asyncpg.Record:
    row = await conn.fetchrow(SQL_APPLY, new.id, new.status.value, new.version, new.claimed_by, new.claim_expires_at,
                              new.ack_note, now, old.version, actor, f"alarm.{action}",
                              json.dumps({"from": old.status.value, "to": new.status.value, **details}), request_id)
    if row is None:  # unreachable while the row is locked; kept as the guard the design promises
        raise lifecycle.VersionConflict(f"bundle {old.id} changed concurrently")
    return row


def _outbox_item(row: asyncpg.Record) -> OutboxItem:
    return OutboxItem("alarm.updated", row["object_id"], {"bundle": _payload(row)})


async def transition(
    conn: asyncpg.Connection, bundle_id: int, action: str, user: str, seen_version: int, now: datetime,
    note: str | None = None, request_id: str | None = None,
) -> asyncpg.Record:
    """Apply `action` (claim, start, ack, resolve, close) for `user`, who saw `seen_version`;
    returns the updated bundle row (with `object_name`). Raises a LifecycleError subclass when
    refused."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    async with conn.transaction():
        row = await conn.fetchrow(SQL_LOCK_BUNDLE, bundle_id)
        if row is None:
            raise BundleNotFound(f"no bundle {bundle_id}")
        old = to_bundle(row)
        new = ACTIONS[action](old, user, seen_version, now, note)
        row = await _store(conn, old, new, user, action, now, request_id, {"note": note} if note else {})
        await write_outbox(conn, [_outbox_item(row)])
        return row


async def sweep(conn: asyncpg.Connection, now: datetime, limit: int = 500) -> int:
    """One pass of the reaper (lapsed claims → NEW) and the auto-closer (RESOLVED and idle for
    30 min → CLOSED); returns how many bundles changed. A no-op while another hub sweeps."""
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", SWEEP_LOCK_KEY):
            return 0
        rows = await conn.fetch(SQL_DUE, now, now - lifecycle.AUTO_CLOSE_AFTER, limit)
        items = []
        for row in rows:
            old = to_bundle(row)
            new = lifecycle.reap(old, now) or lifecycle.auto_close(old, now)
            if new is None:
                continue
            action = "reaped" if new.status is Status.NEW else "auto_closed"
            items.append(_outbox_item(await _store(conn, old, new, "system", action, now, None, {})))
        await write_outbox(conn, items)
        return len(items)
