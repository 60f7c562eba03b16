"""The hub process: migrations, streams, partitioned ingest and the HTTP server, with a clean
SIGTERM (stop taking partitions, finish in-flight batches, close)."""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from functools import partial
from pathlib import Path

import asyncpg
import nats
from aiohttp import web
from prometheus_client import Gauge

from hub.config import HubConfig
from hub.db.errors import DB_ERRORS
from hub.db.pool import create_pool
from hub.db.roles import prepare_database
from hub.edges.setup import build_enrolment, https_context, keep_access_in_step
from hub.edges.status import listen_for_status
from hub.ingest.edge_keys import EdgeKeyCache
from hub.edges.registry import leaf_users
from hub.commands import scheduler as auto_arm
from hub.commands.publisher import CommandPublisher, ensure_commands_stream
from hub.db_gauges import run_db_gauges
from hub.probe import watch_probes
from hub.housekeeping import ensure_partitions, run_housekeeping
from hub.api.server import build_http
from hub.auth import build_auth
from hub.ingest.consumer import Ingest, ensure_streams
from hub.ingest.partitions import PartitionOwner
from hub.nats_access import NatsAccess, edge_leaf_users, hub_nats_login
from hub.secret_box import SecretBox
from hub.stream import HubStream, StreamSettings, stream_router
from shared.backoff import sleep_or_stop
from shared.eventloop import stop_on_signals
from shared.supervise import Supervisor

log = logging.getLogger("vigil.hub")

SEQ_MISSING = Gauge("vigil_edge_seq_missing", "Seqs below an edge's highest committed seq not yet committed", ["edge"])
CLOCK_SKEW = Gauge("vigil_edge_clock_skew_seconds",
                   "Edge clock minus hub receive time, from the edge's freshest event", ["edge"])
SQL_GAPS = """
SELECT s.edge_id, s.epoch, s.missing, s.contiguous_seq, s.highest_seq, e.clock_skew_s
FROM edge_seq_status s JOIN edges e USING (edge_id)
"""


async def _watch_gaps(pool: asyncpg.Pool, stop: asyncio.Event, interval_s: float = 10.0) -> None:
    """Publish per-edge gap counts (over all its journal epochs) and clock skews, and log when an
    edge's gap count changes."""
    last: dict[str, int] = {}
    while not await sleep_or_stop(interval_s, stop):
        try:
            rows = await pool.fetch(SQL_GAPS)
        except DB_ERRORS as exc:
            log.warning("gap check failed: %s", exc)
            continue
        for r in rows:
            SEQ_MISSING.labels(r["edge_id"]).set(r["missing"])
            if r["clock_skew_s"] is not None:
                CLOCK_SKEW.labels(r["edge_id"]).set(r["clock_skew_s"])
            if r["missing"] != last.get(r["edge_id"], 0):
                log.warning("edge %s: %d seqs missing; epoch %s contiguous up to %d of %d", r["edge_id"],
                            r["missing"], r["epoch"], r["contiguous_seq"], r["highest_seq"],
                            extra={"edge": r["edge_id"], "epoch": r["epoch"]})
            last[r["edge_id"]] = r["missing"]


