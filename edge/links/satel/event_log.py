"""The panel's own event log as the link reads it: where the edge got to, which records are new,
how they are journaled, and which live observation a record is the same occurrence as.

Pure: no sockets, no journal, no timers. The link walks the log (0x8C from `FF FF FF`, then the
event index each answer returns, which reads the record before it) and hands every answer to a
`LogWalk`, which says when to stop; `EventLogState` turns the walk into `satel.log.record`
observations and moves the cursor once the link has journaled them.

One physical alarm can reach the hub twice: seen live in a state bitmap (`satel.zone.alarm` …)
and read from the log. Both envelopes then carry one occurrence key, so the hub keeps one event:
a live alarm waits (for `match_window_s`) for its log record, and at a reconnect the records read
while the link was down wait for the first snapshot diff.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

from edge.links.satel.state import Observation
from firmware_bridges.satel.protocol import (
    EventAnswer,
    EventCategory,
    EventDescription,
    PartitionState,
    SourceKind,
    ZoneState,
    describe_record,
    encode_event_record,
)
from shared.bodies.satel import LogRecord, PartitionEvent, ZoneEvent
from shared.clock import Clock
from shared.envelope import Priority

LOG_RECORD_KIND = "satel.log.record"
#: A walk with a cursor reads at most this many records; more is a panel that logged a flood.
MAX_WALK = 1024
#: How long a live alarm waits for its log record.
MATCH_WINDOW_S = 600.0

# Byte 0 of a record holds the monitoring status of stations 1 and 2 in its low four bits; the
# panel updates them in place once it has reported the event, so they are no part of its identity.
_MONITORING_BITS = 0x0F

_CRITICAL = frozenset({EventCategory.FIRE, EventCategory.PANIC})
_HIGH = frozenset({EventCategory.ALARM, EventCategory.TAMPER})

# What a live alarm and a log record must share to be one occurrence: (what, element, number).
_MatchKey = tuple[str, str, int]
# A zone's alarm bit is set by any alarming zone, burglary, fire or panic alike.
_ZONE_ALARMS = frozenset({EventCategory.ALARM, EventCategory.FIRE, EventCategory.PANIC})
# A partition's alarm bit, for a record that names no zone (a keypad panic, a module tamper).
_PARTITION_ALARMS = frozenset({EventCategory.ALARM, EventCategory.TAMPER, EventCategory.PANIC})
#: The state bitmaps whose alarms a log record can be the same occurrence as.
ALARM_QUERIES = frozenset({ZoneState.ALARM, ZoneState.TAMPER_ALARM, PartitionState.ALARM, PartitionState.FIRE_ALARM})


def observation_match_key(observation: Observation) -> _MatchKey | None:
    """The match key of a live alarm observation, or None for observations that are no alarm."""
    match observation.kind, observation.body:
        case "satel.zone.alarm", ZoneEvent(zone=zone):
            return ("alarm", "zone", zone)
        case "satel.zone.tamper_alarm", ZoneEvent(zone=zone):
            return ("tamper", "zone", zone)
        case "satel.partition.alarm", PartitionEvent(partition=partition):
            return ("alarm", "partition", partition)
        case "satel.partition.fire_alarm", PartitionEvent(partition=partition):
            return ("fire", "partition", partition)
    return None


def record_match_key(described: EventDescription, partition: int) -> _MatchKey | None:
    """The match key of a log record: an alarm's start (not its restore) with the zone it names,
    or its partition when it names none; None for every other record."""
    if described.restore:
        return None
    category = described.category
    if described.source is SourceKind.ZONE and described.number is not None:
        if category in _ZONE_ALARMS:
            return ("alarm", "zone", described.number)
        if category is EventCategory.TAMPER:
            return ("tamper", "zone", described.number)
        return None
    if category in _PARTITION_ALARMS:
        return ("alarm", "partition", partition)
    if category is EventCategory.FIRE:
        return ("fire", "partition", partition)
    return None


def record_priority(category: EventCategory, restore: bool, history_only: bool) -> Priority:
    """FIRE and PANIC CRITICAL, ALARM and TAMPER HIGH, troubles NORMAL, the rest LOW; the end of
    an alarm (restore) is no alarm, and history is never more than LOW."""
    if history_only:
        return Priority.LOW
    if category is EventCategory.TROUBLE:
        return Priority.NORMAL
    if restore:
        return Priority.LOW
    if category in _CRITICAL:
        return Priority.CRITICAL
    if category in _HIGH:
        return Priority.HIGH
    return Priority.LOW


@dataclass(frozen=True)
class LogCursor:
    """The newest record journaled: its index and its 8 bytes (hex, monitoring bits cleared), so
    a slot the panel has since reused for another record is not taken for it. `index` None: the
    log was empty when last read, so everything in it now is new."""

    index: int | None
    fingerprint: str = ""

    @classmethod
    def of(cls, answer: EventAnswer) -> LogCursor:
        """The cursor at the record of `answer`."""
        data = bytearray(encode_event_record(answer.record))
        data[0] &= ~_MONITORING_BITS & 0xFF
        return cls(answer.previous_index, data.hex())

    def encode(self) -> str:
        """The text stored in the journal."""
        return "empty" if self.index is None else f"{self.index:06x}:{self.fingerprint}"

    @classmethod
    def parse(cls, text: str) -> LogCursor:
        """The inverse of `encode`; raises ValueError for anything else."""
        if text == "empty":
            return cls(None)
        index, _, fingerprint = text.partition(":")
        try:
            position, record = bytes.fromhex(index), bytes.fromhex(fingerprint)
        except ValueError:
            raise ValueError(f"not a Satel event log cursor: {text!r}") from None
        if len(position) != 3 or len(record) != 8:
            raise ValueError(f"not a Satel event log cursor: {text!r}")
        return cls(int.from_bytes(position, "big"), record.hex())

    def matches(self, answer: EventAnswer) -> bool:
        """`answer` is the record this cursor was taken at."""
        return LogCursor.of(answer) == self


EMPTY_LOG = LogCursor(None)


@dataclass
class LogWalk:
    """One walk from the newest record back to the cursor. Feed it every 0x8C answer in turn:
    `take` says whether to read the answer's event index next.

    Without a cursor (a first start) it reads back `window` records; with one, every new record
    up to MAX_WALK. When the cursor is gone (the log was reset, or wrapped past it) only the
    newest `window` records are kept, as on a first start.
    """

    cursor: LogCursor | None
    window: int
    collected: list[EventAnswer] = field(default_factory=list)  # newest first
    found: bool = False
    lost: bool = False
    capped: bool = False
    ended_empty: bool = False  # the first answer was 'end of events': the log is empty
    _seen: set[int] = field(default_factory=set)

    def take(self, answer: EventAnswer) -> bool:
        """Account for `answer`; True when the record before it should be read next."""
        cursor = self.cursor
        if answer.record.is_end:
            self.ended_empty = not self.collected
            # Reaching the end finds a cursor taken on an empty log; any other is gone.
            self.found = cursor == EMPTY_LOG
            self.lost = cursor is not None and not self.found
            return False
        if answer.previous_index in self._seen:
            # Back at a record already read: a full log whose oldest slot is the newest's.
            self.lost = cursor is not None
            return False
        if cursor is not None and cursor.index is not None and answer.previous_index == cursor.index:
            if cursor.matches(answer):
                self.found = True
                return False
            # The cursor's slot holds a newer record: the log wrapped past the cursor.
            self.lost = True
        self._seen.add(answer.previous_index)
        self.collected.append(answer)
        if self.cursor is None or self.lost:
            return len(self.collected) < self.window
        if len(self.collected) >= MAX_WALK:
            self.capped = True
            return False
        return True

    @property
    def read_back(self) -> bool:
        """No cursor to read on from (a first start, or the cursor is gone): only the newest
        `window` records are journaled, and old ones as history."""
        return self.cursor is None or self.lost

    @property
    def new_records(self) -> list[EventAnswer]:
        """The records to journal, oldest first."""
        kept = self.collected[: self.window] if self.read_back else self.collected
        return kept[::-1]

    def warning(self) -> str | None:
        """Why this walk may have missed records, if it may have."""
        if self.lost:
            return f"the panel's event log no longer holds the last record journaled (reset or wrapped); read back the newest {len(self.new_records)}"
        if self.capped:
            return f"more than {MAX_WALK} new records in the panel's event log; journaled the newest {MAX_WALK}"
        return None

    def next_cursor(self) -> LogCursor | None:
        """Where the log stands once this walk's records are journaled."""
        if self.collected:
            return LogCursor.of(self.collected[0])
        if self.ended_empty:
            return EMPTY_LOG
        return self.cursor


