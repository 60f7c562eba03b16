"""`make run`: the whole system on one machine, in the foreground.

Starts the hub's nats-server, an embedded PostgreSQL (unless VIGIL_HUB_DATABASE_URL names one),
the hub, one edge's leaf-node nats-server, an emulated Satel panel (ETHM-1 module with the sample
site) and the edge agent watching it, prints what runs where, and on Ctrl-C (or SIGTERM) stops
them in reverse order. Every child dies with this process too.
Ports come from VIGIL_RUN_* variables; a taken port is named before anything starts.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from edge.site_accounts import AccountStore, create_account
from hub.ingest.edge_keys import add_edge
from hub.db.migrate import migrate
from provisioning.embedded_pg import EmbeddedPostgres
from provisioning.secure_nats import EdgeNatsAuth, HubNatsAuth
from shared.eventloop import stop_on_signals
from shared.nats_server import NatsConfigError, NatsServer
from shared.pki import PkiError
from shared.process import ManagedProcess, ProcessFailed, port_is_free, tcp_port_open
from shared.private_file import create_private_file, read_private_file
from shared.signing import KeyFileError, create_key_file, load_key_file

HOST = "127.0.0.1"


@dataclass(frozen=True)
class PortSpec:
    var: str
    default: int
    what: str


PORTS = [
    PortSpec("VIGIL_RUN_HUB_NATS_PORT", 14222, "hub NATS clients"),
    PortSpec("VIGIL_RUN_HUB_LEAF_PORT", 17422, "hub NATS leaf nodes"),
    PortSpec("VIGIL_RUN_HUB_NATS_HTTP_PORT", 18222, "hub NATS monitoring"),
    PortSpec("VIGIL_RUN_PG_PORT", 15432, "embedded PostgreSQL"),
    PortSpec("VIGIL_RUN_HUB_HTTP_PORT", 8080, "hub HTTP (API and console)"),
    PortSpec("VIGIL_RUN_EDGE_NATS_PORT", 14223, "edge leaf NATS clients"),
    PortSpec("VIGIL_RUN_EDGE_NATS_HTTP_PORT", 18223, "edge leaf NATS monitoring"),
    PortSpec("VIGIL_RUN_EDGE_HTTP_PORT", 8081, "edge local page"),
    PortSpec("VIGIL_RUN_SATEL_PORT", 17094, "emulated Satel panel (ETHM-1 integration)"),
    PortSpec("VIGIL_RUN_SATEL_CONTROL_PORT", 17095, "emulated Satel panel control (HTTP)"),
]

#: The emulated panel's id in the edge config, and the sample site's user code for commands.
SATEL_PANEL_ID = "panel-1"
SATEL_USER_CODE = "1234"


MASTER_EMAIL = "master@vigil.local"
#: The demo box's site admin for its local page (what `python -m edge enroll` makes on a real box).
EDGE_ADMIN = "admin"

SQL_DEMO_OBJECT = """
INSERT INTO objects (name, address, type) SELECT 'Demo site', 'ul. Przykładowa 1, Kraków', 'OFFICE'
WHERE NOT EXISTS (SELECT 1 FROM panels WHERE edge_id = $1 AND source = $2)
RETURNING id
"""
SQL_DEMO_PANEL = "INSERT INTO panels (object_id, edge_id, source, model) VALUES ($1, $2, $3, 'INTEGRA (emulated)')"


async def seed_demo_site(conn: asyncpg.Connection, edge_id: str, panel_id: str) -> None:
    """Give the emulated panel an object, once, so its alarms reach operators under a name."""
    async with conn.transaction():
        object_id = await conn.fetchval(SQL_DEMO_OBJECT, edge_id, panel_id)
        if object_id is not None:
            await conn.execute(SQL_DEMO_PANEL, object_id, edge_id, panel_id)


def master_password(path: Path) -> str:
    """This installation's MASTER password for the demo login: generated once (never a shipped
    default), kept in a 0600 file under the data folder."""
    if not path.exists():
        create_private_file(path, secrets.token_urlsafe(12) + "\n")
    return read_private_file(path, "master password file", StackError)


def edge_site_admin(data_dir: Path, password_file: Path) -> str:
    """The demo box's site admin: made on the first run with a password generated like the
    MASTER's (kept in `password_file`, 0600); returns that password."""
    password = master_password(password_file)
    if AccountStore(data_dir).get(EDGE_ADMIN) is None:
        create_account(data_dir, EDGE_ADMIN, password, "admin")
    return password


