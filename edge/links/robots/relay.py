"""Robot commands from the hub, handed to their robots (docs/architecture.md §4.4, §7 "Robots").

`edge.commands.CommandRunner` pulls the box's command consumer and gives every message marked
`Vigil-Command-Kind: robot` to `RobotRelay.take`, in the order it wants them relayed (estop and
cancel first). Exactly once, as for panel commands: the command's id is claimed in the journal
before anything else, and a redelivered command is acknowledged and never relayed again. A
command not for this edge or one of its configured robots is settled REJECTED_UNKNOWN_ROBOT, one
past its expiry by the hub's clock (edge.hub_clock) REJECTED_EXPIRED; both are journaled as
`robot.cmd.ack` by "edge". Otherwise it is published to the robot (`cmd` on `robots.cmd.<robot>`
or `settings.desired` on `robots.settings.desired.<robot>`, `correlationId` and `messageId` the
command id, the lease's fencing token) and published again every `command_retry_s`, estop and
cancel first, until the robot's first ack for it is journaled (the link calls `answered`) or the
command expires (TIMEOUT by "edge"). The hub's message is acknowledged only then; while the robot
is silent the relay tells JetStream it is still working on it, so it is not delivered again.

A command still waiting for its robot when the agent stops is settled TIMEOUT ("the edge stopped
before the robot answered"). One the agent was killed in the middle of is, once delivered again,
acknowledged without a result of the edge's: the robot may have it (its acks still reach the hub
through ROBOT_EVENTS), and the hub times out one that never got an answer.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import OrderedDict
from dataclasses import dataclass

import msgspec
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from edge.config import RobotsSettings
from edge.hub_clock import HubClock
from edge.journal import AlreadyJournaled, Journal, JournalError
from edge.links.robots.metrics import COMMANDS
from edge.links.robots.state import ack_key, event_id
from shared import robots as wire
from shared.backoff import wait_any
from shared.bodies.robots import RobotCommandAck
from shared.clock import SYSTEM_CLOCK, Clock
from shared.envelope import Priority, new_envelope

log = logging.getLogger("vigil.edge.robots.commands")

#: Commands that overtake every other robot command waiting in the box.
URGENT = frozenset({"estop", "cancel"})
#: How many relayed commands the relay remembers (command type and token for the robot's later acks).
REMEMBERED = 4096


def urgent(command: wire.RobotCommand) -> bool:
    """estop and cancel go before every other robot command."""
    return command.kind == "cmd" and command.command_type in URGENT


def command_type_of(command: wire.RobotCommand) -> str:
    """The `command_type` a `robot.cmd.ack` names: the command's, or the kind for desired settings."""
    return command.command_type if command.kind == "cmd" else command.kind


@dataclass
class _Pending:
    """A command handed to its robot and not yet answered."""

    command: wire.RobotCommand
    msg: Msg
    order: int
    next_send: float  # monotonic
    sends: int = 1


