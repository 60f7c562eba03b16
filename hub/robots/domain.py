"""The rules of robots at the hub, pure: how a command's status moves on the robot's acks, who
holds a robot's lease and what a command needs of it, what desired settings may say and which of
them the robot does not run yet, what the API may edit, and a telemetry range. No database, no
network; the time is passed in."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

import msgspec

from shared.robots import NO_LEASE_COMMANDS, AckStatus, CommandType, Settings, check_args


class CommandStatus(str, enum.Enum):
    """REQUESTED: committed, not yet in JetStream. SENT: JetStream has it. ACKED: the robot took it
    (WAITING). RUNNING: under way. Then one final status."""

    REQUESTED = "REQUESTED"
    SENT = "SENT"
    ACKED = "ACKED"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    CANCELLED = "CANCELLED"

    @property
    def final(self) -> bool:
        return self in (CommandStatus.FINISHED, CommandStatus.FAILED, CommandStatus.TIMEOUT, CommandStatus.CANCELLED)


# How far an open command has come: an ack never moves it back (a WAITING after RUNNING).
_PROGRESS = {CommandStatus.REQUESTED: 0, CommandStatus.SENT: 1, CommandStatus.ACKED: 2, CommandStatus.RUNNING: 3}


def status_of(ack: AckStatus) -> CommandStatus:
    """The command status an ack stands for; every REJECTED_* is FAILED (the exact word is kept
    beside it)."""
    if ack is AckStatus.WAITING:
        return CommandStatus.ACKED
    if ack is AckStatus.RUNNING:
        return CommandStatus.RUNNING
    if ack in (AckStatus.FINISHED, AckStatus.CANCELLED, AckStatus.TIMEOUT):
        return CommandStatus(ack.value)
    return CommandStatus.FAILED


@dataclass(frozen=True)
class AckSettlement:
    """What an ack does to a command: its new status, and whether it came after the hub had
    given up on it (a TIMEOUT the hub set)."""

    status: CommandStatus
    late: bool


def settle_ack(current: CommandStatus, settled_by_hub: bool, ack: AckStatus) -> AckSettlement | None:
    """The ack's effect on a command in `current`; None when it changes nothing. A final status
    the robot or edge gave is final. One the hub gave on its own (TIMEOUT) is replaced by any word
    from the edge, flagged late. An open command never moves back (a WAITING after RUNNING), and
    RUNNING again carries new progress."""
    new = status_of(ack)
    if current.final:
        return AckSettlement(new, late=True) if settled_by_hub else None
    if not new.final and (_PROGRESS[new] < _PROGRESS[current] or (new is current and new is not CommandStatus.RUNNING)):
        return None
    return AckSettlement(new, late=False)


# ---- commands ---------------------------------------------------------------------------------

#: What a person may ask of a robot through the hub (the edge's own questions are not among them).
PERSON_COMMANDS: tuple[str, ...] = get_args(CommandType)


class RobotRuleError(Exception):
    """A request the rules refuse; `code` names the rule for the API's error shape."""

    code = "invalid"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details


class BadCommand(RobotRuleError):
    code = "bad_command"


