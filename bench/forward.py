"""Backlog drain: how fast one edge's forwarder empties its journal into the hub's JetStream.

The journal is filled first (a WAN outage's worth of rows, 1 in 100 on the alarm lane), then the
Forwarder starts against a real topology — edge leaf nats-server → hub nats-server with the
VIGIL_EVENTS stream — and the clock runs until every row has been PubAck'ed and marked forwarded.
No hub ingest runs: this is the edge's side of the path only.

    BENCH forward=<rows per second> events/s target=20000 better=higher
"""
from __future__ import annotations

import asyncio
import sys
import time

from _rig import Rig, emit, run_main, wait_for
from edge.forwarder import Forwarder, ForwarderSettings
from edge.journal import Journal
from hub.ingest.consumer import ensure_streams
from shared import subjects
from shared.bodies import DemoTick
from shared.envelope import Priority, new_envelope
from shared.signing import Signer

TARGET = 20_000
EDGE = "bench-forward"
FILL_CHUNK = 2_000
ALARM_EVERY = 100


async def _fill(journal: Journal, total: int) -> None:
    """Append the backlog quickly: FILL_CHUNK concurrent appends share one group commit."""
    for start in range(0, total, FILL_CHUNK):
        await asyncio.gather(*(
            journal.append(new_envelope(
                "demo.tick", "bench", Priority.HIGH if i % ALARM_EVERY == 0 else Priority.NORMAL, DemoTick(i)))
            for i in range(start, min(total, start + FILL_CHUNK))
        ))


async def main(quick: bool) -> None:
    total = 5_000 if quick else 100_000
    async with Rig("forward") as rig:
        hub_nats = await rig.start_hub_nats()
        await ensure_streams(await rig.connect(hub_nats.url, "bench-admin"))
        edge_nats = await rig.start_edge_nats(EDGE)
        journal = await rig.open_journal()
        await _fill(journal, total)
        backlog = dict(journal.unforwarded)
        # Nobody verifies the signatures here, but the forwarder signs every segment as it always does.
        forwarder = Forwarder(EDGE, journal, Signer.generate(), await rig.connect(edge_nats.url, EDGE), ForwarderSettings())
        started = time.perf_counter()
        forwarder.start()
        rig.defer(forwarder.stop)
        # Polling an in-memory counter is nearly free, so it can be fine-grained.
        await wait_for(lambda: all(n == 0 for n in journal.unforwarded.values()), timeout=60 if quick else 300,
                       what="the backlog to drain", interval=0.005)
        elapsed = time.perf_counter() - started
        errors = dict(forwarder.last_error)
    rate = total / elapsed
    emit("forward", rate, "events/s", TARGET, "higher")
    print(f"forward: {total} rows ({backlog[subjects.LANE_EVT]} evt, {backlog[subjects.LANE_ALARM]} alarm) "
          f"acknowledged and marked in {elapsed:.2f} s through the leaf node")
    if errors:
        # A retried segment still counts (the hub de-duplicates), but the figure was disturbed.
        print(f"forward: publishes failed and were retried during the run: {errors}")


if __name__ == "__main__":
    sys.exit(run_main(__doc__ or "", main))