async def run_hub(config: HubConfig, stop: asyncio.Event | None = None, *, handle_signals: bool = True) -> None:
    """Run the hub until `stop` is set or SIGTERM/SIGINT arrives (when
    `handle_signals`; tests embedding it pass False)."""
    stop = stop or asyncio.Event()
    if handle_signals:
        stop_on_signals(stop)

    await prepare_database(config.database_url, config.database_owner_url)
    pool = await create_pool(config.database_url, config.db_pool_size, statement_timeout_s=config.db_statement_timeout_s,
                             idle_in_transaction_timeout_s=config.db_idle_in_transaction_timeout_s)
    ingest_pool = await create_pool(config.database_url, config.ingest.db_pool_size, min_size=1)
    await ensure_partitions(pool)
    box = SecretBox.from_file(Path(config.auth.secret_file))
    auth = await build_auth(pool, config.auth, box=box, default_time_zone=config.console.time_zone)
    await auth.bootstrap_master()
    nc = await nats.connect(
        config.nats_url, name="vigil-hub", max_reconnect_attempts=-1, reconnect_time_wait=0.5,
        error_cb=_log_nats_error, disconnected_cb=_log_disconnected, reconnected_cb=_log_reconnected,
        **hub_nats_login(config),  # type: ignore[arg-type]
    )
    access = NatsAccess.from_config(config)
    if access is not None:
        await access.start()
        # The users file may predate enrolments and revocations made while this hub was down.
        await access.apply(edge_leaf_users(await leaf_users(pool)))
    await ensure_streams(nc, config.ingest.stream_max_bytes)
    await ensure_commands_stream(nc)
    commands = CommandPublisher(nc, pool, interval_s=config.commands.publish_interval_s,
                                ack_wait_s=config.commands.ack_wait_s)
    await commands.ensure_consumers()
    keys = EdgeKeyCache(ingest_pool, config.ingest.key_cache_s)
    await listen_for_status(nc, pool, keys)  # edges' status reports (hub/edges/status.py)
    ingest = Ingest(nc, ingest_pool, keys, batch=config.ingest.batch, batch_max_bytes=config.ingest.batch_max_bytes,
                    clock_tolerance=timedelta(seconds=config.ingest.clock_tolerance_s))
    owner = PartitionOwner(config.database_url, ingest.acquire, ingest.release, interval_s=config.ingest.rebalance_s)
    ingest.fence_of = owner.fence

    # Every background loop runs under the supervisor: an unforeseen error restarts it (logged,
    # counted, backed off) instead of ending it, and /readyz names a task that keeps failing.
    supervisor = Supervisor(stop, failure_threshold=config.supervisor.failure_threshold,
                            window_s=config.supervisor.window_s)
    stream = HubStream(pool, config.database_url,
                       StreamSettings(telemetry_interval_s=config.robots.stream_telemetry_interval_s))
    auth.sessions.on_ended(stream.end_sessions)  # this process's streams end with their session at once
    await stream.start(supervisor)
    enrolment = build_enrolment(config, pool, access)
    runner = web.AppRunner(build_http(pool, auth.authenticator, [auth.router, stream_router(stream)], box,
                                      enrolment=enrolment, supervisor=supervisor, documents=config.documents,
                                      reports=config.reports, commands=commands, robots=config.robots,
                                      nats_client=nc),
                               access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.http_host, config.http_port)
    await site.start()
    log.info("hub listening on http://%s:%d", config.http_host, config.http_port)
    tls = https_context(config)
    if tls is not None:
        await web.TCPSite(runner, config.https_host, config.https_port, ssl_context=tls).start()
        log.info("hub listening on https://%s:%d (enrolment %s)", config.https_host, config.https_port,
                 "open" if enrolment is not None else "off: needs nats_access.ca_dir, leaf_url and users_file")

    owner_task = supervisor.spawn("partition-owner", owner.run)
    commands_task = supervisor.spawn("command-publisher", partial(commands.run, stop))
    auto_arm_task = supervisor.spawn("auto-arm", partial(
        auto_arm.run, pool, box, stop, interval_s=config.auto_arm.interval_s, lookback_s=config.auto_arm.lookback_s,
        wake=commands.wake))
    gaps_task = supervisor.spawn("gap-watch", lambda: _watch_gaps(pool, stop))
    probe_task = supervisor.spawn("probe-watch", lambda: watch_probes(stream, pool, stop))
    gauges_task = supervisor.spawn("db-gauges", lambda: run_db_gauges(
        pool, stop, interval_s=config.metrics.refresh_s, stream_head=lambda: stream.feed.head))
    access_task = supervisor.spawn("nats-access", partial(keep_access_in_step, pool, access, stop)) \
        if access is not None else None
    housekeeping_task = supervisor.spawn("housekeeping", lambda: run_housekeeping(
        pool, stop, maintain=auth.maintain, planned_stop_grace=timedelta(seconds=config.alarms.planned_stop_grace_s),
        escalate_after=config.alarms.escalation(),
        command_settle_grace=timedelta(seconds=config.commands.settle_grace_s), robot_settings=config.robots,
        probe_missing_after=timedelta(seconds=config.probe.missing_after_s)))
    await stop.wait()
    log.info("hub stopping: finishing in-flight batches")
    owner.stop()
    await owner_task
    await ingest.close()
    await gaps_task
    await gauges_task
    await probe_task
    await commands_task
    await auto_arm_task
    if access_task is not None:
        await access_task
    await stream.close()  # before the HTTP server: live clients get a clean 1001 close
    await housekeeping_task
    await runner.cleanup()
    await nc.drain()
    if access is not None:
        await access.close()
    await pool.close()
    await ingest_pool.close()
    log.info("hub stopped")


async def _log_nats_error(exc: Exception) -> None:
    log.warning("NATS error: %s", exc)


async def _log_disconnected() -> None:
    log.warning("disconnected from NATS")


async def _log_reconnected() -> None:
    log.info("reconnected to NATS")
