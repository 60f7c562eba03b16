"""Periodic hub work: the reaper/auto-closer and escalation sweeps every second, the hub's own
deadlines for panel and robot commands and robot leases, and the monthly event partitions and
daily robot telemetry partitions kept created ahead of time (and telemetry past its retention
dropped). Runs in every hub process; the sweep's advisory lock, the escalation's row locks, the
guarded UPDATEs and the idempotent partition functions make that safe."""
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
from hub.db.errors import DB_ERRORS
from hub.db.outbox import write_outbox
from hub.probe import raise_silent_probes
from hub.api import idempotency
from hub.config import AlarmSettings, RobotSettings
from hub.robots import repository as robots
from shared.backoff import sleep_or_stop
from shared.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("vigil.hub.housekeeping")

SWEPT = Counter("vigil_alarm_sweeps_changed_total", "Bundles reaped or auto-closed")
CLAIM_REVERTS = Counter("vigil_claiming_timeout_reverts_total",
                        "Claims the reaper reverted to NEW: CLAIMING past its TTL without being started")
ESCALATED = Counter("vigil_alarms_escalated_total", "Bundles escalated for staying NEW past their threshold")
PARTITION_MONTHS_AHEAD = 3
SQL_PARTITIONS = "SELECT ensure_event_partitions($1::timestamptz, $2)"
TELEMETRY_DAYS_AHEAD = 3
PARTITIONS_LOCK = 0x56494733  # serialises the hubs' partition work (CREATE and DROP race otherwise)


async def ensure_partitions(pool: asyncpg.Pool, clock: Clock = SYSTEM_CLOCK) -> int:
    """Create this month's and the next months' event partitions, and today's and the next days'
    robot telemetry partitions, if missing; how many were made."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            # Serialise creators: two hubs starting together would race on CREATE TABLE.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITIONS_LOCK)
            created = await conn.fetchval(SQL_PARTITIONS, clock.now(), PARTITION_MONTHS_AHEAD + 1)
            return created + await robots.ensure_telemetry_partitions(conn, clock.now(), TELEMETRY_DAYS_AHEAD + 1)


async def prune_telemetry(pool: asyncpg.Pool, now: datetime, retention: timedelta) -> int:
    """Drop robot telemetry older than `retention`; how many daily partitions went."""
    async with pool.acquire() as conn, conn.transaction():
        # One hub at a time, and never while another makes partitions (the same lock).
        await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITIONS_LOCK)
        return await robots.prune_telemetry(conn, now, retention)


async def raise_overdue(pool: asyncpg.Pool, now: datetime, grace: timedelta) -> int:
    """Raise the LINK alarms of planned stops that outlasted the grace; returns how many."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            items = await raise_overdue_link_alarms(conn, now, grace)
            await write_outbox(conn, items)
    return len(items)


async def silent_probes(pool: asyncpg.Pool, now: datetime, missing_after: timedelta) -> int:
    """Raise the SYSTEM alarm of each probe edge silent for `missing_after` (once per silence)."""
    async with pool.acquire() as conn, conn.transaction():
        items = await raise_silent_probes(conn, now, missing_after)
        await write_outbox(conn, items)
    return len(items)


async def time_out_commands(pool: asyncpg.Pool, now: datetime, grace: timedelta) -> int:
    """SENT commands with no result past their expiry and `grace` become TIMEOUT; how many."""
    async with pool.acquire() as conn, conn.transaction():
        items = await time_out_overdue(conn, now, grace)
        await write_outbox(conn, items)
    return len(items)


async def robot_deadlines(pool: asyncpg.Pool, now: datetime, grace: timedelta) -> tuple[int, int]:
    """Robot commands SENT with no word past their expiry and `grace` (and REQUESTED ones never
    sent) become TIMEOUT; leases past their expiry are closed, for the live stream. How many of
    each."""
    async with pool.acquire() as conn, conn.transaction():
        commands = await robots.time_out_overdue(conn, now, grace)
        leases = await robots.expire_leases(conn, now)
        await write_outbox(conn, commands + leases)
    return len(commands), len(leases)