class StackError(Exception):
    """The stack cannot start; the message says why and what to change."""


def resolve_ports(env: dict[str, str], external_db: bool) -> dict[str, int]:
    """Each port from its variable (or default), checked free; raises StackError naming the taken
    or invalid ones."""
    ports: dict[str, int] = {}
    problems: list[str] = []
    for spec in PORTS:
        if spec.var == "VIGIL_RUN_PG_PORT" and external_db:
            continue
        raw = env.get(spec.var, str(spec.default))
        try:
            port = int(raw)
            if not 1 <= port <= 65535:
                raise ValueError
        except ValueError:
            problems.append(f"{spec.var}={raw!r} is not a port number")
            continue
        if port in ports.values():
            problems.append(f"{spec.var}={port} is already used for another service of the stack")
        elif not port_is_free(HOST, port):
            problems.append(f"port {port} ({spec.what}) is taken: set {spec.var} to a free port")
        ports[spec.var] = port
    if problems:
        raise StackError("cannot start:\n  " + "\n  ".join(problems))
    return ports


class Stack:
    """The processes of one demo system, started and stopped in order."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root.resolve()
        self.env = env
        self.edge_id = env.get("VIGIL_RUN_EDGE_ID", "site-1")
        self.external_db = env.get("VIGIL_HUB_DATABASE_URL")
        self.ports = resolve_ports(env, bool(self.external_db))
        self.logs = self.root / "log"
        self.started: list[tuple[str, object]] = []

    def _p(self, var: str) -> int:
        return self.ports[var]

    async def start(self) -> None:
        edge_dir = self.root / "edge" / self.edge_id
        # Every NATS port needs credentials (docs/architecture.md §4.1): the hub's CA, users and
        # passwords under hub/nats; the demo box gets fresh leaf credentials at each start, as an
        # enrolment would give them, and its leaf user is in the users file from the hub's first start.
        nats_auth = HubNatsAuth(self.root / "hub" / "nats")
        nats_auth.prepare(["localhost"], [HOST])
        edge_auth = EdgeNatsAuth(edge_dir / "nats", self.edge_id)
        nats_auth.write_users([edge_auth.enrol(nats_auth, f"tls://{HOST}:{self._p('VIGIL_RUN_HUB_LEAF_PORT')}")])
        hub_nats = NatsServer(
            nats_auth.server_config("vigil-hub-nats", HOST, self._p("VIGIL_RUN_HUB_NATS_PORT"),
                                    self._p("VIGIL_RUN_HUB_LEAF_PORT"), self._p("VIGIL_RUN_HUB_NATS_HTTP_PORT"),
                                    self.root / "hub" / "jetstream"),
            self.logs,
        )
        await hub_nats.start()
        self.started.append(("hub NATS", hub_nats))

        if self.external_db:
            dsn = self.external_db
        else:
            pg = EmbeddedPostgres(self.root / "hub" / "postgres", self._p("VIGIL_RUN_PG_PORT"), log_dir=self.logs)
            await pg.start()
            self.started.append(("PostgreSQL", pg))
            dsn = await pg.ensure_database("vigil")
        self.dsn = dsn

        key_path = edge_dir / "edge.key"
        if not key_path.exists():
            # The first run enrols the demo box, as an installer does with `python -m edge keygen`;
            # later runs keep its key (the agent itself never makes one).
            create_key_file(key_path)
        signer = load_key_file(key_path)
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
            await add_edge(conn, self.edge_id, signer.public_raw)
            await seed_demo_site(conn, self.edge_id, SATEL_PANEL_ID)
        finally:
            await conn.close()

        self.master_password = master_password(self.root / "hub" / "master-password")
        python = sys.executable
        hub_env = {**os.environ, "VIGIL_HUB_DATABASE_URL": dsn, "VIGIL_HUB_NATS_URL": hub_nats.url,
                   "VIGIL_HUB_HTTP_HOST": HOST, "VIGIL_HUB_HTTP_PORT": str(self._p("VIGIL_RUN_HUB_HTTP_PORT")),
                   "VIGIL_HUB_AUTH_SECRET_FILE": str(self.root / "hub" / "secret.key"),
                   "VIGIL_HUB_AUTH_MASTER_EMAIL": MASTER_EMAIL, "VIGIL_HUB_AUTH_MASTER_PASSWORD": self.master_password,
                   **nats_auth.hub_env()}
        hub = ManagedProcess("hub", [python, "-m", "hub", "serve"], log_path=self.logs / "hub.log", env=hub_env)
        hub.start()
        self.started.append(("hub", hub))
        await hub.wait_ready(lambda: tcp_port_open(HOST, self._p("VIGIL_RUN_HUB_HTTP_PORT")), 60)

        edge_nats = NatsServer(
            edge_auth.server_config(f"vigil-edge-{self.edge_id}-nats", HOST, self._p("VIGIL_RUN_EDGE_NATS_PORT"),
                                    self._p("VIGIL_RUN_EDGE_NATS_HTTP_PORT"), edge_dir / "jetstream",
                                    f"edge-{self.edge_id}"),
            self.logs,
        )
        await edge_nats.start()
        self.started.append(("edge NATS (leaf)", edge_nats))
        await edge_nats.wait_leaf()

        satel_port, control_port = self._p("VIGIL_RUN_SATEL_PORT"), self._p("VIGIL_RUN_SATEL_CONTROL_PORT")
        satel = ManagedProcess(
            "satel emulator",
            [python, "-m", "firmware_bridges.satel.emulator", "--host", HOST, "--port", str(satel_port),
             "--control-port", str(control_port)],
            log_path=self.logs / "satel-emulator.log",
        )
        satel.start()
        self.started.append(("Satel emulator", satel))
        # Probe the control port, not the module's: the module serves one client at a time, and it
        # starts before the control endpoint does.
        await satel.wait_ready(lambda: tcp_port_open(HOST, control_port), 30)

        self.edge_admin_file = self.root / "edge" / f"{self.edge_id}-admin-password"
        self.edge_admin_password = await asyncio.to_thread(edge_site_admin, edge_dir, self.edge_admin_file)
        # The panel replaces the demo source: its events are the real kinds the hub handles.
        panels = [{"id": SATEL_PANEL_ID, "host": HOST, "port": satel_port}]
        edge_env = {**os.environ, "VIGIL_EDGE_EDGE_ID": self.edge_id, "VIGIL_EDGE_DATA_DIR": str(edge_dir),
                    "VIGIL_EDGE_NATS_URL": edge_nats.url, "VIGIL_EDGE_HTTP_HOST": HOST,
                    "VIGIL_EDGE_HTTP_PORT": str(self._p("VIGIL_RUN_EDGE_HTTP_PORT")),
                    "VIGIL_EDGE_SATEL_PANELS": json.dumps(panels), **edge_auth.edge_env()}
        edge = ManagedProcess("edge", [python, "-m", "edge", "run"], log_path=self.logs / f"edge-{self.edge_id}.log", env=edge_env)
        edge.start()
        self.started.append(("edge agent", edge))
        await edge.wait_ready(lambda: tcp_port_open(HOST, self._p("VIGIL_RUN_EDGE_HTTP_PORT")), 60)

    def summary(self) -> str:
        p = self._p
        db = self.external_db or f"{self.dsn} (embedded, data in {self.root / 'hub' / 'postgres'})"
        jar = self.root / "edge" / "cookies"
        lines = [
            "Vigil is running.",
            f"  hub             http://{HOST}:{p('VIGIL_RUN_HUB_HTTP_PORT')}  (health /healthz, metrics /metrics, edges /api/v1/edges)",
            f"  console         http://{HOST}:{p('VIGIL_RUN_HUB_HTTP_PORT')}/console/",
            f"  operator API    http://{HOST}:{p('VIGIL_RUN_HUB_HTTP_PORT')}/api/v1  (OpenAPI: /api/v1/openapi.json)",
            f"  login           {MASTER_EMAIL} / {self.master_password}  (kept in {self.root / 'hub' / 'master-password'})",
            f"  edge {self.edge_id:<10} http://{HOST}:{p('VIGIL_RUN_EDGE_HTTP_PORT')}  (local page: links, journal, forwarding)",
            f"  edge page login {EDGE_ADMIN} / {self.edge_admin_password}  (site admin, kept in {self.edge_admin_file})",
            f"  hub NATS        nats://{HOST}:{p('VIGIL_RUN_HUB_NATS_PORT')}  leaf nodes :{p('VIGIL_RUN_HUB_LEAF_PORT')}  monitor http://{HOST}:{p('VIGIL_RUN_HUB_NATS_HTTP_PORT')}",
            f"  edge leaf NATS  nats://{HOST}:{p('VIGIL_RUN_EDGE_NATS_PORT')}  monitor http://{HOST}:{p('VIGIL_RUN_EDGE_NATS_HTTP_PORT')}",
            f"  PostgreSQL      {db}",
            f"  data and logs   {self.root}  (logs in {self.logs})",
            f"  Satel panel     {SATEL_PANEL_ID}: emulated ETHM-1 on {HOST}:{p('VIGIL_RUN_SATEL_PORT')} (sample site, user code {SATEL_USER_CODE}),",
            f"                  polled by the edge; violate a zone with: curl -X POST http://{HOST}:{p('VIGIL_RUN_SATEL_CONTROL_PORT')}/zones/3/violate",
            "                  arm from the edge: log in, keeping the session cookie in a jar, then arm:",
            f"                  curl -c {jar} -H 'Content-Type: application/json' "
            f"-d '{{\"username\": \"{EDGE_ADMIN}\", \"password\": \"{self.edge_admin_password}\"}}' "
            f"http://{HOST}:{p('VIGIL_RUN_EDGE_HTTP_PORT')}/api/v1/login",
            f"                  curl -b {jar} -H 'Content-Type: application/json' "
            f"-d '{{\"partitions\": [1], \"code\": \"{SATEL_USER_CODE}\"}}' "
            f"http://{HOST}:{p('VIGIL_RUN_EDGE_HTTP_PORT')}/api/v1/links/satel/{SATEL_PANEL_ID}/arm",
            f"                  see the events: psql {self.dsn} -c 'select seq, kind, source, ts from events order by seq desc limit 5'",
            "Press Ctrl-C to stop everything.",
        ]
        return "\n".join(lines)

    async def watch(self, stop: asyncio.Event) -> str | None:
        """Wait for `stop`; returns an error message if a child died on its own first."""
        while not stop.is_set():
            for name, item in self.started:
                proc = item.process if hasattr(item, "process") else item
                if isinstance(proc, ManagedProcess):
                    try:
                        proc.check_alive()
                    except ProcessFailed as exc:
                        return f"{name} stopped unexpectedly: {exc}"
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
        return None

    def stop(self) -> None:
        for name, item in reversed(self.started):
            print(f"stopping {name} …", flush=True)
            item.stop()  # type: ignore[attr-defined]
        self.started.clear()


async def main() -> int:
    root = Path(os.environ.get("VIGIL_RUN_DIR", "var"))
    try:
        stack = Stack(root, dict(os.environ))
    except StackError as exc:
        print(f"vigil run: {exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    stop_on_signals(stop)
    print(f"starting Vigil (data in {stack.root}) …", flush=True)
    try:
        start = asyncio.create_task(stack.start())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({start, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not start.done():
            start.cancel()
            await asyncio.gather(start, return_exceptions=True)
            return 130
        start.result()
        print(stack.summary(), flush=True)
        problem = await stack.watch(stop)
        if problem:
            print(f"vigil run: {problem}", file=sys.stderr)
            return 1
        return 0
    except (ProcessFailed, OSError, asyncpg.PostgresError, RuntimeError, KeyFileError, PkiError, NatsConfigError) as exc:
        print(f"vigil run: could not start: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        print("Vigil stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
