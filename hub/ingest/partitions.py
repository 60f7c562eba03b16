"""Which hub process consumes which ingest partition.

Each (lane, partition) consumer is held by at most one hub process at a time, through a
PostgreSQL session advisory lock on a dedicated connection: if the process dies, its connection
drops and the lock frees itself. Processes take a fair share, ceil(units / live hubs), counting
live hubs by their lock connections' application_name, and hand back what is over their share,
so a second hub started beside the first takes half the partitions within a few rebalance ticks.
"""
from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Awaitable, Callable

import asyncpg

from hub.db.errors import DB_ERRORS
from shared import subjects
from shared.backoff import sleep_or_stop

log = logging.getLogger("vigil.hub.ingest.partitions")

APP_NAME = "vigil-hub-ingest"
LOCK_BASE = 0x56490000  # advisory-lock keys: LOCK_BASE + unit index

SQL_LIVE_HUBS = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()"

Unit = tuple[str, int]  # (lane, partition)

ALL_UNITS: list[Unit] = [(lane, p) for lane in subjects.LANES for p in range(subjects.INGEST_PARTITIONS)]


def lock_key(unit: Unit) -> int:
    return LOCK_BASE + ALL_UNITS.index(unit)


class PartitionLost(Exception):
    """This process no longer holds the partition it was about to commit for."""


@dataclass(frozen=True)
class Fence:
    """Proof of ownership a commit checks inside its transaction: the unit's advisory lock is
    held, granted, by the owner's lock connection (its backend pid)."""

    key: int
    pid: int


def fair_share(units: int, live_hubs: int) -> int:
    """How many units one hub should hold."""
    return math.ceil(units / max(1, live_hubs))


class PartitionOwner:
    """Acquires and releases units; calls `on_acquire(unit)` / `on_release(unit)` (awaited)."""

    def __init__(
        self,
        dsn: str,
        on_acquire: Callable[[Unit], Awaitable[None]],
        on_release: Callable[[Unit], Awaitable[None]],
        *,
        interval_s: float = 1.0,
    ) -> None:
        self._dsn = dsn
        self._on_acquire = on_acquire
        self._on_release = on_release
        self._interval_s = interval_s
        self._conn: asyncpg.Connection | None = None
        self.held: set[Unit] = set()
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Rebalance until stopped; on a lost lock connection, release everything and reconnect."""
        while not self._stop.is_set():
            try:
                if self._conn is None or self._conn.is_closed():
                    await self._release_all()
                    self._conn = await asyncpg.connect(self._dsn, server_settings={"application_name": APP_NAME})
                await self._rebalance()
            except DB_ERRORS as exc:
                log.warning("partition ownership check failed: %s", exc)
                await self._drop_connection()
            if await sleep_or_stop(self._interval_s, self._stop):
                break
        await self._release_all()
        await self._drop_connection()

    async def _rebalance(self) -> None:
        assert self._conn is not None
        live = await self._conn.fetchval(SQL_LIVE_HUBS, APP_NAME)
        share = fair_share(len(ALL_UNITS), live)
        for unit in sorted(self.held, reverse=True)[: max(0, len(self.held) - share)]:
            await self._release(unit)
        for unit in ALL_UNITS:
            if len(self.held) >= share:
                break
            if unit in self.held:
                continue
            if await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(unit)):
                self.held.add(unit)
                log.info("acquired ingest partition %s/%d", *unit, extra={"live_hubs": live})
                await self._on_acquire(unit)

    async def _release(self, unit: Unit) -> None:
        await self._on_release(unit)
        self.held.discard(unit)
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.fetchval("SELECT pg_advisory_unlock($1)", lock_key(unit))
        log.info("released ingest partition %s/%d", *unit)

    async def _release_all(self) -> None:
        # Workers finish their current batch in parallel, so shutdown takes one batch, not sixteen.
        units = sorted(self.held)
        await asyncio.gather(*(self._on_release(u) for u in units))
        for unit in units:
            await self._release(unit)

    async def _drop_connection(self) -> None:
        # Without the lock connection we no longer own anything: stop consuming first.
        await asyncio.gather(*(self._on_release(u) for u in sorted(self.held)))
        self.held.clear()
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None

    def fence(self, unit: Unit) -> Fence | None:
        """The fence for committing `unit`'s batches, or None when this process does not hold it."""
        if unit not in self.held or self._conn is None or self._conn.is_closed():
            return None
        return Fence(lock_key(unit), self._conn.get_server_pid())

    def stop(self) -> None:
        self._stop.set()
