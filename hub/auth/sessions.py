"""Refresh tokens and the session families they belong to.

A refresh token is 256 random bits, handed out once and stored only as its SHA-256 (a hash of
that much entropy cannot be guessed back, so a slow hash adds nothing). Every use spends it and
issues its successor in the same family. Presenting a spent token means two parties hold the
family (a stolen token was used): the whole family is revoked, the newest token included, and
so are the access tokens that name it (the authenticator checks the family). A family also has an
absolute lifetime from its login (`auth.session_max_age_days`): past it no token of it rotates,
however recently it was refreshed, so a stolen family cannot be kept alive for ever, and the
periodic maintenance revokes it.

Whatever holds state bound to a family in this process (the live stream's open streams) listens
with `on_ended`; the flows that end families `announce` them once their transaction committed.
Other hub processes learn of it from the database (the stream's access review).
"""
from __future__ import annotations

import enum
import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Iterable

import asyncpg

from shared.clock import Clock

log = logging.getLogger("vigil.hub.auth")

TOKEN_BYTES = 32
MAX_TOKEN_CHARS = 100

SQL_OPEN = """
INSERT INTO auth_sessions (id, user_id, created_at, last_used_at, ip) VALUES ($1, $2, $3, $3, $4)
"""
SQL_ADD_TOKEN = """
INSERT INTO auth_refresh_tokens (token_hash, session_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)
"""
# Locks the family too, so a spend and a reuse-revocation of the same family never interleave.
SQL_FIND = """
SELECT t.session_id, t.expires_at, t.used_at, s.user_id, s.created_at, s.revoked_at, u.role, u.active, u.must_change_password
FROM auth_refresh_tokens t
JOIN auth_sessions s ON s.id = t.session_id
JOIN users u ON u.id = s.user_id
WHERE t.token_hash = $1
FOR UPDATE OF t, s
"""
SQL_SPEND = "UPDATE auth_refresh_tokens SET used_at = $2 WHERE token_hash = $1"
SQL_TOUCH = "UPDATE auth_sessions SET last_used_at = $2 WHERE id = $1"
SQL_REVOKE = """
UPDATE auth_sessions SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL
"""
SQL_REVOKE_USER = """
UPDATE auth_sessions SET revoked_at = $2, revoked_reason = $3 WHERE user_id = $1 AND revoked_at IS NULL
RETURNING id
"""
SQL_REVOKE_AGED = """
UPDATE auth_sessions SET revoked_at = $1, revoked_reason = 'max_age' WHERE created_at <= $2 AND revoked_at IS NULL
RETURNING id
"""
# A family is kept while any of its tokens is unexpired (so the reuse of a spent one is still
# recognised), then deleted with its tokens.
SQL_PURGE = """
DELETE FROM auth_sessions s
WHERE NOT EXISTS (SELECT 1 FROM auth_refresh_tokens t WHERE t.session_id = s.id AND t.expires_at > $1)
"""


def hash_token(token: str) -> bytes:
    """What the database stores for a refresh token."""
    return hashlib.sha256(token.encode()).digest()


class Outcome(enum.Enum):
    ROTATED = "rotated"
    UNKNOWN = "unknown"
    REUSED = "reused"      # the family has just been revoked
    REVOKED = "revoked"    # the family had already ended
    EXPIRED = "expired"
    INACTIVE = "inactive"  # the user was deactivated


# The outcomes for which `Sessions.rotate` has just revoked the family.
ENDING = frozenset({Outcome.REUSED, Outcome.INACTIVE})

# Told the ids of families this process ended (after the ending committed).
EndedListener = Callable[[frozenset[uuid.UUID]], None]


@dataclass(frozen=True)
class Rotation:
    """The result of spending a refresh token; `token` is set only when ROTATED."""

    outcome: Outcome
    session_id: uuid.UUID | None = None
    user_id: int | None = None
    role: str | None = None
    must_change_password: bool = False
    token: str | None = None


