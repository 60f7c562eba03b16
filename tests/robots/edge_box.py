"""An edge box for the robot link's tests: its real nats-server with robot logins (and, when asked,
the hub's server with the box linked to it), a real journal, the agent's NATS connection, and the
robot link, relay and command runner run in this process."""
from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import nats

from edge.commands import CommandRunner
from edge.config import RobotSettings, RobotsSettings
from edge.hub_clock import HubClock
from edge.journal import Journal
from edge.leaf_credentials import EdgeNatsAuth
from edge.links.robots import RobotLink, RobotRelay
from hub.commands.publisher import consumer_config, ensure_commands_stream
from shared import robots as wire
from shared import subjects
from shared.envelope import Envelope, decode_body, decode_envelope
from support.secure_nats import SecureNats, Site
from support.waiting import wait_until
from robots.scripted_robot import ScriptedRobot

EDGE = "site-r"
R1, R2 = "RB-001", "RB-002"
STRANGER = "RB-009"  # has a login on the box's server, but is not in the edge's config


def robot_settings(**overrides: object) -> RobotsSettings:
    """Short intervals, so the tests wait little."""
    values: dict[str, object] = {"robots": [RobotSettings(R1, name="north", telemetry_hz=2.0), RobotSettings(R2)],
                                 "missed_heartbeats": 3, "poll_interval_s": 0.05, "query_timeout_s": 0.5,
                                 "command_retry_s": 0.2}
    return RobotsSettings(**{**values, **overrides})  # type: ignore[arg-type]


class Box:
    """The box; `start()` its server (and the hub's with `hub=True`), `run_agent()` the link."""

    def __init__(self, root: Path, *, hub: bool = False, journal_max_bytes: int = 64 * 1024 * 1024) -> None:
        self.root = root
        self.journal_max_bytes = journal_max_bytes
        self.secure = SecureNats(root)
        self.with_hub = hub
        # The robots' logins before the server's config is made from the folder.
        auth = EdgeNatsAuth(root / "edge-nats" / EDGE, EDGE)
        self.credentials = {robot: auth.add_robot(robot) for robot in (R1, R2, STRANGER)}
        self.site: Site = self.secure.site(EDGE)
        self.journal: Journal | None = None
        self.nc: nats.NATS | None = None
        self.hub: nats.NATS | None = None
        self.link: RobotLink | None = None
        self.relay: RobotRelay | None = None
        self.runner: CommandRunner | None = None
        self.hub_clock = HubClock()
        self._stop: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._robots: list[ScriptedRobot] = []

    @property
    def url(self) -> str:
        return self.site.server.url

    async def start(self) -> "Box":
        if self.with_hub:
            await self.secure.start()
            await self.secure.ensure_site(EDGE)
            self.hub = await self.secure.connect_hub()
            await ensure_commands_stream(self.hub)
            await self.hub.jetstream().add_consumer(subjects.COMMANDS_STREAM, consumer_config(EDGE))
        else:
            await self.site.server.start()  # no hub: the box's server keeps trying its leaf link
        self.journal = await Journal.open(self.root / "journal.db", max_bytes=self.journal_max_bytes, retention_s=3600)
        self.nc = await nats.connect(self.url, **self.site.auth.agent_login())  # type: ignore[arg-type]
        return self

    async def run_agent(self, settings: RobotsSettings | None = None, *, commands: bool = False) -> RobotLink:
        """The robot link and relay (and, with `commands`, the command runner pulling the hub)."""
        assert self.nc is not None and self.journal is not None
        settings = settings or robot_settings()
        self._stop = asyncio.Event()
        self.relay = RobotRelay(EDGE, self.nc, self.journal, settings, self.hub_clock)
        self.link = RobotLink(EDGE, settings, self.journal, self.nc, self.relay)
        self._tasks = [asyncio.create_task(self.link.run(self._stop)), asyncio.create_task(self.relay.run(self._stop))]
        if commands:
            self.runner = CommandRunner(EDGE, self.nc, self.journal, b"\0" * 32, {}, self.hub_clock, self.relay)
            self._tasks.append(asyncio.create_task(self.runner.run(self._stop)))
        link = self.link
        await wait_until(lambda: link.streams_ready, timeout=10, what="the robot streams")
        return link

    async def stop_agent(self) -> None:
        if self._stop is not None:
            self._stop.set()
            await asyncio.gather(*self._tasks)
            self._tasks, self._stop = [], None

    async def robot(self, robot_id: str = R1, **options: object) -> ScriptedRobot:
        robot = await ScriptedRobot(self.url, self.credentials[robot_id], **options).connect()  # type: ignore[arg-type]
        self._robots.append(robot)
        return robot

    async def events(self, kind: str = "") -> list[Envelope]:
        """Journaled envelopes whose kind starts with `kind`, in seq order."""
        assert self.journal is not None
        rows = [row for lane in subjects.LANES for row in await self.journal.read_unforwarded(lane, 0, 100_000, 1 << 30)]
        envelopes = sorted((decode_envelope(r.envelope) for r in rows), key=lambda e: e.seq)
        return [e for e in envelopes if e.kind.startswith(kind)]

    async def bodies(self, kind: str) -> list[msgspec.Struct]:
        return [decode_body(e) for e in await self.events(kind)]

    async def wait_for(self, kind: str, count: int = 1, timeout: float = 10) -> list[Envelope]:
        async def enough() -> list[Envelope] | None:
            found = await self.events(kind)
            return found if len(found) >= count else None

        return await wait_until(enough, timeout=timeout, what=f"{count} × {kind}")

    async def give(self, command: wire.RobotCommand, copies: int = 1) -> None:
        """The hub publishes a robot command for this box (copies: as a redelivery would)."""
        assert self.hub is not None
        for _ in range(copies):
            await self.hub.jetstream().publish(subjects.edge_commands(EDGE), wire.encode_command(command),
                                               headers={wire.H_COMMAND_KIND: wire.ROBOT_COMMAND_KIND})

    async def commands_settled(self) -> bool:
        """The hub's consumer for this box holds no command waiting or unacknowledged."""
        assert self.hub is not None
        info = await self.hub.jetstream().consumer_info(subjects.COMMANDS_STREAM, subjects.command_consumer(EDGE))
        return info.num_pending == 0 and info.num_ack_pending == 0

    async def close(self) -> None:
        await self.stop_agent()
        for robot in self._robots:
            await robot.close()
        for client in (self.nc, self.hub):
            if client is not None:
                await client.close()
        if self.journal is not None:
            await self.journal.close()
        if self.with_hub:
            await self.secure.stop()
        else:
            self.site.server.stop()
