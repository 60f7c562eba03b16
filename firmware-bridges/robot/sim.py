"""A simulated patrol robot, pure: its state machine, battery, pose and faults, moved on by
`step(dt)` (seconds of robot time). The MOCK adapter (mock.py) drives it from a clock.

States: IDLE, MOVING (a `goto`), PATROLLING, DOCKING, CHARGING, PAUSED, ERROR, EMERGENCY_STOP.
The battery drains while idle and faster while moving, and charges on the dock (CHARGING until
full, then IDLE on the dock); at or below `critical_pct` the robot reports BATTERY_CRITICAL, and
empty it cannot move. A collision, stuck wheels, a motor, sensor or localisation fault puts it in
ERROR; the emergency stop (a command or its button) in EMERGENCY_STOP; both hold until `reset`,
which refuses while the button is pressed or a fault is still there.

Motion is a task: `goto`, `patrol` and `dock` each start one and answer its number; `outcome`
says how it ended (None while it runs), `progress` how far it is; `abort_task` stops it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from shared.robots import Fault, Pose, RobotState, Settings, Waypoint

#: Faults that stop the robot in ERROR (BATTERY_CRITICAL is the battery's own, and only reported).
STOPPING_FAULTS: tuple[Fault, ...] = ("COLLISION", "STUCK", "MOTOR", "SENSOR", "LOCALISATION")
_MOVING = (RobotState.MOVING, RobotState.PATROLLING, RobotState.DOCKING)
_ARRIVED_M = 1e-6
_MAX_OUTCOMES = 64

TaskKind = Literal["goto", "patrol", "dock"]


class SimRefused(Exception):
    """The robot will not do that now; the message says why."""


@dataclass(frozen=True)
class SimConfig:
    """How the simulated robot behaves (robot time)."""

    dock: Waypoint = Waypoint(0.0, 0.0, "dock")
    drain_idle_pct_per_s: float = 0.01
    drain_moving_pct_per_s: float = 0.05
    charge_pct_per_s: float = 0.2
    critical_pct: float = 5.0
    #: Top speed the `maxSpeedMps` setting may take.
    top_speed_mps: float = 2.0


DEFAULT_ROUTE = [Waypoint(0.0, 0.0, "dock"), Waypoint(10.0, 0.0, "gate"), Waypoint(10.0, 8.0, "yard"),
                 Waypoint(0.0, 8.0, "store")]
DEFAULT_SETTINGS = Settings(max_speed_mps=1.0, patrol_route=DEFAULT_ROUTE, camera_on=True)


@dataclass(frozen=True)
class TaskOutcome:
    """How a motion task ended."""

    ok: bool
    detail: str = ""


@dataclass
class _Task:
    number: int
    kind: TaskKind
    target: Waypoint
    start_distance: float
    loops: int = 0  # patrol: 0 runs until told otherwise
    loops_done: int = 0
    waypoint: int = 0  # patrol: index of the waypoint it heads for


@dataclass
class RobotSim:
    """The robot's whole simulated state."""

    config: SimConfig = field(default_factory=SimConfig)
    settings: Settings = DEFAULT_SETTINGS
    state: RobotState = RobotState.IDLE
    battery_pct: float = 80.0
    x: float = 0.0
    y: float = 0.0
    theta: float = 0.0
    speed_mps: float = 0.0
    odometer_m: float = 0.0
    docked: bool = True
    faults: set[Fault] = field(default_factory=set)
    estop_pressed: bool = False
    #: Settings the robot applies in place of what it is asked (`apply_override`), by wire name.
    overrides: dict[str, Any] = field(default_factory=dict)
    _task: _Task | None = None
    _paused_from: RobotState | None = None
    _tasks_made: int = 0
    _outcomes: dict[int, TaskOutcome] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._settle_on_dock()
        self._battery_faults()

    # ---- reads -------------------------------------------------------------------------------

    @property
    def charging(self) -> bool:
        return self.state is RobotState.CHARGING

    @property
    def pose(self) -> Pose:
        return Pose(round(self.x, 3), round(self.y, 3), round(self.theta, 3))

    def outcome(self, task: int) -> TaskOutcome | None:
        """How task `task` ended, or None while it runs."""
        return self._outcomes.get(task)

    def progress(self, task: int) -> float | None:
        """How far task `task` is (0..1); None when that cannot be said (an endless patrol)."""
        current = self._task
        if current is None or current.number != task:
            return 1.0 if task in self._outcomes else None
        if current.kind == "patrol":
            if current.loops == 0:
                return None
            route = self._route()
            return min(1.0, (current.loops_done + current.waypoint / len(route)) / current.loops)
        if current.start_distance <= _ARRIVED_M:
            return 1.0
        return max(0.0, 1.0 - self._distance_to(current.target) / current.start_distance)

    def snapshot(self) -> dict[str, Any]:
        """Everything about the robot, JSON-ready."""
        task = self._task
        return {
            "state": self.state.value, "battery_pct": round(self.battery_pct, 2), "charging": self.charging,
            "pose": msgspec.to_builtins(self.pose), "speed_mps": self.speed_mps, "odometer_m": round(self.odometer_m, 2),
            "docked": self.docked, "faults": sorted(self.faults), "estop_pressed": self.estop_pressed,
            "settings": self.settings.as_dict(), "overrides": dict(self.overrides),
            "task": None if task is None else {"number": task.number, "kind": task.kind,
                                               "target": msgspec.to_builtins(task.target), "loops": task.loops,
                                               "loops_done": task.loops_done},
        }

    # ---- motion tasks ------------------------------------------------------------------------

    def goto(self, x: float, y: float) -> int:
        """Drive to (x, y): MOVING until there."""
        return self._start("goto", RobotState.MOVING, Waypoint(x, y))

    def patrol(self, loops: int = 0) -> int:
        """Drive the patrol route `loops` times (0: until told otherwise), from its first waypoint."""
        route = self._route()
        number = self._start("patrol", RobotState.PATROLLING, route[0])
        assert self._task is not None
        self._task.loops = loops
        return number

    def dock(self) -> int:
        """Drive to the dock, then charge."""
        return self._start("dock", RobotState.DOCKING, self.config.dock)

    def abort_task(self, task: int, reason: str) -> None:
        """Stop task `task` where the robot stands (a cancel): IDLE, unless something else already
        stopped it harder."""
        if self._task is None or self._task.number != task:
            return
        self._end_task(TaskOutcome(False, reason))
        if self.state in _MOVING or self.state is RobotState.PAUSED:
            self.state = RobotState.IDLE

    def _start(self, kind: TaskKind, state: RobotState, target: Waypoint) -> int:
        if self.state in (RobotState.EMERGENCY_STOP, RobotState.ERROR):
            raise SimRefused(f"the robot is in {self.state.value}")
        if self.battery_pct <= 0:
            raise SimRefused("the battery is empty")
        if self._task is not None:  # a new goal replaces the old one, as on a real robot
            self._end_task(TaskOutcome(False, f"superseded by a {kind}"))
        self._tasks_made += 1
        self._task = _Task(self._tasks_made, kind, target, 0.0)
        self._task.start_distance = self._distance_to(target)
        self.state, self.docked, self._paused_from = state, False, None
        return self._tasks_made

    def _end_task(self, outcome: TaskOutcome) -> None:
        assert self._task is not None
        self._outcomes[self._task.number] = outcome
        while len(self._outcomes) > _MAX_OUTCOMES:
            del self._outcomes[min(self._outcomes)]
        self._task = None
        self._paused_from = None
        self.speed_mps = 0.0

    # ---- commands that act at once -------------------------------------------------------------

    def pause(self) -> None:
        """Hold where it is; `resume` goes on."""
        if self.state not in _MOVING:
            raise SimRefused(f"nothing to pause: the robot is {self.state.value}")
        self._paused_from, self.state, self.speed_mps = self.state, RobotState.PAUSED, 0.0

    def resume(self) -> None:
        """Go on with what was paused."""
        if self.state is not RobotState.PAUSED or self._paused_from is None:
            raise SimRefused(f"nothing to resume: the robot is {self.state.value}")
        self.state, self._paused_from = self._paused_from, None

    def estop(self) -> None:
        """Stop dead: EMERGENCY_STOP until `reset`."""
        if self._task is not None:
            self._end_task(TaskOutcome(False, "emergency stop"))
        self.state, self.speed_mps, self._paused_from = RobotState.EMERGENCY_STOP, 0.0, None

    def reset(self) -> None:
        """Leave EMERGENCY_STOP or ERROR, once the button is released and the faults are gone."""
        if self.state not in (RobotState.EMERGENCY_STOP, RobotState.ERROR):
            return
        if self.estop_pressed:
            raise SimRefused("the emergency stop button is still pressed")
        present = sorted(f for f in self.faults if f in STOPPING_FAULTS)
        if present:
            raise SimRefused(f"fault still present: {', '.join(present)}")
        self.state = RobotState.IDLE
        self._settle_on_dock()

    # ---- what happens to the robot -----------------------------------------------------------

    def press_estop_button(self) -> None:
        """Someone hits the robot's emergency stop button."""
        self.estop_pressed = True
        self.estop()

    def release_estop_button(self) -> None:
        """The button is pulled out again; the robot stays stopped until `reset`."""
        self.estop_pressed = False

    def raise_fault(self, fault: Fault) -> None:
        """A fault appears; a stopping one ends the task and puts the robot in ERROR."""
        if fault not in STOPPING_FAULTS:
            raise ValueError(f"fault {fault!r} cannot be raised; it is one of {', '.join(STOPPING_FAULTS)}")
        self.faults.add(fault)
        if self._task is not None:
            self._end_task(TaskOutcome(False, f"fault {fault}"))
        if self.state is not RobotState.EMERGENCY_STOP:
            self.state, self.speed_mps, self._paused_from = RobotState.ERROR, 0.0, None

    def clear_fault(self, fault: Fault) -> None:
        """A fault goes away; the robot stays in ERROR until `reset`."""
        if fault not in STOPPING_FAULTS:
            raise ValueError(f"fault {fault!r} cannot be cleared; it is one of {', '.join(STOPPING_FAULTS)}")
        self.faults.discard(fault)

    def set_battery(self, pct: float) -> None:
        """The battery reads `pct` now."""
        if not 0 <= pct <= 100:
            raise ValueError(f"battery {pct} % must be 0..100")
        self.battery_pct = float(pct)
        self._battery_faults()

    def apply_settings(self, desired: Settings) -> Settings:
        """Apply what `desired` sets (overrides win) and answer all the settings now."""
        changes = desired.as_dict()
        changes.update({name: value for name, value in self.overrides.items() if name in changes})
        merged = {**self.settings.as_dict(), **changes}
        self.settings = msgspec.convert(merged, Settings)
        task = self._task
        if task is not None and task.kind == "patrol" and "patrolRoute" in changes:
            route = self._route()
            task.waypoint = min(task.waypoint, len(route) - 1)
            task.target = route[task.waypoint]
        return self.settings

    def step(self, dt: float) -> None:
        """`dt` seconds of robot time pass."""
        if dt <= 0:
            return
        task = self._task
        if task is not None and self.state in _MOVING:
            self._drive(task, dt)
        else:
            self.speed_mps = 0.0
        if self.state is RobotState.CHARGING:
            self.battery_pct = min(100.0, self.battery_pct + self.config.charge_pct_per_s * dt)
            if self.battery_pct >= 100.0:
                self.state = RobotState.IDLE
        else:
            drain = self.config.drain_moving_pct_per_s if self.speed_mps > 0 else self.config.drain_idle_pct_per_s
            self.battery_pct = max(0.0, self.battery_pct - drain * dt)
        self._battery_faults()
        if self.battery_pct <= 0 and self._task is not None:
            self._end_task(TaskOutcome(False, "the battery is empty"))
            if self.state in _MOVING or self.state is RobotState.PAUSED:
                self.state = RobotState.IDLE

    # ---- inside --------------------------------------------------------------------------------

    def _drive(self, task: _Task, dt: float) -> None:
        speed = min(self.settings.max_speed_mps or 1.0, self.config.top_speed_mps)
        budget = speed * dt
        moved = 0.0
        # A long step may pass several waypoints of a patrol.
        while self._task is task:
            dx, dy = task.target.x - self.x, task.target.y - self.y
            distance = math.hypot(dx, dy)
            if distance > _ARRIVED_M:
                self.theta = math.atan2(dy, dx)
            if distance > budget:
                self.x += dx / distance * budget
                self.y += dy / distance * budget
                moved += budget
                break
            self.x, self.y = task.target.x, task.target.y
            moved += distance
            budget -= distance
            self._arrived(task)
            if self._task is task and self._distance_to(task.target) <= _ARRIVED_M:
                break  # a zero-length leg (a one-waypoint route) waits for the next step
        self.odometer_m += moved
        self.speed_mps = speed if self._task is task and moved > 0 else 0.0

    def _arrived(self, task: _Task) -> None:
        if task.kind == "goto":
            self._end_task(TaskOutcome(True, f"at ({task.target.x:g}, {task.target.y:g})"))
            self.state = RobotState.IDLE
        elif task.kind == "dock":
            self._end_task(TaskOutcome(True, "docked"))
            self.docked = True
            self.state = RobotState.IDLE
            self._settle_on_dock()
        else:
            route = self._route()
            if task.waypoint == len(route) - 1:
                task.loops_done += 1
                if task.loops and task.loops_done >= task.loops:
                    self._end_task(TaskOutcome(True, f"{task.loops_done} loop(s) done"))
                    self.state = RobotState.IDLE
                    return
            task.waypoint = (task.waypoint + 1) % len(route)
            task.target = route[task.waypoint]

    def _settle_on_dock(self) -> None:
        if self.docked and self.state is RobotState.IDLE and self.battery_pct < 100.0:
            self.state = RobotState.CHARGING

    def _battery_faults(self) -> None:
        if self.battery_pct <= self.config.critical_pct:
            self.faults.add("BATTERY_CRITICAL")
        else:
            self.faults.discard("BATTERY_CRITICAL")

    def _route(self) -> list[Waypoint]:
        return self.settings.patrol_route or [self.config.dock]

    def _distance_to(self, target: Waypoint) -> float:
        return math.hypot(target.x - self.x, target.y - self.y)
