"""The synthetic probe on a probe edge (docs/architecture.md §5 "Synthetic probe"): a `probe.tick`
journaled at start and every `probe.interval_s`, HIGH so it takes the alarm lane, the path a real
alarm takes. The hub times it from its journal time to its delivery on the live stream and raises a
SYSTEM alarm when probes stop coming; probe events never reach operators' queues."""
from __future__ import annotations

import asyncio
import logging

from edge.journal import Journal, JournalError
from shared.backoff import sleep_or_stop
from shared.bodies import PROBE_KIND, ProbeTick
from shared.clock import SYSTEM_CLOCK, Clock
from shared.envelope import Priority, new_envelope

log = logging.getLogger("vigil.edge.probe")


async def run_probe(journal: Journal, stop: asyncio.Event, interval_s: float, clock: Clock = SYSTEM_CLOCK) -> None:
    """Journal a probe now and every `interval_s` until stopped. A probe the journal refuses is
    logged and skipped: the hub's missing-probe alarm is how that shows."""
    n = 0
    while True:
        n += 1
        env = new_envelope(PROBE_KIND, "probe", Priority.HIGH, ProbeTick(n, interval_s), clock=clock)
        try:
            seq = await journal.append(env)
        except JournalError as exc:
            log.error("probe %d not journaled: %s", n, exc, extra={"event_id": str(env.id)})
        else:
            log.debug("probe %d journaled as seq %d", n, seq, extra={"event_id": str(env.id), "seq": seq})
        if await sleep_or_stop(interval_s, stop):
            return
