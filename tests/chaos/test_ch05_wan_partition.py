"""CH-05: a WAN partition (the proxy between the edge's leaf server and the hub cut) held for the
scenario's duration (full: 600 s, reduced: 15 s) while the edge agent keeps journaling. The hub
stays ready (one site's WAN is not its dependency) and the alert's metric,
`vigil_edge_backlog_oldest_age_seconds`, ages with the cut (past the rule's 300 s in full scale);
after the restore the backlog drains, the age falls back, and every row arrives once."""
from __future__ import annotations

import asyncio

import pytest

from support.chaos import (Stopwatch, all_arrive_once, figure, full, hold, journal_seqs, metrics_text, readyz, sample,
                           spawn_chaos_hub)
from support.topology import Topology
from support.waiting import wait_until

pytestmark = pytest.mark.chaos
ID = "CH-05"
#: The alert rule VigilEdgeBacklogOld's threshold (ops/prometheus/vigil-alerts.yml).
ALERT_AGE_S = 300.0
#: Fast status reports and gauge refreshes, so the signal follows the cut within a second or two.
EDGE_ENV = {"VIGIL_EDGE_DEMO_ENABLED": "true", "VIGIL_EDGE_DEMO_INTERVAL_S": "0.02",
            "VIGIL_EDGE_STATUS_REPORT_INTERVAL_S": "1", "VIGIL_EDGE_STATUS_REPORT_RETRY_S": "0.5",
            "VIGIL_EDGE_STATUS_REPORT_CATCHUP_INTERVAL_S": "1"}


async def test_ch05_wan_partition_backlog_ages_then_drains(topology: Topology) -> None:
    duration = 600.0 if full() else 15.0
    config = topology.edge_config()
    await topology.enrol(config)
    hub = await spawn_chaos_hub(topology, env={"VIGIL_HUB_METRICS_REFRESH_S": "1"})
    port = hub.config.http_port
    agent = await topology.spawn_edge(config, **EDGE_ENV)
    await topology.wait_events(20, timeout=60, edge_id=config.edge_id)

    async def age() -> float | None:
        return sample(await metrics_text(port), "vigil_edge_backlog_oldest_age_seconds", edge=config.edge_id, lane="evt")

    async def age_reported() -> bool:
        return await age() is not None

    await wait_until(age_reported, timeout=30, what="the edge's backlog age on the hub's /metrics")

    assert topology.proxy is not None and topology.edge_nats is not None
    topology.proxy.cut()
    await wait_until(lambda: not topology.edge_nats.leaf_connected(), timeout=30, what="the leaf link to drop")

    async def hub_still_ready() -> bool:
        return (await readyz(port))[0] == 200

    # The scenario's outage: the WAN stays cut this long while the demo source journals.
    await hold(duration, hub_still_ready, "the hub's /readyz 200 during one site's WAN cut")
    aged = await age() or 0.0
    target_age = ALERT_AGE_S if full() else duration * 0.5
    # The edge kept up before the cut (its last report said 0 rows): the hub ages what it cannot
    # see from the report that did not come (hub.edges.status.backlog_age), so the alert can fire.
    figure(ID, "backlog_oldest_age_at_restore", aged, "s", target_age, at_least=True)
    at_restore = max(journal_seqs(str(config.journal_path)))
    backlog = at_restore - await topology.event_count(config.edge_id)
    figure(ID, "backlog_rows", backlog, "rows", 1, at_least=True)

    clock = Stopwatch()
    topology.proxy.restore()

    async def drained() -> bool:
        return await topology.pool.fetchval("SELECT count(*) FROM events WHERE edge_id = $1 AND seq <= $2",
                                            config.edge_id, at_restore) >= at_restore

    await wait_until(drained, timeout=600 if full() else 120, what="the partition's backlog to drain")
    figure(ID, "drain_s", clock.elapsed(), "s", 300.0 if full() else 60.0)

    async def age_back() -> bool:
        value = await age()
        return value is not None and value < 5.0

    await wait_until(age_back, timeout=60, what="the backlog age to fall back once drained")
    figure(ID, "signal_cleared_s", clock.elapsed(), "s", 330.0 if full() else 90.0)

    # Stop the demo source (a graceful stop), then let a plain agent forward what is left: the
    # journal is final, and all of it must be at the hub once.
    await asyncio.to_thread(agent.stop, 30)
    await topology.spawn_edge(config, name="edge-final")
    await all_arrive_once(topology, config, ID, Stopwatch(), 60.0)
