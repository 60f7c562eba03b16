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


async def create_pool(dsn: str, max_size: int, min_size: int = 2, *, statement_timeout_s: float = 0,
                      idle_in_transaction_timeout_s: float = 0) -> asyncpg.Pool:
    """A pool on `dsn`. The API and ingest each get their own, so nothing the API does can take
    the connections ingest needs. `statement_timeout_s` ends a runaway query;
    `idle_in_transaction_timeout_s` ends a transaction left open, e.g. a CSV export whose client
    stopped reading. 0 means no limit."""
    settings = {}
    if statement_timeout_s:
        settings["statement_timeout"] = str(int(statement_timeout_s * 1000))
    if idle_in_transaction_timeout_s:
        settings["idle_in_transaction_session_timeout"] = str(int(idle_in_transaction_timeout_s * 1000))
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, reset=_keep_session,
                                     server_settings=settings)
