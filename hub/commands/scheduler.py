"""The auto-arm and open/close supervision loop (docs/architecture.md §5 "Auto-arm and open/close
supervision"). Each pass gives the arm commands of the schedules that fell due since the last
pass, settles the runs whose command ended (with the one forced retry a schedule may allow),
judges the supervisions' deadlines and disarms, and records every outcome. The rules are
`hub.commands.schedules` and `hub.commands.supervision`; this module only reads and writes.

Every hub process runs it. A schedule or supervision is worked under its row lock (SKIP LOCKED)
and its cursor moves in the same transaction, so two passes never decide the same instant; the
unique keys of runs and supervision alarms hold even if they did."""
from __future__ import annotations

import asyncio
import logging
from collections import Counter as Tally
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable

import asyncpg
from prometheus_client import Counter

from hub.alarms.apply import hub_alarm, raise_hub_alarms
from hub.alarms.classify import OPEN_CLOSE
from hub.commands import codes
from hub.commands.domain import CommandRequest, NoUserCode, Status, check_request, pick_stored_code
from hub.commands.repository import Requester, create_command, panel_facts
from hub.commands.schedules import Outcome, ScheduleError, Verdict, catch_up_from, decide_due, due_between, \
    settle_run, zone_of
from hub.commands.supervision import PRIORITY, Kind, Window, deadline_missed, deadlines, describe, \
    unexpected_opening
from hub.db.errors import DB_ERRORS
from hub.db.outbox import OutboxItem, write_outbox
from hub.secret_box import SecretBox
from shared.backoff import sleep_or_stop
from shared.clock import SYSTEM_CLOCK, Clock
from shared.commands import Source

log = logging.getLogger("vigil.hub.auto_arm")

FAILURES = Counter("vigil_satel_auto_arm_failure_total", "Auto-arm runs that FAILED or were MISSED, by reason",
                   ["reason"])

DEFAULT_LOOKBACK = timedelta(minutes=10)
SETTLE_BATCH = 100

SQL_SCHEDULES = "SELECT id FROM auto_arm_schedules WHERE checked_until < $1 ORDER BY id"
SQL_LOCK_SCHEDULE = """
SELECT s.*, p.object_id FROM auto_arm_schedules s JOIN panels p ON p.id = s.panel_id
WHERE s.id = $1 AND s.checked_until < $2
FOR UPDATE OF s SKIP LOCKED
"""
SQL_SCHEDULE_CHECKED = "UPDATE auto_arm_schedules SET checked_until = $2 WHERE id = $1"
SQL_HOLIDAYS = "SELECT day FROM holidays WHERE (object_id IS NULL OR object_id = $1) AND day BETWEEN $2 AND $3"
SQL_ARMED = """
SELECT coalesce((state->>'armed')::boolean, false) FROM panel_state
WHERE panel_id = $1 AND element = 'partition' AND number = $2
"""
SQL_INSERT_RUN = """
INSERT INTO auto_arm_runs (schedule_id, panel_id, object_id, partition, due_at, outcome, detail, created_at, decided_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (schedule_id, due_at) DO NOTHING
RETURNING id
"""
SQL_RUN_COMMAND = "UPDATE auto_arm_runs SET command_id = $2 WHERE id = $1"
# Runs whose latest command (the forced retry, else the first) has its outcome.
SQL_SETTLEABLE = """
SELECT r.id, r.schedule_id, r.panel_id, r.partition, r.forced_command_id IS NOT NULL AS forced,
       c.status, c.result_code, c.result_reason, coalesce(s.force_on_violation, false) AS force_on_violation,
       s.mode, s.expires_in_s, s.at_time, s.time_zone
FROM auto_arm_runs r
JOIN satel_commands c ON c.id = coalesce(r.forced_command_id, r.command_id)
LEFT JOIN auto_arm_schedules s ON s.id = r.schedule_id
WHERE r.outcome = 'PENDING' AND c.status NOT IN ('PENDING', 'SENT')
ORDER BY r.id LIMIT $1
FOR UPDATE OF r SKIP LOCKED
"""
# A run FAILED on the hub's TIMEOUT whose edge later said ACK (the command's status is the edge's
# word, `late`): the partition was armed after all, and the run says so.
SQL_LATE_ARMED = """
UPDATE auto_arm_runs r SET outcome = 'ARMED', decided_at = $1,
    detail = 'armed: the panel''s ACK came after the hub had stopped waiting (' || coalesce(r.detail, '') || ')'
FROM satel_commands c
WHERE c.id = coalesce(r.forced_command_id, r.command_id) AND r.outcome = 'FAILED' AND c.status = 'ACK' AND c.late
RETURNING r.id, r.schedule_id
"""
SQL_RUN_FORCED = "UPDATE auto_arm_runs SET forced_command_id = $2, detail = $3 WHERE id = $1"
SQL_RUN_DECIDED = "UPDATE auto_arm_runs SET outcome = $2, detail = $3, decided_at = $4 WHERE id = $1"

