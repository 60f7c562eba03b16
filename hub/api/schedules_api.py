"""Auto-arm schedules, open/close supervision, holidays, the runs of a panel's schedules and the
morning report (docs/architecture.md §5 "Auto-arm and open/close supervision"). Reading follows
the panel's object (objects.view, object-scoped); schedules and supervision are changed by those
who may command panels, holidays by those who edit objects. Every change is audited."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any, Callable, Literal

import msgspec
from aiohttp import web
from msgspec import UNSET, UnsetType

from hub.api.app import deps
from hub.api.common import PageQuery, record
from hub.api.crud import Table, audit, insert, provided, update
from hub.api.errors import invalid, not_found
from hub.api.objects_api import visible_object
from hub.api.pdf_export import export_file
from hub.api.permissions import object_filter, require_object
from hub.api.routing import Call, Router
from hub.commands.schedules import ScheduleError, check_days, due_between, zone_of
from hub.commands.supervision import check_window

router = Router()

SCHEDULES = Table("auto_arm_schedules", ("panel_id", "partition", "at_time", "days", "time_zone", "mode",
                                         "force_on_violation", "enabled", "expires_in_s", "created_by", "created_at",
                                         "updated_at", "checked_until"), "auto-arm schedule")
SUPERVISIONS = Table("partition_supervision", ("panel_id", "partition", "time_zone", "days", "open_from", "open_until",
                                               "close_by", "enabled", "created_by", "created_at", "updated_at",
                                               "checked_until", "history_cursor"), "supervision")
HOLIDAYS = Table("holidays", ("object_id", "day", "name", "created_by", "created_at"), "holiday")

# "22:00" or "22:00:00", local to the row's time zone.
ClockTime = Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$")]
Days = Annotated[list[Annotated[int, msgspec.Meta(ge=1, le=7)]], msgspec.Meta(min_length=1, max_length=7)]
ZoneName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Partition = Annotated[int, msgspec.Meta(ge=1, le=32)]
Mode = Annotated[int, msgspec.Meta(ge=0, le=3)]
Expiry = Annotated[int, msgspec.Meta(ge=5, le=3600)]
Version = Annotated[int, msgspec.Meta(ge=1)]
HolidayName = Annotated[str, msgspec.Meta(max_length=200)]
RunOutcome = Literal["ARMED", "ALREADY_ARMED", "HOLIDAY", "PENDING", "FAILED", "MISSED"]


class ScheduleIn(msgspec.Struct, forbid_unknown_fields=True):
    partition: Partition
    at_time: ClockTime
    days: Days
    time_zone: ZoneName
    mode: Mode = 0
    force_on_violation: bool = False
    enabled: bool = True
    expires_in_s: Expiry = 300


class SchedulePatch(msgspec.Struct, forbid_unknown_fields=True):
    version: Version
    partition: Partition | UnsetType = UNSET
    at_time: ClockTime | UnsetType = UNSET
    days: Days | UnsetType = UNSET
    time_zone: ZoneName | UnsetType = UNSET
    mode: Mode | UnsetType = UNSET
    force_on_violation: bool | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET
    expires_in_s: Expiry | UnsetType = UNSET


class SupervisionIn(msgspec.Struct, forbid_unknown_fields=True):
    partition: Partition
    time_zone: ZoneName
    days: Days
    open_from: ClockTime
    open_until: ClockTime
    close_by: ClockTime
    enabled: bool = True


class SupervisionPatch(msgspec.Struct, forbid_unknown_fields=True):
    version: Version
    time_zone: ZoneName | UnsetType = UNSET
    days: Days | UnsetType = UNSET
    open_from: ClockTime | UnsetType = UNSET
    open_until: ClockTime | UnsetType = UNSET
    close_by: ClockTime | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


class HolidayIn(msgspec.Struct, forbid_unknown_fields=True):
    day: date
    object_id: int | None = None  # None: every object
    name: HolidayName = ""


class HolidayPatch(msgspec.Struct, forbid_unknown_fields=True):
    version: Version
    day: date | UnsetType = UNSET
    name: HolidayName | UnsetType = UNSET


class HolidayQuery(PageQuery, forbid_unknown_fields=True):
    object_id: int | None = None  # the holidays that apply to it: its own and every object's
    since: date | None = None
    until: date | None = None


class RunQuery(PageQuery, forbid_unknown_fields=True):
    outcome: RunOutcome | None = None
    since: datetime | None = None
    until: datetime | None = None


class MorningReportQuery(msgspec.Struct, forbid_unknown_fields=True):
    since: datetime | None = None
    until: datetime | None = None
    object_id: int | None = None
    format: Literal["json", "csv", "pdf"] = "json"


SQL_PANEL = "SELECT id, object_id FROM panels WHERE id = $1"
SQL_SCHEDULES = "SELECT * FROM auto_arm_schedules WHERE panel_id = $1 ORDER BY partition, at_time, id"
SQL_SCHEDULE = """
SELECT s.*, p.object_id FROM auto_arm_schedules s JOIN panels p ON p.id = s.panel_id WHERE s.id = $1
"""
SQL_DELETE_SCHEDULE = "DELETE FROM auto_arm_schedules WHERE id = $1"
SQL_SUPERVISIONS = "SELECT * FROM partition_supervision WHERE panel_id = $1 ORDER BY partition"
SQL_SUPERVISION = """
SELECT v.*, p.object_id FROM partition_supervision v JOIN panels p ON p.id = v.panel_id WHERE v.id = $1
"""
SQL_DELETE_SUPERVISION = "DELETE FROM partition_supervision WHERE id = $1"
SQL_HISTORY_HEAD = "SELECT coalesce(max(id), 0) FROM panel_state_history"
SQL_RUNS = """
SELECT r.*, count(*) OVER () AS total FROM auto_arm_runs r
WHERE r.panel_id = $1 AND ($2::text IS NULL OR r.outcome = $2)
  AND ($3::timestamptz IS NULL OR r.due_at >= $3) AND ($4::timestamptz IS NULL OR r.due_at < $4)
