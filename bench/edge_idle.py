"""What an idle site costs: the edge agent watching one quiet panel, polled at 4 Hz.

Runs `python -m edge run` as its own process, configured only through VIGIL_EDGE_* variables like
a real box, with one emulated ETHM-1 panel (in this process, so its CPU is not the agent's) polled
every 250 ms, and a leaf nats-server linked to a hub nats-server that holds the events stream (so
forwarding works; no hub process or database is needed to measure the edge). Once the link is up
and the start-up events are forwarded, it samples the agent's CPU time and RSS over 60 s
(`--quick`: 2 s) and prints::

    BENCH edge_idle_cpu_pct=<CPU time / wall time, % of one core> % target=2 better=lower
    BENCH edge_idle_rss_mb=<resident set size, MiB> MB target=60 better=lower

with the ratio lines, and a line with the polls per second the agent really made.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from _rig import HOST, Rig, emit, run_main, wait_for
from edge.local_auth import TokenFileError, read_cli_token, token_path
from firmware_bridges.satel.emulator import SatelEmulator
from hub.ingest.consumer import ensure_streams
from shared.process import ManagedProcess, free_port

EDGE = "bench-idle"
PANEL = "panel-1"
POLL_S = 0.25
CPU_TARGET_PCT = 2.0
RSS_TARGET_MB = 60.0
SETTLE_S = 2.0  # after start-up work (snapshot, forwarding, first imports' garbage) has died down


def _status(port: int, data_dir: Path) -> dict[str, Any] | None:
    """The agent's status, asked as the on-box tools do (its token file; none before it starts)."""
    try:
        token = read_cli_token(token_path(data_dir))
        request = urllib.request.Request(f"http://{HOST}:{port}/api/v1/status", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=2) as response:
            return json.loads(response.read())
    except (OSError, TokenFileError):
        return None


async def main(quick: bool) -> None:
    duration = 2.0 if quick else 60.0
    async with Rig("edge_idle") as rig:
        hub_nats = await rig.start_hub_nats()
        await ensure_streams(await rig.connect(hub_nats.url, "bench-streams"))
        edge_nats = await rig.start_edge_nats(EDGE)
        emulator = SatelEmulator(port=0)
        await emulator.start()
        rig.defer(emulator.stop)

        http_port = free_port()
        panels = [{"id": PANEL, "host": HOST, "port": emulator.port, "poll_interval_s": POLL_S}]
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env.update({
            "VIGIL_EDGE_EDGE_ID": EDGE, "VIGIL_EDGE_DATA_DIR": str(rig.root / "edge"),
            "VIGIL_EDGE_NATS_URL": edge_nats.url, "VIGIL_EDGE_HTTP_HOST": HOST,
            "VIGIL_EDGE_HTTP_PORT": str(http_port), "VIGIL_EDGE_LOG_LEVEL": "WARNING",
            "VIGIL_EDGE_SATEL_PANELS": json.dumps(panels), **rig.edge_env(EDGE),
        })
        # The box's key is made once at installation, never by the agent itself.
        await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "edge", "keygen"], env=env, check=True,
                                stdout=subprocess.DEVNULL)
        agent = ManagedProcess("edge", [sys.executable, "-m", "edge", "run"], log_path=rig.root / "run" / "edge.log", env=env)

        async def stop_agent() -> None:
            # In a thread: the agent's last request to the panel is answered on this loop.
            await asyncio.to_thread(agent.stop, 30)

        rig.defer(stop_agent)
        agent.start()

        async def settled() -> bool:
            status = await asyncio.to_thread(_status, http_port, rig.root / "edge")
            if status is None or status["links"]["satel"][0]["state"] != "up":
                return False
            return sum(status["journal"]["unforwarded"].values()) == 0

        await wait_for(settled, timeout=60, what="the link up and its start-up events forwarded", watch=[agent])
        await asyncio.sleep(SETTLE_S)

        assert agent.pid is not None
        process = psutil.Process(agent.pid)
        before = await asyncio.to_thread(_status, http_port, rig.root / "edge")
        cpu_before = process.cpu_times()
        started = time.monotonic()
        await asyncio.sleep(duration)
        cpu_after = process.cpu_times()
        wall = time.monotonic() - started
        after = await asyncio.to_thread(_status, http_port, rig.root / "edge")
        rss_mb = process.memory_info().rss / (1024 * 1024)
        agent.check_alive()
        assert before is not None and after is not None

        busy = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
        polls = after["links"]["satel"][0]["polls"] - before["links"]["satel"][0]["polls"]
        print(f"agent pid {agent.pid}: {busy:.3f} s CPU in {wall:.1f} s; {polls / wall:.2f} polls/s "
              f"(configured {1 / POLL_S:g}/s); {after['links']['satel'][0]['reconnects']} reconnects", flush=True)
        emit("edge_idle_cpu_pct", 100 * busy / wall, "%", CPU_TARGET_PCT, "lower", decimals=2)
        emit("edge_idle_rss_mb", rss_mb, "MB", RSS_TARGET_MB, "lower")


if __name__ == "__main__":
    sys.exit(run_main(__doc__ or "", main))
