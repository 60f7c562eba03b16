"""Bodies of what people do on the edge's local console (docs/architecture.md §7)."""
from __future__ import annotations

import msgspec

#: A guard on site acknowledged an alarm on the local console (while the hub may be away). The
#: hub shows it on the alarm's bundle; the bundle's lifecycle stays the hub's.
LOCAL_ACK_KIND = "edge.local.ack"
#: A note longer than this is refused: a guard's remark, not a report.
MAX_NOTE = 1000


class LocalAck(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Who acknowledged which journaled alarm on site, when, and why."""

    who: str          # the site account, as `role:name` (edge.local_auth.Principal.who)
    at: str           # when they acknowledged it (ISO 8601, the edge's clock)
    note: str
    acked_id: str     # the acknowledged envelope's id
    acked_kind: str
    acked_source: str


LOCAL_BODY_TYPES: dict[str, type[msgspec.Struct]] = {LOCAL_ACK_KIND: LocalAck}
