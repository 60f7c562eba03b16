"""The hub's two database roles (docs/architecture.md §5.4).

Migrations run as the owner role (`database_owner_url`); the hub process connects as a runtime
role (`database_url`) that owns no table and is granted only row access, so the audit log's
append-only rule binds the hub itself: only an owner may disable a trigger, and the runtime role
holds neither UPDATE nor DELETE on `audit_log`. With no owner URL both are one role (a development
setup): the hub says loudly that the audit log then rests on its trigger alone.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from hub.db.migrate import migrate

log = logging.getLogger("vigil.hub.db.roles")

# `pg_has_role(..., 'USAGE')`: a member of the owning role holds the owner's rights, ALTER included.
SQL_ROLE_FACTS = """
SELECT current_user AS role,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
       pg_has_role(current_user, c.relowner, 'USAGE') AS owns_audit_log
FROM pg_class c WHERE c.oid = 'audit_log'::regclass
"""
SQL_GRANT_RUNTIME = "SELECT grant_hub_runtime($1)"


class DatabaseRoleError(Exception):
    """The configured database roles do not give the separation they are meant to."""


@dataclass(frozen=True)
class RuntimeRole:
    """Who the hub runs as, and whether that role could tamper with the audit log."""

    name: str
    superuser: bool
    owns_audit_log: bool

    @property
    def separated(self) -> bool:
        """True when the role can neither disable audit_log's trigger nor bypass its grants."""
        return not (self.superuser or self.owns_audit_log)


async def role_facts(conn: asyncpg.Connection) -> RuntimeRole:
    """What `conn`'s role may do to the audit log (the schema must be migrated)."""
    row = await conn.fetchrow(SQL_ROLE_FACTS)
    return RuntimeRole(row["role"], row["superuser"], row["owns_audit_log"])


async def prepare_database(database_url: str, owner_url: str = "") -> RuntimeRole:
    """Apply pending migrations as the owner, grant the runtime role what it uses, and check the
    runtime role cannot tamper with the audit log. Raises DatabaseRoleError when an owner URL is
    configured but the runtime role is the owner (or a superuser): the split would be a pretence."""
    owner = await asyncpg.connect(owner_url or database_url)
    try:
        try:
            applied = await migrate(owner)
        except asyncpg.InsufficientPrivilegeError as exc:
            raise DatabaseRoleError(
                f"the database role of {'database_owner_url' if owner_url else 'database_url'} may not change the "
                f"schema ({exc}); migrations run as the owner role: set database_owner_url to its URL") from None
        if applied:
            log.info("migrations applied: %s", ", ".join(applied))
        if not owner_url:
            runtime = await role_facts(owner)
        else:
            conn = await asyncpg.connect(database_url)
            try:
                runtime = await role_facts(conn)
            finally:
                await conn.close()
            if not runtime.separated:
                raise DatabaseRoleError(
                    f"database_url connects as {runtime.name!r}, which "
                    f"{'is a superuser' if runtime.superuser else 'owns audit_log'}: with database_owner_url set "
                    f"the hub must run as a role that owns no table (create one with LOGIN and no other rights; "
                    f"the hub grants it what it needs)")
            await owner.execute(SQL_GRANT_RUNTIME, runtime.name)
    finally:
        await owner.close()
    if not runtime.separated:
        log.warning("the hub runs as database role %r, which can alter audit_log: its append-only rule rests on "
                    "the trigger alone; set database_owner_url and run the hub as a role that owns no table",
                    runtime.name, extra={"role": runtime.name})
    return runtime
