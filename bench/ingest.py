"""Hub ingest throughput: signed segments in JetStream → verified, de-duplicated rows in PostgreSQL.

Four edges, each enrolled with its own key, publish pre-signed 256-envelope segments (what a
backlog drain sends) as fast as JetStream accepts them, while one hub — `python -m hub serve` in
its own process, so it does not share an event loop with the publishers — verifies and commits.
The clock runs from the first publish until PostgreSQL holds every event.

The edges publish straight to the hub's nats-server, not through leaf servers: this measures the
hub, and four extra nats-server processes relaying on a 2-core machine would take CPU from it
(the leaf hop is covered by the `forward` benchmark).

    BENCH ingest=<events per second> events/s target=10000 better=higher
"""
from __future__ import annotations

import asyncio
import sys
import time

import msgspec
from nats.aio.client import Client as NatsClient
from nats.js.api import PubAck

from _rig import Rig, committed_events, emit, run_main, wait_for
from edge.forwarder import SignedSegment, build_segment
from edge.journal import JournalRow
from shared import subjects
from shared.bodies import DemoTick
from shared.envelope import JournalEpoch, Priority, encode_envelope, new_envelope
from shared.signing import Signer

TARGET = 10_000
EDGES = [f"bench-ingest-{i}" for i in range(4)]
SEGMENT_EVENTS = 256
WINDOW = 64  # publishes in flight per edge, so JetStream is never waiting on the publisher
STALL_S = 30.0  # a window slot not freed by a PubAck for this long fails the run instead of hanging

# One journal epoch for the whole run, as one edge box keeps.
EPOCH = JournalEpoch("b" * 32, 1)


def make_segments(edge: str, signer: Signer, first_seq: int, count: int) -> list[SignedSegment]:
    """`count` demo events with seqs from `first_seq`, as signed segments of SEGMENT_EVENTS."""
    rows = [
        JournalRow(seq, encode_envelope(msgspec.structs.replace(
            new_envelope("demo.tick", "bench", Priority.NORMAL, DemoTick(seq)), seq=seq)))
        for seq in range(first_seq, first_seq + count)
    ]
    return [
        build_segment(edge, EPOCH, subjects.LANE_EVT, rows[i:i + SEGMENT_EVENTS], signer)
        for i in range(0, len(rows), SEGMENT_EVENTS)
    ]


async def publish_all(nc: NatsClient, edge: str, segments: list[SignedSegment], lane: str = subjects.LANE_EVT) -> None:
    """Publish the segments in order on `lane` with up to WINDOW awaiting their PubAck."""
    js = nc.jetstream(domain=subjects.HUB_DOMAIN, publish_async_max_pending=WINDOW)
    subject = subjects.edge_lane_subject(edge, lane)
    pending = [await js.publish_async(subject, s.payload, headers=s.headers, wait_stall=STALL_S) for s in segments]
    acks: list[PubAck] = await asyncio.wait_for(asyncio.gather(*pending), timeout=120)
    duplicates = sum(1 for ack in acks if ack.duplicate)
    if duplicates:
        raise RuntimeError(f"{edge}: JetStream took {duplicates} segments for duplicates")


async def main(quick: bool) -> None:
    per_edge = (5_000 if quick else 200_000) // len(EDGES)
    async with Rig("ingest") as rig:
        hub_nats = await rig.start_hub_nats()
        await rig.create_database()
        signers = await rig.enrol(EDGES)
        # Built before the clock starts: the figure is the hub's, not the signing edges'.
        warmup = {edge: make_segments(edge, signers[edge], 1, 1) for edge in EDGES}
        work = {edge: make_segments(edge, signers[edge], 2, per_edge) for edge in EDGES}
        hub = await rig.spawn_hub()
        clients = {edge: await rig.connect(hub_nats.url, edge) for edge in EDGES}
        pool = await rig.pool()

        async def committed_at_least(n: int) -> bool:
            return await committed_events(pool) >= n

        # One event per edge first: the hub takes its partitions and loads the edge keys before
        # the clock starts, as a hub that has been running would have.
        await asyncio.gather(*(publish_all(clients[e], e, warmup[e]) for e in EDGES))
        await wait_for(lambda: committed_at_least(len(EDGES)), timeout=60, what="the warm-up events", watch=[hub.process])

        total = len(EDGES) * (1 + per_edge)
        started = time.perf_counter()
        await asyncio.gather(*(publish_all(clients[e], e, work[e]) for e in EDGES))
        published = time.perf_counter() - started
        await wait_for(lambda: committed_at_least(total), timeout=60 if quick else 300,
                       what=f"{total} events in PostgreSQL", watch=[hub.process])
        elapsed = time.perf_counter() - started
        count = await pool.fetchval("SELECT count(*) FROM events")
    if count != total:
        raise RuntimeError(f"PostgreSQL holds {count} events, expected {total}")
    measured = len(EDGES) * per_edge
    rate = measured / elapsed
    emit("ingest", rate, "events/s", TARGET, "higher")
    print(f"ingest: {measured} events from {len(EDGES)} edges in {sum(len(w) for w in work.values())} segments "
          f"committed in {elapsed:.2f} s (all in JetStream after {published:.2f} s)")


if __name__ == "__main__":
    sys.exit(run_main(__doc__ or "", main))
