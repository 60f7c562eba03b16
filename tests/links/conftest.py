"""Fixtures for the Satel link tests: a journal, an emulated module (plain or encrypted), and links
running against it with short timeouts, stopped and checked at the end of each test."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client import REGISTRY

from edge.config import SatelPanelSettings
from edge.journal import Journal
from edge.links.satel import LinkState, SatelLink
from firmware_bridges.satel.emulator import SAMPLE_USER_CODE, SatelEmulator
from shared.envelope import Envelope, decode_envelope
from support.waiting import wait_until

KEY = "Integra1"
# The emulated panel's user code: what the person at the keypad or the local page types.
CODE = SAMPLE_USER_CODE
#: Test timings: fast polls, short timeouts and backoff, so failures show in well under a second.
FAST = {
    "poll_interval_s": 0.1,
    "request_timeout_s": 2.0,
    "reconnect_min_s": 0.05,
    "reconnect_max_s": 0.4,
    "command_timeout_s": 5.0,
}


async def journal_events(journal: Journal) -> list[Envelope]:
    """Every envelope in the journal (nothing forwards in these tests), in seq order."""
    rows = []
    for lane in ("evt", "alarm"):
        rows += await journal.read_unforwarded(lane, 0, 100_000, 1 << 30)
    return sorted((decode_envelope(row.envelope) for row in rows), key=lambda env: env.seq)


def sample(name: str, **labels: str) -> float:
    """A metric's current value (0 when it has no sample yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass
class RunningLink:
    """A link running in this event loop, and how to look at what it journaled."""

    link: SatelLink
    journal: Journal
    stop: asyncio.Event
    task: asyncio.Task[None]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def panel(self) -> str:
        return self.link.panel_id

    async def events(self, *kinds: str) -> list[Envelope]:
        """Journaled envelopes from this panel, optionally only of `kinds`."""
        found = [env for env in await journal_events(self.journal) if env.source == self.panel]
        return [env for env in found if not kinds or env.kind in kinds]

    async def wait_event(self, kind: str, count: int = 1, timeout: float = 10.0, **body: object) -> list[Envelope]:
        """Wait until `count` events of `kind` (whose body has the given fields) are journaled."""
        async def enough() -> list[Envelope] | None:
            matching = [
                env for env in await self.events(kind)
                if all(msgspec.json.decode(env.body).get(k) == v for k, v in body.items())
            ]
            return matching if len(matching) >= count else None

        return await wait_until(enough, timeout=timeout, what=f"{count} × {kind} {body or ''} from {self.panel}")

    async def wait_state(self, state: LinkState, timeout: float = 10.0) -> None:
        await wait_until(lambda: self.link.link_state is state, timeout=timeout,
                         what=f"link {self.panel} to be {state.value} (is {self.link.link_state.value}, "
                              f"last error {self.link.last_error})")

    async def stop_link(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    journal = await Journal.open(tmp_path / "journal.db", max_bytes=1 << 26, retention_s=3600)
    try:
        yield journal
    finally:
        await journal.close()


@pytest.fixture(params=[None, KEY], ids=["plain", "encrypted"])
def key(request: pytest.FixtureRequest) -> str | None:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def emulator(key: str | None) -> AsyncIterator[SatelEmulator]:
    async with SatelEmulator(port=0, key=key) as emu:
        yield emu


StartLink = Callable[..., Awaitable[RunningLink]]


@pytest.fixture
async def start_link(journal: Journal) -> AsyncIterator[StartLink]:
    """`await start_link(port, key=None, wait_up=True, **settings)`: a link with FAST timings and a
    unique panel id (so metrics start from zero), stopped after the test."""
    running: list[RunningLink] = []

    async def start(port: int, key: str | None = None, *, wait_up: bool = True, **settings: Any) -> RunningLink:
        config = SatelPanelSettings(**{
            "id": f"p{uuid.uuid4().hex[:10]}", "host": "127.0.0.1", "port": port, "integration_key": key,
            **FAST, **settings,
        })
        link = SatelLink(config, journal)
        stop = asyncio.Event()
        item = RunningLink(link, journal, stop, asyncio.create_task(link.run(stop)))
        running.append(item)
        if wait_up:
            await item.wait_state(LinkState.UP)
        return item

    yield start
    for item in running:
        item.stop.set()
    for item in running:
        await asyncio.wait_for(item.task, 10)
        assert item.link.link_state is LinkState.STOPPED
