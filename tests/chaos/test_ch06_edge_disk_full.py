"""CH-06: the edge's disk full — its journal at its byte cap during a WAN cut, filled with a mix of
LOW ticks and NORMAL, HIGH and CRITICAL alarms until it refuses alarms (edge/journal_pressure.py).
LOW and NORMAL rows make way first (nothing is refused while any is left); every CRITICAL/HIGH alarm the journal took reaches the hub once
the link returns, and the refusals arrive as the SYSTEM alarm `edge.journal.refused`. The journal
and forwarder run in this process (alarms cannot be injected into an agent process); the hub, its
NATS, the WAN proxy and the edge's leaf server are real processes."""
from __future__ import annotations

import sqlite3

import pytest

from edge.journal import JournalFull
from shared.bodies import DemoTick
from shared.bodies.satel import ZoneEvent
from shared.envelope import Priority, new_envelope
from support.chaos import Stopwatch, figure, full, spawn_chaos_hub
from support.topology import EdgeHarness, Topology
from support.waiting import wait_until

pytestmark = pytest.mark.chaos
ID = "CH-06"
#: Per round: LOW ticks and NORMAL events that may be evicted, then the alarms that must survive.
ROUND = [Priority.LOW] * 6 + [Priority.NORMAL] * 2 + [Priority.HIGH, Priority.CRITICAL]


def _evictable_left(journal_path: str) -> int:
    """Rows the journal could still evict for an alarm: forwarded ones, and unforwarded LOW/NORMAL."""
    with sqlite3.connect(journal_path) as conn:
        return conn.execute("SELECT count(*) FROM journal WHERE forwarded_at IS NOT NULL "
                            "OR priority IN ('LOW', 'NORMAL')").fetchone()[0]


async def test_ch06_edge_journal_full_keeps_every_critical_and_high_alarm(topology: Topology) -> None:
    cap = 1024 * 1024 if full() else 64 * 1024  # journal.max_bytes' floor is 64 KiB
    config = topology.edge_config(journal={"max_bytes": cap})
    signer = await topology.enrol(config)
    await spawn_chaos_hub(topology)
    site = await EdgeHarness(topology, config, signer, ack_timeout_s=1.0).start()
    journal = site.journal
    assert journal is not None and topology.proxy is not None and topology.edge_nats is not None
    try:
        await site.append(1)
        await topology.wait_events(1, timeout=60, edge_id=config.edge_id)
        topology.proxy.cut()
        await wait_until(lambda: not topology.edge_nats.leaf_connected(), timeout=30, what="the leaf link to drop")

        kept: list[str] = []  # ids of the CRITICAL/HIGH alarms the journal took
        refused = 0
        n = 0
        while refused < 2:
            for priority in ROUND:
                n += 1
                if priority in (Priority.LOW, Priority.NORMAL):
                    env = new_envelope("demo.tick", "demo", priority, DemoTick(n))
                else:
                    env = new_envelope("satel.zone.alarm", "panel-1", priority, ZoneEvent(zone=n % 64 + 1))
                try:
                    await journal.append(env)
                except JournalFull:
                    # LOW and NORMAL rows are evicted to make room until the cap holds only
                    # unforwarded alarms: only then may anything be refused.
                    if not refused:
                        assert _evictable_left(str(config.journal_path)) == 0, f"{priority.name} refused too early"
                    refused += 1
                    continue
                if priority in (Priority.HIGH, Priority.CRITICAL):
                    kept.append(str(env.id))
        status = journal.pressure_status()
        assert status["state"] == "refusing", status
        figure(ID, "alarms_kept_in_cap", len(kept), "alarms", 1, at_least=True)
        figure(ID, "appends_refused", refused, "appends", 1, at_least=True)

        clock = Stopwatch()
        topology.proxy.restore()

        async def alarms_in() -> bool:
            return await topology.pool.fetchval("SELECT count(*) FROM events WHERE kind = 'satel.zone.alarm'") >= len(kept)

        await wait_until(alarms_in, timeout=120, what="every kept alarm at the hub")
        figure(ID, "alarms_arrived_s", clock.elapsed(), "s", 60.0)

        async def system_alarm() -> bool:
            return bool(await topology.pool.fetchval(
                "SELECT count(*) FROM bundle_alarms WHERE alarm_type = 'SYSTEM' AND group_key LIKE $1",
                f"%{config.edge_id}/journal"))

        await wait_until(system_alarm, timeout=120, what="the SYSTEM alarm for the refusals")
        figure(ID, "system_alarm_s", clock.elapsed(), "s", 90.0)

        rows = await topology.pool.fetch("SELECT id::text AS id, count(*) OVER (PARTITION BY id) AS n, priority "
                                         "FROM events WHERE kind = 'satel.zone.alarm'")
        lost = set(kept) - {r["id"] for r in rows}
        figure(ID, "critical_high_lost", len(lost), "alarms", 0)
        assert all(r["n"] == 1 for r in rows) and len(rows) == len(kept), "an alarm arrived twice"
        report = await topology.pool.fetchrow("SELECT priority, count(*) OVER () AS n FROM events "
                                              "WHERE kind = 'edge.journal.refused'")
        assert report is not None and report["priority"] == "HIGH" and report["n"] == 1
    finally:
        await site.close()
