"""Open/close supervision of a partition, pure (docs/architecture.md §5 "Auto-arm and open/close
supervision"). On a supervised day (one of its weekdays, not a holiday) in its time zone a
partition is expected to be disarmed (opened) between `open_from` and `open_until` and armed
(closed) by `close_by`:

- FAILED_TO_CLOSE (NORMAL): it is not armed at `close_by`;
- FAILED_TO_OPEN (NORMAL): it is still armed at `open_until` (nobody opened the site);
- UNEXPECTED_OPENING (HIGH): it is disarmed at a local time outside [open_from, close_by), an
  opening before the day starts or after it has closed.

Each is raised at most once per supervision, kind and local day. No database; times passed in."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, time

from hub.commands.schedules import Due, ScheduleError, due_between, zone_of


class Kind(str, enum.Enum):
    FAILED_TO_CLOSE = "FAILED_TO_CLOSE"
    FAILED_TO_OPEN = "FAILED_TO_OPEN"
    UNEXPECTED_OPENING = "UNEXPECTED_OPENING"


#: The alarm priority of each kind: a late or missing opening or closing is worked in turn; an
#: opening when the site should be shut may be an intruder with a code.
PRIORITY: dict[Kind, str] = {Kind.FAILED_TO_CLOSE: "NORMAL", Kind.FAILED_TO_OPEN: "NORMAL",
                             Kind.UNEXPECTED_OPENING: "HIGH"}


@dataclass(frozen=True)
class Window:
    """A partition's supervised day: its zone, ISO weekdays and three local times."""

    time_zone: str
    days: tuple[int, ...]
    open_from: time
    open_until: time
    close_by: time


@dataclass(frozen=True)
class Deadline:
    """A moment the partition's state is judged, and what missing it raises."""

    kind: Kind
    due: Due


def check_window(open_from: time, open_until: time, close_by: time) -> None:
    """ScheduleError naming the field unless open_from < open_until < close_by (one local day:
    overnight shifts are not supervised)."""
    if not open_from < open_until:
        raise ScheduleError("open_until must be later than open_from", "open_until")
    if not open_until < close_by:
        raise ScheduleError("close_by must be later than open_until", "close_by")


def deadlines(window: Window, start: datetime, end: datetime, holidays: frozenset[date]) -> list[Deadline]:
    """The deadlines in (start, end], oldest first: `open_until` (FAILED_TO_OPEN if still armed)
    and `close_by` (FAILED_TO_CLOSE if not armed) of each supervised day."""
    zone = zone_of(window.time_zone)
    found = [Deadline(kind, due) for kind, at in ((Kind.FAILED_TO_OPEN, window.open_until),
                                                  (Kind.FAILED_TO_CLOSE, window.close_by))
             for due in due_between(at, window.days, zone, start, end) if due.local_day not in holidays]
    return sorted(found, key=lambda d: d.due.at)


def deadline_missed(kind: Kind, armed: bool) -> bool:
    """True when the partition's state at the deadline raises `kind`."""
    return not armed if kind is Kind.FAILED_TO_CLOSE else armed


def unexpected_opening(window: Window, disarmed_at: datetime, holidays: frozenset[date]) -> date | None:
    """The local day of a disarm outside [open_from, close_by) on a supervised day, else None."""
    local = disarmed_at.astimezone(zone_of(window.time_zone))
    if local.isoweekday() not in window.days or local.date() in holidays:
        return None
    return None if window.open_from <= local.time() < window.close_by else local.date()


def describe(kind: Kind, partition: int, window: Window, at: datetime) -> str:
    """What an operator reads on the alarm."""
    local = f"{at.astimezone(zone_of(window.time_zone)):%H:%M} ({window.time_zone})"
    if kind is Kind.FAILED_TO_CLOSE:
        return f"partition {partition}: failed to close: not armed by {local}"
    if kind is Kind.FAILED_TO_OPEN:
        return f"partition {partition}: failed to open: still armed at {local}"
    return (f"partition {partition}: unexpected opening: disarmed at {local}, outside "
            f"{window.open_from:%H:%M}-{window.close_by:%H:%M}")
