"""Periodic hub work: the reaper/auto-closer and escalation sweeps every second, and the monthly
event partitions kept created ahead of time. Runs in every hub process; the sweep's advisory lock,
the escalation's row locks and the idempotent partition function make that safe."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Awaitable, Callable, Mapping

import asyncpg
from prometheus_client import Counter

from hub.alarms.apply import raise_overdue_link_alarms
from hub.alarms.repository import escalate, sweep
from hub.commands.repository import time_out_overdue
from hub.db.outbox import write_outbox
from hub.api import idempotency
from hub.config import AlarmSettings
from shared.backoff import sleep_or_stop
from shared.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("vigil.hub.housekeeping")

SWEPT = Counter("vigil_alarm_sweeps_changed_total", "Bundles reaped or auto-closed")
ESCALATED = Counter("vigil_alarms_escalated_total", "Bundles escalated for staying NEW past their threshold")
PARTITION_MONTHS_AHEAD = 3
SQL_PARTITIONS = "SELECT ensure_event_partitions($1::timestamptz, $2)"


async def ensure_partitions(pool: asyncpg.Pool, clock: Clock = SYSTEM_CLOCK) -> int:
    """Create this month's and the next months' event partitions if missing."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            # Serialise creators: two hubs starting together would race on CREATE TABLE.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", 0x56494733)
            return await conn.fetchval(SQL_PARTITIONS, clock.now(), PARTITION_MONTHS_AHEAD + 1)


async def raise_overdue(pool: asyncpg.Pool, now: datetime, grace: timedelta) -> int:
    """Raise the LINK alarms of planned stops that outlasted the grace; returns how many."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            items = await raise_overdue_link_alarms(conn, now, grace)
            await write_outbox(conn, items)
    return len(items)


async def time_out_commands(pool: asyncpg.Pool, now: datetime, grace: timedelta) -> int:
    """SENT commands with no result past their expiry and `grace` become TIMEOUT; how many."""
    async with pool.acquire() as conn, conn.transaction():
        items = await time_out_overdue(conn, now, grace)
        await write_outbox(conn, items)
    return len(items)


async def run_housekeeping(pool: asyncpg.Pool, stop: asyncio.Event, clock: Clock = SYSTEM_CLOCK, *,
                           maintain: Callable[[], Awaitable[None]] | None = None,
                           planned_stop_grace: timedelta = timedelta(minutes=10), sweep_interval_s: float = 1.0,
                           minutely_interval_s: float = 60.0, partition_interval_s: float = 6 * 3600,
                           escalate_after: Mapping[str, timedelta] | None = None,
                           command_settle_grace: timedelta = timedelta(seconds=30)) -> None:
    """Sweep and escalate every `sweep_interval_s` (thresholds per priority in `escalate_after`,
    by default alarms.escalate_after_s's), and time out panel commands whose edge gave no result
    within `command_settle_grace` of their expiry; once a minute run `maintain` (key rotation, session
    and throttle clean-up) and expire idempotency keys; check partitions every
    `partition_interval_s`. Every time comes from `clock`."""
    escalation = AlarmSettings().escalation() if escalate_after is None else dict(escalate_after)
    last_partition_check = last_minutely = clock.monotonic()
    while not await sleep_or_stop(sweep_interval_s, stop):
        try:
            async with pool.acquire() as conn:
                changed = await sweep(conn, clock.now())
            if changed:
                SWEPT.inc(changed)
                log.info("reaped or auto-closed %d alarm bundles", changed)
            async with pool.acquire() as conn:
                escalated = await escalate(conn, clock.now(), escalation)
            if escalated:
                ESCALATED.inc(escalated)
                log.warning("escalated %d alarm bundles still NEW past their threshold", escalated)
            if raised := await raise_overdue(pool, clock.now(), planned_stop_grace):
                log.warning("raised %d LINK alarms for planned stops past their grace", raised)
            if timed_out := await time_out_commands(pool, clock.now(), command_settle_grace):
                log.warning("%d panel commands got no result from their edge in time", timed_out)
            if clock.monotonic() - last_minutely > minutely_interval_s:
                last_minutely = clock.monotonic()
                if maintain is not None:
                    await maintain()
                await idempotency.expire(pool)
            if clock.monotonic() - last_partition_check > partition_interval_s:
                created = await ensure_partitions(pool, clock)
                last_partition_check = clock.monotonic()
                if created:
                    log.info("created %d event partitions", created)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("housekeeping pass failed: %s", exc)
