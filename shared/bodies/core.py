"""Bodies of the edge's own events (not tied to a device family)."""
from __future__ import annotations

import msgspec


class DemoTick(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The demo source's heartbeat event, until real device links exist."""

    n: int


class LinkStatus(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A device link went up or down."""

    link: str
    reason: str = ""
    # A stop someone chose (the agent shutting down, a DLOADX release): the hub shows the link
    # down but holds the LINK alarm for a grace period (docs/architecture.md §7).
    planned: bool = False
