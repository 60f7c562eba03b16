"""Durable journal appends per second from concurrent producers.

Eight producers (as an edge's device links would be) each append one envelope at a time and await
it — durable on return — before the next; their appends share group commits. The journal lives in
a temporary folder on the same disk as everything else (not tmpfs: fsync has to cost what it costs).

    BENCH append=<appends per second> events/s target=5000 better=higher
"""
from __future__ import annotations

import asyncio
import sys
import time

from _rig import Rig, emit, run_main
from edge.journal import Journal
from shared.bodies import DemoTick
from shared.envelope import Envelope, Priority, new_envelope

TARGET = 5000
PRODUCERS = 8


async def _produce(journal: Journal, envelopes: list[Envelope]) -> None:
    for env in envelopes:
        await journal.append(env)


async def main(quick: bool) -> None:
    total = 2_000 if quick else 40_000
    per_producer = total // PRODUCERS
    # Envelopes are made up front so the figure is the journal's, not envelope construction's.
    work = [
        [new_envelope("demo.tick", f"producer-{p}", Priority.NORMAL, DemoTick(i)) for i in range(per_producer)]
        for p in range(PRODUCERS)
    ]
    async with Rig("append") as rig:
        journal = await rig.open_journal()
        started = time.perf_counter()
        await asyncio.gather(*(_produce(journal, envelopes) for envelopes in work))
        elapsed = time.perf_counter() - started
        appended = journal.last_seq
    if appended != PRODUCERS * per_producer:
        raise RuntimeError(f"journal holds {appended} rows, expected {PRODUCERS * per_producer}")
    rate = appended / elapsed
    emit("append", rate, "events/s", TARGET, "higher")
    print(f"append: {appended} appends from {PRODUCERS} producers in {elapsed:.2f} s "
          f"({elapsed / appended * PRODUCERS * 1000:.2f} ms per append as a producer sees it)")


if __name__ == "__main__":
    sys.exit(run_main(__doc__ or "", main))
