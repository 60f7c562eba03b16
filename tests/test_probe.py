"""The synthetic probe (docs/architecture.md §5 "Synthetic probe"): a probe edge's probe.tick goes
the whole way — its agent, journal, leaf, JetStream, ingest, the outbox, the hub's own live-stream
client — which times it; it opens no alarm and no operator's stream carries it; a probe edge
silent for `probe.missing_after_s` raises one SYSTEM alarm per silence."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import REGISTRY

from hub.api.principal import Principal, Role
from hub.probe import PROBE_TOPIC, raise_silent_probes
from hub.service import run_hub
from hub.stream.messages import Row
from hub.stream.visibility import row_filter
from shared.process import tcp_port_open
from support.topology import Topology
from support.waiting import wait_until

MISSING_AFTER_S = 10.0


def test_only_the_hubs_own_client_sees_probe_rows() -> None:
    row = Row.from_record(7, datetime.now(timezone.utc), PROBE_TOPIC, None,
                          '{"edge": "probe-1", "seq": 3, "journaled_at": "2026-12-01T12:00:00+00:00"}')
    for role in (Role.OPERATOR, Role.ADMIN, Role.MASTER, Role.TECHNICIAN):
        assert not row_filter(Principal(1, "x@example.com", role))(row), role
    assert row_filter(Principal(0, "system:probe", Role.SYSTEM))(row)


@pytest.mark.slow
async def test_a_probe_is_timed_end_to_end_and_its_silence_raises_one_system_alarm(topology: Topology) -> None:
    config = topology.edge_config()
    await topology.enrol(config)
    pool = topology.pool
    await pool.execute("UPDATE edges SET probe = true WHERE edge_id = $1", config.edge_id)
    await topology.run_hub(topology.hub_config(probe={"missing_after_s": MISSING_AFTER_S}))
    count_before = REGISTRY.get_sample_value("vigil_probe_latency_seconds_count") or 0.0
    agent = await topology.spawn_edge(config, VIGIL_EDGE_PROBE_ENABLED="true", VIGIL_EDGE_PROBE_INTERVAL_S="1")

    async def timed() -> bool:
        count = REGISTRY.get_sample_value("vigil_probe_latency_seconds_count") or 0.0
        return count >= count_before + 3

    await wait_until(timed, timeout=60, what="three probes timed by the hub's stream client")
    last = REGISTRY.get_sample_value("vigil_probe_last_success_timestamp", {"edge": config.edge_id})
    assert last is not None and abs(last - datetime.now(timezone.utc).timestamp()) < 30
    await wait_until(lambda: pool.fetchval("SELECT probe_seen_at IS NOT NULL FROM edges WHERE edge_id = $1",
                                           config.edge_id), timeout=30, what="the probe's last sighting kept")
    assert await pool.fetchval("SELECT count(*) FROM events WHERE kind = 'probe.tick'") >= 3
    assert await pool.fetchval("SELECT count(*) FROM bundle_alarms") == 0  # never an operator's work

    # The probe edge goes silent: one SYSTEM alarm, naming it.
    agent.kill()

    async def alarmed() -> list[str]:
        return [r["summary"] for r in await pool.fetch(
            "SELECT summary FROM bundle_alarms WHERE alarm_type = 'SYSTEM' AND edge_id = $1", config.edge_id)]

    summaries = await wait_until(alarmed, timeout=MISSING_AFTER_S + 40, what="the silent probe's SYSTEM alarm")
    assert len(summaries) == 1 and "synthetic probe silent" in summaries[0], summaries
    # Once per silence: the next sweeps find it alarmed already.
    async with pool.acquire() as conn, conn.transaction():
        assert await raise_silent_probes(conn, datetime.now(timezone.utc), timedelta(seconds=MISSING_AFTER_S)) == []
    assert await pool.fetchval("SELECT event_count FROM bundle_alarms WHERE alarm_type = 'SYSTEM'") == 1


async def test_a_hub_with_the_probe_watcher_stops_promptly(topology: Topology) -> None:
    """The watcher is a client of a stream that closes late in the shutdown: it must end on the
    hub's stop itself, or the hub would wait for it forever."""
    config = topology.hub_config()
    stop = asyncio.Event()
    hub = asyncio.create_task(run_hub(config, stop, handle_signals=False))

    async def started() -> bool:
        if hub.done():
            hub.result()
        return await tcp_port_open("127.0.0.1", config.http_port)

    await wait_until(started, timeout=60, what="the hub to start")
    stop.set()
    await asyncio.wait_for(hub, 30)
