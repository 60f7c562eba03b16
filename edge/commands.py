"""Commands from the hub (docs/architecture.md §4.3): this box pulls its own durable consumer on
VIGIL_COMMANDS across the leaf, runs each command on its panel's link, journals the outcome as a
`cmd.result` event (forwarded like any event, so a WAN cut after the panel acted loses nothing),
and only then acknowledges the message.

Exactly once at the panel: a command's id is recorded in the journal before it runs
(`Journal.claim_command`), so a redelivery (an ack lost on the WAN, the agent killed mid-command)
never runs it again; its result is journaled under an id made from the command id, so the box can
tell a command it finished from one it was killed in the middle of (that one's result is TIMEOUT:
the panel may or may not have acted). A command past its expiry (by the hub's clock,
`edge.hub_clock`) is never run (EXPIRED); one for a panel this box does not own is refused (NACK).

Robot commands (`shared.robots.RobotCommand`, told apart by the header `Vigil-Command-Kind:
robot`) travel the same consumer and keep the same exactly-once rules; `RobotRelay`
(edge/links/robots/relay.py) claims, settles or hands each to its robot, estop and cancel before
any other command of the batch.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from prometheus_client import Counter

from edge.config import RobotsSettings
from edge.hub_clock import HubClock
from edge.journal import Journal, JournalError
from edge.links.robots.relay import RobotRelay, urgent
from edge.links.satel import CommandOutcome, CommandResult, SatelLink
from shared import robots as robots_wire
from shared import subjects
from shared.backoff import Backoff, sleep_or_stop
from shared.commands import RESULT_KIND, CommandResult as ResultBody, Outcome, PanelCommand, Source, decode_command
from shared.envelope import Priority, new_envelope
from shared.sealing import SealError, open_sealed

log = logging.getLogger("vigil.edge.commands")

RECEIVED = Counter("vigil_edge_commands_total", "Hub commands by outcome at this box", ["outcome"])

# Result ids are made from command ids: a second result for one command is recognisable.
_RESULT_NAMESPACE = uuid.UUID("5b0f6a52-8d0e-4c41-9a1f-6f0d2c7e9b13")
#: How many commands are fetched at once, and how many may run (on different panels) together.
FETCH_BATCH = 16
MAX_IN_FLIGHT = 32
#: How long one pull waits at the hub for commands before asking again.
FETCH_WAIT_S = 5.0

_OUTCOMES = {
    CommandResult.ACK: Outcome.ACK, CommandResult.NACK: Outcome.NACK, CommandResult.TIMEOUT: Outcome.TIMEOUT,
    CommandResult.UNAVAILABLE: Outcome.NACK,  # not sent to the panel: refused, the panel did nothing
}


def result_id(command_id: str) -> uuid.UUID:
    """The envelope id of a command's `cmd.result`."""
    return uuid.uuid5(_RESULT_NAMESPACE, command_id)


