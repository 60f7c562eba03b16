"""What the edge knows of each robot, pure (docs/architecture.md §7 "Robots"): the link (I/O)
feeds it decoded robot messages and clock ticks and carries out what it returns, events to
journal and questions to ask the robot.

- **Connection** from heartbeats (every status message is one; the robot states its interval):
  ONLINE on the first heartbeat after unknown, OFFLINE or CONNECTION_BROKEN; OFFLINE on a status
  with `goodbye`; CONNECTION_BROKEN when nothing was heard for `missed_heartbeats` intervals.
- **Questions**: a robot seen for the first time since the agent started, or back after OFFLINE
  or CONNECTION_BROKEN, is asked who it is (`report_identity`), then, once it answered or the
  question went unanswered `query_attempts` times, what it can do (`report_capability`).
- **Status** is journaled when its state or faults change, never for a mere heartbeat.
- **Alarms** derived from the status start once (`robot.alarm.<alarm>`, priority from
  `shared.bodies.robots.ROBOT_ALARMS`) and end once (`robot.restore.<alarm>`, NORMAL).
- **Telemetry** is sampled: at most one kept sample per period, latest wins, `skipped` counts
  the rest (`TelemetrySampler`).

Events caused by one robot message carry a `key` (robot, message id, kind) the link turns into
the envelope id, so a message processed again after a crash is recognisably the same event.
What must outlive the agent (connection, last journaled state and faults, active alarms) is a
`Snapshot` the link keeps in the journal's database.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from shared.bodies.robots import (ALARM_PREFIX, RESTORE_PREFIX, ROBOT_ALARMS, ConnectionState, RobotAlarm,
                                  RobotCapability, RobotCommandAck, RobotConnection, RobotIdentity,
                                  RobotSettingsReported, RobotStatus, RobotTelemetry)
from shared.clock import Clock
from shared.envelope import Priority
from shared.ids import uuid7
from shared.robots import (ACK_KIND, AckStatus, Capability, CmdAck, Identity, Pose, RobotEnvelope, RobotState,
                           Settings, SettingsReported, Status, Telemetry)

#: Which alarm each fault the robot reports raises while it is present.
FAULT_ALARMS: dict[str, str] = {
    "COLLISION": "collision",
    "STUCK": "stuck",
    "BATTERY_CRITICAL": "battery_critical",
    "MOTOR": "fault",
    "SENSOR": "fault",
    "LOCALISATION": "fault",
}
#: A battery_critical raised by the percentage alone ends only this far above the threshold, so a
#: battery hovering at it does not raise and end the alarm with every heartbeat.
BATTERY_HYSTERESIS_PCT = 2.0

CONNECTION_PRIORITY: dict[ConnectionState, Priority] = {
    "ONLINE": Priority.LOW,
    "OFFLINE": Priority.LOW,  # said goodbye: a planned stop
    "CONNECTION_BROKEN": Priority.NORMAL,
}
REPORT_IDENTITY = "report_identity"
REPORT_CAPABILITY = "report_capability"

# Envelope ids made from what caused the event: the same robot message, or the same command and
# status, always gives the same id (docs/architecture.md §3: the hub de-duplicates by id).
_EVENT_NAMESPACE = uuid.UUID("0c3d8f0e-6a55-4c9e-8d43-5b7a1e2f9c61")


def event_id(key: str) -> uuid.UUID:
    """The envelope id of the event with this key."""
    return uuid.uuid5(_EVENT_NAMESPACE, key)


def ack_key(command_id: str, status: AckStatus, by: str) -> str:
    """The key of a `robot.cmd.ack`: the command, its status, and the robot message that said it
    (`by`: its message id) or "edge" when the edge settled the command itself."""
    return f"ack|{command_id}|{status.value}|{by}"


@dataclass(frozen=True)
class Observation:
    """One event to journal about a robot. `key`: the basis of its envelope id (None: a fresh one);
    `corr`: the command it is about."""

    kind: str
    priority: Priority
    body: msgspec.Struct
    key: str | None = None
    corr: str | None = None


@dataclass(frozen=True)
class Ask:
    """A question to publish to the robot: a token-less `cmd` on `robots.cmd.<robot>`."""

    robot: str
    command_type: str
    correlation_id: str
    attempt: int


@dataclass(frozen=True)
class Unanswered:
    """A question the robot left unanswered `attempts` times: the link logs it and moves on."""

    robot: str
    command_type: str
    attempts: int


Action = Observation | Ask | Unanswered


@dataclass(frozen=True)
class Policy:
    """The settings a tracker judges by (edge.config.RobotsSettings)."""

    missed_heartbeats: int = 3
    battery_critical_pct: float = 10.0
    query_timeout_s: float = 5.0
    query_attempts: int = 2


class Snapshot(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the edge keeps of a robot across agent restarts, so a restart neither raises an alarm
    that is already open nor reports a state the hub already has."""

    connection: ConnectionState | None = None
    connection_since: datetime | None = None
    last_heartbeat_at: datetime | None = None
    heartbeat_interval_s: float | None = None
    state: str | None = None
    faults: list[str] = msgspec.field(default_factory=list)
    alarms: dict[str, str] = msgspec.field(default_factory=dict)


