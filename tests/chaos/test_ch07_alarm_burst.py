"""CH-07: a burst of alarms from many panels through one edge (full: 500 alarms in 10 s from 50
panel sources; reduced: 200 in 4 s from 20), each source a panel on an object of its own, into a
hub process. Every alarm is committed once and bundled per source (one BURGLARY bundle per object
holding all its alarms); the figure is the p99 journal→commit latency (the event's `ts`, stamped
when journaled, to its `received_at`, stamped by the committing transaction).
tests/test_alarm_burst.py covers the same burst across 5 edges for correctness; this scenario
adds the latency figure and a hub in its own process."""
from __future__ import annotations

import asyncio
import time

import pytest

from shared.bodies.satel import ZoneEvent
from shared.envelope import Priority, new_envelope
from support.chaos import Stopwatch, assert_all_once, figure, full, journal_seqs, spawn_chaos_hub
from support.topology import EdgeHarness, Topology
from support.waiting import wait_until

pytestmark = pytest.mark.chaos
ID = "CH-07"
SQL_P99 = ("SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - ts)) "
           "FROM events WHERE edge_id = $1")


async def test_ch07_alarm_burst_from_many_panels(topology: Topology) -> None:
    alarms, sources, seconds = (500, 50, 10.0) if full() else (200, 20, 4.0)
    config = topology.edge_config()
    signer = await topology.enrol(config)
    objects: dict[str, int] = {}
    for p in range(sources):
        objects[f"panel-{p}"] = await topology.pool.fetchval(
            "INSERT INTO objects (name) VALUES ($1) RETURNING id", f"burst object {p}")
        await topology.pool.execute("INSERT INTO panels (object_id, edge_id, source) VALUES ($1, $2, $3)",
                                    objects[f"panel-{p}"], config.edge_id, f"panel-{p}")
    await spawn_chaos_hub(topology)
    site = await EdgeHarness(topology, config, signer).start()
    assert site.journal is not None
    try:
        clock = Stopwatch()
        # The burst's own pace (the scenario, not a wait): alarm i is due at i × seconds / alarms.
        for i in range(alarms):
            due = clock.start + i * seconds / alarms
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            await site.journal.append(new_envelope("satel.zone.alarm", f"panel-{i % sources}", Priority.CRITICAL,
                                                   ZoneEvent(zone=i % 64 + 1)))
        figure(ID, "burst_s", clock.elapsed(), "s", seconds * 1.5)
        await topology.wait_events(alarms, timeout=120, edge_id=config.edge_id)
        figure(ID, "all_committed_s", clock.elapsed(), "s", seconds + 30.0)
        await assert_all_once(topology.pool, config.edge_id, journal_seqs(str(config.journal_path)))

        async def all_bundled() -> bool:
            return await topology.pool.fetchval("SELECT count(*) FROM bundle_events") >= alarms

        await wait_until(all_bundled, timeout=60, what="every alarm linked to a bundle")
        rows = await topology.pool.fetch("SELECT object_id, alarm_type, event_count FROM bundle_alarms")
        assert sorted((r["object_id"], r["alarm_type"], r["event_count"]) for r in rows) == sorted(
            (obj, "BURGLARY", alarms // sources) for obj in objects.values())
        assert await topology.pool.fetchval("SELECT count(*) - count(DISTINCT event_id) FROM bundle_events") == 0
        figure(ID, "p99_journal_to_commit_s", await topology.pool.fetchval(SQL_P99, config.edge_id), "s", 5.0)
    finally:
        await site.close()
