"""The live stream of one hub process: its outbox feed, its tickets, and its open clients."""
from __future__ import annotations

import asyncio
import logging
import random

import asyncpg

from hub.api.errors import ApiError
from hub.api.principal import Principal
from hub.stream.delivery import Outcome, Sink, serve
from hub.stream.feed import OutboxFeed
from hub.stream.settings import StreamSettings
from hub.stream.tickets import Tickets
from shared.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("vigil.hub.stream")


class HubStream:
    """Start it after migrations (`start`), serve its router (`hub.stream.stream_router`), and
    `close` it before the HTTP runner's cleanup: that ends every client cleanly (WebSocket close
    1001) within `close_timeout_s` or so, which the runner's cleanup would otherwise wait out."""

    def __init__(self, pool: asyncpg.Pool, dsn: str, settings: StreamSettings | None = None, *,
                 clock: Clock = SYSTEM_CLOCK, rng: random.Random | None = None) -> None:
        self.settings = settings or StreamSettings()
        self.pool = pool
        self.clock = clock
        self.feed = OutboxFeed(pool, dsn, ring_size=self.settings.ring_size, poll_s=self.settings.poll_s,
                               fetch_rows=self.settings.fetch_rows, batch_s=self.settings.batch_s)
        self.tickets = Tickets(pool, clock, self.settings.ticket_ttl_s)
        self._rng = rng or random.Random()
        self._stop = asyncio.Event()
        self._clients: set[asyncio.Task[object]] = set()

    async def start(self) -> None:
        await self.feed.start()

    async def close(self) -> None:
        """Close every client (they may reconnect to another hub process), then stop the feed."""
        self._stop.set()
        if self._clients:
            # Each client gets close_timeout_s to finish its stream, then as long to close.
            await asyncio.wait(set(self._clients), timeout=2 * self.settings.close_timeout_s + 0.5)
        await self.feed.close()
        log.info("live stream stopped")

    @property
    def client_count(self) -> int:
        return len(self._clients)

    async def serve(self, principal: Principal, cursor: int | None, sink: Sink,
                    client_gone: asyncio.Future[object] | None = None) -> Outcome:
        """Stream to one client from `cursor` (None: from now) until it ends; see
        hub.stream.delivery."""
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            return await serve(feed=self.feed, pool=self.pool, principal=principal, cursor=cursor, sink=sink,
                               settings=self.settings, clock=self.clock, rng=self._rng, stop=self._stop,
                               client_gone=client_gone)
        finally:
            self._clients.discard(task)

    def refuse_when_stopping(self) -> None:
        """503 for a new client while this process shuts down: it should connect to another."""
        if self._stop.is_set():
            raise ApiError(503, "shutting_down", "this hub process is stopping; reconnect", headers={"Retry-After": "1"})
