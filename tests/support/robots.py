"""Robot events as an edge journals them (shared.bodies.robots), for feeding the hub's real commit
path through support.site.Site."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import asyncpg
import msgspec

from shared.bodies import robots as bodies
from shared.envelope import Envelope, Priority
from shared.robots import AckStatus, Capability, Identity, Pose, RobotState, Settings, SettingSpec, Status, Telemetry
from support.site import Site


def now() -> datetime:
    return datetime.now(timezone.utc)


async def robot_site(db: asyncpg.Pool, edge_id: str, object_name: str | None) -> tuple[Site, int | None]:
    """An edge (serving a new object named `object_name`, or none) and its object's id."""
    site = await Site(db, edge_id).setup({})
    if object_name is None:
        return site, None
    object_id = await db.fetchval("INSERT INTO objects (name) VALUES ($1) RETURNING id", object_name)
    await db.execute("UPDATE edges SET object_id = $2 WHERE edge_id = $1", edge_id, object_id)
    return site, object_id


def _env(site: Site, kind: str, body: msgspec.Struct, robot: str, at: datetime | None,
         priority: Priority = Priority.NORMAL) -> Envelope:
    return site.env(kind, msgspec.to_builtins(body), at or now(), priority=priority, source=robot)


def _message() -> str:
    return uuid.uuid4().hex


def identity(site: Site, robot: str, *, firmware: str = "1.0", name: str | None = None,
             at: datetime | None = None) -> Envelope:
    return _env(site, "robot.identity", bodies.RobotIdentity(robot, _message(), at or now(), Identity(
        manufacturer="Acme", model="Patrol-2", serial_number=f"SN-{robot}", firmware_version=firmware,
        bridge_version="0.1", name=name)), robot, at)


def capability(site: Site, robot: str, *, commands: list[str] | None = None, at: datetime | None = None) -> Envelope:
    return _env(site, "robot.capability", bodies.RobotCapability(robot, _message(), at or now(), Capability(
        commands=commands or ["goto", "patrol", "dock", "estop", "cancel"],
        settings=[SettingSpec("maxSpeedMps", "number", 0.1, 2.0, "m/s")], telemetry=["pose", "batteryPct"],
        heartbeat_interval_s=5.0)), robot, at)


def status(site: Site, robot: str, state: RobotState = RobotState.IDLE, battery: float = 80.0,
           at: datetime | None = None) -> Envelope:
    return _env(site, "robot.status", bodies.RobotStatus(robot, _message(), at or now(), Status(
        state=state, battery_pct=battery, charging=False, heartbeat_interval_s=5.0)), robot, at)


def connection(site: Site, robot: str, state: str, reason: str = "", at: datetime | None = None) -> Envelope:
    return _env(site, "robot.connection", bodies.RobotConnection(robot, state, reason), robot, at)  # type: ignore[arg-type]


def telemetry(site: Site, robot: str, x: float, y: float, battery: float = 79.5, at: datetime | None = None) -> Envelope:
    return _env(site, "robot.telemetry", bodies.RobotTelemetry(robot, _message(), at or now(), Telemetry(
        pose=Pose(x, y, 0.5), battery_pct=battery, speed_mps=0.4, state=RobotState.PATROLLING)), robot, at,
        Priority.LOW)


def settings_reported(site: Site, robot: str, settings: dict[str, Any], applied: str | None = None,
                      at: datetime | None = None) -> Envelope:
    return _env(site, "robot.settings.reported", bodies.RobotSettingsReported(
        robot, _message(), at or now(), msgspec.convert(settings, Settings), applied), robot, at)


def ack(site: Site, robot: str, command_id: str, ack_status: AckStatus, *, by: str = "robot", detail: str = "",
        progress: float | None = None, command_type: str = "goto", at: datetime | None = None) -> Envelope:
    return _env(site, "robot.cmd.ack", bodies.RobotCommandAck(
        command_id, robot, command_type, ack_status, by, detail, progress), robot, at)  # type: ignore[arg-type]


def alarm(site: Site, robot: str, name: str, *, restore: bool = False, at: datetime | None = None) -> Envelope:
    prefix = bodies.RESTORE_PREFIX if restore else bodies.ALARM_PREFIX
    return _env(site, prefix + name, bodies.RobotAlarm(robot, name, f"{name} detail", "EMERGENCY_STOP", 50.0,
                                                       {"x": 1.0, "y": 2.0}), robot, at,
                Priority.LOW if restore else bodies.ROBOT_ALARMS.get(name, Priority.HIGH))