SQL_SUPERVISIONS = "SELECT id FROM partition_supervision WHERE checked_until < $1 ORDER BY id"
SQL_LOCK_SUPERVISION = """
SELECT v.*, p.object_id, p.edge_id, p.source FROM partition_supervision v JOIN panels p ON p.id = v.panel_id
WHERE v.id = $1 AND v.checked_until < $2
FOR UPDATE OF v SKIP LOCKED
"""
# One panel's history is written by the one ingest consumer that owns its edge's partition (fenced
# on hand-over), a batch at a time, so its ids commit in order and a cursor on them misses none.
SQL_DISARMS = """
SELECT id, at FROM panel_state_history
WHERE panel_id = $1 AND number = $2 AND element = 'partition' AND kind = 'satel.partition.disarmed' AND id > $3
ORDER BY id
"""
SQL_SUPERVISED = "UPDATE partition_supervision SET checked_until = $2, history_cursor = $3 WHERE id = $1"
SQL_INSERT_ALARM = """
INSERT INTO supervision_alarms (supervision_id, panel_id, object_id, partition, kind, local_day, at, priority, detail,
                                raised_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (supervision_id, kind, local_day) DO NOTHING
RETURNING id
"""
SQL_ALARM_BUNDLE = "UPDATE supervision_alarms SET bundle_id = $2 WHERE id = ANY($1::int8[])"


@dataclass
class TickResult:
    """What one pass did: arm commands given (forced retries included), run outcomes recorded,
    supervision alarms raised."""

    commands: int = 0
    outcomes: Tally[str] = field(default_factory=Tally)
    alarms: int = 0


async def tick(pool: asyncpg.Pool, box: SecretBox, now: datetime, *,
               lookback: timedelta = DEFAULT_LOOKBACK) -> TickResult:
    """One pass at `now`: due schedules → arm commands (a run due more than `lookback` ago is
    MISSED), settled runs, supervision deadlines and disarms. Each schedule and supervision
    commits on its own, so one that fails leaves the others' work done."""
    result = TickResult()
    for schedule_id in [r["id"] for r in await pool.fetch(SQL_SCHEDULES, now)]:
        await _schedule(pool, box, schedule_id, now, lookback, result)
    await _settle(pool, box, now, result)
    for supervision_id in [r["id"] for r in await pool.fetch(SQL_SUPERVISIONS, now)]:
        await _supervise(pool, supervision_id, now, lookback, result)
    return result


async def run(pool: asyncpg.Pool, box: SecretBox, stop: asyncio.Event, *, interval_s: float = 15.0,
              lookback_s: float = DEFAULT_LOOKBACK.total_seconds(), clock: Clock = SYSTEM_CLOCK,
              wake: Callable[[], None] | None = None) -> None:
    """Run a pass every `interval_s` until `stop`; `wake` (the command publisher's) is called
    after a pass that gave commands, so they leave at once. A pass that fails on the database is
    logged and the next one tries again."""
    lookback = timedelta(seconds=lookback_s)
    while True:
        try:
            done = await tick(pool, box, clock.now(), lookback=lookback)
            if done.commands and wake is not None:
                wake()
        except DB_ERRORS as exc:
            log.warning("auto-arm pass failed: %s", exc)
        if await sleep_or_stop(interval_s, stop):
            return


async def _holidays(conn: asyncpg.Connection, object_id: int, start: datetime, end: datetime) -> frozenset[date]:
    """The object's and every object's holidays around [start, end] (a day either side covers
    every zone's local dates)."""
    rows = await conn.fetch(SQL_HOLIDAYS, object_id, start.date() - timedelta(days=1), end.date() + timedelta(days=1))
    return frozenset(r["day"] for r in rows)


async def _armed(conn: asyncpg.Connection, panel_id: int, partition: int) -> bool:
    """The partition's armed state as the hub knows it (never reported: not armed)."""
    return bool(await conn.fetchval(SQL_ARMED, panel_id, partition))


