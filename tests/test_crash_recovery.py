"""SIGKILL the edge agent or the hub mid-flow: after a restart nothing is lost and nothing is
doubled (issue 2, tests 3 and 4)."""
from __future__ import annotations

import re
import sqlite3
import urllib.request

from edge.journal import Journal
from support.topology import EdgeHarness, Topology
from support.waiting import wait_until


async def _seqs(topology: Topology) -> list[int]:
    return [r["seq"] for r in await topology.pool.fetch("SELECT seq FROM events ORDER BY seq")]


def _journal_last_seq(path: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT max(seq) FROM journal").fetchone()[0]


async def test_sigkill_edge_agent_while_forwarding(topology: Topology) -> None:
    config = topology.edge_config(forwarder={"segment_max_events": 50})
    signer = await topology.enrol(config)
    harness = EdgeHarness(topology, config, signer)
    harness.journal = await Journal.open(config.journal_path, max_bytes=config.journal.max_bytes, retention_s=3600)
    await harness.append(3000)  # a backlog before the agent starts
    await harness.journal.close()
    await topology.run_hub(topology.hub_config())

    # The agent forwards the backlog and keeps appending demo events of its own.
    demo = {"VIGIL_EDGE_DEMO_ENABLED": "true", "VIGIL_EDGE_DEMO_INTERVAL_S": "0.002"}
    agent = await topology.spawn_edge(config, **demo)
    await topology.wait_events(200, timeout=60)
    agent.kill()
    killed_at = await topology.event_count()
    last_at_kill = _journal_last_seq(str(config.journal_path))
    assert killed_at < last_at_kill, "the kill should land while rows are still unforwarded"

    # Restarted without the demo source, the journal's content is final: all of it must arrive.
    await topology.spawn_edge(config, name="edge-restarted")
    await topology.wait_events(last_at_kill, timeout=120)
    assert await _seqs(topology) == list(range(1, last_at_kill + 1))


async def test_sigkill_hub_while_ingesting(topology: Topology) -> None:
    config = topology.edge_config()
    signer = await topology.enrol(config)
    harness = await EdgeHarness(topology, config, signer).start()
    try:
        await harness.append(20000)
        hub = await topology.spawn_hub(topology.hub_config(ingest={"batch": 64}))
        await topology.wait_events(1, timeout=60)
        hub.kill()
        at_kill = await topology.event_count()
        assert at_kill < 20000, "the kill should land while the hub is still ingesting"
        await harness.append(500)

        await topology.spawn_hub(topology.hub_config(), name="hub-restarted")
        await topology.wait_events(20500, timeout=180)
        assert await _seqs(topology) == list(range(1, 20501))
        await wait_until(lambda: harness.journal.unforwarded["evt"] == 0, what="every row marked forwarded")
    finally:
        await harness.close()


def _partitions_held(port: int) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    match = re.search(r"^vigil_ingest_partitions_held (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


async def test_two_hubs_share_partitions_and_one_takes_over_when_the_other_dies(topology: Topology) -> None:
    config = topology.edge_config()
    signer = await topology.enrol(config)
    a_cfg, b_cfg = topology.hub_config(), topology.hub_config()
    first = await topology.spawn_hub(a_cfg, name="hub-a")
    second = await topology.spawn_hub(b_cfg, name="hub-b")
    # Fair share: 16 consumers, 8 each.
    await wait_until(lambda: _partitions_held(a_cfg.http_port) == 8 and _partitions_held(b_cfg.http_port) == 8,
                     timeout=60, what="both hubs holding 8 partitions")
    harness = await EdgeHarness(topology, config, signer).start()
    try:
        await harness.append(100)
        await topology.wait_events(100, timeout=60)
        first.kill()
        await wait_until(lambda: _partitions_held(b_cfg.http_port) == 16, timeout=60, what="hub-b taking all 16")
        await harness.append(100)
        await topology.wait_events(200, timeout=60)
        assert await _seqs(topology) == list(range(1, 201))
        assert second.running()
    finally:
        await harness.close()
