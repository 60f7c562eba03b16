"""Robots on the wire (docs/architecture.md §4.4): the subjects of a site's robots on the edge's
own nats-server, the one envelope every robot message travels in, its typed payloads, and the
robot command the hub sends an edge on its command subject.

Robot ↔ edge (on the box's nats-server, so it keeps working through a WAN outage):

    robot → edge   robots.identity.<id>  robots.capability.<id>  robots.status.<id>
                   robots.telemetry.<id> robots.settings.reported.<id>  robots.cmd.ack.<id>
    edge → robot   robots.cmd.<id>       robots.settings.desired.<id>

Field names on this wire are camelCase (the robot side is not ours to name), everything else in
Vigil is snake_case. A message is checked against its subject: the `robotId` must be the
subject's, the `type` the subject's kind, the `payloadVersion` one this code reads.
"""
from __future__ import annotations

import enum
import re
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

PAYLOAD_VERSION = 1
SUPPORTED_VERSIONS = frozenset({PAYLOAD_VERSION})

#: A robot id is one NATS token (it names a NATS user and ends every robot subject). "ack" is
#: reserved: `robots.cmd.ack` would be both a command to robot "ack" and a prefix of the acks.
ROBOT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
RESERVED_ROBOT_IDS = frozenset({"ack", "agent"})

MessageType = Literal["identity", "capability", "status", "telemetry", "settings.reported",
                      "settings.desired", "cmd", "cmd.ack"]

#: Robot → edge message types, in the order a first-seen robot is asked for them.
FROM_ROBOT: tuple[MessageType, ...] = ("identity", "capability", "status", "telemetry", "settings.reported", "cmd.ack")
#: Edge → robot message types.
TO_ROBOT: tuple[MessageType, ...] = ("cmd", "settings.desired")

#: The edge's JetStream names on its own server (not the hub's): robot → edge messages are
#: stored there so nothing a robot says is lost while the agent restarts.
EVENTS_STREAM = "ROBOT_EVENTS"
TELEMETRY_STREAM = "ROBOT_TELEMETRY"  # memory, one message per subject: latest wins at the server
EVENTS_CONSUMER = "agent-robots"
TELEMETRY_CONSUMER = "agent-telemetry"


def valid_robot_id(robot_id: str) -> bool:
    """A robot id is one NATS token and not a reserved word."""
    return bool(ROBOT_ID_RE.match(robot_id)) and robot_id not in RESERVED_ROBOT_IDS


def subject(message_type: MessageType, robot_id: str) -> str:
    """The subject a message of this type about this robot travels on."""
    return f"robots.{message_type}.{robot_id}"


def parse_subject(subj: str) -> tuple[MessageType, str] | None:
    """(type, robot id) of a robot subject, or None when it is not one."""
    if not subj.startswith("robots."):
        return None
    head, _, robot_id = subj[len("robots."):].rpartition(".")
    if head not in FROM_ROBOT and head not in TO_ROBOT or not valid_robot_id(robot_id):
        return None
    return head, robot_id  # type: ignore[return-value]


def robot_publish_subjects(robot_id: str) -> tuple[str, ...]:
    """What a robot's NATS user may publish: its own robot → edge subjects only."""
    return tuple(subject(t, robot_id) for t in FROM_ROBOT)


def robot_subscribe_subjects(robot_id: str) -> tuple[str, ...]:
    """What a robot's NATS user may receive: its own edge → robot subjects only."""
    return tuple(subject(t, robot_id) for t in TO_ROBOT)


#: What the agent may publish on its own server for the robots: commands and desired settings to
#: any robot, its own JetStream API (the robot streams and their consumers) and those consumers'
#: acknowledgements. Never a robot's own subjects: the agent cannot speak for a robot.
AGENT_PUBLISH = ("robots.cmd.*", "robots.settings.desired.*", "$JS.API.>",
                 f"$JS.ACK.{EVENTS_STREAM}.>", f"$JS.ACK.{TELEMETRY_STREAM}.>")
EVENTS_STREAM_SUBJECTS = [f"robots.{t}.*" for t in FROM_ROBOT if t != "telemetry"]
TELEMETRY_STREAM_SUBJECTS = ["robots.telemetry.*"]

UtcTime = Annotated[datetime, msgspec.Meta(tz=True)]
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]


