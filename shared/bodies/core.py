"""Bodies of the edge's own events (not tied to a device family)."""
from __future__ import annotations

from datetime import datetime

import msgspec


class DemoTick(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The demo source's heartbeat event, until real device links exist."""

    n: int


#: The synthetic probe's event (edge/probe.py): a probe edge journals one every interval, HIGH so it
#: rides the alarm lane, and the hub times its way to the live stream (hub/probe.py).
PROBE_KIND = "probe.tick"


class ProbeTick(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One synthetic probe: its number since the agent started and the interval the hub may expect."""

    n: int
    interval_s: float


class LinkStatus(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A device link went up or down."""

    link: str
    reason: str = ""
    # A stop someone chose (the agent shutting down, a DLOADX release): the hub shows the link
    # down but holds the LINK alarm for a grace period (docs/architecture.md §7).
    planned: bool = False


#: The journal's report of appends it refused (edge/journal.py), journaled HIGH once room returned.
JOURNAL_REFUSED_KIND = "edge.journal.refused"


class JournalRefused(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`edge.journal.refused`: the edge journal refused appends because only unforwarded
    CRITICAL/HIGH rows were left to fill its cap (or its filesystem's free-space floor); those
    events are lost. `refused` counts them per priority, between `first_at` and `last_at`;
    `cap_bytes` is the cap that was full, `low_disk` whether the filesystem set it."""

    refused: dict[str, int]
    first_at: datetime
    last_at: datetime
    cap_bytes: int
    low_disk: bool = False
