"""The MOCK robot: its simulation stepped by hand (battery, patrol, faults, estop, settings), the
adapter running commands on it against the clock, its HTTP control endpoint, and the bridge's
pieces around it that need no server (fencing state file, credentials, adapter loading)."""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from firmware_bridges.robot.__main__ import StartError, read_credentials
from firmware_bridges.robot.adapter import AdapterLoadError, AdapterOptions, Command, CommandFailed, load_adapter
from firmware_bridges.robot.control import create_control_app
from firmware_bridges.robot.core import BridgeCore
from firmware_bridges.robot.link import FENCING_FILE, RobotLink, load_fencing_token, save_fencing_token
from firmware_bridges.robot.mock import MockRobot
from firmware_bridges.robot.sim import RobotSim, SimRefused
from shared.clock import FakeClock
from shared.private_file import create_private_file
from shared.robots import GotoArgs, NoArgs, PatrolArgs, RobotCredentials, RobotState, Settings, Waypoint
from support.waiting import wait_until

ROBOT = "RB-001"
SQUARE = [Waypoint(0.0, 0.0), Waypoint(4.0, 0.0), Waypoint(4.0, 4.0), Waypoint(0.0, 4.0)]


def undocked(battery_pct: float = 80.0) -> RobotSim:
    sim = RobotSim(settings=Settings(max_speed_mps=1.0, patrol_route=SQUARE, camera_on=True))
    sim.goto(0.0, 0.0)
    sim.step(0.01)  # arrived where it stands: off the dock, IDLE
    sim.set_battery(battery_pct)
    assert sim.state is RobotState.IDLE and not sim.docked
    return sim


# ---- the simulation ------------------------------------------------------------------------------

def test_the_battery_drains_faster_moving_than_idle() -> None:
    sim = undocked(battery_pct=50.0)
    sim.step(100.0)
    idle_drain = 50.0 - sim.battery_pct
    assert idle_drain == pytest.approx(100 * sim.config.drain_idle_pct_per_s)
    sim.goto(1000.0, 0.0)
    before = sim.battery_pct
    sim.step(100.0)
    assert before - sim.battery_pct == pytest.approx(100 * sim.config.drain_moving_pct_per_s)
    assert before - sim.battery_pct > idle_drain


def test_the_robot_charges_on_the_dock_until_full() -> None:
    sim = undocked(battery_pct=50.0)
    sim.goto(3.0, 4.0)
    sim.step(10.0)
    task = sim.dock()
    sim.step(4.0)
    assert sim.state is RobotState.DOCKING and sim.progress(task) == pytest.approx(0.8)
    sim.step(2.0)
    assert sim.outcome(task) is not None and sim.outcome(task).ok  # type: ignore[union-attr]
    assert sim.state is RobotState.CHARGING and sim.charging and sim.docked
    level = sim.battery_pct
    sim.step(10.0)
    assert sim.battery_pct == pytest.approx(level + 10 * sim.config.charge_pct_per_s)
    sim.step(1000.0)
    assert sim.battery_pct == 100.0 and sim.state is RobotState.IDLE and not sim.charging


def test_a_patrol_drives_the_route_in_order_at_the_set_speed() -> None:
    sim = undocked()
    task = sim.patrol(loops=1)
    seen = []
    for _ in range(12):  # one loop ends at the last waypoint: 12 m at 1 m/s
        assert sim.state is RobotState.PATROLLING
        sim.step(1.0)
        seen.append((round(sim.x, 6), round(sim.y, 6)))
    assert seen == [(1.0, 0.0), (2.0, 0.0), (3.0, 0.0), (4.0, 0.0), (4.0, 1.0), (4.0, 2.0), (4.0, 3.0), (4.0, 4.0),
                    (3.0, 4.0), (2.0, 4.0), (1.0, 4.0), (0.0, 4.0)]
    assert sim.state is RobotState.IDLE and sim.outcome(task).ok  # type: ignore[union-attr]
    assert sim.odometer_m == pytest.approx(12.0)
    sim.step(1.0)
    assert (sim.x, sim.y) == (0.0, 4.0) and sim.speed_mps == 0.0
    assert math.isclose(sim.theta, math.pi)


def test_an_endless_patrol_goes_round_and_follows_a_new_route() -> None:
    sim = undocked()
    task = sim.patrol(0)
    sim.step(40.0)  # two and a half times round in one long step
    assert sim.state is RobotState.PATROLLING and sim.progress(task) is None
    sim.apply_settings(Settings(patrol_route=[Waypoint(10.0, 0.0)], max_speed_mps=2.0))
    sim.step(20.0)
    assert (sim.x, sim.y) == (10.0, 0.0) and sim.state is RobotState.PATROLLING


