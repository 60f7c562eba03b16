"""Disk pressure end to end (issue 16): a 12-hour WAN outage of telemetry and events, written with a
fake clock into a journal cap that holds 2 hours, then the cut restored: every alarm reaches the
real hub exactly once. And a journal full of alarms refuses loudly, and the hub gets the report of
it as a SYSTEM alarm once the link returns."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import AsyncIterator

import nats
import pytest

from edge.agent import local_nats_login
from edge.forwarder import Forwarder, ForwarderSettings
from edge.journal import Journal, JournalFull
from shared.bodies import DemoTick
from shared.bodies.robots import RobotTelemetry
from shared.bodies.satel import ZoneEvent
from shared.clock import FakeClock
from shared.envelope import Envelope, Priority, encode_envelope, new_envelope
from shared.robots import Pose, Telemetry
from support.topology import Topology
from support.waiting import wait_until


class _Edge:
    """An enrolled edge's journal (fake clock, given cap) and forwarder in this process."""

    def __init__(self, topology: Topology, clock: FakeClock) -> None:
        self.topology, self.clock = topology, clock
        self.config = topology.edge_config()
        self.journal: Journal | None = None
        self.nc: nats.NATS | None = None
        self.forwarder: Forwarder | None = None

    async def start(self, max_bytes: int) -> Journal:
        signer = await self.topology.enrol(self.config)
        self.journal = await Journal.open(self.config.journal_path, max_bytes=max_bytes, retention_s=3600,
                                          clock=self.clock)
        self.nc = await nats.connect(self.config.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                                     **local_nats_login(self.config))  # type: ignore[arg-type]
        self.forwarder = Forwarder(self.config.edge_id, self.journal, signer, self.nc,
                                   ForwarderSettings(ack_timeout_s=1.0))
        self.forwarder.start()
        return self.journal

    async def close(self) -> None:
        if self.forwarder:
            await self.forwarder.stop()
        if self.nc:
            await self.nc.close()
        if self.journal:
            await self.journal.close()


@pytest.fixture
async def edge(topology: Topology) -> AsyncIterator[_Edge]:
    # Today's midnight: the hub's event and telemetry partitions exist from today on.
    start = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    harness = _Edge(topology, FakeClock(start))
    await topology.run_hub(topology.hub_config())
    try:
        yield harness
    finally:
        await harness.close()


