"""A hub and one edge site on free ports: hub NATS, a WAN proxy, the edge's leaf server, and the
hub and edge services either in this process or as real subprocesses (for SIGKILL tests)."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
import nats

from edge.config import EdgeConfig, load_edge_config
from edge.agent import run_edge
from edge.forwarder import Forwarder, ForwarderSettings
from edge.journal import Journal
from hub.config import HubConfig, load_hub_config
from hub.ingest.edge_keys import add_edge
from hub.service import run_hub
from shared.bodies import DemoTick
from shared.envelope import Priority, new_envelope
from shared.nats_server import EdgeNatsConfig, HubNatsConfig, NatsServer
from shared.process import ManagedProcess, free_port, tcp_port_open
from shared.signing import Signer, create_key_file
from support.tcp_proxy import TcpProxy
from support.waiting import wait_until

HOST = "127.0.0.1"


class Topology:
    """Everything one test needs around an edge and the hub."""

    def __init__(self, root: Path, dsn: str, pool: asyncpg.Pool) -> None:
        self.root = root
        self.dsn = dsn
        self.pool = pool
        self.hub_nats = NatsServer(
            HubNatsConfig("hub-nats", HOST, free_port(), free_port(), free_port(), root / "hub-js"), root / "run"
        )
        self.proxy: TcpProxy | None = None
        self.edge_nats: NatsServer | None = None
        self._tasks: list[tuple[asyncio.Event, asyncio.Task[None]]] = []
        self._procs: list[ManagedProcess] = []

    async def start(self) -> None:
        await self.hub_nats.start()
        self.proxy = TcpProxy(HOST, self.hub_nats.config.leaf_port)
        await self.proxy.start()
        self.edge_nats = NatsServer(
            EdgeNatsConfig("edge-nats", HOST, free_port(), free_port(), self.root / "edge-js", "edge-test",
                           f"nats-leaf://{HOST}:{self.proxy.port}"),
            self.root / "run",
        )
        await self.edge_nats.start()
        await self.edge_nats.wait_leaf()

    async def stop(self) -> None:
        for stop, task in reversed(self._tasks):
            stop.set()
            try:
                await asyncio.wait_for(task, 30)
            except Exception:  # a failed service already failed its test; don't hide the teardown
                pass
        for proc in reversed(self._procs):
            proc.stop(10)
        if self.edge_nats:
            self.edge_nats.stop()
        if self.proxy:
            await self.proxy.close()
        self.hub_nats.stop()

    # configs

    def hub_config(self, **overrides: object) -> HubConfig:
        return load_hub_config(env={}, overrides={
            "database_url": self.dsn, "nats_url": self.hub_nats.url, "http_port": free_port(),
            "auth": {"secret_file": str(self.root / "hub-secret.key")}, **overrides})

    def edge_config(self, edge_id: str = "site-1", **overrides: object) -> EdgeConfig:
        assert self.edge_nats is not None
        return load_edge_config(env={}, overrides={
            "edge_id": edge_id, "data_dir": str(self.root / "edges" / edge_id), "nats_url": self.edge_nats.url,
            "http_port": free_port(), **overrides})

    async def enrol(self, config: EdgeConfig) -> Signer:
        """Create the edge's key (as `python -m edge keygen` does) and register it with the hub."""
        signer = create_key_file(config.key_path)
        async with self.pool.acquire() as conn:
            await add_edge(conn, config.edge_id, signer.public_raw)
        return signer

    # in-process services

    async def run_hub(self, config: HubConfig) -> asyncio.Event:
        """Start an in-process hub and wait until its HTTP server (which starts after the
        streams exist) answers."""
        stop = asyncio.Event()
        task = asyncio.create_task(run_hub(config, stop, handle_signals=False))
        self._tasks.append((stop, task))

        async def up() -> bool:
            if task.done():
                task.result()  # surface the hub's start-up error
            return await tcp_port_open(HOST, config.http_port)

        await wait_until(up, timeout=60, what="the hub to start")
        return stop

    def run_edge(self, config: EdgeConfig) -> asyncio.Event:
        stop = asyncio.Event()
        self._tasks.append((stop, asyncio.create_task(run_edge(config, stop, handle_signals=False))))
        return stop

    # subprocess services

    async def spawn_hub(self, config: HubConfig, name: str = "hub") -> ManagedProcess:
        env = {**os.environ, "VIGIL_HUB_DATABASE_URL": config.database_url, "VIGIL_HUB_NATS_URL": config.nats_url,
               "VIGIL_HUB_HTTP_PORT": str(config.http_port), "VIGIL_HUB_LOG_LEVEL": "INFO",
               "VIGIL_HUB_AUTH_SECRET_FILE": config.auth.secret_file,
               "VIGIL_HUB_AUTH_MASTER_EMAIL": config.auth.master_email,
               "VIGIL_HUB_AUTH_MASTER_PASSWORD": config.auth.master_password}
        proc = ManagedProcess(name, [sys.executable, "-m", "hub", "serve"], log_path=self.root / "run" / f"{name}.log", env=env)
        proc.start()
        self._procs.append(proc)
        await proc.wait_ready(lambda: tcp_port_open(HOST, config.http_port), 60)
        return proc

    async def spawn_edge(self, config: EdgeConfig, name: str = "edge", **extra_env: str) -> ManagedProcess:
        env = {**os.environ, "VIGIL_EDGE_EDGE_ID": config.edge_id, "VIGIL_EDGE_DATA_DIR": config.data_dir,
               "VIGIL_EDGE_NATS_URL": config.nats_url, "VIGIL_EDGE_HTTP_PORT": str(config.http_port), **extra_env}
        proc = ManagedProcess(name, [sys.executable, "-m", "edge", "run"], log_path=self.root / "run" / f"{name}.log", env=env)
        proc.start()
        self._procs.append(proc)
        await proc.wait_ready(lambda: tcp_port_open(HOST, config.http_port), 60)
        return proc

    # observations

    async def event_count(self, edge_id: str | None = None) -> int:
        if edge_id is None:
            return await self.pool.fetchval("SELECT count(*) FROM events")
        return await self.pool.fetchval("SELECT count(*) FROM events WHERE edge_id = $1", edge_id)

    async def wait_events(self, n: int, timeout: float = 60.0, edge_id: str | None = None) -> None:
        async def enough() -> bool:
            return await self.event_count(edge_id) >= n

        await wait_until(enough, timeout=timeout, what=f"{n} events in PostgreSQL")