ORDER BY r.due_at DESC, r.id DESC LIMIT $5 OFFSET $6
"""
SQL_HOLIDAYS = """
SELECT h.*, count(*) OVER () AS total FROM holidays h
WHERE ($1::int8 IS NULL OR h.object_id IS NULL OR h.object_id = $1)
  AND ($2::int8[] IS NULL OR h.object_id IS NULL OR h.object_id = ANY($2))
  AND ($3::date IS NULL OR h.day >= $3) AND ($4::date IS NULL OR h.day <= $4)
ORDER BY h.day, h.object_id NULLS FIRST, h.id LIMIT $5 OFFSET $6
"""
SQL_HOLIDAY = "SELECT * FROM holidays WHERE id = $1"
SQL_DELETE_HOLIDAY = "DELETE FROM holidays WHERE id = $1"
# The morning report: auto-arm runs that FAILED or were MISSED, and the supervision alarms, in one
# time line (a run by its due time, an alarm by its deadline or disarm), limited to the caller's
# objects.
SQL_REPORT = """
SELECT * FROM (
    SELECT 'auto_arm' AS category, r.due_at AS at, r.object_id, o.name AS object_name, r.panel_id, r.partition,
           r.outcome AS what, NULL::text AS priority, r.detail, r.schedule_id, NULL::int8 AS supervision_id,
           coalesce(r.forced_command_id, r.command_id)::text AS command_id, NULL::int8 AS bundle_id
    FROM auto_arm_runs r JOIN objects o ON o.id = r.object_id
    WHERE r.outcome IN ('FAILED', 'MISSED')
      AND ($1::timestamptz IS NULL OR r.due_at >= $1) AND ($2::timestamptz IS NULL OR r.due_at < $2)
      AND ($3::int8 IS NULL OR r.object_id = $3) AND ($4::int8[] IS NULL OR r.object_id = ANY($4))
    UNION ALL
    SELECT 'supervision', a.at, a.object_id, o.name, a.panel_id, a.partition, a.kind, a.priority, a.detail, NULL,
           a.supervision_id, NULL, a.bundle_id
    FROM supervision_alarms a JOIN objects o ON o.id = a.object_id
    WHERE ($1::timestamptz IS NULL OR a.at >= $1) AND ($2::timestamptz IS NULL OR a.at < $2)
      AND ($3::int8 IS NULL OR a.object_id = $3) AND ($4::int8[] IS NULL OR a.object_id = ANY($4))
) x
ORDER BY at, category, object_id, panel_id, partition
"""
SQL_REPORT_TOTALS = f"SELECT what, count(*) AS n FROM ({SQL_REPORT}) x GROUP BY what ORDER BY what"
REPORT_COLUMNS = ("at", "category", "what", "priority", "object_id", "object_name", "panel_id", "partition", "detail",
                  "schedule_id", "supervision_id", "command_id", "bundle_id")
REPORT_JSON_LIMIT = 5000


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _clock(text: str) -> time:
    return time.fromisoformat(text)


def _clock_text(at: time) -> str:
    return f"{at:%H:%M:%S}" if at.second else f"{at:%H:%M}"


def _checked(fn: Any, *args: Any) -> Any:
    """A domain check, its ScheduleError as the 422 naming the field."""
    try:
        return fn(*args)
    except ScheduleError as exc:
        raise invalid(str(exc), {"field": exc.field}) from None


def _times(values: dict[str, Any], *names: str) -> dict[str, Any]:
    """`values` with its clock-time strings as times and its days sorted, de-duplicated."""
    out = {**values, **{n: _clock(values[n]) for n in names if n in values}}
    if "days" in out:
        out["days"] = list(_checked(check_days, out["days"]))
    return out


_WEEK = timedelta(days=8)  # every weekday falls within it, whatever DST does


def schedule_json(row: Any) -> dict[str, Any]:
    """A schedule as the API shows it, with the next instant it falls due (holidays aside)."""
    now = _now()
    upcoming = due_between(row["at_time"], tuple(row["days"]), zone_of(row["time_zone"]), now, now + _WEEK)
    return {
        "id": row["id"], "panel_id": row["panel_id"], "partition": row["partition"],
        "at_time": _clock_text(row["at_time"]), "days": list(row["days"]), "time_zone": row["time_zone"],
        "mode": row["mode"], "force_on_violation": row["force_on_violation"], "enabled": row["enabled"],
        "expires_in_s": row["expires_in_s"],
        "next_due_at": upcoming[0].at.isoformat() if upcoming and row["enabled"] else None,
        "created_by": row["created_by"], "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(), "version": row["version"],
    }


def supervision_json(row: Any) -> dict[str, Any]:
    """A supervision as the API shows it."""
    return {
        "id": row["id"], "panel_id": row["panel_id"], "partition": row["partition"], "time_zone": row["time_zone"],
        "days": list(row["days"]), "open_from": _clock_text(row["open_from"]),
        "open_until": _clock_text(row["open_until"]), "close_by": _clock_text(row["close_by"]),
        "enabled": row["enabled"], "created_by": row["created_by"], "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(), "version": row["version"],
    }


def run_json(row: Any) -> dict[str, Any]:
    """One run of a schedule: when it was due, how it ended and why, its commands."""
    return {
        "id": row["id"], "schedule_id": row["schedule_id"], "panel_id": row["panel_id"], "object_id": row["object_id"],
        "partition": row["partition"], "due_at": row["due_at"].isoformat(), "outcome": row["outcome"],
        "detail": row["detail"], "command_id": _text(row["command_id"]),
        "forced_command_id": _text(row["forced_command_id"]), "created_at": row["created_at"].isoformat(),
        "decided_at": row["decided_at"].isoformat() if row["decided_at"] is not None else None,
    }


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None


def holiday_json(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "object_id": row["object_id"], "day": row["day"].isoformat(), "name": row["name"],
            "created_by": row["created_by"], "created_at": row["created_at"].isoformat(), "version": row["version"]}


async def _panel(call: Call) -> Any:
    """The path's panel, 404 when it does not exist or is outside the caller's objects."""
    row = await deps(call).pool.fetchrow(SQL_PANEL, call.path_int("id"))
    if row is None:
        raise not_found("panel")
    require_object(call.user, row["object_id"], "panel")
    return row


@dataclass(frozen=True)
class _Kind:
    """What the routes of schedules and of supervisions differ in: their table, how a row is read
    (with its panel's object) and shown, which fields are local clock times, how a row is checked
    as it will be stored, and the names its audit rows use."""

    table: Table
    sql_one: str
    sql_delete: str
    label: str
    action: str
    show: Callable[[Any], dict[str, Any]]
    clocks: tuple[str, ...]
    check: Callable[[dict[str, Any]], None]


def _check_schedule(row: dict[str, Any]) -> None:
    _checked(zone_of, row["time_zone"])


def _check_supervision(row: dict[str, Any]) -> None:
    _checked(zone_of, row["time_zone"])
    _checked(check_window, row["open_from"], row["open_until"], row["close_by"])


SCHEDULE = _Kind(SCHEDULES, SQL_SCHEDULE, SQL_DELETE_SCHEDULE, "auto-arm schedule", "auto_arm", schedule_json,
                 ("at_time",), _check_schedule)
SUPERVISION = _Kind(SUPERVISIONS, SQL_SUPERVISION, SQL_DELETE_SUPERVISION, "supervision", "supervision",
                    supervision_json, ("open_from", "open_until", "close_by"), _check_supervision)


async def _owned(conn: Any, call: Call, kind: _Kind) -> Any:
    """The path's schedule or supervision, 404 when it does not exist or its panel is outside the
    caller's objects."""
    row = await conn.fetchrow(kind.sql_one, call.path_int("id"))
    if row is None:
        raise not_found(kind.label)
    require_object(call.user, row["object_id"], kind.label)
    return row


async def _create(call: Call, kind: _Kind, **extra: Any) -> dict[str, Any]:
    panel = await _panel(call)
    values = _times(msgspec.structs.asdict(call.body), *kind.clocks)
    kind.check(values)
    now = _now()
    async with deps(call).pool.acquire() as conn, conn.transaction():
        row = await insert(conn, kind.table, {**values, **extra, "panel_id": panel["id"], "created_by": call.user.actor,
                                              "created_at": now, "updated_at": now, "checked_until": now})
        await audit(conn, call, f"{kind.action}.create", kind.table.name, row["id"],
                    {"panel_id": panel["id"], "partition": row["partition"]})
    return kind.show(row)


async def _update(call: Call, kind: _Kind) -> dict[str, Any]:
    """A versioned change, checked as the row will be after it."""
    values = _times(provided(call.body, kind.table.writable), *kind.clocks)
    async with deps(call).pool.acquire() as conn, conn.transaction():
        current = await _owned(conn, call, kind)
        kind.check({**dict(current), **values})
        row = await update(conn, kind.table, current["id"], call.body.version, {**values, "updated_at": _now()})
        await audit(conn, call, f"{kind.action}.update", kind.table.name, row["id"],
                    {"panel_id": row["panel_id"], "fields": sorted(values)})
    return kind.show(row)


async def _delete(call: Call, kind: _Kind) -> None:
    """Delete one, its audit row saying what it was."""
    async with deps(call).pool.acquire() as conn, conn.transaction():
        row = await _owned(conn, call, kind)
        await conn.execute(kind.sql_delete, row["id"])
        await audit(conn, call, f"{kind.action}.delete", kind.table.name, row["id"], kind.show(row))


# ---- auto-arm schedules -------------------------------------------------------------------------

@router.get("/api/v1/panels/{id}/auto-arm", permission="objects.view", tags=("auto-arm",))
async def list_schedules(call: Call) -> list[dict[str, Any]]:
    """The panel's auto-arm schedules."""
    panel = await _panel(call)
    return [schedule_json(r) for r in await deps(call).pool.fetch(SQL_SCHEDULES, panel["id"])]


@router.post("/api/v1/panels/{id}/auto-arm", body=ScheduleIn, permission="panels.command", status=201,
             tags=("auto-arm",))
async def create_schedule(call: Call) -> dict[str, Any]:
    """Arm a partition at a local time on given ISO weekdays (1 = Monday) in an IANA time zone,
    except on holidays; skipped when it is armed already; on a "violated zone" refusal retried
    once with force only if `force_on_violation`. Its arm commands use the stored user code."""
    return await _create(call, SCHEDULE)


@router.get("/api/v1/auto-arm/{id}", permission="objects.view", tags=("auto-arm",))
async def get_schedule(call: Call) -> dict[str, Any]:
    """One auto-arm schedule."""
    return schedule_json(await _owned(deps(call).pool, call, SCHEDULE))


@router.patch("/api/v1/auto-arm/{id}", body=SchedulePatch, permission="panels.command", tags=("auto-arm",))
async def update_schedule(call: Call) -> dict[str, Any]:
    """Change a schedule (versioned). Runs already decided stay as they were."""
    return await _update(call, SCHEDULE)


@router.delete("/api/v1/auto-arm/{id}", permission="panels.command", status=204, tags=("auto-arm",))
async def delete_schedule(call: Call) -> None:
    """Delete a schedule; its runs stay for the record."""
    await _delete(call, SCHEDULE)


@router.get("/api/v1/panels/{id}/auto-arm/runs", query=RunQuery, permission="objects.view", tags=("auto-arm",))
async def list_runs(call: Call) -> dict[str, Any]:
    """The runs of the panel's schedules, newest due first: ARMED, ALREADY_ARMED, HOLIDAY,
    PENDING (its command out), FAILED or MISSED (no hub ran at the time), each with why."""
    panel = await _panel(call)
    q: RunQuery = call.query
    rows = await deps(call).pool.fetch(SQL_RUNS, panel["id"], q.outcome, q.since, q.until, q.capped_limit, q.offset)
    return {"items": [run_json(r) for r in rows], "total": rows[0]["total"] if rows else 0,
            "limit": q.capped_limit, "offset": q.offset}


# ---- open/close supervision ---------------------------------------------------------------------

@router.get("/api/v1/panels/{id}/supervision", permission="objects.view", tags=("auto-arm",))
async def list_supervision(call: Call) -> list[dict[str, Any]]:
    """The panel's supervised partitions."""
    panel = await _panel(call)
    return [supervision_json(r) for r in await deps(call).pool.fetch(SQL_SUPERVISIONS, panel["id"])]


@router.post("/api/v1/panels/{id}/supervision", body=SupervisionIn, permission="panels.command", status=201,
             tags=("auto-arm",))
async def create_supervision(call: Call) -> dict[str, Any]:
    """Supervise a partition's opening and closing: on `days` in `time_zone` it should be
    disarmed between `open_from` and `open_until` and armed by `close_by` (open_from < open_until
    < close_by). 409 when the partition is supervised already."""
    # Judged from here on: the disarms recorded before it are not its business.
    return await _create(call, SUPERVISION, history_cursor=await deps(call).pool.fetchval(SQL_HISTORY_HEAD))


@router.get("/api/v1/supervision/{id}", permission="objects.view", tags=("auto-arm",))
async def get_supervision(call: Call) -> dict[str, Any]:
    """One supervision."""
    return supervision_json(await _owned(deps(call).pool, call, SUPERVISION))


@router.patch("/api/v1/supervision/{id}", body=SupervisionPatch, permission="panels.command", tags=("auto-arm",))
async def update_supervision(call: Call) -> dict[str, Any]:
    """Change a supervision (versioned); the window is checked as it will be after the change."""
    return await _update(call, SUPERVISION)


@router.delete("/api/v1/supervision/{id}", permission="panels.command", status=204, tags=("auto-arm",))
async def delete_supervision(call: Call) -> None:
    """Stop supervising a partition; the alarms it raised stay."""
    await _delete(call, SUPERVISION)


# ---- holidays -----------------------------------------------------------------------------------

@router.get("/api/v1/holidays", query=HolidayQuery, permission="objects.view", tags=("auto-arm",))
async def list_holidays(call: Call) -> dict[str, Any]:
    """Holidays, by day: every object's, and those of the objects the caller sees (with
    `object_id`: the ones that apply to that object)."""
    q: HolidayQuery = call.query
    if q.object_id is not None:
        require_object(call.user, q.object_id)
    rows = await deps(call).pool.fetch(SQL_HOLIDAYS, q.object_id, object_filter(call.user), q.since, q.until,
                                       q.capped_limit, q.offset)
    return {"items": [holiday_json(r) for r in rows], "total": rows[0]["total"] if rows else 0,
            "limit": q.capped_limit, "offset": q.offset}


@router.post("/api/v1/holidays", body=HolidayIn, permission="objects.edit", status=201, tags=("auto-arm",))
async def create_holiday(call: Call) -> dict[str, Any]:
    """A day no schedule arms and no supervision judges: for one object, or without `object_id`
    for every object. 409 when that day is a holiday there already."""
    body: HolidayIn = call.body
    if body.object_id is not None:
        await visible_object(call, body.object_id)
    async with deps(call).pool.acquire() as conn, conn.transaction():
        row = await insert(conn, HOLIDAYS, {**msgspec.structs.asdict(body), "created_by": call.user.actor,
                                            "created_at": _now()})
        await audit(conn, call, "holiday.create", "holiday", row["id"],
                    {"object_id": row["object_id"], "day": row["day"].isoformat()})
    return holiday_json(row)


async def _holiday(conn: Any, call: Call) -> Any:
    row = await conn.fetchrow(SQL_HOLIDAY, call.path_int("id"))
    if row is None:
        raise not_found("holiday")
    if row["object_id"] is not None:
        require_object(call.user, row["object_id"], "holiday")
    return row


@router.patch("/api/v1/holidays/{id}", body=HolidayPatch, permission="objects.edit", tags=("auto-arm",))
async def update_holiday(call: Call) -> dict[str, Any]:
    """Move or rename a holiday (versioned)."""
    body: HolidayPatch = call.body
    values = provided(body, ("day", "name"))
    async with deps(call).pool.acquire() as conn, conn.transaction():
        current = await _holiday(conn, call)
        row = await update(conn, HOLIDAYS, current["id"], body.version, values)
        await audit(conn, call, "holiday.update", "holiday", row["id"],
                    {"object_id": row["object_id"], "fields": sorted(values)})
    return holiday_json(row)


@router.delete("/api/v1/holidays/{id}", permission="objects.edit", status=204, tags=("auto-arm",))
async def delete_holiday(call: Call) -> None:
    """Delete a holiday."""
    async with deps(call).pool.acquire() as conn, conn.transaction():
        row = await _holiday(conn, call)
        await conn.execute(SQL_DELETE_HOLIDAY, row["id"])
        await audit(conn, call, "holiday.delete", "holiday", row["id"],
                    {"object_id": row["object_id"], "day": row["day"].isoformat(), "name": row["name"]})


# ---- the morning report -------------------------------------------------------------------------

@router.get("/api/v1/reports/auto-arm", query=MorningReportQuery, permission="alarms.view", tags=("reports",))
async def morning_report(call: Call) -> web.StreamResponse | dict[str, Any]:
    """What went wrong overnight: auto-arm runs that FAILED or were MISSED and the open/close
    supervision alarms (FAILED_TO_CLOSE, FAILED_TO_OPEN, UNEXPECTED_OPENING) between `since` and
    `until`, oldest first, with `totals` per outcome or kind; `format=csv|pdf` exports the rows."""
    q: MorningReportQuery = call.query
    args = (q.since, q.until, q.object_id, object_filter(call.user))
    if (file := await export_file(call, "auto-arm", "Auto-arm and open/close supervision", REPORT_COLUMNS,
                                  SQL_REPORT, *args)) is not None:
        return file
    pool = deps(call).pool
    rows = await pool.fetch(SQL_REPORT + f" LIMIT {REPORT_JSON_LIMIT + 1}", *args)
    totals = {r["what"]: r["n"] for r in await pool.fetch(SQL_REPORT_TOTALS, *args)}
    return {"items": [record(r) for r in rows[:REPORT_JSON_LIMIT]], "truncated": len(rows) > REPORT_JSON_LIMIT,
            "totals": totals}
