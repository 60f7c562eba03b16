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

from provisioning.demo_site import (
    OPERATOR_EMAIL, HubApi, HubApiError, create_edge, ensure_object, ensure_object_details, ensure_operator,
    ensure_panel, ensure_panel_elements,
)
from provisioning.db_roles import ensure_runtime_role
from provisioning.embedded_pg import EmbeddedPostgres
from edge.leaf_credentials import EdgeNatsAuth
from provisioning.secure_nats import HubNatsAuth
from shared.eventloop import stop_on_signals
from shared.nats_server import NatsConfigError, NatsServer
from shared.pki import PkiError
from shared.process import ManagedProcess, ProcessFailed, port_is_free, tcp_port_open
from shared.private_file import create_private_file, read_private_file
from shared.signing import KeyFileError

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
    PortSpec("VIGIL_RUN_HUB_HTTPS_PORT", 8443, "hub HTTPS (API, console and edge enrolment)"),
    PortSpec("VIGIL_RUN_EDGE_NATS_PORT", 14223, "edge leaf NATS clients"),
    PortSpec("VIGIL_RUN_EDGE_NATS_HTTP_PORT", 18223, "edge leaf NATS monitoring"),
    PortSpec("VIGIL_RUN_EDGE_HTTP_PORT", 8081, "edge local page"),
    PortSpec("VIGIL_RUN_SATEL_PORT", 17094, "emulated Satel panel (ETHM-1 integration)"),
    PortSpec("VIGIL_RUN_SATEL_CONTROL_PORT", 17095, "emulated Satel panel control (HTTP)"),
    PortSpec("VIGIL_RUN_GSM_CONTROL_PORT", 17096, "emulated GSM modem control (HTTP)"),
    PortSpec("VIGIL_RUN_ROBOT1_CONTROL_PORT", 17097, "mock robot RB-001 control (HTTP)"),
    PortSpec("VIGIL_RUN_ROBOT2_CONTROL_PORT", 17098, "mock robot RB-002 control (HTTP)"),
]

#: The emulated panel's id in the edge config, and the sample site's user code for commands.
SATEL_PANEL_ID = "panel-1"
SATEL_USER_CODE = "1234"
#: The emulated GSM modem's id in the edge config, and the senders it trusts: the demo's
#: temperature loggers (a number and the vendors' alphanumeric ids).
GSM_MODEM_ID = "gsm-1"
GSM_TRUSTED = ["+48600123012", "Efento", "BluLog"]
#: The demo site's patrol robots (mock robots of firmware_bridges.robot) and their control ports.
ROBOTS = {"RB-001": "VIGIL_RUN_ROBOT1_CONTROL_PORT", "RB-002": "VIGIL_RUN_ROBOT2_CONTROL_PORT"}


MASTER_EMAIL = "master@vigil.local"
#: The demo box's site admin for its local page (what `python -m edge enroll` makes on a real box).
EDGE_ADMIN = "admin"

def master_password(path: Path) -> str:
    """This installation's MASTER password for the demo login: generated once (never a shipped
    default), kept in a 0600 file under the data folder."""
    if not path.exists():
        create_private_file(path, secrets.token_urlsafe(12) + "\n")
    return read_private_file(path, "master password file", StackError)


def operator_password(api: HubApi, path: Path) -> str:
    """The demo OPERATOR's password, kept in a 0600 file beside the master's. A new one is
    generated when the file is missing, and the file is written only once the account signs in
    with it, so a kept file always holds a password that works."""
    is_new = not path.exists()
    password = secrets.token_urlsafe(12) if is_new else read_private_file(path, "operator password file", StackError)
    ensure_operator(api, password, is_new)
    if is_new:
        create_private_file(path, password + "\n")
    return password


