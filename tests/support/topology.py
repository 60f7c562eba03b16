"""A hub and its edge sites on free ports: hub NATS, a WAN proxy, each edge's leaf server, and the
hub and edge services either in this process or as real subprocesses (for SIGKILL tests).

Every NATS port is secured as in production (docs/architecture.md §4.1): the
hub's users file is applied through NatsAccess, each edge gets its leaf credentials and client
certificate when the topology first needs its site, and clients connect with their user."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
import nats

from edge.config import EdgeConfig, load_edge_config
from edge.agent import local_nats_login, run_edge
from edge.forwarder import Forwarder, ForwarderSettings
from edge.journal import Journal
from hub.config import HubConfig, load_hub_config
from hub.ingest.edge_keys import add_edge
from hub.service import run_hub
from provisioning.db_roles import ensure_runtime_role
from shared.bodies import DemoTick
from shared.envelope import Priority, new_envelope
from shared.nats_server import NatsServer
from shared.process import ManagedProcess, free_port, tcp_port_open
from shared.signing import Signer, create_key_file
from support.secure_nats import SecureNats, Site
from support.tcp_proxy import TcpProxy
from support.waiting import wait_until

HOST = "127.0.0.1"
DEFAULT_EDGE = "site-1"


class Topology:
    """Everything one test needs around an edge and the hub."""

    def __init__(self, root: Path, dsn: str, pool: asyncpg.Pool) -> None:
        self.root = root
        self.dsn = dsn  # the owner role's: migrations, and tests looking at the rows
        self.runtime_dsn = ""  # the hub's own role (owns no table), made by start()
        self.pool = pool
        self.nats = SecureNats(root)
        self.hub_nats = self.nats.hub
        self.proxy: TcpProxy | None = None
        self.edge_nats: NatsServer | None = None  # the default edge's (site-1), behind the WAN proxy
        self._tasks: list[tuple[asyncio.Event, asyncio.Task[None]]] = []
        self._procs: list[ManagedProcess] = []

    async def start(self) -> None:
        self.runtime_dsn = await ensure_runtime_role(self.dsn)
        await self.nats.start()
        self.proxy = TcpProxy(HOST, self.hub_nats.config.leaf_port)
        await self.proxy.start()
        self.edge_nats = (await self.ensure_site(DEFAULT_EDGE)).server

    def site(self, edge_id: str) -> Site:
        """The edge's site (its server started by ensure_site): the default edge reaches the hub
        through the WAN proxy, in JetStream domain `edge-test`; the others directly."""
        assert self.proxy is not None, "start the topology first"
        if edge_id == DEFAULT_EDGE:
            return self.nats.site(edge_id, self.proxy.port, "edge-test")
        return self.nats.site(edge_id)

    async def ensure_site(self, edge_id: str) -> Site:
        """The edge's site with its leaf server running and linked."""
        self.site(edge_id)
        return await self.nats.ensure_site(edge_id)

    async def __aenter__(self) -> "Topology":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        for stop, task in reversed(self._tasks):
            stop.set()
            try:
                await asyncio.wait_for(task, 30)
            except Exception:  # a failed service already failed its test; don't hide the teardown
                pass
        for proc in reversed(self._procs):
            # In a thread: the WAN proxy runs on this loop, and an agent draining its journal at
            # stop needs it to carry the hub's PubAcks.
            await asyncio.to_thread(proc.stop, 10)
        if self.proxy:
            await self.proxy.close()
        await self.nats.stop()

    # configs

    def hub_config(self, **overrides: object) -> HubConfig:
        return load_hub_config(env={}, overrides={
            "database_url": self.runtime_dsn, "database_owner_url": self.dsn, "nats_url": self.hub_nats.url, "http_port": free_port(),
            "auth": {"secret_file": str(self.root / "hub-secret.key")}, **self.nats.auth.hub_settings(), **overrides})

    def enrolling_hub_config(self, **overrides: object) -> HubConfig:
        """A hub that enrols edges: HTTPS with the hub CA's server certificate, and the NATS users
        managed by the hub itself (edges enrolled by hand through `enrol` are then not allowed)."""
        tls = self.nats.auth.server_tls
        return self.hub_config(
            https_host=HOST, https_port=free_port(), https_cert_file=str(tls.cert), https_key_file=str(tls.key),
            **self.nats.auth.hub_settings(manage_users=True, leaf_url=f"tls://{HOST}:{self.hub_nats.config.leaf_port}"),
            **overrides)

    def edge_config(self, edge_id: str = DEFAULT_EDGE, **overrides: object) -> EdgeConfig:
        site = self.site(edge_id)
        return load_edge_config(env={}, overrides={
            "edge_id": edge_id, "data_dir": str(self.root / "edges" / edge_id), "nats_url": site.server.url,
            "http_port": free_port(), **site.auth.edge_settings(), **overrides})

    async def connect_hub(self) -> nats.NATS:
        """A client of the hub's NATS as the hub's own user (any subject)."""
        return await self.nats.connect_hub()

    async def connect_site_admin(self, edge_id: str = DEFAULT_EDGE) -> nats.NATS:
        """A client of the edge's leaf server with no limits, as a maintenance login would be."""
        await self.ensure_site(edge_id)
        return await self.nats.connect_site_admin(edge_id)

    async def enrol(self, config: EdgeConfig) -> Signer:
        """Create the edge's key (as `python -m edge keygen` does) and register it with the hub;
        its site's leaf server runs from then on."""
        await self.ensure_site(config.edge_id)
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

        async def run() -> None:
            await self.ensure_site(config.edge_id)
            await run_edge(config, stop, handle_signals=False)

        self._tasks.append((stop, asyncio.create_task(run())))
        return stop

    # subprocess services

    async def spawn_hub(self, config: HubConfig, name: str = "hub", **extra_env: str) -> ManagedProcess:
        env = {**os.environ, "VIGIL_HUB_DATABASE_URL": config.database_url,
               "VIGIL_HUB_DATABASE_OWNER_URL": config.database_owner_url, "VIGIL_HUB_NATS_URL": config.nats_url,
               "VIGIL_HUB_HTTP_PORT": str(config.http_port), "VIGIL_HUB_LOG_LEVEL": "INFO",
               "VIGIL_HUB_NATS_USER": config.nats_user, "VIGIL_HUB_NATS_PASSWORD_FILE": config.nats_password_file,
               "VIGIL_HUB_AUTH_SECRET_FILE": config.auth.secret_file,
               "VIGIL_HUB_AUTH_MASTER_EMAIL": config.auth.master_email,
               "VIGIL_HUB_AUTH_MASTER_PASSWORD": config.auth.master_password,
               "VIGIL_HUB_COMMANDS_SETTLE_GRACE_S": str(config.commands.settle_grace_s),
               "VIGIL_HUB_COMMANDS_ACK_WAIT_S": str(config.commands.ack_wait_s)}
        if config.https_port:
            env |= {"VIGIL_HUB_HTTPS_HOST": config.https_host, "VIGIL_HUB_HTTPS_PORT": str(config.https_port),
                    "VIGIL_HUB_HTTPS_CERT_FILE": config.https_cert_file, "VIGIL_HUB_HTTPS_KEY_FILE": config.https_key_file}
        access = config.nats_access
        if access.users_file:
            env |= {"VIGIL_HUB_NATS_ACCESS_USERS_FILE": access.users_file,
                    "VIGIL_HUB_NATS_ACCESS_SYSTEM_USER": access.system_user,
                    "VIGIL_HUB_NATS_ACCESS_SYSTEM_PASSWORD_FILE": access.system_password_file,
                    "VIGIL_HUB_NATS_ACCESS_CA_DIR": access.ca_dir, "VIGIL_HUB_NATS_ACCESS_LEAF_URL": access.leaf_url}
        proc = ManagedProcess(name, [sys.executable, "-m", "hub", "serve"], log_path=self.root / "run" / f"{name}.log",
                              env=env | extra_env)
        proc.start()
        self._procs.append(proc)
        await proc.wait_ready(lambda: tcp_port_open(HOST, config.http_port), 60)
        return proc

    async def spawn_edge(self, config: EdgeConfig, name: str = "edge", **extra_env: str) -> ManagedProcess:
        await self.ensure_site(config.edge_id)
        env = {**os.environ, "VIGIL_EDGE_EDGE_ID": config.edge_id, "VIGIL_EDGE_DATA_DIR": config.data_dir,
               "VIGIL_EDGE_NATS_URL": config.nats_url, "VIGIL_EDGE_HTTP_PORT": str(config.http_port),
               "VIGIL_EDGE_NATS_USER": config.nats_user, "VIGIL_EDGE_NATS_PASSWORD_FILE": config.nats_password_file,
               **extra_env}
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
        await self.topology.ensure_site(self.config.edge_id)
        self.journal = await Journal.open(self.config.journal_path, max_bytes=self.config.journal.max_bytes, retention_s=3600)
        self.nc = await nats.connect(self.config.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                                     **local_nats_login(self.config))  # type: ignore[arg-type]
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
