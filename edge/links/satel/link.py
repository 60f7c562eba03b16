"""The Satel link: owns one ETHM-1 module's single connection and turns the panel into events.

Life of a connection: connect → read the module's and panel's versions → read the panel's own
event log back to the last record this edge journaled → read every tracked query (a snapshot) →
`edge.link.up`, the log's new records (`satel.log.record`: what happened while the link or the
agent was down), then the differences from what was known before (none on the first connection:
the first snapshot is state, not alarms; those come from the log) → read the names of what is
active → one LOW `satel.snapshot` envelope → poll 0x7F every `poll_interval_s` and re-read only
what it flags (or, with `push`, let an ETHM-1 Plus push changes and send 0x7F as a keepalive).
After every change (and with each clock check) the log is read on from the cursor. Queued control
commands go out between polls. A request unanswered within `request_timeout_s` closes the
connection; reconnects back off exponentially with full jitter.

The state holder (`state.PanelState`) is pure; everything with sockets, timers and retries is here.
"""
from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec

from edge.config import SatelPanelSettings
from edge.journal import Journal, JournalError
from edge.links.satel import metrics
from edge.links.satel.commands import (CommandJob, CommandOutcome, CommandPriority, CommandQueue, CommandResult,
                                       outcome_of)
from edge.links.satel.connection import Connection, CorruptAnswer, LinkLost
from edge.links.satel.event_log import ALARM_QUERIES, EventLogState, LogWalk
from edge.links.satel.state import (
    QUERY_COMMANDS,
    Device,
    Observation,
    PanelState,
    answer_command,
    complete_groups,
    query_for,
    supports_push,
)
from firmware_bridges.satel.protocol import (
    Answer,
    Arm,
    BypassZones,
    ClearAlarm,
    Cmd,
    DeviceNameAnswer,
    DeviceType,
    Disarm,
    EventAnswer,
    IntegraVersionAnswer,
    ModuleVersionAnswer,
    NewDataAnswer,
    OutputAction,
    ReadDeviceName,
    ReadEvent,
    ReadIntegraVersion,
    ReadModuleVersion,
    ReadNewData,
    Request,
    ResultAnswer,
    StartPush,
    SwitchOutputs,
    UnbypassZones,
    UserCode,
    command_name,
)
from shared.backoff import Backoff
from shared.bodies import CommandGiven, LinkReleased, LinkStatus
from shared.clock import SYSTEM_CLOCK, Clock
from shared.commands import ITEMS_OF, PanelCommand, Source
from shared.envelope import Priority, new_envelope

log = logging.getLogger("vigil.edge.satel")

LINK_NAME = "satel"
#: The longest a link may be released for DLOADX in one go.
MAX_RELEASE_MINUTES = 480.0
_MAX_TEXT = 200
#: Names read right after connecting, before the snapshot; the rest follow between polls.
_NAMES_AT_CONNECT = 64
_NAMES_PER_ROUND = 4


