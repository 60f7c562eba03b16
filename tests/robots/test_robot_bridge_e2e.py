"""`python -m firmware_bridges.robot --mode MOCK` as a real process on a real nats-server, its
robot user limited exactly as an edge's server limits it (shared.nats_server.EdgeNatsConfig),
and this test playing the edge agent: heartbeats, identity, a command's acks, fencing, the
control endpoint's silence and dropped connection, and the goodbye at SIGTERM."""
from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import msgspec
import nats
import pytest

from firmware_bridges.robot.adapter import Command, ProgressReport, SettingsRefused
from firmware_bridges.robot.core import BridgeCore
from firmware_bridges.robot.diagnostics import diagnostics
from firmware_bridges.robot.link import RobotLink
from firmware_bridges.robot.mock import MockRobot
from shared.clock import SYSTEM_CLOCK
from shared.nats_server import (SITE_ACCOUNT, EdgeNatsConfig, LeafRemote, NatsUser, TlsFiles, hash_password,
                                nats_server_binary, new_password, render_account)
from shared.private_file import create_private_file, write_private_file
from shared.process import ManagedProcess, free_port, tcp_port_open
from shared.robots import (AckStatus, Cmd, CmdAck, Identity, RobotCredentials, RobotEnvelope, RobotState, Settings,
                           SettingsDesired, Status, decode, encode, robot_publish_subjects, subject)
from support.waiting import wait_until

ROBOT = "RB-001"
HOST = "127.0.0.1"
HEARTBEAT_S = 0.5


def _robot_user(password_hash: str) -> NatsUser:
    """The robot's user exactly as an edge's server config has it."""
    dummy = TlsFiles(Path("cert.pem"), Path("key.pem"), Path("ca.pem"))
    config = EdgeNatsConfig(name="edge-nats", host=HOST, port=1, http_port=1, store_dir=Path("js"), domain="edge-e1",
                            edge_id="e1", leaf=LeafRemote("tls://127.0.0.1:1", "edge-e1", "x", dummy),
                            agent_password_hash=password_hash, robots=((ROBOT, password_hash),))
    (user,) = [u for u in config.users() if u.name == ROBOT]
    return user


class Edge:
    """The test as the edge agent: everything the robot publishes, decoded, and commands to it."""

    def __init__(self, nc: nats.NATS) -> None:
        self.nc = nc
        self.messages: list[tuple[float, RobotEnvelope, Any]] = []

    async def listen(self) -> None:
        async def collect(msg: Any) -> None:
            env, payload = decode(msg.data, msg.subject)
            self.messages.append((time.monotonic(), env, payload))

        for subj in robot_publish_subjects(ROBOT):
            await self.nc.subscribe(subj, cb=collect)

    async def command(self, command_type: str, command_id: str, token: int | None = None, **args: Any) -> None:
        data = encode("cmd", ROBOT, str(uuid.uuid4()), datetime.now(timezone.utc), Cmd(command_type, args, token),
                      command_id)
        await self.nc.publish(subject("cmd", ROBOT), data)

    async def desired(self, settings: Settings, command_id: str, token: int | None) -> None:
        data = encode("settings.desired", ROBOT, str(uuid.uuid4()), datetime.now(timezone.utc),
                      SettingsDesired(settings=settings, fencing_token=token), command_id)
        await self.nc.publish(subject("settings.desired", ROBOT), data)

    def of(self, kind: type) -> list[tuple[float, RobotEnvelope, Any]]:
        return [m for m in self.messages if isinstance(m[2], kind)]

    def statuses(self) -> list[Status]:
        return [p for _, _, p in self.of(Status)]

    def acks(self, command_id: str) -> list[AckStatus]:
        return [p.status for _, env, p in self.of(CmdAck) if env.correlation_id == command_id]


