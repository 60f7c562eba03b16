"""Catch-up, live delivery and filtering for one client: the one implementation behind both the
WebSocket and the SSE endpoint, which differ only in their `Sink` (framing).

The seam between catch-up and live rows:

1. subscribe to the process's feed first; from then on every row after the feed's head at that
   moment (`position`) goes into the client's bounded queue, already filtered;
2. send the backlog `cursor < seq <= position` from the ring, or from PostgreSQL when the ring
   no longer reaches back that far;
3. drain the queue, skipping every row at or below the last cursor handled (a client resuming
   with a cursor from a hub process ahead of this one would otherwise get rows twice).

Nothing is missed (every row is either <= position or comes through the queue) and nothing is
sent twice (the skip).

The fast path: while a live client's delivery is idle (its queue empty, nothing being sent), the
feed writes a page's pre-framed rows straight to the client's socket from `offer`, in one write,
if the sink can take them without waiting. A thousand consoles then cost the feed a thousand
socket writes per page, not a thousand task wake-ups per row. Whatever the sink refuses (its
write buffer is full, or it has no fast path, as SSE's chunked body) goes through the queue, and
from then on every row does until the queue is drained again, so order holds.
"""
from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections import deque
from typing import Callable, Protocol

import asyncpg

from hub.api.principal import Principal
from hub.stream.feed import SQL_HEAD, OutboxFeed, read_rows
from hub.stream.messages import THROTTLED_TOPIC, Outgoing, Row, change, change_at, heartbeat, replay_overflow
from hub.stream.metrics import (CLIENTS, MESSAGES, OVERFLOWS, REPLAY_DB_QUERIES, REPLAY_OVERFLOW_REASONS,
                                 REPLAY_OVERFLOWS)
from hub.stream.settings import StreamSettings
from hub.stream.throttle import TelemetryThrottle
from hub.stream.visibility import row_filter
from shared.backoff import wait_any
from shared.clock import Clock

log = logging.getLogger("vigil.hub.stream")


class Sink(Protocol):
    """A client connection as delivery sees it: framing is the sink's business."""

    transport: str

    async def send(self, message: Outgoing) -> None:
        """Frame and write one message; raises ConnectionError when the client is gone."""

    def abort(self) -> None:
        """Drop the connection at once (the client stopped reading, so a clean close would hang)."""

    def write_now(self, rows: list[Row]) -> bool:
        """Write the changes of `rows` without waiting if the connection can take them now;
        False when it cannot (then the rows are queued and sent with `send`)."""


class Outcome(str, enum.Enum):
    """Why a client's stream ended."""

    SHUTDOWN = "shutdown"          # the hub process is stopping
    OVERFLOW = "overflow"          # the client's queue passed its bound
    ACCESS_CHANGED = "access_changed"  # the user's role, assignments or account changed
    HORIZON = "horizon"            # the cursor was beyond the catch-up horizon (or unknown)
    CLIENT_GONE = "client_gone"


