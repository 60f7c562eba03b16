"""Telemetry to one live client, throttled: at most one sample per robot per interval, and the
latest wins. Pure; the client's queue (hub.stream.delivery.ClientQueue) drives it with the event
loop's clock and a timer for the samples it holds."""
from __future__ import annotations

from hub.stream.messages import Row


class TelemetryThrottle:
    """A sample for a robot whose last one went out less than `interval_s` ago is held, replacing
    the one held before it; when the interval is up the held sample goes (`due`). Rows without a
    `throttle_key` pass untouched."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._free_at: dict[str, float] = {}  # per robot: when its next sample may go
        self._held: dict[str, Row] = {}

    def admit(self, rows: list[Row], now: float) -> list[Row]:
        """The rows to send now, in order; the rest are held."""
        out = []
        for row in rows:
            key = row.throttle_key
            if key is None:
                out.append(row)
            elif now >= self._free_at.get(key, now):
                self._free_at[key] = now + self.interval_s
                self._held.pop(key, None)
                out.append(row)
            else:
                self._held[key] = row
        return out

    def due(self, now: float) -> list[Row]:
        """The held samples whose interval is up, oldest row first; they count as sent now."""
        ready = [key for key in self._held if now >= self._free_at[key]]
        for key in ready:
            self._free_at[key] = now + self.interval_s
        return sorted((self._held.pop(key) for key in ready), key=lambda r: r.seq)

    def next_due(self) -> float | None:
        """When the first held sample may go (event-loop time), or None when none is held."""
        return min((self._free_at[key] for key in self._held), default=None)
