"""Brute-force throttling, kept in PostgreSQL so every hub process agrees.

- Per client IP: 5 failed logins within a minute block that IP for a minute.
- Per account: 10 consecutive failures lock the account for 30 minutes; a success resets the
  count. Failures while locked are not counted, so an attacker cannot keep extending the lock.

Both the block and the lock are audited.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from hub.auth.audit import SYSTEM_ACTOR, audit
from shared.clock import Clock

IP_MAX_FAILURES = 5
IP_WINDOW = timedelta(minutes=1)
IP_BLOCK = timedelta(minutes=1)
ACCOUNT_MAX_FAILURES = 10
ACCOUNT_LOCK = timedelta(minutes=30)

SQL_IP_BLOCKED = "SELECT blocked_until FROM auth_ip_blocks WHERE ip = $1 AND blocked_until > $2"
SQL_IP_FAIL = "INSERT INTO auth_ip_failures (ip, at) VALUES ($1, $2)"
SQL_IP_COUNT = "SELECT count(*) FROM auth_ip_failures WHERE ip = $1 AND at > $2"
SQL_IP_BLOCK = """
INSERT INTO auth_ip_blocks (ip, blocked_until) VALUES ($1, $2)
ON CONFLICT (ip) DO UPDATE SET blocked_until = EXCLUDED.blocked_until
"""
SQL_IP_CLEAR = "DELETE FROM auth_ip_failures WHERE ip = $1"
# Counts a failure unless the account is locked; the tenth locks it and restarts the count.
SQL_ACCOUNT_FAIL = """
UPDATE users SET
    failed_logins = CASE WHEN failed_logins + 1 >= $3 THEN 0 ELSE failed_logins + 1 END,
    locked_until = CASE WHEN failed_logins + 1 >= $3 THEN $4 ELSE locked_until END
WHERE id = $1 AND (locked_until IS NULL OR locked_until <= $2)
RETURNING locked_until = $4 AS locked
"""
SQL_ACCOUNT_OK = "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1 AND failed_logins > 0"
SQL_PURGE_FAILURES = "DELETE FROM auth_ip_failures WHERE at <= $1"
SQL_PURGE_BLOCKS = "DELETE FROM auth_ip_blocks WHERE blocked_until <= $1"


class Throttle:
    """Records login failures and answers whether an IP is blocked or an account locked."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def ip_blocked_until(self, conn: asyncpg.Connection | asyncpg.Pool, ip: str) -> datetime | None:
        """When the block on `ip` ends, or None when it is not blocked."""
        until: datetime | None = await conn.fetchval(SQL_IP_BLOCKED, ip, self._clock.now())
        return until

    def locked(self, locked_until: datetime | None) -> bool:
        """True while an account lock set to end at `locked_until` holds."""
        return locked_until is not None and locked_until > self._clock.now()

    async def record_failure(self, conn: asyncpg.Connection, ip: str, user_id: int | None) -> None:
        """Count a failed login from `ip` (against `user_id` when the account exists); block the
        IP or lock the account when a limit is reached. Run inside the caller's transaction."""
        now = self._clock.now()
        await conn.execute(SQL_IP_FAIL, ip, now)
        if await conn.fetchval(SQL_IP_COUNT, ip, now - IP_WINDOW) >= IP_MAX_FAILURES:
            await conn.execute(SQL_IP_BLOCK, ip, now + IP_BLOCK)
            # A fresh window after the block: the failures that caused it are spent.
            await conn.execute(SQL_IP_CLEAR, ip)
            await audit(conn, now, SYSTEM_ACTOR, "auth.ip.blocked", "ip", ip, ip,
                        until=now + IP_BLOCK, failures=IP_MAX_FAILURES)
        if user_id is not None:
            if await conn.fetchval(SQL_ACCOUNT_FAIL, user_id, now, ACCOUNT_MAX_FAILURES, now + ACCOUNT_LOCK):
                await audit(conn, now, SYSTEM_ACTOR, "auth.account.locked", "user", user_id, ip,
                            until=now + ACCOUNT_LOCK, failures=ACCOUNT_MAX_FAILURES)

    async def record_success(self, conn: asyncpg.Connection, user_id: int) -> None:
        """Reset the account's consecutive-failure count."""
        await conn.execute(SQL_ACCOUNT_OK, user_id)

    async def purge(self, pool: asyncpg.Pool) -> None:
        """Forget failures outside the window and blocks that have ended."""
        now = self._clock.now()
        await pool.execute(SQL_PURGE_FAILURES, now - IP_WINDOW)
        await pool.execute(SQL_PURGE_BLOCKS, now)