def alarms_of(status: Status, battery_critical_pct: float, battery_alarm_active: bool = False) -> dict[str, str]:
    """The alarms a status shows, each with a detail for people: estop for EMERGENCY_STOP;
    collision, stuck, battery_critical from their faults; fault for a motor, sensor or
    localisation fault or the ERROR state; battery_critical also at or below the threshold
    (until BATTERY_HYSTERESIS_PCT above it when it is already active)."""
    found: dict[str, list[str]] = {}
    if status.state is RobotState.EMERGENCY_STOP:
        found.setdefault("estop", []).append("emergency stop")
    if status.state is RobotState.ERROR:
        found.setdefault("fault", []).append("state ERROR")
    for fault in sorted(set(status.faults)):
        found.setdefault(FAULT_ALARMS[fault], []).append(fault)
    limit = battery_critical_pct + (BATTERY_HYSTERESIS_PCT if battery_alarm_active else 0.0)
    if status.battery_pct <= limit:
        found.setdefault("battery_critical", []).append(f"battery {status.battery_pct:g} %")
    return {alarm: ", ".join(details) for alarm, details in found.items()}


@dataclass
class TelemetrySampler:
    """Keeps at most one telemetry sample per `period_s` (monotonic seconds), the latest one;
    `skipped` counts the samples replaced since the last kept one."""

    period_s: float
    pending: tuple[RobotEnvelope, Telemetry] | None = None
    skipped: int = 0
    next_due: float = float("-inf")
    kept: int = 0
    skipped_total: int = 0

    def offer(self, envelope: RobotEnvelope, sample: Telemetry) -> None:
        """Take a sample: it replaces the one waiting, if any (that one counts as skipped)."""
        if self.pending is not None:
            self.skipped += 1
            self.skipped_total += 1
        self.pending = (envelope, sample)

    def due(self, now: float) -> tuple[RobotEnvelope, Telemetry, int] | None:
        """The latest sample with its skipped count when the period has passed, else None."""
        if self.pending is None or now < self.next_due:
            return None
        (envelope, sample), skipped = self.pending, self.skipped
        self.pending, self.skipped = None, 0
        # On the grid of periods, so ticks that come a little late (the poll interval) still keep
        # one sample per period on average; after a gap the grid starts again from now.
        late = now - self.next_due
        self.next_due = self.next_due + self.period_s if late < self.period_s else now + self.period_s
        self.kept += 1
        return envelope, sample, skipped


