"""An emulated panel with the edge's Satel link up on it, journaling into a fresh journal: what
the local page's tests serve their app over."""
from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from edge.config import SatelPanelSettings
from edge.journal import Journal
from edge.links.satel import LinkState, SatelLink
from firmware_bridges.satel.emulator import SatelEmulator
from support.waiting import wait_until


@asynccontextmanager
async def panel_link_up(tmp_path: Path) -> AsyncIterator[tuple[Journal, SatelEmulator, SatelLink]]:
    """The journal, the emulated panel and its link, once the link is up; stopped and closed after."""
    journal = await Journal.open(tmp_path / "journal.db", max_bytes=1 << 24, retention_s=3600)
    async with SatelEmulator(port=0) as emulator:
        settings = SatelPanelSettings(id=f"p{uuid.uuid4().hex[:10]}", host="127.0.0.1", port=emulator.port,
                                      poll_interval_s=0.1, request_timeout_s=2.0, reconnect_min_s=0.05,
                                      reconnect_max_s=0.4, command_timeout_s=5.0)
        link = SatelLink(settings, journal)
        stop = asyncio.Event()
        task = asyncio.create_task(link.run(stop))
        try:
            await wait_until(lambda: link.link_state is LinkState.UP, what="the link up")
            yield journal, emulator, link
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await journal.close()
