"""The alarm repository: applies lifecycle transitions to PostgreSQL, one transaction each, with
the version guard, an audit entry and an outbox row; the reaper/auto-closer and escalation
sweeps; and the bundle's checklist (docs/architecture.md §5)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

import asyncpg
from prometheus_client import Histogram

from hub.alarms import lifecycle
from hub.alarms.apply import bundle_payload, iso_or_none
from hub.alarms.checklist import check_tick, procedure_steps
from hub.alarms.lifecycle import Bundle, LifecycleError, Status
from hub.alarms.outcomes import resolution_label
from hub.alarms.people import actor_join, people, who
from hub.db.outbox import OutboxItem, write_outbox


# The seed's response times (docs/operations.md): from the bundle's first event to each claim and
# to its acknowledgement. The buckets bracket the 5-minute p95 alert.
RESPONSE_TIME = Histogram(
    "vigil_alarm_response_time_seconds", "From a bundle's first event to its claim / its acknowledgement", ["stage"],
    buckets=(5, 10, 15, 30, 60, 120, 180, 300, 600, 900, 1800, 3600, 7200),
)
#: The transitions whose time is observed; each is its own `stage`.
RESPONSE_STAGES = ("claim", "ack")


def claimant_join(bundle_alias: str) -> str:
    """Who holds a bundle, for people: claimed_by is the actor (`user:<id>`, or `system`)."""
    return actor_join("cu", f"{bundle_alias}.claimed_by")


SQL_LOCK_BUNDLE = "SELECT * FROM bundle_alarms WHERE id = $1 FOR UPDATE"
# The change and its audit entry in one round trip; the object's name and the claimant's email and
# name come back for the API and the outbox.
SQL_APPLY = """
WITH u AS (
    UPDATE bundle_alarms SET status = $2, version = $3, claimed_by = $4, claim_expires_at = $5, ack_note = $6,
                             updated_at = $7, resolution = $13, resolution_note = $14
    WHERE id = $1 AND version = $8
    RETURNING *
), a AS (
    INSERT INTO audit_log (at, actor, action, target_type, target_id, details, request_id)
    SELECT $7, $9, $10, 'bundle_alarm', u.id::text, $11::jsonb, $12 FROM u
)
SELECT u.*, o.name AS object_name, cu.email AS claimed_by_email, cu.display_name AS claimed_by_name
FROM u LEFT JOIN objects o ON o.id = u.object_id
""" + claimant_join("u")
# One sweeper at a time across hub processes: a transaction-scoped advisory lock, so a crashed
# sweeper's lock goes with its transaction.
SWEEP_LOCK_KEY = 0x56494732  # "VIG2"
SQL_DUE = """
SELECT * FROM bundle_alarms
WHERE (status = 'CLAIMING' AND claim_expires_at <= $1) OR (status = 'RESOLVED' AND updated_at <= $2)
ORDER BY id LIMIT $3
FOR UPDATE SKIP LOCKED
"""
# Candidates only (the lifecycle decides per priority): NEW, not escalated, opened before the
# shortest threshold. SKIP LOCKED and the `escalated_at IS NULL` guard below make two hubs
# escalate a bundle exactly once between them.
SQL_ESCALATION_CANDIDATES = """
SELECT * FROM bundle_alarms
WHERE status = 'NEW' AND escalated_at IS NULL AND priority = ANY($1::text[]) AND created_at <= $2
ORDER BY created_at, id LIMIT $3
FOR UPDATE SKIP LOCKED
"""
# Escalation marks the bundle without bumping its version: an operator about to claim the alarm
# must not get a 409 because it became more urgent.
SQL_ESCALATE = """
WITH u AS (
    UPDATE bundle_alarms b SET escalated_at = $2
    FROM unnest($1::int8[], $3::float8[]) AS e(id, after_s)
    WHERE b.id = e.id AND b.escalated_at IS NULL
    RETURNING b.*, e.after_s
), a AS (
    INSERT INTO audit_log (at, actor, action, target_type, target_id, details)
    SELECT $2, 'system', 'alarm.escalated', 'bundle_alarm', u.id::text,
           jsonb_build_object('priority', u.priority, 'after_s', u.after_s) FROM u
)
SELECT u.*, o.name AS object_name, cu.email AS claimed_by_email, cu.display_name AS claimed_by_name
FROM u LEFT JOIN objects o ON o.id = u.object_id
""" + claimant_join("u")
SQL_ONE = ("SELECT b.*, o.name AS object_name, cu.email AS claimed_by_email, cu.display_name AS claimed_by_name "
           "FROM bundle_alarms b LEFT JOIN objects o ON o.id = b.object_id "
           + claimant_join("b") + " WHERE b.id = $1")
SQL_HAS_CHECKLIST = "SELECT EXISTS (SELECT 1 FROM bundle_checklist WHERE bundle_id = $1)"
SQL_CHECKLIST = "SELECT step, text, done_at, done_by FROM bundle_checklist WHERE bundle_id = $1 ORDER BY step"
SQL_PROCEDURE = "SELECT steps FROM object_procedures WHERE object_id = $1 AND alarm_type = $2"
SQL_SNAPSHOT = """
INSERT INTO bundle_checklist (bundle_id, step, text)
SELECT $1, s.step, s.text FROM unnest($2::text[]) WITH ORDINALITY AS s(text, step)
ON CONFLICT DO NOTHING
"""
# The first tick wins: a second one changes nothing and returns nothing.
SQL_TICK = """
UPDATE bundle_checklist SET done_at = $3, done_by = $4
WHERE bundle_id = $1 AND step = $2 AND done_at IS NULL
RETURNING step, text, done_at, done_by
"""
SQL_STEP = "SELECT step, text, done_at, done_by FROM bundle_checklist WHERE bundle_id = $1 AND step = $2"
SQL_AUDIT = """
INSERT INTO audit_log (at, actor, action, target_type, target_id, details, request_id)
VALUES ($1, $2, $3, 'bundle_alarm', $4, $5::jsonb, $6)
"""


class BundleNotFound(LifecycleError):
    code = "not_found"


class StepNotFound(LifecycleError):
    """The bundle's checklist has no such step (or the bundle has no procedure)."""

    code = "not_found"


