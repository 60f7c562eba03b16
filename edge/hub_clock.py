"""The hub's time as this box best knows it: the box's clock plus the offset measured against the
hub's answers to status reports (NTP's idea in one exchange: the hub's time stands for the middle
of the round trip). Commands expire by the hub's clock, and a box whose clock is off by a year
must neither run stale commands nor refuse fresh ones."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from shared.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("vigil.edge.hub_clock")

#: A round trip longer than this says too little about the offset to use it.
MAX_RTT_S = 5.0
#: An offset beyond this is logged: the box's clock needs fixing.
WARN_OFFSET_S = 2.0


class HubClock:
    """`now()` is the hub's time; until the first measurement it is the box's own clock."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self.offset_s: float | None = None

    def observe(self, sent_at: datetime, rtt_s: float, hub_time: datetime) -> None:
        """One exchange: sent at `sent_at` (box clock), answered after `rtt_s` with `hub_time`."""
        if not 0 <= rtt_s <= MAX_RTT_S:
            return
        offset = (hub_time - (sent_at + timedelta(seconds=rtt_s / 2))).total_seconds()
        if abs(offset) > WARN_OFFSET_S and (self.offset_s is None or abs(offset - self.offset_s) > WARN_OFFSET_S):
            log.warning("this box's clock is %.1f s %s the hub's; commands expire by the hub's clock", abs(offset),
                        "behind" if offset > 0 else "ahead of", extra={"offset_s": round(offset, 3)})
        self.offset_s = offset

    def now(self) -> datetime:
        """The hub's time now, as well as this box knows it."""
        now = self._clock.now()
        return now if self.offset_s is None else now + timedelta(seconds=self.offset_s)
