"""The bridge's I/O: the robot's NATS connection to its edge box's server, its two subscriptions,
the timers, and the adapter's tasks, all driving the sans-IO core (core.py).

The connection uses the robot's own credentials and reconnects forever; while it is down, acks,
settings reports and identity answers wait (bounded) and go out when it is back, while status and
telemetry are not kept (a fresh status goes out at once on every (re)connect). Robot → edge
subjects are captured by a JetStream stream on the edge's server, so the bridge core-publishes
and has no reply inbox.

Everything the core answers goes out through one queue in the order the core made it, so a
command's acks never overtake each other. The highest fencing token is saved in
`<state_dir>/fencing.json` before anything under it is done.

A MOCK robot's control endpoint can `silence` the link (it hears nothing from the edge but keeps
its heartbeat) and `disconnect`/`reconnect` it (the connection drops with no goodbye).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from collections import Counter, deque
from pathlib import Path

import msgspec
import nats
import nats.errors
from nats.aio.msg import Msg

from shared.backoff import Backoff, sleep_or_stop, wait_any
from shared.private_file import write_private_file
from shared.robots import AckStatus, MessageType, RobotCredentials, robot_subscribe_subjects

from .adapter import Command, CommandFailed, RobotAdapter, SettingsRefused
from .core import Abort, Action, ApplySettings, BridgeCore, Execute, SaveFencingToken, Send

log = logging.getLogger("vigil.robot.link")

FENCING_FILE = "fencing.json"
#: What waits for the connection to come back; status and telemetry are stale by then.
KEPT_WHILE_DOWN: frozenset[MessageType] = frozenset({"cmd.ack", "settings.reported", "identity", "capability"})
MAX_KEPT = 1000
#: How long a clean stop waits for its last messages (the goodbye) to reach the server.
FLUSH_ON_STOP_S = 2.0


REDACTED = "<redacted>"


def redact_url(url: str) -> str:
    """`url` without any user or password in it (for logs and dumps)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return REDACTED  # cannot tell where a login would be in it
    if parts.username is None and parts.password is None:
        return url
    netloc = f"{REDACTED}@{host}" + (f":{port}" if port is not None else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class FencingState(msgspec.Struct, frozen=True, rename="camel"):
    """The state file: the highest fencing token this robot has seen."""

    robot_id: str
    highest_fencing_token: int


def load_fencing_token(state_dir: Path | None, robot_id: str) -> int | None:
    """The highest fencing token kept in `state_dir`, or None (none yet, or unreadable: logged)."""
    if state_dir is None:
        return None
    path = state_dir / FENCING_FILE
    try:
        state = msgspec.json.decode(path.read_bytes(), type=FencingState)
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.error("robot %s: cannot read the fencing state %s (%s); starting without a fencing token",
                  robot_id, path, exc, extra={"robot": robot_id})
        return None
    if state.robot_id != robot_id:
        log.error("robot %s: the fencing state %s is robot %s's; starting without a fencing token",
                  robot_id, path, state.robot_id, extra={"robot": robot_id})
        return None
    return state.highest_fencing_token


def save_fencing_token(state_dir: Path, robot_id: str, token: int) -> None:
    """Keep `token` in `state_dir`, atomically and durably."""
    write_private_file(state_dir / FENCING_FILE, msgspec.json.encode(FencingState(robot_id, token)).decode())


class RobotLink:
    """One robot's bridge to its edge. Run it with `await link.run(stop)`."""

    def __init__(self, url: str, credentials: RobotCredentials, adapter: RobotAdapter, core: BridgeCore, *,
                 state_dir: Path | None = None, tick_s: float = 0.1) -> None:
        self.url = url
        self._shown_url = redact_url(url)
        self.credentials = credentials
        self.robot_id = core.robot_id
        self.core = core
        self._adapter = adapter
        self._state_dir = state_dir
        self._tick_s = tick_s
        self._nc: nats.NATS | None = None
        self._outbox: asyncio.Queue[Send] = asyncio.Queue()
        self._kept: deque[Send] = deque(maxlen=MAX_KEPT)
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._applying: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        #: False while the control endpoint holds the connection down.
        self.wanted = True
        #: True while the control endpoint has the robot ignore what the edge sends.
        self.silenced = False
        self.connected = False
        self.connects = 0
        self.ignored_silenced = 0
        self.not_sent: Counter[str] = Counter()

    # ---- control (MOCK) ----------------------------------------------------------------------

    def disconnect(self) -> None:
        """Drop the connection without a goodbye, and stay down until `reconnect`."""
        self.wanted = False
        self._changed.set()

    def reconnect(self) -> None:
        """Connect again after `disconnect`."""
        self.wanted = True
        self._changed.set()

    # ---- running -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the robot on its edge's server until `stop`; then stop cleanly with a goodbye."""
        await self._adapter.start()
        publisher = asyncio.create_task(self._publish_forever(), name=f"robot-{self.robot_id}-publish")
        ticker = asyncio.create_task(self._tick_forever(), name=f"robot-{self.robot_id}-tick")
        try:
            while not stop.is_set():
                if self.wanted and self._nc is None:
                    self._nc = await self._connect(stop)
                    if self._nc is None:
                        break
                    await self._came_up()
                await wait_any((stop, self._changed), None)
                self._changed.clear()
                if not self.wanted and self._nc is not None:
                    log.warning("robot %s: dropping the connection (control endpoint)", self.robot_id,
                                extra={"robot": self.robot_id})
                    await self._close(flush=False)
        finally:
            ticker.cancel()
            self._perform(self.core.stop())
            await self._cancel_all()
            if self._nc is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._outbox.join(), FLUSH_ON_STOP_S)
            publisher.cancel()
            await self._close(flush=True)
            await self._adapter.stop()

    async def _connect(self, stop: asyncio.Event) -> nats.NATS | None:
        """A connection, retried with backoff until one is made or `stop` (None)."""
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                return await nats.connect(
                    self.url, user=self.credentials.user, password=self.credentials.password,
                    name=f"vigil-robot-{self.robot_id}", max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                    connect_timeout=2, ping_interval=5, max_outstanding_pings=2,
                    disconnected_cb=self._went_down, reconnected_cb=self._came_back, error_cb=self._nats_error)
            except (OSError, nats.errors.Error, asyncio.TimeoutError) as exc:
                delay = backoff.next_delay()
                log.warning("robot %s: edge server %s unreachable (%s); retrying in %.1f s", self.robot_id,
                            self._shown_url, exc or type(exc).__name__, delay, extra={"robot": self.robot_id})
                if await sleep_or_stop(delay, stop):
                    return None

    async def _came_up(self) -> None:
        assert self._nc is not None
        for subj in robot_subscribe_subjects(self.robot_id):
            await self._nc.subscribe(subj, cb=self._on_message)
        self.connects += 1
        log.info("robot %s connected to %s", self.robot_id, self._shown_url, extra={"robot": self.robot_id})
        self._up()

    def _up(self) -> None:
        """(Re)connected: what waited goes first, then how the robot stands now."""
        self.connected = True
        while self._kept:
            self._outbox.put_nowait(self._kept.popleft())
        self._perform(self.core.on_connected())

    async def _came_back(self) -> None:
        log.info("robot %s reconnected to %s", self.robot_id, self._shown_url, extra={"robot": self.robot_id})
        self._up()

    async def _went_down(self) -> None:
        if self.connected:
            log.warning("robot %s: connection to %s lost", self.robot_id, self._shown_url, extra={"robot": self.robot_id})
        self.connected = False

    async def _nats_error(self, exc: Exception) -> None:
        log.warning("robot %s: NATS: %s", self.robot_id, exc or type(exc).__name__, extra={"robot": self.robot_id})

    async def _close(self, *, flush: bool) -> None:
        nc, self._nc = self._nc, None
        self.connected = False
        if nc is None:
            return
        if flush:
            with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError, OSError):
                await nc.flush(timeout=FLUSH_ON_STOP_S)
        with contextlib.suppress(nats.errors.Error, OSError):
            await nc.close()

    async def _on_message(self, msg: Msg) -> None:
        if self.silenced:
            self.ignored_silenced += 1
            return
        self._perform(self.core.receive(msg.subject, msg.data))

    async def _tick_forever(self) -> None:
        while True:
            try:
                self._perform(self.core.tick())
            except Exception:  # an adapter's read failing must not stop the heartbeat for good
                log.exception("robot %s: tick failed", self.robot_id, extra={"robot": self.robot_id})
            await asyncio.sleep(self._tick_s)

    async def _publish_forever(self) -> None:
        while True:
            send = await self._outbox.get()
            try:
                await self._publish(send)
            finally:
                self._outbox.task_done()

    async def _publish(self, send: Send) -> None:
        nc = self._nc
        if nc is not None and not nc.is_closed:
            try:
                # While nats-py reconnects it buffers this itself (up to its pending size).
                await nc.publish(send.subject, send.data)
                return
            except (nats.errors.Error, OSError) as exc:
                log.warning("robot %s: could not publish on %s: %s", self.robot_id, send.subject, exc,
                            extra={"robot": self.robot_id})
        if send.message_type in KEPT_WHILE_DOWN:
            if len(self._kept) == MAX_KEPT:
                self.not_sent[self._kept[0].message_type] += 1  # the oldest makes room
            self._kept.append(send)
        else:
            self.not_sent[send.message_type] += 1

    # ---- carrying out the core's actions -------------------------------------------------------

    def _perform(self, actions: list[Action]) -> None:
        """Carry out `actions` in order, synchronously (sends are queued in that order)."""
        for action in actions:
            if isinstance(action, Send):
                self._outbox.put_nowait(action)
            elif isinstance(action, SaveFencingToken):
                if self._state_dir is not None:
                    save_fencing_token(self._state_dir, self.robot_id, action.token)
            elif isinstance(action, Execute):
                command = action.command
                self._runs[command.id] = asyncio.create_task(self._execute(command), name=f"robot-cmd-{command.id}")
            elif isinstance(action, Abort):
                run = self._runs.pop(action.command_id, None)
                if run is not None:
                    log.info("robot %s: aborting command %s (%s)", self.robot_id, action.command_id, action.reason,
                             extra={"robot": self.robot_id, "command_id": action.command_id})
                    run.cancel()
            elif isinstance(action, ApplySettings):
                task = asyncio.create_task(self._apply(action), name=f"robot-settings-{action.request_id}")
                self._applying.add(task)
                task.add_done_callback(self._applying.discard)

    async def _execute(self, command: Command) -> None:
        def progress(fraction: float) -> None:
            self._perform(self.core.progress(command.id, fraction))

        try:
            detail = await self._adapter.execute(command, progress)
        except asyncio.CancelledError:
            return  # aborted: the core acked it when it asked for the abort
        except CommandFailed as exc:
            status, detail = AckStatus.FAILED, str(exc)
        except Exception as exc:  # an adapter's bug must not take the bridge down with it
            log.exception("robot %s: the adapter failed on command %s", self.robot_id, command.id,
                          extra={"robot": self.robot_id, "command_id": command.id})
            status, detail = AckStatus.FAILED, f"adapter error: {type(exc).__name__}: {exc}"
        else:
            status = AckStatus.FINISHED
        finally:
            if self._runs.get(command.id) is asyncio.current_task():
                del self._runs[command.id]
        self._perform(self.core.execution_ended(command.id, status, detail))

    async def _apply(self, action: ApplySettings) -> None:
        try:
            applied = await self._adapter.apply_settings(action.settings)
        except asyncio.CancelledError:
            return
        except SettingsRefused as exc:
            self._perform(self.core.settings_failed(action.request_id, str(exc)))
        except Exception as exc:  # as in _execute
            log.exception("robot %s: the adapter failed applying settings %s", self.robot_id, action.request_id,
                          extra={"robot": self.robot_id, "command_id": action.request_id})
            self._perform(self.core.settings_failed(action.request_id, f"adapter error: {type(exc).__name__}: {exc}"))
        else:
            self._perform(self.core.settings_applied(action.request_id, applied))

    async def _cancel_all(self) -> None:
        tasks = [*self._runs.values(), *self._applying]
        self._runs.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
