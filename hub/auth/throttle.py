"""Brute-force throttling, kept in PostgreSQL so every hub process agrees.

- Per client address: 5 failed logins within a minute block that address for a minute. Every
  attempt reserves its slot *before* the password is verified (under a per-address advisory lock),
  so a burst of parallel attempts cannot slip past the limit while Argon2 runs; a success gives
  its slot back.
- Per (account, client address): after 3 consecutive failures each further one delays the next
  attempt from that address 1, 2, 4 … s, capped at 15 minutes. During the delay the right password
  is refused too, and failures are not counted (an attacker cannot extend it). A success from the
  address resets it. Other addresses are not affected: nobody can lock an operator out by name.

The address block and the first delay of an (account, address) are audited.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from hub.auth.audit import SYSTEM_ACTOR, audit
from shared.clock import Clock

IP_MAX_FAILURES = 5
IP_WINDOW = timedelta(minutes=1)
IP_BLOCK = timedelta(minutes=1)
ACCOUNT_FREE_FAILURES = 3
ACCOUNT_BASE_DELAY = timedelta(seconds=1)
ACCOUNT_MAX_DELAY = timedelta(minutes=15)
# An (account, address) that has not failed for this long starts afresh.
ACCOUNT_FORGET = timedelta(days=1)

# Serialises the reservations of one address across connections and hub processes.
SQL_IP_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('vigil.auth.ip:' || $1, 0))"
SQL_IP_BLOCKED = "SELECT blocked_until FROM auth_ip_blocks WHERE ip = $1 AND blocked_until > $2"
SQL_IP_WINDOW = "SELECT count(*) AS n, min(at) AS oldest FROM auth_ip_failures WHERE ip = $1 AND at > $2"
SQL_IP_RESERVE = "INSERT INTO auth_ip_failures (ip, at) VALUES ($1, $2) RETURNING id"
SQL_IP_RELEASE = "DELETE FROM auth_ip_failures WHERE id = $1"
SQL_IP_COUNT = "SELECT count(*) FROM auth_ip_failures WHERE ip = $1 AND at > $2"
SQL_IP_BLOCK = """
INSERT INTO auth_ip_blocks (ip, blocked_until) VALUES ($1, $2)
ON CONFLICT (ip) DO UPDATE SET blocked_until = EXCLUDED.blocked_until
"""
SQL_IP_CLEAR = "DELETE FROM auth_ip_failures WHERE ip = $1"
# Counts a failure unless the (account, address) is in its delay; NULL while delayed.
SQL_ACCOUNT_FAIL = """
INSERT INTO auth_account_failures AS f (user_id, ip, failures, last_failed_at) VALUES ($1, $2, 1, $3)
ON CONFLICT (user_id, ip) DO UPDATE SET
    failures = CASE WHEN f.last_failed_at <= $4 THEN 1 ELSE f.failures + 1 END, last_failed_at = $3
WHERE f.delayed_until IS NULL OR f.delayed_until <= $3
RETURNING failures
"""
SQL_ACCOUNT_DELAY = "UPDATE auth_account_failures SET delayed_until = $3 WHERE user_id = $1 AND ip = $2"
SQL_ACCOUNT_OK = "DELETE FROM auth_account_failures WHERE user_id = $1 AND ip = $2"
SQL_PURGE_FAILURES = "DELETE FROM auth_ip_failures WHERE at <= $1"
SQL_PURGE_BLOCKS = "DELETE FROM auth_ip_blocks WHERE blocked_until <= $1"
SQL_PURGE_ACCOUNTS = """
DELETE FROM auth_account_failures WHERE last_failed_at <= $1 AND (delayed_until IS NULL OR delayed_until <= $2)
"""


class AddressBlocked(Exception):
    """The caller's address may not try now; `until` is when it may."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"blocked until {until.isoformat()}")
        self.until = until