def test_battery_critical_at_five_percent_and_an_empty_battery_stops_the_robot() -> None:
    sim = undocked(battery_pct=5.2)
    assert "BATTERY_CRITICAL" not in sim.faults
    task = sim.goto(1000.0, 0.0)
    sim.step(5.0)
    assert "BATTERY_CRITICAL" in sim.faults and sim.state is RobotState.MOVING  # it may still drive to its dock
    sim.step(200.0)
    assert sim.battery_pct == 0.0 and sim.state is RobotState.IDLE
    assert sim.outcome(task) is not None and sim.outcome(task).detail == "the battery is empty"  # type: ignore[union-attr]
    with pytest.raises(SimRefused, match="battery is empty"):
        sim.goto(1.0, 1.0)
    sim.set_battery(30.0)
    assert "BATTERY_CRITICAL" not in sim.faults


def test_a_fault_ends_the_task_and_holds_the_robot_in_error_until_reset() -> None:
    sim = undocked()
    task = sim.goto(10.0, 0.0)
    sim.step(1.0)
    sim.raise_fault("STUCK")
    assert sim.state is RobotState.ERROR and sim.outcome(task).detail == "fault STUCK"  # type: ignore[union-attr]
    with pytest.raises(SimRefused):
        sim.goto(1.0, 0.0)
    with pytest.raises(SimRefused, match="STUCK"):
        sim.reset()
    sim.clear_fault("STUCK")
    assert sim.state is RobotState.ERROR
    sim.reset()
    assert sim.state is RobotState.IDLE
    with pytest.raises(ValueError):
        sim.raise_fault("BATTERY_CRITICAL")


def test_the_estop_button_holds_the_robot_until_released_and_reset() -> None:
    sim = undocked()
    sim.patrol(0)
    sim.step(1.0)
    sim.press_estop_button()
    assert sim.state is RobotState.EMERGENCY_STOP and sim.speed_mps == 0.0
    sim.step(5.0)
    assert (sim.x, sim.y) == (1.0, 0.0)
    with pytest.raises(SimRefused, match="still pressed"):
        sim.reset()
    sim.release_estop_button()
    sim.reset()
    assert sim.state is RobotState.IDLE


def test_pause_holds_the_motion_and_resume_goes_on() -> None:
    sim = undocked()
    sim.goto(4.0, 0.0)
    sim.step(1.0)
    sim.pause()
    sim.step(10.0)
    assert sim.state is RobotState.PAUSED and sim.x == 1.0
    sim.resume()
    sim.step(1.0)
    assert sim.state is RobotState.MOVING and sim.x == 2.0
    with pytest.raises(SimRefused):
        sim.resume()


def test_an_override_is_applied_in_place_of_what_is_asked() -> None:
    sim = RobotSim()
    sim.overrides["maxSpeedMps"] = 1.0
    applied = sim.apply_settings(Settings(max_speed_mps=1.8, camera_on=False))
    assert applied.max_speed_mps == 1.0 and applied.camera_on is False and applied.patrol_route
    assert sim.apply_settings(Settings(camera_on=True)).max_speed_mps == 1.0  # only what is asked for


# ---- the adapter, against the clock ----------------------------------------------------------------

@pytest.fixture
async def mock() -> AsyncIterator[MockRobot]:
    robot = MockRobot(ROBOT, time_scale=50.0, step_s=0.01)
    robot.sim.goto(0.0, 0.0)
    robot.sim.step(0.01)  # off the dock, IDLE
    await robot.start()
    try:
        yield robot
    finally:
        await robot.stop()


async def test_the_mock_runs_a_goto_to_its_end_reporting_progress(mock: MockRobot) -> None:
    seen: list[float] = []
    detail = await asyncio.wait_for(mock.execute(Command("c1", "goto", GotoArgs(5.0, 0.0)), seen.append), 20)
    assert detail == "at (5, 0)" and (mock.sim.x, mock.sim.y) == (5.0, 0.0) and mock.sim.state is RobotState.IDLE
    assert seen and seen == sorted(seen) and 0.0 <= seen[0] < 1.0