def to_bundle(row: asyncpg.Record) -> Bundle:
    """The lifecycle's view of a bundle_alarms row."""
    return Bundle(
        id=row["id"], status=Status(row["status"]), version=row["version"], requires_note=row["requires_note"],
        claimed_by=row["claimed_by"], claim_expires_at=row["claim_expires_at"], ack_note=row["ack_note"],
        updated_at=row["updated_at"], priority=row["priority"], service_mode=row["service_mode"],
        created_at=row["created_at"], escalated_at=row["escalated_at"], resolution=row["resolution"],
        resolution_note=row["resolution_note"],
    )


def payload(row: asyncpg.Record) -> dict[str, Any]:
    """A bundle as live clients get it after a lifecycle move (the API's Alarm shape)."""
    data = bundle_payload(dict(row))
    data.update(claimed_by=row["claimed_by"], claimed_by_email=row["claimed_by_email"],
                claimed_by_user=who(row["claimed_by"], row["claimed_by_email"], row["claimed_by_name"]),
                ack_note=row["ack_note"], claim_expires_at=iso_or_none(row["claim_expires_at"]),
                resolution=row["resolution"], resolution_label=resolution_label(row["resolution"]),
                resolution_note=row["resolution_note"])
    return data


Transition = Callable[..., Bundle]

ACTIONS: dict[str, Transition] = {
    "claim": lambda b, user, v, now, note, resolution: lifecycle.claim(b, user, v, now),
    "start": lambda b, user, v, now, note, resolution: lifecycle.start(b, user, v, now),
    "ack": lambda b, user, v, now, note, resolution: lifecycle.ack(b, user, v, now, note),
    "resolve": lambda b, user, v, now, note, resolution: lifecycle.resolve(b, user, v, now, resolution, note),
    "close": lambda b, user, v, now, note, resolution: lifecycle.close(b, user, v, now),
}