def account_delay(failures: int) -> timedelta | None:
    """The delay after the `failures`-th consecutive failure of an (account, address), or None."""
    if failures <= ACCOUNT_FREE_FAILURES:
        return None
    # The exponent is bounded so a long streak cannot overflow before the cap applies.
    return min(ACCOUNT_BASE_DELAY * 2 ** min(failures - ACCOUNT_FREE_FAILURES - 1, 30), ACCOUNT_MAX_DELAY)


class Throttle:
    """Reserves attempts per address, records failures and answers whether an (account, address)
    is in its delay."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def reserve(self, pool: asyncpg.Pool, ip: str) -> int:
        """Take one of the address's attempts for the window before verifying anything; returns
        the reservation to hand to record_failure/record_success. Raises AddressBlocked when the
        address is blocked or its attempts (failed or still in flight) are used up."""
        now = self._clock.now()
        async with pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute(SQL_IP_LOCK, ip)
                until: datetime | None = await conn.fetchval(SQL_IP_BLOCKED, ip, now)
                if until is not None:
                    raise AddressBlocked(until)
                window = await conn.fetchrow(SQL_IP_WINDOW, ip, now - IP_WINDOW)
                if window["n"] >= IP_MAX_FAILURES:
                    raise AddressBlocked(window["oldest"] + IP_WINDOW)
                reservation: int = await conn.fetchval(SQL_IP_RESERVE, ip, now)
                return reservation

    def delayed(self, delayed_until: datetime | None) -> bool:
        """True while an (account, address) delay set to end at `delayed_until` holds."""
        return delayed_until is not None and delayed_until > self._clock.now()

    async def record_failure(self, conn: asyncpg.Connection, ip: str, user_id: int | None) -> None:
        """Count a failed attempt from `ip` (its reservation stays as the failure) against
        `user_id` when the account exists; block the address or delay the (account, address)
        when a limit is reached. Run inside the caller's transaction."""
        now = self._clock.now()
        if await conn.fetchval(SQL_IP_COUNT, ip, now - IP_WINDOW) >= IP_MAX_FAILURES:
            await conn.execute(SQL_IP_BLOCK, ip, now + IP_BLOCK)
            # A fresh window after the block: the failures that caused it are spent.
            await conn.execute(SQL_IP_CLEAR, ip)
            await audit(conn, now, SYSTEM_ACTOR, "auth.ip.blocked", "ip", ip, ip,
                        until=now + IP_BLOCK, failures=IP_MAX_FAILURES)
        if user_id is None:
            return
        failures = await conn.fetchval(SQL_ACCOUNT_FAIL, user_id, ip, now, now - ACCOUNT_FORGET)
        delay = account_delay(failures) if failures is not None else None
        if delay is not None:
            await conn.execute(SQL_ACCOUNT_DELAY, user_id, ip, now + delay)
            if failures == ACCOUNT_FREE_FAILURES + 1:
                await audit(conn, now, SYSTEM_ACTOR, "auth.account.delayed", "user", user_id, ip,
                            failures=failures)

    async def record_success(self, conn: asyncpg.Connection, reservation: int, user_id: int, ip: str) -> None:
        """Give the address its attempt back and reset the (account, address) failures."""
        await conn.execute(SQL_IP_RELEASE, reservation)
        await conn.execute(SQL_ACCOUNT_OK, user_id, ip)

    async def release(self, conn: asyncpg.Connection | asyncpg.Pool, reservation: int) -> None:
        """Give an attempt back whose password was right (the request may still fail on other grounds)."""
        await conn.execute(SQL_IP_RELEASE, reservation)

    async def purge(self, pool: asyncpg.Pool) -> None:
        """Forget failures outside the window, blocks that have ended and stale (account,
        address) streaks."""
        now = self._clock.now()
        await pool.execute(SQL_PURGE_FAILURES, now - IP_WINDOW)
        await pool.execute(SQL_PURGE_BLOCKS, now)
        await pool.execute(SQL_PURGE_ACCOUNTS, now - ACCOUNT_FORGET, now)