class RobotRelay:
    """Hands the hub's robot commands to this box's robots; `run(stop)` repeats them until
    answered or expired."""

    def __init__(self, edge_id: str, nc: NatsClient, journal: Journal, settings: RobotsSettings,
                 hub_clock: HubClock, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.edge_id = edge_id
        self._nc = nc
        self._journal = journal
        self._settings = settings
        self._robots = frozenset(r.id for r in settings.robots)
        self._hub_clock = hub_clock
        self._clock = clock
        self._pending: dict[str, _Pending] = {}
        self._relayed: OrderedDict[str, tuple[str, str, int | None]] = OrderedDict()
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self.last_result: dict[str, str] | None = None

    # --- from the command runner -----------------------------------------------------------------

    async def take(self, msg: Msg, command: wire.RobotCommand) -> None:
        """One robot command from the hub: claim it, then settle it here or hand it to its robot.
        Returns once it is published (or settled); the robot's answer is awaited by `run`."""
        extra = {"edge": self.edge_id, "command_id": command.id, "robot": command.robot}
        try:
            claimed = await self._journal.claim_command(command.id)
        except JournalError as exc:
            # Not acknowledged: delivered again, and then claimed (or found claimed).
            log.error("robot command %s: the journal failed (%s); it will be delivered again", command.id, exc,
                      extra=extra)
            return
        if not claimed:
            COMMANDS.labels("redelivered").inc()
            log.info("robot command %s delivered again; it was taken already and is not relayed again", command.id,
                     extra=extra)
            await _ack(msg, extra)
            return
        refusal = self._refusal(command)
        if refusal is not None:
            if await self._settle(command, *refusal):
                await _ack(msg, extra)
            return
        self._pending[command.id] = _Pending(command, msg, next(self._order),
                                             self._clock.monotonic() + self._settings.command_retry_s)
        self._remember(command)
        log.info("robot command %s (%s for %s by %s) handed to the robot", command.id, command_type_of(command),
                 command.robot, command.who, extra=extra)
        await self._send(command)
        self._wake.set()

    def _refusal(self, command: wire.RobotCommand) -> tuple[wire.AckStatus, str] | None:
        if command.edge != self.edge_id or command.robot not in self._robots:
            return wire.AckStatus.REJECTED_UNKNOWN_ROBOT, f"refused: robot {command.robot!r} is not on edge {self.edge_id}"
        now = self._hub_clock.now()
        if now >= command.expires_at:
            late = (now - command.expires_at).total_seconds()
            return wire.AckStatus.REJECTED_EXPIRED, f"not relayed: it reached the edge {late:.0f} s after it expired"
        if command.kind == "settings.desired" and command.settings is None:
            return wire.AckStatus.REJECTED_INVALID, "refused: desired settings without settings"
        return None

    # --- from the robot link ---------------------------------------------------------------------

    def known(self, command_id: str, robot: str) -> tuple[str, int | None] | None:
        """(command type, fencing token) of a command this edge relayed to `robot`, if it remembers."""
        relayed = self._relayed.get(command_id)
        if relayed is None or relayed[0] != robot:
            return None
        return relayed[1], relayed[2]

    async def answered(self, robot: str, command_id: str) -> None:
        """The robot's first ack for the command is journaled: it is handed over, and the hub's
        message is acknowledged."""
        pending = self._pending.get(command_id)
        if pending is None or pending.command.robot != robot:
            return
        del self._pending[command_id]
        COMMANDS.labels("handed_over").inc()
        self.last_result = {"id": command_id, "robot": robot, "type": command_type_of(pending.command),
                            "outcome": "handed_over"}
        await _ack(pending.msg, {"edge": self.edge_id, "command_id": command_id, "robot": robot})

    # --- running ---------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Repeat unanswered commands and settle expired ones until `stop`; then settle what is
        still waiting (TIMEOUT: the edge stopped)."""
        try:
            while not stop.is_set():
                self._wake.clear()
                await self._sweep()
                await wait_any((self._wake, stop), self._next_due())
        finally:
            for pending in list(self._pending.values()):
                del self._pending[pending.command.id]
                if await self._settle(pending.command, wire.AckStatus.TIMEOUT,
                                      "the edge stopped before the robot answered"):
                    await _ack(pending.msg, {"edge": self.edge_id, "command_id": pending.command.id})

    async def _sweep(self) -> None:
        now, hub_now = self._clock.monotonic(), self._hub_clock.now()
        for pending in sorted(self._pending.values(), key=lambda p: (not urgent(p.command), p.order)):
            command = pending.command
            if command.id not in self._pending:  # answered while an earlier one was sent
                continue
            if hub_now >= command.expires_at:
                del self._pending[command.id]
                detail = f"the robot did not answer ({pending.sends} sent)"
                if await self._settle(command, wire.AckStatus.TIMEOUT, detail):
                    await _ack(pending.msg, {"edge": self.edge_id, "command_id": command.id})
            elif now >= pending.next_send:
                pending.sends += 1
                pending.next_send = now + self._settings.command_retry_s
                await self._send(command)
                with contextlib.suppress(nats.errors.Error):
                    await pending.msg.in_progress()  # still ours: JetStream must not deliver it again

    def _next_due(self) -> float | None:
        if not self._pending:
            return None
        now, hub_now = self._clock.monotonic(), self._hub_clock.now()
        due = min(min(p.next_send - now, (p.command.expires_at - hub_now).total_seconds())
                  for p in self._pending.values())
        return max(0.01, due)

    async def _send(self, command: wire.RobotCommand) -> None:
        payload: msgspec.Struct
        if command.kind == "cmd":
            payload = wire.Cmd(command_type=command.command_type, args=command.args, fencing_token=command.fencing_token)
        else:
            assert command.settings is not None  # refused before
            payload = wire.SettingsDesired(settings=command.settings, fencing_token=command.fencing_token)
        data = wire.encode(command.kind, command.robot, command.id, self._clock.now(), payload,
                           correlation_id=command.id)
        try:
            await self._nc.publish(wire.subject(command.kind, command.robot), data)
        except nats.errors.Error as exc:  # the next retry sends it again
            log.warning("robot command %s not sent (%s)", command.id, exc,
                        extra={"edge": self.edge_id, "command_id": command.id, "robot": command.robot})

    async def _settle(self, command: wire.RobotCommand, status: wire.AckStatus, detail: str) -> bool:
        """Journal the edge's own word on a command; False when the journal failed."""
        extra = {"edge": self.edge_id, "command_id": command.id, "robot": command.robot, "outcome": status.value}
        body = RobotCommandAck(command_id=command.id, robot=command.robot, command_type=command_type_of(command),
                               status=status, by="edge", detail=detail, fencing_token=command.fencing_token)
        envelope_id = event_id(ack_key(command.id, status, "edge"))
        envelope = msgspec.structs.replace(new_envelope(wire.ACK_KIND, command.robot, Priority.NORMAL, body,
                                                        corr=command.id, clock=self._clock), id=envelope_id)
        try:
            await self._journal.append(envelope)
        except AlreadyJournaled:
            pass  # settled before (a redelivery after a crash): the same word, journaled once
        except JournalError as exc:
            log.error("robot command %s: %s not journaled (%s)", command.id, status.value, exc, extra=extra)
            return False
        COMMANDS.labels(status.value.lower()).inc()
        self.last_result = {"id": command.id, "robot": command.robot, "type": command_type_of(command),
                            "outcome": status.value}
        log.info("robot command %s (%s for %s) → %s: %s", command.id, command_type_of(command), command.robot,
                 status.value, detail, extra=extra)
        return True

    def _remember(self, command: wire.RobotCommand) -> None:
        self._relayed[command.id] = (command.robot, command_type_of(command), command.fencing_token)
        while len(self._relayed) > REMEMBERED:
            self._relayed.popitem(last=False)

    def status(self) -> dict[str, object]:
        """What the local page shows: commands waiting for their robot, the last one settled."""
        return {"waiting": [{"id": p.command.id, "robot": p.command.robot, "type": command_type_of(p.command),
                             "sends": p.sends} for p in sorted(self._pending.values(), key=lambda p: p.order)],
                "last_result": self.last_result}


async def _ack(msg: Msg, extra: dict[str, str]) -> None:
    try:
        await msg.ack()
    except nats.errors.Error as exc:  # delivered again later; the journal knows it was taken
        log.warning("robot command: ack not sent (%s)", exc, extra=extra)