async def test_an_aborted_command_stops_the_robot(mock: MockRobot) -> None:
    run = asyncio.create_task(mock.execute(Command("c1", "patrol", PatrolArgs(0)), lambda _: None))
    await wait_until(lambda: mock.sim.state is RobotState.PATROLLING, timeout=10, what="the robot patrolling")
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert mock.sim.state is RobotState.IDLE and mock.sim.snapshot()["task"] is None


async def test_fail_next_and_refusals_end_a_command_failed(mock: MockRobot) -> None:
    mock.fail_next = "wheel slip"
    with pytest.raises(CommandFailed, match="wheel slip"):
        await mock.execute(Command("c1", "dock", NoArgs()), lambda _: None)
    assert mock.fail_next is None
    with pytest.raises(CommandFailed, match="nothing to resume"):
        await mock.execute(Command("c2", "resume", NoArgs()), lambda _: None)
    mock.sim.raise_fault("MOTOR")
    with pytest.raises(CommandFailed, match="ERROR"):
        await mock.execute(Command("c3", "goto", GotoArgs(1.0, 1.0)), lambda _: None)


async def test_a_running_command_fails_when_the_estop_button_is_pressed(mock: MockRobot) -> None:
    run = asyncio.create_task(mock.execute(Command("c1", "goto", GotoArgs(1000.0, 0.0)), lambda _: None))
    await wait_until(lambda: mock.sim.state is RobotState.MOVING, timeout=10, what="the robot moving")
    mock.sim.press_estop_button()
    with pytest.raises(CommandFailed, match="emergency stop"):
        await asyncio.wait_for(run, 10)


async def test_settings_are_applied_after_the_robot_s_delay(mock: MockRobot) -> None:
    mock.settings_delay_s = 5.0  # 0.1 s at time scale 50
    applying = asyncio.create_task(mock.apply_settings(Settings(camera_on=False)))
    await asyncio.sleep(0.02)
    assert not applying.done() and mock.settings().camera_on is True
    applied = await asyncio.wait_for(applying, 10)
    assert applied.camera_on is False and mock.settings().camera_on is False


def test_the_mock_factory_loads_as_an_adapter() -> None:
    robot = load_adapter("firmware_bridges.robot.mock:create", AdapterOptions(ROBOT, "Rover"))
    assert isinstance(robot, MockRobot) and robot.identity().name == "Rover"
    for spec in ("no-colon", "no_such_module_here:make", "firmware_bridges.robot.mock:nothing",
                 "firmware_bridges.robot.adapter:AdapterOptions"):  # callable, but makes no adapter
        with pytest.raises(AdapterLoadError):
            load_adapter(spec, AdapterOptions(ROBOT))


# ---- the control endpoint --------------------------------------------------------------------------

PASSWORD = "s3cret-robot-password"


@pytest.fixture
async def control() -> AsyncIterator[tuple[TestClient, RobotLink, MockRobot]]:
    robot = MockRobot(ROBOT)
    core = BridgeCore(ROBOT, robot, FakeClock())
    link = RobotLink(f"nats://{ROBOT}:{PASSWORD}@127.0.0.1:4222", RobotCredentials(ROBOT, ROBOT, PASSWORD), robot, core)
    client = TestClient(TestServer(create_control_app(link, robot)))
    await client.start_server()
    try:
        yield client, link, robot
    finally:
        await client.close()


async def test_control_lists_its_routes(control: tuple[TestClient, RobotLink, MockRobot]) -> None:
    client, _, _ = control
    listing = await (await client.get("/")).json()
    paths = {r["path"] for r in listing["routes"]}
    assert {"/state", "/faults/{name}", "/battery", "/estop-button", "/silence", "/disconnect", "/reconnect",
            "/fail-next", "/apply-override"} <= paths


async def test_control_injects_what_a_robot_suffers(control: tuple[TestClient, RobotLink, MockRobot]) -> None:
    client, link, robot = control
    assert (await (await client.post("/faults/motor", json={"on": True})).json()) == {"faults": ["MOTOR"],
                                                                                       "state": "ERROR"}
    assert (await (await client.post("/battery", json={"pct": 4})).json())["faults"] == ["BATTERY_CRITICAL", "MOTOR"]
    assert (await (await client.post("/estop-button", json={"pressed": True})).json())["state"] == "EMERGENCY_STOP"
    await client.post("/silence", json={"on": True})
    await client.post("/disconnect")
    await client.post("/fail-next", json={"reason": "wheel slip"})
    await client.post("/apply-override", json={"setting": "maxSpeedMps", "value": 1.0})
    assert link.silenced and not link.wanted and robot.fail_next == "wheel slip"
    assert robot.sim.overrides == {"maxSpeedMps": 1.0} and robot.sim.estop_pressed
    await client.post("/reconnect")
    await client.post("/apply-override", json={"setting": "maxSpeedMps", "value": None})
    assert link.wanted and robot.sim.overrides == {}