class Site:
    """The edge's nats-server with the agent (this test, as `edge`) and the robot's credentials."""

    def __init__(self, url: str, edge: Edge, credentials: RobotCredentials, creds_file: Path,
                 server: ManagedProcess) -> None:
        self.url, self.edge, self.credentials, self.creds_file, self.server = url, edge, credentials, creds_file, server


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    agent_password, robot_password = new_password(), new_password()
    port = free_port()
    users = [NatsUser("agent", hash_password(agent_password)), _robot_user(hash_password(robot_password))]
    config = "\n".join([f'listen: "{HOST}:{port}"', "accounts {",
                        *render_account(SITE_ACCOUNT, users, jetstream=False), "}", ""])
    write_private_file(tmp_path / "nats.conf", config)
    server = ManagedProcess("nats", [nats_server_binary(), "-c", str(tmp_path / "nats.conf")],
                            log_path=tmp_path / "nats.log")
    server.start()
    credentials = RobotCredentials(robot_id=ROBOT, user=ROBOT, password=robot_password)
    create_private_file(tmp_path / "robot.creds", msgspec.json.encode(credentials).decode())
    nc: nats.NATS | None = None
    try:
        await server.wait_ready(lambda: tcp_port_open(HOST, port), 20)
        nc = await nats.connect(f"nats://{HOST}:{port}", user="agent", password=agent_password,
                                reconnect_time_wait=0.2, max_reconnect_attempts=-1)
        edge = Edge(nc)
        await edge.listen()
        yield Site(f"nats://{HOST}:{port}", edge, credentials, tmp_path / "robot.creds", server)
    finally:
        if nc is not None:
            await nc.close()
        server.stop(5)


@pytest.fixture
async def stack(site: Site, tmp_path: Path) -> AsyncIterator[tuple[Edge, ManagedProcess, int]]:
    control_port = free_port()
    bridge = ManagedProcess("bridge", [
        sys.executable, "-m", "firmware_bridges.robot", "--nats", site.url, "--creds", str(site.creds_file),
        "--robot-id", ROBOT, "--mode", "MOCK", "--name", "Rover", "--heartbeat-s", str(HEARTBEAT_S),
        "--telemetry-hz", "2", "--time-scale", "20", "--control-port", str(control_port),
        "--state-dir", str(tmp_path / "state")], log_path=tmp_path / "bridge.log", cwd=tmp_path)
    try:
        bridge.start()
        await bridge.wait_ready(lambda: tcp_port_open(HOST, control_port), 20)
        yield site.edge, bridge, control_port
    finally:
        bridge.stop(5)


async def _control(port: int, path: str, body: dict[str, Any] | None = None) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://{HOST}:{port}{path}", json=body or {}) as answer:
            assert answer.status == 200, await answer.text()


async def _robot_is(port: int, state: str) -> bool:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://{HOST}:{port}/state") as answer:
            return bool((await answer.json())["mock"]["robot"]["state"] == state)


async def test_the_bridge_speaks_the_robot_wire_to_its_edge(stack: tuple[Edge, ManagedProcess, int], site: Site,
                                                            tmp_path: Path) -> None:
    edge, bridge, control = stack
    await wait_until(lambda: len(edge.statuses()) >= 3, timeout=15, what="status heartbeats")
    first = edge.statuses()[0]
    assert first.state is RobotState.CHARGING and first.heartbeat_interval_s == HEARTBEAT_S and not first.goodbye

    await edge.command("report_identity", "q1")
    await wait_until(lambda: edge.acks("q1") == [AckStatus.FINISHED], timeout=10, what="report_identity answered")
    ((_, env, identity),) = edge.of(Identity)
    assert env.correlation_id == "q1" and identity.serial_number == "MOCK-RB-001" and identity.name == "Rover"

    await edge.command("goto", "g1", 5, x=2.0, y=0.0)
    await wait_until(lambda: AckStatus.FINISHED in edge.acks("g1"), timeout=10, what="goto finished")
    acks = edge.acks("g1")
    assert acks[0] is AckStatus.WAITING and acks[1] is AckStatus.RUNNING and acks[-1] is AckStatus.FINISHED
    assert set(acks[1:-1]) <= {AckStatus.RUNNING}
    assert any(s.current_command_id == "g1" for s in edge.statuses())

    await edge.command("goto", "g2", 3, x=0.0, y=0.0)
    await wait_until(lambda: edge.acks("g2"), timeout=10, what="the stale command's ack")
    assert edge.acks("g2") == [AckStatus.REJECTED_STALE_TOKEN]
    assert json.loads((tmp_path / "state" / "fencing.json").read_text())["highestFencingToken"] == 5

    # Silenced, the robot keeps its heartbeat but answers nothing; the edge re-sends and, once it
    # listens again, gets its answer (once: the repeat is recognised).
    await _control(control, "/silence", {"on": True})
    await edge.command("dock", "d1", 5)
    heard = len(edge.statuses())
    await wait_until(lambda: len(edge.statuses()) >= heard + 3, timeout=10, what="heartbeats while silenced")
    assert edge.acks("d1") == []
    await _control(control, "/silence", {"on": False})
    await edge.command("dock", "d1", 5)
    await wait_until(lambda: AckStatus.FINISHED in edge.acks("d1"), timeout=10, what="dock answered")
    assert edge.acks("d1").count(AckStatus.WAITING) == 1

    # A dropped connection: no goodbye, the heartbeats stop. A command that ends meanwhile (60 m
    # at 20 m/s of robot time: 3 s) has its ack kept, and it goes out with a status at once when
    # the robot is back.
    await edge.command("goto", "g3", 5, x=60.0, y=0.0)
    await wait_until(lambda: AckStatus.RUNNING in edge.acks("g3"), timeout=10, what="the long goto to start")
    await _control(control, "/disconnect")
    await wait_until(lambda: time.monotonic() - edge.of(Status)[-1][0] > 3 * HEARTBEAT_S, timeout=10,
                     what="heartbeats to stop")
    assert AckStatus.FINISHED not in edge.acks("g3"), "the goto ended before the connection dropped"
    await wait_until(lambda: _robot_is(control, "IDLE"), timeout=10, what="the goto to end")
    assert not any(s.goodbye for s in edge.statuses())
    heard = len(edge.statuses())
    asked = time.monotonic()
    await _control(control, "/reconnect")
    await wait_until(lambda: len(edge.statuses()) > heard, timeout=10, what="a status after the reconnect")
    assert edge.of(Status)[heard][0] - asked < 5
    await wait_until(lambda: AckStatus.FINISHED in edge.acks("g3"), timeout=10, what="the kept ack")

    bridge.send_signal(signal.SIGUSR1)
    await wait_until(lambda: '"diagnostics": {' in (tmp_path / "bridge.log").read_text(), timeout=10,
                     what="the diagnostics dump in the log")

    bridge.send_signal(signal.SIGTERM)
    await wait_until(lambda: edge.statuses()[-1].goodbye, timeout=10, what="the goodbye status")
    assert bridge.proc is not None and bridge.proc.wait(10) == 0
    log = (tmp_path / "bridge.log").read_text()
    assert "permissions violation" not in log.lower() and "Traceback" not in log
    assert site.credentials.password not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert lines and all(entry["service"] == "robot-bridge" for entry in lines)


