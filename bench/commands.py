"""Panel command round trips: hub API → PostgreSQL and its outbox → VIGIL_COMMANDS → the edge's
leaf → `python -m edge run` → emulated panels → `cmd.result` journaled and forwarded → the command
settled in the hub's database, with 20 commands in flight.

One hub (`python -m hub serve`) and one edge agent, each its own process, on the rig's secured NATS;
PANELS emulated panels (the hardware, in this process) on that edge. An admin gives arm and disarm
commands (typed code) through the REST API, keeping IN_FLIGHT outstanding. Each round trip is
measured from sending the POST to the moment this process sees, on PostgreSQL's `vigil_outbox`
notification, the hub's committed `command.updated` row with the command's final status: what a
console on the live stream would be told next. Every command must end ACK.

    BENCH command_p99_ms=<p99 round trip> ms target=500 better=lower
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import aiohttp
import asyncpg

from _rig import HOST, Rig, emit, percentile, run_main, wait_for
from firmware_bridges.satel.emulator import SatelEmulator
from firmware_bridges.satel.emulator.site import SAMPLE_USER_CODE
from hub.auth.passwords import Passwords
from hub.ingest.edge_keys import add_edge
from shared.process import ManagedProcess, free_port
from shared.signing import load_key_file

TARGET_MS = 500.0
IN_FLIGHT = 20
PANELS = 4
EDGE = "bench-commands"
PASSWORD = "bench admin password 1"
SQL_ADMIN = """
INSERT INTO users (email, role, password_hash, must_change_password, active, created_at, updated_at)
VALUES ('admin@bench.local', 'ADMIN', $1, false, true, now(), now())
"""
SQL_FINAL = """
SELECT sequence_id, payload->'command'->>'id' AS id, payload->'command'->>'status' AS status
FROM outbox WHERE sequence_id > $1 AND topic = 'command.updated' ORDER BY sequence_id
"""
FINAL = {"ACK", "NACK", "TIMEOUT", "EXPIRED"}


class Settled:
    """When each command's final status was committed at the hub, as this process learns it from
    the outbox's NOTIFY (read on after every notification)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._cursor = 0
        self.at: dict[str, tuple[float, str]] = {}
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._wake = asyncio.Event()

    async def start(self) -> None:
        self._cursor = await self._conn.fetchval("SELECT coalesce(max(sequence_id), 0) FROM outbox")
        await self._conn.add_listener("vigil_outbox", lambda *_: self._wake.set())

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            seen = time.perf_counter()
            for row in await self._conn.fetch(SQL_FINAL, self._cursor):
                self._cursor = row["sequence_id"]
                if row["status"] in FINAL and row["id"] not in self.at:
                    self.at[row["id"]] = (seen, row["status"])
                    waiter = self._waiters.pop(row["id"], None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)

    async def wait(self, command_id: str) -> None:
        if command_id in self.at:
            return
        waiter = self._waiters.setdefault(command_id, asyncio.get_running_loop().create_future())
        await asyncio.wait_for(waiter, 60)


async def one(session: aiohttp.ClientSession, base: str, token: str, panel_id: int, partition: int, arm: bool,
              settled: Settled, rounds: list[float]) -> None:
    body = {"type": "arm" if arm else "disarm", "partitions": [partition], "user_code": SAMPLE_USER_CODE,
            "reason": "bench"}
    sent = time.perf_counter()
    async with session.post(f"{base}/api/v1/panels/{panel_id}/commands", json=body,
                            headers={"Authorization": f"Bearer {token}"}) as resp:
        command = await resp.json()
    if resp.status != 202:
        raise RuntimeError(f"command refused: {resp.status} {command}")
    await settled.wait(command["id"])
    at, status = settled.at[command["id"]]
    if status != "ACK":
        raise RuntimeError(f"command {command['id']} ended {status}")
    rounds.append((at - sent) * 1000)


