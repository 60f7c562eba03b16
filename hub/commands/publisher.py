"""The command outbox into JetStream (docs/architecture.md §4.3): a committed command is published
on its edge's subject by whichever hub process takes its outbox row first, and marked SENT in the
transaction that deletes the row. A hub that dies between commit and publish leaves the row for
the next sweep; one that dies after publishing but before its commit publishes again, and
JetStream drops the copy (Nats-Msg-Id is the command id, inside the duplicate window) — the edge,
which remembers every command id it has executed, would refuse it anyway.

Each edge gets a durable pull consumer on VIGIL_COMMANDS filtered to its own subject, made by the
hub (an edge may not touch the JetStream API beyond pulling and acknowledging its own).

Two kinds travel this way, each from its own outbox table (a `Channel`): panel commands
(`command_outbox`, hub.commands.repository) and robot commands (`robot_command_outbox`,
hub.robots.repository), the latter with the header `Vigil-Command-Kind: robot`, by which the edge
tells them apart (docs/architecture.md §4.4). One loop sends both."""
from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Mapping

import asyncpg
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from prometheus_client import Counter

from hub.commands.repository import command_update, expire_unsent
from hub.db.errors import DB_ERRORS
from hub.db.outbox import OutboxItem, write_outbox
from hub.robots import repository as robots
from shared import subjects
from shared.backoff import Backoff, sleep_or_stop, wait_any
from shared.robots import H_COMMAND_KIND, ROBOT_COMMAND_KIND

log = logging.getLogger("vigil.hub.commands")

PUBLISHED = Counter("vigil_commands_published_total", "Commands published into VIGIL_COMMANDS by kind and outcome",
                    ["kind", "outcome"])

# JetStream drops a second publish with the same command id within this window.
DUPLICATE_WINDOW_S = 300.0
# Nothing stays longer: a command lives for at most an hour (hub.commands.domain.MAX_EXPIRES_S).
MAX_AGE_S = 24 * 3600.0

SQL_TAKE = """
SELECT o.command_id, o.subject, o.payload, c.edge_id, c.expires_at
FROM command_outbox o JOIN satel_commands c ON c.id = o.command_id
ORDER BY o.created_at LIMIT $1
FOR UPDATE OF o SKIP LOCKED
"""
SQL_SENT = """
WITH gone AS (DELETE FROM command_outbox WHERE command_id = $1)
UPDATE satel_commands SET status = CASE WHEN status = 'PENDING' THEN 'SENT' ELSE status END,
                          sent_at = coalesce(sent_at, $2)
WHERE id = $1 RETURNING *
"""
SQL_FAILED = "UPDATE command_outbox SET attempts = attempts + 1, last_error = $2 WHERE command_id = $1"
SQL_COUNT = "SELECT count(*) FROM command_outbox"
SQL_EDGES = "SELECT edge_id FROM edges WHERE revoked_at IS NULL"


@dataclass(frozen=True)
class Channel:
    """One kind of command the publisher sends: `take` selects up to $1 outbox rows (command_id,
    subject, payload, edge_id, expires_at) FOR UPDATE OF the outbox row SKIP LOCKED; `failed`
    counts a failed attempt ($1 command id, $2 error); `count` is the rows waiting (exported as
    vigil_outbox_pending_count by hub.db_gauges); `sent` marks a command published and drops its
    row, `expire` ends one past its expiry unsent; both return the live updates."""

    kind: str
    take: str
    failed: str
    count: str
    sent: Callable[[asyncpg.Connection, uuid.UUID, datetime], Awaitable[list[OutboxItem]]]
    expire: Callable[[asyncpg.Connection, datetime, uuid.UUID], Awaitable[list[OutboxItem]]]
    headers: Mapping[str, str] = field(default_factory=dict)


async def _panel_sent(conn: asyncpg.Connection, command_id: uuid.UUID, now: datetime) -> list[OutboxItem]:
    return [command_update(await conn.fetchrow(SQL_SENT, command_id, now))]


async def _panel_expire(conn: asyncpg.Connection, now: datetime, command_id: uuid.UUID) -> list[OutboxItem]:
    return [command_update(row) for row in await expire_unsent(conn, now, now, command_id)]


async def _robot_expire(conn: asyncpg.Connection, now: datetime, command_id: uuid.UUID) -> list[OutboxItem]:
    return await robots.expire_unsent(conn, now, now, command_id)


PANEL = Channel("panel", SQL_TAKE, SQL_FAILED, SQL_COUNT, _panel_sent, _panel_expire)
ROBOT = Channel("robot", robots.SQL_TAKE, robots.SQL_FAILED, robots.SQL_COUNT, robots.mark_sent, _robot_expire,
                {H_COMMAND_KIND: ROBOT_COMMAND_KIND})
CHANNELS = (PANEL, ROBOT)


def commands_stream_config() -> StreamConfig:
    """VIGIL_COMMANDS: one subject per edge, each read by that edge's consumer only (work queue:
    a command leaves the stream once its edge acknowledges it)."""
    return StreamConfig(
        name=subjects.COMMANDS_STREAM, subjects=subjects.COMMANDS_STREAM_SUBJECTS,
        retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.FILE, max_age=MAX_AGE_S,
        duplicate_window=DUPLICATE_WINDOW_S)