class LinkState(str, enum.Enum):
    """Where the link is in its life."""

    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"
    RELEASED = "released"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Release:
    """A DLOADX release: who asked, why, and until when the link stays away from the module."""

    who: str
    why: str
    minutes: float
    until: datetime
    until_loop: float  # the same moment on the event loop's clock

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form for the local API."""
        return {"who": self.who, "why": self.why, "minutes": self.minutes, "until": self.until.isoformat()}


class SatelLink:
    """The link to one panel. Run it with `await link.run(stop)`; call the command methods,
    `release` and `resume` from the same event loop while it runs."""

    def __init__(self, settings: SatelPanelSettings, journal: Journal, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.panel_id = settings.id
        self.state = PanelState(
            clock,
            zone_priorities=settings.zones,
            max_clock_drift_s=settings.max_clock_drift_s,
            timezone=settings.timezone,
        )
        self.log = EventLogState(
            settings.id,
            clock,
            timezone=settings.timezone,
            window=settings.event_log_window,
            alarm_age_s=settings.event_log_alarm_age_s,
        )
        self._cursor_name = f"satel.event_log.{settings.id}"
        self._cursor_loaded = False
        self._journal = journal
        self._clock = clock
        self._commands = CommandQueue(settings.command_queue)
        # One event wakes the session loop for everything: a command, pushed frames, a lost
        # connection, a release or resume, the stop signal.
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._away = asyncio.Event()  # set while the link sits out a release, away from the module
        self.link_state = LinkState.CONNECTING
        self.since = clock.now()
        self.last_error: str | None = None
        self.release_info: Release | None = None
        self.push = False
        self._up = False
        self._reported_down = False
        self._wide_new_data = False
        self._names_wanted: set[Device] = set()
        self._next_retry_at: float | None = None
        self.reconnects = 0
        self.connect_failures = 0
        self.polls = 0
        self.last_poll_at: datetime | None = None
        metrics.CONNECTION_STATUS.labels(self.panel_id).set(0)

    # --- running ---------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the module connected until `stop` is set, then close and record the link down."""
        self._stop = stop
        watcher = asyncio.create_task(self._wake_on(stop), name=f"satel-{self.panel_id}-stop")
        backoff = Backoff(self.settings.reconnect_min_s, self.settings.reconnect_max_s)
        first = True
        log.info("satel link %s starting: %s:%d", self.panel_id, self.settings.host, self.settings.port,
                 extra={"panel": self.panel_id})
        try:
            while not stop.is_set():
                if self.release_info is not None:
                    await self._sit_out_release()
                    continue
                if not first:
                    self.reconnects += 1
                    metrics.RECONNECTS.labels(self.panel_id).inc()
                first = False
                self._set_state(LinkState.CONNECTING)
                try:
                    await self._connect_and_serve(backoff)
                except LinkLost as exc:
                    await self._went_down(exc.reason, Priority.NORMAL)
                except Exception as exc:  # a bug must cost a reconnect, never the link
                    log.exception("satel link %s failed unexpectedly", self.panel_id, extra={"panel": self.panel_id})
                    await self._went_down(f"link error: {exc!r}", Priority.NORMAL)
                else:
                    if self.release_info is not None:
                        info = self.release_info
                        reason = f"released for DLOADX by {info.who}: {info.why}"
                        await self._went_down(reason, Priority.LOW, planned=True)
                    continue
                if self.release_info is not None or stop.is_set():
                    continue  # the failure does not matter: the link is to stay away anyway
                self.connect_failures += 1
                delay = backoff.next_delay()
                log.warning(
                    "satel link %s down (%s); reconnecting in %.2f s", self.panel_id, self.last_error, delay,
                    extra={"panel": self.panel_id, "attempt": backoff.attempt},
                )
                await self._pause(delay)
        finally:
            watcher.cancel()
            self._away.set()
            await self._went_down("edge stopping", Priority.LOW, planned=True)
            self._set_state(LinkState.STOPPED)
            log.info("satel link %s stopped", self.panel_id, extra={"panel": self.panel_id})

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _wait_for_wake(self, timeout: float) -> None:
        """Wait until something wakes the link, at most `timeout` seconds."""
        if timeout <= 0 or self._wake.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def _pause(self, delay: float) -> None:
        """The backoff delay before reconnecting; cut short by stop or a release."""
        loop = asyncio.get_running_loop()
        self._next_retry_at = loop.time() + delay
        try:
            while not self._stop.is_set() and self.release_info is None:
                remaining = self._next_retry_at - loop.time()
                if remaining <= 0:
                    return
                self._wake.clear()
                await self._wait_for_wake(remaining)
        finally:
            self._next_retry_at = None

    async def _sit_out_release(self) -> None:
        """Stay away from the module until the release ends, is resumed, or the edge stops."""
        loop = asyncio.get_running_loop()
        info = self.release_info
        assert info is not None
        self._set_state(LinkState.RELEASED)
        self._away.set()
        while not self._stop.is_set() and self.release_info is info:
            remaining = info.until_loop - loop.time()
            if remaining <= 0:
                self.release_info = None
                log.info("satel link %s: release by %s is over; reconnecting", self.panel_id, info.who,
                         extra={"panel": self.panel_id})
                return
            self._wake.clear()
            await self._wait_for_wake(remaining)

    # --- one connection --------------------------------------------------------------------------

    async def _connect_and_serve(self, backoff: Backoff) -> None:
        s = self.settings
        conn = await Connection.open(self.panel_id, s.host, s.port, s.integration_key, self._wake, s.request_timeout_s)
        try:
            await self._start_session(conn, backoff)
            await self._serve(conn)
        finally:
            await conn.close()

    async def _start_session(self, conn: Connection, backoff: Backoff) -> None:
        s = self.settings
        identity = [await self._read(conn, ReadModuleVersion()), await self._read(conn, ReadIntegraVersion())]
        self.state.apply(a for a in identity if isinstance(a, ModuleVersionAnswer | IntegraVersionAnswer))
        module = self.state.module
        self._wide_new_data = bool(module and module.supports_wide)
        # The log before the snapshot: what happened while the link was down is journaled before
        # the diff, so an alarm the diff shows again shares its record's occurrence key.
        await self._load_cursor()
        walk = await self._walk_log(conn)
        changes = self.state.apply(await self._read_queries(conn, QUERY_COMMANDS))
        self.push = s.push and supports_push(module.version if module else None)
        backoff.reset()
        self.connect_failures = 0
        self._up, self._reported_down, self.last_error = True, False, None
        self._set_state(LinkState.UP)
        version = module.version if module else "unknown"
        reason = f"connected to {s.host}:{s.port} ({'encrypted' if s.integration_key else 'plain'}, module {version})"
        log.info("satel link %s up: %s", self.panel_id, reason, extra={"panel": self.panel_id})
        await self._append("edge.link.up", Priority.LOW, LinkStatus(LINK_NAME, reason))
        if walk is not None:
            await self._journal_log(walk, at_connect=True)
        await self._emit(self.log.tag(changes, at_connect=True))
        self.log.end_connect()
        configured = {(DeviceType.ZONE, zone) for zone in s.zones}
        unnamed = sorted(d for d in self.state.active_devices() | configured if self.state.name(*d) is None)
        await self._read_names(conn, unnamed[:_NAMES_AT_CONNECT])
        self._names_wanted.update(unnamed[_NAMES_AT_CONNECT:])
        if self.push:
            answer = await self._read(conn, StartPush(QUERY_COMMANDS))
            if not (isinstance(answer, ResultAnswer) and answer.ok):
                log.warning("satel link %s: the module refused push mode; polling instead", self.panel_id,
                            extra={"panel": self.panel_id})
                self.push = False
        await self._append("satel.snapshot", Priority.LOW, self.state.snapshot(push=self.push))

    async def _serve(self, conn: Connection) -> None:
        """Commands, pushed answers, polls, clock checks and names, until stop, release or loss."""
        s = self.settings
        loop = asyncio.get_running_loop()
        interval = s.keepalive_s if self.push else s.poll_interval_s
        # In push mode, one poll right away catches what changed between the snapshot and the push.
        next_poll = loop.time() + (0.0 if self.push else interval)
        next_clock = loop.time() + s.clock_check_s
        while True:
            self._wake.clear()
            if self._stop.is_set() or self.release_info is not None:
                return
            if conn.lost is not None:
                raise conn.lost
            if await self._run_commands(conn):
                next_poll = loop.time()  # show the command's effect without waiting a whole interval
            # The panel logs what changes its state: after any change, read the log on.
            log_due = False
            batches = conn.take_unsolicited()
            if conn.resync_needed:
                conn.resync_needed = False
                await self._refresh(conn, QUERY_COMMANDS)
                log_due = True
            elif batches:
                answers = [a for batch in batches for a in batch]
                # Newest answer per command; the module may push more than the link asked for.
                pushed = {cmd: a for a in answers if (cmd := answer_command(a)) is not None}
                await self._refresh(conn, pushed.keys() & QUERY_COMMANDS, pushed.values())
                # A pushed 0x8C record, or state that changed: either way the log has news.
                log_due = True
            if loop.time() >= next_poll:
                log_due |= await self._poll(conn)
                # At a fixed rate: one interval after this poll was due, unless the link fell a
                # whole interval behind, where it starts afresh instead of bunching polls up.
                due = next_poll + interval
                next_poll = due if due > loop.time() else loop.time() + interval
            if loop.time() >= next_clock:
                await self._refresh(conn, {Cmd.STATUS})
                next_clock = loop.time() + s.clock_check_s
                log_due = True  # a safety net for records that change no state the link reads
            if log_due:
                walk = await self._walk_log(conn)
                if walk is not None:
                    if self.log.has_alarms(walk):
                        # The panel sets an alarm's bit as it logs it, but a pushed bitmap may
                        # still be on its way: read the bits first, so the live observation (and
                        # the occurrence key its record shares) is journaled before the record.
                        await self._refresh(conn, ALARM_QUERIES)
                    await self._journal_log(walk, at_connect=False)
            await self._read_names(conn, sorted(self._names_wanted)[:_NAMES_PER_ROUND])
            if self._names_wanted or len(self._commands):
                continue
            await self._wait_for_wake(min(next_poll, next_clock) - loop.time())

    async def _poll(self, conn: Connection) -> bool:
        """Ask 0x7F what changed and re-read it; True when it flagged a change."""
        started = asyncio.get_running_loop().time()
        answer = await self._read(conn, ReadNewData(self._wide_new_data))
        changed: frozenset[int] = frozenset()
        if isinstance(answer, NewDataAnswer):
            changed = answer.commands & QUERY_COMMANDS
            if changed:
                await self._refresh(conn, changed)
        else:
            log.warning("satel link %s: the module refused the new-data query (%r)", self.panel_id, answer,
                        extra={"panel": self.panel_id})
        self.polls += 1
        self.last_poll_at = self._clock.now()
        metrics.POLL_DURATION.labels(self.panel_id).observe(asyncio.get_running_loop().time() - started)
        return bool(changed)

    async def _refresh(self, conn: Connection, commands: Iterable[int], known: Iterable[Answer] = ()) -> None:
        """Read `commands` (and the rest of their groups) unless `known` already answers them,
        apply everything as one moment and journal what changed."""
        answers = list(known)
        have = {answer_command(a) for a in answers}
        answers += await self._read_queries(conn, complete_groups(commands) - have)
        await self._emit(self.log.tag(self.state.apply(answers), at_connect=False))

    async def _read_queries(self, conn: Connection, commands: Iterable[int]) -> list[Answer]:
        answers = []
        for cmd in sorted(commands):
            answer = await self._read(conn, query_for(cmd, self.state.wide))
            if answer_command(answer) == cmd:
                answers.append(answer)
            else:
                log.warning("satel link %s: the module answered %s with %r", self.panel_id, command_name(cmd), answer,
                            extra={"panel": self.panel_id})
        return answers

    async def _read(self, conn: Connection, request: Request) -> Answer:
        """One read; a damaged answer is asked for once more (reads change nothing on the panel)."""
        timeout = self.settings.request_timeout_s
        try:
            return await conn.request(request, timeout)
        except CorruptAnswer as exc:
            log.warning("satel link %s: %s; asking again", self.panel_id, exc, extra={"panel": self.panel_id})
        try:
            return await conn.request(request, timeout)
        except CorruptAnswer as exc:
            raise LinkLost(f"two damaged answers in a row: {exc}") from None

    async def _read_names(self, conn: Connection, devices: Iterable[Device]) -> None:
        for device_type, number in devices:
            self._names_wanted.discard((device_type, number))
            # Marked as read before asking: names are a convenience, and a name whose read breaks
            # the connection must not keep the link reconnecting to ask for it again.
            self.state.set_name(device_type, number, "")
            answer = await self._read(conn, ReadDeviceName(device_type, number))
            if isinstance(answer, DeviceNameAnswer):
                self.state.apply([answer])

    # --- events ----------------------------------------------------------------------------------

    async def _emit(self, observations: list[Observation]) -> bool:
        """Journal a moment's events together (they share one commit); note unnamed devices.
        True when every one was stored."""
        for observation in observations:
            if observation.device is not None and self.state.name(*observation.device) is None:
                self._names_wanted.add(observation.device)
        # gather starts the appends in list order, and the journal hands out seqs in that order.
        stored = await asyncio.gather(*(self._append(o.kind, o.priority, o.body, o.occurrence) for o in observations))
        return all(stored)

    async def _append(self, kind: str, priority: Priority, body: msgspec.Struct, occurrence: str | None = None) -> bool:
        """Journal one event; False (logged and counted) when the journal refused it."""
        envelope = new_envelope(kind, self.panel_id, priority, body, clock=self._clock)
        if occurrence is not None:
            envelope = msgspec.structs.replace(envelope, occurrence=occurrence)
        extra = {"event_id": envelope.id, "panel": self.panel_id, "kind": kind}
        try:
            seq = await self._journal.append(envelope)
        except JournalError as exc:
            metrics.EVENTS_LOST.labels(self.panel_id).inc()
            log.error("satel link %s: %s not stored: %s", self.panel_id, kind, exc, extra=extra)
            return False
        metrics.EVENTS.labels(self.panel_id).inc()
        level = logging.DEBUG if priority is Priority.LOW else logging.INFO
        log.log(level, "satel link %s: %s stored as seq %d", self.panel_id, kind, seq, extra={**extra, "seq": seq})
        return True

    # --- the panel's event log -------------------------------------------------------------------

    async def _load_cursor(self) -> None:
        """Read where this edge got to in the panel's log, once per run (the journal keeps it)."""
        if self._cursor_loaded:
            return
        try:
            self.log.load_cursor(await self._journal.get_cursor(self._cursor_name))
        except (JournalError, ValueError) as exc:
            log.warning("satel link %s: no event log cursor (%s); reading the log back as on a first start",
                        self.panel_id, exc, extra={"panel": self.panel_id})
        self._cursor_loaded = True

    async def _walk_log(self, conn: Connection) -> LogWalk | None:
        """Read the panel's event log from the newest record back to the cursor (0x8C from
        `FF FF FF`, then the event index each answer returns); None when the module refuses."""
        walk = self.log.walk()
        request = ReadEvent()
        while True:
            answer = await self._read(conn, request)
            if not isinstance(answer, EventAnswer):
                log.warning("satel link %s: the module refused the event log read (%r)", self.panel_id, answer,
                            extra={"panel": self.panel_id})
                return None
            if not walk.take(answer):
                break
            request = ReadEvent(answer.previous_index)
        warning = walk.warning()
        if warning is not None:
            log.warning("satel link %s: %s", self.panel_id, warning, extra={"panel": self.panel_id})
        return walk

    async def _journal_log(self, walk: LogWalk, *, at_connect: bool) -> None:
        """Journal a walk's new records, oldest first, then move the cursor past them.

        The cursor moves only once every record is stored (at least once: a record read again
        after a crash carries the same occurrence key, and the hub keeps one event per key)."""
        if not await self._emit(self.log.records(walk, at_connect=at_connect)):
            return
        cursor = self.log.advance(walk)
        if cursor is None:
            return
        try:
            await self._journal.set_cursor(self._cursor_name, cursor)
        except JournalError as exc:
            log.warning("satel link %s: event log cursor not stored (%s); a restart reads those records again",
                        self.panel_id, exc, extra={"panel": self.panel_id})

    def _set_state(self, state: LinkState) -> None:
        if state is not self.link_state:
            self.link_state = state
            self.since = self._clock.now()
        metrics.CONNECTION_STATUS.labels(self.panel_id).set(1 if state is LinkState.UP else 0)

    async def _went_down(self, reason: str, priority: Priority, *, planned: bool = False) -> None:
        """Record the link down once per outage (the first failed attempt counts as one).

        `planned`: someone chose the stop (the agent stopping, a DLOADX release), so the hub holds
        its link alarm for a grace period."""
        self.last_error = reason
        self._set_state(LinkState.RELEASED if self.release_info is not None else LinkState.DOWN)
        self._commands.fail_all(f"not sent: link down ({reason})")
        if self._up or not self._reported_down:
            await self._append("edge.link.down", priority, LinkStatus(LINK_NAME, reason, planned))
        self._up, self._reported_down = False, True

    # --- commands --------------------------------------------------------------------------------

    async def _run_commands(self, conn: Connection) -> bool:
        """Send every queued command; True if any was sent."""
        loop = asyncio.get_running_loop()
        sent = False
        while (job := self._commands.take(loop.time())) is not None:
            sent = True
            try:
                answer = await conn.request(job.request, self.settings.request_timeout_s)
            except CorruptAnswer:
                job.finish(CommandOutcome(CommandResult.TIMEOUT, "answer damaged: the module may or may not have carried it out"))
                continue
            except LinkLost as exc:
                job.finish(CommandOutcome(CommandResult.TIMEOUT, f"{exc.reason}: the module may or may not have carried it out"))
                raise
            assert isinstance(answer, ResultAnswer)  # a control command's answer is always 0xEF
            job.finish(outcome_of(answer))
        return sent

    async def _submit(self, name: str, request: Request, items: frozenset[int], who: str) -> CommandOutcome:
        outcome = await self._run_command(name, request)
        # Journaled whatever the outcome (a refused disarm matters as much as a done one), so the
        # hub shows and audits every command given through this box, with who gave it.
        await self._append("satel.command", Priority.NORMAL, CommandGiven(
            command=name, items=sorted(items), result=outcome.result.value, code=outcome.code,
            reason=outcome.reason, who=who))
        return outcome

    async def _run_command(self, name: str, request: Request,
                           priority: CommandPriority = CommandPriority.MANUAL) -> CommandOutcome:
        s = self.settings
        if self.link_state is not LinkState.UP:
            why = "released for DLOADX" if self.release_info is not None else f"link {self.link_state.value}"
            outcome = CommandOutcome(CommandResult.UNAVAILABLE, f"not sent: {why}")
        else:
            loop = asyncio.get_running_loop()
            job = CommandJob(name, request, loop.time() + s.command_timeout_s, priority)
            if not self._commands.put(job):
                outcome = CommandOutcome(CommandResult.UNAVAILABLE, f"not sent: {len(self._commands)} commands already queued")
            else:
                self._wake.set()
                try:
                    # The job's own deadline ends it first; this only guards against a stuck link.
                    async with asyncio.timeout(s.command_timeout_s + s.request_timeout_s + 1):
                        outcome = await job.future
                except TimeoutError:
                    outcome = CommandOutcome(CommandResult.TIMEOUT, "no outcome in time")
        metrics.COMMANDS.labels(self.panel_id, outcome.result.value.lower()).inc()
        log.info("satel link %s: %s → %s (%s)", self.panel_id, name, outcome.result.value, outcome.reason,
                 extra={"panel": self.panel_id, "command": name, "result": outcome.result.value, "code": outcome.code})
        return outcome

    def _user_code(self, code: str) -> UserCode:
        # The code the person typed (or the hub sealed for this command), always: the edge keeps no
        # code to fall back on, so nobody can arm or disarm without knowing one
        # (docs/architecture.md §7).
        return UserCode.from_digits(code, self.settings.code_prefix)

    def _request(self, type_: str, items: Iterable[int], *, code: str, mode: int = 0,
                 force: bool = False) -> tuple[str, Request, frozenset[int]]:
        """The command's name (as journaled), its request and the numbers it names, for a command
        type of shared.commands.ITEMS_OF. Raises ValueError for bad input."""
        what = ITEMS_OF.get(type_)
        if what is None:
            raise ValueError(f"unknown command type {type_!r}")
        chosen = frozenset(items)
        if not chosen:
            raise ValueError(f"name at least one {what[:-1]}")
        user = self._user_code(code)
        wide = self.state.wide
        if type_ == "arm":
            return f"{'force ' if force else ''}arm mode {mode}", Arm(user, chosen, mode, force), chosen
        if type_ == "disarm":
            return "disarm", Disarm(user, chosen), chosen
        if type_ == "clear_alarm":
            return "clear alarm", ClearAlarm(user, chosen), chosen
        if type_ in ("outputs_on", "outputs_off"):
            on = type_ == "outputs_on"
            return (f"outputs {'on' if on else 'off'}",
                    SwitchOutputs(user, chosen, OutputAction.ON if on else OutputAction.OFF, wide), chosen)
        kind = BypassZones if type_ == "bypass" else UnbypassZones
        return type_, kind(user, chosen, wide), chosen

    async def _local(self, type_: str, items: Iterable[int], who: str, **request: Any) -> CommandOutcome:
        name, req, chosen = self._request(type_, items, **request)
        return await self._submit(name, req, chosen, who)

    async def arm(
        self, partitions: Iterable[int], *, mode: int = 0, force: bool = False, code: str, who: str
    ) -> CommandOutcome:
        """Arm partitions in mode 0–3 (force: despite violated zones). Raises ValueError for bad input."""
        return await self._local("arm", partitions, who, code=code, mode=mode, force=force)

    async def disarm(self, partitions: Iterable[int], *, code: str, who: str) -> CommandOutcome:
        """Disarm partitions. Raises ValueError for bad input."""
        return await self._local("disarm", partitions, who, code=code)

    async def clear_alarm(self, partitions: Iterable[int], *, code: str, who: str) -> CommandOutcome:
        """Clear the alarm (and alarm memory) of partitions. Raises ValueError for bad input."""
        return await self._local("clear_alarm", partitions, who, code=code)

    async def switch_outputs(self, outputs: Iterable[int], *, on: bool, code: str, who: str) -> CommandOutcome:
        """Switch outputs on or off. Raises ValueError for bad input."""
        return await self._local("outputs_on" if on else "outputs_off", outputs, who, code=code)

    async def bypass(self, zones: Iterable[int], *, bypass: bool = True, code: str, who: str) -> CommandOutcome:
        """Bypass zones (or remove their bypass). Raises ValueError for bad input."""
        return await self._local("bypass" if bypass else "unbypass", zones, who, code=code)

    async def execute(self, command: PanelCommand, code: str) -> CommandOutcome:
        """Carry out a command from the hub (edge.commands journals its result as `cmd.result`),
        an auto-arm schedule's after every person's. Raises ValueError for a command this panel
        cannot take (bad numbers, a code that is not digits)."""
        name, req, _ = self._request(command.type, command.items(), code=code, mode=command.mode, force=command.force)
        priority = CommandPriority.AUTOMATIC if command.source is Source.AUTO_ARM else CommandPriority.MANUAL
        return await self._run_command(name, req, priority)

    # --- DLOADX release --------------------------------------------------------------------------

    async def release(self, minutes: float, who: str, why: str) -> Release:
        """Let go of the module for `minutes` so an installer's DLOADX can connect; records who and
        why (`edge.link.released`) and returns once the connection is closed. The link reconnects
        by itself when the time is up (or on `resume`). Raises ValueError for bad input."""
        who, why = who.strip(), why.strip()
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not 0 < minutes <= MAX_RELEASE_MINUTES:
            raise ValueError(f"minutes must be a number in (0, {MAX_RELEASE_MINUTES:g}], got {minutes!r}")
        for field, value in (("who", who), ("why", why)):
            if not value or len(value) > _MAX_TEXT:
                raise ValueError(f"{field} must be 1..{_MAX_TEXT} characters")
        loop = asyncio.get_running_loop()
        until = self._clock.now() + timedelta(minutes=minutes)
        info = Release(who, why, float(minutes), until, loop.time() + minutes * 60)
        self.release_info = info
        self._away.clear()
        # The installer may reprogram the panel, names included.
        self.state.forget_names()
        self._names_wanted.clear()
        log.warning("satel link %s released for %g min by %s: %s", self.panel_id, minutes, who, why,
                    extra={"panel": self.panel_id, "who": who})
        await self._append("edge.link.released", Priority.NORMAL, LinkReleased(LINK_NAME, who, why, float(minutes), until))
        self._wake.set()
        # At most one request is in flight; once it is answered (or times out) the socket closes.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.request_timeout_s + 1):
                await self._away.wait()
        return info

    def resume(self) -> bool:
        """End a release early; returns False when the link was not released."""
        if self.release_info is None:
            return False
        log.info("satel link %s: release by %s ended early", self.panel_id, self.release_info.who,
                 extra={"panel": self.panel_id})
        self.release_info = None
        self._wake.set()
        return True

    # --- status ----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What the local page shows: state, address, mode, versions, errors, counters. No secrets."""
        s = self.settings
        module, panel = self.state.module, self.state.panel
        retry_in = None
        if self._next_retry_at is not None:
            retry_in = round(max(0.0, self._next_retry_at - asyncio.get_running_loop().time()), 2)
        return {
            "panel": self.panel_id,
            "state": self.link_state.value,
            "since": self.since.isoformat(),
            "address": f"{s.host}:{s.port}",
            "encrypted": s.integration_key is not None,
            "mode": "push" if self.push else "poll",
            "poll_interval_s": s.poll_interval_s,
            "module_version": module.version if module else None,
            "panel_type": panel.panel_type if panel else None,
            "panel_version": panel.version if panel else None,
            "last_error": self.last_error,
            "reconnects": self.reconnects,
            "connect_failures": self.connect_failures,
            "retry_in_s": retry_in,
            "polls": self.polls,
            "last_poll_at": self.last_poll_at.isoformat() if self.last_poll_at else None,
            "commands_queued": len(self._commands),
            "released": self.release_info.as_dict() if self.release_info else None,
        }
