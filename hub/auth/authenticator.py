"""Bearer access token → Principal, for the API framework (hub.api.principal.Authenticator).

Beyond the token itself, every request checks in PostgreSQL that the user is still active and
that the token's session family has not ended (logout, refresh-token reuse, password change),
so those take effect at once rather than when the 15-minute token expires. The role and object
assignments are read there too, so a role change applies to the next request.
"""
from __future__ import annotations

import dataclasses

import logging

import asyncpg
from aiohttp import web

from hub.api.errors import ApiError, unauthorized
from hub.api.permissions import principal_for
from hub.api.principal import Principal
from hub.auth.tokens import AccessTokens, TokenRejected

log = logging.getLogger("vigil.hub.auth")

SQL_PRINCIPAL = """
SELECT u.email, u.role, u.active, u.must_change_password, s.revoked_at IS NULL AS session_live,
       ARRAY(SELECT a.object_id FROM user_object_assignments a WHERE a.user_id = u.id) AS objects
FROM users u JOIN auth_sessions s ON s.user_id = u.id AND s.id = $2
WHERE u.id = $1
"""
MAX_TOKEN_CHARS = 8192


def bearer_token(request: web.Request) -> str:
    """The token of an `Authorization: Bearer …` header; 401 when there is none."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorized("send an access token: Authorization: Bearer <token>")
    if len(token) > MAX_TOKEN_CHARS:
        raise unauthorized("the access token is not valid")
    return token


class TokenAuthenticator:
    """Authenticates API requests by their access token. While a user must change their
    password, only `password_change_paths` are open to them."""

    def __init__(self, pool: asyncpg.Pool, tokens: AccessTokens, password_change_paths: frozenset[str]) -> None:
        self._pool = pool
        self._tokens = tokens
        self._password_change_paths = password_change_paths

    async def authenticate(self, request: web.Request) -> Principal:
        """The caller, or ApiError 401 (403 while a password change is pending)."""
        try:
            claims = await self._tokens.verify(bearer_token(request))
        except TokenRejected as exc:
            log.info("access token refused: %s", exc.reason, extra={"ip": request.remote})
            raise unauthorized("the access token has expired" if exc.expired else "the access token is not valid") from None
        row = await self._pool.fetchrow(SQL_PRINCIPAL, claims.user_id, claims.session_id)
        if row is None or not row["session_live"]:
            raise unauthorized("the session has ended; log in again")
        if not row["active"]:
            raise unauthorized("the account is deactivated")
        if row["must_change_password"] and request.path not in self._password_change_paths:
            raise ApiError(403, "password_change_required", "change your password first (POST /api/v1/auth/password)")
        return dataclasses.replace(principal_for(claims.user_id, row["email"], row["role"], row["objects"]),
                                   session_id=claims.session_id)
