"""User codes an admin stores per panel (partition 0) or per partition, sealed at rest with the
hub's secret box (its key id inside, so `python -m hub secrets rotate` reseals them). A stored code
is only ever opened to be sealed again, to one edge, inside one command."""
from __future__ import annotations

from datetime import datetime

import asyncpg

from hub.secret_box import SecretBox

SQL_CODES = "SELECT partition, code_enc FROM panel_user_codes WHERE panel_id = $1"
SQL_STORED = "SELECT partition, updated_by, updated_at FROM panel_user_codes WHERE panel_id = $1 ORDER BY partition"
SQL_UPSERT = """
INSERT INTO panel_user_codes (panel_id, partition, code_enc, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (panel_id, partition) DO UPDATE
SET code_enc = excluded.code_enc, updated_by = excluded.updated_by, updated_at = excluded.updated_at
"""
SQL_DELETE = "DELETE FROM panel_user_codes WHERE panel_id = $1 AND partition = $2"


def user_code_aad(panel_id: int, partition: int) -> bytes:
    """The associated data a stored code is sealed with: moved to another panel or partition's
    row, it does not open."""
    return f"panel_user_code:{panel_id}:{partition}".encode()


async def stored_codes(conn: asyncpg.Connection | asyncpg.Pool, box: SecretBox, panel_id: int) -> dict[int, str]:
    """partition (0: the whole panel) → code, opened."""
    return {r["partition"]: box.decrypt(bytes(r["code_enc"]), user_code_aad(panel_id, r["partition"])).decode("ascii")
            for r in await conn.fetch(SQL_CODES, panel_id)}


async def list_stored(conn: asyncpg.Connection | asyncpg.Pool, panel_id: int) -> list[asyncpg.Record]:
    """Which partitions have a stored code, who set it and when (never the code)."""
    return await conn.fetch(SQL_STORED, panel_id)


async def store_code(conn: asyncpg.Connection, box: SecretBox, panel_id: int, partition: int, code: str,
                     actor: str, now: datetime) -> None:
    """Store (or replace) the code for a panel (partition 0) or one partition."""
    await conn.execute(SQL_UPSERT, panel_id, partition, box.encrypt(code.encode("ascii"), user_code_aad(panel_id, partition)),
                       actor, now)


async def delete_code(conn: asyncpg.Connection, panel_id: int, partition: int) -> bool:
    """Forget a stored code; False when there was none."""
    return await conn.execute(SQL_DELETE, panel_id, partition) != "DELETE 0"