@dataclass
class _Waiting:
    """An occurrence waiting for its other path."""

    key: _MatchKey
    occurrence: str
    until: float  # clock.monotonic() when a live alarm stops waiting (records at connect: unused)


class EventLogState:
    """What the link knows about one panel's event log, and the occurrence keys it hands out.

    `timezone` is the zone the panel's clock runs in; `window` and `alarm_age_s` shape a read
    back without a cursor (see LogWalk): records older than `alarm_age_s` (by the edge's clock)
    are journaled as history only.
    """

    def __init__(
        self,
        panel_id: str,
        clock: Clock,
        *,
        timezone: str = "UTC",
        window: int = 50,
        alarm_age_s: float = 3600.0,
        match_window_s: float = MATCH_WINDOW_S,
    ) -> None:
        self.panel_id = panel_id
        self._clock = clock
        self._tz = ZoneInfo(timezone)
        self.window = window
        self.alarm_age_s = alarm_age_s
        self.match_window_s = match_window_s
        self.cursor: LogCursor | None = None
        self._live: list[_Waiting] = []  # live alarms waiting for their log record
        self._offline: list[_Waiting] = []  # records read at this (re)connect, waiting for the diff

    # --- the cursor ----------------------------------------------------------------------------

    def load_cursor(self, text: str | None) -> None:
        """Take the cursor stored in the journal (None: this edge never read this panel's log).

        Raises ValueError for a stored value that is no cursor (then there is none).
        """
        self.cursor = None
        if text is not None:
            self.cursor = LogCursor.parse(text)

    def walk(self) -> LogWalk:
        """A new walk back from the newest record to the cursor."""
        return LogWalk(self.cursor, self.window)

    def advance(self, walk: LogWalk) -> str | None:
        """Move the cursor past `walk` (call once its records are journaled); the text to store,
        or None when the cursor did not move."""
        cursor = walk.next_cursor()
        if cursor is None or cursor == self.cursor:
            return None
        self.cursor = cursor
        return cursor.encode()

    # --- records -------------------------------------------------------------------------------

    @staticmethod
    def has_alarms(walk: LogWalk) -> bool:
        """A new record of the walk is an alarm a live observation may report too."""
        return any(
            record_match_key(describe_record(answer.record), answer.record.partition) is not None
            for answer in walk.new_records
        )

    def records(self, walk: LogWalk, *, at_connect: bool) -> list[Observation]:
        """The `satel.log.record` observations of a walk's new records, oldest first.

        `at_connect`: read right after (re)connecting, so they happened while the link was down
        (`offline`) unless a live observation already reported them.
        """
        self._expire()
        now = self._clock.now()
        reference = now.astimezone(self._tz)
        observations = []
        for answer in walk.new_records:
            record = answer.record
            described = describe_record(record)
            recorded_at = record.timestamp(reference)
            history_only = walk.read_back and (
                recorded_at is None or (now - recorded_at).total_seconds() > self.alarm_age_s
            )
            stamp = recorded_at.isoformat() if recorded_at is not None else "unknown"
            occurrence = f"log:{self.panel_id}:{answer.previous_index}:{stamp}"
            key = None if history_only else record_match_key(described, record.partition)
            live = self._take(self._live, key)
            offline = at_connect and live is None
            if live is not None:
                occurrence = live
            elif offline and key is not None:
                self._offline.append(_Waiting(key, occurrence, 0.0))
            body = LogRecord(
                index=answer.previous_index,
                code=described.code,
                category=described.category.value,
                text=described.text,
                restore=described.restore,
                partition=record.partition,
                zone=described.number if described.source is SourceKind.ZONE else None,
                user=described.number if described.source is SourceKind.USER else None,
                source=record.source,
                recorded_at=recorded_at,
                offline=offline,
                history_only=history_only,
            )
            priority = record_priority(described.category, described.restore, history_only)
            observations.append(Observation(LOG_RECORD_KIND, priority, body, occurrence=occurrence))
        return observations

    # --- live observations ---------------------------------------------------------------------

    def tag(self, observations: list[Observation], *, at_connect: bool) -> list[Observation]:
        """Give every alarm among `observations` its occurrence key.

        `at_connect`: the diff of the snapshot read at a (re)connect, whose alarms may be records
        the log read just before reported; otherwise a new key that waits for its log record.
        """
        self._expire()
        tagged = []
        for observation in observations:
            key = observation_match_key(observation)
            if key is not None:
                occurrence = self._take(self._offline, key) if at_connect else None
                if occurrence is None:
                    occurrence = f"live:{self.panel_id}:{uuid.uuid4()}"
                    self._live.append(_Waiting(key, occurrence, self._clock.monotonic() + self.match_window_s))
                observation = replace(observation, occurrence=occurrence)
            tagged.append(observation)
        return tagged

    def end_connect(self) -> None:
        """The (re)connect's diff is journaled: records read at connect no longer wait for it."""
        self._offline.clear()

    def _expire(self) -> None:
        """A live alarm whose record never came (a panel set not to log it) stops waiting."""
        now = self._clock.monotonic()
        self._live = [entry for entry in self._live if entry.until > now]

    @staticmethod
    def _take(waiting: list[_Waiting], key: _MatchKey | None) -> str | None:
        """The occurrence of the oldest entry of `waiting` with `key` (removed), or None."""
        if key is None:
            return None
        for entry in waiting:
            if entry.key == key:
                waiting.remove(entry)
                return entry.occurrence
        return None