class ClientQueue:
    """One client's rows from the feed: filtered, bounded. Past the bound it holds nothing more
    and flags the overflow, so a client that stops reading costs at most `bound` rows.

    Telemetry samples are throttled per robot (`telemetry_interval_s`, hub.stream.throttle): a
    held sample is released by a timer into `late` once its interval is up, and delivery sends it
    with the cursor the client has reached by then (hub.stream.messages.change_at)."""

    def __init__(self, principal: Principal, bound: int, telemetry_interval_s: float = 0.0) -> None:
        self.principal = principal
        self.visible = row_filter(principal)
        self._bound = bound
        self.access_changed = False
        self._rows: deque[Row] = deque()
        self._throttle = TelemetryThrottle(telemetry_interval_s) if telemetry_interval_s > 0 else None
        self._late: list[Row] = []
        self._timer: asyncio.TimerHandle | None = None
        self.ready = asyncio.Event()
        self.overflowed = asyncio.Event()
        self.high_water = 0
        # Set by delivery only while it is idle: rows then go straight to the socket.
        self.direct: Callable[[list[Row]], bool] | None = None
        self.direct_seq = 0          # the last row written that way
        self.direct_at = 0.0         # and when (event-loop time)
        self.direct_sent = 0         # rows written that way, not yet counted in the metrics
        # The client has every row up to here: set by delivery before it opens the fast path.
        # A client resuming with a cursor the feed has not reached yet must not get those rows
        # twice; the queue's own path skips them when it drains.
        self.floor = 0

    def offer(self, rows: list[Row]) -> None:
        """Take a page of rows from the feed (in sequence order); never blocks."""
        if self.overflowed.is_set():
            return
        visible = [r for r in rows if r.seq > self.floor and self.visible(r)]
        if self._throttle is not None and visible:
            visible = self._throttle.admit(visible, asyncio.get_running_loop().time())
            self._arm_timer()
        if not visible:
            return
        if self.direct is not None and not self._rows and not self._late and self.direct(visible):
            self.direct_seq = visible[-1].seq
            self.direct_at = asyncio.get_running_loop().time()
            self.direct_sent += len(visible)
            return
        if len(self._rows) + len(visible) > self._bound:
            self._close()
            return
        self._rows.extend(visible)
        self.high_water = max(self.high_water, len(self._rows))
        self.ready.set()

    def _arm_timer(self) -> None:
        assert self._throttle is not None
        due = self._throttle.next_due()
        if due is not None and self._timer is None and not self.overflowed.is_set():
            self._timer = asyncio.get_running_loop().call_at(due, self._release)

    def _release(self) -> None:
        """The timer: held samples whose interval is up go to delivery."""
        self._timer = None
        if self._throttle is None or self.overflowed.is_set():
            return
        rows = self._throttle.due(asyncio.get_running_loop().time())
        if rows:
            self._late.extend(rows)
            self.ready.set()
        self._arm_timer()

    def take_late(self) -> list[Row]:
        """The held samples released since the last call."""
        rows, self._late = self._late, []
        return rows

    def stop(self) -> None:
        """The stream ended: no timer outlives it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def end_for_access_change(self) -> None:
        """The user may no longer see what this stream was opened for: end it the way an
        overflow does (the client reloads from REST, under what it may see now)."""
        self.access_changed = True
        self._close()

    def _close(self) -> None:
        self._rows.clear()  # the client reloads from REST: what it has not received is moot
        self._late.clear()
        self.stop()
        self.overflowed.set()
        self.ready.set()

    def take(self) -> list[Row]:
        rows = list(self._rows)
        self._rows.clear()
        self.ready.clear()
        return rows


class _Delivery:
    """The sending side of one client's stream; the only writer to its sink."""

    def __init__(self, *, feed: OutboxFeed, pool: asyncpg.Pool, principal: Principal, sink: Sink,
                 settings: StreamSettings, clock: Clock, rng: random.Random, stop: asyncio.Event,
                 queue: ClientQueue) -> None:
        self.feed, self.pool, self.principal, self.sink = feed, pool, principal, sink
        self.settings, self.clock, self.rng, self.stop, self.queue = settings, clock, rng, stop, queue
        self.visible = queue.visible

    async def send(self, message: Outgoing) -> None:
        await self.sink.send(message)
        MESSAGES.labels(self.sink.transport, message.kind).inc()

    async def end_overflowed(self) -> Outcome:
        """The queue was closed: past its bound, or because the user's access changed."""
        if self.queue.access_changed:
            await self.overflow("access_changed")
            return Outcome.ACCESS_CHANGED
        await self.overflow("queue")
        return Outcome.OVERFLOW

    def _count_direct(self) -> None:
        """Move the fast path's count into the metrics (a locked counter per write would cost
        the feed more than the write itself)."""
        if self.queue.direct_sent:
            MESSAGES.labels(self.sink.transport, "change").inc(self.queue.direct_sent)
            self.queue.direct_sent = 0

    async def overflow(self, reason: str) -> None:
        """Tell the client to reload from REST; the jitter spreads a crowd's reloads."""
        OVERFLOWS.labels(reason).inc()
        if reason in REPLAY_OVERFLOW_REASONS:
            REPLAY_OVERFLOWS.labels(self.sink.transport).inc()
        retry_ms = self.rng.randint(self.settings.retry_min_ms, self.settings.retry_max_ms)
        log.info("stream of user %d overflowed (%s); retry after %d ms", self.principal.user_id, reason, retry_ms,
                 extra={"user_id": self.principal.user_id})
        await self.send(replay_overflow(retry_ms))

    async def run(self, cursor: int | None, position: int) -> Outcome:
        last = position if cursor is None else cursor
        if cursor is not None and cursor > position and cursor > await self.pool.fetchval(SQL_HEAD):
            # A cursor no hub process has handed out (the database was restored or replaced).
            await self.overflow("unknown_cursor")
            return Outcome.HORIZON
        if cursor is not None and cursor < position:
            outcome = await self.catch_up(cursor, position)
            if outcome is not None:
                return outcome
            last = position
        await self.send(heartbeat(last))  # also tells the client that catch-up is complete
        return await self.live(last)

    async def catch_up(self, cursor: int, position: int) -> Outcome | None:
        """Send the visible rows cursor < seq <= position; an Outcome when the stream must end."""
        if position - cursor > self.settings.horizon_rows:
            await self.overflow("horizon")
            return Outcome.HORIZON
        page = self.feed.ring.after(cursor, position)
        from_ring = page is not None
        if page is None:
            page = await self.read_page(cursor, position)
        first = page[0] if page else None
        # Ids are contiguous (migration 0002), so a missing cursor+1 means rows were purged.
        if (first is None or first.seq != cursor + 1
                or (self.clock.now() - first.created_at).total_seconds() > self.settings.horizon_s):
            await self.overflow("horizon")
            return Outcome.HORIZON
        while page:
            for row in page:
                if self.stop.is_set():
                    return Outcome.SHUTDOWN
                if self.queue.overflowed.is_set():
                    return await self.end_overflowed()
                # Telemetry is live only: a reconnecting console wants the robot's position now,
                # not the samples it missed (the REST telemetry query has those).
                if self.visible(row) and row.topic != THROTTLED_TOPIC:
                    await self.send(change(row))
            if from_ring or page[-1].seq >= position or len(page) < self.settings.fetch_rows:
                return None
            page = await self.read_page(page[-1].seq, position)
        return None

    async def read_page(self, after: int, upto: int) -> list[Row]:
        """One catch-up page from PostgreSQL (the replay's tier 2), counted."""
        REPLAY_DB_QUERIES.labels(self.sink.transport).inc()
        return await read_rows(self.pool, after, upto, self.settings.fetch_rows)

    async def live(self, last: int) -> Outcome:
        """Rows from the feed as they come; a heartbeat whenever the stream was quiet."""
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        while True:
            if self.stop.is_set():
                return Outcome.SHUTDOWN
            if self.queue.overflowed.is_set():
                return await self.end_overflowed()
            rows = self.queue.take()
            for row in rows:
                if self.queue.overflowed.is_set() or self.stop.is_set():
                    break
                if row.seq <= last:
                    continue
                await self.send(change(row))
                last = row.seq
            late = self.queue.take_late()
            for row in late:
                if self.queue.overflowed.is_set() or self.stop.is_set():
                    break
                # A held sample: newer rows may have gone out meanwhile, past which the
                # client's cursor must not move back.
                last = max(last, row.seq)
                await self.send(change_at(row, last))
            if rows or late:
                sent_at = loop.time()
                continue
            quiet_for = loop.time() - max(sent_at, self.queue.direct_at)
            self.queue.floor = last
            self.queue.direct = self.sink.write_now
            try:
                woke = await wait_any((self.queue.ready, self.stop),
                                      timeout=max(0.0, self.settings.heartbeat_s - quiet_for))
            finally:
                self.queue.direct = None
                self._count_direct()
            last = max(last, self.queue.direct_seq)
            if woke or loop.time() - max(sent_at, self.queue.direct_at) < self.settings.heartbeat_s:
                continue
            if not self.queue.ready.is_set():
                # Nothing is queued, so every row up to the feed's head was offered and
                # either sent or not for this client: its resume point moves past them.
                last = max(last, self.feed.head)
            await self.send(heartbeat(last))
            sent_at = loop.time()


