"""`Idempotency-Key` on state-changing POSTs: a retry with the same key and body gets the first
answer again; the same key with another body is refused (422). Kept in PostgreSQL for 24 h, so
a retry that lands on another hub process is recognised too."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import asyncpg

TTL_HOURS = 24
MAX_KEY_LENGTH = 200

SQL_CLAIM = """
INSERT INTO idempotency_keys (user_id, key, method, path, body_hash)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (user_id, key) DO NOTHING
RETURNING key
"""
SQL_EXISTING = """
SELECT method, path, body_hash, status, response, content_type, created_at > now() - make_interval(hours => $3) AS fresh
FROM idempotency_keys WHERE user_id = $1 AND key = $2
"""
SQL_REPLACE_STALE = """
UPDATE idempotency_keys SET method = $3, path = $4, body_hash = $5, status = NULL, response = NULL,
    content_type = NULL, created_at = now()
WHERE user_id = $1 AND key = $2 AND created_at <= now() - make_interval(hours => $6)
RETURNING key
"""
SQL_STORE = """
UPDATE idempotency_keys SET status = $3, response = $4, content_type = $5 WHERE user_id = $1 AND key = $2
"""
SQL_RELEASE = "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND status IS NULL"
SQL_EXPIRE = "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)"


@dataclass(frozen=True)
class Stored:
    """A previous answer to replay."""

    status: int
    body: bytes
    content_type: str


class KeyMismatch(Exception):
    """The key was used for a different request."""


class KeyInFlight(Exception):
    """The first request with this key has not finished yet."""


def body_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


async def begin(pool: asyncpg.Pool, user_id: int, key: str, method: str, path: str, body: bytes) -> Stored | None:
    """Reserve `key` for this request, or return the stored answer of an identical earlier one.
    Raises KeyMismatch or KeyInFlight."""
    digest = body_hash(method, path, body)
    if await pool.fetchval(SQL_CLAIM, user_id, key, method, path, digest):
        return None
    if await pool.fetchval(SQL_REPLACE_STALE, user_id, key, method, path, digest, TTL_HOURS):
        return None
    row = await pool.fetchrow(SQL_EXISTING, user_id, key, TTL_HOURS)
    if row is None:  # released between our insert and our read: try once more
        if await pool.fetchval(SQL_CLAIM, user_id, key, method, path, digest):
            return None
        raise KeyInFlight(key)
    if row["body_hash"] != digest:
        raise KeyMismatch(key)
    if row["status"] is None:
        raise KeyInFlight(key)
    return Stored(row["status"], bytes(row["response"]), row["content_type"])


async def finish(pool: asyncpg.Pool, user_id: int, key: str, status: int, body: bytes, content_type: str) -> None:
    """Store the answer to replay. Server errors are not stored: the client may retry them."""
    if status >= 500:
        await pool.execute(SQL_RELEASE, user_id, key)
    else:
        await pool.execute(SQL_STORE, user_id, key, status, body, content_type)


async def release(pool: asyncpg.Pool, user_id: int, key: str) -> None:
    """Forget a reservation whose request failed before answering."""
    await pool.execute(SQL_RELEASE, user_id, key)


async def expire(pool: asyncpg.Pool) -> int:
    """Delete keys older than 24 h; returns how many."""
    result = await pool.execute(SQL_EXPIRE, TTL_HOURS)
    return int(result.split()[-1])
