"""Auto-arm schedules, pure (docs/architecture.md §5 "Auto-arm and open/close supervision"): when
a local time of day falls on given weekdays in a time zone, what a due run does (holiday, missed,
already armed, or arm), and what an arm command's result does to its run (armed, one retry with
force, failed). No database; every time is passed in."""
from __future__ import annotations

import enum
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from firmware_bridges.satel.protocol import ResultCode
from hub.commands.domain import Status
from hub.config import valid_time_zone

#: The panel's NACK code "violated zone, force possible": the one refusal a forced arm may overcome.
VIOLATED_FORCE_POSSIBLE = int(ResultCode.CANNOT_ARM_USE_FORCE)
#: How far back a scheduler pass looks for runs due while no hub ran: a hub down longer records
#: the last week's runs as MISSED, not every run since its last pass.
MAX_CATCH_UP = timedelta(days=7)
ISO_WEEKDAYS = range(1, 8)


class ScheduleError(ValueError):
    """A schedule or supervision that cannot be kept as given; `field` names the input."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class Outcome(str, enum.Enum):
    """How a run ended. PENDING: its arm command is out (retried once with force, maybe)."""

    ARMED = "ARMED"
    ALREADY_ARMED = "ALREADY_ARMED"
    HOLIDAY = "HOLIDAY"
    PENDING = "PENDING"
    FAILED = "FAILED"
    MISSED = "MISSED"


@dataclass(frozen=True)
class Due:
    """One instant a schedule (or a supervision deadline) falls on, and its local calendar day."""

    at: datetime  # UTC
    local_day: date


@dataclass(frozen=True)
class Verdict:
    """What happens to a run: its outcome and why in words; `reason` labels a failure's metric;
    `retry_with_force` asks for the one forced retry (the run stays PENDING)."""

    outcome: Outcome
    detail: str
    reason: str | None = None
    retry_with_force: bool = False


def zone_of(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone `name`; ScheduleError naming `time_zone` when this machine does not know it."""
    if not valid_time_zone(name):
        raise ScheduleError(f"{name!r} is not an IANA time zone name", "time_zone")
    return zoneinfo.ZoneInfo(name)


def check_days(days: list[int] | tuple[int, ...]) -> tuple[int, ...]:
    """ISO weekdays sorted and de-duplicated; ScheduleError naming `days` when empty or out of 1..7."""
    if not days:
        raise ScheduleError("days must name at least one ISO weekday (1 = Monday .. 7 = Sunday)", "days")
    if any(d not in ISO_WEEKDAYS for d in days):
        raise ScheduleError(f"days must be ISO weekdays 1..7; got {sorted(days)}", "days")
    return tuple(sorted(set(days)))


def local_instant(day: date, at: time, zone: zoneinfo.ZoneInfo) -> datetime:
    """The UTC instant the wall clock in `zone` shows `at` on `day`. A time the clocks skip (the
    spring-forward gap) falls on the first instant after it: the moment of the change, when the
    clock reads the gap's end. A time the clocks show twice (autumn) falls on the first."""
    naive = datetime.combine(day, at)
    first = naive.replace(tzinfo=zone).astimezone(timezone.utc)  # fold=0: the earlier of two
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first
    # In the gap the two folds give the instants an offset-change apart around the transition:
    # bisect (in whole seconds, as zones change) for the first instant whose wall time is past it.
    lo, hi = sorted(int(naive.replace(tzinfo=zone, fold=f).timestamp()) for f in (0, 1))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, timezone.utc)


def due_between(at: time, days: tuple[int, ...] | frozenset[int], zone: zoneinfo.ZoneInfo, start: datetime,
                end: datetime) -> list[Due]:
    """Every instant in (start, end] that the local time `at` falls on, on the ISO weekdays
    `days` of `zone`, oldest first (one per local day, DST-correct: see local_instant)."""
    out = []
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        if day.isoweekday() in days:
            instant = local_instant(day, at, zone)
            if start < instant <= end:
                out.append(Due(instant, day))
        day += timedelta(days=1)
    return out


def catch_up_from(checked_until: datetime, now: datetime) -> datetime:
    """Where a pass starts looking for due runs: after the last pass, at most MAX_CATCH_UP ago."""
    return max(checked_until, now - MAX_CATCH_UP)


def decide_due(due: Due, now: datetime, lookback: timedelta, holidays: frozenset[date],
               armed: bool) -> Verdict:
    """What a due run does: nothing on a holiday; MISSED when due longer ago than `lookback` (no
    hub ran then: a late arm would surprise whoever is on site now); nothing when the partition is
    armed already; otherwise PENDING: give the arm command."""
    if due.local_day in holidays:
        return Verdict(Outcome.HOLIDAY, f"{due.local_day.isoformat()} is a holiday")
    if now - due.at > lookback:
        minutes = int((now - due.at).total_seconds() // 60)
        return Verdict(Outcome.MISSED, f"no hub ran the schedule at its time: {minutes} min late, not armed late",
                       reason="missed")
    if armed:
        return Verdict(Outcome.ALREADY_ARMED, "the partition was armed already")
    return Verdict(Outcome.PENDING, "arm command given")


def settle_run(status: Status, result_code: int | None, result_reason: str | None, forced: bool,
               force_on_violation: bool) -> Verdict | None:
    """What the result of a run's latest command does to the run; None while it is open. ACK:
    ARMED. NACK "violated zone, force possible" (0x11) on the first try: one retry with force if
    the schedule allows it, else FAILED. Any other NACK, TIMEOUT or EXPIRED: FAILED."""
    if status.open:
        return None
    if status is Status.ACK:
        return Verdict(Outcome.ARMED, "armed with force after a violated zone" if forced else "armed")
    why = result_reason or status.value
    if status is Status.NACK and result_code == VIOLATED_FORCE_POSSIBLE and not forced:
        if force_on_violation:
            return Verdict(Outcome.PENDING, f"refused: {why}; retrying once with force", retry_with_force=True)
        return Verdict(Outcome.FAILED, f"refused: {why}; this schedule does not arm with force", reason="violated_zone")
    if status is Status.NACK:
        return Verdict(Outcome.FAILED, f"refused{' with force' if forced else ''}: {why}", reason="nack")
    return Verdict(Outcome.FAILED, f"{status.value}: {why}", reason=status.value.lower())
