"""The hub's PostgreSQL connection pool.

Pooled connections never carry session state: session advisory locks, LISTEN and SET live on
dedicated connections (migrations, partition ownership), and transactions are rolled back by
asyncpg itself on release. So the pool skips asyncpg's default reset query on release, a round
trip that doubled the cost of every short query on the API's hot path.
"""
from __future__ import annotations

import asyncpg


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Nothing to undo: see the module docstring."""


async def create_pool(dsn: str, max_size: int, min_size: int = 2) -> asyncpg.Pool:
    """A pool on `dsn` for request and ingest work."""
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, reset=_keep_session)
