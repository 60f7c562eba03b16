"""What a robot implements so the bridge can speak for it: the hooks of `RobotAdapter`.

The reads (`identity`, `capability`, `settings`, `status`, `telemetry`) are synchronous and cheap:
they answer what the robot last knew, and the bridge calls them on every tick. Doing something
is asynchronous: `execute` runs one command to its end (reporting progress as it goes, and
stopping when its task is cancelled), `apply_settings` changes settings and answers what the
robot really runs with afterwards.

`python -m firmware_bridges.robot --mode ADAPTER --adapter pkg.module:factory` loads a real one:
`factory(AdapterOptions)` returns the adapter.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import msgspec

from shared.robots import Capability, Fault, Identity, RobotState, Settings, Telemetry

#: Called by a running command with how far it is (0..1).
ProgressReport = Callable[[float], None]


@dataclass(frozen=True)
class Command:
    """One accepted command, as the bridge hands it to the adapter. `id` is the command id (the
    envelope's correlationId); `args` are the checked, typed arguments (shared.robots.ARGS_OF)."""

    id: str
    type: str
    args: msgspec.Struct
    fencing_token: int | None = None


@dataclass(frozen=True)
class StatusReading:
    """How the robot stands now; the bridge adds the heartbeat interval and its current command."""

    state: RobotState
    battery_pct: float
    charging: bool
    faults: tuple[Fault, ...] = ()


class CommandFailed(Exception):
    """A command ended without doing what it was asked; the message is the reason the ack carries."""


class SettingsRefused(Exception):
    """Settings the robot would not apply; the message says why."""


class RobotView(Protocol):
    """The robot's synchronous reads."""

    def identity(self) -> Identity:
        """What the robot is."""
        ...

    def capability(self) -> Capability:
        """What it can do. Its `heartbeat_interval_s` is replaced by the bridge's own."""
        ...

    def settings(self) -> Settings:
        """All the settings it runs with now."""
        ...

    def status(self) -> StatusReading:
        """Its state, battery and faults now."""
        ...

    def telemetry(self) -> Telemetry:
        """One telemetry sample taken now."""
        ...


class RobotAdapter(RobotView, Protocol):
    """Everything the bridge needs of a robot."""

    async def start(self) -> None:
        """Get ready (open the robot's own interfaces); called once before anything else."""
        ...

    async def stop(self) -> None:
        """Let go of the robot; called once at the end."""
        ...

    async def execute(self, command: Command, progress: ProgressReport) -> str:
        """Run `command` to its end and return a detail for its FINISHED ack ("" for none).
        Raise CommandFailed when it fails. The bridge cancels the task to abort it (cancel,
        estop, shutdown): stop the motion, then let the cancellation through. `estop`, `pause`
        and `resume` may arrive while another command runs and must act on it at once."""
        ...

    async def apply_settings(self, settings: Settings) -> Settings:
        """Apply the settings that are set in `settings` and return all the settings the robot
        runs with afterwards (which may differ from what was asked). Raise SettingsRefused when it
        applies none of them."""
        ...


#: What `load_adapter` checks a factory's product has.
ADAPTER_METHODS = ("identity", "capability", "settings", "status", "telemetry", "start", "stop", "execute",
                   "apply_settings")


@dataclass(frozen=True)
class AdapterOptions:
    """What the bridge tells an adapter's factory."""

    robot_id: str
    name: str | None = None


class AdapterLoadError(Exception):
    """The `--adapter` spec does not name a usable factory."""


def load_adapter(spec: str, options: AdapterOptions) -> RobotAdapter:
    """The adapter made by the factory `spec` names (`package.module:callable`)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AdapterLoadError(f"--adapter {spec!r} must be package.module:factory")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AdapterLoadError(f"--adapter {spec!r}: cannot import {module_name}: {exc}") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise AdapterLoadError(f"--adapter {spec!r}: {module_name} has no callable {attr!r}")
    adapter = factory(options)
    missing = [name for name in ADAPTER_METHODS if not callable(getattr(adapter, name, None))]
    if missing:
        raise AdapterLoadError(f"--adapter {spec!r} made a {type(adapter).__name__}, which lacks {', '.join(missing)}")
    return adapter
