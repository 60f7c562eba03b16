"""What the end-to-end benchmarks share: the topology around them, the BENCH line, the main wrapper.

`Rig` starts, on free ports and in a temporary folder, whatever a benchmark asks for: the hub's
nats-server (JetStream, domain `hub`), edge leaf servers, a scratch PostgreSQL database, edges
enrolled with fresh keys, and hubs as `python -m hub serve` subprocesses (so the hub's CPU-bound
event loop is not the one driving the load). Every NATS port is secured as in production
(provisioning/secure_nats.py): `connect` logs in as the hub's user or the edge's agent. Everything it started is stopped, dropped and
deleted when the `async with` block ends, whether the benchmark passed, raised or was signalled.

Not a test helper: the benchmarks must run from a plain checkout, so nothing here imports tests/.
"""
from __future__ import annotations

import argparse
import asyncio
import inspect
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Awaitable, Callable, Iterable

import aiohttp
import asyncpg
import nats
from nats.aio.client import Client as NatsClient

from edge.journal import Journal
from hub.ingest.edge_keys import add_edge
from hub.nats_access import EdgeLeafUser, NatsAccess
from provisioning.scratch_db import ScratchServer
from edge.leaf_credentials import EdgeNatsAuth
from provisioning.secure_nats import HubNatsAuth, enrol_by_hand
from shared import eventloop
from shared.nats_server import NatsServer
from shared.robots import RobotCredentials
from shared.process import ManagedProcess, free_port, tcp_port_open
from shared.signing import Signer

HOST = "127.0.0.1"
POLL_S = 0.02
BATCH_SUM = "vigil_ingest_batch_seconds_sum"
BATCH_COUNT = "vigil_ingest_batch_seconds_count"


def emit(name: str, value: float, unit: str, target: float, better: str, decimals: int = 1) -> None:
    """Print one figure as the machine-readable BENCH line and a human line with the ratio."""
    assert better in ("higher", "lower")
    print(f"BENCH {name}={value:.{decimals}f} {unit} target={target:g} better={better}")
    ratio = value / target
    met = value >= target if better == "higher" else value <= target
    print(f"{name}: {ratio:.2f}x target ({'met' if met else 'MISSED'}; {better} is better)", flush=True)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


async def wait_for(
    probe: Callable[[], Awaitable[bool] | bool],
    *,
    timeout: float,
    what: str,
    interval: float = POLL_S,
    watch: Iterable[ManagedProcess] = (),
) -> None:
    """Poll `probe` (plain or async) until it is true; fail after `timeout` s, or at once if a
    watched child exits (with the tail of its log, which is where the reason is)."""
    deadline = time.monotonic() + timeout
    watched = list(watch)
    while not await _resolve(probe()):
        for proc in watched:
            proc.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


# edge_epochs.committed is updated in the same transaction as the events insert, so the seqs it
# holds equal count(*) FROM events after every commit (when nothing is a duplicate, as here);
# summing a few multiranges is cheap enough to poll every 20 ms, where a count(*) over 200,000
# rows would take CPU from the hub being measured. A refused segment is kept in ingest_quarantine.
SQL_PROGRESS = """
SELECT (SELECT coalesce(sum(upper(r) - lower(r)), 0) FROM edge_epochs, unnest(committed) AS r)::int8 AS committed,
       (SELECT min(reason || ': ' || detail) FROM ingest_quarantine) AS rejected
"""


async def committed_events(pool: asyncpg.Pool) -> int:
    """How many events the hub has committed. Raises at once if it rejected a segment, since the
    expected count would then never be reached."""
    row = await pool.fetchrow(SQL_PROGRESS)
    if row["rejected"] is not None:
        raise RuntimeError(f"the hub rejected a segment: {row['rejected']}")
    return int(row["committed"])


