"""What a site's robots cost its edge box: 50 mock robots at 10 Hz through the edge to the hub.

Starts the hub's nats-server, a box's leaf server with a login per robot, a scratch database, the
hub (`python -m hub serve`) and the agent (`python -m edge run`, watching the 50 robots at the
default 1 Hz sampling), then a fleet process (bench/_robot_fleet.py: the real robot bridge with
mock robots, each with its own login and connection) publishing 10 telemetry samples a second
per robot. Once every robot is known at the hub it measures, over 60 s, the agent's CPU time and
RSS, the messages the box's server took in, and the samples stored at the hub, and prints::

    BENCH robot_telemetry=<samples stored at the hub per second> samples/s target=47.5 better=higher
    BENCH robot_edge_cpu_pct=<agent CPU time / wall time, % of one core> % target=10 better=lower

`robot_telemetry`'s target is 50 robots × the 1 Hz the edge keeps, less 5 % for the samples
that fall either side of the window's edges; the fleet sends ten times that, and the box's server
keeps only each robot's newest sample for the agent to take. `--quick` (10 robots for 4 s) checks
that the benchmark runs; its figures are no measurement.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import psutil

from _rig import HOST, Rig, emit, run_main, wait_for
from hub.ingest.edge_keys import add_edge
from shared.private_file import write_private_file
from shared.process import ManagedProcess, free_port
from shared.signing import load_key_file

EDGE = "bench-robots"
ROBOTS = 50
TELEMETRY_HZ = 10.0
CPU_TARGET_PCT = 10.0
QUICK_ROBOTS = 10
KEPT_HZ = 1.0 * 0.95  # per robot: the 1 Hz the edge keeps, less the window's edges
BENCH_DIR = Path(__file__).resolve().parent
SQL_STORED = "SELECT count(*) FROM robot_telemetry WHERE at >= $1 AND at < $2"


def _in_msgs(http_port: int) -> int:
    """Messages the box's nats-server has taken in (its /varz)."""
    with urllib.request.urlopen(f"http://{HOST}:{http_port}/varz", timeout=5) as resp:
        return int(json.loads(resp.read())["in_msgs"])


async def main(quick: bool) -> None:
    window_s = 4.0 if quick else 60.0
    count = QUICK_ROBOTS if quick else ROBOTS
    robots = [f"RB-{n:03d}" for n in range(1, count + 1)]
    async with Rig("robots") as rig:
        await rig.start_hub_nats()
        edge_nats = await rig.start_edge_nats(EDGE, robots)
        await rig.create_database()
        pool = await rig.pool()
        data_dir = rig.root / "edge"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env.update({
            "VIGIL_EDGE_EDGE_ID": EDGE, "VIGIL_EDGE_DATA_DIR": str(data_dir), "VIGIL_EDGE_NATS_URL": edge_nats.url,
            "VIGIL_EDGE_HTTP_HOST": HOST, "VIGIL_EDGE_HTTP_PORT": str(free_port()), "VIGIL_EDGE_LOG_LEVEL": "WARNING",
            "VIGIL_EDGE_ROBOTS": json.dumps([{"id": robot} for robot in robots]),
            **rig.edge_env(EDGE),
        })
        await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "edge", "keygen"], env=env, check=True,
                                stdout=subprocess.DEVNULL)
        async with pool.acquire() as conn:
            await add_edge(conn, EDGE, load_key_file(data_dir / "edge.key").public_raw)
        object_id = await pool.fetchval("INSERT INTO objects (name) VALUES ('bench') RETURNING id")
        await pool.execute("UPDATE edges SET object_id = $1 WHERE edge_id = $2", object_id, EDGE)
        await rig.spawn_hub()
        agent = ManagedProcess("edge", [sys.executable, "-m", "edge", "run"], log_path=rig.root / "run" / "edge.log",
                               env=env)

        async def stop_agent() -> None:
            await asyncio.to_thread(agent.stop, 30)

        rig.defer(stop_agent)
        agent.start()

        # The agent makes the streams that keep what robots say; the fleet starts after it.
        async def agent_up() -> bool:
            return bool(edge_nats.healthy()) and _stream_exists(edge_nats.config.http_port)

        await wait_for(agent_up, timeout=60, what="the agent's robot streams", watch=[agent, *rig.hubs])
        creds_dir = rig.root / "robot-creds"
        creds_dir.mkdir()
        for robot in robots:
            write_private_file(creds_dir / f"{robot}.json", msgspec.json.encode(rig.robot_credentials[robot]).decode())
        fleet = ManagedProcess("fleet", [sys.executable, str(BENCH_DIR / "_robot_fleet.py"), "--nats", edge_nats.url,
                                         "--creds-dir", str(creds_dir), "--telemetry-hz", str(TELEMETRY_HZ)],
                               log_path=rig.root / "run" / "fleet.log")

        async def stop_fleet() -> None:
            await asyncio.to_thread(fleet.stop, 30)

        rig.defer(stop_fleet)
        fleet.start()

        async def all_known() -> bool:
            return await pool.fetchval("SELECT count(*) FROM robots WHERE connection = 'ONLINE'") == count and \
                await pool.fetchval("SELECT count(DISTINCT robot_id) FROM robot_identity") == count

        await wait_for(all_known, timeout=120, what="every robot online and identified at the hub",
                       watch=[agent, fleet, *rig.hubs])
        await asyncio.sleep(2.0)  # past the first-sight questions: measure the steady state
        process = psutil.Process(agent.pid)
        window_start = datetime.now(timezone.utc)
        in_before = _in_msgs(edge_nats.config.http_port)
        cpu_before = process.cpu_times()
        started = time.monotonic()
        await asyncio.sleep(window_s)
        wall = time.monotonic() - started
        cpu_after = process.cpu_times()
        in_after = _in_msgs(edge_nats.config.http_port)
        window_end = datetime.now(timezone.utc)
        # Samples kept in the window travel on; give the last ones a moment to commit, then count
        # those the edge kept inside it.
        await asyncio.sleep(1.5)
        stored = await pool.fetchval(SQL_STORED, window_start, window_end)
        rss_mb = process.memory_info().rss / (1024 * 1024)
        agent.check_alive()
        fleet.check_alive()
        busy = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
        print(f"{count} robots at {TELEMETRY_HZ:g} Hz for {wall:.1f} s: the box's server took "
              f"{(in_after - in_before) / wall:.0f} msg/s, the hub stored {stored / wall:.1f} samples/s; "
              f"agent CPU {100 * busy / wall:.1f} % of one core, RSS {rss_mb:.0f} MiB", flush=True)
        emit("robot_telemetry", stored / wall, "samples/s", count * KEPT_HZ, "higher")
        emit("robot_edge_cpu_pct", 100 * busy / wall, "%", CPU_TARGET_PCT, "lower", decimals=2)


def _stream_exists(http_port: int) -> bool:
    """The box's server has the ROBOT_TELEMETRY stream (its /jsz)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{http_port}/jsz?streams=true", timeout=2) as resp:
            info = json.loads(resp.read())
    except OSError:
        return False
    names = [s.get("name") for a in info.get("account_details") or [] for s in a.get("stream_detail") or []]
    return "ROBOT_TELEMETRY" in names


if __name__ == "__main__":
    sys.exit(run_main(__doc__ or "", main))
