"""PostgreSQL's bare insert rate for ingest's rows: the ceiling `ingest` and `lifecycle` work under.

The rows of the `ingest` benchmark (the same demo events from four edges, the columns and values
hub.ingest.commit writes: same ids, seqs, timestamps, a few bytes of JSON body) go into a scratch
table with the columns of `events` and nothing else (`LIKE events`: not partitioned, no index,
no key, no constraint but NOT NULL) in the same kind of scratch database, by plain multi-row
`INSERT ... VALUES` statements of STATEMENT_ROWS rows, COMMIT_ROWS rows to a transaction: no
verification, no de-duplication, no seq tracking, no lifecycle, no JetStream. The clock runs from
the first insert to the last commit; the rows are built before it.

COMMIT_ROWS is the most one ingest transaction holds: the hub commits whatever has arrived, up to
its pull batch of `ingest.batch` segments (of SEGMENT_EVENTS here). Draining a backlog as in the
ingest benchmarks its batches run to thousands of events (their mean is in ingest's human line),
at which a commit's fdatasync (see `fsync`) is a small share of a batch's time.

What limits it: PostgreSQL's per-row work (parsing the jsonb body, forming the tuple, writing
heap and WAL), the client encoding 15 parameters a row, and the two cores both share. run_all
divides `ingest` and `lifecycle` of the same run by it (`ingest_ratio`, target 0.6, and
`lifecycle_ratio`, target 0.3).

    BENCH pg_insert_raw=<rows per second> rows/s target=30000 better=higher
"""
from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from typing import Any

import asyncpg

from _rig import Rig, emit, run_main
from hub.config import IngestSettings
from ingest import EDGES, EPOCH, SEGMENT_EVENTS, demo_envelope, edge_ids, total_events
from shared import subjects

# A machine meeting this leaves room for both throughput targets at their ratio targets:
# ingest 10,000 / 0.6 ≈ 16,700 and lifecycle 8,000 / 0.3 ≈ 26,700 rows/s.
TARGET = 30_000
COMMIT_ROWS = IngestSettings().batch * SEGMENT_EVENTS
# The columns hub.ingest.commit inserts, in its order; the rest of `events` takes its defaults
# as there. asyncpg takes at most 32,767 parameters a statement, hence statements of 2,048 rows.
COLUMNS = ("id", "edge_id", "epoch", "seq", "ts", "minute", "kind", "source", "priority", "corr", "body", "lane",
           "occurrence", "ts_suspect", "received_at")
STATEMENT_ROWS = 2_048


def insert_sql(rows: int) -> str:
    """`INSERT ... VALUES` of `rows` rows of COLUMNS, numbered parameters."""
    width = len(COLUMNS)
    values = ", ".join(
        "(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")" for r in range(rows))
    return f"INSERT INTO raw_events ({', '.join(COLUMNS)}) VALUES {values}"


def event_rows(quick: bool) -> list[tuple[Any, ...]]:
    """The ingest benchmark's measured events as `events` rows, in COLUMNS order."""
    per_edge = total_events(quick) // EDGES
    rows = []
    for edge in edge_ids("ingest", EDGES):
        for seq in range(2, 2 + per_edge):
            env = demo_envelope(seq)
            rows.append((
                env.id, edge, EPOCH.id, seq, env.ts, env.ts.replace(second=0, microsecond=0), env.kind, env.source,
                env.priority.value, env.corr, bytes(env.body).decode(), subjects.LANE_EVT, env.occurrence, False,
            ))
    return rows


async def insert_all(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert `rows` COMMIT_ROWS to a transaction, STATEMENT_ROWS to a statement; each row gets
    its transaction's start as `received_at`, as ingest's get their batch's."""
    full = await conn.prepare(insert_sql(STATEMENT_ROWS))
    for start in range(0, len(rows), COMMIT_ROWS):
        async with conn.transaction():
            received_at = datetime.now(timezone.utc)
            batch = rows[start:start + COMMIT_ROWS]
            for i in range(0, len(batch), STATEMENT_ROWS):
                chunk = batch[i:i + STATEMENT_ROWS]
                args = [value for row in chunk for value in (*row, received_at)]
                if len(chunk) == STATEMENT_ROWS:
                    await full.fetch(*args)
                else:
                    await conn.execute(insert_sql(len(chunk)), *args)


async def main(quick: bool) -> None:
    rows = event_rows(quick)
    async with Rig("pg_insert_raw") as rig:
        await rig.create_database()
        pool = await rig.pool()
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE raw_events (LIKE events INCLUDING DEFAULTS)")
            started = time.perf_counter()
            await insert_all(conn, rows)
            elapsed = time.perf_counter() - started
        count = await pool.fetchval("SELECT count(*) FROM raw_events")
    if count != len(rows):
        raise RuntimeError(f"raw_events holds {count} rows, expected {len(rows)}")
    emit("pg_insert_raw", len(rows) / elapsed, "rows/s", TARGET, "higher")
    print(f"pg_insert_raw: {len(rows)} rows in {-(-len(rows) // COMMIT_ROWS)} transactions of up to {COMMIT_ROWS} "
          f"({STATEMENT_ROWS}-row statements) in {elapsed:.2f} s")


if __name__ == "__main__":
    sys.exit(run_main(__doc__ or "", main))
