"""CH-04: the edge agent SIGKILLed mid-stream (its demo source journaling, the forwarder behind)
and started again: every journaled row reaches the hub once. Recovery = restart → the first new
commit; the restarted agent's /readyz is 200 again."""
from __future__ import annotations

import pytest

from support.chaos import Stopwatch, all_arrive_once, figure, full, journal_seqs, readyz, spawn_chaos_hub
from edge.journal import Journal
from support.topology import EdgeHarness, Topology
from support.waiting import wait_until

pytestmark = pytest.mark.chaos
ID = "CH-04"


async def test_ch04_edge_agent_sigkilled_mid_stream_and_restarted(topology: Topology) -> None:
    backlog, streamed = (20000, 3000) if full() else (3000, 200)
    config = topology.edge_config(forwarder={"segment_max_events": 50})
    signer = await topology.enrol(config)
    # A backlog journaled before the agent starts (as after a long WAN cut), so the kill surely
    # lands while rows are still unforwarded.
    harness = EdgeHarness(topology, config, signer)
    harness.journal = await Journal.open(config.journal_path, max_bytes=config.journal.max_bytes, retention_s=3600)
    await harness.append(backlog)
    await harness.journal.close()
    await spawn_chaos_hub(topology)

    # The agent forwards the backlog while its fast demo source keeps journaling.
    agent = await topology.spawn_edge(config, VIGIL_EDGE_DEMO_ENABLED="true", VIGIL_EDGE_DEMO_INTERVAL_S="0.002")
    await topology.wait_events(streamed, timeout=120, edge_id=config.edge_id)
    agent.kill()
    at_kill = await topology.event_count(config.edge_id)
    journaled = journal_seqs(str(config.journal_path))
    figure(ID, "unforwarded_at_kill", len(journaled) - at_kill, "rows", 1, at_least=True)

    # Restarted without the demo source, the journal's content is final: all of it must arrive.
    clock = Stopwatch()
    await topology.spawn_edge(config, name="edge-restarted")

    async def new_commit() -> bool:
        return await topology.event_count(config.edge_id) > at_kill

    await wait_until(new_commit, timeout=60, what="the first commit after the restart")
    figure(ID, "recovery_s", clock.elapsed(), "s", 30.0)
    assert (await readyz(config.http_port))[0] == 200
    arrived = await all_arrive_once(topology, config, ID, clock, 120.0)
    assert arrived == journaled, "the restarted agent journaled rows of its own"