async def run_housekeeping(pool: asyncpg.Pool, stop: asyncio.Event, clock: Clock = SYSTEM_CLOCK, *,
                           maintain: Callable[[], Awaitable[None]] | None = None,
                           planned_stop_grace: timedelta = timedelta(minutes=10), sweep_interval_s: float = 1.0,
                           minutely_interval_s: float = 60.0, partition_interval_s: float = 6 * 3600,
                           escalate_after: Mapping[str, timedelta] | None = None,
                           command_settle_grace: timedelta = timedelta(seconds=30),
                           robot_settings: RobotSettings | None = None,
                           probe_missing_after: timedelta = timedelta(minutes=10)) -> None:
    """Sweep and escalate every `sweep_interval_s` (thresholds per priority in `escalate_after`,
    by default alarms.escalate_after_s's), time out panel commands whose edge gave no result
    within `command_settle_grace` of their expiry, and robot commands likewise within
    `robot_settings.settle_grace_s`, close expired robot leases, and raise a SYSTEM alarm for a
    probe edge silent for `probe_missing_after` (hub.probe); once a minute run `maintain`
    (key rotation, session and throttle clean-up), expire idempotency keys and drop robot
    telemetry past its retention; check partitions every `partition_interval_s`. Every time comes
    from `clock`."""
    escalation = AlarmSettings().escalation() if escalate_after is None else dict(escalate_after)
    robot_settings = robot_settings or RobotSettings()
    robot_grace = timedelta(seconds=robot_settings.settle_grace_s)
    retention = timedelta(days=robot_settings.telemetry_retention_days)
    last_partition_check = last_minutely = clock.monotonic()
    while not await sleep_or_stop(sweep_interval_s, stop):
        try:
            async with pool.acquire() as conn:
                swept = await sweep(conn, clock.now())
            if swept.total:
                # Counted after the sweep's commit: a rolled-back pass reverted nothing.
                SWEPT.inc(swept.total)
                CLAIM_REVERTS.inc(swept.reaped)
                log.info("reaped %d lapsed claims, auto-closed %d alarm bundles", swept.reaped, swept.closed)
            async with pool.acquire() as conn:
                escalated = await escalate(conn, clock.now(), escalation)
            if escalated:
                ESCALATED.inc(escalated)
                log.warning("escalated %d alarm bundles still NEW past their threshold", escalated)
            if raised := await raise_overdue(pool, clock.now(), planned_stop_grace):
                log.warning("raised %d LINK alarms for planned stops past their grace", raised)
            if silent := await silent_probes(pool, clock.now(), probe_missing_after):
                log.warning("raised %d SYSTEM alarms for silent synthetic probes", silent)
            if timed_out := await time_out_commands(pool, clock.now(), command_settle_grace):
                log.warning("%d panel commands got no result from their edge in time", timed_out)
            robot_timeouts, leases = await robot_deadlines(pool, clock.now(), robot_grace)
            if robot_timeouts:
                log.warning("%d robot commands got no word from their edge in time", robot_timeouts)
            if leases:
                log.info("%d robot leases ended by time", leases)
            if clock.monotonic() - last_minutely > minutely_interval_s:
                last_minutely = clock.monotonic()
                if maintain is not None:
                    await maintain()
                await idempotency.expire(pool)
                if dropped := await prune_telemetry(pool, clock.now(), retention):
                    log.info("dropped %d days of robot telemetry past its retention", dropped)
            if clock.monotonic() - last_partition_check > partition_interval_s:
                created = await ensure_partitions(pool, clock)
                last_partition_check = clock.monotonic()
                if created:
                    log.info("created %d event partitions", created)
        except DB_ERRORS as exc:
            log.warning("housekeeping pass failed: %s", exc)
