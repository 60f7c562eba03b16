"""The enrolled edges and their public keys, as ingest needs them: cached, refreshed on a miss and
every few seconds, so a revocation takes effect without a restart."""
from __future__ import annotations

import time

import asyncpg

from hub.ingest.verify import EdgeKey
from shared.signing import key_id as compute_key_id
from shared.subjects import valid_edge_id

SQL_ALL_KEYS = """
SELECT edge_id, key_id, public_key, revoked_at IS NOT NULL AS revoked FROM edges WHERE public_key IS NOT NULL
"""
SQL_ADD_EDGE = """
INSERT INTO edges (edge_id, public_key, key_id, enrolled_at) VALUES ($1, $2, $3, now())
ON CONFLICT (edge_id) DO UPDATE SET public_key = excluded.public_key, key_id = excluded.key_id, revoked_at = NULL,
    enrolled_at = now()
"""


class EdgeAdminError(Exception):
    """Bad input to an edge admin command."""


async def add_edge(conn: asyncpg.Connection, edge_id: str, public_key: bytes) -> str:
    """Enrol (or re-key) an edge; returns the key id. Re-enrolling clears a revocation."""
    if not valid_edge_id(edge_id):
        raise EdgeAdminError(f"edge id {edge_id!r} must be lower-case letters, digits and dashes (max 63)")
    if len(public_key) != 32:
        raise EdgeAdminError(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    kid = compute_key_id(public_key)
    await conn.execute(SQL_ADD_EDGE, edge_id, public_key, kid)
    return kid


class EdgeKeyCache:
    """Edge keys loaded from PostgreSQL, at most `max_age_s` old."""

    def __init__(self, pool: asyncpg.Pool, max_age_s: float = 5.0) -> None:
        self._pool = pool
        self._max_age_s = max_age_s
        self._keys: dict[str, EdgeKey] = {}
        self._loaded_at = float("-inf")

    async def refresh(self) -> None:
        rows = await self._pool.fetch(SQL_ALL_KEYS)
        self._keys = {r["edge_id"]: EdgeKey(r["edge_id"], r["key_id"], bytes(r["public_key"]), r["revoked"]) for r in rows}
        self._loaded_at = time.monotonic()

    async def keys_for(self, edge_ids: set[str]) -> dict[str, EdgeKey]:
        """The current keys, reloaded when stale or when one of `edge_ids` is unknown."""
        stale = time.monotonic() - self._loaded_at > self._max_age_s
        if stale or not edge_ids <= self._keys.keys():
            await self.refresh()
        return self._keys
