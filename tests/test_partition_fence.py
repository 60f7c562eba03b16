"""Partition ownership is fenced (issue 11): a commit checks, inside its transaction, that this
process still holds the partition's lock; once the lock connection is gone, no batch of the old
owner commits, and its worker stops without acknowledging."""
from __future__ import annotations

from datetime import datetime, timezone

import asyncpg
import pytest

from hub.ingest.commit import commit_batch
from hub.ingest.partitions import Fence, PartitionLost, lock_key
from hub.ingest.verify import Accepted
from support.site import Site

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
UNIT = ("alarm", 3)


async def test_a_commit_after_the_lock_connection_dropped_commits_nothing(db: asyncpg.Pool, db_dsn: str) -> None:
    site = await Site(db).setup({"panel-1": "Bank"})
    owner = await asyncpg.connect(db_dsn)
    assert await owner.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(UNIT))
    fence = Fence(lock_key(UNIT), owner.get_server_pid())

    first = site.env("satel.zone.alarm", {"zone": 1}, T0)
    async with db.acquire() as conn:
        done = await commit_batch(conn, [Accepted(site.edge_id, "alarm", site.epoch, [first])], [], T0, fence=fence)
    assert done.stored == 1

    await owner.close()  # the lock connection drops: PostgreSQL frees the lock at once
    second = site.env("satel.zone.alarm", {"zone": 2}, T0)
    async with db.acquire() as conn:
        with pytest.raises(PartitionLost):
            await commit_batch(conn, [Accepted(site.edge_id, "alarm", site.epoch, [second])], [], T0, fence=fence)
    assert await db.fetchval("SELECT count(*) FROM events") == 1

    # Another hub takes the partition: its fence holds, the old one still does not.
    new_owner = await asyncpg.connect(db_dsn)
    try:
        assert await new_owner.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(UNIT))
        async with db.acquire() as conn:
            with pytest.raises(PartitionLost):
                await commit_batch(conn, [Accepted(site.edge_id, "alarm", site.epoch, [second])], [], T0, fence=fence)
            new_fence = Fence(lock_key(UNIT), new_owner.get_server_pid())
            await commit_batch(conn, [Accepted(site.edge_id, "alarm", site.epoch, [second])], [], T0, fence=new_fence)
        assert await db.fetchval("SELECT count(*) FROM events") == 2
    finally:
        await new_owner.close()

