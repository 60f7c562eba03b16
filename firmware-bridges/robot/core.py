"""The robot bridge's state, sans-IO: what to send and what to make the robot do, given the
messages the edge sends and the passing of time (docs/architecture.md §4.4).

No sockets, no tasks, no files: the link (link.py) feeds `receive` with each message of the
robot's two subjects, calls `tick` on a timer and reports what the adapter did
(`execution_ended`, `progress`, `settings_applied`, `settings_failed`); every call answers the
actions to carry out, in order: `Send` a message, `Execute` or `Abort` a command on the adapter,
`ApplySettings`, `SaveFencingToken`. It reads the robot through the adapter's synchronous view.

The rules it keeps:

* A message that cannot be read (shared.robots.decode) is counted by reason and dropped.
* Fencing: the highest `fencingToken` seen is remembered (and saved, so a restart keeps it). A
  command or desired settings under a lower one is refused with REJECTED_STALE_TOKEN, and so is a
  queued one whose token went stale while it waited. Without a token only NO_LEASE_COMMANDS pass.
* Commands are acked by their id (the envelope's correlationId): WAITING when accepted, RUNNING
  when started (with progress at most once a second), then FINISHED, FAILED or CANCELLED. A
  repeat of a known id re-sends its current ack and never runs it again.
* One command runs at a time, first in first out. `estop` overtakes everything: the running
  command is aborted (FAILED "emergency stop") and the queue is emptied (CANCELLED). `cancel`
  takes a command out of the queue or aborts the running one. `pause` and `resume` act on the
  running command at once. `report_identity` / `report_capability` are answered at once.
* Desired settings are applied one at a time and answered by `settings.reported`.
* A status goes out on every change of state, faults or current command, and every heartbeat
  interval regardless (it is the heartbeat); telemetry at its own rate; a final one says goodbye.
"""
from __future__ import annotations

import logging
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from shared.clock import Clock
from shared.ids import uuid7
from shared.robots import (NO_LEASE_COMMANDS, AckStatus, CancelArgs, Cmd, CmdAck, MessageType, RobotEnvelope,
                           RobotMessageError, RobotState, Settings, SettingsDesired, SettingsReported, Status,
                           check_args, decode, encode, subject)

from .adapter import Command, RobotView

log = logging.getLogger("vigil.robot.bridge")

#: Commands that move the robot: refused while it is stopped by an emergency stop or an error.
MOTION_COMMANDS = frozenset({"goto", "patrol", "dock"})
#: Commands that never wait in the queue: they act at once, beside whatever runs.
BESIDE_COMMANDS = frozenset({"estop", "pause", "resume"})
#: States a motion command is refused in.
HALTED_STATES = frozenset({RobotState.EMERGENCY_STOP, RobotState.ERROR})
#: States `pause` acts in.
MOVING_STATES = frozenset({RobotState.MOVING, RobotState.PATROLLING, RobotState.DOCKING})
#: Commands (and desired settings) that may wait; more are refused with REJECTED_STATE.
MAX_QUEUE = 32
#: Ended commands whose ack is remembered for repeats (the edge re-sends until it hears one).
REMEMBERED_ACKS = 1024
#: At most one progress ack per command this often (seconds).
PROGRESS_INTERVAL_S = 1.0
EMERGENCY_STOP = "emergency stop"
BRIDGE_STOPPING = "robot bridge stopping"


@dataclass(frozen=True)
class Send:
    """Publish `data` on `subject` (a robot → edge message of `message_type`)."""

    subject: str
    data: bytes
    message_type: MessageType


@dataclass(frozen=True)
class Execute:
    """Start `command` on the adapter; report its end with `BridgeCore.execution_ended`."""

    command: Command


@dataclass(frozen=True)
class Abort:
    """Stop the adapter's run of the command (its ack is already sent)."""

    command_id: str
    reason: str


@dataclass(frozen=True)
class ApplySettings:
    """Apply `settings` on the adapter; report with `settings_applied` or `settings_failed`."""

    request_id: str
    settings: Settings


@dataclass(frozen=True)
class SaveFencingToken:
    """Keep `token` as the highest fencing token seen, before anything under it is done."""

    token: int


Action = Send | Execute | Abort | ApplySettings | SaveFencingToken


@dataclass
class _Ack:
    status: AckStatus
    detail: str = ""
    progress: float | None = None


@dataclass(frozen=True)
class _Desired:
    request_id: str  # the command id the hub gave the desired settings
    message_id: str  # the desired message's own id: `appliedMessageId` names it
    settings: Settings
    fencing_token: int


