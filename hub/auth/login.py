"""Login, refresh, logout and password change: the flows that hand out and take back tokens.

A login that fails answers the same (401 `invalid_credentials`, one Argon2 verification) whether
the email is unknown, the password wrong, the account deactivated or delayed for the caller's
address, so the answer tells nothing about which accounts exist. Only the address block answers
differently (429): it is about the caller's address, not an account. The address's attempt is
reserved before Argon2 runs (hub.auth.throttle), so parallel attempts cannot outrun the block.
"""
from __future__ import annotations

import logging
import math
from datetime import datetime

import asyncpg

from hub.api.errors import ApiError, invalid, unauthorized
from hub.api.principal import Principal
from hub.auth.audit import audit, user_actor
from hub.auth.passwords import PasswordPolicyError, Passwords, check_policy
from hub.auth.schemas import TokenPair
from hub.auth.sessions import ENDING, Outcome, Sessions
from hub.auth.throttle import AddressBlocked, Throttle
from hub.auth.tokens import AccessTokens
from shared.clock import Clock

log = logging.getLogger("vigil.hub.auth")

# With the delay of this (account, caller address), if any: other addresses' failures do not matter.
SQL_USER_BY_EMAIL = """
SELECT u.id, u.email, u.role, u.password_hash, u.active, u.must_change_password, f.delayed_until
FROM users u LEFT JOIN auth_account_failures f ON f.user_id = u.id AND f.ip = $2
WHERE u.email = $1
"""
SQL_USER_BY_ID = """
SELECT id, email, role, password_hash, active, must_change_password FROM users WHERE id = $1
"""
SQL_REHASH = "UPDATE users SET password_hash = $2 WHERE id = $1 AND password_hash = $3"
SQL_SET_OWN_PASSWORD = """
UPDATE users SET password_hash = $2, must_change_password = false, version = version + 1, updated_at = $3
WHERE id = $1
"""


def normalise_email(email: str) -> str:
    """Emails are compared case-insensitively and stored lower-case."""
    return email.strip().lower()


def invalid_credentials() -> ApiError:
    return ApiError(401, "invalid_credentials", "the email or password is wrong",
                    headers={"WWW-Authenticate": 'Bearer realm="vigil"'})


def too_many_attempts(until: datetime, now: datetime) -> ApiError:
    retry = max(1, math.ceil((until - now).total_seconds()))
    return ApiError(429, "too_many_attempts", f"too many failed logins from your address; try again in {retry} s",
                    {"retry_after_s": retry}, {"Retry-After": str(retry)})


