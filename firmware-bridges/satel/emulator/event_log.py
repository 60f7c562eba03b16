"""The panel's event log: a ring of records read back one at a time by index, newest first."""

from __future__ import annotations

from ..protocol import END_OF_EVENTS, NEWEST_EVENT, EventAnswer, EventRecord


class EventLog:
    """``size`` records in a ring of ``size + 1`` slots; the index of a record is its slot.

    Like the panel's log, a record keeps its index for as long as it is kept, the oldest is
    overwritten once the log is full, and the slot after the newest record is always empty: that
    is the 'end of events' record a client walking back reaches after the oldest one.
    """

    def __init__(self, size: int = 1024) -> None:
        if not 1 <= size < NEWEST_EVENT - 1:
            raise ValueError(f"event log size {size!r} is outside 1..{NEWEST_EVENT - 2}")
        self._slots: list[EventRecord | None] = [None] * (size + 1)
        self._next = 0
        self._newest: int | None = None
        self.appended = 0  # records ever appended, so callers can tell which ones are new

    def append(self, record: EventRecord) -> int:
        """Log a record (overwriting the oldest when the log is full); returns its index."""
        index = self._next
        self._slots[index] = record
        self._next = (index + 1) % len(self._slots)
        self._slots[self._next] = None
        self._newest = index
        self.appended += 1
        return index

    def clear(self) -> None:
        """Empty the log (as the installer's 'reset of event log'); new records take the next slots."""
        self._slots = [None] * len(self._slots)
        self._newest = None

    def latest(self, count: int) -> tuple[int, ...]:
        """Indices of the ``count`` newest records still kept, oldest first."""
        indices: list[int] = []
        index = self._newest
        while index is not None and len(indices) < count and self._slots[index] is not None:
            indices.append(index)
            index = (index - 1) % len(self._slots)
        return tuple(reversed(indices))

    def records(self) -> list[EventRecord]:
        """Every record still kept, oldest first: what a test counts to see what the panel did."""
        return [record for index in self.latest(len(self._slots)) if (record := self._slots[index]) is not None]

    @property
    def newest_index(self) -> int | None:
        """Index of the newest record, or None when the log is empty."""
        return self._newest

    def read(self, index: int) -> EventAnswer:
        """The 0x8C answer for ``index`` (NEWEST_EVENT for the newest).

        Its event index is the slot before the record's, which the client sends next to walk back
        (manual, 0x8C); an empty slot or an index past the log answers 'end of events'.
        """
        slot = self._newest if index == NEWEST_EVENT else index
        record = self._slots[slot] if slot is not None and slot < len(self._slots) else None
        if slot is None or record is None:
            return EventAnswer(END_OF_EVENTS, 0, index)
        return EventAnswer(record, (slot - 1) % len(self._slots), index)
