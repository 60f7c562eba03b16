"""CH-02, second half: the primary PostgreSQL's host dies under a forwarding edge, its synchronous
standby is promoted, and the hub — given both servers in one failover URL
(`?target_session_attrs=read-write`, docs/operations.md "PostgreSQL failover") — carries on
against the new primary by itself, with no restart and no config change.

Nothing lost: replication is synchronous, so every row the hub committed (and only then acked to
JetStream) is on the standby; what was in flight is redelivered and de-duplicated there. While no
server is writable the hub says so (/readyz 503 naming the database). Recovery = the standby
promoted → the first new commit."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator

import pytest

from support.chaos import (Stopwatch, all_arrive_once, database_down, figure, full, migrate_database, ready_and_normal,
                           spawn_chaos_hub, topology_on)
from support.pg_replica import ReplicatedPostgres
from support.topology import EdgeHarness, Topology
from support.waiting import wait_until

pytestmark = pytest.mark.chaos
ID = "CH-02b"


@pytest.fixture
async def replicated(tmp_path: Path) -> AsyncIterator[ReplicatedPostgres]:
    """A primary with database `vigil` migrated, and its synchronous standby."""
    pg = ReplicatedPostgres(tmp_path / "pg")
    try:
        await pg.start()
        await migrate_database(await pg.primary.ensure_database("vigil"))  # replicated like any other write
        yield pg
    finally:
        await asyncio.to_thread(pg.stop)


@pytest.fixture
async def failover_topology(tmp_path: Path, replicated: ReplicatedPostgres) -> AsyncIterator[Topology]:
    """The usual topology; the hub and the test both reach the database through the failover URL."""
    async with topology_on(tmp_path / "topology", replicated.dsn("vigil")) as topo:
        yield topo


async def test_ch02_standby_promoted_and_the_hub_follows(failover_topology: Topology,
                                                        replicated: ReplicatedPostgres) -> None:
    topology = failover_topology
    config = topology.edge_config()
    signer = await topology.enrol(config)
    hub = await spawn_chaos_hub(topology)
    port = hub.config.http_port
    site = await EdgeHarness(topology, config, signer, backoff_base_s=0.05, backoff_cap_s=1.0).start()
    try:
        await site.append(1)
        await topology.wait_events(1, timeout=60, edge_id=config.edge_id)
        await site.append(5000 if full() else 1500)

        async def mid_flow() -> bool:
            return await topology.event_count(config.edge_id) > 200

        await wait_until(mid_flow, timeout=60, what="the backlog committing")
        replicated.crash_primary()

        await wait_until(database_down(port), timeout=30, what="/readyz 503 naming the database")
        await site.append(500)  # the edge keeps forwarding into the hub's JetStream meanwhile
        clock = Stopwatch()
        await replicated.promote()
        figure(ID, "promote_s", clock.elapsed(), "s", 30.0)
        before = await topology.event_count(config.edge_id)

        async def new_commit() -> bool:
            return await topology.event_count(config.edge_id) > before

        await wait_until(new_commit, timeout=120, what="the first commit on the promoted standby")
        figure(ID, "recovery_s", clock.elapsed(), "s", 30.0)

        await wait_until(lambda: ready_and_normal(hub), timeout=60, what="/readyz 200 and NORMAL on the promoted standby")
        await site.append(500)
        await all_arrive_once(topology, config, ID, clock, 180.0)
        # Through the failover every answer was a deliberate one (503s), never a crash.
        unhandled = [line for line in hub.proc.log_path.read_text().splitlines() if "unhandled error" in line]
        assert not unhandled, unhandled[:3]
    finally:
        await site.close()
