"""The first MASTER account, made at the hub's first start.

With `auth.master_password` set, that password is used (it must meet the policy). Without one, a
random one-time password is generated, shown once on stderr (never in the JSON log) and the
account must change it at first login. There is never a default password. Once any MASTER
exists, nothing happens: several hub processes may start together and restarts are harmless.
"""
from __future__ import annotations

import enum
import logging
import sys
from typing import Callable

import asyncpg

from hub.auth.audit import SYSTEM_ACTOR, audit
from hub.auth.login import normalise_email
from hub.auth.passwords import PasswordPolicyError, Passwords, check_policy, generate_password
from hub.auth.users import EMAIL_RE, USERS_LOCK_KEY
from hub.config import AuthSettings
from shared.clock import Clock

log = logging.getLogger("vigil.hub.auth.bootstrap")

SQL_LOCK = "SELECT pg_advisory_xact_lock($1)"
SQL_ANY_MASTER = "SELECT EXISTS (SELECT 1 FROM users WHERE role = 'MASTER')"
SQL_EMAIL_TAKEN = "SELECT EXISTS (SELECT 1 FROM users WHERE email = $1)"
SQL_CREATE_MASTER = """
INSERT INTO users (email, display_name, role, password_hash, must_change_password, created_at, updated_at)
VALUES ($1, 'Master', 'MASTER', $2, $3, $4, $4)
RETURNING id
"""


class BootstrapError(Exception):
    """The configured master account cannot be created; the message says which setting to fix."""


class Bootstrap(enum.Enum):
    EXISTS = "exists"          # a MASTER was already there: nothing done
    CONFIGURED = "configured"  # created with auth.master_password
    ONE_TIME = "one_time"      # created with a generated password that must be changed


def _show_on_stderr(email: str, password: str) -> None:
    print(f"\nVigil hub: the first MASTER account is {email} with the one-time password\n\n    {password}\n\n"
          "It is shown only now and must be changed at first login.\n", file=sys.stderr, flush=True)


async def bootstrap_master(pool: asyncpg.Pool, settings: AuthSettings, passwords: Passwords, clock: Clock,
                           reveal: Callable[[str, str], None] | None = None) -> Bootstrap:
    """Create the first MASTER unless one exists. `reveal(email, password)` shows a generated
    one-time password to the person installing the hub (default: print it on stderr). Raises
    BootstrapError."""
    if await pool.fetchval(SQL_ANY_MASTER):
        return Bootstrap.EXISTS
    email = normalise_email(settings.master_email)
    if not EMAIL_RE.match(email) or len(email) > 254:
        raise BootstrapError(f"auth.master_email {settings.master_email!r} is not an email address")
    password = settings.master_password or generate_password()
    try:
        check_policy(password, email)
    except PasswordPolicyError as exc:
        raise BootstrapError(f"auth.master_password is not acceptable: {exc}") from None
    password_hash = await passwords.hash(password)
    one_time = not settings.master_password
    now = clock.now()
    async with pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute(SQL_LOCK, USERS_LOCK_KEY)
            if await conn.fetchval(SQL_ANY_MASTER):  # another hub process was quicker
                return Bootstrap.EXISTS
            if await conn.fetchval(SQL_EMAIL_TAKEN, email):
                raise BootstrapError(f"auth.master_email {email} belongs to an existing user that is not a MASTER")
            user_id = await conn.fetchval(SQL_CREATE_MASTER, email, password_hash, one_time, now)
            await audit(conn, now, SYSTEM_ACTOR, "user.created", "user", user_id, None, email=email, role="MASTER",
                        bootstrap=True, one_time_password=one_time)
    if one_time:
        (reveal or _show_on_stderr)(email, password)
        log.warning("created the first MASTER account %s with a one-time password shown on stderr; "
                    "it must be changed at first login", email)
        return Bootstrap.ONE_TIME
    log.info("created the first MASTER account %s with the configured password", email)
    return Bootstrap.CONFIGURED