class BrokenRobot(MockRobot):
    """A robot whose adapter has bugs and refusals."""

    async def execute(self, command: Command, progress: ProgressReport) -> str:
        if command.type == "goto":
            raise RuntimeError("gearbox")
        return await super().execute(command, progress)

    async def apply_settings(self, settings: Settings) -> Settings:
        if settings.camera_on is False:
            raise SettingsRefused("the camera is busy recording")
        raise KeyError("maxSpeedMps")


async def test_the_link_in_process_survives_its_adapter_and_a_server_restart(site: Site, tmp_path: Path) -> None:
    robot = BrokenRobot(ROBOT, time_scale=20)
    core = BridgeCore(ROBOT, robot, SYSTEM_CLOCK, heartbeat_s=HEARTBEAT_S, telemetry_hz=0)
    link = RobotLink(site.url, site.credentials, robot, core, state_dir=tmp_path / "state")
    stop = asyncio.Event()
    running = asyncio.create_task(link.run(stop))
    edge = site.edge
    try:
        await wait_until(lambda: edge.statuses(), timeout=10, what="the first status")
        await edge.command("goto", "g1", 1, x=1.0, y=0.0)
        await edge.desired(Settings(camera_on=False), "s1", 1)
        await edge.desired(Settings(max_speed_mps=1.5), "s2", 1)
        await wait_until(lambda: edge.acks("g1")[-1:] == [AckStatus.FAILED] and edge.acks("s2")[-1:] == [AckStatus.FAILED],
                         timeout=10, what="the adapter's failures acked")
        assert [p.detail for _, env, p in edge.of(CmdAck) if env.correlation_id in ("g1", "s1", "s2") and p.status.final] == [
            "adapter error: RuntimeError: gearbox", "the camera is busy recording", "adapter error: KeyError: 'maxSpeedMps'"]
        assert not running.done() and link.connected

        # The edge's server restarts: the robot reconnects by itself and its heartbeat goes on.
        site.server.stop(5)
        await wait_until(lambda: not link.connected, timeout=10, what="the robot to notice")
        site.server.start()
        await wait_until(lambda: link.connected, timeout=15, what="the robot to reconnect")
        heard = len(edge.statuses())
        await wait_until(lambda: len(edge.statuses()) > heard, timeout=15, what="heartbeats after the restart")
        assert diagnostics(link)["nats"]["connects"] == 1  # one connection, reconnected by nats-py
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    await wait_until(lambda: edge.statuses()[-1].goodbye, timeout=10, what="the goodbye status")
