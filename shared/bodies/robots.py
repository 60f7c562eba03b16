"""Bodies of the robot link's events (docs/architecture.md §7 "Robots"): what the edge journals
from its site's robots, and the hub stores as the robot-owned copies it shows.

Kinds: `robot.identity`, `robot.capability`, `robot.status` (on a change of state or faults),
`robot.connection` (ONLINE, OFFLINE, CONNECTION_BROKEN), `robot.telemetry` (sampled, LOW),
`robot.settings.reported`, `robot.cmd.ack` (a command's progress; `corr` is the command id),
`robot.alarm.<alarm>` when one starts and `robot.restore.<alarm>` when it ends. The envelope's
`source` is the robot id.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from shared.envelope import Priority
from shared.robots import AckStatus, Capability, Identity, Settings, Status, Telemetry

ConnectionState = Literal["ONLINE", "OFFLINE", "CONNECTION_BROKEN"]

#: Robot alarms and the priority the edge gives them (CRITICAL/HIGH: the alarm lane).
ROBOT_ALARMS: dict[str, Priority] = {
    "estop": Priority.CRITICAL,
    "collision": Priority.HIGH,
    "battery_critical": Priority.HIGH,
    "stuck": Priority.HIGH,
    "fault": Priority.HIGH,  # motor, sensor or localisation fault, or the ERROR state
}
ALARM_PREFIX = "robot.alarm."
RESTORE_PREFIX = "robot.restore."


class RobotIdentity(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    robot: str
    message_id: str
    sent_at: datetime
    identity: Identity


class RobotCapability(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    robot: str
    message_id: str
    sent_at: datetime
    capability: Capability


class RobotStatus(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    robot: str
    message_id: str
    sent_at: datetime
    status: Status
    previous_state: str | None = None


class RobotConnection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The edge's view of a robot's link: ONLINE on its first heartbeat, OFFLINE on a clean
    goodbye, CONNECTION_BROKEN when heartbeats stop."""

    robot: str
    state: ConnectionState
    reason: str
    last_heard_at: datetime | None = None


class RobotTelemetry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One kept sample; `skipped` counts the samples since the previous kept one that the edge's
    sampling (latest wins) did not keep."""

    robot: str
    message_id: str
    sent_at: datetime
    telemetry: Telemetry
    skipped: int = 0


class RobotSettingsReported(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    robot: str
    message_id: str
    sent_at: datetime
    settings: Settings
    applied_message_id: str | None = None


class RobotCommandAck(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`robot.cmd.ack`: a command's progress, from the robot (`by` "robot") or from the edge when
    the robot never answered or the command could not be handed over (`by` "edge")."""

    command_id: str
    robot: str
    command_type: str
    status: AckStatus
    by: Literal["robot", "edge"]
    detail: str = ""
    progress: float | None = None
    fencing_token: int | None = None


class RobotAlarm(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`robot.alarm.<alarm>` / `robot.restore.<alarm>`: where the robot was and how it stood."""

    robot: str
    alarm: str
    detail: str
    state: str
    battery_pct: float | None = None
    pose: dict[str, float] | None = None


ROBOT_BODY_TYPES: dict[str, type[msgspec.Struct]] = {
    "robot.identity": RobotIdentity,
    "robot.capability": RobotCapability,
    "robot.status": RobotStatus,
    "robot.connection": RobotConnection,
    "robot.telemetry": RobotTelemetry,
    "robot.settings.reported": RobotSettingsReported,
    "robot.cmd.ack": RobotCommandAck,
    **{ALARM_PREFIX + a: RobotAlarm for a in ROBOT_ALARMS},
    **{RESTORE_PREFIX + a: RobotAlarm for a in ROBOT_ALARMS},
}
