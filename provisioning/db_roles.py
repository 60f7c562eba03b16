"""The hub's runtime database role, created for `make run` and the tests.

The hub runs as a role that owns no table (hub/db/roles.py grants it row access); this makes that
role on a server where the provisioning connection may create roles, and builds its DSN. Roles are
cluster-wide, so one `vigil_hub` serves every database of a server. It has no password: the servers
this provisions (the embedded one, the local test server) trust local connections; a production
server gets its role and password from its administrator.
"""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg

RUNTIME_ROLE = "vigil_hub"
SQL_ROLE_EXISTS = "SELECT 1 FROM pg_roles WHERE rolname = $1"


class RoleUnavailable(Exception):
    """The provisioning connection may not create the runtime role."""


def with_user(dsn: str, user: str) -> str:
    """`dsn` with its user (and password) replaced by `user`."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


async def ensure_runtime_role(owner_dsn: str, role: str = RUNTIME_ROLE) -> str:
    """Create the LOGIN role `role` if missing (no other rights); returns the runtime DSN for
    `owner_dsn`'s database. Raises RoleUnavailable when the owner may not create roles."""
    conn = await asyncpg.connect(owner_dsn)
    try:
        if not await conn.fetchval(SQL_ROLE_EXISTS, role):
            try:
                # An identifier cannot be a bind parameter; `role` is ours, quoted all the same.
                await conn.execute(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE')
            except (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
                pass  # created by a concurrent caller (tests in parallel): what we wanted
            except asyncpg.InsufficientPrivilegeError as exc:
                raise RoleUnavailable(f"cannot create database role {role!r}: {exc}") from None
    finally:
        await conn.close()
    return with_user(owner_dsn, role)
