"""An edge journal → leaf node → hub JetStream → PostgreSQL, with the WAN cut and the hub's NATS
restarted under it (issue 2, tests 1, 2 and 5), and a look-alike stream on the leaf whose PubAcks
must not count."""
from __future__ import annotations

import logging
import time
from typing import AsyncIterator

import pytest
from nats.js.api import StreamConfig
from prometheus_client import REGISTRY

from shared import subjects
from shared.envelope import Priority
from support.topology import EdgeHarness, Topology
from support.waiting import wait_until


def _foreign_acks(lane: str) -> float:
    return REGISTRY.get_sample_value("vigil_forwarder_foreign_acks_total", {"lane": lane}) or 0.0


async def _seqs(topology: Topology, edge_id: str = "site-1") -> list[int]:
    rows = await topology.pool.fetch("SELECT seq FROM events WHERE edge_id = $1 ORDER BY seq", edge_id)
    return [r["seq"] for r in rows]


@pytest.fixture
async def site(topology: Topology) -> AsyncIterator[EdgeHarness]:
    """An enrolled edge forwarding in this process, and a hub consuming in this process."""
    config = topology.edge_config()
    signer = await topology.enrol(config)
    await topology.run_hub(topology.hub_config())
    harness = await EdgeHarness(topology, config, signer).start()
    try:
        yield harness
    finally:
        await harness.close()


async def test_an_appended_event_reaches_postgres_within_a_second(topology: Topology, site: EdgeHarness) -> None:
    await site.append(1)
    await topology.wait_events(1, timeout=30)  # the first waits for the hub to take its partitions
    worst = 0.0
    for i in range(5):
        started = time.monotonic()
        await site.append(1)
        await topology.wait_events(2 + i, timeout=5)
        worst = max(worst, time.monotonic() - started)
    assert worst < 1.0, f"slowest append → PostgreSQL took {worst:.3f} s"


async def test_wan_cut_1000_events_arrive_once_in_order_after_restore(topology: Topology, site: EdgeHarness) -> None:
    await site.append(1)
    await topology.wait_events(1, timeout=30)
    assert topology.proxy is not None and topology.edge_nats is not None

    topology.proxy.cut()
    await wait_until(lambda: not topology.edge_nats.leaf_connected(), what="the leaf link to drop")
    await site.append(1000)
    assert site.journal is not None
    # Nothing can leave the site while the WAN is down, and nothing is lost either.
    assert site.journal.unforwarded["evt"] == 1000
    assert await topology.event_count() == 1

    topology.proxy.restore()
    await topology.wait_events(1001, timeout=60)
    seqs = await _seqs(topology)
    assert seqs == list(range(1, 1002))
    received = await topology.pool.fetch("SELECT seq FROM events ORDER BY received_at, seq")
    # Within the lane, rows were committed in seq order.
    assert [r["seq"] for r in received] == sorted(r["seq"] for r in received)
    await wait_until(lambda: site.journal.unforwarded["evt"] == 0, what="rows marked forwarded")


async def test_alarm_lane_overtakes_a_backlog(topology: Topology, site: EdgeHarness) -> None:
    await site.append(1)
    await topology.wait_events(1, timeout=30)
    assert topology.proxy is not None
    topology.proxy.cut()
    await site.append(20000)
    topology.proxy.restore()
    [alarm_seq] = await site.append(1, Priority.CRITICAL)

    async def alarm_in() -> bool:
        return bool(await topology.pool.fetchval("SELECT count(*) FROM events WHERE seq = $1", alarm_seq))

    await wait_until(alarm_in, timeout=30, what="the CRITICAL event")
    backlog_done = await topology.event_count()
    assert backlog_done < 20002, "the alarm should not have waited for the whole backlog"
    await topology.wait_events(20002, timeout=120)
    lane = await topology.pool.fetchval("SELECT lane FROM events WHERE seq = $1", alarm_seq)
    assert lane == "alarm"


async def test_a_pub_ack_on_one_lane_ends_the_other_lanes_back_off(topology: Topology) -> None:
    # Back-off so long that the alarm could only arrive in time by being woken.
    config = topology.edge_config()
    signer = await topology.enrol(config)
    await topology.run_hub(topology.hub_config())
    site = await EdgeHarness(topology, config, signer, backoff_base_s=600.0, backoff_cap_s=600.0).start()
    try:
        await site.append(1)
        await topology.wait_events(1, timeout=30)
        assert topology.proxy is not None and topology.edge_nats is not None and site.forwarder is not None
        topology.proxy.cut()
        await wait_until(lambda: not topology.edge_nats.leaf_connected(), what="the leaf link to drop")
        [alarm_seq] = await site.append(1, Priority.CRITICAL)
        await wait_until(lambda: site.forwarder.state["alarm"] == "backoff", what="the alarm lane to back off")

        topology.proxy.restore()
        assert topology.edge_nats is not None

        def hub_reachable() -> bool:
            # Interest both ways over the new link: the hub's stream at the edge, the edge's reply
            # inbox at the hub (the edge may not ask the hub's JetStream API itself).
            inbox = subjects.edge_inbox_prefix(config.edge_id) + "."
            return ("vigil.edge.*.evt" in topology.edge_nats.leaf_subscriptions()
                    and any(s.startswith(inbox) for s in topology.hub_nats.leaf_subscriptions()))

        await wait_until(hub_reachable, timeout=30, what="the hub's stream and the edge's inbox over the leaf node")
        await site.append(1)  # the event lane was idle, so it publishes at once and gets its PubAck

        async def alarm_in() -> bool:
            return bool(await topology.pool.fetchval("SELECT count(*) FROM events WHERE seq = $1", alarm_seq))

        await wait_until(alarm_in, timeout=30, what="the CRITICAL event, woken from a 600 s back-off")
    finally:
        await site.close()