async def _store(conn: asyncpg.Connection, old: Bundle, new: Bundle, actor: str, action: str,
                 now: datetime, request_id: str | None, details: dict[str, Any]) -> asyncpg.Record:
    row = await conn.fetchrow(SQL_APPLY, new.id, new.status.value, new.version, new.claimed_by, new.claim_expires_at,
                              new.ack_note, now, old.version, actor, f"alarm.{action}",
                              json.dumps({"from": old.status.value, "to": new.status.value, **details}), request_id,
                              new.resolution, new.resolution_note)
    if row is None:  # unreachable while the row is locked; kept as the guard the design promises
        raise lifecycle.VersionConflict(f"bundle {old.id} changed concurrently")
    return row


def _outbox_item(row: asyncpg.Record, topic: str = "alarm.updated", **extra: Any) -> OutboxItem:
    return OutboxItem(topic, row["object_id"], {"bundle": payload(row), **extra})


async def _locked(conn: asyncpg.Connection, bundle_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(SQL_LOCK_BUNDLE, bundle_id)
    if row is None:
        raise BundleNotFound(f"no bundle {bundle_id}")
    return row


async def transition(
    conn: asyncpg.Connection, bundle_id: int, action: str, user: str, seen_version: int, now: datetime,
    note: str | None = None, request_id: str | None = None, resolution: str | None = None,
) -> asyncpg.Record:
    """Apply `action` (claim, start, ack, resolve, close) for `user`, who saw `seen_version`;
    returns the updated bundle row (with `object_name`). A resolve takes its `resolution` code.
    A claim copies the procedure's steps into the bundle's checklist. A committed claim or ack is
    observed in `vigil_alarm_response_time_seconds{stage}`. Raises a LifecycleError subclass when
    refused."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    async with conn.transaction():
        row = await _locked(conn, bundle_id)
        old = to_bundle(row)
        new = ACTIONS[action](old, user, seen_version, now, note, resolution)
        details = {k: v for k, v in (("note", note), ("resolution", resolution)) if v}
        row = await _store(conn, old, new, user, action, now, request_id, details)
        if action == "claim":
            await snapshot_checklist(conn, row)
        await write_outbox(conn, [_outbox_item(row)])
    # Observed once committed: a refused or rolled-back move is no response. An edge clock ahead
    # of the hub's can put the first event after `now`; that counts as an immediate response.
    if action in RESPONSE_STAGES:
        RESPONSE_TIME.labels(action).observe(max(0.0, (now - row["first_event_at"]).total_seconds()))
    return row


async def take_over(conn: asyncpg.Connection, bundle_id: int, by: str, to: str, seen_version: int, now: datetime,
                    reason: str, request_id: str | None = None) -> asyncpg.Record:
    """A supervisor (`by`) moves a bundle being worked to `to` (themselves or another operator),
    audited with the reason and the previous holder; the outbox row tells every console, the
    previous holder's included, with who took it from whom and why."""
    async with conn.transaction():
        old = to_bundle(await _locked(conn, bundle_id))
        new = lifecycle.take_over(old, to, seen_version, now, reason)
        reason = reason.strip()
        row = await _store(conn, old, new, by, "take_over", now, request_id,
                           {"previous": old.claimed_by, "holder": to, "reason": reason})
        who_is = await people(conn, (old.claimed_by, by, to))
        await write_outbox(conn, [_outbox_item(row, take_over={
            "previous": who_is.get(old.claimed_by or ""), "by": who_is[by], "to": who_is[to], "reason": reason})])
        return row


@dataclass(frozen=True)
class Swept:
    """What one sweep changed: lapsed claims the reaper reverted to NEW, bundles auto-closed."""

    reaped: int = 0
    closed: int = 0

    @property
    def total(self) -> int:
        """Bundles changed, either way."""
        return self.reaped + self.closed


async def sweep(conn: asyncpg.Connection, now: datetime, limit: int = 500) -> Swept:
    """One pass of the reaper (lapsed claims → NEW) and the auto-closer (RESOLVED and idle for
    30 min → CLOSED); returns how many bundles each changed. A no-op while another hub sweeps."""
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", SWEEP_LOCK_KEY):
            return Swept()
        rows = await conn.fetch(SQL_DUE, now, now - lifecycle.AUTO_CLOSE_AFTER, limit)
        items = []
        reaped = 0
        for row in rows:
            old = to_bundle(row)
            new = lifecycle.reap(old, now) or lifecycle.auto_close(old, now)
            if new is None:
                continue
            if new.status is Status.NEW:
                action = "reaped"
                reaped += 1
            else:
                action = "auto_closed"
            items.append(_outbox_item(await _store(conn, old, new, "system", action, now, None, {})))
        await write_outbox(conn, items)
        return Swept(reaped=reaped, closed=len(items) - reaped)


async def escalate(conn: asyncpg.Connection, now: datetime, after: Mapping[str, timedelta], limit: int = 500) -> int:
    """Mark every bundle still NEW past its priority's threshold (`after`) as escalated, once,
    audited, with an `alarm.escalated` outbox row each (the supervisor notice); returns how many."""
    if not after:
        return 0
    async with conn.transaction():
        rows = await conn.fetch(SQL_ESCALATION_CANDIDATES, sorted(after), now - min(after.values()), limit)
        due = [(r["id"], threshold) for r in rows if (threshold := lifecycle.escalation_due(to_bundle(r), now, after))]
        if not due:
            return 0
        escalated = await conn.fetch(SQL_ESCALATE, [d[0] for d in due], now,
                                     [d[1].total_seconds() for d in due])
        await write_outbox(conn, [_outbox_item(r, "alarm.escalated", escalated_after_s=r["after_s"])
                                  for r in escalated])
        return len(escalated)


async def snapshot_checklist(conn: asyncpg.Connection, bundle: asyncpg.Record) -> None:
    """Copy the object's procedure for the bundle's alarm type into its checklist, unless it has
    one already (the first copy stands, whatever later edits of the procedure say)."""
    if bundle["object_id"] is None or await conn.fetchval(SQL_HAS_CHECKLIST, bundle["id"]):
        return
    text = await conn.fetchval(SQL_PROCEDURE, bundle["object_id"], bundle["alarm_type"])
    if text is not None:
        await conn.execute(SQL_SNAPSHOT, bundle["id"], procedure_steps(text))


async def checklist(conn: asyncpg.Connection | asyncpg.Pool, bundle: asyncpg.Record) -> list[dict[str, Any]]:
    """The bundle's checklist as `{step, text, done_at, done_by}` rows: its copy once it was
    worked; before that, while it is open, the object's current procedure (nothing ticked); a
    bundle that ended without a copy has none."""
    rows = [dict(r) for r in await conn.fetch(SQL_CHECKLIST, bundle["id"])]
    if rows or bundle["object_id"] is None or not Status(bundle["status"]).is_open:
        return rows
    text = await conn.fetchval(SQL_PROCEDURE, bundle["object_id"], bundle["alarm_type"])
    return [{"step": i, "text": t, "done_at": None, "done_by": None}
            for i, t in enumerate(procedure_steps(text or ""), start=1)]


async def tick(conn: asyncpg.Connection, bundle_id: int, step: int, user: str, supervisor: bool, now: datetime,
               request_id: str | None = None) -> tuple[asyncpg.Record, asyncpg.Record, bool]:
    """Tick `step` of the bundle's checklist for `user` (the holder, or a `supervisor`); returns
    (bundle row, step row, whether it changed). A step ticked before keeps its first tick and
    nothing is written; a new tick is audited and sent to every console as `alarm.updated`."""
    async with conn.transaction():
        bundle = await conn.fetchrow(SQL_ONE + " FOR UPDATE OF b", bundle_id)
        if bundle is None:
            raise BundleNotFound(f"no bundle {bundle_id}")
        check_tick(to_bundle(bundle), user, supervisor)
        await snapshot_checklist(conn, bundle)
        done = await conn.fetchrow(SQL_TICK, bundle_id, step, now, user)
        if done is None:
            existing = await conn.fetchrow(SQL_STEP, bundle_id, step)
            if existing is None:
                raise StepNotFound(f"bundle {bundle_id} has no checklist step {step}")
            return bundle, existing, False
        await conn.execute(SQL_AUDIT, now, user, "alarm.checklist_tick", str(bundle_id),
                           json.dumps({"step": step, "text": done["text"]}), request_id)
        step_out = {"index": step, "text": done["text"], "done_at": now.isoformat(),
                    "done_by": (await people(conn, (user,)))[user]}
        await write_outbox(conn, [_outbox_item(bundle, checklist_step=step_out)])
        return bundle, done, True