class LoginService:
    """Authenticates passwords and refresh tokens and issues token pairs."""

    def __init__(self, pool: asyncpg.Pool, clock: Clock, passwords: Passwords, throttle: Throttle,
                 sessions: Sessions, tokens: AccessTokens) -> None:
        self._pool = pool
        self._clock = clock
        self._passwords = passwords
        self._throttle = throttle
        self._sessions = sessions
        self._tokens = tokens

    async def login(self, email: str, password: str, ip: str) -> TokenPair:
        """A new session for valid credentials; raises 401 invalid_credentials or 429."""
        reservation = await self._reserve(ip)
        user = await self._pool.fetchrow(SQL_USER_BY_EMAIL, normalise_email(email), ip)
        verified = await self._passwords.verify(user["password_hash"] if user else None, password)
        reason = self._refusal(user, verified)
        now = self._clock.now()
        if reason is not None:
            async with self._pool.acquire() as conn:
                async with conn.transaction():
                    await self._throttle.record_failure(conn, ip, user["id"] if user else None)
                    await audit(conn, now, "anonymous", "auth.login.failed", "user",
                                user["id"] if user else "unknown", ip, reason=reason)
            log.info("login failed", extra={"reason": reason, "ip": ip})
            raise invalid_credentials()
        assert user is not None
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                await self._throttle.record_success(conn, reservation, user["id"], ip)
                session_id, refresh = await self._sessions.open(conn, user["id"], ip)
                await audit(conn, now, user_actor(user["id"]), "auth.login", "user", user["id"], ip,
                            session=str(session_id))
        if self._passwords.needs_rehash(user["password_hash"]):
            await self._pool.execute(SQL_REHASH, user["id"], await self._passwords.hash(password),
                                     user["password_hash"])
        access = await self._tokens.issue(user["id"], user["role"], session_id)
        return self._pair(access.token, refresh, user["must_change_password"])

    async def refresh(self, token: str, ip: str) -> TokenPair:
        """Spend a refresh token for a new pair; a spent one revokes its family. Raises 401."""
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                rotation = await self._sessions.rotate(conn, token)
                if rotation.outcome is Outcome.REUSED:
                    assert rotation.user_id is not None
                    await audit(conn, self._clock.now(), "anonymous", "auth.refresh.reused", "user",
                                rotation.user_id, ip, session=str(rotation.session_id))
        if rotation.outcome in ENDING and rotation.session_id is not None:
            self._sessions.announce([rotation.session_id])
        if rotation.outcome is Outcome.REUSED:
            log.warning("a spent refresh token was presented; its session family is revoked",
                        extra={"ip": ip, "session": str(rotation.session_id)})
            raise unauthorized("the refresh token was already used; the session has been ended")
        if rotation.outcome is not Outcome.ROTATED:
            raise unauthorized(f"the refresh token is not valid ({rotation.outcome.value})")
        assert rotation.user_id is not None and rotation.role is not None and rotation.session_id is not None
        assert rotation.token is not None
        access = await self._tokens.issue(rotation.user_id, rotation.role, rotation.session_id)
        return self._pair(access.token, rotation.token, rotation.must_change_password)

    async def logout(self, token: str, ip: str) -> None:
        """End the family of a refresh token (spent or not). Unknown tokens are ignored, so the
        answer tells nothing about them."""
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                family = await self._sessions.find_family(conn, token)
                if family is None or not await self._sessions.revoke(conn, family[0], "logout"):
                    return
                await audit(conn, self._clock.now(), user_actor(family[1]), "auth.logout", "user", family[1],
                            ip, session=str(family[0]))
        self._sessions.announce([family[0]])

    async def change_password(self, principal: Principal, current: str, new: str, ip: str) -> TokenPair:
        """Set the caller's own password, end every session they have, and open a new one."""
        reservation = await self._reserve(ip)
        user = await self._pool.fetchrow(SQL_USER_BY_ID, principal.user_id)
        if user is None:
            raise unauthorized("the account no longer exists")
        if not await self._passwords.verify(user["password_hash"], current):
            async with self._pool.acquire() as conn:
                async with conn.transaction():
                    await self._throttle.record_failure(conn, ip, user["id"])
                    await audit(conn, self._clock.now(), principal.actor, "auth.password.change_failed", "user",
                                user["id"], ip)
            raise ApiError(403, "invalid_credentials", "the current password is wrong")
        # The password was right: a refusal of the new one below is no guess at it.
        await self._throttle.release(self._pool, reservation)
        try:
            check_policy(new, user["email"])
        except PasswordPolicyError as exc:
            raise invalid(str(exc), {"field": "new_password", "reason": str(exc)}) from None
        if new == current:
            raise invalid("the new password must differ from the current one", {"field": "new_password"})
        new_hash = await self._passwords.hash(new)
        now = self._clock.now()
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute(SQL_SET_OWN_PASSWORD, user["id"], new_hash, now)
                await self._throttle.record_success(conn, reservation, user["id"], ip)
                ended = await self._sessions.revoke_user(conn, user["id"], "password_changed")
                session_id, refresh = await self._sessions.open(conn, user["id"], ip)
                await audit(conn, now, principal.actor, "auth.password.changed", "user", user["id"], ip,
                            sessions_ended=len(ended))
        self._sessions.announce(ended)
        access = await self._tokens.issue(user["id"], user["role"], session_id)
        return self._pair(access.token, refresh, False)

    def _refusal(self, user: asyncpg.Record | None, verified: bool) -> str | None:
        """Why a login is refused (for the audit log only), or None to let it in."""
        if user is None:
            return "unknown_email"
        if not verified:
            return "wrong_password"
        if not user["active"]:
            return "inactive"
        if self._throttle.delayed(user["delayed_until"]):
            return "delayed"
        return None

    async def _reserve(self, ip: str) -> int:
        """The address's attempt, taken before any password is verified; raises 429 when blocked."""
        try:
            return await self._throttle.reserve(self._pool, ip)
        except AddressBlocked as exc:
            raise too_many_attempts(exc.until, self._clock.now()) from None

    def _pair(self, access: str, refresh: str, must_change: bool) -> TokenPair:
        return TokenPair(access_token=access, refresh_token=refresh, expires_in=self._tokens.ttl_s,
                         refresh_expires_in=self._sessions.ttl_s, password_change_required=must_change)
