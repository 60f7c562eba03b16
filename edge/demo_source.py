"""A stand-in device until the real links exist: appends one `demo.tick` a second."""
from __future__ import annotations

import asyncio
import logging

from edge.journal import Journal, JournalError
from shared.backoff import sleep_or_stop
from shared.clock import SYSTEM_CLOCK, Clock
from shared.bodies import DemoTick
from shared.envelope import Priority, new_envelope

log = logging.getLogger("vigil.edge.demo")


async def run_demo_source(journal: Journal, stop: asyncio.Event, interval_s: float, clock: Clock = SYSTEM_CLOCK) -> None:
    """Append a tick every `interval_s` until stopped."""
    n = 0
    while not await sleep_or_stop(interval_s, stop):
        n += 1
        env = new_envelope("demo.tick", "demo", Priority.LOW, DemoTick(n), clock=clock)
        try:
            seq = await journal.append(env)
        except JournalError as exc:
            log.error("demo tick %d not stored: %s", n, exc, extra={"event_id": env.id})
            continue
        log.debug("demo tick %d stored as seq %d", n, seq, extra={"event_id": env.id, "seq": seq})