async def serve(*, feed: OutboxFeed, pool: asyncpg.Pool, principal: Principal, cursor: int | None, sink: Sink,
                settings: StreamSettings, clock: Clock, rng: random.Random, stop: asyncio.Event,
                client_gone: asyncio.Future[object] | None = None) -> Outcome:
    """Stream to one client until it leaves, overflows, or `stop` is set.

    Delivery runs as its own task, watched here: a client that stopped reading leaves it stuck
    in a write, so after an overflow (or stop) it gets a grace period to finish on its own,
    and then the connection is dropped.
    """
    queue = ClientQueue(principal, settings.queue_size, settings.telemetry_interval_s)
    position = feed.subscribe(queue)
    CLIENTS.labels(sink.transport).inc()
    log.info("stream (%s) opened for user %d at cursor %s", sink.transport, principal.user_id, cursor,
             extra={"user_id": principal.user_id})
    delivery = _Delivery(feed=feed, pool=pool, principal=principal, sink=sink, settings=settings, clock=clock,
                         rng=rng, stop=stop, queue=queue)
    task = asyncio.create_task(delivery.run(cursor, position), name=f"stream-user-{principal.user_id}")
    stop_wait = asyncio.ensure_future(stop.wait())
    overflow_wait = asyncio.ensure_future(queue.overflowed.wait())
    gone = {client_gone} if client_gone is not None else set()
    outcome = Outcome.CLIENT_GONE
    try:
        done, _ = await asyncio.wait({task, stop_wait, overflow_wait, *gone}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done and not (gone & done):
            grace = settings.overflow_grace_s if overflow_wait in done else settings.close_timeout_s
            done, _ = await asyncio.wait({task, *gone}, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                log.warning("stream of user %d: client not reading; dropping the connection", principal.user_id,
                            extra={"user_id": principal.user_id})
                sink.abort()
                outcome = (Outcome.SHUTDOWN if not overflow_wait.done() else
                           Outcome.ACCESS_CHANGED if queue.access_changed else Outcome.OVERFLOW)
        if task.done():
            try:
                outcome = task.result()
            except ConnectionError:
                outcome = Outcome.CLIENT_GONE
        return outcome
    finally:
        for waiter in (task, stop_wait, overflow_wait):
            waiter.cancel()
        await asyncio.gather(task, return_exceptions=True)
        feed.unsubscribe(queue)
        queue.stop()
        CLIENTS.labels(sink.transport).dec()
        log.info("stream (%s) of user %d closed: %s", sink.transport, principal.user_id, outcome.value,
                 extra={"user_id": principal.user_id})
