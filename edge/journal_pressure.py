"""The journal's retention policy under disk pressure, as pure functions and a clock-driven tracker
(docs/architecture.md §3 "The journal"). The journal (edge/journal.py) does the I/O: it reads the
filesystem with os.statvfs and SQLite's page counts, deletes the rows, and persists what is left
to report.

Order of eviction when the journal nears its byte cap or its filesystem nears full: telemetry
samples (forwarded or not: latest wins anyway), then forwarded rows oldest first, then unforwarded
LOW, then unforwarded NORMAL, each oldest first. Unforwarded CRITICAL/HIGH rows are never evicted;
new appends are refused only when nothing else is left, and loudly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from shared.clock import Clock

#: Kinds that are samples of a value the next sample replaces: the first to go under pressure.
SAMPLE_KIND = "robot.telemetry"
#: Priorities whose unforwarded rows are never evicted.
ALARM_PRIORITIES = ("CRITICAL", "HIGH")
PRIORITIES = ("CRITICAL", "HIGH", "NORMAL", "LOW")

OK = "ok"
EVICTING = "evicting"  # unforwarded rows went: the hub will show them as gaps
REFUSING = "refusing"  # appends were refused: only unforwarded alarms are left
STATE_LEVEL = {OK: 0, EVICTING: 1, REFUSING: 2}


def kind_label(kind: str) -> str:
    """A metric label for an event kind: its first two dotted parts (`satel.zone`, `robot.telemetry`),
    so the label's values stay few however many kinds there are."""
    return ".".join(kind.split(".")[:2])


@dataclass(frozen=True)
class DiskReading:
    """The journal's filesystem and database file at one moment."""

    fs_free: int  # bytes an unprivileged writer may still use (f_bavail)
    fs_size: int
    db_file: int  # the database file's bytes (its free pages included: SQLite reuses them)
    db_live: int  # bytes of the database's pages in use