@dataclass
class RobotTracker:
    """One robot as the edge sees it. Feed it with `on_message`, `on_ack`, `on_telemetry` and
    `tick`; carry out what they return, in order."""

    robot_id: str
    policy: Policy
    clock: Clock
    connection: ConnectionState | None = None
    connection_since: datetime | None = None
    last_heartbeat_at: datetime | None = None
    last_message_at: datetime | None = None
    heartbeat_interval_s: float | None = None
    status: Status | None = None
    reported_state: str | None = None
    reported_faults: tuple[str, ...] = ()
    alarms: dict[str, str] = field(default_factory=dict)
    identity: Identity | None = None
    identity_at: datetime | None = None
    capability: Capability | None = None
    settings: Settings | None = None  # as the robot last reported them
    pose: Pose | None = None
    asking: str | None = None  # the question in flight
    ask_id: str | None = None
    asked_at: datetime | None = None
    ask_attempts: int = 0
    asked_since_start: bool = False

    # --- persistence -----------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return Snapshot(connection=self.connection, connection_since=self.connection_since,
                        last_heartbeat_at=self.last_heartbeat_at, heartbeat_interval_s=self.heartbeat_interval_s,
                        state=self.reported_state, faults=list(self.reported_faults), alarms=dict(self.alarms))

    def restore(self, snapshot: Snapshot) -> None:
        """Take up where the previous agent left this robot."""
        self.connection, self.connection_since = snapshot.connection, snapshot.connection_since
        self.last_heartbeat_at, self.heartbeat_interval_s = snapshot.last_heartbeat_at, snapshot.heartbeat_interval_s
        self.reported_state, self.reported_faults = snapshot.state, tuple(snapshot.faults)
        self.alarms = dict(snapshot.alarms)

    # --- input -----------------------------------------------------------------------------------

    def on_message(self, envelope: RobotEnvelope, payload: msgspec.Struct,
                   heard_at: datetime | None = None) -> list[Action]:
        """A message from the robot other than telemetry and acks (see on_telemetry, on_ack);
        `heard_at`: when the box's server received it (default: now)."""
        heard = heard_at or self.clock.now()
        self.last_message_at = max(heard, self.last_message_at) if self.last_message_at else heard
        key = f"{self.robot_id}|{envelope.message_id}|"
        robot, message_id, sent_at = self.robot_id, envelope.message_id, envelope.sent_at
        if isinstance(payload, Status):
            return self._on_status(envelope, payload, heard)
        if isinstance(payload, Identity):
            self.identity, self.identity_at = payload, heard
            kind = "robot.identity"
            out: list[Action] = [Observation(kind, Priority.LOW, RobotIdentity(robot, message_id, sent_at, payload),
                                             key + kind)]
            return out + self._answered(REPORT_IDENTITY)
        if isinstance(payload, Capability):
            self.capability = payload
            if self.heartbeat_interval_s is None:
                self.heartbeat_interval_s = payload.heartbeat_interval_s
            kind = "robot.capability"
            out = [Observation(kind, Priority.LOW, RobotCapability(robot, message_id, sent_at, payload), key + kind)]
            return out + self._answered(REPORT_CAPABILITY)
        if isinstance(payload, SettingsReported):
            self.settings = payload.settings
            kind = "robot.settings.reported"
            body = RobotSettingsReported(robot, message_id, sent_at, payload.settings, payload.applied_message_id)
            return [Observation(kind, Priority.LOW, body, key + kind)]
        raise TypeError(f"{type(payload).__name__} is not a message RobotTracker.on_message takes")

    def on_ack(self, envelope: RobotEnvelope, ack: CmdAck, command_type: str = "",
               fencing_token: int | None = None) -> list[Action]:
        """A command's progress from the robot, journaled as `robot.cmd.ack`; `command_type` and
        `fencing_token` are what the edge relayed, when it knows them. A question of the edge's
        answered with a final status other than FINISHED counts as answered (it will not be)."""
        assert envelope.correlation_id is not None
        command_id = envelope.correlation_id
        if command_id == self.ask_id and not command_type:
            command_type = self.asking or ""
        body = RobotCommandAck(command_id=command_id, robot=self.robot_id, command_type=command_type,
                               status=ack.status, by="robot", detail=ack.detail, progress=ack.progress,
                               fencing_token=fencing_token)
        out: list[Action] = [Observation(ACK_KIND, Priority.NORMAL, body,
                                         ack_key(command_id, ack.status, envelope.message_id), corr=command_id)]
        if command_id == self.ask_id and ack.status.final and ack.status is not AckStatus.FINISHED and self.asking:
            out += self._answered(self.asking)
        return out

    def on_telemetry(self, envelope: RobotEnvelope, sample: Telemetry, heard_at: datetime | None = None) -> None:
        """A telemetry sample: the robot's last pose (alarms report where it was)."""
        heard = heard_at or self.clock.now()
        self.last_message_at = max(heard, self.last_message_at) if self.last_message_at else heard
        self.pose = sample.pose

    def tick(self) -> list[Action]:
        """What the passing of time does: a heartbeat missed too long breaks the connection; a
        question unanswered for `query_timeout_s` is asked again, or given up."""
        now = self.clock.now()
        out: list[Action] = []
        if self.connection == "ONLINE" and self.last_heartbeat_at is not None and self.heartbeat_interval_s:
            silent = (now - self.last_heartbeat_at).total_seconds()
            if silent > self.policy.missed_heartbeats * self.heartbeat_interval_s:
                out.append(self._connect("CONNECTION_BROKEN", f"no heartbeat for {silent:.1f} s (expected every "
                                                             f"{self.heartbeat_interval_s:g} s)", None))
                self.asking = self.ask_id = None
        if self.asking and self.asked_at is not None and \
                (now - self.asked_at).total_seconds() >= self.policy.query_timeout_s:
            if self.ask_attempts < self.policy.query_attempts:
                out.append(self._ask(self.asking, self.ask_attempts + 1))
            else:
                out.append(Unanswered(self.robot_id, self.asking, self.ask_attempts))
                out += self._answered(self.asking)
        return out

    # --- inside ----------------------------------------------------------------------------------

    def _on_status(self, envelope: RobotEnvelope, status: Status, heard: datetime) -> list[Action]:
        key = f"{self.robot_id}|{envelope.message_id}|"
        out: list[Action] = []
        self.heartbeat_interval_s = status.heartbeat_interval_s
        if self.last_heartbeat_at is None or heard >= self.last_heartbeat_at:
            self.last_heartbeat_at = heard
        if status.goodbye:
            if self.connection != "OFFLINE":
                out.append(self._connect("OFFLINE", "the robot said goodbye", key))
            self.asking = self.ask_id = None
        elif self.connection != "ONLINE":
            was = self.connection
            out.append(self._connect("ONLINE", "first heartbeat" if was is None else f"heartbeat again after {was}",
                                     key))
            self.asked_since_start = False
        faults = tuple(sorted(set(status.faults)))
        if (status.state.value, faults) != (self.reported_state, self.reported_faults):
            kind = "robot.status"
            body = RobotStatus(self.robot_id, envelope.message_id, envelope.sent_at, status,
                               previous_state=self.reported_state)
            out.append(Observation(kind, Priority.NORMAL, body, key + kind))
            self.reported_state, self.reported_faults = status.state.value, faults
        self.status = status
        now_alarms = alarms_of(status, self.policy.battery_critical_pct, "battery_critical" in self.alarms)
        for alarm in sorted(set(now_alarms) - set(self.alarms)):
            kind = ALARM_PREFIX + alarm
            out.append(Observation(kind, ROBOT_ALARMS[alarm], self._alarm_body(alarm, now_alarms[alarm], status),
                                   key + kind))
        for alarm in sorted(set(self.alarms) - set(now_alarms)):
            kind = RESTORE_PREFIX + alarm
            out.append(Observation(kind, Priority.NORMAL, self._alarm_body(alarm, f"ended ({self.alarms[alarm]})", status),
                                   key + kind))
        self.alarms = now_alarms
        if self.connection == "ONLINE" and not self.asked_since_start:
            self.asked_since_start = True
            out.append(self._ask(REPORT_IDENTITY, 1))
        return out

    def _connect(self, state: ConnectionState, reason: str, key: str | None) -> Observation:
        self.connection, self.connection_since = state, self.clock.now()
        body = RobotConnection(self.robot_id, state, reason, self.last_heartbeat_at)
        kind = "robot.connection"
        return Observation(kind, CONNECTION_PRIORITY[state], body, None if key is None else key + kind)

    def _alarm_body(self, alarm: str, detail: str, status: Status) -> RobotAlarm:
        pose = None if self.pose is None else {"x": self.pose.x, "y": self.pose.y, "theta": self.pose.theta}
        return RobotAlarm(robot=self.robot_id, alarm=alarm, detail=detail, state=status.state.value,
                          battery_pct=status.battery_pct, pose=pose)

    def _ask(self, command_type: str, attempt: int) -> Ask:
        if attempt == 1 or self.ask_id is None:
            self.ask_id = str(uuid7())
        self.asking, self.asked_at, self.ask_attempts = command_type, self.clock.now(), attempt
        return Ask(self.robot_id, command_type, self.ask_id, attempt)

    def _answered(self, command_type: str) -> list[Action]:
        """The question `command_type` is settled (answered or given up): identity leads to
        capability, capability ends the questions."""
        if self.asking != command_type:
            return []
        self.asking = self.ask_id = None
        if command_type == REPORT_IDENTITY:
            return [self._ask(REPORT_CAPABILITY, 1)]
        return []

    def status_view(self) -> dict[str, object]:
        """What the local page shows of the robot."""
        status = self.status
        identity = None if self.identity is None else msgspec.to_builtins(self.identity)
        return {
            "id": self.robot_id,
            "connection": self.connection or "UNKNOWN",
            "since": self.connection_since.isoformat() if self.connection_since else None,
            "state": status.state.value if status else self.reported_state,
            "battery_pct": status.battery_pct if status else None,
            "faults": list(status.faults) if status else list(self.reported_faults),
            "alarms": sorted(self.alarms),
            "last_heard_at": self.last_message_at.isoformat() if self.last_message_at else None,
            "heartbeat_interval_s": self.heartbeat_interval_s,
            "identity": identity,
            "identity_at": self.identity_at.isoformat() if self.identity_at else None,
            "asking": self.asking,
        }


def telemetry_observation(robot_id: str, envelope: RobotEnvelope, sample: Telemetry, skipped: int) -> Observation:
    """The `robot.telemetry` event of a kept sample (LOW: the evt lane, never the alarm lane)."""
    body = RobotTelemetry(robot_id, envelope.message_id, envelope.sent_at, sample, skipped)
    return Observation("robot.telemetry", Priority.LOW, body)
