"""Many sites return at once: 100 edges, each with 5,000 rows buffered through an outage, start
forwarding at the same moment; how long until the hub has committed all 500,000, and how late the
CRITICAL alarms raised during that catch-up arrive.

What is real: each edge's SQLite journal (fsynced appends), its Forwarder with the production
settings (segments, window, the `evt` lane's rate cap, real Ed25519 signing), the hub's nats-server
with VIGIL_EVENTS, and one hub (`python -m hub serve`, its own process) verifying and committing
into PostgreSQL. What is simulated, because 100 agents and 100 nats-servers do not fit a 2-core
machine beside the hub being measured: the 100 edges run in this one process (as
bench/ingest_1000_edges does), and there are no leaf servers — each edge's forwarder has its own
connection straight to the hub's nats-server (as bench/ingest's publishers do; the leaf hop is
in bench/forward and bench/outage). The outage is the forwarders stopped while the journals fill
(bench/outage.warm_up); the return is new forwarders started together.

`catchup_100_edges_s` runs from that start until PostgreSQL holds every backlog row. Its target is
what the hub's ingest rate allows: 500,000 rows at `ingest_1000_edges`'s target (8,000 events/s,
ingest from many edges at once) is 62.5 s. The forwarders' pacing (5,000 events/s per edge) does
not lower that bound: 100 edges offer far more than the hub takes, and JetStream holds the rest.
`catchup_alarm_p99_ms` is the p99 over CRITICAL alarms raised every ALARM_EVERY_S, round the
edges, from just before the append until a poll of PostgreSQL finds them (bench/outage.AlarmWatch).

    BENCH catchup_100_edges_s=<seconds> s target=62.5 better=lower
    BENCH catchup_alarm_p99_ms=<p99, ms> ms target=2000 better=lower
"""
from __future__ import annotations

import asyncio
import sys
import time

import ingest
from _rig import Rig, committed_events, emit, percentile, run_main, wait_for
from edge.forwarder import Forwarder
from edge.journal import Journal
from outage import AlarmWatch, fill, warm_up

EDGES = 100
PER_EDGE = 5_000
TARGET_S = EDGES * PER_EDGE / (0.8 * ingest.TARGET)  # 62.5 s at ingest_1000_edges' target rate
TARGET_ALARM_MS = 2_000.0
ALARM_EVERY_S = 0.1


async def main(quick: bool) -> None:
    edges = [f"bench-catchup-{i}" for i in range(10 if quick else EDGES)]
    per_edge = 300 if quick else PER_EDGE
    async with Rig("catchup") as rig:
        hub_nats = await rig.start_hub_nats()
        await rig.create_database()
        signers = await rig.enrol(edges)
        hub = await rig.spawn_hub()
        pool = await rig.pool()
        journals: dict[str, Journal] = {}
        for edge in edges:
            journals[edge] = await Journal.open(rig.root / f"{edge}.db", max_bytes=1 << 30, retention_s=3600)
            rig.defer(journals[edge].close)
        clients = {edge: await rig.connect(hub_nats.url, edge) for edge in edges}
        await warm_up(journals, {e: Forwarder(e, journals[e], signers[e], clients[e]) for e in edges}, pool,
                      [hub.process])

        fill_started = time.perf_counter()
        for journal in journals.values():
            await fill(journal, per_edge)
        filled_s = time.perf_counter() - fill_started
        forwarders = {e: Forwarder(e, journals[e], signers[e], clients[e]) for e in edges}
        watch = AlarmWatch(pool)
        stop_polling = asyncio.Event()
        poller = asyncio.create_task(watch.poll(stop_polling))
        total = len(edges) * (1 + per_edge)
        started = time.time()  # the database's clock too: received_at is compared with it
        for forwarder in forwarders.values():
            forwarder.start()
            rig.defer(forwarder.stop)
        # Alarms round the edges while the backlogs drain (a few at least, even when short).
        n = 0
        while n < 5 or await committed_events(pool) < total + n:
            await watch.raise_alarm(journals[edges[n % len(edges)]], n)
            n += 1
            await asyncio.sleep(ALARM_EVERY_S)
            hub.process.check_alive()

        async def all_in() -> bool:
            return await committed_events(pool) >= total + n

        await wait_for(all_in, timeout=60 if quick else 400, what="every backlog and alarm", watch=[hub.process])
        stop_polling.set()
        await asyncio.wait_for(poller, timeout=30)
        watch.read_acks([str(rig.root / f"{edge}.db") for edge in edges])
        # When the last backlog row's transaction ran (the loop above looks only every ALARM_EVERY_S).
        last = await pool.fetchval("SELECT extract(epoch FROM max(received_at))::float8 FROM events "
                                   "WHERE source = 'backlog'")
        first = await pool.fetchval("SELECT extract(epoch FROM min(received_at))::float8 FROM events "
                                    "WHERE source = 'backlog'")
        errors = {e: f.last_error for e, f in forwarders.items() if f.last_error}
    elapsed = last - started
    alarms = watch.sorted_ms()
    emit("catchup_100_edges_s", elapsed, "s", TARGET_S, "lower", decimals=2)
    emit("catchup_alarm_p99_ms", percentile(alarms, 99), "ms", TARGET_ALARM_MS, "lower")
    rows = len(edges) * per_edge
    print(f"catchup: {len(edges)} edges × {per_edge} rows ({rows} in all, journals filled in {filled_s:.1f} s) "
          f"committed {elapsed:.1f} s after the forwarders started ({rows / max(1e-3, last - first):.0f} events/s "
          f"from the first commit to the last); {len(alarms)} CRITICAL alarms during it: {watch.stages()}")
    if errors:
        print(f"catchup: publishes failed and were retried during the run: {errors}")


if __name__ == "__main__":
    sys.exit(run_main(__doc__ or "", main))
