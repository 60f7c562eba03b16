"""MOCK mode: a simulated patrol robot (sim.py) behind the adapter hooks, moved on by a clock.

Robot time runs `time_scale` times faster than the clock, so tests drive a whole patrol in a
second. Settings are applied after `settings_delay_s` of robot time, as a real robot takes a
moment. What a real robot would suffer (faults, a flat battery, its emergency stop button, a
command that fails) is injected through `sim` and `fail_next`, which the HTTP control endpoint
(control.py) exposes.
"""
from __future__ import annotations

import asyncio
import contextlib

from shared.clock import SYSTEM_CLOCK, Clock
from shared.robots import Capability, GotoArgs, Identity, PatrolArgs, SettingSpec, Settings, Telemetry

from . import BRIDGE_VERSION
from .adapter import AdapterOptions, Command, CommandFailed, ProgressReport, StatusReading
from .sim import RobotSim, SimRefused

MOCK_FIRMWARE = "mock-1.0"
MOCK_COMMANDS = ["goto", "patrol", "dock", "pause", "resume", "estop", "reset", "cancel"]


class MockRobot:
    """The MOCK adapter. `start` begins stepping the simulation every `step_s` of the clock."""

    def __init__(self, robot_id: str, name: str | None = None, *, clock: Clock = SYSTEM_CLOCK,
                 time_scale: float = 1.0, settings_delay_s: float = 0.5, step_s: float = 0.05,
                 sim: RobotSim | None = None) -> None:
        if time_scale <= 0:
            raise ValueError(f"time scale {time_scale} must be positive")
        self.robot_id = robot_id
        self.name = name
        self.sim = sim or RobotSim()
        self.time_scale = time_scale
        self.settings_delay_s = settings_delay_s
        #: The next command ends FAILED with this reason (then it is cleared).
        self.fail_next: str | None = None
        self._clock = clock
        self._step_s = step_s
        self._stepped = asyncio.Event()
        self._stepper: asyncio.Task[None] | None = None

    # ---- life --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start stepping the simulation."""
        self._stepper = asyncio.create_task(self._step_forever(), name=f"mock-robot-{self.robot_id}")

    async def stop(self) -> None:
        """Stop stepping."""
        if self._stepper is not None:
            self._stepper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stepper
            self._stepper = None

    async def _step_forever(self) -> None:
        last = self._clock.monotonic()
        while True:
            await asyncio.sleep(self._step_s)
            now = self._clock.monotonic()
            self.sim.step((now - last) * self.time_scale)
            last = now
            # Wake whoever follows a task; each waiter takes the event current when it started.
            stepped, self._stepped = self._stepped, asyncio.Event()
            stepped.set()

    # ---- reads -------------------------------------------------------------------------------

    def identity(self) -> Identity:
        """A MockBot with a serial made of its robot id."""
        return Identity(manufacturer="Vigil", model="MockBot patrol robot", serial_number=f"MOCK-{self.robot_id}",
                        firmware_version=MOCK_FIRMWARE, bridge_version=BRIDGE_VERSION, name=self.name)

    def capability(self) -> Capability:
        """The mock's commands, settings and telemetry fields."""
        return Capability(
            commands=list(MOCK_COMMANDS),
            settings=[SettingSpec("maxSpeedMps", "number", min=0.1, max=self.sim.config.top_speed_mps, unit="m/s"),
                      SettingSpec("patrolRoute", "route"), SettingSpec("cameraOn", "bool")],
            telemetry=["pose", "batteryPct", "speedMps", "state", "extra.odometerM", "extra.cameraOn"],
            heartbeat_interval_s=2.0)

    def settings(self) -> Settings:
        return self.sim.settings

    def status(self) -> StatusReading:
        sim = self.sim
        return StatusReading(sim.state, sim.battery_pct, sim.charging, tuple(sorted(sim.faults)))

    def telemetry(self) -> Telemetry:
        sim = self.sim
        return Telemetry(pose=sim.pose, battery_pct=round(sim.battery_pct, 2), speed_mps=round(sim.speed_mps, 3),
                         state=sim.state, extra={"odometerM": round(sim.odometer_m, 2),
                                                 "cameraOn": 1.0 if sim.settings.camera_on else 0.0})

    # ---- doing -------------------------------------------------------------------------------

    async def execute(self, command: Command, progress: ProgressReport) -> str:
        """Run one command on the simulation; motion commands until the robot gets there."""
        if command.type != "estop" and self.fail_next is not None:
            reason, self.fail_next = self.fail_next, None
            raise CommandFailed(reason)
        sim = self.sim
        try:
            if command.type == "goto":
                assert isinstance(command.args, GotoArgs)
                task = sim.goto(command.args.x, command.args.y)
            elif command.type == "patrol":
                assert isinstance(command.args, PatrolArgs)
                task = sim.patrol(command.args.loops)
            elif command.type == "dock":
                task = sim.dock()
            elif command.type == "estop":
                sim.estop()
                return "stopped"
            elif command.type == "pause":
                sim.pause()
                return "paused"
            elif command.type == "resume":
                sim.resume()
                return f"resumed: {sim.state.value}"
            elif command.type == "reset":
                sim.reset()
                return f"reset: {sim.state.value}"
            else:
                raise CommandFailed(f"the mock robot does not do {command.type!r}")
        except SimRefused as exc:
            raise CommandFailed(str(exc)) from None
        return await self._follow(task, progress)

    async def _follow(self, task: int, progress: ProgressReport) -> str:
        try:
            while True:
                stepped = self._stepped
                outcome = self.sim.outcome(task)
                if outcome is not None:
                    if outcome.ok:
                        return outcome.detail
                    raise CommandFailed(outcome.detail)
                fraction = self.sim.progress(task)
                if fraction is not None:
                    progress(fraction)
                await stepped.wait()
        except asyncio.CancelledError:
            self.sim.abort_task(task, "aborted")
            raise

    async def apply_settings(self, settings: Settings) -> Settings:
        """Apply after the robot's delay; an override (control endpoint) replaces what was asked."""
        await asyncio.sleep(self.settings_delay_s / self.time_scale)
        return self.sim.apply_settings(settings)


def create(options: AdapterOptions) -> MockRobot:
    """A factory for `--mode ADAPTER --adapter firmware_bridges.robot.mock:create` (a MockRobot at
    real time), the shape a real adapter's factory has."""
    return MockRobot(options.robot_id, options.name)