async def main(quick: bool) -> None:
    total = 60 if quick else 1000
    async with Rig("commands") as rig:
        await rig.start_hub_nats()
        edge_nats = await rig.start_edge_nats(EDGE)
        await rig.create_database()
        pool = await rig.pool()
        emulators = []
        for _ in range(PANELS):
            emulator = SatelEmulator(port=0)
            await emulator.start()
            rig.defer(emulator.stop)
            emulators.append(emulator)
        data_dir = rig.root / "edge"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env.update({
            "VIGIL_EDGE_EDGE_ID": EDGE, "VIGIL_EDGE_DATA_DIR": str(data_dir), "VIGIL_EDGE_NATS_URL": edge_nats.url,
            "VIGIL_EDGE_HTTP_HOST": HOST, "VIGIL_EDGE_HTTP_PORT": str(free_port()), "VIGIL_EDGE_LOG_LEVEL": "WARNING",
            "VIGIL_EDGE_SATEL_PANELS": json.dumps([{"id": f"panel-{i}", "host": HOST, "port": e.port}
                                                   for i, e in enumerate(emulators)]),
            **rig.edge_env(EDGE),
        })
        await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "edge", "keygen"], env=env, check=True,
                                stdout=subprocess.DEVNULL)
        async with pool.acquire() as conn:
            await add_edge(conn, EDGE, load_key_file(data_dir / "edge.key").public_raw)
        object_id = await pool.fetchval("INSERT INTO objects (name) VALUES ('bench') RETURNING id")
        panel_ids = [await pool.fetchval("INSERT INTO panels (object_id, edge_id, source) VALUES ($1, $2, $3) "
                                         "RETURNING id", object_id, EDGE, f"panel-{i}") for i in range(PANELS)]
        await pool.execute(SQL_ADMIN, await Passwords().hash(PASSWORD))
        hub = await rig.spawn_hub()
        agent = ManagedProcess("edge", [sys.executable, "-m", "edge", "run"], log_path=rig.root / "run" / "edge.log",
                               env=env)

        async def stop_agent() -> None:
            await asyncio.to_thread(agent.stop, 30)  # the agent's last request is answered on this loop

        rig.defer(stop_agent)
        agent.start()

        async def links_up() -> bool:
            return await pool.fetchval("SELECT count(*) FROM panels WHERE link_status = 'CONNECTED'") == PANELS

        await wait_for(links_up, timeout=60, what="every panel's link up at the hub", watch=[agent, *rig.hubs])
        listener = await asyncpg.connect(rig.dsn)
        rig.defer(listener.close)
        settled = Settled(listener)
        await settled.start()
        watcher = asyncio.create_task(settled.run())
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{hub.http_url}/api/v1/auth/login",
                                    json={"email": "admin@bench.local", "password": PASSWORD}) as resp:
                token = (await resp.json())["access_token"]
            # Warm-up, unmeasured: the first command per panel makes the consumer, prepares statements.
            warm: list[float] = []
            await asyncio.gather(*(one(session, hub.http_url, token, p, 1, True, settled, warm) for p in panel_ids))
            rounds: list[float] = []
            slots = asyncio.Semaphore(IN_FLIGHT)

            async def limited(i: int) -> None:
                async with slots:
                    # Arm then disarm each partition in turn, spread over the panels.
                    await one(session, hub.http_url, token, panel_ids[i % PANELS], 1 + (i // PANELS) % 2,
                              (i // (2 * PANELS)) % 2 == 0, settled, rounds)

            started = time.perf_counter()
            await asyncio.gather(*(limited(i) for i in range(total)))
            wall = time.perf_counter() - started
        watcher.cancel()
        agent.check_alive()
        ordered = sorted(rounds)
        print(f"{len(rounds)} round trips with {IN_FLIGHT} in flight over {PANELS} panels in {wall:.1f} s "
              f"({len(rounds) / wall:.0f}/s): p50 {percentile(ordered, 50):.1f} ms, p99 {percentile(ordered, 99):.1f} ms, "
              f"max {ordered[-1]:.1f} ms", flush=True)
        emit("command_p99_ms", percentile(ordered, 99), "ms", TARGET_MS, "lower")


if __name__ == "__main__":
    sys.exit(run_main(__doc__ or "", main))