def consumer_config(edge: str, ack_wait_s: float = 30.0) -> ConsumerConfig:
    """The durable pull consumer of one edge's commands: a command unacknowledged for `ack_wait_s`
    is delivered again (the edge never runs an id twice). Made again with another ack wait, the
    server updates it in place."""
    return ConsumerConfig(
        durable_name=subjects.command_consumer(edge), filter_subject=subjects.edge_commands(edge),
        ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait_s, deliver_policy=DeliverPolicy.ALL, max_ack_pending=64)


async def ensure_commands_stream(nc: NatsClient) -> None:
    """Create or update VIGIL_COMMANDS (idempotent; every hub process calls it at start)."""
    js = nc.jetstream()
    try:
        await js.add_stream(commands_stream_config())
    except nats.js.errors.BadRequestError:
        await js.update_stream(commands_stream_config())


class CommandPublisher:
    """Publishes the command outbox. `wake()` after committing a command sends it at once; a sweep
    every `interval_s` catches rows another process committed, or one left by a crash."""

    def __init__(self, nc: NatsClient, pool: asyncpg.Pool, *, interval_s: float = 1.0, batch: int = 32,
                 ack_wait_s: float = 30.0, consumer_check_s: float = 10.0,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._pool = pool
        self._interval_s = interval_s
        self._batch = batch
        self._ack_wait_s = ack_wait_s
        self._consumer_check_s = consumer_check_s
        self._now = now
        self._wake = asyncio.Event()
        self._consumers: set[str] = set()

    def wake(self) -> None:
        """A command was committed: publish without waiting for the next sweep."""
        self._wake.set()

    async def ensure_consumers(self) -> None:
        """A consumer for every edge not revoked, so an edge pulls before its first command."""
        for r in await self._pool.fetch(SQL_EDGES):
            await self._ensure_consumer(r["edge_id"])

    async def _ensure_consumer(self, edge: str) -> None:
        if edge in self._consumers:
            return
        await self._js.add_consumer(subjects.COMMANDS_STREAM, consumer_config(edge, self._ack_wait_s))
        self._consumers.add(edge)

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop`; a failing NATS backs off, never loses a row. Every
        `consumer_check_s` it also makes the consumers of edges enrolled since, so a new box can
        pull before its first command."""
        backoff = Backoff(0.2, 5.0)
        loop = asyncio.get_running_loop()
        checked = loop.time()
        while not stop.is_set():
            self._wake.clear()
            try:
                if loop.time() - checked >= self._consumer_check_s:
                    await self.ensure_consumers()
                    checked = loop.time()
                more = await self.publish_once()
                backoff.reset()
            except (nats.errors.Error, asyncio.TimeoutError, *DB_ERRORS) as exc:
                delay = backoff.next_delay()
                log.warning("command outbox not published (%s); retrying in %.1f s", exc, delay)
                if await sleep_or_stop(delay, stop):
                    return
                continue
            if not more:
                await wait_any((self._wake, stop), self._interval_s)

    async def publish_once(self) -> bool:
        """Publish one batch of each kind's outbox; True when a batch was full (more may wait).
        What was published is committed even when a later row fails; the failure is raised after."""
        failure: Exception | None = None
        full = False
        async with self._pool.acquire() as conn, conn.transaction():
            updates: list[OutboxItem] = []
            for channel in CHANNELS:
                rows = await conn.fetch(channel.take, self._batch)
                full = full or len(rows) == self._batch
                for r in rows:
                    try:
                        updates += await self._publish(conn, channel, r)
                    except (nats.errors.Error, asyncio.TimeoutError) as exc:
                        await conn.execute(channel.failed, r["command_id"], str(exc)[:500])
                        PUBLISHED.labels(channel.kind, "failed").inc()
                        failure = exc
                        break
                if failure is not None:
                    break
            await write_outbox(conn, updates)
        if failure is not None:
            raise failure
        return full

    async def _publish(self, conn: asyncpg.Connection, channel: Channel, r: Any) -> list[OutboxItem]:
        now = self._now()
        command_id = str(r["command_id"])
        if r["expires_at"] <= now:
            PUBLISHED.labels(channel.kind, "expired").inc()
            log.warning("%s command %s expired before it could be sent", channel.kind, command_id,
                        extra={"command_id": command_id})
            return await channel.expire(conn, now, r["command_id"])
        await self._ensure_consumer(r["edge_id"])
        await self._js.publish(r["subject"], bytes(r["payload"]), timeout=2.0,
                               headers={subjects.H_MSG_ID: command_id, **channel.headers})
        updates = await channel.sent(conn, r["command_id"], self._now())
        PUBLISHED.labels(channel.kind, "sent").inc()
        log.info("%s command %s sent to edge %s", channel.kind, command_id, r["edge_id"],
                 extra={"command_id": command_id})
        return updates
