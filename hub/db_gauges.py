"""The seed's gauges that only PostgreSQL knows (docs/operations.md): open alarm bundles by
priority, stale CRITICAL bundles, rows waiting in the outboxes, refused segments held in the
quarantine, and each edge's journal backlog from its latest status report.

One loop per hub process refreshes them every `metrics.refresh_s` (15 s), under the hub's
Supervisor; a scrape only reads the last values, so it never waits on the database nor loads it.
Every process exports the same database-wide figures (aggregate them with max, never sum), except
the `stream` outbox, which is this process's own feed.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Callable

import asyncpg
from prometheus_client import Gauge

from hub.commands.publisher import CHANNELS
from hub.config import PRIORITIES
from hub.db.errors import DB_ERRORS
from hub.edges.status import lane_backlogs
from hub.stream.feed import SQL_HEAD
from shared.backoff import sleep_or_stop
from shared.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("vigil.hub.metrics")

ALARMS_ACTIVE = Gauge("vigil_alarms_active", "Open alarm bundles (neither RESOLVED nor CLOSED), by priority",
                      ["priority"])
STALE_BUNDLES = Gauge("vigil_stale_alarm_report_bundles", "CRITICAL alarm bundles open for more than 24 h")
OUTBOX_PENDING = Gauge(
    "vigil_outbox_pending_count",
    "Outbox rows waiting: commands not yet published (panel_commands, robot_commands); live-stream rows "
    "committed and not yet read by this process's feed (stream)", ["outbox"])
QUARANTINE_HELD = Gauge("vigil_ingest_quarantine_held", "Refused segments held in the ingest quarantine")
BACKLOG_ROWS = Gauge("vigil_edge_backlog_rows", "Journal rows an edge has not had acknowledged, per lane "
                     "(its latest status report)", ["edge", "lane"])
BACKLOG_AGE = Gauge("vigil_edge_backlog_oldest_age_seconds", "Age of an edge's oldest unforwarded journal row per "
                    "lane: its latest report's figure plus the time since the hub took that report", ["edge", "lane"])
PANEL_LINKS_DOWN = Gauge("vigil_panel_links_down", "Panels whose edge last reported their link down, not by plan "
                         "(a DLOADX release): the hub's view, no edge scrape needed")
PANEL_LINK_DOWN_AGE = Gauge("vigil_panel_link_down_oldest_seconds", "How long the longest-down of those links has "
                            "been down, from the edge's time of the change (0: none down)")

STALE_AFTER = timedelta(hours=24)
SQL_ACTIVE = """
SELECT priority, count(*) AS n FROM bundle_alarms WHERE status NOT IN ('RESOLVED', 'CLOSED') GROUP BY priority
"""
SQL_STALE = """
SELECT count(*) FROM bundle_alarms
WHERE priority = 'CRITICAL' AND status NOT IN ('RESOLVED', 'CLOSED') AND created_at < $1
"""
SQL_QUARANTINE_HELD = "SELECT count(*) FROM ingest_quarantine WHERE status = 'HELD'"
SQL_LINKS_DOWN = """
SELECT count(*) AS n, min(p.link_changed_at) AS since FROM panels p JOIN edges e USING (edge_id)
WHERE p.link_status = 'DISCONNECTED' AND NOT p.link_planned AND e.revoked_at IS NULL
"""


async def refresh(pool: asyncpg.Pool, clock: Clock = SYSTEM_CLOCK, stream_head: Callable[[], int] | None = None) -> None:
    """Read every figure, then set the gauges in one step with no await between, so a scrape
    (served on the same event loop) never sees half a refresh. `stream_head` is this process's
    feed head (hub.stream.feed.OutboxFeed.head); without it the stream outbox is not exported."""
    now = clock.now()
    async with pool.acquire() as conn:
        active = {r["priority"]: r["n"] for r in await conn.fetch(SQL_ACTIVE)}
        stale = await conn.fetchval(SQL_STALE, now - STALE_AFTER)
        commands = {f"{channel.kind}_commands": await conn.fetchval(channel.count) for channel in CHANNELS}
        committed = await conn.fetchval(SQL_HEAD)
        held = await conn.fetchval(SQL_QUARANTINE_HELD)
        backlogs = await lane_backlogs(conn, now)
        links_down = await conn.fetchrow(SQL_LINKS_DOWN)
    for priority in PRIORITIES:  # every priority, so one whose last bundle closed drops to 0
        ALARMS_ACTIVE.labels(priority).set(active.get(priority, 0))
    STALE_BUNDLES.set(stale)
    for outbox, waiting in commands.items():
        OUTBOX_PENDING.labels(outbox).set(waiting)
    if stream_head is not None:
        # The feed may have read past the counter value read above; it is not behind then.
        OUTBOX_PENDING.labels("stream").set(max(0, committed - stream_head()))
    QUARANTINE_HELD.set(held)
    PANEL_LINKS_DOWN.set(links_down["n"])
    since = links_down["since"]
    PANEL_LINK_DOWN_AGE.set(max(0.0, (now - since).total_seconds()) if since is not None else 0)
    # Rebuilt whole: a revoked edge's series go rather than freeze at their last value.
    BACKLOG_ROWS.clear()
    BACKLOG_AGE.clear()
    for b in backlogs:
        BACKLOG_ROWS.labels(b.edge, b.lane).set(b.rows)
        BACKLOG_AGE.labels(b.edge, b.lane).set(b.oldest_age_s)


async def run_db_gauges(pool: asyncpg.Pool, stop: asyncio.Event, *, interval_s: float = 15.0,
                        clock: Clock = SYSTEM_CLOCK, stream_head: Callable[[], int] | None = None) -> None:
    """Refresh at once, then every `interval_s` until `stop`. A failed read keeps the last values
    and is logged; the next interval tries again."""
    while True:
        try:
            await refresh(pool, clock, stream_head)
        except DB_ERRORS as exc:
            log.warning("metrics refresh failed (the gauges keep their last values): %s", exc)
        if await sleep_or_stop(interval_s, stop):
            return