@dataclass(frozen=True)
class DiskPolicy:
    """The free space the journal leaves its filesystem (edge.config.JournalSettings), how often
    it looks at most (`check_s`, or after `check_bytes` appended: bounded staleness, no statvfs per
    append), and how long the `evicting` state holds after the last loss."""

    min_free_bytes: int = 0
    min_free_percent: float = 0.0
    check_s: float = 5.0
    hold_s: float = 60.0
    statvfs: Callable[[str], Any] = os.statvfs
    #: Envelope bytes appended between two looks at most; 0: an eighth of the floor it protects.
    check_every_bytes: int = 0

    @property
    def enabled(self) -> bool:
        return self.min_free_bytes > 0 or self.min_free_percent > 0

    @property
    def check_bytes(self) -> int:
        """Envelope bytes appended between two looks at most."""
        return self.check_every_bytes or max(64 * 1024, self.min_free_bytes // 8)


def read_disk(statvfs: Callable[[str], Any], folder: str, page_size: int, page_count: int,
              freelist_count: int) -> DiskReading:
    """Read the filesystem holding `folder` (one statvfs call) together with SQLite's page counts."""
    st = statvfs(folder)
    return DiskReading(fs_free=st.f_bavail * st.f_frsize, fs_size=st.f_blocks * st.f_frsize,
                       db_file=page_count * page_size, db_live=(page_count - freelist_count) * page_size)


def free_floor(min_free_bytes: int, min_free_percent: float, fs_size: int) -> int:
    """The free space the journal leaves its filesystem: the larger of the two settings."""
    return max(min_free_bytes, int(fs_size * min_free_percent / 100))


def disk_cap(reading: DiskReading, floor: int, payload: int) -> int | None:
    """The envelope bytes the journal may hold so its filesystem keeps `floor` bytes free, or None
    while the filesystem is above the floor (the journal rechecks often enough to bound the
    overshoot).

    Deleting rows does not shrink the file (no VACUUM: it needs free space itself); SQLite reuses
    the freed pages. So below the floor the journal's live pages must fit in its file less the
    deficit, and its payload scales with the pages it takes now (at least one byte of page per
    byte of payload). Once evictions brought the live pages under that, the file stops growing
    and the cap stays put: no runaway eviction while the filesystem stays below the floor because
    of someone else's files."""
    if reading.fs_free >= floor or payload <= 0:
        return None
    allowed = max(0, reading.db_file - (floor - reading.fs_free))
    pages_per_byte = max(1.0, reading.db_live / payload)
    return max(0, int(payload + (allowed - reading.db_live) / pages_per_byte))


def next_disk_cap(previous: int | None, before: DiskReading | None, reading: DiskReading, floor: int,
                  payload: int) -> int | None:
    """The disk cap after a new reading: `disk_cap`, except that a cap in force stays while the
    file did not grow and the filesystem did not lose free space since the reading before.
    Deleted rows free whole pages only now and then, so recomputing from page counts alone would
    shave a little more at every look while nothing changed."""
    if previous is not None and before is not None and reading.fs_free < floor \
            and reading.db_file <= before.db_file and reading.fs_free >= before.fs_free:
        return previous
    return disk_cap(reading, floor, payload)


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


@dataclass
class RefusalTally:
    """Refusals not yet reported to the hub (journal_meta keeps them across restarts)."""

    by_priority: dict[str, int] = field(default_factory=dict)
    first_at: datetime | None = None
    last_at: datetime | None = None

    @property
    def count(self) -> int:
        return sum(self.by_priority.values())

    def add(self, priority: str, at: datetime) -> None:
        """Count one refused append of `priority` at `at`."""
        self.by_priority[priority] = self.by_priority.get(priority, 0) + 1
        self.first_at = at if self.first_at is None else min(self.first_at, at)
        self.last_at = at if self.last_at is None else max(self.last_at, at)

    def to_meta(self) -> dict[str, int]:
        """journal_meta rows (integer values; times in microseconds since the epoch)."""
        rows = {f"refused_{p}": n for p, n in self.by_priority.items()}
        if self.first_at is not None and self.last_at is not None:
            rows["refused_first_us"] = _micros(self.first_at)
            rows["refused_last_us"] = _micros(self.last_at)
        return rows

    @classmethod
    def from_meta(cls, rows: dict[str, int]) -> "RefusalTally":
        """The tally journal_meta holds (see `to_meta`)."""
        tally = cls({p: rows[f"refused_{p}"] for p in PRIORITIES if rows.get(f"refused_{p}")})
        if "refused_first_us" in rows and "refused_last_us" in rows:
            tally.first_at = _from_micros(rows["refused_first_us"])
            tally.last_at = _from_micros(rows["refused_last_us"])
        return tally


def _micros(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def _from_micros(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc)


@dataclass(frozen=True)
class Evicted:
    """One evicted row, as counted."""

    kind: str
    priority: str
    forwarded: bool


class PressureTracker:
    """What the journal's retention did lately, for the local page's banner and the metrics.

    `evicting` holds for `hold_s` after the last unforwarded row was evicted, so the banner does not
    flicker with every append; `refusing` holds from a refusal until room returns (a later append
    committed, or rows were marked forwarded and so became evictable)."""

    def __init__(self, clock: Clock, hold_s: float = 60.0, unreported: RefusalTally | None = None) -> None:
        self._clock = clock
        self.hold_s = hold_s
        self.state = OK
        self.since = clock.now()
        self._refusing = False
        self._last_loss: float | None = None  # monotonic time of the last unforwarded eviction
        self.evicted: dict[str, dict[str, int]] = {}  # kind label → priority → rows, since start
        self.lost = 0  # unforwarded rows evicted since start
        self.refused: dict[str, int] = {}  # priority → appends refused since start
        self.unreported = unreported or RefusalTally()
        self.low_disk = False
        self.disk: DiskReading | None = None
        self.floor = 0
        self.cap = 0

    def record(self, evicted: list[Evicted], refused: list[str], committed: int) -> None:
        """Count one group commit's evictions and refusals (priorities); `committed` rows got in."""
        now = self._clock.now()
        for row in evicted:
            per_kind = self.evicted.setdefault(kind_label(row.kind), {})
            per_kind[row.priority] = per_kind.get(row.priority, 0) + 1
            if not row.forwarded:
                self.lost += 1
                self._last_loss = self._clock.monotonic()
        for priority in refused:
            self.refused[priority] = self.refused.get(priority, 0) + 1
            self.unreported.add(priority, now)
        if refused:
            self._refusing = True
        elif committed:
            self._refusing = False
        self.refresh()

    def room_returned(self) -> None:
        """Rows became evictable (marked forwarded): a refusing journal has room again."""
        self._refusing = False
        self.refresh()

    def reported(self) -> None:
        """The unreported refusals were journaled as one `edge.journal.refused` event."""
        self.unreported = RefusalTally()

    def refresh(self) -> str:
        """The current state (it decays with time), updating `since` on a change."""
        losing = self._last_loss is not None and self._clock.monotonic() - self._last_loss < self.hold_s
        state = REFUSING if self._refusing else EVICTING if losing else OK
        if state != self.state:
            self.state, self.since = state, self._clock.now()
        return state

    def status(self) -> dict[str, object]:
        """The local page's `disk_pressure` block."""
        self.refresh()
        return {
            "state": self.state,
            "since": _iso(self.since),
            "low_disk": self.low_disk,
            "fs_free_bytes": self.disk.fs_free if self.disk else None,
            "min_free_bytes": self.floor,
            "cap_bytes": self.cap,
            "refused_by_priority": dict(self.refused),
            "unreported_refusals": self.unreported.count,
            "first_refused_at": _iso(self.unreported.first_at),
            "last_refused_at": _iso(self.unreported.last_at),
            "evicted_by_kind_priority": {k: dict(v) for k, v in self.evicted.items()},
            "evicted_unforwarded": self.lost,
        }
