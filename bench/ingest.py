"""Hub ingest throughput: signed segments in JetStream → verified, de-duplicated rows in PostgreSQL.

Four edges, each enrolled with its own key, publish pre-signed 256-envelope segments (what a
backlog drain sends) as fast as JetStream accepts them, while one hub — `python -m hub serve` in
its own process, so it does not share an event loop with the publishers — verifies and commits.
The clock runs from the first publish until PostgreSQL holds every event.

The edges publish straight to the hub's nats-server, not through leaf servers: this measures the
hub, and four extra nats-server processes relaying on a 2-core machine would take CPU from it
(the leaf hop is covered by the `forward` benchmark). The segments go out over PUBLISHERS
connections whatever the number of edges (`measure`, which `ingest_1000_edges` runs with 1,000),
so the publishing side costs the same and a change in the figure is the hub's.

run_all divides this figure by `pg_insert_raw` of the same run (`ingest_ratio`): the share of
PostgreSQL's bare insert rate for the same rows that ingest keeps after verifying, de-duplicating
and tracking seqs.

    BENCH ingest=<events per second> events/s target=10000 better=higher
"""
from __future__ import annotations

import asyncio
import sys
import time
from itertools import chain, zip_longest

import msgspec
from nats.aio.client import Client as NatsClient
from nats.js.api import PubAck

from _rig import Rig, committed_events, emit, run_main, wait_for
from edge.forwarder import SignedSegment, build_segment
from edge.journal import JournalRow
from shared import subjects
from shared.bodies import DemoTick
from shared.envelope import Envelope, JournalEpoch, Priority, encode_envelope, new_envelope
from shared.signing import Signer

TARGET = 10_000
EDGES = 4
PUBLISHERS = 4  # NATS connections publishing, whatever the number of edges
SEGMENT_EVENTS = 256
WINDOW = 64  # publishes in flight per connection, so JetStream is never waiting on the publisher
STALL_S = 30.0  # a window slot not freed by a PubAck for this long fails the run instead of hanging

# One journal epoch for the whole run, as one edge box keeps.
EPOCH = JournalEpoch("b" * 32, 1)


def edge_ids(name: str, count: int) -> list[str]:
    """The edges of the benchmark `name`."""
    return [f"bench-{name.replace('_', '-')}-{i}" for i in range(count)]


def total_events(quick: bool) -> int:
    """The measured events, shared by all edges whatever their number."""
    return 5_000 if quick else 200_000


def demo_envelope(seq: int) -> Envelope:
    """The benchmark's event: a demo tick as journalled with `seq` (its body, a few bytes of JSON,
    is what `pg_insert_raw` stores too)."""
    return msgspec.structs.replace(new_envelope("demo.tick", "bench", Priority.NORMAL, DemoTick(seq)), seq=seq)


def make_segments(edge: str, signer: Signer, first_seq: int, count: int) -> list[SignedSegment]:
    """`count` demo events with seqs from `first_seq`, as signed segments of SEGMENT_EVENTS."""
    rows = [JournalRow(seq, encode_envelope(demo_envelope(seq))) for seq in range(first_seq, first_seq + count)]
    return [
        build_segment(edge, EPOCH, subjects.LANE_EVT, rows[i:i + SEGMENT_EVENTS], signer)
        for i in range(0, len(rows), SEGMENT_EVENTS)
    ]


def spread(segments: dict[str, list[SignedSegment]], publishers: int) -> list[list[SignedSegment]]:
    """The edges dealt round-robin to `publishers`; each publisher's list takes its edges' segments
    in turn (as concurrent sites' arrive), every edge's in order."""
    edges = list(segments)
    return [
        [s for s in chain.from_iterable(zip_longest(*(segments[e] for e in edges[p::publishers]))) if s is not None]
        for p in range(min(publishers, len(edges)))
    ]


async def publish_all(nc: NatsClient, segments: list[SignedSegment]) -> None:
    """Publish the segments in order, each on its edge's lane, with up to WINDOW awaiting their PubAck."""
    js = nc.jetstream(domain=subjects.HUB_DOMAIN, publish_async_max_pending=WINDOW)
    pending = [
        await js.publish_async(subjects.edge_lane_subject(s.headers[subjects.H_EDGE], s.lane), s.payload,
                               headers=s.headers, wait_stall=STALL_S)
        for s in segments
    ]
    acks: list[PubAck] = await asyncio.wait_for(asyncio.gather(*pending), timeout=120)
    duplicates = sum(1 for ack in acks if ack.duplicate)
    if duplicates:
        raise RuntimeError(f"JetStream took {duplicates} segments for duplicates")


async def publish_spread(clients: list[NatsClient], segments: dict[str, list[SignedSegment]]) -> None:
    """Publish every edge's segments over `clients` at once (see `spread`)."""
    await asyncio.gather(*(publish_all(nc, part) for nc, part in zip(clients, spread(segments, len(clients)))))


async def measure(name: str, edge_count: int, target: float, quick: bool) -> None:
    """Time ingest of `total_events` from `edge_count` edges, each sending its share, and emit it
    as `name`. Enrolment, signing and one warm-up event per edge come before the clock."""
    edges = edge_ids(name, edge_count)
    per_edge = total_events(quick) // edge_count
    async with Rig(name) as rig:
        hub_nats = await rig.start_hub_nats()
        await rig.create_database()
        signers = await rig.enrol(edges)
        # Built before the clock starts: the figure is the hub's, not the signing edges'.
        warmup = {edge: make_segments(edge, signers[edge], 1, 1) for edge in edges}
        work = {edge: make_segments(edge, signers[edge], 2, per_edge) for edge in edges}
        hub = await rig.spawn_hub()
        clients = [await rig.connect(hub_nats.url, f"publisher-{i}") for i in range(PUBLISHERS)]
        pool = await rig.pool()

        async def committed_at_least(n: int) -> bool:
            return await committed_events(pool) >= n

        # One event per edge first: the hub takes its partitions, loads the edge keys and records
        # the edges' journal epochs before the clock starts, as a hub that has been running would have.
        await publish_spread(clients, warmup)
        await wait_for(lambda: committed_at_least(edge_count), timeout=60, what="the warm-up events", watch=[hub.process])

        total = edge_count * (1 + per_edge)
        _, batches_before = await hub.batch_totals()
        started = time.perf_counter()
        await publish_spread(clients, work)
        published = time.perf_counter() - started
        await wait_for(lambda: committed_at_least(total), timeout=60 if quick else 300,
                       what=f"{total} events in PostgreSQL", watch=[hub.process])
        elapsed = time.perf_counter() - started
        _, batches_after = await hub.batch_totals()
        count = await pool.fetchval("SELECT count(*) FROM events")
    if count != total:
        raise RuntimeError(f"PostgreSQL holds {count} events, expected {total}")
    measured = edge_count * per_edge
    emit(name, measured / elapsed, "events/s", target, "higher")
    print(f"{name}: {measured} events from {edge_count} edges in {sum(len(w) for w in work.values())} segments "
          f"committed in {elapsed:.2f} s (all in JetStream after {published:.2f} s), "
          f"{measured / max(1.0, batches_after - batches_before):.0f} events a transaction on average")


async def main(quick: bool) -> None:
    await measure("ingest", EDGES, TARGET, quick)


if __name__ == "__main__":
    sys.exit(run_main(__doc__ or "", main))