async def _schedule(pool: asyncpg.Pool, box: SecretBox, schedule_id: int, now: datetime, lookback: timedelta,
                    result: TickResult) -> None:
    failures: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        s = await conn.fetchrow(SQL_LOCK_SCHEDULE, schedule_id, now)
        if s is None:
            return  # another pass holds it, or has just decided up to `now`
        if s["enabled"]:
            try:
                zone = zone_of(s["time_zone"])
            except ScheduleError as exc:
                # Not moved on: its runs are decided once the zone is known again.
                log.error("auto-arm schedule %d skipped: %s", schedule_id, exc, extra={"schedule_id": schedule_id})
                return
            dues = due_between(s["at_time"], tuple(s["days"]), zone, catch_up_from(s["checked_until"], now), now)
            holidays = await _holidays(conn, s["object_id"], dues[0].at, now) if dues else frozenset()
            for due in dues:
                verdict = decide_due(due, now, lookback, holidays, await _armed(conn, s["panel_id"], s["partition"]))
                command = None
                if verdict.outcome is Outcome.PENDING:
                    prepared = await _prepare(conn, box, s["panel_id"], s["partition"])
                    if isinstance(prepared, Verdict):
                        verdict = prepared
                    else:
                        command = prepared
                run_id = await conn.fetchval(
                    SQL_INSERT_RUN, schedule_id, s["panel_id"], s["object_id"], s["partition"], due.at,
                    verdict.outcome.value, verdict.detail, now, None if verdict.outcome is Outcome.PENDING else now)
                if run_id is None:
                    continue  # another hub process decided this run
                if command is not None:
                    panel, code = command
                    row = await _give_arm(conn, panel, code, schedule_id, s, s["partition"], False, now)
                    await conn.execute(SQL_RUN_COMMAND, run_id, row["id"])
                    result.commands += 1
                result.outcomes[verdict.outcome.value] += 1
                if verdict.reason:
                    failures.append(verdict.reason)
                log.info("auto-arm schedule %d: run due %s %s: %s", schedule_id, due.at.isoformat(),
                         verdict.outcome.value, verdict.detail, extra={"schedule_id": schedule_id, "run_id": run_id})
        await conn.execute(SQL_SCHEDULE_CHECKED, schedule_id, now)
    for reason in failures:
        FAILURES.labels(reason).inc()


async def _prepare(conn: asyncpg.Connection, box: SecretBox, panel_id: int,
                   partition: int) -> Verdict | tuple[Any, str]:
    """The panel and the stored code to arm `partition` with, or the FAILED verdict saying why
    there is none (no stored code, the edge revoked)."""
    panel = await panel_facts(conn, panel_id)
    if panel["revoked_at"] is not None:
        return Verdict(Outcome.FAILED, f"edge {panel['edge_id']} is revoked: no command can reach it",
                       reason="edge_revoked")
    try:
        code = pick_stored_code(await codes.stored_codes(conn, box, panel_id), (partition,))
    except NoUserCode as exc:
        return Verdict(Outcome.FAILED, f"{exc}: store a user code for the panel or partition {partition} "
                                       f"(PUT /api/v1/panels/{panel_id}/user-codes/{{partition}})",
                       reason="no_user_code")
    return panel, code


async def _give_arm(conn: asyncpg.Connection, panel: Any, code: str, schedule_id: int, schedule: Any, partition: int,
                    force: bool, now: datetime) -> Any:
    """The arm command of a schedule's run, with the schedule's mode and expiry."""
    reason = f"auto-arm schedule {schedule_id}: {schedule['at_time']:%H:%M} {schedule['time_zone']}"
    req = check_request(CommandRequest(
        "arm", reason + (", retried with force after a violated zone" if force else ""), partitions=(partition,),
        mode=schedule["mode"], force=force, expires_in_s=schedule["expires_in_s"]))
    who = Requester(f"auto-arm:{schedule_id}", f"auto-arm schedule {schedule_id}", source=Source.AUTO_ARM)
    return await create_command(conn, panel, req, code, "STORED", who, now)


async def _settle(pool: asyncpg.Pool, box: SecretBox, now: datetime, result: TickResult) -> None:
    failures: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        for r in await conn.fetch(SQL_LATE_ARMED, now):
            result.outcomes["ARMED"] += 1
            log.info("auto-arm run %d: armed after all (the panel's ACK came late)", r["id"],
                     extra={"run_id": r["id"], "schedule_id": r["schedule_id"]})
        for r in await conn.fetch(SQL_SETTLEABLE, SETTLE_BATCH):
            verdict = settle_run(Status(r["status"]), r["result_code"], r["result_reason"], r["forced"],
                                 r["force_on_violation"])
            if verdict is None:
                continue
            if verdict.retry_with_force:
                prepared = await _prepare(conn, box, r["panel_id"], r["partition"])
                if not isinstance(prepared, Verdict):
                    row = await _give_arm(conn, *prepared, r["schedule_id"], r, r["partition"], True, now)
                    await conn.execute(SQL_RUN_FORCED, r["id"], row["id"], verdict.detail)
                    result.commands += 1
                    log.info("auto-arm run %d: %s", r["id"], verdict.detail,
                             extra={"run_id": r["id"], "command_id": str(row["id"])})
                    continue
                verdict = prepared
            await conn.execute(SQL_RUN_DECIDED, r["id"], verdict.outcome.value, verdict.detail, now)
            result.outcomes[verdict.outcome.value] += 1
            if verdict.reason:
                failures.append(verdict.reason)
            log.log(logging.WARNING if verdict.reason else logging.INFO, "auto-arm run %d: %s: %s", r["id"],
                    verdict.outcome.value, verdict.detail, extra={"run_id": r["id"], "schedule_id": r["schedule_id"]})
    for reason in failures:
        FAILURES.labels(reason).inc()