@dataclass(frozen=True)
class SpawnedHub:
    """A hub subprocess and where its HTTP server (health, /metrics) listens."""

    process: ManagedProcess
    http_url: str

    async def metrics(self) -> dict[str, float]:
        """The hub's Prometheus samples by name with labels, e.g. `vigil_ingest_batch_seconds_sum`."""
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.http_url}/metrics") as resp:
                resp.raise_for_status()
                text = await resp.text()
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    async def batch_totals(self) -> tuple[float, float]:
        """Ingest batches so far: their total seconds (verify + commit + ack) and their number."""
        samples = await self.metrics()
        return samples.get(BATCH_SUM, 0.0), samples.get(BATCH_COUNT, 0.0)


async def _resolve(value: Awaitable[bool] | bool) -> bool:
    return await value if inspect.isawaitable(value) else value


class Rig:
    """A temporary topology for one benchmark run; use as `async with Rig("name") as rig`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.root = Path(tempfile.mkdtemp(prefix=f"vigil-bench-{name}-"))
        self.dsn = ""
        self.hub_nats: NatsServer | None = None
        self.nats_auth = HubNatsAuth(self.root / "hub-nats-auth")
        self._access: NatsAccess | None = None
        self._leaf_users: list[EdgeLeafUser] = []
        self._edge_auth: dict[str, EdgeNatsAuth] = {}
        self.robot_credentials: dict[str, RobotCredentials] = {}
        # Each server's client login, by URL: `connect` needs only the URL.
        self._logins: dict[str, dict[str, str]] = {}
        self.hubs: list[ManagedProcess] = []
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> "Rig":
        await self._stack.__aenter__()
        # Registered first so it runs last, after every process writing into the folder is gone.
        self._stack.callback(shutil.rmtree, self.root, ignore_errors=True)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if exc is not None:
            self._print_hub_logs()
        return await self._stack.__aexit__(exc_type, exc, tb)

    def _print_hub_logs(self) -> None:
        """On failure the reason is usually in a hub's log, which is about to be deleted."""
        for proc in self.hubs:
            tail = proc.log_tail(30)
            if tail:
                print(f"--- last lines of {proc.name} log ---\n{tail}", file=sys.stderr)

    async def start_hub_nats(self) -> NatsServer:
        """The hub's nats-server with JetStream (domain `hub`) and a leaf-node listener (TLS with
        client certificates of the rig's CA)."""
        self.nats_auth.prepare(["localhost"], [HOST])
        server = NatsServer(
            self.nats_auth.server_config("hub-nats", HOST, free_port(), free_port(), free_port(), self.root / "hub-js"),
            self.root / "run",
        )
        self._stack.callback(server.stop)
        await server.start()
        self.hub_nats = server
        self._logins[server.url] = self.nats_auth.login()
        self._access = self.nats_auth.access(server.url)
        await self._access.start()
        self.defer(self._access.close)
        return server

    async def start_edge_nats(self, edge_id: str, robots: Iterable[str] = ()) -> NatsServer:
        """An edge's leaf server (its own JetStream domain) linked to the hub's, as on a site: the
        edge enrolled with the rig's CA, its leaf user applied at the hub, and a login for each of
        `robots` (`robot_credentials` has them)."""
        assert self.hub_nats is not None and self._access is not None, "start the hub's NATS first"
        auth = EdgeNatsAuth(self.root / f"{edge_id}-nats-auth", edge_id)
        self._leaf_users.append(enrol_by_hand(auth, self.nats_auth, f"tls://{HOST}:{self.hub_nats.config.leaf_port}"))
        for robot in robots:
            self.robot_credentials[robot] = auth.add_robot(robot)
        await self._access.apply(self._leaf_users)
        server = NatsServer(
            auth.server_config(f"{edge_id}-nats", HOST, free_port(), free_port(), self.root / f"{edge_id}-js", edge_id),
            self.root / "run",
        )
        self._stack.callback(server.stop)
        await server.start()
        await server.wait_leaf()
        self._edge_auth[edge_id] = auth
        self._logins[server.url] = auth.agent_login()
        return server

    def edge_env(self, edge_id: str) -> dict[str, str]:
        """The VIGIL_EDGE_* variables that log an agent subprocess in to its leaf server."""
        return self._edge_auth[edge_id].edge_env()

    def defer(self, cleanup: Callable[[], Awaitable[object]]) -> None:
        """Await `cleanup` when the rig ends: cleanups run newest first, before the rig's own."""
        self._stack.push_async_callback(cleanup)

    async def pool(self) -> asyncpg.Pool:
        """A small pool on the scratch database for the benchmark's own queries."""
        pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=2)
        self.defer(pool.close)
        return pool

    @property
    def journal_path(self) -> Path:
        return self.root / "journal.db"

    async def open_journal(self) -> Journal:
        """An edge journal in the rig's folder, with a cap no benchmark reaches."""
        journal = await Journal.open(self.journal_path, max_bytes=1 << 30, retention_s=3600)
        self.defer(journal.close)
        return journal

    async def connect(self, url: str, name: str) -> NatsClient:
        """A NATS client of a server the rig started (as the hub's user, or the edge's agent),
        closed when the rig ends."""
        nc = await nats.connect(url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                                **self._logins[url])  # type: ignore[arg-type]
        self.defer(nc.close)
        return nc

    async def create_database(self) -> str:
        """A fresh, migrated scratch database (see provisioning.scratch_db), dropped at the end."""
        server = await ScratchServer().start()
        self._stack.callback(server.stop)
        self.dsn = await server.create_database(f"vigil_bench_{self.name}")
        self._stack.push_async_callback(server.drop_database, self.dsn)
        return self.dsn

    async def enrol(self, edge_ids: Iterable[str]) -> dict[str, Signer]:
        """Fresh key pairs for the edges, enrolled in the scratch database in one transaction (a
        thousand edges would otherwise cost a thousand commits)."""
        signers = {edge_id: Signer.generate() for edge_id in edge_ids}
        conn = await asyncpg.connect(self.dsn)
        try:
            async with conn.transaction():
                for edge_id, signer in signers.items():
                    await add_edge(conn, edge_id, signer.public_raw)
        finally:
            await conn.close()
        return signers

    async def spawn_hub(self) -> SpawnedHub:
        """`python -m hub serve` on the scratch database and the hub's NATS; returns once its HTTP
        server answers, which it starts only after the streams exist."""
        assert self.hub_nats is not None and self.dsn, "start the hub's NATS and the database first"
        http_port = free_port()
        name = f"hub-{len(self.hubs) + 1}"
        env = {
            **os.environ,
            "VIGIL_HUB_DATABASE_URL": self.dsn,
            "VIGIL_HUB_NATS_URL": self.hub_nats.url,
            "VIGIL_HUB_HTTP_PORT": str(http_port),
            "VIGIL_HUB_LOG_LEVEL": "WARNING",
            "VIGIL_HUB_AUTH_SECRET_FILE": str(self.root / "hub-secret.key"),
            **self.nats_auth.hub_env(),
        }
        proc = ManagedProcess(name, [sys.executable, "-m", "hub", "serve"], log_path=self.root / "run" / f"{name}.log", env=env)
        self._stack.callback(proc.stop, 30)
        proc.start()
        self.hubs.append(proc)
        await proc.wait_ready(lambda: tcp_port_open(HOST, http_port), 60)
        return SpawnedHub(proc, f"http://{HOST}:{http_port}")


async def _until_signalled(main: Awaitable[None]) -> None:
    """Run `main`, cancelling it on SIGTERM or SIGINT so its Rig unwinds (processes stopped,
    database dropped). Set explicitly: a benchmark started in the background inherits an ignored
    SIGINT, and run_all stops an overrunning benchmark with SIGTERM."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    await main


def run_main(description: str, main: Callable[[bool], Awaitable[None]]) -> int:
    """Parse `--quick`, run `main(quick)` on uvloop as the services do, and turn any failure into
    a message on stderr and a non-zero exit code."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small workload that takes a few seconds (test suite)")
    args = parser.parse_args()
    try:
        eventloop.run(_until_signalled(main(args.quick)))
    except asyncio.CancelledError:
        print("interrupted; everything the benchmark started has been stopped", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        return 1
    return 0
