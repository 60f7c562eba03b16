"""A robot played by a test: a plain NATS client with a robot's own login that speaks the robot
wire (`shared.robots.encode/decode`), so the edge's tests do not depend on the bridge. It records
every command the edge sends it and, unless told otherwise, answers the edge's identity and
capability questions as a real robot would."""
from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Any

import msgspec
import nats
from nats.aio.msg import Msg

from shared import robots as wire

IDENTITY = wire.Identity(manufacturer="Acme", model="Patrol-2", serial_number="SN-42", firmware_version="1.4.2",
                         bridge_version="0.1.0", name="north yard")


def capability(heartbeat_interval_s: float) -> wire.Capability:
    return wire.Capability(commands=["goto", "patrol", "dock", "estop", "cancel", "reset"],
                           settings=[wire.SettingSpec(name="maxSpeedMps", type="number", min=0.1, max=2.0, unit="m/s")],
                           telemetry=["pose", "batteryPct", "speedMps"], heartbeat_interval_s=heartbeat_interval_s)


class ScriptedRobot:
    """One robot's client. `received` holds (subject, envelope, payload) of what the edge sent."""

    def __init__(self, url: str, credentials: wire.RobotCredentials, *, heartbeat_interval_s: float = 0.2,
                 answer_questions: bool = True) -> None:
        self.url = url
        self.credentials = credentials
        self.robot_id = credentials.robot_id
        self.heartbeat_interval_s = heartbeat_interval_s
        self.answer_questions = answer_questions
        self.received: list[tuple[str, wire.RobotEnvelope, msgspec.Struct]] = []
        self._ids = itertools.count(1)
        self.nc: nats.NATS | None = None

    async def connect(self) -> "ScriptedRobot":
        self.nc = await nats.connect(self.url, user=self.credentials.user, password=self.credentials.password,
                                     name=f"robot-{self.robot_id}", max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        for message_type in wire.TO_ROBOT:
            await self.nc.subscribe(wire.subject(message_type, self.robot_id), cb=self._on_command)
        await self.nc.flush()
        return self

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()

    def commands(self, command_type: str | None = None) -> list[wire.Cmd]:
        """The `cmd` payloads received, of one type or all."""
        return [p for _, _, p in self.received
                if isinstance(p, wire.Cmd) and (command_type is None or p.command_type == command_type)]

    def envelopes(self, command_type: str) -> list[wire.RobotEnvelope]:
        """The envelopes of the `cmd`s of one type received."""
        return [e for _, e, p in self.received if isinstance(p, wire.Cmd) and p.command_type == command_type]

    def received_for(self, correlation_id: str) -> list[wire.RobotEnvelope]:
        """Every envelope received for one command (each send of it)."""
        return [e for _, e, _ in self.received if e.correlation_id == correlation_id]

    async def _on_command(self, msg: Msg) -> None:
        envelope, payload = wire.decode(msg.data, msg.subject)
        self.received.append((msg.subject, envelope, payload))
        if self.answer_questions and isinstance(payload, wire.Cmd):
            if payload.command_type == "report_identity":
                await self.send("identity", IDENTITY)
            elif payload.command_type == "report_capability":
                await self.send("capability", capability(self.heartbeat_interval_s))

    async def send(self, message_type: wire.MessageType, payload: msgspec.Struct, *,
                   correlation_id: str | None = None, robot_id: str | None = None) -> str:
        """Publish one message on this robot's subject; its message id."""
        message_id = f"{self.robot_id}-{next(self._ids)}"
        data = wire.encode(message_type, robot_id or self.robot_id, message_id, datetime.now(timezone.utc), payload,
                           correlation_id=correlation_id)
        await self.raw(wire.subject(message_type, self.robot_id), data)
        return message_id

    async def raw(self, subject: str, data: bytes) -> None:
        assert self.nc is not None
        await self.nc.publish(subject, data)
        await self.nc.flush()

    async def status(self, state: str = "IDLE", battery_pct: float = 80.0, faults: tuple[str, ...] = (),
                     goodbye: bool = False, **extra: Any) -> str:
        return await self.send("status", wire.Status(state=wire.RobotState(state), battery_pct=battery_pct,
                                                     charging=False, heartbeat_interval_s=self.heartbeat_interval_s,
                                                     faults=list(faults), goodbye=goodbye, **extra))

    async def ack(self, command_id: str, status: str, detail: str = "") -> str:
        return await self.send("cmd.ack", wire.CmdAck(status=wire.AckStatus(status), detail=detail),
                               correlation_id=command_id)

    async def telemetry(self, x: float, battery_pct: float = 80.0) -> None:
        """One sample, not flushed (a burst goes out as fast as the client can write)."""
        assert self.nc is not None
        message_id = f"{self.robot_id}-{next(self._ids)}"
        sample = wire.Telemetry(pose=wire.Pose(x=x, y=0.0), battery_pct=battery_pct, speed_mps=0.5)
        await self.nc.publish(wire.subject("telemetry", self.robot_id),
                              wire.encode("telemetry", self.robot_id, message_id, datetime.now(timezone.utc), sample))
