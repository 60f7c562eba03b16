"""CH-06: the edge's disk full — its journal at its byte cap during a WAN cut, filled with a mix of
LOW ticks and NORMAL, HIGH and CRITICAL alarms until it refuses alarms (edge/journal_pressure.py).
LOW and NORMAL rows make way first (nothing is refused while any is left); every CRITICAL/HIGH alarm the journal took reaches the hub once
the link returns, and the refusals arrive as the SYSTEM alarm `edge.journal.refused`. The journal
and forwarder run in this process (alarms cannot be injected into an agent process); the hub, its
NATS, the WAN proxy and the edge's leaf server are real processes."""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Awaitable, Callable

import pytest

from edge.journal import JournalFull
from edge.links.satel.event_log import LOG_RECORD_KIND
from edge.readiness import journal_check
from firmware_bridges.satel.emulator import SatelEmulator
from shared.bodies import DemoTick
from shared.bodies.satel import ZoneEvent
from shared.envelope import Priority, new_envelope
from support.chaos import Stopwatch, figure, full, metrics_text, sample, spawn_chaos_hub
from support.small_disk import fill_to, small_disk
from support.topology import EdgeHarness, Topology
from support.waiting import wait_until

pytestmark = pytest.mark.chaos
ID = "CH-06"
PANEL = "panel-1"
#: The journal's free-space floor on the box's small disk: well above what SQLite's WAL may take
#: between checkpoints (~4 MiB), as the default (64 MiB) is.
FLOOR = 16 * 1024 * 1024
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
        assert journal_check(journal).startswith("refusing appends: full of unforwarded CRITICAL/HIGH rows")
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


def _journal_count(journal_path: str, kind: str, priority: str) -> int:
    """Rows of `kind` at `priority` in a running agent's journal (read-only: WAL lets it write on)."""
    with sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM journal WHERE kind = ? AND priority = ?", (kind, priority)).fetchone()[0]


async def test_ch06_the_boxs_disk_fills_during_a_wan_cut_and_the_agent_keeps_every_tamper(
        topology: Topology, tmp_path: Path) -> None:
    """The box's own disk (a 48 MiB tmpfs) fills up — another program's log takes all but three
    quarters of the journal's free-space floor — while the WAN is cut, under a real agent whose
    demo source journals LOW ticks and whose Satel link watches an emulated panel. Deleting rows
    cannot give that space back, so LOW ticks are evicted or refused; every tamper the panel logs
    (HIGH) goes into the floor's reserve and reaches the hub once after the cut."""
    cycles = 40 if full() else 12
    with small_disk(tmp_path / "box", 48) as disk:
        config = topology.edge_config(data_dir=str(disk / "edge"))
        await topology.enrol(config)
        await spawn_chaos_hub(topology)
        assert topology.proxy is not None and topology.edge_nats is not None
        async with SatelEmulator(port=0) as emulator:
            panels = json.dumps([{"id": PANEL, "host": "127.0.0.1", "port": emulator.port, "reconnect_min_s": 0.05,
                                  "reconnect_max_s": 0.5, "request_timeout_s": 1.0, "poll_interval_s": 0.1}])
            await topology.spawn_edge(config, VIGIL_EDGE_SATEL_PANELS=panels, VIGIL_EDGE_DEMO_ENABLED="true",
                                      VIGIL_EDGE_DEMO_INTERVAL_S="0.01", VIGIL_EDGE_JOURNAL_MIN_FREE_BYTES=str(FLOOR),
                                      VIGIL_EDGE_JOURNAL_DISK_CHECK_S="0.2")
            metrics = lambda: metrics_text(config.http_port)  # noqa: E731

            async def panel_linked() -> bool:
                return sample(await metrics(), "vigil_satel_connection_status", panel=PANEL) == 1

            await wait_until(panel_linked, timeout=60, what="the agent's link to the panel")
            await topology.wait_events(1, timeout=60, edge_id=config.edge_id)
            topology.proxy.cut()
            await wait_until(lambda: not topology.edge_nats.leaf_connected(), timeout=30, what="the leaf link to drop")
            ballast = disk / "ballast.log"
            fill_to(ballast, FLOOR * 3 // 4)

            journal = str(config.journal_path)
            for n in range(cycles):
                zone = n % 8 + 1
                emulator.tamper_zone(zone)
                await wait_until(lambda: _journal_count(journal, LOG_RECORD_KIND, "HIGH") >= n + 1, timeout=30,
                                 what=f"tamper {n + 1} journaled")
                emulator.restore_tamper(zone)

            async def floor_bit() -> bool:
                text = await metrics()
                shed = sum(sample(text, name, **labels) or 0 for name, labels in (
                    ("vigil_journal_evicted_total", {"kind": "demo.tick", "priority": "LOW", "state": "unforwarded"}),
                    ("vigil_journal_refused_total", {})))
                return (sample(text, "vigil_journal_fs_free_bytes") or FLOOR) < FLOOR and shed > 0

            # The floor bit: the journal saw the disk under it and shed LOW ticks.
            await wait_until(floor_bit, timeout=60, what="LOW ticks shed for the floor")
            assert os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize >= FLOOR // 2 - 256 * 1024

            clock = Stopwatch()
            topology.proxy.restore()

            async def tampers_at_hub() -> int:
                # One event per tamper: the panel's log record of it shares the live
                # observation's occurrence key, and the hub keeps one event per key.
                return await topology.pool.fetchval(
                    "SELECT count(*) FROM events WHERE edge_id = $1 AND kind = 'satel.zone.tamper'", config.edge_id)

            await wait_until(lambda: _at_least(tampers_at_hub, cycles), timeout=120, what="every tamper at the hub")
            figure(ID, "tampers_arrived_s", clock.elapsed(), "s", 60.0)
            await wait_until(lambda: _journal_unforwarded(journal, "alarm") == 0, timeout=60,
                             what="the alarm lane forwarded")
            assert await tampers_at_hub() == cycles, "a tamper arrived twice"
            ballast.unlink()


def _journal_unforwarded(journal_path: str, lane: str) -> int:
    with sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM journal WHERE lane = ? AND forwarded_at IS NULL", (lane,)).fetchone()[0]


async def _at_least(count: Callable[[], Awaitable[int]], n: int) -> bool:
    return await count() >= n
