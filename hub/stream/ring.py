"""The recent outbox rows one hub process keeps in memory, so most reconnects catch up without
reading PostgreSQL."""
from __future__ import annotations

from collections import deque

from hub.stream.messages import Row


class Ring:
    """The newest `size` rows, in sequence order, with no row missing between the oldest and the
    newest (the feed appends every row it reads)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._rows: deque[Row] = deque(maxlen=size)

    def extend(self, rows: list[Row]) -> None:
        self._rows.extend(rows)

    def after(self, cursor: int, upto: int) -> list[Row] | None:
        """Every row with cursor < seq <= upto, or None when the ring no longer holds all of them
        (the caller then reads PostgreSQL)."""
        if cursor >= upto:
            return []
        if not self._rows or self._rows[0].seq > cursor + 1:
            return None
        return [r for r in self._rows if cursor < r.seq <= upto]
