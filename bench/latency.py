"""End-to-end latency at a steady rate: journal append → row committed in PostgreSQL.

One edge (journal + Forwarder in this process, publishing through its leaf nats-server) produces
500 events/s on a fixed schedule; one hub (`python -m hub serve`, its own process) ingests them.
Each event's latency is `events.received_at − envelope.ts`: `ts` is stamped just before
`journal.append`, `received_at` is the `now()` of the hub's insert transaction, both UTC wall clock
on this machine. `now()` is the transaction's start, so the figure leaves out that transaction's
own insert and commit; the human line gives the hub's mean batch time, an upper bound on that.

run_all divides this figure by `fsync_p99_ms` of the same run (`latency_ratio`, target 10, the
two targets' ratio): the p99 in this disk's fdatasyncs, of which the path needs at least two
(the journal's and PostgreSQL's commit).

    BENCH latency_p99_ms=<p99 in ms> ms target=50 better=lower
"""
from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from _rig import Rig, committed_events, emit, percentile, run_main, wait_for
from edge.forwarder import Forwarder, ForwarderSettings
from edge.journal import Journal
from shared.bodies import DemoTick
from shared.envelope import Priority, new_envelope
from shared.subjects import LANE_EVT

TARGET_MS = 50.0
RATE = 500  # events per second
EDGE = "bench-latency"
SOURCE = "bench"  # the measured events; the warm-up event has another source


def summary(values_ms: list[float]) -> str:
    """p50, p99 and max, aligned for the stage table."""
    ordered = sorted(values_ms)
    return f"{percentile(ordered, 50):7.2f} {percentile(ordered, 99):7.2f} {ordered[-1]:7.2f}"


@dataclass
class Produced:
    """When each measured event became durable (wall clock, by envelope id), and how late the
    schedule woke up at worst (a sign the machine was busy)."""

    durable_at: dict[str, float] = field(default_factory=dict)
    worst_wake_lag_s: float = 0.0


async def produce(journal: Journal, count: int) -> Produced:
    """Append `count` events at RATE on absolute deadlines, so a late wake-up is caught up rather
    than carried forward as drift; each append runs on its own, as concurrent sources' would."""
    loop = asyncio.get_running_loop()
    produced = Produced()
    start = loop.time()
    appends: list[asyncio.Task[int]] = []
    for i in range(count):
        delay = start + i / RATE - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            produced.worst_wake_lag_s = max(produced.worst_wake_lag_s, -delay)
        # new_envelope stamps ts, the latency's start, right before the append is issued.
        env = new_envelope("demo.tick", SOURCE, Priority.NORMAL, DemoTick(i))
        task = asyncio.create_task(journal.append(env))
        task.add_done_callback(lambda _t, event_id=str(env.id): produced.durable_at.__setitem__(event_id, time.time()))
        appends.append(task)
    await asyncio.gather(*appends)
    return produced


def forwarded_at(journal_path: Path) -> dict[str, float]:
    """When the forwarder marked each row forwarded (just after its PubAck), by envelope id."""
    conn = sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT id, forwarded_at FROM journal WHERE forwarded_at IS NOT NULL"))
    finally:
        conn.close()


async def main(quick: bool) -> None:
    count = RATE * (2 if quick else 20)
    async with Rig("latency") as rig:
        await rig.start_hub_nats()
        await rig.create_database()
        signer = (await rig.enrol([EDGE]))[EDGE]
        edge_nats = await rig.start_edge_nats(EDGE)
        hub = await rig.spawn_hub()
        pool = await rig.pool()
        journal = await rig.open_journal()
        forwarder = Forwarder(EDGE, journal, signer, await rig.connect(edge_nats.url, EDGE), ForwarderSettings())
        forwarder.start()
        rig.defer(forwarder.stop)

        async def events_in_db(n: int) -> bool:
            return await committed_events(pool) >= n

        # One event through the whole path first, so the hub holds its partitions and knows the
        # edge's key before anything is measured.
        await journal.append(new_envelope("demo.tick", "warm-up", Priority.NORMAL, DemoTick(-1)))
        await wait_for(lambda: events_in_db(1), timeout=60, what="the warm-up event", watch=[hub.process])

        batch_sum, batch_count = await hub.batch_totals()
        produced = await produce(journal, count)
        await wait_for(lambda: events_in_db(1 + count), timeout=60,
                       what=f"{count} events in PostgreSQL", watch=[hub.process])
        batch_sum2, batch_count2 = await hub.batch_totals()
        await wait_for(lambda: journal.unforwarded[LANE_EVT] == 0, timeout=30, what="the last rows marked forwarded")
        marked = forwarded_at(rig.journal_path)
        rows = await pool.fetch(
            "SELECT id::text, extract(epoch FROM ts)::float8 AS ts, extract(epoch FROM received_at)::float8 AS received "
            "FROM events WHERE source = $1", SOURCE)
    if len(rows) != count:
        raise RuntimeError(f"PostgreSQL holds {len(rows)} measured events, expected {count}")
    committed = sorted((r["received"] - r["ts"]) * 1000 for r in rows)
    p99 = percentile(committed, 99)
    emit("latency_p99_ms", p99, "ms", TARGET_MS, "lower", decimals=2)
    batches = batch_count2 - batch_count
    mean_batch_ms = (batch_sum2 - batch_sum) / max(1.0, batches) * 1000
    stages = {
        "durable in the edge journal": [(produced.durable_at[r["id"]] - r["ts"]) * 1000 for r in rows],
        "PubAck'ed and marked forwarded": [(marked[r["id"]] - r["ts"]) * 1000 for r in rows],
        "committed in PostgreSQL (the figure)": committed,
    }
    print(f"latency: {count} events at {RATE}/s; ms from issuing the append until the event is")
    print(f"  {'':38} {'p50':>7} {'p99':>7} {'max':>7}")
    for stage, values in stages.items():
        print(f"  {stage:38} {summary(values)}")
    print(f"latency: hub batches {batches:.0f}, mean {mean_batch_ms:.2f} ms (verify + commit + ack); "
          f"schedule woke up at worst {produced.worst_wake_lag_s * 1000:.1f} ms late")


if __name__ == "__main__":
    sys.exit(run_main(__doc__ or "", main))
