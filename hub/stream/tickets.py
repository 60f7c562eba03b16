"""Single-use WebSocket tickets, kept in PostgreSQL so any hub process can redeem one.

A browser cannot put an Authorization header on a WebSocket, and an access token in a URL ends
up in proxy logs for its whole lifetime; a ticket in the URL is worth one connection within
30 seconds. Only its SHA-256 is stored.
"""
from __future__ import annotations

import dataclasses

import hashlib
import secrets
from datetime import timedelta

import asyncpg

from hub.api.errors import ApiError, unauthorized
from hub.api.permissions import principal_for
from hub.api.principal import Principal
from shared.clock import Clock

SQL_FORGET_EXPIRED = "DELETE FROM ws_tickets WHERE user_id = $1 AND expires_at <= $2"
SQL_ISSUE = """
INSERT INTO ws_tickets (ticket_hash, user_id, issued_at, expires_at, session_id) VALUES ($1, $2, $3, $4, $5)
"""
# The UPDATE's WHERE is the whole check: of two hub processes redeeming one ticket at once,
# exactly one gets the row back.
SQL_REDEEM = """
WITH t AS (
    UPDATE ws_tickets SET used_at = $2
    WHERE ticket_hash = $1 AND used_at IS NULL AND expires_at > $2
    RETURNING user_id, session_id
)
SELECT u.id, u.email, u.role, u.active, u.must_change_password, t.session_id,
       NOT EXISTS (SELECT 1 FROM auth_sessions s WHERE s.id = t.session_id AND s.revoked_at IS NOT NULL) AS session_live,
       ARRAY(SELECT a.object_id FROM user_object_assignments a WHERE a.user_id = u.id) AS objects
FROM t JOIN users u ON u.id = t.user_id
"""
MAX_TICKET_CHARS = 128


def _hash(ticket: str) -> bytes:
    return hashlib.sha256(ticket.encode()).digest()


class Tickets:
    """Issues and redeems WebSocket tickets."""

    def __init__(self, pool: asyncpg.Pool, clock: Clock, ttl_s: int) -> None:
        self._pool = pool
        self._clock = clock
        self.ttl_s = ttl_s

    async def issue(self, principal: Principal) -> str:
        """A new ticket for `principal`; their expired ones are deleted on the way, which keeps
        the table as small as the number of users connecting."""
        now = self._clock.now()
        ticket = secrets.token_urlsafe(32)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(SQL_FORGET_EXPIRED, principal.user_id, now)
            await conn.execute(SQL_ISSUE, _hash(ticket), principal.user_id, now, now + timedelta(seconds=self.ttl_s),
                               principal.session_id)
        return ticket

    async def redeem(self, ticket: str | None) -> Principal:
        """The ticket's user as a Principal, spending the ticket; ApiError 401 when it is missing,
        unknown, used, expired, or its user may no longer use the API."""
        if not ticket:
            raise unauthorized("open the stream with a ticket: POST /api/v1/auth/ws-ticket, then ?ticket=")
        if len(ticket) > MAX_TICKET_CHARS:
            raise unauthorized("the ticket is not valid")
        row = await self._pool.fetchrow(SQL_REDEEM, _hash(ticket), self._clock.now())
        if row is None:
            raise unauthorized("the ticket is unknown, used or expired; ask for a new one")
        if not row["active"]:
            raise unauthorized("the account is deactivated")
        if not row["session_live"]:
            raise unauthorized("the session that asked for the ticket has ended; log in again")
        if row["must_change_password"]:
            raise ApiError(403, "password_change_required", "change your password first (POST /api/v1/auth/password)")
        return dataclasses.replace(principal_for(row["id"], row["email"], row["role"], row["objects"]),
                                   session_id=row["session_id"])
