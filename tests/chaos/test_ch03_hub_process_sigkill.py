"""CH-03: two hub processes on the same PostgreSQL and NATS share the ingest partitions
(hub/ingest/partitions.py); the one consuming the edge's partition is SIGKILLed while it ingests.
The survivor keeps serving (/readyz 200), takes every partition, and everything arrives once.
Recovery = the kill → the survivor's first commit of the killed one's partition."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared import subjects
from support.chaos import Stopwatch, all_arrive_once, figure, full, metrics_text, readyz, sample, spawn_chaos_hub
from support.topology import EdgeHarness, Topology
from support.waiting import wait_until

pytestmark = pytest.mark.chaos
ID = "CH-03"


def holds(log_path: Path, unit: str) -> bool:
    """Whether the hub whose log this is holds the partition `unit` ("evt/3") now: its last
    acquired/released line for it (hub/ingest/partitions.py logs both)."""
    held = False
    for line in log_path.read_text().splitlines():
        try:
            msg = json.loads(line).get("msg", "")
        except ValueError:
            continue
        if msg == f"acquired ingest partition {unit}":
            held = True
        elif msg == f"released ingest partition {unit}":
            held = False
    return held


async def edge_partition(topology: Topology, edge_id: str, lane: str) -> int:
    """The partition the hub's stream mapped the edge's lane to (the last subject token)."""
    nc = await topology.connect_hub()
    try:
        info = await nc.jetstream().stream_info(subjects.EVENTS_STREAM, subjects_filter=f"vigil.edge.{edge_id}.{lane}.*")
    finally:
        await nc.close()
    [subject] = list(info.state.subjects or {})
    return int(subject.rsplit(".", 1)[1])


async def test_ch03_hub_process_sigkilled_the_other_takes_its_partitions(topology: Topology) -> None:
    backlog = 40000 if full() else 10000
    config = topology.edge_config()
    signer = await topology.enrol(config)
    hubs = [await spawn_chaos_hub(topology, name=name, ingest={"batch": 64}) for name in ("hub-a", "hub-b")]
    units = len(subjects.LANES) * subjects.INGEST_PARTITIONS

    async def held(hub_port: int) -> float | None:
        return sample(await metrics_text(hub_port), "vigil_ingest_partitions_held")

    async def fair() -> bool:
        return all([await held(h.config.http_port) == units / 2 for h in hubs])

    await wait_until(fair, timeout=60, what="both hubs holding half the partitions")
    site = await EdgeHarness(topology, config, signer).start()
    try:
        await site.append(1)
        await topology.wait_events(1, timeout=60, edge_id=config.edge_id)
        unit = f"evt/{await edge_partition(topology, config.edge_id, 'evt')}"
        [victim] = [h for h in hubs if holds(h.proc.log_path, unit)]
        [survivor] = [h for h in hubs if h is not victim]

        await site.append(backlog)
        await topology.wait_events(50, timeout=60, edge_id=config.edge_id)
        victim.proc.kill()
        clock = Stopwatch()
        at_kill = await topology.event_count(config.edge_id)
        figure(ID, "uncommitted_at_kill", backlog + 1 - at_kill, "rows", 1, at_least=True)

        async def survivor_commits() -> bool:
            return await topology.event_count(config.edge_id) > at_kill

        await wait_until(survivor_commits, timeout=60, what="the survivor's first commit of the edge's partition")
        figure(ID, "recovery_s", clock.elapsed(), "s", 30.0)
        assert holds(survivor.proc.log_path, unit), f"{unit} was committed by a hub that does not say it holds it"
        assert (await readyz(survivor.config.http_port))[0] == 200

        async def all_taken() -> bool:
            return await held(survivor.config.http_port) == units

        await wait_until(all_taken, timeout=60, what="the survivor holding every partition")
        figure(ID, "all_partitions_taken_s", clock.elapsed(), "s", 60.0)

        await site.append(500)
        await all_arrive_once(topology, config, ID, clock, 180.0)
        assert survivor.proc.running()
    finally:
        await site.close()