class EdgeHarness:
    """An edge's journal and forwarder running in this process, with an append helper."""

    def __init__(self, topology: Topology, config: EdgeConfig, signer: Signer, **forwarder_settings: object) -> None:
        self.topology = topology
        self.config = config
        self.signer = signer
        self._settings = forwarder_settings
        self.journal: Journal | None = None
        self.nc: nats.NATS | None = None
        self.forwarder: Forwarder | None = None
        self._n = 0

    async def start(self) -> "EdgeHarness":
        self.journal = await Journal.open(self.config.journal_path, max_bytes=self.config.journal.max_bytes, retention_s=3600)
        self.nc = await nats.connect(self.config.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        self.forwarder = Forwarder(self.config.edge_id, self.journal, self.signer, self.nc,
                                   ForwarderSettings(**self._settings))  # type: ignore[arg-type]
        self.forwarder.start()
        return self

    async def append(self, n: int = 1, priority: Priority = Priority.LOW, concurrency: int = 64) -> list[int]:
        """Append `n` demo events, up to `concurrency` at a time (they share group commits)."""
        journal = self.journal
        assert journal is not None
        seqs: list[int] = []
        while len(seqs) < n:
            batch = []
            for _ in range(min(concurrency, n - len(seqs))):
                self._n += 1
                batch.append(journal.append(new_envelope("demo.tick", "test", priority, DemoTick(self._n))))
            seqs.extend(await asyncio.gather(*batch))
        return seqs

    async def close(self) -> None:
        if self.forwarder:
            await self.forwarder.stop()
        if self.nc:
            await self.nc.close()
        if self.journal:
            await self.journal.close()