class Sessions:
    """Opens, rotates and revokes session families."""

    def __init__(self, clock: Clock, ttl_s: int, max_age_s: int = 30 * 86_400) -> None:
        self._clock = clock
        self.ttl_s = ttl_s
        self.max_age_s = max_age_s
        self._listeners: list[EndedListener] = []

    def on_ended(self, listener: EndedListener) -> None:
        """Have `listener` told of every family this process ends, once the ending committed."""
        self._listeners.append(listener)

    def announce(self, ended: Iterable[uuid.UUID]) -> None:
        """Tell the listeners that the families `ended` have ended; call it after the transaction
        that revoked them committed (before, a rollback would leave them live)."""
        ids = frozenset(ended)
        if not ids:
            return
        for listener in self._listeners:
            try:
                listener(ids)
            except Exception:  # noqa: BLE001 - the revocation has committed; the answer must not fail
                # What the listener failed to drop, its own periodic check still finds in the
                # database (the stream's access review).
                log.exception("a listener failed to act on %d ended sessions", len(ids))

    async def open(self, conn: asyncpg.Connection, user_id: int, ip: str) -> tuple[uuid.UUID, str]:
        """A new family for `user_id` and its first refresh token."""
        session_id = uuid.uuid4()
        await conn.execute(SQL_OPEN, session_id, user_id, self._clock.now(), ip)
        return session_id, await self._add_token(conn, session_id)

    async def rotate(self, conn: asyncpg.Connection, token: str) -> Rotation:
        """Spend `token` and issue its successor; on reuse revoke the family. Run it inside a
        transaction: the revocation must commit even though the caller refuses the request."""
        if len(token) > MAX_TOKEN_CHARS:
            return Rotation(Outcome.UNKNOWN)
        now = self._clock.now()
        row = await conn.fetchrow(SQL_FIND, hash_token(token))
        if row is None:
            return Rotation(Outcome.UNKNOWN)
        found = dict(session_id=row["session_id"], user_id=row["user_id"], role=row["role"],
                     must_change_password=row["must_change_password"])
        if row["revoked_at"] is not None:
            return Rotation(Outcome.REVOKED, **found)
        # Reuse is checked before expiry: a spent token is evidence of theft however old it is.
        if row["used_at"] is not None:
            await conn.execute(SQL_REVOKE, row["session_id"], now, "refresh_reuse")
            return Rotation(Outcome.REUSED, **found)
        if row["expires_at"] <= now or row["created_at"] + timedelta(seconds=self.max_age_s) <= now:
            return Rotation(Outcome.EXPIRED, **found)
        if not row["active"]:
            await conn.execute(SQL_REVOKE, row["session_id"], now, "deactivated")
            return Rotation(Outcome.INACTIVE, **found)
        await conn.execute(SQL_SPEND, hash_token(token), now)
        await conn.execute(SQL_TOUCH, row["session_id"], now)
        return Rotation(Outcome.ROTATED, token=await self._add_token(conn, row["session_id"]), **found)

    async def find_family(self, conn: asyncpg.Connection, token: str) -> tuple[uuid.UUID, int] | None:
        """The (session id, user id) a refresh token belongs to, spent or not, locked for update."""
        if len(token) > MAX_TOKEN_CHARS:
            return None
        row = await conn.fetchrow(SQL_FIND, hash_token(token))
        return (row["session_id"], row["user_id"]) if row else None

    async def revoke(self, conn: asyncpg.Connection, session_id: uuid.UUID, reason: str) -> bool:
        """End one family; False when it had already ended."""
        result: str = await conn.execute(SQL_REVOKE, session_id, self._clock.now(), reason)
        return result != "UPDATE 0"

    async def revoke_user(self, conn: asyncpg.Connection, user_id: int, reason: str) -> list[uuid.UUID]:
        """End every family of `user_id`; returns the ids of those that were live."""
        return [r["id"] for r in await conn.fetch(SQL_REVOKE_USER, user_id, self._clock.now(), reason)]

    async def revoke_aged(self, pool: asyncpg.Pool) -> list[uuid.UUID]:
        """End the families past their absolute lifetime, so what is bound to them (access
        tokens, streams) ends too, not just their refresh; returns their ids."""
        now = self._clock.now()
        return [r["id"] for r in await pool.fetch(SQL_REVOKE_AGED, now, now - timedelta(seconds=self.max_age_s))]

    async def purge(self, pool: asyncpg.Pool) -> int:
        """Delete families none of whose tokens is still unexpired; returns how many."""
        result = await pool.execute(SQL_PURGE, self._clock.now())
        return int(result.split()[-1])

    async def _add_token(self, conn: asyncpg.Connection, session_id: uuid.UUID) -> str:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock.now()
        await conn.execute(SQL_ADD_TOKEN, hash_token(token), session_id, now, now + timedelta(seconds=self.ttl_s))
        return token
