"""CH-01: the hub's NATS server SIGKILLed while an edge forwards, held down, then restarted. The
hub says so while it is down (/readyz 503, system mode DEGRADED naming NATS) and recovers by
itself; every journaled row arrives once. Recovery = restart → the first new commit."""
from __future__ import annotations

import pytest

from support.chaos import Stopwatch, all_arrive_once, figure, full, hold, readyz, spawn_chaos_hub
from support.topology import EdgeHarness, Topology
from support.waiting import wait_until

pytestmark = pytest.mark.chaos
ID = "CH-01"


async def test_ch01_hub_nats_sigkilled_and_restarted_while_forwarding(topology: Topology) -> None:
    outage_s = 60.0 if full() else 3.0
    backlog = 5000 if full() else 1500
    config = topology.edge_config()
    signer = await topology.enrol(config)
    hub = await spawn_chaos_hub(topology)
    site = await EdgeHarness(topology, config, signer, backoff_base_s=0.05, backoff_cap_s=1.0).start()
    try:
        await site.append(1)
        await topology.wait_events(1, timeout=60)
        await site.append(backlog)  # in flight when the server dies
        topology.hub_nats.kill()

        async def down_signalled() -> bool:
            status, body = await readyz(hub.config.http_port)
            return status == 503 and body.get("failing", {}).get("nats") == "not connected (reconnecting)"

        await wait_until(down_signalled, timeout=30, what="/readyz 503 naming NATS")
        assert await hub.api.mode() == "DEGRADED"
        await site.append(500)  # the edge keeps journaling through the outage
        # The scenario's outage: the server stays dead this long, and says so all along.
        await hold(outage_s, down_signalled, "/readyz 503 naming NATS")
        assert await hub.api.mode() == "DEGRADED"

        before = await topology.event_count(config.edge_id)
        clock = Stopwatch()
        await topology.hub_nats.start()

        async def new_commit() -> bool:
            return await topology.event_count(config.edge_id) > before

        await wait_until(new_commit, timeout=120, what="the first commit after the restart")
        figure(ID, "recovery_s", clock.elapsed(), "s", 30.0)

        async def ready() -> bool:
            return (await readyz(hub.config.http_port))[0] == 200 and await hub.api.mode() == "NORMAL"

        await wait_until(ready, timeout=60, what="/readyz 200 and NORMAL after the restart")
        figure(ID, "ready_again_s", clock.elapsed(), "s", 60.0)

        await site.append(500)
        expected = await all_arrive_once(topology, config, ID, clock, 180.0)
        assert len(expected) == 1 + backlog + 1000
    finally:
        await site.close()
