"""`python -m edge robot add|remove|list` on an enrolled box (docs/architecture.md §4.4): logins
kept as hashes, credentials given once (0600), edge.toml's robots list edited in place, and the
box's running nats-server reloaded: a new robot gets in at once, a removed one is dropped at once
and cannot come back. Real nats-server started from the nats.conf the tool writes."""
from __future__ import annotations

import asyncio
import json
import stat
import tomllib
import urllib.request
from pathlib import Path
from typing import AsyncIterator

import msgspec
import nats
import nats.errors
import pytest

from edge.__main__ import main
from edge.leaf_credentials import SiteServerParams, write_site_nats_config
from shared import robots as wire
from shared.nats_server import nats_server_binary
from shared.process import ManagedProcess, free_port
from support.secure_nats import HOST, SecureNats
from support.waiting import wait_until

EDGE = "site-cli"


class EnrolledBox:
    """What enrolment leaves on a box: credentials folder, nats.conf with its parameters,
    edge.toml; and the box's nats-server run from that nats.conf as systemd would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.auth = SecureNats(root).site(EDGE).auth  # the leaf credential, enrolled by hand
        self.conf = self.auth.directory / "nats.conf"
        self.params = SiteServerParams(name=f"vigil-edge-{EDGE}", host=HOST, port=free_port(), http_port=free_port(),
                                       store_dir=str(root / "jetstream"), domain=f"edge-{EDGE}",
                                       pid_file=str(root / "nats-server.pid"))
        write_site_nats_config(self.auth, self.conf, self.params)
        self.toml = root / "edge.toml"
        self.toml.write_text(
            f'# the box\'s own notes stay\nedge_id = "{EDGE}"\ndata_dir = "{root / "data"}"\n\n[journal]\n'
            f'retention_hours = 24.0\n\n[robots]\nmissed_heartbeats = 4  # kept too\n\n[hub]\n'
            f'credentials_dir = "{self.auth.directory}"\nnats_config_file = "{self.conf}"\n')
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.params.port}"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.params.http_port}/healthz", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    async def start_server(self) -> None:
        self.process = ManagedProcess("box-nats", [nats_server_binary(), "-c", str(self.conf)],
                                      log_path=self.root / "box-nats.log")
        self.process.start()
        await self.process.wait_ready(self.healthy, 20)

    def stop_server(self) -> None:
        if self.process is not None:
            self.process.stop(10)
            self.process = None

    def configured(self) -> list[str]:
        return [r["id"] for r in tomllib.loads(self.toml.read_text()).get("robots", {}).get("robots", [])]


@pytest.fixture
async def enrolled(tmp_path: Path) -> AsyncIterator[EnrolledBox]:
    box = EnrolledBox(tmp_path)
    await box.start_server()
    try:
        yield box
    finally:
        box.stop_server()


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def refused(url: str, credentials: wire.RobotCredentials) -> str:
    """The server's answer to a login with these credentials."""
    try:
        nc = await nats.connect(url, user=credentials.user, password=credentials.password, max_reconnect_attempts=0,
                                allow_reconnect=False, connect_timeout=2)
    except (nats.errors.Error, OSError) as exc:
        return str(exc)
    await nc.close()
    return "let in"