async def test_hub_nats_restart_while_forwarding_loses_nothing(topology: Topology, site: EdgeHarness) -> None:
    await site.append(1)
    await topology.wait_events(1, timeout=30)
    await site.append(2000)
    # Restart the hub's NATS while the backlog is in flight.
    topology.hub_nats.stop()
    await site.append(500)
    await topology.hub_nats.start()
    assert topology.edge_nats is not None
    await topology.edge_nats.wait_leaf(30)
    await site.append(500)
    await topology.wait_events(3001, timeout=120)
    assert await _seqs(topology) == list(range(1, 3002))


async def test_edge_agent_demo_source_reaches_the_hub(topology: Topology) -> None:
    config = topology.edge_config(demo={"enabled": True, "interval_s": 0.05})
    await topology.enrol(config)
    await topology.run_hub(topology.hub_config())
    topology.run_edge(config)
    await topology.wait_events(5, timeout=30)
    kinds = {r["kind"] for r in await topology.pool.fetch("SELECT kind FROM events")}
    assert kinds == {"demo.tick"}


async def test_a_pub_ack_from_a_look_alike_stream_marks_nothing(
    topology: Topology, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream on the edge's own leaf server captures the edge's subjects and acknowledges its
    segments, first under another name, then under the hub's stream name in the edge's domain:
    no row may count as forwarded. Once it is gone, the hub's stream takes them all."""
    assert topology.edge_nats is not None
    config = topology.edge_config()
    signer = await topology.enrol(config)
    site = await EdgeHarness(topology, config, signer, backoff_base_s=0.05, backoff_cap_s=0.2).start()
    local = await topology.connect_site_admin()
    try:
        assert site.journal is not None and site.forwarder is not None
        local_js = local.jetstream(domain=topology.edge_nats.config.domain)
        captured = [subjects.edge_events(config.edge_id), subjects.edge_alarms(config.edge_id)]
        before = {lane: _foreign_acks(lane) for lane in subjects.LANES}
        caplog.set_level(logging.ERROR, logger="vigil.edge.forwarder")

        for round_, name in enumerate(("CAPTURE", subjects.EVENTS_STREAM), start=1):
            await local_js.add_stream(StreamConfig(name=name, subjects=captured))
            await site.append(3)
            await site.append(1, Priority.CRITICAL)

            def refused_retries() -> bool:
                return all(
                    _foreign_acks(lane) >= before[lane] + 3 * round_
                    and f"stream {name!r} in domain 'edge-test'" in site.forwarder.last_error.get(lane, "")
                    for lane in subjects.LANES)

            try:
                await wait_until(refused_retries, timeout=30, what=f"the look-alike stream {name} to acknowledge retries")
            except AssertionError as exc:
                seen = {lane: (_foreign_acks(lane) - before[lane], site.forwarder.state[lane],
                               site.forwarder.last_error.get(lane)) for lane in subjects.LANES}
                raise AssertionError(f"{exc}; per lane (foreign acks, state, last error): {seen}") from None
            assert (await local_js.stream_info(name)).state.messages >= 2  # it did take both lanes' segments
            assert site.journal.unforwarded == {"evt": 3 * round_, "alarm": round_}
            await local_js.delete_stream(name)

        errors = [r for r in caplog.records if r.name == "vigil.edge.forwarder" and r.levelno == logging.ERROR]
        # One line per lane for the whole failure streak, however many segments were refused.
        assert sorted(r.lane for r in errors) == ["alarm", "evt"]  # type: ignore[attr-defined]
        assert all("'CAPTURE'" in r.getMessage() and r.edge == config.edge_id for r in errors)  # type: ignore[attr-defined]

        await topology.run_hub(topology.hub_config())
        await topology.wait_events(8, timeout=60)
        assert await _seqs(topology) == list(range(1, 9))
        await wait_until(lambda: site.journal.unforwarded == {"evt": 0, "alarm": 0}, what="rows marked forwarded")
    finally:
        await local.close()
        await site.close()