def _outage(clock: FakeClock, hours: int) -> list[list[Envelope]]:
    """One list of envelopes per simulated minute: a robot's telemetry every 2 s, a LOW event
    every 30 s, a NORMAL one every minute, and a CRITICAL zone alarm every 10 minutes."""
    minutes = []
    for minute in range(hours * 60):
        batch = []
        for second in range(0, 60, 2):
            body = RobotTelemetry(robot="RB-001", message_id=f"t{minute}-{second}", sent_at=clock.now(),
                                  telemetry=Telemetry(pose=Pose(x=minute / 10, y=second / 10), battery_pct=70.0,
                                                      speed_mps=0.5))
            batch.append(new_envelope("robot.telemetry", "RB-001", Priority.LOW, body, clock=clock))
            if second % 30 == 0:
                batch.append(new_envelope("demo.tick", "demo", Priority.LOW, DemoTick(minute * 2 + second // 30),
                                          clock=clock))
            clock.advance(2)
        batch.append(new_envelope("demo.tick", "demo", Priority.NORMAL, DemoTick(minute), clock=clock))
        if minute % 10 == 5:
            batch.append(new_envelope("satel.zone.alarm", "panel-1", Priority.CRITICAL, ZoneEvent(zone=minute % 64 + 1),
                                      clock=clock))
        minutes.append(batch)
    return minutes


async def test_twelve_hour_outage_into_a_two_hour_cap_every_alarm_reaches_the_hub_once(
        topology: Topology, edge: _Edge) -> None:
    outage = _outage(edge.clock, 12)
    # The cap: what 2 of the 12 hours take (the seq stamped in makes rows a few bytes longer).
    cap = sum(len(encode_envelope(env)) + 4 for batch in outage[:120] for env in batch)
    journal = await edge.start(max_bytes=cap)
    await journal.append(new_envelope("demo.tick", "demo", Priority.NORMAL, DemoTick(-1), clock=edge.clock))
    await topology.wait_events(1, timeout=60)
    assert topology.proxy is not None and topology.edge_nats is not None
    topology.proxy.cut()
    await wait_until(lambda: not topology.edge_nats.leaf_connected(), what="the leaf link to drop")

    alarm_ids = []
    for batch in outage:
        results = await asyncio.gather(*(journal.append(env) for env in batch), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        assert not failed, f"appends failed during the outage: {failed[:3]}"
        alarm_ids += [str(env.id) for env in batch if env.priority is Priority.CRITICAL]
    assert len(alarm_ids) == 72
    assert journal.total_bytes <= cap
    status = journal.pressure_status()
    assert status["state"] == "evicting" and status["refused_by_priority"] == {}
    evicted = status["evicted_by_kind_priority"]
    # The events of 12 hours fit in the cap once the samples make way: only telemetry went.
    assert list(evicted) == ["robot.telemetry"] and evicted["robot.telemetry"]["LOW"] > 0

    topology.proxy.restore()

    async def alarms_in() -> bool:
        return await topology.pool.fetchval("SELECT count(*) FROM events WHERE kind = 'satel.zone.alarm'") >= 72

    await wait_until(alarms_in, timeout=120, what="the 72 alarms at the hub")
    await wait_until(lambda: journal.unforwarded["evt"] == 0 and journal.unforwarded["alarm"] == 0, timeout=120,
                     what="the backlog forwarded")
    rows = await topology.pool.fetch("SELECT id::text, count(*) OVER (PARTITION BY id) AS n FROM events "
                                     "WHERE kind = 'satel.zone.alarm'")
    assert sorted(r["id"] for r in rows) == sorted(alarm_ids)
    assert all(r["n"] == 1 for r in rows)
    # Every other event arrives too; the evicted samples are gaps at the hub (docs/architecture.md
    # §6): it gets what the journal still held, once the hub committed what JetStream took.
    ticks = sum(1 for batch in outage for env in batch if env.kind == "demo.tick")
    samples = sum(len(b) for b in outage) - ticks - 72 - evicted["robot.telemetry"]["LOW"]

    async def committed() -> bool:
        counts = dict(await topology.pool.fetch("SELECT kind, count(*) FROM events GROUP BY kind"))
        return counts.get("demo.tick") == 1 + ticks and counts.get("robot.telemetry") == samples

    await wait_until(committed, timeout=120, what=f"{1 + ticks} ticks and {samples} samples at the hub")
    assert await topology.pool.fetchval("SELECT count(*) FROM events WHERE kind = 'satel.zone.alarm'") == 72


async def test_a_journal_full_of_alarms_refuses_loudly_and_the_hub_gets_a_system_alarm(
        topology: Topology, edge: _Edge) -> None:
    journal = await edge.start(max_bytes=64 * 1024)
    await journal.append(new_envelope("demo.tick", "demo", Priority.NORMAL, DemoTick(0), clock=edge.clock))
    await topology.wait_events(1, timeout=60)
    assert topology.proxy is not None and topology.edge_nats is not None
    topology.proxy.cut()
    await wait_until(lambda: not topology.edge_nats.leaf_connected(), what="the leaf link to drop")

    stored = 0
    with pytest.raises(JournalFull):
        while True:
            await journal.append(new_envelope("satel.zone.alarm", "panel-1", Priority.HIGH, ZoneEvent(zone=1),
                                              clock=edge.clock))
            stored += 1
    edge.clock.advance(60)
    with pytest.raises(JournalFull):
        await journal.append(new_envelope("satel.zone.alarm", "panel-1", Priority.CRITICAL, ZoneEvent(zone=2),
                                          clock=edge.clock))
    status = journal.pressure_status()
    assert status["state"] == "refusing" and status["refused_by_priority"] == {"HIGH": 1, "CRITICAL": 1}
    assert await topology.pool.fetchval("SELECT count(*) FROM events WHERE kind = 'edge.journal.refused'") == 0

    topology.proxy.restore()

    async def reported() -> bool:
        return await topology.pool.fetchval("SELECT count(*) FROM events WHERE kind = 'edge.journal.refused'") >= 1

    await wait_until(reported, timeout=120, what="the refusal report at the hub")
    await wait_until(lambda: journal.unforwarded["alarm"] == 0, timeout=120, what="the alarms forwarded")
    report = await topology.pool.fetchrow("SELECT priority, body FROM events WHERE kind = 'edge.journal.refused'")
    assert report["priority"] == "HIGH"
    assert await topology.pool.fetchval("SELECT count(*) FROM events WHERE kind = 'satel.zone.alarm'") == stored
    assert await topology.pool.fetchval("SELECT count(*) FROM events WHERE kind = 'edge.journal.refused'") == 1

    async def system_bundle() -> object:
        rows = await topology.pool.fetch("SELECT alarm_type, priority, group_key FROM bundle_alarms")
        return [tuple(r) for r in rows] if any(r["alarm_type"] == "SYSTEM" for r in rows) else False

    bundles = await wait_until(system_bundle, timeout=30, what="a SYSTEM bundle for the refusal")
    assert ("SYSTEM", "HIGH", "panel:site-1/journal") in bundles  # no object claims this edge here
    assert journal.pressure_status()["unreported_refusals"] == 0