@dataclass(frozen=True)
class BoxPaths:
    """Where the demo box keeps what enrolment wrote (a real box: /etc/vigil-edge, /var/lib/vigil-edge)."""

    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def config_path(self) -> Path:
        return self.config_dir / "edge.toml"


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
        # passwords under hub/nats. The hub owns the users file and keeps it in step with the
        # edges it enrols; the demo box joins through enrolment, as a real one does.
        nats_auth = HubNatsAuth(self.root / "hub" / "nats")
        nats_auth.prepare(["localhost"], [HOST])
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
            db_env = {}  # the hub reads VIGIL_HUB_DATABASE_URL (and _OWNER_URL if set) from the environment
        else:
            pg = EmbeddedPostgres(self.root / "hub" / "postgres", self._p("VIGIL_RUN_PG_PORT"), log_dir=self.logs)
            await pg.start()
            self.started.append(("PostgreSQL", pg))
            dsn = await pg.ensure_database("vigil")
            # The hub runs as a role that owns no table; migrations as the owner (hub/db/roles.py).
            db_env = {"VIGIL_HUB_DATABASE_URL": await ensure_runtime_role(dsn), "VIGIL_HUB_DATABASE_OWNER_URL": dsn}
        self.dsn = dsn

        self.master_password = master_password(self.root / "hub" / "master-password")
        python = sys.executable
        leaf_url = f"tls://{HOST}:{self._p('VIGIL_RUN_HUB_LEAF_PORT')}"
        tls = nats_auth.server_tls
        hub_env = {**os.environ, **db_env, "VIGIL_HUB_NATS_URL": hub_nats.url,
                   "VIGIL_HUB_HTTP_HOST": HOST, "VIGIL_HUB_HTTP_PORT": str(self._p("VIGIL_RUN_HUB_HTTP_PORT")),
                   "VIGIL_HUB_HTTPS_HOST": HOST, "VIGIL_HUB_HTTPS_PORT": str(self._p("VIGIL_RUN_HUB_HTTPS_PORT")),
                   "VIGIL_HUB_HTTPS_CERT_FILE": str(tls.cert), "VIGIL_HUB_HTTPS_KEY_FILE": str(tls.key),
                   "VIGIL_HUB_AUTH_SECRET_FILE": str(self.root / "hub" / "secret.key"),
                   "VIGIL_HUB_AUTH_MASTER_EMAIL": MASTER_EMAIL, "VIGIL_HUB_AUTH_MASTER_PASSWORD": self.master_password,
                   **nats_auth.hub_env(manage_users=True, leaf_url=leaf_url)}
        hub = ManagedProcess("hub", [python, "-m", "hub", "serve"], log_path=self.logs / "hub.log", env=hub_env)
        hub.start()
        self.started.append(("hub", hub))
        await hub.wait_ready(lambda: tcp_port_open(HOST, self._p("VIGIL_RUN_HUB_HTTPS_PORT")), 60)

        satel_port, control_port = self._p("VIGIL_RUN_SATEL_PORT"), self._p("VIGIL_RUN_SATEL_CONTROL_PORT")
        self.box = BoxPaths(edge_dir)
        self.edge_admin_file = self.root / "edge" / f"{self.edge_id}-admin-password"
        await self._demo_site(satel_port)
        self.edge_admin_password = read_private_file(self.edge_admin_file, "site admin password file", StackError)

        # The site's robots get their logins as an installer gives them, before the box's server
        # starts with them.
        await self._robot_logins()
        # The box's leaf server, from the credential enrolment kept.
        edge_auth = EdgeNatsAuth(self.box.config_dir, self.edge_id)
        edge_nats = NatsServer(
            edge_auth.server_config(f"vigil-edge-{self.edge_id}-nats", HOST, self._p("VIGIL_RUN_EDGE_NATS_PORT"),
                                    self._p("VIGIL_RUN_EDGE_NATS_HTTP_PORT"), self.box.data_dir / "jetstream",
                                    f"edge-{self.edge_id}"),
            self.logs,
        )
        await edge_nats.start()
        self.started.append(("edge NATS (leaf)", edge_nats))
        await edge_nats.wait_leaf()

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

        # The temperature loggers' modem: a USB GSM modem emulated on a pseudo-terminal.
        modem_link = self.box.data_dir / "ttyGSM0"
        gsm_control = self._p("VIGIL_RUN_GSM_CONTROL_PORT")
        gsm = ManagedProcess(
            "gsm emulator",
            [python, "-m", "firmware_bridges.gsm.emulator", "--link", str(modem_link), "--control-port", str(gsm_control)],
            log_path=self.logs / "gsm-emulator.log",
        )
        gsm.start()
        self.started.append(("GSM modem emulator", gsm))
        await gsm.wait_ready(lambda: tcp_port_open(HOST, gsm_control), 30)

        # The agent runs with the config enrolment wrote; the emulated panel and modem are added
        # here, as an installer adds the site's devices after enrolling.
        panels = [{"id": SATEL_PANEL_ID, "host": HOST, "port": satel_port}]
        modems = [{"id": GSM_MODEM_ID, "port": str(modem_link), "trusted_senders": GSM_TRUSTED}]
        edge_env = {**os.environ, "VIGIL_EDGE_SATEL_PANELS": json.dumps(panels), "VIGIL_EDGE_GSM_MODEMS": json.dumps(modems)}
        edge = ManagedProcess("edge", [python, "-m", "edge", "--config", str(self.box.config_path), "run"],
                              log_path=self.logs / f"edge-{self.edge_id}.log", env=edge_env)
        edge.start()
        self.started.append(("edge agent", edge))
        await edge.wait_ready(lambda: tcp_port_open(HOST, self._p("VIGIL_RUN_EDGE_HTTP_PORT")), 60)

        # The robots start once the agent has made the streams that keep what they say.
        for robot, port_var in ROBOTS.items():
            control = self._p(port_var)
            bridge = ManagedProcess(
                f"robot {robot}",
                [python, "-m", "firmware_bridges.robot", "--nats", edge_nats.url, "--creds", str(self._creds(robot)),
                 "--robot-id", robot, "--mode", "MOCK", "--control-port", str(control),
                 "--state-dir", str(self.box.data_dir / "robots" / robot)],
                log_path=self.logs / f"robot-{robot}.log",
            )
            bridge.start()
            self.started.append((f"mock robot {robot}", bridge))
            await bridge.wait_ready(lambda: tcp_port_open(HOST, control), 30)

    def _creds(self, robot: str) -> Path:
        return self.box.config_dir / "robots" / f"{robot}.json"

    async def _robot_logins(self) -> None:
        """`python -m edge robot add` for each demo robot without its credentials file (the first
        run; a login whose file was lost is removed and made again, as an installer would)."""
        for robot in ROBOTS:
            if self._creds(robot).exists():
                continue
            self._creds(robot).parent.mkdir(parents=True, exist_ok=True)
            listed = (await self._edge_robot("list")).splitlines()
            if any(line.split()[:1] == [robot] and "login since" in line for line in listed):
                await self._edge_robot("remove", robot)
            await self._edge_robot("add", robot, "--creds-out", str(self._creds(robot)))
            print(f"  robot {robot}: login made (python -m edge robot add)", flush=True)

    async def _edge_robot(self, *args: str) -> str:
        """Run `python -m edge robot …` on the demo box; its output (also logged)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge", "--config", str(self.box.config_path), "robot", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        text = out.decode(errors="replace")
        with (self.logs / "edge-robots.log").open("a") as log_file:
            log_file.write(text)
        if proc.returncode != 0:
            raise StackError(f"python -m edge robot {' '.join(args)} failed:\n{text}")
        return text

    async def _demo_site(self, satel_port: int) -> None:
        """The demo object (contacts, procedures), edge, panel (named partitions, zones, outputs)
        and operator, made through the hub's API as an admin would; the box enrolled with
        `python -m edge enroll` and the token, the first time only."""
        api = HubApi(f"http://{HOST}:{self._p('VIGIL_RUN_HUB_HTTP_PORT')}")
        await asyncio.to_thread(api.login, MASTER_EMAIL, self.master_password)
        object_id = await asyncio.to_thread(ensure_object, api)
        await asyncio.to_thread(ensure_object_details, api, object_id)
        if not self.box.config_path.exists():
            created = await asyncio.to_thread(create_edge, api, self.edge_id, object_id)
            await self._enrol(created["token"], created["fingerprint"])
        panel_id = await asyncio.to_thread(ensure_panel, api, object_id, self.edge_id, SATEL_PANEL_ID, HOST, satel_port)
        await asyncio.to_thread(ensure_panel_elements, api, panel_id)
        self.operator_file = self.root / "hub" / "operator-password"
        self.operator_password = await asyncio.to_thread(operator_password, api, self.operator_file)

    async def _enrol(self, token: str, fingerprint: str) -> None:
        print(f"enrolling the demo box as edge {self.edge_id} (python -m edge enroll) …", flush=True)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge", "enroll", "--hub", f"https://{HOST}:{self._p('VIGIL_RUN_HUB_HTTPS_PORT')}",
            "--token", token, "--fingerprint", fingerprint, "--config-dir", str(self.box.config_dir),
            "--data-dir", str(self.box.data_dir), "--http-port", str(self._p("VIGIL_RUN_EDGE_HTTP_PORT")),
            "--nats-port", str(self._p("VIGIL_RUN_EDGE_NATS_PORT")),
            "--nats-http-port", str(self._p("VIGIL_RUN_EDGE_NATS_HTTP_PORT")),
            "--site-admin", EDGE_ADMIN, "--site-admin-password-file", str(self.edge_admin_file),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        text = out.decode(errors="replace")
        (self.logs / "edge-enroll.log").write_text(text)
        if proc.returncode != 0:
            raise StackError(f"enrolling the demo box failed:\n{text}")
        print("\n".join(f"  {line}" for line in text.splitlines() if line.startswith("[")), flush=True)

    def summary(self) -> str:
        p = self._p
        db = self.external_db or f"{self.dsn} (embedded, data in {self.root / 'hub' / 'postgres'})"
        jar = self.root / "edge" / "cookies"
        lines = [
            "Vigil is running.",
            f"  hub             http://{HOST}:{p('VIGIL_RUN_HUB_HTTP_PORT')}  (health /healthz, metrics /metrics, edges /api/v1/edges)",
            f"  console         http://{HOST}:{p('VIGIL_RUN_HUB_HTTP_PORT')}/console/",
            f"  operator API    http://{HOST}:{p('VIGIL_RUN_HUB_HTTP_PORT')}/api/v1  (OpenAPI: /api/v1/openapi.json)",
            f"  login           {MASTER_EMAIL} / {self.master_password}  (MASTER, kept in {self.root / 'hub' / 'master-password'})",
            f"  operator login  {OPERATOR_EMAIL} / {self.operator_password}  (OPERATOR: works the alarm queue, kept in {self.operator_file})",
            f"  edge {self.edge_id:<10} http://{HOST}:{p('VIGIL_RUN_EDGE_HTTP_PORT')}  (local page: links, journal, forwarding)",
            f"  edge page login {EDGE_ADMIN} / {self.edge_admin_password}  (site admin, kept in {self.edge_admin_file})",
            f"  hub NATS        nats://{HOST}:{p('VIGIL_RUN_HUB_NATS_PORT')}  leaf nodes :{p('VIGIL_RUN_HUB_LEAF_PORT')}  monitor http://{HOST}:{p('VIGIL_RUN_HUB_NATS_HTTP_PORT')}",
            f"  edge leaf NATS  nats://{HOST}:{p('VIGIL_RUN_EDGE_NATS_PORT')}  monitor http://{HOST}:{p('VIGIL_RUN_EDGE_NATS_HTTP_PORT')}",
            f"  PostgreSQL      {db}",
            f"  data and logs   {self.root}  (logs in {self.logs})",
            f"  Satel panel     {SATEL_PANEL_ID}: emulated ETHM-1 on {HOST}:{p('VIGIL_RUN_SATEL_PORT')} (sample site, user code {SATEL_USER_CODE}),",
            f"                  polled by the edge; its control endpoint lists what it can do: curl http://{HOST}:{p('VIGIL_RUN_SATEL_CONTROL_PORT')}/",
            "                  make an alarm as an installer tests one (README, \"Make an alarm\"): arm partition 1 from",
            "                  the edge (log in, keeping the session cookie in a jar, then arm), then trip zone 3 in it:",
            f"                  curl -c {jar} -H 'Content-Type: application/json' "
            f"-d '{{\"username\": \"{EDGE_ADMIN}\", \"password\": \"{self.edge_admin_password}\"}}' "
            f"http://{HOST}:{p('VIGIL_RUN_EDGE_HTTP_PORT')}/api/v1/login",
            f"                  curl -b {jar} -H 'Content-Type: application/json' "
            f"-d '{{\"partitions\": [1], \"code\": \"{SATEL_USER_CODE}\"}}' "
            f"http://{HOST}:{p('VIGIL_RUN_EDGE_HTTP_PORT')}/api/v1/links/satel/{SATEL_PANEL_ID}/arm",
            f"                  curl -X POST http://{HOST}:{p('VIGIL_RUN_SATEL_CONTROL_PORT')}/zones/3/violate",
            "                  the alarm: on the console, or GET /api/v1/alarms?status=NEW on the operator API",
            f"  GSM modem       {GSM_MODEM_ID}: emulated USB modem on {self.box.data_dir / 'ttyGSM0'}, trusting {', '.join(GSM_TRUSTED)};",
            f"                  a temperature logger's SMS: curl -H 'Content-Type: application/json' "
            f"-d '{{\"sender\": \"Efento\", \"text\": \"Efento: sensor 282C02 temperature 9.4C above threshold 8.0C\"}}' "
            f"http://{HOST}:{p('VIGIL_RUN_GSM_CONTROL_PORT')}/sms",
            f"                  see the events: psql {self.dsn} -c 'select seq, kind, source, ts from events order by seq desc limit 5'",
            *[f"  robot {robot}     mock patrol robot on the edge's NATS; control (faults, battery, estop button): "
              f"curl http://{HOST}:{p(var)}/" for robot, var in ROBOTS.items()],
            "                  see them on the console's Robots page or GET /api/v1/robots",
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
    except (ProcessFailed, OSError, asyncpg.PostgresError, RuntimeError, KeyFileError, PkiError, NatsConfigError,
            HubApiError, StackError) as exc:
        print(f"vigil run: could not start: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        print("Vigil stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