async def test_add_list_and_remove_a_robot_on_a_running_box(enrolled: EnrolledBox,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    creds_file = enrolled.root / "rb-001.json"
    code, out, err = await run(capsys, "robot", "add", "RB-001", "--creds-out", str(creds_file),
                               "--config", str(enrolled.toml))
    assert code == 0, err
    assert "reloaded it" in out and "restart the agent" in out
    assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
    credentials = msgspec.json.decode(creds_file.read_bytes(), type=wire.RobotCredentials)
    assert (credentials.robot_id, credentials.user) == ("RB-001", "RB-001")
    # The password exists only in the credentials file: hashes in the logins and the config.
    for kept in (enrolled.auth.robots_file, enrolled.conf):
        assert credentials.password not in kept.read_text() and stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert enrolled.configured() == ["RB-001"]
    text = enrolled.toml.read_text()
    assert "# the box's own notes stay" in text and "missed_heartbeats = 4  # kept too" in text

    # The running server took it: the robot logs in and gets its own commands from the agent.
    got: list[str] = []
    closed = asyncio.Event()
    errors: list[str] = []

    async def on_closed() -> None:
        closed.set()

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    robot = await nats.connect(enrolled.url, user=credentials.user, password=credentials.password,
                               closed_cb=on_closed, error_cb=on_error, max_reconnect_attempts=2,
                               reconnect_time_wait=0.1)
    agent = await nats.connect(enrolled.url, **enrolled.auth.agent_login())  # type: ignore[arg-type]
    try:
        async def collect(msg: nats.aio.msg.Msg) -> None:
            got.append(msg.subject)

        await robot.subscribe(wire.subject("cmd", "RB-001"), cb=collect)
        await robot.flush()
        await agent.publish(wire.subject("cmd", "RB-001"), b"{}")
        await wait_until(lambda: got == ["robots.cmd.RB-001"], timeout=10, what="a command at the new robot")

        code, _, err = await run(capsys, "--config", str(enrolled.toml), "robot", "add", "RB-001")
        assert code == 1 and "has a login already" in err
        code, out, err = await run(capsys, "--config", str(enrolled.toml), "robot", "add", "RB-002")
        assert code == 0, err
        shown = msgspec.json.decode(next(line for line in out.splitlines() if line.startswith("{")),
                                    type=wire.RobotCredentials)
        assert shown.robot_id == "RB-002" and await refused(enrolled.url, shown) == "let in"
        code, out, _ = await run(capsys, "--config", str(enrolled.toml), "robot", "list")
        assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["RB-001", "RB-002"]
        assert "watched, 1 Hz" in out

        code, out, err = await run(capsys, "robot", "remove", "RB-001", "--config", str(enrolled.toml))
        assert code == 0, err
        assert "login removed" in out and "reloaded it" in out
        # Its live connection is dropped at the reload, and it cannot log in again.
        await asyncio.wait_for(closed.wait(), timeout=10)
        assert any("Authorization Violation" in e for e in errors), errors
        assert "Authorization Violation" in await refused(enrolled.url, credentials)
        assert enrolled.configured() == ["RB-002"]
        # The agent keeps its connection through the reloads.
        assert agent.is_connected
        await agent.flush(timeout=5)
        code, _, err = await run(capsys, "--config", str(enrolled.toml), "robot", "remove", "RB-001")
        assert code == 1 and "no login" in err
    finally:
        await robot.close()
        await agent.close()


async def test_a_robot_added_while_the_server_is_down_gets_in_at_its_next_start(enrolled: EnrolledBox,
                                                                               capsys: pytest.CaptureFixture[str]) -> None:
    enrolled.stop_server()
    creds_file = enrolled.root / "rb-003.json"
    code, out, err = await run(capsys, "--config", str(enrolled.toml), "robot", "add", "RB-003",
                               "--creds-out", str(creds_file))
    assert code == 0, err
    assert "no nats-server is running" in out and "it takes the new config at its next start" in out
    await enrolled.start_server()
    credentials = msgspec.json.decode(creds_file.read_bytes(), type=wire.RobotCredentials)
    assert await refused(enrolled.url, credentials) == "let in"
    # Credentials are written once, to a new file: never over another.
    code, _, err = await run(capsys, "--config", str(enrolled.toml), "robot", "add", "RB-004",
                             "--creds-out", str(creds_file))
    assert code == 1 and "exists already" in err
    code, _, err = await run(capsys, "--config", str(enrolled.toml), "robot", "add", "agent")
    assert code == 1 and "one token" in err
    assert sorted(enrolled.auth.robot_logins()) == ["RB-003"] and enrolled.configured() == ["RB-003"]


async def test_robot_needs_an_enrolled_box(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "edge.toml"
    toml.write_text('edge_id = "site-x"\n')
    code, _, err = await run(capsys, "--config", str(toml), "robot", "list")
    assert code == 1 and "enrol it first" in err


def test_the_enrolment_parameters_render_the_same_server(tmp_path: Path) -> None:
    """nats.conf is rendered again from the parameters kept beside it, with the pid file."""
    box = EnrolledBox(tmp_path)
    first = box.conf.read_text()
    assert f'pid_file: "{tmp_path / "nats-server.pid"}"' in first
    assert SiteServerParams.read(box.conf) == box.params
    write_site_nats_config(box.auth, box.conf)
    again = box.conf.read_text()
    # Only the agent's and Litestream's hashes differ (a new salt each); the server is the same.
    def salted(line: str) -> bool:
        return '"agent"' in line or '"litestream"' in line

    strip = [line for line in first.splitlines() if not salted(line)]
    assert strip == [line for line in again.splitlines() if not salted(line)]
    assert json.loads(SiteServerParams.path_for(box.conf).read_text())["port"] == box.params.port
