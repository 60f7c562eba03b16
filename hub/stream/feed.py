"""One outbox feed per hub process: reads rows as they commit and fans them out to every client.

PostgreSQL wakes the feed: a statement trigger NOTIFYs `vigil_outbox` at commit (migration 0006)
on a dedicated LISTEN connection. The notification is only a wake-up; the feed always reads
`sequence_id > head` itself, so a notification lost while the LISTEN connection was down costs
nothing: every (re)connect and a periodic poll read the same way. Sequence ids follow commit
order (migration 0002), so that read never skips a row that commits later.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import asyncpg

from hub.db.errors import DB_ERRORS
from hub.stream.messages import Row
from hub.stream.metrics import FEED_RECONNECTS, FEED_ROWS
from hub.stream.ring import Ring
from shared.backoff import Backoff, sleep_or_stop, wait_any
from shared.supervise import Supervisor

log = logging.getLogger("vigil.hub.stream")

CHANNEL = "vigil_outbox"
SQL_ROWS_AFTER = """
SELECT sequence_id, created_at, topic, object_id, payload::text AS payload
FROM outbox WHERE sequence_id > $1 AND sequence_id <= $2 ORDER BY sequence_id LIMIT $3
"""
SQL_NEWEST = """
SELECT sequence_id, created_at, topic, object_id, payload::text AS payload
FROM outbox ORDER BY sequence_id DESC LIMIT $1
"""
SQL_HEAD = "SELECT value FROM outbox_counter"
NO_UPPER_BOUND = 2**63 - 1


class Subscriber(Protocol):
    """Whatever the feed hands rows to; `offer` must not block (it runs for every client)."""

    def offer(self, rows: list[Row]) -> None: ...


def rows_of(records: list[asyncpg.Record]) -> list[Row]:
    return [Row.from_record(r["sequence_id"], r["created_at"], r["topic"], r["object_id"], r["payload"])
            for r in records]


async def read_rows(pool: asyncpg.Pool, after: int, upto: int, limit: int) -> list[Row]:
    """Outbox rows with after < sequence_id <= upto, oldest first, at most `limit`."""
    return rows_of(await pool.fetch(SQL_ROWS_AFTER, after, upto, limit))


class OutboxFeed:
    """Reads the outbox in sequence order and hands each row to every subscriber.

    `head` is the last sequence id handed out: a subscriber added now gets every row after it,
    and every row up to it is in the ring or in PostgreSQL. Both facts hold at any moment the
    event loop is not inside `_pull`'s hand-out, which has no await in it.
    """

    def __init__(self, pool: asyncpg.Pool, dsn: str, *, ring_size: int, poll_s: float, fetch_rows: int,
                 batch_s: float = 0.0, backoff: Backoff | None = None) -> None:
        self._pool = pool
        self._dsn = dsn
        self._poll_s = poll_s
        self._batch_s = batch_s
        self._fetch_rows = fetch_rows
        self._backoff = backoff or Backoff(base=0.2, cap=10.0)
        self.ring = Ring(ring_size)
        self.head = 0
        self._subscribers: set[Subscriber] = set()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listen_conn: asyncpg.Connection | None = None

    async def start(self, supervisor: Supervisor | None = None) -> None:
        """Fill the ring with the newest rows, then start listening and polling (under
        `supervisor` when given, so an unforeseen error restarts a loop rather than ending it)."""
        newest = rows_of(await self._pool.fetch(SQL_NEWEST, self.ring.size))[::-1]
        self.ring.extend(newest)
        # With an empty outbox the head is the counter (0 on a new hub, or past rows since purged).
        self.head = newest[-1].seq if newest else await self._pool.fetchval(SQL_HEAD)
        if supervisor is not None:
            self._tasks = [supervisor.spawn("stream-listen", self._listen_loop),
                           supervisor.spawn("stream-pull", self._pull_loop)]
        else:
            self._tasks = [asyncio.create_task(self._listen_loop(), name="stream-listen"),
                           asyncio.create_task(self._pull_loop(), name="stream-pull")]
        log.info("outbox feed started at sequence %d", self.head)

    async def close(self) -> None:
        """Stop both loops and close the LISTEN connection."""
        self._stop.set()
        self._wake.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def subscribe(self, subscriber: Subscriber) -> int:
        """Add `subscriber`; returns the head: it gets every row after that one."""
        self._subscribers.add(subscriber)
        return self.head

    @property
    def subscribers(self) -> tuple[Subscriber, ...]:
        """The clients currently fed (for inspection; the set itself is the feed's)."""
        return tuple(self._subscribers)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def poke(self) -> None:
        """Read the outbox now (a notification arrived, or the LISTEN connection came back)."""
        self._wake.set()

    async def _pull_loop(self) -> None:
        loop = asyncio.get_running_loop()
        pulled_at = -self._batch_s
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_s)
            except asyncio.TimeoutError:
                pass
            # At most one read per batch_s: under a burst of commits, the rows of several go out
            # as one page (one socket write per client); a lone commit is not delayed at all.
            wait = pulled_at + self._batch_s - loop.time()
            if wait > 0 and await sleep_or_stop(wait, self._stop):
                return
            self._wake.clear()
            if self._stop.is_set():
                return
            pulled_at = loop.time()
            try:
                await self._pull()
            except DB_ERRORS as exc:
                log.warning("outbox feed read failed (retrying): %s", exc)
                if await sleep_or_stop(self._backoff.next_delay(), self._stop):
                    return
            else:
                self._backoff.reset()

    async def _pull(self) -> None:
        """Read and hand out every committed row after the head, a page at a time."""
        while True:
            rows = await read_rows(self._pool, self.head, NO_UPPER_BOUND, self._fetch_rows)
            if not rows:
                return
            # From here to the end of the loop body there is no await: a subscriber added
            # concurrently either sees the head before this page (and gets the page) or after it.
            self.ring.extend(rows)
            self.head = rows[-1].seq
            FEED_ROWS.inc(len(rows))
            for subscriber in list(self._subscribers):
                subscriber.offer(rows)
            if len(rows) < self._fetch_rows:
                return

    async def _listen_loop(self) -> None:
        """Keep one LISTEN connection open; after each (re)connect read the outbox at once, since
        notifications sent while it was down are gone."""
        backoff = Backoff(base=0.2, cap=10.0)
        while not self._stop.is_set():
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self._dsn)
            except DB_ERRORS as exc:
                log.warning("outbox LISTEN connection failed (retrying): %s", exc)
                if await sleep_or_stop(backoff.next_delay(), self._stop):
                    return
                continue
            self._listen_conn = conn
            try:
                conn.add_termination_listener(lambda _c: lost.set())
                await conn.add_listener(CHANNEL, lambda *_args: self._wake.set())
                FEED_RECONNECTS.inc()
                backoff.reset()
                self.poke()
                await wait_any((self._stop, lost), timeout=None)
                if lost.is_set():
                    log.warning("outbox LISTEN connection lost; reconnecting")
            except DB_ERRORS as exc:
                log.warning("outbox LISTEN failed (reconnecting): %s", exc)
            finally:
                self._listen_conn = None
                if not conn.is_closed():
                    await conn.close(timeout=2)
            if not self._stop.is_set() and await sleep_or_stop(backoff.next_delay(), self._stop):
                return