class CommandRunner:
    """Runs this box's commands from the hub; `run(stop)` pulls until stopped."""

    def __init__(self, edge_id: str, nc: NatsClient, journal: Journal, seed: bytes, links: Mapping[str, SatelLink],
                 hub_clock: HubClock, robots: RobotRelay | None = None) -> None:
        self.edge_id = edge_id
        # Without robots configured every robot command is refused (REJECTED_UNKNOWN_ROBOT).
        self._robots = robots or RobotRelay(edge_id, nc, journal, RobotsSettings(), hub_clock)
        self._nc = nc
        self._journal = journal
        self._seed = seed
        self._links = links
        self._hub_clock = hub_clock
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._running: set[asyncio.Task[None]] = set()
        # One lock per command id being handled: a copy delivered while the first still runs waits
        # for it, then finds it done and is acknowledged without running.
        self._in_flight: dict[str, asyncio.Lock] = {}
        self.pulling = False  # the last pull reached the hub (False while the leaf or the hub is away)
        self.last_error: str | None = None
        self.last_result: dict[str, str] | None = None  # the last command settled: id, type, outcome

    async def run(self, stop: asyncio.Event) -> None:
        """Pull and run commands until `stop`; a lost leaf link or a missing consumer backs off and
        tries again. Commands already running finish (their results journaled) before it returns."""
        js = self._nc.jetstream(domain=subjects.HUB_DOMAIN)
        # Capped low: after a WAN outage, commands waiting at the hub reach the box within 5 s.
        backoff = Backoff(0.5, 5.0)
        stopped = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                pull = None
                try:
                    pull = await js.pull_subscribe_bind(
                        durable=subjects.command_consumer(self.edge_id), stream=subjects.COMMANDS_STREAM,
                        inbox_prefix=f"{subjects.edge_inbox_prefix(self.edge_id)}.".encode())
                    while not stop.is_set():
                        # A pull waits at the hub for FETCH_WAIT_S; stopping does not wait for it.
                        fetch = asyncio.create_task(pull.fetch(FETCH_BATCH, timeout=FETCH_WAIT_S))
                        await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
                        if not fetch.done():
                            fetch.cancel()
                            await asyncio.gather(fetch, return_exceptions=True)
                            break
                        try:
                            msgs = fetch.result()
                        except nats.errors.TimeoutError:
                            self.pulling = True  # the hub answered: nothing to do
                            continue
                        self.pulling, self.last_error = True, None
                        backoff.reset()
                        # A robot's estop or cancel first, a person's commands before a
                        # schedule's, otherwise in the order they came.
                        for msg, command in sorted(((m, _read(m)) for m in msgs), key=_rank):
                            if isinstance(command, robots_wire.RobotCommand):
                                # In this order: the relay publishes before it returns.
                                await self._robots.take(msg, command)
                                continue
                            await self._slots.acquire()
                            task = asyncio.create_task(self._handle(msg, command))
                            self._running.add(task)
                            task.add_done_callback(self._done)
                except (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError, OSError) as exc:
                    self.pulling, self.last_error = False, f"{type(exc).__name__}: {exc}".strip()
                    delay = backoff.next_delay()
                    log.warning("cannot pull commands from the hub (%s); trying again in %.1f s", exc, delay,
                                extra={"edge": self.edge_id})
                    if await sleep_or_stop(delay, stop):
                        break
                finally:
                    if pull is not None:
                        with contextlib.suppress(nats.errors.Error):
                            await pull.unsubscribe()
        finally:
            stopped.cancel()
            if self._running:
                await asyncio.gather(*self._running, return_exceptions=True)

    def status(self) -> dict[str, object]:
        """What the local page shows: whether commands can reach the box, and the last one's end."""
        return {"pulling": self.pulling, "last_error": self.last_error, "running": len(self._running),
                "last_result": self.last_result}

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("a command failed unexpectedly", exc_info=task.exception(), extra={"edge": self.edge_id})

    async def _handle(self, msg: Msg, command: PanelCommand | str) -> None:
        if isinstance(command, str):
            RECEIVED.labels("malformed").inc()
            log.error("a command from the hub is malformed and is dropped: %s", command, extra={"edge": self.edge_id})
            await msg.term()  # never delivered again: it cannot become readable
            return
        extra = {"edge": self.edge_id, "command_id": command.id, "panel": command.panel}
        lock = self._in_flight.setdefault(command.id, asyncio.Lock())
        try:
            async with lock:
                await self._settle(msg, command, extra)
        finally:
            if not lock.locked():
                self._in_flight.pop(command.id, None)

    async def _settle(self, msg: Msg, command: PanelCommand, extra: dict[str, str]) -> None:
        try:
            if await self._journal.claim_command(command.id):
                outcome, code, reason = await self._execute(command)
            elif await self._journal.has_event(str(result_id(command.id))):
                log.info("command %s delivered again; it ran already", command.id, extra=extra)
                RECEIVED.labels("redelivered").inc()
                await msg.ack()
                return
            else:
                outcome, code, reason = (Outcome.TIMEOUT, None, "the edge stopped while it ran this command: the panel "
                                         "may or may not have carried it out")
            await self._journal_result(command, outcome, code, reason)
        except JournalError as exc:
            # Not acknowledged: JetStream delivers it again, and the claim (if it was recorded)
            # keeps it from running twice.
            log.error("command %s: the journal failed (%s); it will be delivered again", command.id, exc, extra=extra)
            return
        RECEIVED.labels(outcome.value.lower()).inc()
        self.last_result = {"id": command.id, "type": command.type, "panel": command.panel, "outcome": outcome.value}
        log.info("command %s (%s on %s by %s) → %s: %s", command.id, command.type, command.panel, command.who,
                 outcome.value, reason, extra=extra | {"outcome": outcome.value})
        try:
            await msg.ack()
        except nats.errors.Error as exc:  # redelivered later; the journal knows it ran
            log.warning("command %s: ack not sent (%s)", command.id, exc, extra=extra)

    async def _execute(self, command: PanelCommand) -> tuple[Outcome, int | None, str]:
        link = self._links.get(command.panel)
        if command.edge != self.edge_id or link is None:
            return Outcome.NACK, None, f"refused: panel {command.panel!r} is not on edge {self.edge_id}"
        now = self._hub_clock.now()
        if now >= command.expires_at:
            late = (now - command.expires_at).total_seconds()
            return Outcome.EXPIRED, None, f"not executed: it reached the edge {late:.0f} s after it expired"
        try:
            code = open_sealed(self._seed, command.sealed_code, command.id.encode()).decode("ascii")
        except (SealError, UnicodeDecodeError):
            return Outcome.NACK, None, "refused: the user code was not sealed for this edge's key"
        try:
            result: CommandOutcome = await link.execute(command, code)
        except ValueError as exc:
            return Outcome.NACK, None, f"refused: {exc}"
        return _OUTCOMES[result.result], result.code, result.reason

    async def _journal_result(self, command: PanelCommand, outcome: Outcome, code: int | None, reason: str) -> None:
        body = ResultBody(command_id=command.id, panel=command.panel, type=command.type, source=command.source.value,
                          who=command.who, outcome=outcome, code=code, reason=reason)
        envelope = msgspec.structs.replace(new_envelope(RESULT_KIND, command.panel, Priority.NORMAL, body,
                                                        corr=command.id), id=result_id(command.id))
        await self._journal.append(envelope)


def _read(msg: Msg) -> PanelCommand | robots_wire.RobotCommand | str:
    """The command a message carries (a robot's when its header says so), or why it is none
    (decoded once, for sorting and running)."""
    try:
        if (msg.headers or {}).get(robots_wire.H_COMMAND_KIND) == robots_wire.ROBOT_COMMAND_KIND:
            return robots_wire.decode_command(msg.data)
        return decode_command(msg.data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return str(exc)


def _rank(item: tuple[Msg, PanelCommand | robots_wire.RobotCommand | str]) -> int:
    """Sort key: a robot's estop or cancel (0), then a person's command, any other robot command
    or an unreadable one, dropped at once (1), then a schedule's (2)."""
    command = item[1]
    if isinstance(command, robots_wire.RobotCommand):
        return 0 if urgent(command) else 1
    return 2 if isinstance(command, PanelCommand) and command.source is Source.AUTO_ARM else 1
