"""The maintenance switch in PostgreSQL (migration 0023)."""
from __future__ import annotations

import asyncpg

from hub.system.mode import Maintenance

SQL_READ = "SELECT maintenance, reason, set_by, set_at FROM system_mode WHERE singleton"
SQL_IN_MAINTENANCE = "SELECT coalesce((SELECT maintenance FROM system_mode WHERE singleton), false)"
SQL_WRITE = """
INSERT INTO system_mode (singleton, maintenance, reason, set_by, set_at) VALUES (true, $1, $2, $3, $4)
ON CONFLICT (singleton) DO UPDATE
SET maintenance = EXCLUDED.maintenance, reason = EXCLUDED.reason, set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at
"""


async def read_maintenance(conn: asyncpg.Connection | asyncpg.Pool) -> Maintenance | None:
    """The switch as last set; None when it never was."""
    row = await conn.fetchrow(SQL_READ)
    return Maintenance(row["maintenance"], row["reason"], row["set_by"], row["set_at"]) if row else None


async def in_maintenance(conn: asyncpg.Connection | asyncpg.Pool) -> bool:
    """Whether the API is read-only now (one indexed read: asked by every changing request)."""
    return bool(await conn.fetchval(SQL_IN_MAINTENANCE))


async def write_maintenance(conn: asyncpg.Connection, maintenance: Maintenance) -> None:
    await conn.execute(SQL_WRITE, maintenance.on, maintenance.reason, maintenance.set_by, maintenance.set_at)
