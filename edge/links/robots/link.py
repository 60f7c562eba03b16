"""The edge's link to the site's robots (docs/architecture.md §7 "Robots"): reads what they say
from the box's own JetStream, journals it through the pure trackers (state.py), asks a newly seen
robot who it is and what it can do, and samples telemetry.

Two loops, each bound to its durable pull consumer (streams.py):

- **events** (`agent-robots` on ROBOT_EVENTS): fetches at most EVENTS_BATCH messages, or waits
  `poll_interval_s`; each message is decoded against its subject (`shared.robots.decode`),
  handed to its robot's tracker, and acknowledged only once the events it caused are journaled,
  so a message the agent was killed in the middle of is read again (its events have ids made
  from the message, so they are not journaled twice). Acks of commands tell the relay that their
  command is handed over. When caught up, the trackers' clocks tick (missed heartbeats,
  unanswered questions).
- **telemetry** (`agent-telemetry` on ROBOT_TELEMETRY): one fetch of at most TELEMETRY_BATCH per
  tick, whatever a robot sends: the server keeps only each robot's latest sample, and the
  sampler keeps at most one per robot per `1/telemetry_hz`. A burst of samples costs the event
  loop (and the journal a CRITICAL alarm goes through) almost nothing.

A message that cannot be read, or from a robot this box does not have, is counted
(`vigil_edge_robot_messages_dropped_total{reason}`), logged and acknowledged: it will never become
readable. After the agent's connection to the box's server was re-made (the server restarted, and
lost the memory stream with it), or when a consumer is found gone (checked every
CONSUMER_CHECK_S while idle), both streams are made again and the loops bind anew.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter as Tally
from datetime import datetime
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from edge.config import RobotsSettings
from edge.journal import AlreadyJournaled, Journal, JournalError
from edge.links.robots.metrics import DROPPED, MESSAGES, ROBOTS, TELEMETRY_KEPT, TELEMETRY_SKIPPED
from edge.links.robots.relay import RobotRelay
from edge.links.robots.state import (Action, Ask, Observation, Policy, RobotTracker, Snapshot, TelemetrySampler,
                                     Unanswered, event_id, telemetry_observation)
from edge.links.robots.streams import ensure_streams
from shared import robots as wire
from shared import subjects
from shared.backoff import Backoff, sleep_or_stop
from shared.clock import SYSTEM_CLOCK, Clock
from shared.envelope import new_envelope

log = logging.getLogger("vigil.edge.robots")

EVENTS_BATCH = 64
TELEMETRY_BATCH = 256
#: With nothing to read, how often a loop checks that its consumer still exists.
CONSUMER_CHECK_S = 5.0
CONNECTION_STATES = ("ONLINE", "OFFLINE", "CONNECTION_BROKEN", "UNKNOWN")
_CURSOR_PREFIX = "robot:"  # the trackers' snapshots in the journal's link_cursors


class RobotLink:
    """The link to the configured robots; run it with `await link.run(stop)`."""

    def __init__(self, edge_id: str, settings: RobotsSettings, journal: Journal, nc: NatsClient, relay: RobotRelay,
                 *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.edge_id = edge_id
        self.settings = settings
        self._journal = journal
        self._nc = nc
        self._js = nc.jetstream()  # no domain: the box's own JetStream
        self._relay = relay
        self._clock = clock
        policy = Policy(missed_heartbeats=settings.missed_heartbeats, battery_critical_pct=settings.battery_critical_pct,
                        query_timeout_s=settings.query_timeout_s, query_attempts=settings.query_attempts)
        self.trackers = {r.id: RobotTracker(r.id, policy, clock) for r in settings.robots}
        self.samplers = {r.id: TelemetrySampler(1.0 / r.telemetry_hz) for r in settings.robots}
        self._names = {r.id: r.name for r in settings.robots}
        self._saved: dict[str, Snapshot] = {}
        self._ensure_lock = asyncio.Lock()
        self._unknown_logged: set[str] = set()
        self.dropped: Tally[str] = Tally()
        self.streams_ready = False
        self.last_error: str | None = None
        self._count_connections()

    # --- running ---------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Read the robots until `stop`."""
        await self._restore()
        loops = [asyncio.create_task(self._events_loop(stop), name="robots-events"),
                 asyncio.create_task(self._telemetry_loop(stop), name="robots-telemetry")]
        try:
            await asyncio.gather(*loops)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def _restore(self) -> None:
        """Take up each robot where the previous agent left it (connection, state, open alarms)."""
        for robot, tracker in self.trackers.items():
            try:
                saved = await self._journal.get_cursor(_CURSOR_PREFIX + robot)
            except JournalError as exc:
                log.error("robot %s: its last known state cannot be read (%s); starting from unknown", robot, exc,
                          extra={"robot": robot})
                continue
            if saved is None:
                continue
            try:
                snapshot = msgspec.json.decode(saved, type=Snapshot)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.error("robot %s: its saved state is damaged (%s); starting from unknown", robot, exc,
                          extra={"robot": robot})
                continue
            tracker.restore(snapshot)
            self._saved[robot] = snapshot
        self._count_connections()

    async def _ensure(self) -> None:
        async with self._ensure_lock:
            await ensure_streams(self._nc, self.settings.events_max_age_h * 3600, self.settings.events_max_bytes)
            self.streams_ready = True

    async def _bind(self, durable: str, stream: str) -> Any:
        return await self._js.pull_subscribe_bind(
            durable=durable, stream=stream, inbox_prefix=f"{subjects.edge_inbox_prefix(self.edge_id)}.".encode())

    async def _loop(self, stop: asyncio.Event, name: str, durable: str, stream: str, body: Any) -> None:
        """Bind `durable` and run `body(sub, stop, backoff)`; when it returns (a reconnect) make
        the streams again and bind anew, and so too, backing off, on any NATS failure (the
        consumer gone), until stopped."""
        backoff = Backoff(0.2, 5.0)
        while not stop.is_set():
            sub = None
            try:
                await self._ensure()
                sub = await self._bind(durable, stream)
                backoff.reset()
                self.last_error = None
                await body(sub, stop, backoff)
            except (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError, OSError) as exc:
                self.streams_ready = False
                self.last_error = f"{type(exc).__name__}: {exc}".strip()
                delay = backoff.next_delay()
                log.warning("robot %s loop: %s; trying again in %.1f s", name, self.last_error, delay,
                            extra={"edge": self.edge_id})
                if await sleep_or_stop(delay, stop):
                    break
            finally:
                if sub is not None:
                    with contextlib.suppress(nats.errors.Error):
                        await sub.unsubscribe()

    async def _fetch(self, sub: Any, batch: int, timeout: float) -> list[Msg]:
        try:
            return list(await sub.fetch(batch, timeout=timeout))
        except (nats.errors.TimeoutError, asyncio.TimeoutError):
            return []

    async def _check_consumer(self, stream: str, durable: str) -> None:
        """Raises nats.js.errors.NotFoundError when the consumer is gone (a server restart)."""
        await self._js.consumer_info(stream, durable)

    def _reconnects(self) -> int:
        """How often the agent's connection was made again: a change means the server may have
        restarted, and the streams must be made again."""
        return int(self._nc.stats["reconnects"])

    # --- robot → edge events ---------------------------------------------------------------------

    async def _events_loop(self, stop: asyncio.Event) -> None:
        await self._loop(stop, "events", wire.EVENTS_CONSUMER, wire.EVENTS_STREAM, self._read_events)

    async def _read_events(self, sub: Any, stop: asyncio.Event, backoff: Backoff) -> None:
        checked, reconnects = self._clock.monotonic(), self._reconnects()
        while not stop.is_set() and self._reconnects() == reconnects:
            msgs = await self._fetch(sub, EVENTS_BATCH, self.settings.poll_interval_s)
            for i, msg in enumerate(msgs):
                try:
                    await self._handle_event(msg)
                except JournalError as exc:
                    # Not acknowledged: this message and the rest of the batch come again, in order.
                    log.error("robot messages not journaled (%s); they will be read again", exc,
                              extra={"edge": self.edge_id})
                    for later in msgs[i:]:
                        with contextlib.suppress(nats.errors.Error):
                            await later.nak(delay=1.0)
                    if await sleep_or_stop(backoff.next_delay(), stop):
                        return
                    break
            else:
                backoff.reset()
            if len(msgs) < EVENTS_BATCH:  # caught up: the time that passed counts now
                await self._tick()
            if msgs:
                checked = self._clock.monotonic()
            elif self._clock.monotonic() - checked > CONSUMER_CHECK_S:
                await self._check_consumer(wire.EVENTS_STREAM, wire.EVENTS_CONSUMER)
                checked = self._clock.monotonic()

    def _read(self, msg: Msg) -> tuple[wire.RobotEnvelope, msgspec.Struct, RobotTracker] | None:
        """The message's envelope, payload and robot; None (counted, logged) when it is dropped."""
        try:
            envelope, payload = wire.decode(msg.data, msg.subject)
        except wire.RobotMessageError as exc:
            self._drop(exc.reason, f"{msg.subject}: {exc}")
            return None
        tracker = self.trackers.get(envelope.robot_id)
        if tracker is None:
            self._drop("unknown_robot", f"{msg.subject}: robot {envelope.robot_id!r} is not configured on this edge",
                       log_once=envelope.robot_id)
            return None
        if envelope.type == "cmd.ack" and not envelope.correlation_id:
            self._drop("bad_payload", f"{msg.subject}: a cmd.ack without correlationId")
            return None
        MESSAGES.labels(envelope.type).inc()
        return envelope, payload, tracker

    def _drop(self, reason: str, detail: str, log_once: str | None = None) -> None:
        DROPPED.labels(reason).inc()
        self.dropped[reason] += 1
        if log_once is None or log_once not in self._unknown_logged:
            log.warning("robot message dropped (%s): %s", reason, detail, extra={"edge": self.edge_id, "reason": reason})
            if log_once is not None:
                self._unknown_logged.add(log_once)

    async def _handle_event(self, msg: Msg) -> None:
        """One robot message: its events journaled, then acknowledged. JournalError: neither,
        and the tracker is as before it, so reading it again gives the same events."""
        read = self._read(msg)
        if read is not None:
            envelope, payload, tracker = read
            try:
                if isinstance(payload, wire.CmdAck):
                    known = self._relay.known(envelope.correlation_id or "", tracker.robot_id)
                    command_type, token = known if known is not None else ("", None)
                    await self._carry_out(tracker, tracker.on_ack(envelope, payload, command_type, token))
                    await self._relay.answered(tracker.robot_id, envelope.correlation_id or "")
                else:
                    await self._carry_out(tracker, tracker.on_message(envelope, payload, _received_at(msg)))
                await self._save(tracker)
            except JournalError:
                self._roll_back(tracker)
                raise
        with contextlib.suppress(nats.errors.Error):  # not acked: read again, its events recognised
            await msg.ack()

    async def _tick(self) -> None:
        for tracker in self.trackers.values():
            actions = tracker.tick()
            if not actions:
                continue
            try:
                await self._carry_out(tracker, actions)
                await self._save(tracker)
            except JournalError as exc:
                self._roll_back(tracker)  # the next tick finds the same again
                log.error("robot %s: %s", tracker.robot_id, exc, extra={"robot": tracker.robot_id})

    def _roll_back(self, tracker: RobotTracker) -> None:
        """Back to the last saved snapshot: what was not journaled has not happened."""
        tracker.restore(self._saved.get(tracker.robot_id, Snapshot()))
        self._count_connections()

    async def _carry_out(self, tracker: RobotTracker, actions: list[Action]) -> None:
        """Journal the observations and ask the questions, in order; JournalError stops it."""
        for action in actions:
            if isinstance(action, Observation):
                await self._append(tracker.robot_id, action)
            elif isinstance(action, Ask):
                await self._ask(action)
            elif isinstance(action, Unanswered):
                log.warning("robot %s did not answer %s (%d times); going on without it", action.robot,
                            action.command_type, action.attempts, extra={"robot": action.robot})
        self._count_connections()

    async def _append(self, robot: str, observation: Observation) -> None:
        envelope = new_envelope(observation.kind, robot, observation.priority, observation.body, corr=observation.corr,
                                clock=self._clock)
        if observation.key is not None:
            envelope = msgspec.structs.replace(envelope, id=event_id(observation.key))
        try:
            await self._journal.append(envelope)
        except AlreadyJournaled:
            return  # a message read again after a crash: its events are in the journal already

    async def _ask(self, ask: Ask) -> None:
        data = wire.encode("cmd", ask.robot, f"{ask.correlation_id}.{ask.attempt}", self._clock.now(),
                           wire.Cmd(command_type=ask.command_type), correlation_id=ask.correlation_id)
        try:
            await self._nc.publish(wire.subject("cmd", ask.robot), data)
        except nats.errors.Error as exc:  # asked again after query_timeout_s
            log.warning("robot %s: %s not sent (%s)", ask.robot, ask.command_type, exc, extra={"robot": ask.robot})
            return
        log.info("robot %s asked to %s (attempt %d)", ask.robot, ask.command_type, ask.attempt,
                 extra={"robot": ask.robot})

    async def _save(self, tracker: RobotTracker) -> None:
        """Keep the tracker's snapshot in the journal's database when more than its last
        heartbeat changed."""
        snapshot = tracker.snapshot()
        saved = self._saved.get(tracker.robot_id, Snapshot())
        # A heartbeat alone is not worth a write (and an fsync) of its own.
        if msgspec.structs.replace(saved, last_heartbeat_at=snapshot.last_heartbeat_at) == snapshot:
            return
        await self._journal.set_cursor(_CURSOR_PREFIX + tracker.robot_id, msgspec.json.encode(snapshot).decode())
        self._saved[tracker.robot_id] = snapshot

    def _count_connections(self) -> None:
        counts = Tally(t.connection or "UNKNOWN" for t in self.trackers.values())
        for state in CONNECTION_STATES:
            ROBOTS.labels(state).set(counts[state])

    # --- telemetry -------------------------------------------------------------------------------

    async def _telemetry_loop(self, stop: asyncio.Event) -> None:
        await self._loop(stop, "telemetry", wire.TELEMETRY_CONSUMER, wire.TELEMETRY_STREAM, self._read_telemetry)

    def _tick_s(self) -> float:
        """How often telemetry is fetched and due samples journaled."""
        periods = [s.period_s / 2 for s in self.samplers.values()]
        return min([self.settings.poll_interval_s, *periods])

    async def _read_telemetry(self, sub: Any, stop: asyncio.Event, backoff: Backoff) -> None:
        checked, reconnects = self._clock.monotonic(), self._reconnects()
        tick = self._tick_s()
        while not stop.is_set() and self._reconnects() == reconnects:
            started = self._clock.monotonic()
            msgs = await self._fetch(sub, TELEMETRY_BATCH, tick)
            for msg in msgs:
                read = self._read(msg)
                if read is None:
                    continue
                envelope, sample, tracker = read
                assert isinstance(sample, wire.Telemetry)
                tracker.on_telemetry(envelope, sample, _received_at(msg))
                self.samplers[tracker.robot_id].offer(envelope, sample)
            if msgs:
                with contextlib.suppress(nats.errors.Error):
                    await msgs[-1].ack()  # ack policy ALL: the whole batch
                checked = started
            elif started - checked > CONSUMER_CHECK_S:
                await self._check_consumer(wire.TELEMETRY_STREAM, wire.TELEMETRY_CONSUMER)
                checked = started
            await self._keep_due_samples()
            # One fetch per tick at most, however fast the robots send.
            rest = tick - (self._clock.monotonic() - started)
            if msgs and rest > 0 and await sleep_or_stop(rest, stop):
                return

    async def _keep_due_samples(self) -> None:
        now = self._clock.monotonic()
        for robot, sampler in self.samplers.items():
            kept = sampler.due(now)
            if kept is None:
                continue
            envelope, sample, skipped = kept
            TELEMETRY_KEPT.labels(robot).inc()
            TELEMETRY_SKIPPED.labels(robot).inc(skipped)
            try:
                await self._append(robot, telemetry_observation(robot, envelope, sample, skipped))
            except JournalError as exc:  # telemetry is sampled anyway: the next one will do
                log.warning("robot %s: telemetry not journaled (%s)", robot, exc, extra={"robot": robot})

    # --- what the local page shows ---------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Each robot (connection, state, battery, last heard, identity), drops and commands."""
        robots = []
        for robot, tracker in self.trackers.items():
            sampler = self.samplers[robot]
            robots.append({**tracker.status_view(), "name": self._names[robot],
                           "telemetry": {"hz": 1.0 / sampler.period_s, "kept": sampler.kept,
                                         "skipped": sampler.skipped_total}})
        return {"streams_ready": self.streams_ready, "last_error": self.last_error, "robots": robots,
                "dropped": dict(self.dropped), "commands": self._relay.status()}


def _received_at(msg: Msg) -> datetime | None:
    """When the box's server stored the message (its clock is the box's), if JetStream says."""
    try:
        return msg.metadata.timestamp
    except (ValueError, AttributeError, IndexError):
        return None