class RobotEnvelope(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """Every robot message. `payload` stays raw until its version and type are checked."""

    payload_version: int
    message_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    robot_id: str
    sent_at: UtcTime
    type: MessageType
    payload: msgspec.Raw
    correlation_id: str | None = None


class RobotState(str, enum.Enum):
    """What the robot is doing. EMERGENCY_STOP holds until `reset`; ERROR until `reset` too."""

    IDLE = "IDLE"
    MOVING = "MOVING"        # a `goto`
    PATROLLING = "PATROLLING"
    DOCKING = "DOCKING"
    CHARGING = "CHARGING"
    PAUSED = "PAUSED"
    ERROR = "ERROR"
    EMERGENCY_STOP = "EMERGENCY_STOP"


#: Faults a robot reports in its status; each is a robot alarm at the edge while present.
Fault = Literal["COLLISION", "STUCK", "BATTERY_CRITICAL", "MOTOR", "SENSOR", "LOCALISATION"]


class Identity(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """What the robot is (asked once when it is first seen, and after every reconnect)."""

    manufacturer: str
    model: str
    serial_number: str
    firmware_version: str
    bridge_version: str
    name: str | None = None


class SettingSpec(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """One setting the robot accepts."""

    name: str
    type: Literal["number", "bool", "route"]
    min: float | None = None
    max: float | None = None
    unit: str | None = None


class Capability(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """What the robot can do: its commands, settings and telemetry fields."""

    commands: list[str]
    settings: list[SettingSpec]
    telemetry: list[str]
    heartbeat_interval_s: Annotated[float, msgspec.Meta(gt=0, le=300)]


class Pose(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """Where the robot is on its site's map (metres, radians)."""

    x: float
    y: float
    theta: float = 0.0


class Status(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """The robot's state, sent on change and every heartbeat interval (it is the heartbeat).
    `goodbye` says the robot is going offline on purpose (a clean shutdown)."""

    state: RobotState
    battery_pct: Percent
    charging: bool
    heartbeat_interval_s: Annotated[float, msgspec.Meta(gt=0, le=300)]
    faults: list[Fault] = msgspec.field(default_factory=list)
    current_command_id: str | None = None
    goodbye: bool = False


class Telemetry(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """One telemetry sample (a robot sends many per second; the edge keeps them at its rate)."""

    pose: Pose
    battery_pct: Percent
    speed_mps: float
    state: RobotState | None = None
    extra: dict[str, float] = msgspec.field(default_factory=dict)


class Waypoint(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """One point of a patrol route."""

    x: float
    y: float
    name: str | None = None


Route = Annotated[list[Waypoint], msgspec.Meta(min_length=1, max_length=200)]


class Settings(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """The settings a robot takes. Desired settings name only what they change (None = leave)."""

    max_speed_mps: Annotated[float, msgspec.Meta(gt=0, le=10)] | None = None
    patrol_route: Route | None = None
    camera_on: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        """The settings that are set, by their wire names."""
        return msgspec.to_builtins(self)


class SettingsDesired(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """What the hub wants set, under the lease's fencing token."""

    settings: Settings
    fencing_token: int | None = None


class SettingsReported(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """What the robot actually runs with (all of it), and which desired message it applied, if any."""

    settings: Settings
    applied_message_id: str | None = None


#: Commands a person may give a robot through the hub.
CommandType = Literal["goto", "patrol", "dock", "pause", "resume", "estop", "reset", "cancel"]
#: Commands only the edge gives: it asks a newly seen robot who it is and what it can do.
EdgeQuery = Literal["report_identity", "report_capability"]
#: Commands that need no lease: stopping is always allowed, and so is asking who a robot is.
NO_LEASE_COMMANDS = frozenset({"estop", "cancel", "report_identity", "report_capability"})


class GotoArgs(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    x: float
    y: float
    theta: float | None = None


class PatrolArgs(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    loops: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0  # 0: until told otherwise


class CancelArgs(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    command_id: str


class NoArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


ARGS_OF: dict[str, type[msgspec.Struct]] = {
    "goto": GotoArgs, "patrol": PatrolArgs, "cancel": CancelArgs,
    "dock": NoArgs, "pause": NoArgs, "resume": NoArgs, "estop": NoArgs, "reset": NoArgs,
    "report_identity": NoArgs, "report_capability": NoArgs,
}


class Cmd(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """A command to the robot; its envelope's `correlationId` is the command id."""

    command_type: str
    args: dict[str, Any] = msgspec.field(default_factory=dict)
    fencing_token: int | None = None


class AckStatus(str, enum.Enum):
    """A command's progress as the robot reports it (WAITING → RUNNING → FINISHED | FAILED |
    CANCELLED | REJECTED_*), plus what the edge reports for a robot that never answered
    (TIMEOUT) or a command that could not be handed over (REJECTED_EXPIRED, REJECTED_UNKNOWN_ROBOT)."""

    WAITING = "WAITING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REJECTED_STALE_TOKEN = "REJECTED_STALE_TOKEN"  # a lower fencing token than one already seen
    REJECTED_INVALID = "REJECTED_INVALID"          # unknown command, bad arguments or settings
    REJECTED_STATE = "REJECTED_STATE"              # not now (e.g. moving while EMERGENCY_STOP)
    REJECTED_EXPIRED = "REJECTED_EXPIRED"          # edge: it reached the box after it expired
    REJECTED_UNKNOWN_ROBOT = "REJECTED_UNKNOWN_ROBOT"  # edge: no such robot on this box
    TIMEOUT = "TIMEOUT"                            # edge: the robot never answered

    @property
    def final(self) -> bool:
        """No later status follows this one."""
        return self not in (AckStatus.WAITING, AckStatus.RUNNING)


class CmdAck(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """The robot's word on a command or desired settings (`correlationId`: the command id)."""

    status: AckStatus
    detail: str = ""
    progress: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None


PAYLOAD_TYPES: dict[str, type[msgspec.Struct]] = {
    "identity": Identity, "capability": Capability, "status": Status, "telemetry": Telemetry,
    "settings.reported": SettingsReported, "settings.desired": SettingsDesired, "cmd": Cmd, "cmd.ack": CmdAck,
}

_encoder = msgspec.json.Encoder()
_envelope_decoder = msgspec.json.Decoder(RobotEnvelope)
_payload_decoders = {t: msgspec.json.Decoder(s) for t, s in PAYLOAD_TYPES.items()}

#: Why a message was dropped (the label of the edge's and the bridge's drop counters).
DropReason = Literal["malformed", "unknown_version", "wrong_robot", "wrong_type", "bad_payload"]


class RobotMessageError(ValueError):
    """A robot message that cannot be read; `reason` is a DropReason."""

    def __init__(self, reason: DropReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: DropReason = reason


def encode(message_type: MessageType, robot_id: str, message_id: str, sent_at: datetime,
           payload: msgspec.Struct, correlation_id: str | None = None) -> bytes:
    """The bytes of one robot message."""
    return _encoder.encode(RobotEnvelope(
        payload_version=PAYLOAD_VERSION, message_id=message_id, robot_id=robot_id, sent_at=sent_at,
        type=message_type, payload=msgspec.Raw(_encoder.encode(payload)), correlation_id=correlation_id))


def decode(data: bytes, subj: str | None = None) -> tuple[RobotEnvelope, msgspec.Struct]:
    """The envelope and typed payload of one message, checked against its subject when given.
    Raises RobotMessageError (never anything else) for whatever cannot be read."""
    try:
        env = _envelope_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RobotMessageError("malformed", str(exc)) from None
    if env.payload_version not in SUPPORTED_VERSIONS:
        raise RobotMessageError("unknown_version", f"payloadVersion {env.payload_version}")
    if subj is not None:
        parsed = parse_subject(subj)
        if parsed is None:
            raise RobotMessageError("wrong_type", f"{subj!r} is not a robot subject")
        if parsed[1] != env.robot_id:
            raise RobotMessageError("wrong_robot", f"robotId {env.robot_id!r} on {subj!r}")
        if parsed[0] != env.type:
            raise RobotMessageError("wrong_type", f"type {env.type!r} on {subj!r}")
    try:
        payload = _payload_decoders[env.type].decode(env.payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RobotMessageError("bad_payload", f"{env.type}: {exc}") from None
    return env, payload


def check_args(command_type: str, args: dict[str, Any]) -> msgspec.Struct:
    """The typed arguments of a command; ValueError for an unknown command or bad arguments."""
    spec = ARGS_OF.get(command_type)
    if spec is None:
        raise ValueError(f"unknown command {command_type!r}")
    try:
        return msgspec.convert(args, spec)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{command_type}: {exc}") from None


class RobotCredentials(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A robot's login on its edge's nats-server, as `python -m edge robot add` writes it (0600)
    and the bridge's `--creds` reads it."""

    robot_id: str
    user: str
    password: str


# ---- hub → edge -----------------------------------------------------------------------------

#: The header that tells a robot command from a panel command on `vigil.edge.<edge>.cmd`.
H_COMMAND_KIND = "Vigil-Command-Kind"
ROBOT_COMMAND_KIND = "robot"
ACK_KIND = "robot.cmd.ack"  # the event kind the edge journals a robot's (or its own) word under


class RobotCommand(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A command or desired settings for one robot of one edge, as the hub publishes it.
    `kind` "cmd" carries `command_type` and `args`; "settings.desired" carries `settings`.
    `fencing_token` is the lease's (None only for NO_LEASE_COMMANDS)."""

    id: str
    edge: str
    robot: str
    kind: Literal["cmd", "settings.desired"]
    who: str  # "user:<login>"
    issued_at: UtcTime
    expires_at: UtcTime
    command_type: str = ""
    args: dict[str, Any] = msgspec.field(default_factory=dict)
    settings: Settings | None = None
    fencing_token: int | None = None
    v: int = 1


def encode_command(command: RobotCommand) -> bytes:
    """The bytes published on the edge's command subject (with H_COMMAND_KIND: robot)."""
    return msgspec.json.encode(command)


def decode_command(data: bytes) -> RobotCommand:
    """A robot command from the wire; msgspec.ValidationError/DecodeError when it is not one."""
    return msgspec.json.decode(data, type=RobotCommand)
