"""Schema migrations: numbered `.sql` files in `hub/db/migrations`, applied in order, each inside a
transaction, under an advisory lock so several hub processes starting together apply each once."""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger("vigil.hub.db.migrate")

MIGRATION_LOCK_KEY = 0x56494731  # "VIG1": a fixed advisory-lock key for migrations
_NAME_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

SQL_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
SQL_APPLIED = "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
SQL_RECORD = "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"


class MigrationError(Exception):
    """The migration files or the recorded history are inconsistent."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """All migration files, in version order."""
    found = []
    for entry in resources.files("hub.db").joinpath("migrations").iterdir():
        match = _NAME_RE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version: {versions}")
    return found


async def unapplied(conn: asyncpg.Connection) -> list[str]:
    """The migration files this database lacks, or holds with another checksum (a hub newer or
    older than its schema); [] when the schema is current."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    done = {r["version"]: r["checksum"] for r in await conn.fetch(SQL_APPLIED)} if exists else {}
    return [m.name for m in load_migrations() if done.get(m.version) != m.checksum]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply every pending migration; returns the names applied."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(SQL_CREATE_TABLE)
        done = {r["version"]: r for r in await conn.fetch(SQL_APPLIED)}
        for m in load_migrations():
            if m.version in done:
                if done[m.version]["checksum"] != m.checksum:
                    raise MigrationError(
                        f"migration {m.name} changed after it was applied; add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(SQL_RECORD, m.version, m.name, m.checksum)
            log.info("applied migration %s", m.name)
            applied_now.append(m.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied_now
