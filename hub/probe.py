"""The synthetic probe at the hub (docs/architecture.md §5 "Synthetic probe").

A probe edge (enrolled with `probe: true`) journals a `probe.tick` every interval (edge/probe.py).
Its commit writes an outbox row `probe.tick` that only SYSTEM principals' streams carry
(hub.stream.visibility), so it never reaches an operator. `watch_probes` is a client of this
hub's own live stream, in the process: it times each probe from its journal time on the edge to
its delivery here (`vigil_probe_latency_seconds`), sets `vigil_probe_last_success_timestamp{edge}`
and keeps `edges.probe_seen_at`. `raise_silent_probes` (housekeeping) raises one HIGH SYSTEM alarm
per silence for a probe edge that has not been seen for `probe.missing_after_s`.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import msgspec
from prometheus_client import Gauge, Histogram

from hub.alarms.apply import raise_system_alarms
from hub.api.principal import Principal, Role
from hub.db.errors import DB_ERRORS
from hub.db.outbox import OutboxItem
from hub.stream.hub_stream import HubStream
from hub.stream.messages import Outgoing, Row
from shared.backoff import sleep_or_stop
from shared.bodies import PROBE_KIND

log = logging.getLogger("vigil.hub.probe")

PROBE_TOPIC = "probe.tick"
#: The stream client the probe watcher is: no user, every row (SYSTEM).
PROBE_PRINCIPAL = Principal(0, "system:probe", Role.SYSTEM)

LATENCY = Histogram("vigil_probe_latency_seconds",
                    "A synthetic probe's way from its edge's journal to this hub's live stream",
                    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300))
LAST_SUCCESS = Gauge("vigil_probe_last_success_timestamp",
                     "When this hub's live stream last delivered a probe of the edge (Unix time)", ["edge"])

#: How often the watcher writes down the probes it saw.
FLUSH_S = 1.0

SQL_PROBE_EDGES = "SELECT edge_id FROM edges WHERE probe AND edge_id = ANY($1::text[])"
SQL_SEEN = """
UPDATE edges SET probe_seen_at = greatest(probe_seen_at, $2) WHERE edge_id = $1 AND probe
"""
# A probe edge not seen since `$1` (or, never seen, enrolled before it), not yet alarmed for this silence.
SQL_SILENT = """
SELECT edge_id, coalesce(probe_seen_at, enrolled_at) AS since FROM edges
WHERE probe AND enrolled_at IS NOT NULL AND revoked_at IS NULL
  AND coalesce(probe_seen_at, enrolled_at) < $1
  AND (probe_alarmed_at IS NULL OR probe_alarmed_at < coalesce(probe_seen_at, enrolled_at))
ORDER BY edge_id
FOR UPDATE
"""
SQL_ALARMED = "UPDATE edges SET probe_alarmed_at = $2 WHERE edge_id = ANY($1::text[])"


class ProbeSeen(msgspec.Struct, frozen=True):
    """The `probe.tick` outbox row's payload."""

    edge: str
    seq: int
    journaled_at: datetime


class _Change(msgspec.Struct):
    topic: str
    payload: ProbeSeen


async def probe_outbox(conn: asyncpg.Connection, rows: list[dict[str, Any]], stored: set[Any]) -> list[OutboxItem]:
    """The outbox rows for the newly stored probe ticks of probe edges (a `probe.tick` from another
    edge is kept as an event and goes no further)."""
    ticks = [r for r in rows if r["kind"] == PROBE_KIND and r["id"] in stored]
    if not ticks:
        return []
    probes = {r["edge_id"] for r in await conn.fetch(SQL_PROBE_EDGES, sorted({r["edge_id"] for r in ticks}))}
    return [OutboxItem(PROBE_TOPIC, None, {"edge": r["edge_id"], "seq": r["seq"], "journaled_at": r["ts"]})
            for r in ticks if r["edge_id"] in probes]


async def watch_probes(stream: HubStream, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
    """Be a client of this hub's live stream until `stop`, timing the probes it delivers (from
    now on: a probe that arrived while the hub was down is late by then, not a measure of now)."""
    while not stop.is_set():
        sink = ProbeSink(pool)
        flusher = asyncio.create_task(sink.flush_every(FLUSH_S, stop), name="probe-flush")
        # The hub's stop ends this client at once: the stream itself closes later in the shutdown.
        stopping = asyncio.ensure_future(stop.wait())
        try:
            outcome = await stream.serve(PROBE_PRINCIPAL, None, sink, client_gone=stopping)
        finally:
            stopping.cancel()
            flusher.cancel()
            await asyncio.gather(flusher, stopping, return_exceptions=True)
            await sink.flush()
        if not stop.is_set():
            log.warning("the probe watcher's stream ended (%s); opening it again", outcome.value)


class ProbeSink:
    """The probe watcher's end of the live stream: takes probe rows, times them, records them."""

    transport = "probe"

    def __init__(self, pool: asyncpg.Pool, now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.pool = pool
        self._now = now
        self.pending: list[ProbeSeen] = []

    def _take(self, seen: ProbeSeen) -> None:
        now = self._now()
        LATENCY.observe(max(0.0, (now - seen.journaled_at).total_seconds()))
        LAST_SUCCESS.labels(seen.edge).set(now.timestamp())
        self.pending.append(seen)
        log.debug("probe %s/%d delivered", seen.edge, seen.seq, extra={"edge": seen.edge, "seq": seen.seq})

    def write_now(self, rows: list[Row]) -> bool:
        for row in rows:
            if row.topic == PROBE_TOPIC:
                self._take(msgspec.json.decode(row.data, type=_Change).payload)
        return True

    async def send(self, message: Outgoing) -> None:
        if message.kind == "change":
            change = msgspec.json.decode(message.data, type=dict[str, Any])
            if change.get("topic") == PROBE_TOPIC:
                self._take(msgspec.convert(change["payload"], ProbeSeen))

    async def flush(self) -> None:
        """Keep when each probe edge was last seen (the missing-probe alarm reads it); what the
        database does not take now is kept for the next flush."""
        latest = {item.edge: item for item in self.pending}
        self.pending = []
        for edge in sorted(latest):
            try:
                await self.pool.execute(SQL_SEEN, edge, self._now())
            except DB_ERRORS as exc:
                log.warning("probe of edge %s not recorded yet: %s", edge, exc, extra={"edge": edge})
                self.pending.append(latest[edge])

    async def flush_every(self, interval_s: float, stop: asyncio.Event) -> None:
        """Flush every `interval_s` until `stop` (deliveries are written without a wait, so the
        database is written here, off the stream's path)."""
        while not await sleep_or_stop(interval_s, stop):
            await self.flush()

    def abort(self) -> None:
        """Nothing to drop: this client is in the process."""


async def raise_silent_probes(conn: asyncpg.Connection, now: datetime, missing_after: timedelta) -> list[OutboxItem]:
    """One HIGH SYSTEM alarm for each probe edge silent for `missing_after`, once per silence, in
    the caller's transaction; returns the outbox items for the caller to write last."""
    silent = await conn.fetch(SQL_SILENT, now - missing_after)
    if not silent:
        return []
    for r in silent:
        log.warning("synthetic probe of edge %s not seen since %s", r["edge_id"], r["since"].isoformat(),
                    extra={"edge": r["edge_id"]})
    await conn.execute(SQL_ALARMED, [r["edge_id"] for r in silent], now)
    return await raise_system_alarms(
        conn, [(r["edge_id"], f"synthetic probe silent since {r['since']:%Y-%m-%d %H:%M} UTC") for r in silent], now)

