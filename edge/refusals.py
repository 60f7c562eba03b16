"""The hub's refusals of this edge's segments, as the installer must see them.

The edge forgets a row once JetStream has acknowledged it; the hub verifies afterwards, and
quarantines what fails. It tells the edge with a `SegmentsRefused` notice (core NATS, subject
`shared.subjects.edge_notices`) per refused segment, rate-limited. `RefusalState` keeps what the
local page shows (pure, with a clock); `listen_for_refusals` feeds it from the leaf connection.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any

import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import Counter, Gauge

from shared import subjects
from shared.clock import SYSTEM_CLOCK, Clock
from shared.notices import SegmentsRefused, decode_notice

log = logging.getLogger("vigil.edge.refusals")

# Notices are rate-limited and core NATS (one lost while the WAN is down is simply not there), so
# "refused" means "a notice came lately", not "every segment is refused right now".
REFUSED_WINDOW = timedelta(minutes=10)

# A reason is a hub.ingest.verify code; anything else is not a notice from the hub (the site's own
# clients can publish on the leaf too) and must not become a metric label.
_REASON_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

NOTICES = Counter("vigil_edge_refusal_notices_total", "Notices that the hub refused one of this edge's segments", ["reason"])
NOTICES_DROPPED = Counter(
    "vigil_edge_notices_dropped_total", "Notices dropped unread: malformed, or naming another edge", ["why"]
)
REFUSED = Gauge("vigil_edge_segments_refused", "1 while the hub refuses this edge's segments (a notice in the last 10 minutes)")


def local_time(at: datetime) -> str:
    """A UTC time as a person on site reads it: the box's local time zone, to the second."""
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


class RefusalState:
    """The last refusal notice, how many came in the current streak, and when (edge clock).

    The edge counts as refused while the newest notice is less than `window` old; a notice after
    a quiet `window` starts a new streak (count and first time start over)."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, window: timedelta = REFUSED_WINDOW) -> None:
        self.clock = clock
        self.window = window
        self.last: SegmentsRefused | None = None
        self.count = 0
        self.first_at: datetime | None = None
        self.last_at: datetime | None = None

    def record(self, notice: SegmentsRefused) -> None:
        """Take one notice for this edge."""
        now = self.clock.now()
        if not self.refused():
            self.count = 0
            self.first_at = now
        self.last = notice
        self.count += 1
        self.last_at = now

    def refused(self) -> bool:
        """True while the newest notice is less than the window old."""
        return self.last_at is not None and self.clock.now() - self.last_at < self.window

    def banner(self) -> str | None:
        """The local page's red banner while refused, else None."""
        if not self.refused() or self.last is None or self.first_at is None or self.last_at is None:
            return None
        return (
            f"The hub refuses this box's segments: {self.last.reason} ({self.last.detail}), "
            f"last at {local_time(self.last_at)}, {self.count} since {local_time(self.first_at)} — "
            "they are kept in the hub's quarantine; re-enrol or restore the key"
        )

    def status(self) -> dict[str, Any]:
        """What the local status JSON says (times in UTC); the last notice stays after it lapses."""
        last = self.last
        return {
            "refused": self.refused(),
            "banner": self.banner(),
            "count": self.count,
            "first_at": self.first_at.isoformat() if self.first_at else None,
            "last_at": self.last_at.isoformat() if self.last_at else None,
            "last": None if last is None else {
                "reason": last.reason, "detail": last.detail, "key_id": last.key_id, "seq_range": last.seq_range,
                "quarantine_id": last.quarantine_id, "hub_at": last.at.isoformat(),
            },
        }


def _drop(edge_id: str, msg: Msg, why: str, problem: str) -> None:
    NOTICES_DROPPED.labels(why).inc()
    log.warning("notice on %s dropped (%s): %s", msg.subject, why, problem,
                extra={"edge": edge_id, "subject": msg.subject, "why": why, "bytes": len(msg.data)})


async def listen_for_refusals(nc: NatsClient, edge_id: str, state: RefusalState) -> Subscription:
    """Subscribe to this edge's notices on its leaf connection and keep `state` (and the
    vigil_edge_segments_refused gauge) current. A bad notice is counted and logged, never raised."""

    async def on_notice(msg: Msg) -> None:
        try:
            notice = decode_notice(msg.data)
        except msgspec.DecodeError as exc:  # ValidationError is one too
            _drop(edge_id, msg, "malformed", str(exc))
            return
        if not _REASON_RE.match(notice.reason):
            _drop(edge_id, msg, "malformed", f"reason {notice.reason[:60]!r} is not a reason code")
            return
        if notice.edge != edge_id:
            _drop(edge_id, msg, "other_edge", f"it names edge {notice.edge[:80]!r}")
            return
        state.record(notice)
        NOTICES.labels(notice.reason).inc()
        log.error(
            "the hub refused segment %s of this edge (%s: %s) and keeps it in quarantine %d; re-enrol or restore the key",
            notice.seq_range, notice.reason, notice.detail, notice.quarantine_id,
            extra={"edge": edge_id, "quarantine_id": notice.quarantine_id, "reason": notice.reason,
                   "seq": notice.seq_range, "key_id": notice.key_id, "count": state.count},
        )

    # Read at scrape time: "refused" ends by itself when notices stop coming.
    REFUSED.set_function(lambda: float(state.refused()))
    return await nc.subscribe(subjects.edge_notices(edge_id), cb=on_notice)
