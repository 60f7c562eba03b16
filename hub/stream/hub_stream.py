"""The live stream of one hub process: its outbox feed, its tickets, and its open clients."""
from __future__ import annotations

import asyncio
import logging
import random
import uuid
from typing import Collection

import asyncpg

from hub.api.errors import ApiError
from hub.api.permissions import principal_for
from hub.api.principal import Principal, Role
from hub.db.errors import DB_ERRORS
from hub.stream.delivery import ClientQueue, Outcome, Sink, serve
from hub.stream.feed import OutboxFeed
from hub.stream.settings import StreamSettings
from hub.stream.tickets import Tickets
from shared.backoff import sleep_or_stop
from shared.clock import SYSTEM_CLOCK, Clock
from shared.supervise import Supervisor

log = logging.getLogger("vigil.hub.stream")

# The users with open streams as they are now; compared with what each stream was opened as.
SQL_ACCESS = """
SELECT u.id, u.email, u.role, u.active, u.must_change_password,
       ARRAY(SELECT a.object_id FROM user_object_assignments a WHERE a.user_id = u.id) AS objects
FROM users u WHERE u.id = ANY($1::int8[])
"""
# Of the sessions the open streams were opened in, those still live; the others ended (logout,
# password change, refresh-token reuse, deactivation, the absolute lifetime) or were purged.
SQL_LIVE_SESSIONS = "SELECT id FROM auth_sessions WHERE id = ANY($1::uuid[]) AND revoked_at IS NULL"


def _still_allowed(principal: Principal, user: asyncpg.Record | None) -> bool:
    """Whether a stream opened as `principal` may go on for the user as they are now."""
    if user is None or not user["active"] or user["must_change_password"]:
        return False
    return principal_for(user["id"], user["email"], user["role"], user["objects"]) == principal


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
        self._review: asyncio.Task[None] | None = None

    async def start(self, supervisor: Supervisor | None = None) -> None:
        """Start the feed and the access review; under `supervisor` (the hub's) an unforeseen
        error restarts a loop instead of ending it."""
        await self.feed.start(supervisor)
        self._review = supervisor.spawn("stream-access-review", self._review_loop) if supervisor is not None \
            else asyncio.create_task(self._review_loop(), name="stream-access-review")

    async def close(self) -> None:
        """Close every client (they may reconnect to another hub process), then stop the feed."""
        self._stop.set()
        if self._clients:
            # Each client gets close_timeout_s to finish its stream, then as long to close.
            await asyncio.wait(set(self._clients), timeout=2 * self.settings.close_timeout_s + 0.5)
        if self._review is not None:
            await asyncio.gather(self._review, return_exceptions=True)
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

    async def review_access(self) -> int:
        """End the streams of users who were deactivated, must change their password, or whose
        role or assigned objects changed since they connected, and of sessions that ended (their clients reload from REST
        under what they may see now, or find they may not); returns how many were ended."""
        queues = self._open_queues()
        if not queues:
            return 0
        rows = {r["id"]: r for r in await self.pool.fetch(SQL_ACCESS, sorted({q.principal.user_id for q in queues}))}
        sessions = sorted({q.principal.session_id for q in queues if q.principal.session_id is not None})
        live_sessions = {r["id"] for r in await self.pool.fetch(SQL_LIVE_SESSIONS, sessions)} if sessions else set()
        ended = 0
        for queue in queues:
            if queue.principal.role is Role.SYSTEM:
                continue  # the hub's own clients (the probe watcher): no user to lose access
            session = queue.principal.session_id
            if (not _still_allowed(queue.principal, rows.get(queue.principal.user_id))
                    or (session is not None and session not in live_sessions)):
                self._end(queue, "their access changed")
                ended += 1
        return ended

    def end_sessions(self, session_ids: Collection[uuid.UUID]) -> int:
        """End at once the streams this process serves in the sign-in sessions `session_ids`,
        which this process has just ended (a `hub.auth.sessions.Sessions.on_ended` listener);
        returns how many. Other processes' streams end at their access review."""
        ended = 0
        for queue in self._open_queues():
            if queue.principal.session_id in session_ids:
                self._end(queue, "their session ended")
                ended += 1
        return ended

    def _open_queues(self) -> list[ClientQueue]:
        return [q for q in self.feed.subscribers if isinstance(q, ClientQueue) and not q.access_changed]

    @staticmethod
    def _end(queue: ClientQueue, why: str) -> None:
        log.info("ending the stream of user %d: %s", queue.principal.user_id, why,
                 extra={"user_id": queue.principal.user_id})
        queue.end_for_access_change()

    async def _review_loop(self) -> None:
        while not await sleep_or_stop(self.settings.access_review_s, self._stop):
            try:
                await self.review_access()
            except DB_ERRORS as exc:
                log.warning("stream access review failed (next try in %.0f s): %s", self.settings.access_review_s, exc)

    def refuse_when_stopping(self) -> None:
        """503 for a new client while this process shuts down: it should connect to another."""
        if self._stop.is_set():
            raise ApiError(503, "shutting_down", "this hub process is stopping; reconnect", headers={"Retry-After": "1"})
