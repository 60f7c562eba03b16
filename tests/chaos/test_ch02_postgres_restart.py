"""CH-02: PostgreSQL restarted under a forwarding edge. The test runs a PostgreSQL of its own
(provisioning/embedded_pg.py on a free port, never the machine's shared server), so stopping it
touches no other test. While it is down the hub says so (/readyz 503 naming the database) and the
edge's rows wait in JetStream (no one can be signed in: the API answers 503 database_unavailable); once it is back the hub commits again by itself and every journaled
row arrives once. Recovery = PostgreSQL accepting again → the first new commit.

Replica promotion (the seed's second half) is test_ch02_postgres_failover.py."""
from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import AsyncIterator

import pytest

from provisioning.embedded_pg import EmbeddedPostgres
from shared.process import free_port
from support.chaos import (Stopwatch, all_arrive_once, database_down, figure, full, hold, migrate_database,
                           ready_and_normal, spawn_chaos_hub, topology_on)
from support.topology import EdgeHarness, Topology
from support.waiting import wait_until

pytestmark = pytest.mark.chaos
ID = "CH-02"


@pytest.fixture
async def own_pg(tmp_path: Path) -> AsyncIterator[EmbeddedPostgres]:
    """A PostgreSQL server of this test's own, with a migrated database `vigil`."""
    pg = EmbeddedPostgres(tmp_path / "pg" / "data", free_port())
    await pg.start()
    try:
        await migrate_database(await pg.ensure_database("vigil"))
        yield pg
    finally:
        await asyncio.to_thread(pg.stop)


@pytest.fixture
async def own_topology(tmp_path: Path, own_pg: EmbeddedPostgres) -> AsyncIterator[Topology]:
    """The usual topology, on the test's own PostgreSQL."""
    async with topology_on(tmp_path / "topology", own_pg.dsn("vigil")) as topo:
        yield topo


async def test_ch02_postgres_restarted_while_the_hub_ingests(own_topology: Topology, own_pg: EmbeddedPostgres) -> None:
    topology = own_topology
    outage_s = 60.0 if full() else 5.0
    config = topology.edge_config()
    signer = await topology.enrol(config)
    hub = await spawn_chaos_hub(topology)
    port = hub.config.http_port
    site = await EdgeHarness(topology, config, signer, backoff_base_s=0.05, backoff_cap_s=1.0).start()
    try:
        await site.append(1)
        await topology.wait_events(1, timeout=60, edge_id=config.edge_id)
        await site.append(2000)
        # A fast shutdown (SIGINT: what `pg_ctl restart -m fast` does), not SIGKILL: a killed
        # postmaster can leave backends holding its shared memory and the restart would fail.
        assert own_pg.process is not None
        await asyncio.to_thread(own_pg.process.stop, 30, signal.SIGINT)

        down_signalled = database_down(port)
        await wait_until(down_signalled, timeout=30, what="/readyz 503 naming the database")
        # Read now, judged at the end: the rest of the scenario must run and pass whatever it says.
        mode_status, mode_body = await hub.api.get("/api/v1/system/mode")
        await site.append(500)  # the edge keeps forwarding into the hub's JetStream meanwhile
        await hold(outage_s, down_signalled, "/readyz 503 naming the database")

        await own_pg.start()
        before = await topology.event_count(config.edge_id)
        clock = Stopwatch()

        async def new_commit() -> bool:
            return await topology.event_count(config.edge_id) > before

        await wait_until(new_commit, timeout=120, what="the first commit after PostgreSQL's restart")
        figure(ID, "recovery_s", clock.elapsed(), "s", 30.0)

        await wait_until(lambda: ready_and_normal(hub), timeout=60, what="/readyz 200 and NORMAL after the restart")
        figure(ID, "ready_again_s", clock.elapsed(), "s", 60.0)
        await site.append(500)
        await all_arrive_once(topology, config, ID, clock, 180.0)
        # With the database down no caller can be signed in (sessions live there): the mode
        # endpoint, like every signed-in one, says 503 database_unavailable, never a 500.
        assert mode_status == 503 and (mode_body or {}).get("error", {}).get("code") == "database_unavailable", \
            (mode_status, mode_body)
    finally:
        await site.close()
