"""End to end: an emulated panel → the edge agent's Satel link → journal → leaf NATS → hub →
PostgreSQL, and the agent (a real `python -m edge run`) stopping quickly on SIGTERM."""
from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from typing import Any

import pytest

from edge.config import EdgeConfig
from firmware_bridges.satel.emulator import SatelEmulator
from support.edge_login import get_json
from support.topology import Topology
from support.waiting import wait_until

pytestmark = pytest.mark.slow

PANEL = "panel-1"


def _panel(port: int, **settings: Any) -> dict[str, Any]:
    return {"id": PANEL, "host": "127.0.0.1", "port": port, "reconnect_min_s": 0.05,
            "reconnect_max_s": 0.5, "request_timeout_s": 1.0, **settings}


async def test_a_zone_violation_reaches_the_hubs_events_table(topology: Topology) -> None:
    async with SatelEmulator(port=0, key="Integra1") as emulator:
        config = topology.edge_config(satel={"panels": [_panel(emulator.port, integration_key="Integra1")]})
        await topology.enrol(config)
        await topology.run_hub(topology.hub_config())
        topology.run_edge(config)

        async def kinds() -> list[str]:
            rows = await topology.pool.fetch("SELECT kind FROM events WHERE source = $1 ORDER BY seq", PANEL)
            return [row["kind"] for row in rows]

        await wait_until(lambda: _has(kinds, "satel.snapshot"), timeout=60, what="the snapshot at the hub")
        emulator.violate_zone(3)
        await wait_until(lambda: _has(kinds, "satel.zone.violation"), timeout=30, what="the violation at the hub")
        row = await topology.pool.fetchrow(
            "SELECT edge_id, priority, body, lane FROM events WHERE kind = 'satel.zone.violation'")
        body = json.loads(row["body"]) if isinstance(row["body"], str) else row["body"]
        assert (row["edge_id"], row["priority"], body["zone"]) == ("site-1", "LOW", 3)
        assert (await kinds())[:2] == ["edge.link.up", "satel.snapshot"]


async def _has(kinds: Any, kind: str) -> bool:
    return kind in await kinds()


def _link_state(config: EdgeConfig) -> str | None:
    try:
        links = get_json(config, "/api/v1/status")["links"]["satel"]
    except OSError:
        return None
    return links[0]["state"] if links else None


async def test_sigterm_stops_the_agent_well_under_30_s(topology: Topology) -> None:
    async with SatelEmulator(port=0) as emulator:
        config = topology.edge_config()
        await topology.enrol(config)
        panels = json.dumps([_panel(emulator.port)])
        proc = await topology.spawn_edge(config, VIGIL_EDGE_SATEL_PANELS=panels)
        await wait_until(lambda: _link_state(config) == "up", timeout=60, what="the agent's link up")
        assert proc.proc is not None
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # Wait in a thread: the emulator answering the agent's last request lives on this loop.
        code = await asyncio.to_thread(proc.proc.wait, 30)
        elapsed = time.monotonic() - started
        assert code == 0 and elapsed < 10, (code, elapsed, proc.log_tail())
    conn = sqlite3.connect(f"file:{config.journal_path}?mode=ro", uri=True)
    try:
        last = conn.execute("SELECT kind, envelope FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
    finally:
        conn.close()
    assert last[0] == "edge.link.down" and json.loads(last[1])["body"]["reason"] == "edge stopping"
