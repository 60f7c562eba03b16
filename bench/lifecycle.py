"""Ingest with the alarm lifecycle on: enrichment, bundling and outbox in the insert transaction.

5,000 objects each have a panel and an open alarm bundle. Four edges publish pre-signed segments
of zone alarms spread over those panels (so nearly every event joins an open bundle, the case
that costs a lock and an update), and one hub subprocess verifies, stores, bundles and writes the
outbox. The clock runs from the first publish until every event is committed.

run_all divides this figure by `pg_insert_raw` of the same run (`lifecycle_ratio`, target 0.3):
the share of PostgreSQL's bare insert rate for such rows that ingest keeps with the lifecycle on.

    BENCH lifecycle=<events per second> events/s target=8000 better=higher
"""
from __future__ import annotations

import random
import sys
import time
from datetime import datetime, timezone

import msgspec

from _rig import Rig, committed_events, emit, run_main, wait_for
from edge.forwarder import SignedSegment, build_segment
from edge.journal import JournalRow
from ingest import PUBLISHERS, publish_spread
from shared import subjects
from shared.envelope import Envelope, JournalEpoch, Priority, encode_envelope
from shared.ids import uuid7
from shared.signing import Signer

TARGET = 8_000
EDGES = [f"bench-life-{i}" for i in range(4)]
OBJECTS = 5_000
SEGMENT_EVENTS = 256

SQL_OBJECTS = "INSERT INTO objects (name) SELECT 'object ' || i FROM generate_series(1, $1) i"
SQL_PANELS = """
INSERT INTO panels (object_id, edge_id, source)
SELECT o.id, ($1::text[])[1 + (o.id % $2)], 'panel-' || o.id FROM objects o
"""
SQL_BUNDLES = """
INSERT INTO bundle_alarms (object_id, group_key, alarm_type, priority, first_event_at, last_event_at, event_count,
                           edge_id, source)
SELECT p.object_id, 'object:' || p.object_id, 'BURGLARY', 'HIGH', $1, $1, 1, p.edge_id, p.source FROM panels p
"""

# One journal epoch for the whole run, as one edge box keeps.
EPOCH = JournalEpoch("b" * 32, 1)


def make_segments(edge: str, signer: Signer, panels: list[str], first_seq: int, count: int,
                  rng: random.Random, zones: dict[str, int]) -> list[SignedSegment]:
    """`count` zone alarms on random panels of this edge; each (panel, zone) at most once across
    calls sharing `zones`, so every event is a fresh alarm on its own zone (a state row, a history row)."""
    now = datetime.now(timezone.utc)
    rows = []
    for seq in range(first_seq, first_seq + count):
        panel = rng.choice(panels)
        zones[panel] = zones.get(panel, 0) + 1
        env = Envelope(id=uuid7(), seq=seq, ts=now, kind="satel.zone.alarm", source=panel, priority=Priority.CRITICAL,
                       body=msgspec.Raw(b'{"zone":%d}' % zones[panel]))
        rows.append(JournalRow(seq, encode_envelope(env)))
    return [build_segment(edge, EPOCH, subjects.LANE_ALARM, rows[i:i + SEGMENT_EVENTS], signer)
            for i in range(0, len(rows), SEGMENT_EVENTS)]


async def main(quick: bool) -> None:
    per_edge = (5_000 if quick else 100_000) // len(EDGES)
    rng = random.Random(7)
    async with Rig("lifecycle") as rig:
        hub_nats = await rig.start_hub_nats()
        await rig.create_database()
        signers = await rig.enrol(EDGES)
        pool = await rig.pool()
        await pool.execute(SQL_OBJECTS, OBJECTS)
        await pool.execute(SQL_PANELS, EDGES, len(EDGES))
        await pool.execute(SQL_BUNDLES, datetime.now(timezone.utc))
        panels = {e: [r["source"] for r in await pool.fetch("SELECT source FROM panels WHERE edge_id = $1", e)]
                  for e in EDGES}
        open_bundles = await pool.fetchval("SELECT count(*) FROM bundle_alarms WHERE status = 'NEW'")
        zones: dict[str, int] = {}
        warmup = {e: make_segments(e, signers[e], panels[e], 1, 1, rng, zones) for e in EDGES}
        work = {e: make_segments(e, signers[e], panels[e], 2, per_edge, rng, zones) for e in EDGES}
        hub = await rig.spawn_hub()
        clients = [await rig.connect(hub_nats.url, f"publisher-{i}") for i in range(PUBLISHERS)]

        async def committed_at_least(n: int) -> bool:
            return await committed_events(pool) >= n

        await publish_spread(clients, warmup)
        await wait_for(lambda: committed_at_least(len(EDGES)), timeout=60, what="the warm-up events", watch=[hub.process])
        total = len(EDGES) * (1 + per_edge)
        started = time.perf_counter()
        await publish_spread(clients, work)
        await wait_for(lambda: committed_at_least(total), timeout=60 if quick else 300,
                       what=f"{total} events bundled in PostgreSQL", watch=[hub.process])
        elapsed = time.perf_counter() - started
        linked = await pool.fetchval("SELECT count(*) FROM bundle_events")
        bundles = await pool.fetchval("SELECT count(*) FROM bundle_alarms")
        outbox = await pool.fetchval("SELECT count(*) FROM outbox")
    if linked != total:
        raise RuntimeError(f"{linked} events linked to bundles, expected {total}")
    measured = len(EDGES) * per_edge
    emit("lifecycle", measured / elapsed, "events/s", TARGET, "higher")
    print(f"lifecycle: {measured} alarms over {open_bundles} open bundles committed in {elapsed:.2f} s; "
          f"{bundles} bundles, {outbox} outbox rows")


if __name__ == "__main__":
    sys.exit(run_main(__doc__ or "", main))
