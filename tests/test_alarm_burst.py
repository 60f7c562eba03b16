"""A burst of 500 alarms in 10 s from 50 panels on 5 edges, through the whole path (journal →
leaf → JetStream → verify → lifecycle), ends with the right bundles, no duplicate, nothing lost."""
from __future__ import annotations

import asyncio
import time

import msgspec

from shared.envelope import Priority, new_envelope
from support.topology import EdgeHarness, Topology
from support.waiting import wait_until

EDGES = 5
PANELS_PER_EDGE = 10
ALARMS = 500
SECONDS = 10.0


class ZoneBody(msgspec.Struct, frozen=True):
    zone: int


async def test_burst_of_500_alarms_from_50_panels(topology: Topology) -> None:
    harnesses: list[EdgeHarness] = []
    expected: dict[tuple[int, str], int] = {}
    objects: dict[tuple[str, str], int] = {}
    for e in range(EDGES):
        config = topology.edge_config(f"site-{e}")
        signer = await topology.enrol(config)
        for p in range(PANELS_PER_EDGE):
            # Two panels per object: bundles gather both panels' alarms.
            name = f"object-{e}-{p // 2}"
            obj = await topology.pool.fetchval("SELECT id FROM objects WHERE name = $1", name) or \
                await topology.pool.fetchval("INSERT INTO objects (name) VALUES ($1) RETURNING id", name)
            await topology.pool.execute("INSERT INTO panels (object_id, edge_id, source) VALUES ($1, $2, $3)",
                                        obj, config.edge_id, f"panel-{p}")
            objects[(config.edge_id, f"panel-{p}")] = obj
        harnesses.append(await EdgeHarness(topology, config, signer).start())
    await topology.run_hub(topology.hub_config())

    async def produce(h: EdgeHarness, index: int) -> None:
        per_edge = ALARMS // EDGES
        started = time.monotonic()
        for i in range(per_edge):
            # A steady schedule: alarm i is due at i × (10 s / 100).
            delay = started + i * SECONDS / per_edge - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            panel = f"panel-{i % PANELS_PER_EDGE}"
            tamper = i % 5 == 0
            kind = "satel.zone.tamper" if tamper else "satel.zone.alarm"
            env = new_envelope(kind, panel, Priority.HIGH if tamper else Priority.CRITICAL, ZoneBody(zone=i + 1))
            assert h.journal is not None
            await h.journal.append(env)
            key = (objects[(h.config.edge_id, panel)], "TAMPER" if tamper else "BURGLARY")
            expected[key] = expected.get(key, 0) + 1

    try:
        await asyncio.gather(*(produce(h, i) for i, h in enumerate(harnesses)))
        await topology.wait_events(ALARMS, timeout=60)

        async def all_bundled() -> bool:
            return await topology.pool.fetchval("SELECT count(*) FROM bundle_events") >= ALARMS

        await wait_until(all_bundled, timeout=30, what="every alarm linked to a bundle")
        assert await topology.event_count() == ALARMS
        rows = await topology.pool.fetch("SELECT object_id, alarm_type, event_count, status FROM bundle_alarms")
        got = {(r["object_id"], r["alarm_type"]): r["event_count"] for r in rows}
        assert got == expected
        assert len(rows) == len(expected)  # one bundle per object and type: nothing doubled
        assert {r["status"] for r in rows} == {"NEW"}
        dup = await topology.pool.fetchval("SELECT count(*) - count(DISTINCT event_id) FROM bundle_events")
        assert dup == 0
        new_rows = await topology.pool.fetchval("SELECT count(*) FROM outbox WHERE topic = 'alarm.new'")
        assert new_rows == len(expected)
    finally:
        for h in harnesses:
            await h.close()
