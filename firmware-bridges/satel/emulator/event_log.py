"""The panel's event log: bounded, newest last, read back one record at a time by index."""

from __future__ import annotations

from collections import deque

from ..protocol import END_OF_EVENTS, NEWEST_EVENT, EventAnswer, EventRecord

_FIRST_INDEX = 1
_LAST_INDEX = 0xFFFFFE  # FFFFFF asks for the newest record, so it is never an index


class EventLog:
    """Records with 24-bit indices; the oldest fall out once ``size`` are kept."""

    def __init__(self, size: int = 1024) -> None:
        self._entries: deque[tuple[int, EventRecord]] = deque(maxlen=size)
        self._next_index = _FIRST_INDEX
        self.appended = 0  # records ever appended, so callers can tell which ones are new

    def append(self, record: EventRecord) -> int:
        """Log a record; returns its index."""
        index = self._next_index
        self._entries.append((index, record))
        self._next_index = index + 1 if index < _LAST_INDEX else _FIRST_INDEX
        self.appended += 1
        return index

    def latest(self, count: int) -> tuple[int, ...]:
        """Indices of the ``count`` newest records still kept, oldest first."""
        kept = min(count, len(self._entries))
        return tuple(index for index, _ in list(self._entries)[len(self._entries) - kept :])

    @property
    def newest_index(self) -> int | None:
        """Index of the newest record, or None when the log is empty."""
        return self._entries[-1][0] if self._entries else None

    def read(self, index: int) -> EventAnswer:
        """The 0x8C answer for ``index`` (NEWEST_EVENT for the newest); past the end, an empty record."""
        entries = list(self._entries)
        if index == NEWEST_EVENT:
            position = len(entries) - 1
        else:
            position = next((at for at, (kept, _) in enumerate(entries) if kept == index), -1)
        if position < 0:
            return EventAnswer(END_OF_EVENTS, 0, index)
        previous = entries[position - 1][0] if position > 0 else 0
        return EventAnswer(entries[position][1], previous, index)