def check_command(command_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The command's arguments as the robot gets them; BadCommand for a command a person may not
    give or arguments it does not take (shared.robots.check_args)."""
    if command_type not in PERSON_COMMANDS:
        raise BadCommand(f"unknown command {command_type!r}; known: {', '.join(PERSON_COMMANDS)}",
                         {"field": "commandType"})
    try:
        args = check_args(command_type, payload)
    except ValueError as exc:
        raise BadCommand(str(exc), {"field": "payload"}) from None
    return msgspec.to_builtins(args)


def needs_lease(command_type: str) -> bool:
    """Every command but stopping (estop) and cancelling needs the caller's lease."""
    return command_type not in NO_LEASE_COMMANDS


# ---- leases -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LeaseView:
    """A robot's open lease as the rules see it."""

    lease_id: str
    holder_id: int
    holder_name: str
    fencing_token: int
    expires_at: datetime

    def active(self, now: datetime) -> bool:
        """A lease is over at its expiry whether or not anything marked it."""
        return self.expires_at > now


class LeaseHeld(RobotRuleError):
    """Someone else holds the robot's lease."""

    code = "lease_held"

    def __init__(self, lease: LeaseView) -> None:
        super().__init__(f"{lease.holder_name} holds this robot's lease until {lease.expires_at.isoformat()}",
                         holder_details(lease))
        self.lease = lease


class LeaseLost(RobotRuleError):
    """The command names a lease that is not the caller's current one (expired, released, taken
    by force, or another's)."""

    code = "lease_lost"


class LeaseRequired(LeaseLost):
    code = "lease_required"


class ForceForbidden(RobotRuleError):
    code = "forbidden"


def holder_details(lease: LeaseView | None) -> dict[str, Any]:
    """Who holds a lease and until when, for an error's details."""
    if lease is None:
        return {"holder": None, "expiresAt": None}
    return {"holder": {"id": lease.holder_id, "name": lease.holder_name}, "expiresAt": lease.expires_at.isoformat()}


@dataclass(frozen=True)
class TakeDecision:
    """What taking a lease does: a new lease (with the next fencing token) or a renewal of the
    caller's own, and how the open lease it replaces ends (None: there is none, or it is renewed)."""

    action: Literal["new", "renew"]
    ends: Literal["EXPIRED", "FORCED"] | None
    expires_at: datetime


def decide_take(current: LeaseView | None, caller_id: int, now: datetime, ttl: timedelta, *, force: bool = False,
                may_force: bool = False, reason: str | None = None) -> TakeDecision:
    """Taking a robot's lease: free or expired, it is the caller's (a new lease); the caller's
    own, it is renewed (same id and token, later expiry); another's, LeaseHeld, unless the caller
    may force it (MASTER) and says why, which ends the holder's lease."""
    if force and not may_force:
        raise ForceForbidden("only a MASTER may take a lease by force")
    if force and not (reason or "").strip():
        raise RobotRuleError("say why: a lease taken by force needs a reason", {"field": "reason"})
    expires_at = now + ttl
    if current is None:
        return TakeDecision("new", None, expires_at)
    if not current.active(now):
        return TakeDecision("new", "EXPIRED", expires_at)
    if current.holder_id == caller_id:
        return TakeDecision("renew", None, expires_at)
    if force:
        return TakeDecision("new", "FORCED", expires_at)
    raise LeaseHeld(current)


def check_command_lease(current: LeaseView | None, lease_id: str | None, caller_id: int, now: datetime) -> LeaseView:
    """The caller's current lease the command names; LeaseRequired when it names none, LeaseLost
    (naming the holder, if any) when it is not the caller's current lease."""
    live = current if current is not None and current.active(now) else None
    if lease_id is None:
        raise LeaseRequired("this command needs your lease on the robot: take it first", holder_details(live))
    if live is None or live.lease_id != lease_id or live.holder_id != caller_id:
        who = f": {live.holder_name} holds it until {live.expires_at.isoformat()}" if live is not None \
            and live.holder_id != caller_id else ""
        raise LeaseLost(f"lease {lease_id} is not your current lease on this robot{who}", holder_details(live))
    return live


# ---- settings ---------------------------------------------------------------------------------

#: The settings a robot takes, by their wire names (maxSpeedMps, patrolRoute, cameraOn).
SETTING_NAMES: frozenset[str] = frozenset(f.encode_name for f in msgspec.structs.fields(Settings))


def check_desired(settings: dict[str, Any]) -> dict[str, Any]:
    """Desired settings as the robot gets them (wire names, only those set); RobotRuleError for an
    unknown setting, a value the robot cannot take, or nothing to set."""
    unknown = sorted(set(settings) - SETTING_NAMES)
    if unknown:
        raise RobotRuleError(f"unknown settings {unknown}; a robot takes {sorted(SETTING_NAMES)}",
                             {"field": "settings"})
    try:
        checked = msgspec.convert(settings, Settings)
    except msgspec.ValidationError as exc:
        raise RobotRuleError(f"settings: {exc}", {"field": "settings"}) from None
    wanted = checked.as_dict()
    if not wanted:
        raise RobotRuleError("name at least one setting to change", {"field": "settings"})
    return wanted


def pending(desired: dict[str, Any] | None, reported: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The desired settings the robot does not report running with: name → {desired, reported}.
    Empty once they converge; a robot that applied another value keeps showing the difference."""
    if not desired:
        return {}
    have = reported or {}
    return {name: {"desired": value, "reported": have.get(name)}
            for name, value in sorted(desired.items()) if have.get(name) != value}


# ---- metadata ---------------------------------------------------------------------------------

#: What the API may change of a robot: the hub's own metadata.
EDITABLE = frozenset({"displayName", "tags", "notes", "enabled"})
#: What only the robot reports (through its edge): never written from the API.
ROBOT_OWNED = frozenset({
    "identity", "capability", "status", "connection", "telemetry", "settings", "settingsReported", "state",
    "batteryPct", "charging", "faults", "pose", "manufacturer", "model", "serialNumber", "firmwareVersion",
    "bridgeVersion", "name", "lastSeenAt", "firstSeenAt",
})


class RobotOwned(RobotRuleError):
    code = "robot_owned"


class NotEditable(RobotRuleError):
    code = "not_editable"


def check_metadata_keys(keys: set[str]) -> None:
    """RobotOwned when a metadata edit names what the robot reports, NotEditable for anything else
    beyond the editable fields (the robot's id, edge and object are the registry's)."""
    owned = sorted(keys & ROBOT_OWNED)
    if owned:
        raise RobotOwned(f"{', '.join(owned)}: robot-owned; only the robot reports it (through its edge)",
                         {"fields": owned})
    other = sorted(keys - EDITABLE)
    if other:
        raise NotEditable(f"{', '.join(other)}: not editable; a robot's {', '.join(sorted(EDITABLE))} are",
                          {"fields": other})


# ---- telemetry --------------------------------------------------------------------------------

class BadRange(RobotRuleError):
    code = "bad_range"


def _instant(value: str, name: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise BadRange(f"{name} must be an ISO 8601 time with its offset, got {value!r}", {"field": name}) from None
    if at.tzinfo is None:
        raise BadRange(f"{name} must carry its UTC offset (…Z or …+02:00), got {value!r}", {"field": name})
    return at


def telemetry_range(since: str | None, until: str | None, now: datetime, max_span: timedelta) -> tuple[datetime, datetime]:
    """[since, until) of a telemetry query: `since` is required, `until` defaults to now; BadRange
    for an unreadable or inverted range, or one longer than `max_span`."""
    if since is None:
        raise BadRange("since is required", {"field": "since"})
    start = _instant(since, "since")
    end = _instant(until, "until") if until is not None else now
    if end <= start:
        raise BadRange("until must be after since", {"field": "until"})
    if end - start > max_span:
        raise BadRange(f"a range is at most {max_span.days} days", {"field": "since"})
    return start, end