@dataclass(frozen=True)
class _StatusKey:
    state: RobotState
    faults: tuple[str, ...]
    charging: bool
    current_command_id: str | None


class BridgeCore:
    """One robot's bridge state. `highest_token` is what the state file kept (None: none yet)."""

    def __init__(self, robot_id: str, robot: RobotView, clock: Clock, *, heartbeat_s: float = 2.0,
                 telemetry_hz: float = 10.0, highest_token: int | None = None,
                 new_id: Callable[[], str] = lambda: str(uuid7())) -> None:
        if heartbeat_s <= 0 or heartbeat_s > 300:
            raise ValueError(f"heartbeat interval {heartbeat_s} s must be in (0, 300]")
        if telemetry_hz < 0:
            raise ValueError(f"telemetry rate {telemetry_hz} Hz must not be negative")
        self.robot_id = robot_id
        self._robot = robot
        self._clock = clock
        self.heartbeat_s = heartbeat_s
        self._telemetry_period = 1.0 / telemetry_hz if telemetry_hz > 0 else None
        self.highest_token = highest_token
        self._new_id = new_id
        self._acks: OrderedDict[str, _Ack] = OrderedDict()
        self._queue: deque[Command] = deque()
        self._running: Command | None = None
        self._beside: dict[str, Command] = {}
        self._progress_at: dict[str, float] = {}
        self._settings_queue: deque[_Desired] = deque()
        self._applying: _Desired | None = None
        self._last_status: _StatusKey | None = None
        self._status_at: float | None = None
        self._telemetry_at: float | None = None
        self.stopped = False
        self.dropped: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.repeats = 0

    # ---- inputs ------------------------------------------------------------------------------

    def receive(self, subj: str, data: bytes) -> list[Action]:
        """A message from the edge on `subj`."""
        if self.stopped:
            return []
        try:
            env, payload = decode(data, subj)
            if env.robot_id != self.robot_id:
                raise RobotMessageError("wrong_robot", f"robotId {env.robot_id!r} is not this robot")
            if env.correlation_id is None:
                raise RobotMessageError("malformed", f"{env.type} without a correlationId (its command id)")
        except RobotMessageError as exc:
            self.dropped[exc.reason] += 1
            log.warning("robot %s: dropped a message on %s: %s", self.robot_id, subj, exc,
                        extra={"robot": self.robot_id, "reason": exc.reason, "subject": subj})
            return []
        self.received[env.type] += 1
        if isinstance(payload, Cmd):
            return self._command(env, payload)
        if isinstance(payload, SettingsDesired):
            return self._desired(env, payload)
        # decode() checked the type against the subject; a robot only hears its two subjects.
        self.dropped["wrong_type"] += 1
        log.warning("robot %s: dropped a %s message on %s", self.robot_id, env.type, subj,
                    extra={"robot": self.robot_id, "reason": "wrong_type", "subject": subj})
        return []

    def tick(self) -> list[Action]:
        """Time passed: a status when something changed or a heartbeat is due, telemetry when due."""
        if self.stopped:
            return []
        now = self._clock.monotonic()
        actions: list[Action] = []
        key = self._status_key()
        if key != self._last_status or self._status_at is None or now - self._status_at >= self.heartbeat_s:
            actions.append(self._status())
        period, last = self._telemetry_period, self._telemetry_at
        if period is not None and (last is None or now - last >= period):
            # Keep the cadence, but never try to catch up a backlog of missed samples.
            self._telemetry_at = now if last is None or now - last >= 2 * period else last + period
            actions.append(self._send("telemetry", self._robot.telemetry()))
        return actions

    def on_connected(self) -> list[Action]:
        """The link to the edge's server is (again) up: say how the robot stands and what it runs
        with now, rather than at the next heartbeat."""
        if self.stopped:
            return []
        return [self._status(), self._send("settings.reported", SettingsReported(settings=self._robot.settings()))]

    def progress(self, command_id: str, fraction: float) -> list[Action]:
        """The adapter says how far a running command is."""
        ack = self._acks.get(command_id)
        if self.stopped or ack is None or ack.status is not AckStatus.RUNNING:
            return []
        now = self._clock.monotonic()
        last = self._progress_at.get(command_id)
        if last is not None and now - last < PROGRESS_INTERVAL_S:
            return []
        self._progress_at[command_id] = now
        return [self._ack(command_id, AckStatus.RUNNING, ack.detail, min(1.0, max(0.0, fraction)))]

    def execution_ended(self, command_id: str, status: AckStatus, detail: str = "") -> list[Action]:
        """The adapter's run of a command ended (FINISHED or FAILED). An aborted command's end
        is not reported: its ack went out when it was aborted."""
        if status not in (AckStatus.FINISHED, AckStatus.FAILED):
            raise ValueError(f"a run ends FINISHED or FAILED, not {status.value}")
        if self.stopped:
            return []
        if command_id in self._beside:
            del self._beside[command_id]
            return [self._ack(command_id, status, detail)]
        if self._running is None or self._running.id != command_id:
            return []
        self._running = None
        return [self._ack(command_id, status, detail), *self._start_next(), *self._status_if_changed()]

    def settings_applied(self, request_id: str, settings: Settings) -> list[Action]:
        """The adapter applied desired settings; `settings` is all it runs with now."""
        desired = self._applying
        if self.stopped or desired is None or desired.request_id != request_id:
            return []
        self._applying = None
        reported = SettingsReported(settings=settings, applied_message_id=desired.message_id)
        return [self._send("settings.reported", reported, request_id), self._ack(request_id, AckStatus.FINISHED),
                *self._apply_next()]

    def settings_failed(self, request_id: str, why: str) -> list[Action]:
        """The adapter could not apply desired settings."""
        if self.stopped or self._applying is None or self._applying.request_id != request_id:
            return []
        self._applying = None
        return [self._ack(request_id, AckStatus.FAILED, why), *self._apply_next()]

    def stop(self) -> list[Action]:
        """A clean stop: what runs is aborted, what waits is cancelled, and a last status says
        goodbye. Nothing is done after this."""
        if self.stopped:
            return []
        actions: list[Action] = self._halt(AckStatus.FAILED, BRIDGE_STOPPING)
        for command_id in list(self._beside):
            actions += [Abort(command_id, BRIDGE_STOPPING), self._ack(command_id, AckStatus.FAILED, BRIDGE_STOPPING)]
        self._beside.clear()
        if self._applying is not None:
            actions.append(self._ack(self._applying.request_id, AckStatus.FAILED, BRIDGE_STOPPING))
            self._applying = None
        actions += [self._ack(d.request_id, AckStatus.CANCELLED, BRIDGE_STOPPING) for d in self._settings_queue]
        self._settings_queue.clear()
        actions.append(self._status(goodbye=True))
        self.stopped = True
        return actions

    # ---- what the bridge knows, for diagnostics -----------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Queue, running command, fencing and counters, JSON-ready."""
        return {
            "highest_fencing_token": self.highest_token,
            "running": self._running.id if self._running else None,
            "beside": sorted(self._beside),
            "queued": [c.id for c in self._queue],
            "applying_settings": self._applying.request_id if self._applying else None,
            "settings_queued": [d.request_id for d in self._settings_queue],
            "received": dict(self.received),
            "sent": dict(self.sent),
            "dropped": dict(self.dropped),
            "repeats": self.repeats,
        }

    # ---- commands ----------------------------------------------------------------------------

    def _command(self, env: RobotEnvelope, cmd: Cmd) -> list[Action]:
        command_id = env.correlation_id
        assert command_id is not None
        if command_id in self._acks:
            return [self._repeat(command_id)]
        fenced = self._fence(command_id, cmd.fencing_token, lease_needed=cmd.command_type not in NO_LEASE_COMMANDS)
        if isinstance(fenced, Send):
            return [fenced]
        actions: list[Action] = list(fenced)
        try:
            args = check_args(cmd.command_type, cmd.args)
        except ValueError as exc:
            return [*actions, self._ack(command_id, AckStatus.REJECTED_INVALID, str(exc))]
        command = Command(command_id, cmd.command_type, args, cmd.fencing_token)
        kind = command.type
        if kind == "report_identity":
            return [*actions, self._send("identity", self._robot.identity(), command_id),
                    self._ack(command_id, AckStatus.FINISHED)]
        if kind == "report_capability":
            return [*actions, self._send("capability", self._capability(), command_id),
                    self._ack(command_id, AckStatus.FINISHED)]
        # Stopping is never refused for what the capability lists; cancel is the bridge's own.
        if kind == "estop":
            return [*actions, *self._estop(command)]
        if kind == "cancel":
            assert isinstance(args, CancelArgs)
            return [*actions, *self._cancel(command, args.command_id)]
        if kind not in self._robot.capability().commands:
            return [*actions, self._ack(command_id, AckStatus.REJECTED_INVALID, f"this robot does not do {kind!r}")]
        refusal = self._refusal(command)
        if refusal is not None:
            return [*actions, self._ack(command_id, AckStatus.REJECTED_STATE, refusal)]
        if kind in BESIDE_COMMANDS:
            self._beside[command_id] = command
            return [*actions, self._ack(command_id, AckStatus.RUNNING), Execute(command)]
        if len(self._queue) >= MAX_QUEUE:
            return [*actions, self._ack(command_id, AckStatus.REJECTED_STATE,
                                        f"{MAX_QUEUE} commands already wait; try again later")]
        self._queue.append(command)
        return [*actions, self._ack(command_id, AckStatus.WAITING), *self._start_next(), *self._status_if_changed()]

    def _refusal(self, command: Command) -> str | None:
        """Why the robot cannot take `command` in its state now, or None."""
        state = self._robot.status().state
        if command.type in MOTION_COMMANDS and state in HALTED_STATES:
            return f"the robot is in {state.value}; reset it first"
        if command.type == "pause" and state not in MOVING_STATES:
            return f"nothing to pause: the robot is {state.value}"
        if command.type == "resume" and state is not RobotState.PAUSED:
            return f"nothing to resume: the robot is {state.value}"
        return None

    def _start_next(self) -> list[Action]:
        """Start the first queued command that may still run; refuse those that may not."""
        actions: list[Action] = []
        while self._running is None and self._queue:
            command = self._queue.popleft()
            if self._stale(command.fencing_token):
                actions.append(self._ack(command.id, AckStatus.REJECTED_STALE_TOKEN, self._stale_detail(command.fencing_token)))
                continue
            refusal = self._refusal(command)
            if refusal is not None:
                actions.append(self._ack(command.id, AckStatus.REJECTED_STATE, refusal))
                continue
            self._running = command
            self._progress_at[command.id] = self._clock.monotonic()  # RUNNING at 0 is the first progress
            actions += [self._ack(command.id, AckStatus.RUNNING, progress=0.0), Execute(command)]
        return actions

    def _halt(self, running_status: AckStatus, reason: str) -> list[Action]:
        """Abort the running command (acked `running_status`) and cancel every queued one."""
        actions: list[Action] = []
        if self._running is not None:
            actions += [Abort(self._running.id, reason), self._ack(self._running.id, running_status, reason)]
            self._running = None
        actions += [self._ack(c.id, AckStatus.CANCELLED, reason) for c in self._queue]
        self._queue.clear()
        return actions

    def _estop(self, command: Command) -> list[Action]:
        self._beside[command.id] = command
        return [*self._halt(AckStatus.FAILED, EMERGENCY_STOP), self._ack(command.id, AckStatus.RUNNING),
                Execute(command), *self._status_if_changed()]

    def _cancel(self, command: Command, target: str) -> list[Action]:
        actions: list[Action] = []
        reason = f"cancelled by command {command.id}"
        if self._running is not None and self._running.id == target:
            self._running = None
            actions += [Abort(target, reason), self._ack(target, AckStatus.CANCELLED, reason)]
            detail = f"command {target} aborted"
        elif any(c.id == target for c in self._queue):
            self._queue = deque(c for c in self._queue if c.id != target)
            actions.append(self._ack(target, AckStatus.CANCELLED, reason))
            detail = f"command {target} taken out of the queue"
        else:
            known = self._acks.get(target)
            detail = (f"nothing to cancel: command {target} is {known.status.value}" if known is not None
                      else f"nothing to cancel: command {target} is not known here")
        actions.append(self._ack(command.id, AckStatus.FINISHED, detail))
        return [*actions, *self._start_next(), *self._status_if_changed()]

    # ---- settings ----------------------------------------------------------------------------

    def _desired(self, env: RobotEnvelope, desired: SettingsDesired) -> list[Action]:
        request_id = env.correlation_id
        assert request_id is not None
        if request_id in self._acks:
            return [self._repeat(request_id)]
        fenced = self._fence(request_id, desired.fencing_token, lease_needed=True)
        if isinstance(fenced, Send):
            return [fenced]
        actions: list[Action] = list(fenced)
        problem = self._settings_problem(desired.settings)
        if problem is not None:
            return [*actions, self._ack(request_id, AckStatus.REJECTED_INVALID, problem)]
        if len(self._settings_queue) >= MAX_QUEUE:
            return [*actions, self._ack(request_id, AckStatus.REJECTED_STATE,
                                        f"{MAX_QUEUE} desired settings already wait; try again later")]
        assert desired.fencing_token is not None
        self._settings_queue.append(_Desired(request_id, env.message_id, desired.settings, desired.fencing_token))
        return [*actions, self._ack(request_id, AckStatus.WAITING), *self._apply_next()]

    def _apply_next(self) -> list[Action]:
        actions: list[Action] = []
        while self._applying is None and self._settings_queue:
            desired = self._settings_queue.popleft()
            if self._stale(desired.fencing_token):
                actions.append(self._ack(desired.request_id, AckStatus.REJECTED_STALE_TOKEN,
                                         self._stale_detail(desired.fencing_token)))
                continue
            self._applying = desired
            actions.append(ApplySettings(desired.request_id, desired.settings))
        return actions

    def _settings_problem(self, settings: Settings) -> str | None:
        """Why the robot's capability does not take these settings, or None."""
        specs = {s.name: s for s in self._robot.capability().settings}
        for name, value in settings.as_dict().items():
            spec = specs.get(name)
            if spec is None:
                return f"this robot has no setting {name!r}"
            if spec.type == "number" and ((spec.min is not None and value < spec.min)
                                          or (spec.max is not None and value > spec.max)):
                return f"{name} {value} is outside {spec.min}..{spec.max}"
        return None

    # ---- fencing -----------------------------------------------------------------------------

    def _stale(self, token: int | None) -> bool:
        return token is not None and self.highest_token is not None and token < self.highest_token

    def _stale_detail(self, token: int | None) -> str:
        return f"fencing token {token} is lower than {self.highest_token}, already seen"

    def _fence(self, request_id: str, token: int | None, *, lease_needed: bool) -> Send | list[Action]:
        """The refusal ack of a request under a stale or missing token, else the actions that
        keep a new highest token (saved before anything under it is done)."""
        if token is None:
            if lease_needed:
                return self._ack(request_id, AckStatus.REJECTED_INVALID, "a fencing token is required")
            return []
        # Stopping and asking need no lease, so an old token never refuses them.
        if lease_needed and self._stale(token):
            return self._ack(request_id, AckStatus.REJECTED_STALE_TOKEN, self._stale_detail(token))
        if self.highest_token is None or token > self.highest_token:
            self.highest_token = token
            return [SaveFencingToken(token)]
        return []

    # ---- messages ----------------------------------------------------------------------------

    def _capability(self) -> Any:
        return msgspec.structs.replace(self._robot.capability(), heartbeat_interval_s=self.heartbeat_s)

    def _status_key(self) -> _StatusKey:
        reading = self._robot.status()
        return _StatusKey(reading.state, tuple(sorted(reading.faults)), reading.charging,
                          self._running.id if self._running else None)

    def _status_if_changed(self) -> list[Action]:
        return [self._status()] if self._status_key() != self._last_status else []

    def _status(self, *, goodbye: bool = False) -> Send:
        reading = self._robot.status()
        current = self._running.id if self._running else None
        self._last_status = _StatusKey(reading.state, tuple(sorted(reading.faults)), reading.charging, current)
        self._status_at = self._clock.monotonic()
        status = Status(state=reading.state, battery_pct=round(min(100.0, max(0.0, reading.battery_pct)), 1),
                        charging=reading.charging, heartbeat_interval_s=self.heartbeat_s,
                        faults=sorted(reading.faults), current_command_id=current, goodbye=goodbye)
        return self._send("status", status)

    def _ack(self, command_id: str, status: AckStatus, detail: str = "", progress: float | None = None) -> Send:
        self._acks[command_id] = _Ack(status, detail, progress)
        self._acks.move_to_end(command_id)
        if status.final:
            log.info("robot %s: command %s %s%s", self.robot_id, command_id, status.value, f": {detail}" if detail else "",
                     extra={"robot": self.robot_id, "command_id": command_id, "status": status.value})
            self._progress_at.pop(command_id, None)
            self._forget_old_acks()
        return self._send("cmd.ack", CmdAck(status=status, detail=detail, progress=progress), command_id)

    def _repeat(self, command_id: str) -> Send:
        """A known command came again (the edge re-sends until it hears an ack): its ack again."""
        self.repeats += 1
        ack = self._acks[command_id]
        return self._send("cmd.ack", CmdAck(status=ack.status, detail=ack.detail, progress=ack.progress), command_id)

    def _forget_old_acks(self) -> None:
        if len(self._acks) <= REMEMBERED_ACKS:
            return
        # Only ended commands are forgotten: a waiting or running one must keep its entry.
        ended = [cid for cid, ack in self._acks.items() if ack.status.final]
        for command_id in ended[:max(0, len(ended) - REMEMBERED_ACKS)]:
            del self._acks[command_id]

    def _send(self, message_type: MessageType, payload: msgspec.Struct, correlation_id: str | None = None) -> Send:
        self.sent[message_type] += 1
        data = encode(message_type, self.robot_id, self._new_id(), self._clock.now(), payload, correlation_id)
        return Send(subject(message_type, self.robot_id), data, message_type)
