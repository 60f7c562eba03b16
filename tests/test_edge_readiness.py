"""The agent's /readyz (edge/readiness.py): ready while the journal takes appends and the box's
NATS server and JetStream answer, whether or not the hub is reachable; not ready, saying why,
while the box's server is away or a task of the agent has ended."""
from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from edge.readiness import task_check
from support.topology import Topology
from support.waiting import wait_until


async def _readyz(port: int) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http:  # no login: /readyz is open, like /healthz
        async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
            return resp.status, await resp.json()


async def test_ready_without_the_hub_not_ready_without_the_boxs_server(topology: Topology) -> None:
    config = topology.edge_config()
    await topology.enrol(config)
    await topology.spawn_edge(config)  # no hub process: the WAN-side is down, the box is not

    async def ready() -> dict[str, Any] | None:
        status, body = await _readyz(config.http_port)
        return body if status == 200 else None

    body = await wait_until(ready, timeout=30, what="the agent ready")
    assert body == {"status": "ready", "checks": {"journal": "ok", "nats": "ok", "jetstream": "ok"}}

    site = topology.site(config.edge_id)
    site.server.stop()

    async def not_ready() -> dict[str, Any] | None:
        status, body = await _readyz(config.http_port)
        return body if status == 503 else None

    body = await wait_until(not_ready, timeout=30, what="/readyz 503 without the box's server")
    assert body["status"] == "not_ready" and body["failing"]["nats"].startswith("not connected"), body
    assert body["checks"]["journal"] == "ok"
    await site.server.start()
    await wait_until(ready, timeout=60, what="the agent ready again once its server is back")


async def test_a_task_that_ended_is_named_with_how() -> None:
    async def crash() -> None:
        raise RuntimeError("link exploded")

    async def forever() -> None:
        await asyncio.Event().wait()

    crashed = asyncio.create_task(crash(), name="satel-panel-1")
    running = asyncio.create_task(forever(), name="status-report")
    await asyncio.wait({crashed}, timeout=5)
    try:
        assert task_check([crashed, running]) == {"satel-panel-1": "RuntimeError: link exploded"}
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