async def test_control_refuses_what_it_cannot_do(control: tuple[TestClient, RobotLink, MockRobot]) -> None:
    client, _, robot = control
    unknown = await client.post("/faults/FLAT_TYRE", json={"on": True})
    assert unknown.status == 404 and (await unknown.json())["error"]["code"] == "unknown_fault"
    for path, body in (("/battery", {"pct": 140}), ("/apply-override", {"setting": "colour", "value": 1}),
                       ("/apply-override", {"setting": "maxSpeedMps", "value": 50}), ("/silence", {"loud": True})):
        answer = await client.post(path, json=body)
        assert answer.status == 400 and (await answer.json())["error"]["code"] == "bad_request", path
    assert robot.sim.overrides == {} and robot.sim.battery_pct == 80.0


async def test_control_state_never_shows_the_password(control: tuple[TestClient, RobotLink, MockRobot]) -> None:
    client, _, _ = control
    text = await (await client.get("/state")).text()
    state = json.loads(text)
    assert PASSWORD not in text and state["nats"]["password"] == "<redacted>"
    assert state["nats"]["url"] == "nats://<redacted>@127.0.0.1:4222"
    assert state["mock"]["robot"]["state"] == "CHARGING" and state["bridge"]["queued"] == []


# ---- fencing state, credentials ------------------------------------------------------------------

def test_the_fencing_token_is_kept_across_restarts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert load_fencing_token(tmp_path, ROBOT) is None
    save_fencing_token(tmp_path, ROBOT, 12)
    assert load_fencing_token(tmp_path, ROBOT) == 12
    assert load_fencing_token(None, ROBOT) is None
    assert load_fencing_token(tmp_path, "RB-002") is None  # another robot's file
    (tmp_path / FENCING_FILE).write_text("{half")
    with caplog.at_level(logging.ERROR):
        assert load_fencing_token(tmp_path, ROBOT) is None
    assert "cannot read the fencing state" in caplog.text


def _creds(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "robot.creds"
    create_private_file(path, text)
    os.chmod(path, mode)
    return path


def test_credentials_are_read_and_checked(tmp_path: Path) -> None:
    good = json.dumps({"robot_id": ROBOT, "user": ROBOT, "password": PASSWORD})
    assert read_credentials(_creds(tmp_path, good), ROBOT) == RobotCredentials(ROBOT, ROBOT, PASSWORD)
    with pytest.raises(StartError, match="not 'RB-002'"):
        read_credentials(tmp_path / "robot.creds", "RB-002")
    with pytest.raises(StartError, match="is not valid"):
        read_credentials(tmp_path / "robot.creds", "ack")
    with pytest.raises(StartError, match="must be 600"):
        os.chmod(tmp_path / "robot.creds", 0o644)
        read_credentials(tmp_path / "robot.creds", ROBOT)
    (tmp_path / "robot.creds").unlink()
    with pytest.raises(StartError, match="not valid"):
        read_credentials(_creds(tmp_path, '{"robot_id": "RB-001"}'), ROBOT)
    with pytest.raises(StartError, match="cannot read"):
        read_credentials(tmp_path / "missing.creds", ROBOT)


def test_the_bridge_exits_2_on_a_bad_start(tmp_path: Path) -> None:
    creds = _creds(tmp_path, json.dumps({"robot_id": ROBOT, "user": ROBOT, "password": PASSWORD}))
    base = [sys.executable, "-m", "firmware_bridges.robot", "--nats", "nats://127.0.0.1:1", "--creds", str(creds)]
    for extra, message in (
        (["--robot-id", "RB-002", "--mode", "MOCK"], "robot 'RB-001''s, not 'RB-002''s"),
        (["--robot-id", "bad id", "--mode", "MOCK"], "is not valid"),
        (["--robot-id", ROBOT, "--mode", "ADAPTER"], "needs --adapter"),
        (["--robot-id", ROBOT, "--mode", "ADAPTER", "--adapter", "nowhere:make"], "cannot import"),
    ):
        result = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and message in result.stderr, (extra, result.stderr)
        assert PASSWORD not in result.stderr + result.stdout