async def _supervise(pool: asyncpg.Pool, supervision_id: int, now: datetime, lookback: timedelta,
                     result: TickResult) -> None:
    async with pool.acquire() as conn, conn.transaction():
        v = await conn.fetchrow(SQL_LOCK_SUPERVISION, supervision_id, now)
        if v is None:
            return
        disarms = await conn.fetch(SQL_DISARMS, v["panel_id"], v["partition"], v["history_cursor"])
        cursor = disarms[-1]["id"] if disarms else v["history_cursor"]
        items: list[OutboxItem] = []
        if v["enabled"]:
            try:
                found = await _judge(conn, v, disarms, now, lookback)
            except ScheduleError as exc:
                log.error("supervision %d skipped: %s", supervision_id, exc, extra={"supervision_id": supervision_id})
                return
            items, raised = await _raise(conn, v, found, now)
            result.alarms += raised
        await conn.execute(SQL_SUPERVISED, supervision_id, now, cursor)
        await write_outbox(conn, items)


def _window(v: Any) -> Window:
    return Window(v["time_zone"], tuple(v["days"]), v["open_from"], v["open_until"], v["close_by"])


async def _judge(conn: asyncpg.Connection, v: Any, disarms: list[Any], now: datetime,
                 lookback: timedelta) -> list[tuple[Kind, datetime, date]]:
    """The supervision alarms due: deadlines since the last pass (within `lookback`: the state
    now says nothing of a deadline long past, when no hub ran), and disarms outside the day."""
    window = _window(v)
    start = max(v["checked_until"], now - lookback)
    if start > v["checked_until"]:
        log.warning("supervision %d: deadlines between %s and %s not judged: no hub ran then", v["id"],
                    v["checked_until"].isoformat(), start.isoformat(), extra={"supervision_id": v["id"]})
    earliest = min([start, *(d["at"] for d in disarms)])
    holidays = await _holidays(conn, v["object_id"], earliest, now)
    armed = await _armed(conn, v["panel_id"], v["partition"])
    found = [(d.kind, d.due.at, d.due.local_day) for d in deadlines(window, start, now, holidays)
             if deadline_missed(d.kind, armed)]
    for d in disarms:
        day = unexpected_opening(window, d["at"], holidays)
        if day is not None:
            found.append((Kind.UNEXPECTED_OPENING, d["at"], day))
    return found


async def _raise(conn: asyncpg.Connection, v: Any, found: list[tuple[Kind, datetime, date]],
                 now: datetime) -> tuple[list[OutboxItem], int]:
    """Raise each alarm not raised yet for its (supervision, kind, local day) as an OPEN_CLOSE
    alarm on the object; returns the outbox items and how many were raised."""
    window, ids, alarms = _window(v), [], []
    for kind, at, day in found:
        detail = f"panel {v['source']}, {describe(kind, v['partition'], window, at)}"
        alarm_id = await conn.fetchval(SQL_INSERT_ALARM, v["id"], v["panel_id"], v["object_id"], v["partition"],
                                       kind.value, day, at, PRIORITY[kind], detail, now)
        if alarm_id is None:
            continue
        ids.append(alarm_id)
        alarms.append(hub_alarm(group_key=f"object:{v['object_id']}", object_id=v["object_id"], alarm_type=OPEN_CLOSE,
                                priority=PRIORITY[kind], edge_id=v["edge_id"], source=v["source"], summary=detail,
                                ord_=0, now=now))
        log.warning("supervision %d: %s", v["id"], detail, extra={"supervision_id": v["id"], "kind": kind.value})
    items = await raise_hub_alarms(conn, alarms, now)
    if items:
        # The alarms of one pass share their object's open OPEN_CLOSE bundle.
        await conn.execute(SQL_ALARM_BUNDLE, ids, items[-1].payload["bundle"]["id"])
    return items, len(ids)
