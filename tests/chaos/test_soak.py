"""The soak (`make soak`, never `make test`): VIGIL_SOAK_S seconds (default 1800) of steady traffic —
an edge agent's demo source at 50 events/s — through a real hub process and a real edge agent
process. Both processes' RSS is sampled after a warm-up and at the end; growth must stay under
10 %. Traffic must keep flowing all along (checked every few seconds), and every journaled row is
at the hub once at the end."""
from __future__ import annotations

import asyncio
import os

import pytest

from support.chaos import Stopwatch, all_arrive_once, figure, rss_kib, spawn_chaos_hub
from support.topology import Topology

pytestmark = pytest.mark.soak
MAX_GROWTH_PCT = 10.0
DEMO = {"VIGIL_EDGE_DEMO_ENABLED": "true", "VIGIL_EDGE_DEMO_INTERVAL_S": "0.02"}


async def test_soak_memory_stays_flat(topology: Topology) -> None:
    duration = float(os.environ.get("VIGIL_SOAK_S", "1800"))
    warm_up = max(30.0, duration * 0.1)
    config = topology.edge_config()
    await topology.enrol(config)
    hub = await spawn_chaos_hub(topology)
    agent = await topology.spawn_edge(config, **DEMO)
    assert hub.proc.pid is not None and agent.pid is not None
    await topology.wait_events(10, timeout=60, edge_id=config.edge_id)

    clock = Stopwatch()
    baseline: dict[str, int] = {}
    last = await topology.event_count(config.edge_id)
    # The soak's own duration (the scenario, not a wait for a condition): every 10 s, traffic must
    # have moved on, and the processes' RSS is printed so a leak shows its slope in the log.
    while clock.elapsed() < duration:
        await asyncio.sleep(min(10.0, duration - clock.elapsed()))
        now = await topology.event_count(config.edge_id)
        assert now > last, f"no new event committed in the last 10 s ({now} in all) {clock.elapsed():.0f} s in"
        last = now
        rss = {"hub": rss_kib(hub.proc.pid), "edge": rss_kib(agent.pid)}
        print(f"SOAK t={clock.elapsed():.0f}s events={now} hub_rss_kib={rss['hub']} edge_rss_kib={rss['edge']}",
              flush=True)
        if not baseline and clock.elapsed() >= warm_up:
            baseline = rss
    assert baseline, "the soak was shorter than its warm-up"
    end = {"hub": rss_kib(hub.proc.pid), "edge": rss_kib(agent.pid)}
    print(f"SOAK events={last} events_per_s={last / clock.elapsed():.1f}", flush=True)
    for name in ("hub", "edge"):
        growth = 100.0 * (end[name] - baseline[name]) / baseline[name]
        print(f"SOAK {name}_rss_growth_pct={growth:.2f} baseline_kib={baseline[name]} end_kib={end[name]}", flush=True)
        figure("SOAK", f"{name}_rss_growth_pct", growth, "%", MAX_GROWTH_PCT)

    await asyncio.to_thread(agent.stop, 30)  # the demo source stops: the journal is final
    await topology.spawn_edge(config, name="edge-final")
    await all_arrive_once(topology, config, "SOAK", Stopwatch(), 300.0)
